/**
 * UDP associations for nftables (seed 004): one association per client address and port, kept in
 * dynamic sets of lbc's second table `inet lbc_assoc`, and packets rewritten without connection
 * tracking, so associations outlive `conntrack -F`, reloads and every lbc apply.
 *
 * Per service S (vip V, port P, backends B_i on port P):
 * - set `all_S` (size = max) holds every association of S; set `a_S_<B>` per backend the clients
 *   associated with it. Keys are `saddr . sport` of the client; every packet either way refreshes
 *   both (`update`), so `idle` counts from the last packet in either direction.
 * - prerouting, priority -300 (raw: before conntrack, nft(8) CHAINS), chain `pre`:
 *   client → V:P (`to4`/`to6` → `in_S`): a known client goes to its backend; a new one is counted in
 *   all_S (`update` fails when the set is full: nft_dynset_eval() adds only below `size`), chosen by
 *   the service's mode in `new_S` and remembered in a_S_<B>. The destination address is rewritten
 *   in place (`ip daddr set`; nft fixes the IP and UDP checksums) and the packet is `notrack`ed.
 *   B_i:P → client (`from4`/`from6` → `out_S_<B>`): to its own client: refreshed and notracked; to a
 *   client of another backend: dropped; to a client with no association: with backend-initiated, a new
 *   association of B_i; otherwise left alone (tracked as any other packet).
 * - postrouting, chain `post`: an untracked packet from B_i:P leaves with source V (`vip4`/`vip6` →
 *   `vip_S`). The source is rewritten after routing: rewritten in prerouting, a packet from a local
 *   vip would be a martian (the kernel drops packets arriving with a local source address).
 * - A full table: a newcomer is not remembered. Its packet is left to connection tracking: chain
 *   `nat_pre` (nat prerouting, priority -101, before lbc's own nat chains at -100) sends it to the
 *   backend a jhash of its address and port picks (the same one on every packet, and again after a
 *   flush while the backends are the same), and conntrack carries the replies back from the vip. With
 *   backend-initiated, a backend's packet to such a client is let through to conntrack only if the
 *   hash leads to that backend (chain `nat_post` then sends a new flow from V:P), and dropped otherwise.
 *
 * Keeping the state: nothing a load does deletes or recreates the table or a set that stays. The file
 * declares the table and its sets and chains (`add` semantics: an existing set keeps its elements,
 * and `size` and `timeout` change in place), flushes the chains and maps, and fills them again.
 * A set's flags cannot change in place (EEXIST), so every set has `flags dynamic,timeout` and a
 * timeout: `idle`, or NEVER_SECONDS for "never" (an element added while a set had no timeout never
 * gets one, and a refresh under timeout 0 expires an element at once: nft_dynset_eval()). Set names
 * carry the backend's address, not its position, so removing a backend leaves the others' sets alone.
 * `lbc apply` also deletes what left the spec, and the departing backend's clients from all_S, in the
 * same transaction (associationsApplyScript()).
 *
 * Why sets per backend and not one map client → backend: nft 1.0.6 cannot write a map keyed by an
 * IPv6 address and a port from the packet path (it aborts: netlink_gen_expr register assertion), a
 * map element's value never changes on `update`, and removing one backend's clients from a map means
 * listing all of them. The README's Performance section has the measurements of the alternatives.
 */
