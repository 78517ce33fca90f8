/**
 * --target ipnat: IPFilter (FreeBSD ipf 5.x). Two files: ipnat.rules with the
 * rdr rules, ipf.rules with the pass rules the translated traffic needs.
 * apply() and the agent add and remove lbc's rules with ipnat/ipf's own
 * commands and never flush (agent-bsd/ipnat.ts, which also says what is not
 * atomic or idempotent about it).
 */
import type { TargetDefinition } from '../target.js';
import { capabilities } from './capabilities.js';
import { emitIpnat } from './emit.js';
import { ipnatAgentDriver, ipnatApply } from '../../agent-bsd/ipnat.js';
import { bsdPlan, ipnatRemove, ipnatStatus } from '../../agent-bsd/lifecycle.js';

export const ipnatTarget: TargetDefinition = {
  name: 'ipnat',
  title: 'IPFilter ipnat.conf rdr rules plus the ipf.conf pass rules they need (FreeBSD)',
  families: ['ipv4', 'ipv6'],
  capabilities,
  emit: (ir) => emitIpnat(ir),
  apply: ipnatApply,
  agentDriver: ipnatAgentDriver,
  remove: ipnatRemove,
  status: ipnatStatus,
  plan: (files, ctx) => bsdPlan('ipnat', files, ctx),
};
