/**
 * --target ipnat: IPFilter (FreeBSD ipf 5.x). Two files: ipnat.rules with the
 * rdr rules, ipf.rules with the pass rules the translated traffic needs.
 * There is no apply(): the files are copied to the BSD host and loaded with
 * ipnat -f / ipf -f there.
 */
import type { TargetDefinition } from '../target.js';
import { capabilities } from './capabilities.js';
import { emitIpnat } from './emit.js';

export const ipnatTarget: TargetDefinition = {
  name: 'ipnat',
  title: 'IPFilter ipnat.conf rdr rules plus the ipf.conf pass rules they need (FreeBSD)',
  families: ['ipv4', 'ipv6'],
  capabilities,
  emit: (ir) => emitIpnat(ir),
};
