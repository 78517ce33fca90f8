/**
 * The features a service uses, each with the spec position that asks for it.
 * Targets declare support per feature (targets/capability.ts); this module is
 * the one place that decides which features a service needs.
 */
import type { SourceLocation } from '../diagnostics/diagnostic.js';
import type { HealthCheck, Service } from '../ir/types.js';
import { primaries } from '../ir/types.js';
import { backendPortKey } from '../ir/ports.js';

export const FEATURES = {
  'mode.nth': 'exact rotation (mode nth)',
  'mode.random': 'weighted random choice (mode random)',
  'mode.hash': 'hashing to a backend (mode hash)',
  'hash.fields': 'hashing on fields other than the source address',
  weights: 'unequal backend weights',
  sticky: 'source-address affinity (sticky)',
  'protocol.udp': 'UDP services',
  'family.ipv6': 'IPv6 services',
  'vip.none': 'a service without a vip (any local address)',
  'vip.cidr': 'a vip that is a CIDR block',
  interface: 'restricting a service to an inbound interface',
  'interface.none': 'a service on every inbound interface (no interface given)',
  'backend.local': 'a backend that is a port on the balancer itself',
  'backend.port': 'a backend port different from the service port',
  'backend.ports-differ': 'backends on different ports within one service',
  local: 'balancing connections made on the balancer itself (local: true)',
  health: 'health checks',
  backup: 'backup backends',
  'backup.port': 'backup backends on another port than the primaries',
  'ports.list': 'several ports per service (a list in ports)',
  'ports.range': 'a port range per service (LOW-HIGH in ports)',
  allow: 'balancing only listed client networks (allow)',
  'health.icmp': 'ICMP echo health checks (check: icmp)',
  'health.udp': 'UDP request/answer health checks (check: udp)',
  'health.per-backend': 'backends or backups with a health check of their own',
  associations: 'UDP associations per client address and port, kept across reloads and conntrack flushes',
  'associations.full': 'a full association table evicting the least recently used association',
  'associations.backend-initiated': 'backend-initiated traffic creating an association (leaving from the vip)',
  'source-nat': 'source NAT towards the backends (source-nat)',
} as const;

export type Feature = keyof typeof FEATURES;

/** Refinements of a feature: a target that refuses the feature is not asked about them (one reason, not three). */
export const REFINES: Partial<Record<Feature, Feature>> = {
  'associations.full': 'associations',
  'associations.backend-initiated': 'associations',
};

export interface FeatureUse {
  feature: Feature;
  location: SourceLocation | undefined;
}

/** Two checks alike in every field (the validator shares one object; an IR read back from JSON does not). */
function sameCheck(a: HealthCheck | null, b: HealthCheck | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function featuresOf(svc: Service): FeatureUse[] {
  const uses: FeatureUse[] = [];
  const at = (feature: Feature, location: SourceLocation | undefined) =>
    uses.push({ feature, location: location ?? svc.loc.service });
  const modeLoc = svc.loc.mode ?? svc.loc.service;
  at(`mode.${svc.mode}` as Feature, modeLoc);
  if (svc.mode === 'hash' && !(svc.hashFields.length === 1 && svc.hashFields[0] === 'saddr')) at('hash.fields', svc.loc.hash);
  const prim = primaries(svc);
  const weighted = prim.find((b) => b.weight !== prim[0].weight);
  if (weighted) at('weights', weighted.loc);
  if (svc.sticky) at('sticky', svc.loc.sticky);
  if (svc.protocol === 'udp') at('protocol.udp', svc.loc.protocol);
  if (svc.family === 'ipv6') at('family.ipv6', svc.loc.vip ?? svc.loc.family ?? svc.loc.service);
  if (!svc.vip) at('vip.none', svc.loc.service);
  else if (!svc.vip.isHost) at('vip.cidr', svc.loc.vip);
  if (svc.interface) at('interface', svc.loc.interface);
  else at('interface.none', svc.loc.service);
  const localBe = svc.backends.find((b) => b.address === null);
  if (localBe) at('backend.local', localBe.loc);
  // Ports are judged over the primaries: the static rules hold only them, and a backup pool is a
  // separate pool (relayd's second "forward to", the agent's re-render) with its own single port.
  // A backend keeping the client's port (several service ports) is on the service's port, whichever it was.
  const key = backendPortKey;
  const otherPort = prim.find((b) => !b.keepsPort && b.port !== svc.port);
  if (otherPort) at('backend.port', otherPort.loc);
  const differing = prim.find((b) => key(b) !== key(prim[0]));
  if (differing) at('backend.ports-differ', differing.loc);
  const backups = svc.backends.filter((b) => b.backup);
  const backupDiffering = backups.find((b) => key(b) !== key(backups[0]));
  if (backupDiffering) at('backend.ports-differ', backupDiffering.loc);
  // Pool-based targets swap a backup into the same rule (pf table, relayd's second table), which has one port.
  const backupOtherPort = backups.find((b) => !differing && key(b) !== key(prim[0]));
  if (backupOtherPort) at('backup.port', backupOtherPort.loc);
  if (svc.local) at('local', svc.loc.local);
  const checked = svc.backends.find((b) => b.health);
  if (checked) at('health', svc.loc.health ?? checked.loc);
  const backup = svc.backends.find((b) => b.backup);
  if (backup) at('backup', backup.loc);
  const portsLoc = svc.loc.ports ?? svc.loc.port;
  if (svc.ports.some((r) => r.from !== r.to)) at('ports.range', portsLoc);
  if (svc.ports.length > 1) at('ports.list', portsLoc);
  if (svc.allow) at('allow', svc.loc.allow);
  const ownCheck = (b: Service['backends'][number]) => b.health !== svc.health && !sameCheck(b.health, svc.health);
  const kinds = (k: HealthCheck['check']) => svc.backends.find((b) => b.health?.check === k);
  const icmp = kinds('icmp');
  if (icmp) at('health.icmp', ownCheck(icmp) ? icmp.loc : svc.loc.health);
  const udp = kinds('udp');
  if (udp) at('health.udp', ownCheck(udp) ? udp.loc : svc.loc.health);
  const own = svc.backends.find(ownCheck);
  if (own) at('health.per-backend', own.loc);
  if (svc.associations) {
    at('associations', svc.loc.associations);
    at('associations.full', svc.loc.associations);
    if (svc.associations.backendInitiated) at('associations.backend-initiated', svc.loc.associations);
  }
  if (svc.sourceNat) at('source-nat', svc.loc.sourceNat);
  return uses;
}
