/**
 * The shape of lbc's nftables ruleset, decided before any text is written.
 *
 * Why this layout (measured with nft 1.0.6 on Linux 6.18, 10,000 services × 8 backends):
 * - Dispatch is one verdict-map lookup per vip kind, keyed daddr · l4proto · dport, straight
 *   to a per-service chain, so the cost of finding a service does not grow with their number.
 * - Inside a service chain every rule carries only constants: a cascade of `numgen`/`jhash`
 *   comparisons, one rule per primary backend, ending in dnat/redirect. Rules that refer to a
 *   *shared* map from many chains load quadratically (the kernel re-walks a map's elements for
 *   every chain that binds it: nf_tables_bind_set() in net/netfilter/nf_tables_api.c), and an
 *   anonymous or named map per service is 3.6–18× slower than a single map; constant-only rules
 *   stay within about 1.7× of it.
 * - Random and hash services on a host vip have no chain at all when their reduced weight sum is at
 *   most 16: they are elements of shared selection maps looked up first (see "Shared selection
 *   maps" below). A shared map is bound by one rule only, so the quadratic cost above does not arise.
 * - The cascade is exact: numgen keeps one counter per expression (nft_ng_inc_eval() in
 *   net/netfilter/nft_numgen.c), each rule sees only what earlier rules let through, so rule i,
 *   matching `numgen inc mod R_i < w_i` with R_i the weight still unassigned, takes exactly w_i
 *   of every R_0 new connections — the nftables form of the iptables `statistic --every` cascade.
 *   With `numgen random` the same cascade gives P(i) = w_i / R_0. For hash every rule computes
 *   the same jhash (same fields, modulus and seed), so each backend owns a fixed range of hash
 *   values and a client keeps its backend.
 */
