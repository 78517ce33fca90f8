/**
 * The capability matrix as users read it: each feature on a typical service,
 * judged by each target's own capability table (the same rules compile
 * uses). Rules that depend on the rest of a spec are judged on the probe
 * here; `lbc check SPEC` gives the verdict for a real spec.
 */
import type { Backend, HealthCheck, IR, Service } from '../ir/types.js';
import { FEATURES, featuresOf, type Feature } from '../targets/features.js';
import type { TargetDefinition } from '../targets/target.js';
import { supportFor } from '../targets/target.js';
import { TIER_FEATURES, tierSupport, type TierFeature } from '../targets/tier/features.js';
import type { Balancers } from '../ir/balancers.js';

const at = { file: 'probe', line: 1, column: 1 };

function backend(index: number, over: Partial<Backend> = {}): Backend {
  return { index, address: `10.0.0.${index + 1}`, port: 80, keepsPort: false, weight: 1, backup: false, health: null, loc: at, ...over };
}

function base(over: Partial<Service> = {}): Service {
  return {
    name: 'probe',
    family: 'ipv4',
    vip: { address: '192.0.2.10', prefixLength: 32, isHost: true },
    port: 80,
    ports: [{ from: 80, to: 80 }],
    allow: null,
    protocol: 'tcp',
    interface: 'em0',
    mode: 'nth',
    hashFields: [],
    sticky: null,
    local: false,
    associations: null,
    sourceNat: null,
    backends: [backend(0), backend(1)],
    health: null,
    loc: { service: at, name: at, backends: at },
    ...over,
  };
}

const ASSOCIATIONS = { max: 1_048_576, idleSeconds: null, backendInitiated: false };

const HEALTH: HealthCheck = { check: 'tcp', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2, port: null, http: null, banner: null, udp: null };
const ICMP: HealthCheck = { ...HEALTH, check: 'icmp' };
const UDP: HealthCheck = { ...HEALTH, check: 'udp', udp: { send: '40000000', expect: '70000000' } };
const checked = (hc: HealthCheck, over: Partial<Service> = {}): Service => base({ health: hc, backends: [backend(0, { health: hc }), backend(1, { health: hc })], ...over });

/** One probe service per feature: the base service changed just enough to use it. */
export const PROBES: Record<Feature, Service> = {
  'mode.nth': base(),
  'mode.random': base({ mode: 'random' }),
  'mode.hash': base({ mode: 'hash', hashFields: ['saddr'] }),
  'hash.fields': base({ mode: 'hash', hashFields: ['saddr', 'sport'] }),
  weights: base({ backends: [backend(0, { weight: 3 }), backend(1)] }),
  sticky: base({ sticky: { timeoutSeconds: 600 } }),
  'protocol.udp': base({ protocol: 'udp' }),
  'family.ipv6': base({ family: 'ipv6', vip: { address: '2001:db8::10', prefixLength: 128, isHost: true }, backends: [backend(0, { address: '2001:db8:1::1' }), backend(1, { address: '2001:db8:1::2' })] }),
  'vip.none': base({ vip: null }),
  'vip.cidr': base({ vip: { address: '192.0.2.0', prefixLength: 28, isHost: false } }),
  interface: base(),
  'interface.none': base({ interface: null }),
  'backend.local': base({ backends: [backend(0, { address: null, port: 8080 }), backend(1, { address: null, port: 8080 })] }),
  'backend.port': base({ backends: [backend(0, { port: 8080 }), backend(1, { port: 8080 })] }),
  'backend.ports-differ': base({ backends: [backend(0, { port: 8080 }), backend(1, { port: 8081 })] }),
  local: base({ local: true }),
  health: base({ health: HEALTH, backends: [backend(0, { health: HEALTH }), backend(1, { health: HEALTH })] }),
  // Backups only make sense with health checks (something must notice the primaries are down).
  backup: base({ health: HEALTH, backends: [backend(0, { health: HEALTH }), backend(1, { health: HEALTH }), backend(2, { backup: true, health: HEALTH })] }),
  'backup.port': base({ health: HEALTH, backends: [backend(0, { health: HEALTH }), backend(1, { health: HEALTH }), backend(2, { backup: true, port: 8080, health: HEALTH })] }),
  // Two ports apart (80 and 443, as seed 002's pf.conf passes): the general case of a list.
  'ports.list': base({ ports: [{ from: 80, to: 80 }, { from: 443, to: 443 }], backends: [backend(0, { keepsPort: true }), backend(1, { keepsPort: true })] }),
  'ports.range': base({ port: 4000, ports: [{ from: 4000, to: 4010 }], backends: [backend(0, { port: 4000, keepsPort: true }), backend(1, { port: 4000, keepsPort: true })] }),
  allow: base({ allow: [{ address: '198.51.100.0', prefixLength: 24, isHost: false }, { address: '203.0.113.0', prefixLength: 24, isHost: false }] }),
  'health.icmp': checked(ICMP),
  'health.udp': checked(UDP, { protocol: 'udp' }),
  // Seed 002: a TCP check for the pool, an ICMP echo for the local fallback.
  'health.per-backend': base({ health: HEALTH, backends: [backend(0, { health: HEALTH }), backend(1, { health: HEALTH }), backend(2, { backup: true, health: ICMP })] }),
  associations: base({ protocol: 'udp', associations: ASSOCIATIONS }),
  'associations.full': base({ protocol: 'udp', associations: ASSOCIATIONS }),
  'associations.backend-initiated': base({ protocol: 'udp', associations: { ...ASSOCIATIONS, backendInitiated: true } }),
  'source-nat': base({ sourceNat: { kind: 'masquerade' } }),
};