import { LbcError } from '../../diagnostics/diagnostic.js';
import type { Backend, Family, Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import type { ApplyContext } from '../target.js';
import { renderTemplate } from '../template.js';
import { commentText } from '../text.js';
import { reduceWeights } from '../weights.js';
import { hashSeed, hex32 } from './layout.js';
import { addressHex } from '../associations.js';

export const ASSOC_TABLE = 'inet lbc_assoc';
/** "Never" as a set timeout: ten years, beyond any kernel's uptime (see the header for why not 0). */
export const NEVER_SECONDS = 3650 * 86_400;
/** The first line of the associations section of nftables.nft: where lbc's own table ends. */
export const SECTION_START = '# --- UDP associations: table inet lbc_assoc, kept across loads ---';

export interface AssocSet {
  name: string;
  /** `typeof` key, e.g. "ip saddr . udp sport". */
  key: string;
  size: number;
  timeoutSeconds: number;
}

export interface AssocMap {
  name: string;
  type: string;
  /** "KEY : VERDICT" */
  elements: string[];
}

export interface AssocChain {
  name: string;
  /** Base chain definition ("type filter hook prerouting priority -300; policy accept;"), or null. */
  def: string | null;
  comments: string[];
  rules: string[];
}

export interface AssocLayout {
  sets: AssocSet[];
  maps: AssocMap[];
  chains: AssocChain[];
}

const ip = (f: Family) => (f === 'ipv4' ? 'ip' : 'ip6');
const fam = (f: Family) => (f === 'ipv4' ? '4' : '6');
const clientKey = (f: Family) => `${ip(f)} saddr . udp sport`;
/** The same client seen as the destination of a backend's packet. */
const peerKey = (f: Family) => `${ip(f)} daddr . udp dport`;

export const allSet = (svc: Service) => `all_${svc.name}`;
export const backendSet = (svc: Service, b: Backend) => `a_${svc.name}_${addressHex(b.address!, svc.family)}`;

const span = (lo: number, hi: number) => (lo === hi ? `${lo}` : `${lo}-${hi}`);

function describe(svc: Service): string[] {
  const a = svc.associations!;
  const prim = primaries(svc);
  return [
    `service ${svc.name}: udp ${svc.family === 'ipv6' ? `[${svc.vip!.address}]` : svc.vip!.address}:${svc.port}, associations per client address and port, ${svc.mode} over ${prim.length} backend${prim.length === 1 ? '' : 's'}`,
    `  at most ${a.max} associations${a.idleSeconds === null ? ', never idle' : `, forgotten after ${a.idleSeconds}s without a packet`}${a.backendInitiated ? '; backends may start them' : ''}`,
    ...prim.map((b) => `  backend ${b.address} (set ${backendSet(svc, b)})`),
  ].map(commentText);
}

/** The cascade choosing a new association's backend: conditions by the service's mode, as lbc's own chains do. */
function selection(svc: Service, key: string, action: (b: Backend) => string): string[] {
  const prim = primaries(svc);
  const w = reduceWeights(prim.map((b) => b.weight));
  const total = w.reduce((s, x) => s + x, 0);
  const fields = { saddr: `${ip(svc.family)} saddr`, daddr: `${ip(svc.family)} daddr`, sport: 'udp sport', dport: 'udp dport' } as const;
  const hashed = svc.hashFields.map((f) => fields[f]).join(' . ');
  let assigned = 0;
  return prim.map((b, i) => {
    let cond = '';
    if (i < prim.length - 1) {
      if (svc.mode === 'hash') cond = `jhash ${hashed} mod ${total} seed ${hex32(hashSeed(svc.name))} ${span(assigned, assigned + w[i] - 1)} `;
      else cond = `numgen ${svc.mode === 'nth' ? 'inc' : 'random'} mod ${total - assigned} ${span(0, w[i] - 1)} `;
    }
    assigned += w[i];
    void key;
    return `${cond}${action(b)}`;
  });
}

/**
 * The full-table fallback: the hash range of each backend for a client key (weights as shares of the
 * hash space). The same key expression hashed from either side gives the same value: both are the
 * address and the port in the same registers (the payload expression zeroes a partial register).
 */
function fallbackRanges(svc: Service, key: string): Array<{ b: Backend; cond: string }> {
  const prim = primaries(svc);
  const w = reduceWeights(prim.map((b) => b.weight));
  const total = w.reduce((s, x) => s + x, 0);
  const seed = hex32(hashSeed(`${svc.name} associations`));
  let at = 0;
  return prim.map((b, i) => {
    const cond = prim.length === 1 ? '' : `jhash ${key} mod ${total} seed ${seed} ${span(at, at + w[i] - 1)} `;
    at += w[i];
    return { b, cond };
  });
}

export function buildAssociations(services: readonly Service[]): AssocLayout | null {
  const assoc = services.filter((s) => s.associations);
  if (assoc.length === 0) return null;
  const sets: AssocSet[] = [];
  const chains: AssocChain[] = [];
  const maps = new Map<string, AssocMap>();
  const element = (name: string, type: string, el: string) => {
    if (!maps.has(name)) maps.set(name, { name, type, elements: [] });
    maps.get(name)!.elements.push(el);
  };
  const pre: string[] = [];
  const post: string[] = [];
  const natPre: string[] = [];
  const natPost: string[] = [];
  for (const family of ['ipv4', 'ipv6'] as Family[]) {
    const list = assoc.filter((s) => s.family === family);
    if (list.length === 0) continue;
    const f = fam(family);
    const addrType = family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr';
    const epType = `type ${addrType} . inet_service : verdict`;
    pre.push(`meta l4proto udp ${ip(family)} daddr . udp dport vmap @to${f}`, `meta l4proto udp ${ip(family)} saddr . udp sport vmap @from${f}`);
    post.push(`ct state untracked meta l4proto udp ${ip(family)} saddr . udp sport vmap @vip${f}`);
    natPre.push(`meta l4proto udp ${ip(family)} daddr . udp dport vmap @full${f}`);
    if (list.some((s) => s.associations!.backendInitiated)) natPost.push(`meta l4proto udp ${ip(family)} saddr . udp sport vmap @bsnat${f}`);
    for (const svc of list) {
      const a = svc.associations!;
      const prim = primaries(svc);
      const k = clientKey(family);
      const pk = peerKey(family);
      const all = allSet(svc);
      const timeoutSeconds = a.idleSeconds ?? NEVER_SECONDS;
      sets.push({ name: all, key: k, size: a.max, timeoutSeconds });
      for (const b of prim) sets.push({ name: backendSet(svc, b), key: k, size: a.max, timeoutSeconds });
      const vipKey = `${svc.vip!.address} . ${svc.port}`;
      element(`to${f}`, epType, `${vipKey} : goto in_${svc.name}`);
      element(`full${f}`, epType, `${vipKey} : goto full_${svc.name}`);
      const to = (b: Backend) => `${ip(family)} daddr set ${b.address} notrack accept`;

      const inRules: string[] = [];
      if (svc.interface) inRules.push(`iifname != "${svc.interface}" return`);
      for (const b of prim) {
        const set = backendSet(svc, b);
        inRules.push(`${k} @${set} update @${set} { ${k} } update @${all} { ${k} } ${to(b)}`);
      }
      // Fails when all_S is full: the packet then goes on to conntrack and the fallback chain.
      inRules.push(`update @${all} { ${k} } goto new_${svc.name}`);
      chains.push({ name: `in_${svc.name}`, def: null, comments: describe(svc), rules: inRules });
      chains.push({
        name: `new_${svc.name}`,
        def: null,
        comments: [`service ${svc.name}: a new association, chosen by mode ${svc.mode} and remembered with its backend`],
        rules: selection(svc, k, (b) => `update @${backendSet(svc, b)} { ${k} } ${to(b)}`),
      });
      chains.push({
        name: `full_${svc.name}`,
        def: null,
        comments: [`service ${svc.name}: its table is full; a newcomer goes where a hash of its address and port leads, not remembered (conntrack keeps its flow)`],
        rules: [...inRules.slice(0, svc.interface ? 1 : 0), ...fallbackRanges(svc, k).map(({ b, cond }) => `${cond}dnat ${ip(family)} to ${b.address}`)],
      });
      chains.push({ name: `vip_${svc.name}`, def: null, comments: [], rules: [`${ip(family)} saddr set ${svc.vip!.address}`] });
      if (a.backendInitiated) chains.push({ name: `bsnat_${svc.name}`, def: null, comments: [], rules: [`snat ${ip(family)} to ${svc.vip!.address}`] });

      const ranges = fallbackRanges(svc, pk);
      for (const b of prim) {
        const own = backendSet(svc, b);
        const ep = `${b.address} . ${svc.port}`;
        element(`from${f}`, epType, `${ep} : goto out_${svc.name}_${addressHex(b.address!, family)}`);
        element(`vip${f}`, epType, `${ep} : goto vip_${svc.name}`);
        if (a.backendInitiated) element(`bsnat${f}`, epType, `${ep} : goto bsnat_${svc.name}`);
        const rules = [
          // A backend talking to the balancer itself is none of the service's business.
          'fib daddr type local return',
          `${pk} @${own} update @${own} { ${pk} } update @${all} { ${pk} } notrack accept`,
          ...prim.filter((o) => o !== b).map((o) => `${pk} @${backendSet(svc, o)} drop`),
        ];
        if (a.backendInitiated) {
          const mine = ranges.find((r) => r.b === b)!;
          rules.push(
            `update @${all} { ${pk} } update @${own} { ${pk} } notrack accept`,
            // Full: only the backend the client's hash leads to may reach it, through conntrack.
            ...(mine.cond ? [`${mine.cond}return`, 'drop'] : []),
          );
        }
        chains.push({ name: `out_${svc.name}_${addressHex(b.address!, family)}`, def: null, comments: [], rules });
      }
    }
  }
  const base: AssocChain[] = [
    { name: 'pre', def: 'type filter hook prerouting priority -300; policy accept;', comments: ['Before connection tracking: associated packets are rewritten here and never tracked.'], rules: pre },
    { name: 'post', def: 'type filter hook postrouting priority 100; policy accept;', comments: ["A backend's untracked packet leaves from its service's vip."], rules: post },
    { name: 'nat_pre', def: 'type nat hook prerouting priority -101; policy accept;', comments: ['What a full association table could not remember, balanced by hash through conntrack.'], rules: natPre },
  ];
  if (natPost.length) base.push({ name: 'nat_post', def: 'type nat hook postrouting priority 100; policy accept;', comments: ['A full table: a backend-initiated flow that could not be remembered leaves from the vip.'], rules: natPost });
  return { sets, maps: [...maps.values()], chains: [...base, ...chains] };
}

export function renderAssociations(layout: AssocLayout): string {
  return renderTemplate('nftables', 'associations', {
    start: SECTION_START,
    table: ASSOC_TABLE,
    sets: layout.sets.map((s) => ({ ...s, timeout: s.timeoutSeconds % 86_400 === 0 ? `${s.timeoutSeconds / 86_400}d` : `${s.timeoutSeconds}s` })),
    maps: layout.maps,
    chains: layout.chains,
  });
}

// ---------------------------------------------------------------------------------------------
// Applying: what the file declares, plus what only the host knows (what left the spec)

/** The emitted file cut where lbc's own table ends and the associations section begins. */
export function splitAssociations(text: string): { main: string; section: string } {
  const at = text.indexOf(`\n${SECTION_START}\n`);
  return at < 0 ? { main: text, section: '' } : { main: text.slice(0, at + 1), section: text.slice(at + 1) };
}

interface Model {
  sets: Map<string, string>;
  maps: Map<string, string>;
  chains: Map<string, string>;
  /** Definitions (the declaring block's text per object). */
  decl: Map<string, string>;
}

const BLOCK = /^\t(set|map|chain) ([A-Za-z0-9_]+) \{\n([\s\S]*?)^\t\}\n/gm;

/**
 * The objects of an associations section: each set, map and chain with the text that fills it (the
 * second table block) and declares it (the first). Sections come from renderAssociations() only.
 */
function parseSection(section: string): Model | null {
  const parts = section.split(`\ntable ${ASSOC_TABLE} {\n`);
  if (section === '') return { sets: new Map(), maps: new Map(), chains: new Map(), decl: new Map() };
  if (parts.length !== 3) return null;
  const m: Model = { sets: new Map(), maps: new Map(), chains: new Map(), decl: new Map() };
  for (const [i, part] of [parts[1], parts[2]].entries()) {
    for (const b of part.matchAll(BLOCK)) {
      const [, kind, name, body] = b;
      if (i === 0) {
        const items = body.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
        m.decl.set(name, `${kind} ${ASSOC_TABLE} ${name} { ${items.map((l) => (l.endsWith(';') ? l : `${l};`)).join(' ')} }`);
        if (kind === 'set') m.sets.set(name, body);
      } else if (kind === 'map') m.maps.set(name, body);
      else if (kind === 'chain') m.chains.set(name, body);
    }
  }
  return m;
}

/**
 * One table of `nft -t list ruleset` (terse: set and map elements left out), or null when there is no
 * such table. Terse listings are the cheap ones: nft 1.0.6 fills its cache with every set element for
 * `list tables`, `list table`, `list map` or `list chain` (measured: 2-4 s with 100,000 associations,
 * growing with them), but not for a terse listing of the ruleset.
 */
export async function terseTable(ctx: ApplyContext, table: string): Promise<string | null> {
  const listing = await ctx.query(['nft', '-t', 'list', 'ruleset']);
  const start = listing.indexOf(`table ${table} {\n`);
  if (start < 0 || (start > 0 && listing[start - 1] !== '\n')) return null;
  const end = listing.indexOf('\n}', start);
  return listing.slice(start, end < 0 ? listing.length : end + 2);
}

/** Names of what the kernel's table inet lbc_assoc holds now, or null when there is no such table. */
async function kernelObjects(ctx: ApplyContext): Promise<{ sets: Set<string>; maps: Set<string>; chains: Set<string> } | null> {
  const listing = await terseTable(ctx, ASSOC_TABLE);
  if (listing === null) return null;
  const out = { sets: new Set<string>(), maps: new Set<string>(), chains: new Set<string>() };
  for (const m of listing.matchAll(/^\t(set|map|chain) (\S+) \{$/gm)) out[`${m[1]}s` as 'sets' | 'maps' | 'chains'].add(m[2]);
  return out;
}

/** The elements of a set, as key text for `delete element` ("10.0.0.1 . 4000", "fd00::1 . 4000"). */
export async function setElements(ctx: ApplyContext, set: string): Promise<string[]> {
  const json = JSON.parse(await ctx.query(['nft', '-j', 'list', 'set', ...ASSOC_TABLE.split(' '), set])) as { nftables: Array<Record<string, unknown>> };
  const s = json.nftables.find((o) => 'set' in o)?.set as { elem?: unknown[] } | undefined;
  const keys: string[] = [];
  for (const e of s?.elem ?? []) {
    const val = (e as { elem?: { val: unknown } }).elem?.val ?? e;
    const concat = (val as { concat?: unknown[] }).concat;
    if (!concat || concat.length !== 2) throw new LbcError([{ code: 'LBC5001', severity: 'error', message: `nftables: unexpected element in set ${set}: ${JSON.stringify(e).slice(0, 80)}` }]);
    keys.push(`${String(concat[0])} . ${Number(concat[1])}`);
  }
  return keys;
}

/**
 * The commands that bring table inet lbc_assoc from what the kernel holds to `newText`'s section,
 * keeping every association of the sets that stay: declare everything (add: existing sets keep their
 * elements), flush and refill the chains and maps that differ from `oldText`'s section (all of them
 * when there is no old text), then delete what left: chains (no map names them once refilled), each
 * departing backend's clients from its service's all_S (listed just before; a key that expired in
 * between makes the batch fail, and the caller lists again), its set, and maps. Empty string when
 * there is nothing to do.
 */
export async function associationsApplyScript(ctx: ApplyContext, oldText: string | null, newText: string): Promise<string> {
  const { script, refilled, removed } = await associationsPlan(ctx, oldText, newText);
  if (script && (refilled || removed)) ctx.log(`nftables: associations: ${refilled} chain(s) and map(s) refilled, ${removed} object(s) removed; the associations of what stays are kept`);
  return script;
}

async function associationsPlan(ctx: ApplyContext, oldText: string | null, newText: string): Promise<{ script: string; refilled: number; removed: number }> {
  const next = parseSection(splitAssociations(newText).section);
  if (!next) throw new LbcError([{ code: 'LBC5001', severity: 'error', message: 'nftables: the associations section of the ruleset is not in the layout lbc emits' }]);
  const old = oldText === null ? null : parseSection(splitAssociations(oldText).section);
  const have = await kernelObjects(ctx);
  if (!have && next.decl.size === 0) return { script: '', refilled: 0, removed: 0 };
  const T = ASSOC_TABLE;
  const out: string[] = [`add table ${T}`];
  let refilled = 0;
  let removed = 0;
  for (const d of next.decl.values()) out.push(`add ${d}`);
  for (const [name, body] of next.maps) {
    if (have && old && old.maps.get(name) === body && have.maps.has(name)) continue;
    refilled++;
    out.push(`flush map ${T} ${name}`);
    const els = /elements = \{\n([\s\S]*?)\n\t\t\}/.exec(body)?.[1].split('\n').map((l) => l.trim().replace(/,$/, '')) ?? [];
    if (els.length) out.push(`add element ${T} ${name} { ${els.join(', ')} }`);
  }
  for (const [name, body] of next.chains) {
    if (have && old && old.chains.get(name) === body && have.chains.has(name)) continue;
    refilled++;
    out.push(`flush chain ${T} ${name}`);
    for (const l of body.split('\n')) {
      const r = l.trim();
      if (r && !r.startsWith('#') && !r.startsWith('type ')) out.push(`add rule ${T} ${name} ${r}`);
    }
  }
  if (have) {
    for (const c of [...have.chains].filter((c) => !next.chains.has(c)).sort()) {
      out.push(`flush chain ${T} ${c}`, `delete chain ${T} ${c}`);
      removed++;
    }
    for (const s of [...have.sets].filter((s) => !next.sets.has(s)).sort()) {
      // a_S_<B> of a service that stays: its clients leave all_S with it, or they would fill it for good.
      const svc = /^a_(.+)_[0-9a-f]+$/.exec(s)?.[1];
      if (svc && next.sets.has(`all_${svc}`)) {
        const keys = await setElements(ctx, s);
        if (keys.length) out.push(`delete element ${T} all_${svc} { ${keys.join(', ')} }`);
        ctx.log(`nftables: ${keys.length} association(s) of a departed backend of ${svc} are forgotten (set ${s})`);
      }
      out.push(`delete set ${T} ${s}`);
      removed++;
    }
    for (const m of [...have.maps].filter((m) => !next.maps.has(m)).sort()) {
      out.push(`delete map ${T} ${m}`);
      removed++;
    }
  }
  return { script: `${out.join('\n')}\n`, refilled, removed };
}