import type { Backend, Family, HashField, Prefix, Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import { allowRule, allowSet, keepsDestinationPort, needsIntervalMap, needsOwnChain, portKeys, type AllowSet } from './access.js';

export type Hook = 'pre' | 'out';
/** hostr/anyr: services with a port range, in interval maps beside the plain host/any maps (access.ts). */
export type VipKind = 'host' | 'hostr' | 'cidr' | 'any' | 'anyr';

/** One element of a dispatch verdict map. */
export interface DispatchEntry {
  /** Key text, e.g. "10.0.0.1 . tcp . 80". */
  key: string;
  /** Verdict text, e.g. "goto svc_web" or "jump in_web". */
  verdict: string;
  /** Service names this entry leads to, in the order they are tried. */
  services: string[];
}

/** A dispatch verdict map and the rule of the base chain that looks it up. */
export interface DispatchMap {
  name: string;
  hook: Hook;
  family: Family;
  kind: VipKind;
  /** Map type line, e.g. "ipv4_addr . inet_proto . inet_service : verdict". */
  type: string;
  interval: boolean;
  /** The lookup rule in the base chain. */
  rule: string;
  entries: DispatchEntry[];
}

/** A chain that picks among services sharing one dispatch key by inbound interface (prerouting only). */
export interface InterfaceChain {
  name: string;
  /** Rules like `iifname "eth0" goto svc_a`; the last may be an unconditional goto. */
  rules: string[];
}

export interface StickySet {
  name: string;
  /** nft type of the set key. */
  type: 'ipv4_addr' | 'ipv6_addr';
  timeoutSeconds: number;
}

/** One selection rule of a service chain. */
export interface SelectionRule {
  backend: Backend;
  /** Condition text ("" for the unconditional last rule). */
  condition: string;
  /** The statement that sends the connection to the backend. */
  action: string;
}

export interface ServiceChain {
  name: string;
  service: Service;
  /** Rules before everything else: the allow-list drop (access.ts). */
  guard: string[];
  /** Sticky check rules (one per primary backend), before selection. */
  stickyRules: string[];
  selection: SelectionRule[];
  sets: StickySet[];
}

/** One element of a shared selection map: a service's key plus one slot of the selector, and the backend owning it. */
export interface SharedEntry {
  /** e.g. "10.0.0.1 . tcp . 80 . 3" */
  key: string;
  /** e.g. "10.1.0.1 . 8080" */
  value: string;
}

/** A map shared by many random or hash services, and the one base-chain rule that looks it up. */
export interface SharedMap {
  name: string;
  hook: Hook;
  family: Family;
  mode: 'random' | 'hash';
  hashFields: HashField[];
  /** The jhash seed of the group (hash only). */
  seed: number | null;
  /** The modulus W of the selector, the reduced weight sum of every service in the map. */
  slots: number;
  /** The map's `typeof` line. */
  type: string;
  rule: string;
  services: Service[];
  entries: SharedEntry[];
}

export interface Layout {
  /** Shared selection maps, looked up before the dispatch maps of their hook and family. */
  shared: SharedMap[];
  dispatch: DispatchMap[];
  interfaceChains: InterfaceChain[];
  /** Per-service chains: every service not in a shared map. */
  services: ServiceChain[];
  /** The allow sets of services with an allow list (access.ts). */
  allowSets: AllowSet[];
}

/** Largest sticky set; an element is one client address, so this is how many clients are remembered. */
export const STICKY_SET_SIZE = 65536;

export const serviceChainName = (svc: Service): string => `svc_${svc.name}`;
export const interfaceChainName = (first: Service): string => `in_${first.name}`;
export const stickySetName = (svc: Service, b: Backend): string => `aff_${svc.name}_${b.index}`;

/** Weights divided by their greatest common divisor: same shares, shortest cycle. */
import { reduceWeights as reducedWeights } from '../weights.js';
export { reducedWeights };

/**
 * A deterministic jhash seed per service (FNV-1a of the name). Without `seed` the kernel picks a
 * random one at load time (nft(8), NUMGEN/HASH expressions), so clients would move on every apply.
 */
export function hashSeed(name: string): number {
  let h = 0x811c9dc5;
  for (const ch of `lbc:${name}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * The jhash seed of a shared hash map: every service hashed on the same fields shares one rule and so
 * one seed, derived from the field list alone (the name cannot collide with a service's seed input,
 * since service names have no spaces). Which backend a client lands on depends on the seed only,
 * so sharing it changes nothing but that assignment.
 */
export const sharedHashSeed = (fields: readonly HashField[]): number => hashSeed(`shared hash ${fields.join(',')}`);

export const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

const ipKw = (f: Family): string => (f === 'ipv4' ? 'ip' : 'ip6');

function fieldsExpr(family: Family, fields: readonly HashField[]): string {
  const kw = ipKw(family);
  const field = { saddr: `${kw} saddr`, daddr: `${kw} daddr`, sport: 'th sport', dport: 'th dport' } as const;
  return fields.map((f) => field[f]).join(' . ');
}

const hashExpr = (svc: Service): string => fieldsExpr(svc.family, svc.hashFields);

/** A value or a range "lo-hi" of the selector. */
const span = (lo: number, hi: number): string => (lo === hi ? `${lo}` : `${lo}-${hi}`);

/** dnat to a remote backend, or redirect to a port on the balancer. The l4proto match is the dependency nft needs for a port. */
export function backendAction(svc: Service, b: Backend): string {
  // Without a port, dnat/redirect keep the destination port (nft(8), NAT STATEMENTS), which saves
  // the port and its l4proto dependency in every rule — measurable at 10,000 services.
  const samePort = keepsDestinationPort(svc, b);
  const l4 = `meta l4proto ${svc.protocol} `;
  if (b.address === null) return samePort ? 'redirect' : `${l4}redirect to :${b.port}`;
  const addr = svc.family === 'ipv4' ? b.address : `[${b.address}]`;
  return samePort ? `dnat ${ipKw(svc.family)} to ${b.address}` : `${l4}dnat ${ipKw(svc.family)} to ${addr}:${b.port}`;
}

function selectionRules(svc: Service): SelectionRule[] {
  const prim = primaries(svc);
  const w = reducedWeights(prim.map((b) => b.weight));
  const total = w.reduce((s, x) => s + x, 0);
  const seed = hex32(hashSeed(svc.name));
  const out: SelectionRule[] = [];
  let assigned = 0;
  prim.forEach((b, i) => {
    const remaining = total - assigned;
    let condition = '';
    if (i < prim.length - 1) {
      if (svc.mode === 'hash') condition = `jhash ${hashExpr(svc)} mod ${total} seed ${seed} ${span(assigned, assigned + w[i] - 1)}`;
      else condition = `numgen ${svc.mode === 'nth' ? 'inc' : 'random'} mod ${remaining} ${span(0, w[i] - 1)}`;
    }
    out.push({ backend: b, condition, action: backendAction(svc, b) });
    assigned += w[i];
  });
  return out;
}

function serviceChain(svc: Service): ServiceChain {
  const selection = selectionRules(svc);
  const sets: StickySet[] = [];
  const stickyRules: string[] = [];
  if (svc.sticky) {
    const saddr = `${ipKw(svc.family)} saddr`;
    for (const r of selection) {
      const set = stickySetName(svc, r.backend);
      sets.push({ name: set, type: svc.family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr', timeoutSeconds: svc.sticky.timeoutSeconds });
      // A known client goes back to its backend and refreshes its idle timeout; a new one is
      // remembered by the backend selection picks (dynamic sets: nft(8), SETS, "update").
      stickyRules.push(`${saddr} @${set} update @${set} { ${saddr} } ${r.action}`);
      r.action = `update @${set} { ${saddr} } ${r.action}`;
    }
  }
  return { name: serviceChainName(svc), service: svc, guard: allowRule(svc), stickyRules, selection, sets };
}

function vipKind(svc: Service): VipKind {
  if (!svc.vip) return needsIntervalMap(svc) ? 'anyr' : 'any';
  return svc.vip.isHost ? (needsIntervalMap(svc) ? 'hostr' : 'host') : 'cidr';
}

/** The dispatch keys of a service, one per port or range (access.ts); the first names its group. */
function keyTexts(svc: Service): string[] {
  const head = !svc.vip ? '' : svc.vip.isHost ? `${svc.vip.address} . ` : `${svc.vip.address}/${svc.vip.prefixLength} . `;
  return portKeys(svc).map((p) => `${head}${svc.protocol} . ${p}`);
}

const keyText = (svc: Service): string => keyTexts(svc)[0];

// ---- CIDR overlap: the kernel's interval set for concatenations (pipapo) refuses overlapping
// elements ("File exists"), so nested vips with the same protocol and port go to separate maps,
// looked up longest prefix first: a more specific vip wins, as a host vip wins over any CIDR.

function addressBits(p: Prefix, family: Family): bigint {
  if (family === 'ipv4') return p.address.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  const [head, tail] = p.address.includes('::') ? p.address.split('::') : [p.address, null];
  const hs = head ? head.split(':') : [];
  const ts = tail ? tail.split(':') : [];
  const groups = tail === null ? hs : [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function nested(a: Service, b: Service): boolean {
  if (a.protocol !== b.protocol || a.port !== b.port) return false;
  const bits = a.family === 'ipv4' ? 32 : 128;
  const len = Math.min(a.vip!.prefixLength, b.vip!.prefixLength);
  const shift = BigInt(bits - len);
  return addressBits(a.vip!, a.family) >> shift === addressBits(b.vip!, b.family) >> shift;
}

/** Services with the same dispatch key, interface-restricted ones first (they are more specific). */
interface KeyGroup {
  key: string;
  services: Service[];
}

function groupByKey(services: Service[]): KeyGroup[] {
  const groups = new Map<string, Service[]>();
  for (const s of services) {
    const k = keyText(s);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(s);
  }
  return [...groups].map(([key, list]) => ({ key, services: [...list.filter((s) => s.interface), ...list.filter((s) => !s.interface)] }));
}

/** Assign CIDR groups to layers so no layer holds two nested vips; longer prefixes land in earlier layers. */
function cidrLayers(groups: KeyGroup[]): KeyGroup[][] {
  const order = [...groups].sort((a, b) => b.services[0].vip!.prefixLength - a.services[0].vip!.prefixLength);
  const layers: KeyGroup[][] = [];
  for (const g of order) {
    let i = 0;
    while (i < layers.length && layers[i].some((o) => nested(o.services[0], g.services[0]))) i++;
    if (i === layers.length) layers.push([]);
    layers[i].push(g);
  }
  // Inside a layer keep spec order, so output follows the spec.
  const pos = new Map(groups.map((g, i) => [g, i]));
  return layers.map((l) => l.sort((a, b) => pos.get(a)! - pos.get(b)!));
}

// ---- Shared selection maps.
//
// A random or hash service needs no state of its own (nth does: one numgen inc counter per service),
// so instead of a chain with one rule per backend it can be a few elements of a map shared by every
// such service with the same weight sum W, keyed daddr · l4proto · dport · slot, where the slot is
// `numgen random mod W` or `jhash <fields> mod W seed S`, and backend i owns w_i of the W slots:
// exact for every weight vector. Loading elements costs far less than loading rules (at 10,000
// services × 8 backends the map loads in about the time of the one-map reference layout, the
// chains in about three times that).
//
// Slots are single values in a plain (hash) map, not ranges of one large modulus in an interval map:
// this kernel (6.18) refuses an interval map of concatenations with many ranges in the last field
// ("No buffer space available" from `nft -f` already at 1,000 services × 8 ranges), and a plain map
// loads faster than an interval one (0.9 s against 1.3 s for 80,000 elements).
// W is capped at SHARED_MAX_SLOTS, so a service costs at most that many elements; a larger W keeps
// its chain. Both numgen random and jhash scale a 32-bit value to [0, W) with reciprocal_scale(),
// (x · W) >> 32 (nft_ng_random_eval() in net/netfilter/nft_numgen.c, nft_jhash_eval() in
// net/netfilter/nft_hash.c), so each slot receives ⌊2^32/W⌋ or ⌈2^32/W⌉ of the 2^32 inputs: a
// backend's share is off from w/W by less than W/2^32 (under 4·10⁻⁹ for W ≤ 16).
//
// When the lookup finds no element (a service not in this map) the rule does not match and
// evaluation goes on with the next rule (nft_lookup_eval() sets NFT_BREAK), so the next shared map
// and then the dispatch maps still serve every other service. Only host-vip services whose dispatch
// key no other service shares, without interface restriction, are eligible: such a service already
// wins over every CIDR vip and vip-less service, so looking it up first keeps the precedence.

/** Largest reduced weight sum a service in a shared map may have: its number of map elements. */
export const SHARED_MAX_SLOTS = 16;

/**
 * The primary backend (index into the weights) owning each slot 0..W-1, in order, backend i owning
 * exactly w_i consecutive slots of the gcd-reduced W; null when W exceeds maxSlots.
 */
export function slotOwners(weights: readonly number[], maxSlots = SHARED_MAX_SLOTS): number[] | null {
  const w = reducedWeights([...weights]);
  const total = w.reduce((s, x) => s + x, 0);
  if (total === 0 || total > maxSlots) return null;
  return w.flatMap((x, i) => Array<number>(x).fill(i));
}

function sharedEligible(svc: Service, keyCount: Map<string, number>): boolean {
  if (svc.mode === 'nth' || !svc.vip?.isHost || svc.interface || svc.sticky || needsOwnChain(svc)) return false;
  const prim = primaries(svc);
  if (prim.length === 0 || prim.some((b) => b.address === null)) return false;
  if ((keyCount.get(keyText(svc)) ?? 0) !== 1) return false;
  return slotOwners(prim.map((b) => b.weight)) !== null;
}

function sharedEntries(svc: Service): SharedEntry[] {
  const prim = primaries(svc);
  return slotOwners(prim.map((b) => b.weight))!.map((i, slot) => ({ key: `${keyText(svc)} . ${slot}`, value: `${prim[i].address} . ${prim[i].port}` }));
}

function sharedMaps(hook: Hook, family: Family, services: Service[]): SharedMap[] {
  const fam = family === 'ipv4' ? '4' : '6';
  const kw = ipKw(family);
  const groups = new Map<string, Service[]>();
  for (const s of services) {
    const slots = slotOwners(primaries(s).map((b) => b.weight))!.length;
    const g = `${s.mode === 'random' ? 'rnd' : `hash_${s.hashFields.join('_')}`}_${slots}`;
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push(s);
  }
  return [...groups].map(([g, list]) => {
    const first = list[0];
    const slots = slotOwners(primaries(first).map((b) => b.weight))!.length;
    const mode = first.mode as 'random' | 'hash';
    const seed = mode === 'hash' ? sharedHashSeed(first.hashFields) : null;
    const selector = mode === 'random' ? `numgen random mod ${slots}` : `jhash ${fieldsExpr(family, first.hashFields)} mod ${slots} seed ${hex32(seed!)}`;
    const key = `${kw} daddr . meta l4proto . th dport . ${selector}`;
    // `typeof` only gives the key's element types: every numgen and hash expression yields the same
    // 32-bit integer. nft 1.0.6 crashes listing a map whose typeof holds a jhash (segmentation fault
    // in `nft list ruleset`), so a hash map's key is declared with symhash, which lists fine.
    const declared = `${kw} daddr . meta l4proto . th dport . ${mode === 'random' ? selector : `symhash mod ${slots}`}`;
    const name = `${hook}${fam}_${g}`;
    // A port in a nat mapping needs a transport protocol match before it (nft(8), NAT STATEMENTS;
    // nft refuses the rule otherwise); the set match is that dependency for both protocols.
    return {
      name,
      hook,
      family,
      mode,
      hashFields: mode === 'hash' ? [...first.hashFields] : [],
      seed,
      slots,
      type: `typeof ${declared} : ${kw} daddr . th dport`,
      rule: `meta l4proto { tcp, udp } dnat ${kw} to ${key} map @${name}`,
      services: list,
      entries: list.flatMap(sharedEntries),
    };
  });
}

export function buildLayout(services: readonly Service[]): Layout {
  const keyCount = new Map<string, number>();
  for (const s of services) keyCount.set(keyText(s), (keyCount.get(keyText(s)) ?? 0) + 1);
  const inShared = new Set(services.filter((s) => sharedEligible(s, keyCount)));
  const shared: SharedMap[] = [];
  const dispatch: DispatchMap[] = [];
  const interfaceChains: InterfaceChain[] = [];
  for (const hook of ['pre', 'out'] as Hook[]) {
    for (const family of ['ipv4', 'ipv6'] as Family[]) {
      const fam = family === 'ipv4' ? '4' : '6';
      const kw = ipKw(family);
      const addrType = family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr';
      const hooked = services.filter((s) => s.family === family && (hook === 'pre' || s.local));
      shared.push(...sharedMaps(hook, family, hooked.filter((s) => inShared.has(s))));
      const eligible = hooked.filter((s) => !inShared.has(s));
      const entriesFor = (g: KeyGroup): DispatchEntry[] => {
        const e = entryFor(g);
        // A service with several ports is alone in its group (the validator refuses two services sharing a port).
        return keyTexts(g.services[0]).map((key, i) => (i === 0 ? e : { ...e, key }));
      };
      const entryFor = (g: KeyGroup): DispatchEntry => {
        if (hook === 'out') {
          // The interface restriction is about where a packet came in; locally made connections
          // have none, so the first service with this key takes them.
          const s = g.services.find((x) => !x.interface) ?? g.services[0];
          return { key: g.key, verdict: `goto ${serviceChainName(s)}`, services: [s.name] };
        }
        if (g.services.length === 1 && !g.services[0].interface) {
          return { key: g.key, verdict: `goto ${serviceChainName(g.services[0])}`, services: [g.services[0].name] };
        }
        // jump, not goto: when no interface matches, the base chain goes on to the less specific maps.
        const chain = interfaceChainName(g.services[0]);
        const rules: string[] = [];
        const used: string[] = [];
        for (const s of g.services) {
          rules.push(s.interface ? `iifname "${s.interface}" goto ${serviceChainName(s)}` : `goto ${serviceChainName(s)}`);
          used.push(s.name);
          if (!s.interface) break; // anything after an unconditional goto is unreachable
        }
        interfaceChains.push({ name: chain, rules });
        return { key: g.key, verdict: `jump ${chain}`, services: used };
      };
      const kinds: Array<{ kind: VipKind; groups: KeyGroup[][] }> = [
        { kind: 'host', groups: [groupByKey(eligible.filter((s) => vipKind(s) === 'host'))] },
        { kind: 'hostr', groups: [groupByKey(eligible.filter((s) => vipKind(s) === 'hostr'))] },
        { kind: 'cidr', groups: cidrLayers(groupByKey(eligible.filter((s) => vipKind(s) === 'cidr'))) },
        { kind: 'any', groups: [groupByKey(eligible.filter((s) => vipKind(s) === 'any'))] },
        { kind: 'anyr', groups: [groupByKey(eligible.filter((s) => vipKind(s) === 'anyr'))] },
      ];
      for (const { kind, groups } of kinds) {
        groups.forEach((layer, li) => {
          if (layer.length === 0) return;
          const name = `${hook}${fam}_${kind}${li === 0 ? '' : `${li + 1}`}`;
          const vipless = kind === 'any' || kind === 'anyr';
          const type = vipless ? 'inet_proto . inet_service : verdict' : `${addrType} . inet_proto . inet_service : verdict`;
          // A service without vip answers on any local address (fib: nft(8), FIB EXPRESSIONS).
          const rule = vipless
            ? `meta nfproto ${family} fib daddr type local meta l4proto . th dport vmap @${name}`
            : `${kw} daddr . meta l4proto . th dport vmap @${name}`;
          const interval = kind === 'cidr' || kind === 'hostr' || kind === 'anyr';
          dispatch.push({ name, hook, family, kind, type, interval, rule, entries: layer.flatMap(entriesFor) });
        });
      }
    }
  }
  const chained = services.filter((s) => !inShared.has(s));
  return { shared, dispatch, interfaceChains, services: chained.map(serviceChain), allowSets: chained.flatMap((s) => allowSet(s) ?? []) };
}
