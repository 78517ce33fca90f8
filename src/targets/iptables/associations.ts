/**
 * UDP associations for iptables / ip6tables (seed 004): ipset sets remember, connection tracking
 * rewrites. iptables has no stateless address rewriting in mainline (RAWDNAT is xtables-addons), so
 * every packet is NATed by conntrack, and the sets decide where a flow goes whenever conntrack has to
 * decide again (a new flow, or any flow after `conntrack -F`).
 *
 * Per service S (vip V, port P, backends B_i on port P):
 * - `hash:ip,port` sets (ipset(8)): `LBC4-S-all` (maxelem = max) with every association, and one per
 *   backend, `LBC4-S-<tag>` (the tag comes from the backend's address: removing a backend leaves the
 *   others' sets alone). Keys are the client's address and port (`src,src` on the client's packets,
 *   `dst,dst` on a backend's). Every add passes `--timeout` (idle, or 0: permanent), so the sets are
 *   created the same whatever the idle time and a changed idle is a change of rules only.
 * - raw PREROUTING (every packet, before conntrack): a client's packet to V:P refreshes its
 *   association, or makes one (the service's mode picks the backend; `-j SET --add-set` of a full set
 *   adds nothing, so membership is tested after it); a packet from B_i:P to its own client refreshes
 *   it, to another backend's client is dropped, to a client without one makes one with
 *   backend-initiated. Each packet also gets the conntrack zone of its association's backend
 *   (`-j CT --zone`), so all of a client's flows with one backend live in that backend's zone: when
 *   the client moves to another backend (its backend left, its association expired) its new flows
 *   never meet the old ones, whose tuples would otherwise clash (an expired, not yet collected flow
 *   C:cp → V:P makes a later backend's SNAT to V:P fail and drop the packet). What a full table
 *   cannot remember lives in a zone of its own.
 * - nat PREROUTING (first packet of a flow): DNAT to the backend whose set holds the client; for an
 *   unremembered newcomer, the service's mode. nat POSTROUTING: a new flow from B_i:P to one of its
 *   clients (or, with backend-initiated, to anyone) leaves from V:P (`SNAT --to-source V:P`: only the
 *   address changes, and a fixed port is never remapped).
 * Replies within a flow are rewritten by conntrack. So a flush moves nobody: the next packet either
 * way makes a new flow, which the sets send to the same backend.
 */