/** The same probe in IPv6, for targets that serve only IPv6 (ip6tables). */
function toIpv6(svc: Service): Service {
  const v6 = (a: string | null) => (a === null ? null : a.startsWith('10.0.0.') ? `2001:db8:1::${a.slice(7)}` : a);
  return {
    ...svc,
    family: 'ipv6',
    vip: svc.vip && (svc.vip.isHost ? { address: '2001:db8::10', prefixLength: 128, isHost: true } : { address: '2001:db8::', prefixLength: 124, isHost: false }),
    backends: svc.backends.map((b) => ({ ...b, address: v6(b.address) })),
  };
}

export type Cell = 'yes' | 'approx' | 'no' | 'n/a';

export function matrixCell(target: TargetDefinition, feature: Feature): Cell {
  let probe = PROBES[feature];
  if (!target.families.includes(probe.family)) {
    if (!target.families.includes('ipv6')) return 'n/a';
    probe = toIpv6(probe);
  }
  // A probe that also uses other features the target refuses would blame the wrong cell; judge the feature alone.
  if (!featuresOf(probe).some((u) => u.feature === feature)) return 'n/a';
  const s = supportFor(target, feature, probe);
  return s.level;
}

/** The tier probe: three IPv4 nodes on em0, the probe service's vip, one feature used at a time. */
function tierProbe(feature: TierFeature): { tier: Balancers; ir: IR } {
  const nodes = [0, 1, 2].map((i) => ({ index: i, name: `n${i + 1}`, address: `192.0.2.${i + 2}`, syncAddress: feature === 'tier.sync' ? `198.51.100.${i + 2}` : null, loc: at }));
  const tier: Balancers = {
    mode: feature === 'tier.active-active' ? 'active-active' : 'failover',
    id: 51,
    advertMs: feature === 'tier.advert-fine' ? 100 : 1000,
    interface: 'em0',
    gateway: null,
    sync: feature === 'tier.sync' ? { interface: 'em2' } : null,
    secretFile: null,
    mac: null,
    nodes,
    loc: { block: at, mode: at, id: at, interface: at, nodes: at },
  };
  const svc = feature === 'tier.active-active' ? base({ backends: [backend(0, { address: null, port: 8080 })] }) : base();
  return { tier, ir: { file: 'probe', services: [svc], balancers: tier } };
}

export function tierCell(target: TargetDefinition, feature: TierFeature): Cell {
  const { tier, ir } = tierProbe(feature);
  return tierSupport(target.tier, feature, tier, ir).level;
}

const MARK: Record<Cell, string> = { yes: '✓', approx: '≈', no: '✗', 'n/a': '–' };

export function matrixMarkdown(targets: readonly TargetDefinition[]): string {
  // systemd and keepalived are written beside a firewall target, not instead of one.
  const shown = targets.filter((t) => t.name !== 'systemd' && t.name !== 'keepalived');
  const head = `| feature | ${shown.map((t) => t.name).join(' | ')} |`;
  const rule = `|---|${shown.map(() => ':-:').join('|')}|`;
  const rows = (Object.keys(FEATURES) as Feature[]).map((f) => `| ${FEATURES[f]} | ${shown.map((t) => MARK[matrixCell(t, f)]).join(' | ')} |`);
  const tierRows = (Object.keys(TIER_FEATURES) as TierFeature[]).map((f) => `| ${TIER_FEATURES[f]} | ${shown.map((t) => MARK[tierCell(t, f)]).join(' | ')} |`);
  return [head, rule, ...rows, ...tierRows].join('\n') + '\n';
}

export type { IR };
