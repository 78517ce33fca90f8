/**
 * Targets `iptables` (IPv4) and `ip6tables` (IPv6): iptables-restore input for
 * `iptables-restore --noflush`, touching only chains named LBC-*, plus an ipset
 * restore file when a service is sticky. Layout and rule forms: emit.ts; loading: apply.ts.
 */
import type { Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import type { CapabilityTable, Support, TargetDefinition } from '../target.js';
import { sourceNatBesideAssociations } from '../associations.js';
import { applyIptables } from './apply.js';
import { iptablesStatus, planIptables, removeIptables } from './lifecycle.js';
import { emitIptables, IPV4, IPV6, type Flavor } from './emit.js';
import { MAX_ROTATION_RULES, rotationPlan } from './rotation.js';
import { iptablesTier } from './partition.js';

/**
 * nth is exact for every weight sum (rotation.ts); only a rotation that would need more than
 * MAX_ROTATION_RULES rules is refused, for its size. hash needs Σ popcount(w_i) mark rules (slots.ts
 * markBlocks), a few per backend, so it has no limit.
 */
function rotationLimit(svc: Service): Support {
  const rules = rotationPlan(primaries(svc).map((b) => b.weight)).rules.length;
  if (rules <= MAX_ROTATION_RULES) return { level: 'yes' };
  return {
    level: 'no',
    why: `the exact rotation over these weights needs ${rules} rules (the limit is ${MAX_ROTATION_RULES})`,
    instead: 'use mode random (the same long-run shares, one rule per backend), or weights with a smaller sum after dividing by their common factor',
  };
}

const capabilities: CapabilityTable = {
  'mode.nth': rotationLimit,
  health: { level: 'yes', note: 'checks are done by `lbc agent`, which recompiles without the backends that are down' },
  backup: { level: 'yes', note: 'backup backends get no rules; `lbc agent` recompiles with them when every primary is down' },
  associations: { level: 'yes', note: 'hash:ip,port ipsets remember each client address and port; conntrack rewrites, each backend\'s flows in a conntrack zone of their own (raw table)' },
  'associations.full': {
    level: 'approx',
    note: 'ipset cannot evict the least recently used member (forceadd drops an arbitrary one, which may be a session in use): when the set is full a newcomer goes to the backend a hash of its address and port picks (HMARK, which sets the packet mark), without being remembered; the same backend on every packet, and after conntrack -F, while the backends stay the same',
  },
  'source-nat': sourceNatBesideAssociations('sets and give every flow the conntrack zone of its backend'),
  'associations.backend-initiated': { level: 'yes', note: "a backend's first packet to a client adds the client to its set and leaves from the vip (SNAT to vip:port)" },
};

function define(flavor: Flavor, title: string): TargetDefinition {
  return {
    name: flavor.target,
    title,
    families: [flavor.family],
    capabilities,
    emit: (ir) => emitIptables(flavor, ir),
    apply: (files, ctx) => applyIptables(flavor, files, ctx),
    tier: iptablesTier(flavor.target),
    remove: (ctx) => removeIptables(flavor, ctx),
    status: (ctx) => iptablesStatus(flavor, ctx),
    plan: (files, ctx) => planIptables(flavor, files, ctx),
  };
}

export const iptablesTarget = define(IPV4, 'Linux iptables (IPv4): iptables-restore --noflush input, ipset for sticky');
export const ip6tablesTarget = define(IPV6, 'Linux ip6tables (IPv6): ip6tables-restore --noflush input, ipset for sticky');