import { createHash } from 'node:crypto';
import type { Backend, Family, Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import { shortAddressTag } from '../associations.js';
import { expandSlots, nthEvery, randomProbabilities } from './slots.js';
import { hmarkSeed, MARK_BASE, type Flavor } from './emit.js';

/** ipset's "permanent" timeout for `--timeout` (ipset(8): 0 means the entry never expires). */
const PERMANENT = 0;

export interface AssociationRules {
  /** raw table: chain declarations and rules; the rules of LBC-PREROUTING come first. */
  raw: { chains: string[]; lines: string[] };
  /** nat: rules for LBC-PREROUTING (before every other service's), other chains, and LBC-POSTROUTING. */
  nat: { chains: string[]; prerouting: string[]; postrouting: string[]; lines: string[] };
  /** `create` lines of the sets. */
  sets: string[];
}

export const allSetName = (flavor: Flavor, svc: Service) => `${flavor.setPrefix}${svc.name}-all`;

/** The set of each primary backend, named by its address (8 hex digits). */
export function backendSetNames(flavor: Flavor, svc: Service): Map<Backend, string> {
  const taken = new Set<string>();
  const out = new Map<Backend, string>();
  // Sorted by address, so which IPv6 backend would get a salted tag does not depend on list order.
  for (const b of [...primaries(svc)].sort((x, y) => (x.address! < y.address! ? -1 : 1))) {
    const tag = shortAddressTag(b.address!, svc.family, taken);
    taken.add(tag);
    out.set(b, `${flavor.setPrefix}${svc.name}-${tag}`);
  }
  return out;
}

/**
 * Conntrack zones of a service: one per backend and one for what a full table cannot remember, each
 * in 1..65535 and distinct within the service (zones only need to keep one service's flows apart: two
 * services' flows differ in vip or port anyway). Derived from the name and address, so a backend keeps
 * its zone across loads.
 */
export function zonesOf(svc: Service): { backend: Map<Backend, number>; full: number } {
  const used = new Set<number>();
  const pick = (key: string) => {
    let z = 1 + (createHash('sha256').update(`lbc zone ${svc.name} ${key}`).digest().readUInt32BE(0) % 65535);
    while (used.has(z)) z = (z % 65535) + 1;
    used.add(z);
    return z;
  };
  const full = pick('full');
  const backend = new Map<Backend, number>();
  for (const b of [...primaries(svc)].sort((x, y) => (x.address! < y.address! ? -1 : 1))) backend.set(b, pick(b.address!));
  return { backend, full };
}

const hostLen = (f: Family) => (f === 'ipv4' ? 32 : 128);

/**
 * The hash size a set is created with. A set filled from the packet path never grows: ipset resizes
 * only on adds from user space (ip_set_core.c: call_ad() retries a full bucket after a resize,
 * ip_set_add() from the SET target does not), and a bucket holds at most 12 members, so a set created
 * with the default 1024 buckets stops at about 12,000 members whatever its maxelem (measured: 12,246
 * of 20,000). With max / 2 buckets (a power of two) the mean load is 2 and a full bucket refuses a
 * newcomer with a probability under 10⁻⁶ before the set reaches max; the bucket array costs 8 bytes
 * per bucket (4 MB for sbulb's 1,048,576).
 */
export function hashSize(max: number): number {
  let h = 1024;
  while (h * 2 < max) h *= 2;
  return h;
}

/**
 * The service's cascade over its primaries, each rule ending in `action(b)`, as lbc's own service
 * chains choose: statistic nth or random, or for hash the mark HMARK gave the packet (hmarkRule()).
 */
function cascade(svc: Service, action: (b: Backend) => string): string[] {
  const prim = primaries(svc);
  if (svc.mode === 'random') {
    const probs = randomProbabilities(prim.map((b) => b.weight));
    return prim.map((b, i) => `${i < probs.length ? `-m statistic --mode random --probability ${probs[i]} ` : ''}${action(b)}`);
  }
  const slots = expandSlots(prim.map((b) => b.weight));
  if (svc.mode === 'hash') return slots.map((bi, k) => `${k < slots.length - 1 ? `-m mark --mark 0x${(MARK_BASE + k).toString(16)} ` : ''}${action(prim[bi])}`);
  const every = nthEvery(slots.length);
  return slots.map((bi, k) => `${k < every.length ? `-m statistic --mode nth --every ${every[k]} --packet 0 ` : ''}${action(prim[bi])}`);
}

/**
 * A full table: the newcomer's slot by a hash of its address and port (HMARK, its mark), so it reaches
 * the same backend again after `conntrack -F`. HMARK orders the two addresses and the two ports before
 * hashing (xt_HMARK.c), so the client's `src,sport` and a backend's `dst,dport` toward it give the
 * same slot: a backend's packet to such a client is let through only from the backend of that slot.
 */
function fullMark(svc: Service, side: 'client' | 'backend'): string | null {
  const slots = expandSlots(primaries(svc).map((b) => b.weight)).length;
  if (slots < 2) return null;
  return `-j HMARK --hmark-tuple ${side === 'client' ? 'src,sport' : 'dst,dport'} --hmark-mod ${slots} --hmark-offset 0x${MARK_BASE.toString(16)} --hmark-rnd ${hmarkSeed(`${svc.name} associations`)}`;
}

/** The slots of the full-table hash each backend owns (its mark values). */
function fullSlots(svc: Service): Map<Backend, number[]> {
  const prim = primaries(svc);
  const out = new Map<Backend, number[]>(prim.map((b) => [b, []]));
  expandSlots(prim.map((b) => b.weight)).forEach((bi, k) => out.get(prim[bi])!.push(MARK_BASE + k));
  return out;
}

/** Mode hash: a client without an association gets the mark of its hash slot (as lbc's other hash services do, in mangle). */
function hmarkRule(svc: Service): string | null {
  const slots = expandSlots(primaries(svc).map((b) => b.weight)).length;
  if (svc.mode !== 'hash' || slots < 2) return null;
  const tuple = svc.hashFields.map((f) => ({ saddr: 'src', daddr: 'dst', sport: 'sport', dport: 'dport' })[f]).join(',');
  return `-j HMARK --hmark-tuple ${tuple} --hmark-mod ${slots} --hmark-offset 0x${MARK_BASE.toString(16)} --hmark-rnd ${hmarkSeed(svc.name)}`;
}

export function associationRules(flavor: Flavor, services: readonly Service[]): AssociationRules | null {
  const list = services.filter((s) => s.associations && s.family === flavor.family);
  if (list.length === 0) return null;
  const out: AssociationRules = { raw: { chains: [], lines: [] }, nat: { chains: [], prerouting: [], postrouting: [], lines: [] }, sets: [] };
  const rawPre: string[] = [];
  const rawRest: string[] = [];
  for (const svc of list) {
    const a = svc.associations!;
    const prim = primaries(svc);
    const sets = backendSetNames(flavor, svc);
    const zones = zonesOf(svc);
    const all = allSetName(flavor, svc);
    const T = a.idleSeconds ?? PERMANENT;
    const fam = flavor.family === 'ipv4' ? 'inet' : 'inet6';
    const vip = svc.vip!.address;
    const vipPort = flavor.family === 'ipv4' ? `${vip}:${svc.port}` : `[${vip}]:${svc.port}`;
    const set = (name: string, dir: 'src' | 'dst') => `-j SET --add-set ${name} ${dir},${dir} --exist --timeout ${T}`;
    const create = (name: string) => `create ${name} hash:ip,port family ${fam} hashsize ${hashSize(a.max)} maxelem ${a.max} timeout 0`;
    out.sets.push(create(all), ...prim.map((b) => create(sets.get(b)!)));

    const inChain = `LBC-A-${svc.name}`;
    const newChain = `LBC-AN-${svc.name}`;
    const known = (i: number) => `LBC-AK-${svc.name}-${i}`;
    const fromChain = (i: number) => `LBC-AB-${svc.name}-${i}`;
    const reply = (i: number) => `LBC-AR-${svc.name}-${i}`;
    const fullChain = `LBC-AF-${svc.name}`;
    const idx = new Map(prim.map((b, i) => [b, i]));
    const slotsOf = fullSlots(svc);
    out.raw.chains.push(inChain, newChain, fullChain, ...prim.flatMap((_, i) => [known(i), fromChain(i), reply(i)]));

    const iface = svc.interface ? ` -i ${svc.interface}` : '';
    rawPre.push(`-A LBC-PREROUTING -d ${vip}/${hostLen(svc.family)}${iface} -p udp -m udp --dport ${svc.port} -j ${inChain}`);
    prim.forEach((b, i) => rawPre.push(`-A LBC-PREROUTING -s ${b.address}/${hostLen(svc.family)} -p udp -m udp --sport ${svc.port} -j ${fromChain(i)}`));
    // A client's packet: its own association (goto: the rest of this chain is skipped), a new one, or none.
    for (const [i, b] of prim.entries()) rawRest.push(`-A ${inChain} -m set --match-set ${sets.get(b)} src,src -g ${known(i)}`);
    const hmark = hmarkRule(svc);
    if (hmark) rawRest.push(`-A ${inChain} ${hmark}`);
    rawRest.push(`-A ${inChain} ${set(all, 'src')}`, `-A ${inChain} -m set --match-set ${all} src,src -g ${newChain}`);
    const clientMark = fullMark(svc, 'client');
    if (clientMark) rawRest.push(`-A ${inChain} ${clientMark}`);
    rawRest.push(`-A ${inChain} -g ${fullChain}`);
    rawRest.push(`-A ${fullChain} -j CT --zone ${zones.full}`);
    for (const r of cascade(svc, (b) => `-g ${known(idx.get(b)!)}`)) rawRest.push(`-A ${newChain} ${r}`);
    prim.forEach((b, i) => {
      const own = sets.get(b)!;
      rawRest.push(`-A ${known(i)} ${set(own, 'src')}`, `-A ${known(i)} ${set(all, 'src')}`, `-A ${known(i)} -j CT --zone ${zones.backend.get(b)}`);
      // A backend's packet: to the balancer itself it is none of the service's business.
      rawRest.push(`-A ${fromChain(i)} -m addrtype --dst-type LOCAL -j RETURN`, `-A ${fromChain(i)} -m set --match-set ${own} dst,dst -g ${reply(i)}`);
      for (const o of prim) if (o !== b) rawRest.push(`-A ${fromChain(i)} -m set --match-set ${sets.get(o)} dst,dst -j DROP`);
      if (a.backendInitiated) {
        rawRest.push(`-A ${fromChain(i)} ${set(all, 'dst')}`, `-A ${fromChain(i)} -m set --match-set ${all} dst,dst -g ${reply(i)}`);
        const m = fullMark(svc, 'backend');
        if (m) {
          rawRest.push(`-A ${fromChain(i)} ${m}`, ...slotsOf.get(b)!.map((mark) => `-A ${fromChain(i)} -m mark --mark 0x${mark.toString(16)} -g ${fullChain}`), `-A ${fromChain(i)} -j DROP`);
        }
      }
      // Replies to what a full table could not remember live in its zone.
      rawRest.push(`-A ${fromChain(i)} -g ${fullChain}`);
      rawRest.push(`-A ${reply(i)} ${set(own, 'dst')}`, `-A ${reply(i)} ${set(all, 'dst')}`, `-A ${reply(i)} -j CT --zone ${zones.backend.get(b)}`);
    });

    const dnat = `LBC-AD-${svc.name}`;
    const snat = `LBC-AS-${svc.name}`;
    out.nat.chains.push(dnat, snat);
    out.nat.prerouting.push(`-A LBC-PREROUTING -d ${vip}/${hostLen(svc.family)}${iface} -p udp -m udp --dport ${svc.port} -j ${dnat}`);
    for (const b of prim) out.nat.lines.push(`-A ${dnat} -m set --match-set ${sets.get(b)} src,src -j DNAT --to-destination ${b.address}`);
    // Not remembered (a full table): the backend of the slot the full-table hash marked.
    for (const r of cascade({ ...svc, mode: 'hash' }, (b) => `-j DNAT --to-destination ${b.address}`)) out.nat.lines.push(`-A ${dnat} ${r}`);
    out.nat.postrouting.push(`-A LBC-POSTROUTING -p udp -m udp --sport ${svc.port} -j ${snat}`);
    for (const b of prim) {
      const src = `-A ${snat} -s ${b.address}/${hostLen(svc.family)} -p udp`;
      out.nat.lines.push(a.backendInitiated ? `${src} -j SNAT --to-source ${vipPort}` : `${src} -m set --match-set ${sets.get(b)} dst,dst -j SNAT --to-source ${vipPort}`);
    }
  }
  out.raw.lines = [...rawPre, ...rawRest];
  return out;
}
