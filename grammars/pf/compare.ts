/**
 * Does a parsed service mean what an IR service asks for? Returns the list of
 * differences (empty: same meaning). Shares are compared with a tolerance
 * because probabilities are written with four decimals.
 */
import type { Service } from '../../src/ir/types.js';
import { joinedRanges } from '../../src/ir/ports.js';
import type { PfServiceMeaning, PfTargetShare } from './meaning.js';

export const SHARE_TOLERANCE = 1e-4;

/** Where lbc sends a backend with address null: the balancer's loopback address. */
export function localAddress(family: Service['family']): string {
  return family === 'ipv4' ? '127.0.0.1' : '::1';
}

/** The shares the IR asks for: primaries only, weight over total weight, aggregated by (address, port). */
export function expectedTargets(svc: Service): PfTargetShare[] {
  const prim = svc.backends.filter((b) => !b.backup);
  const total = prim.reduce((s, b) => s + b.weight, 0);
  const m = new Map<string, PfTargetShare>();
  for (const b of prim) {
    const address = b.address ?? localAddress(svc.family);
    const port = b.keepsPort ? ('kept' as const) : b.port;
    const k = `${address}|${port}`;
    const prev = m.get(k);
    if (prev) prev.share += b.weight / total;
    else m.set(k, { address, port, share: b.weight / total });
  }
  return [...m.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : String(a.port) < String(b.port) ? -1 : String(a.port) > String(b.port) ? 1 : 0));
}

/** Which choices carry each IR mode; 'probability' stands for a weighted random cascade. */
const CHOICES: Record<Service['mode'], PfServiceMeaning['choice'][]> = {
  nth: ['round-robin', 'single', 'probability'],
  random: ['random', 'single', 'probability'],
  hash: ['source-hash', 'single'],
};

export function compareToService(svc: Service, m: PfServiceMeaning): string[] {
  const diffs: string[] = [];
  const want = (what: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) diffs.push(`${what}: expected ${JSON.stringify(a)}, got ${JSON.stringify(b)}`);
  };
  want('family', svc.family, m.family);
  want('protocol', svc.protocol, m.protocol);
  want('interface', svc.interface, m.interface);
  want('port', svc.port, m.port);
  // A service's ports are one block of consecutive ports here (what one pf rule can catch).
  const block = joinedRanges(svc.ports);
  want('ports', block.length === 1 ? block[0] : block, m.ports);
  want('allow', svc.allow ? svc.allow.map((p) => `${p.address}/${p.prefixLength}`).sort() : null, m.allow);
  if (svc.allow && !m.othersRefused) diffs.push('clients outside the allow list are not refused by a block rule');
  const dest = svc.vip
    ? { kind: 'prefix', address: svc.vip.address, prefixLength: svc.vip.prefixLength }
    : svc.interface
      ? { kind: 'interface', name: svc.interface }
      : { kind: 'any' };
  want('destination', dest, m.destination);
  if (!CHOICES[svc.mode].includes(m.choice)) diffs.push(`choice: mode ${svc.mode} cannot be carried by ${m.choice}`);
  if (m.choice === 'source-hash' && !m.hashKey) diffs.push('source-hash without an explicit key changes at every load');
  if (m.unredirected > SHARE_TOLERANCE) diffs.push(`${m.unredirected} of new connections are caught but not redirected`);
  if (m.unknownTables.length) diffs.push(`tables without contents: ${m.unknownTables.join(', ')}`);
  if (!m.passed) diffs.push('the translated connections are not passed by any rule');
  // Stickiness: source-hash and a single backend are sticky by construction.
  const inherentlySticky = m.choice === 'source-hash' || m.choice === 'single';
  if (svc.sticky) {
    if (!m.sticky && !inherentlySticky) diffs.push('sticky requested but the pool is not sticky');
    if (m.sticky) want('sticky timeout', svc.sticky.timeoutSeconds, m.stickyTimeoutSeconds);
  } else if (m.sticky) diffs.push('pool is sticky but the service is not');
  const nat = svc.sourceNat ? (svc.sourceNat.kind === 'masquerade' ? { kind: 'interface', name: svc.interface } : { kind: 'address', address: svc.sourceNat.address }) : null;
  want('source nat', nat, m.sourceNat ?? null);
  const exp = expectedTargets(svc);
  want('backends', exp.map((t) => `${t.address} port ${t.port}`), m.targets.map((t) => `${t.address} port ${t.port}`));
  if (exp.length === m.targets.length) {
    exp.forEach((t, i) => {
      if (Math.abs(t.share - m.targets[i].share) > SHARE_TOLERANCE) diffs.push(`share of ${t.address} port ${t.port}: expected ${t.share}, got ${m.targets[i].share}`);
    });
  }
  return diffs;
}
