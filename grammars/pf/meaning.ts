/**
 * What a parsed ruleset does to new connections, per balanced service: the
 * destination it catches, how the backend is chosen, and the share of new
 * connections each backend (address, port) receives. This is the semantic
 * model the round-trip tests compare with the IR.
 *
 * Kernel behaviour modelled here (read from the sources, cited where used):
 * - round-robin over a list or table visits every entry in turn; an inline
 *   list keeps repeated entries, so repetition weights (FreeBSD pf_lb.c
 *   pf_map_addr, PF_POOL_ROUNDROBIN walks rpool->list); OpenBSD table weights
 *   give weighted round-robin (pf_lb.c, pfr_pool_get with weights);
 * - random / source-hash / bitmask over one CIDR block choose among the
 *   block's addresses (PF_POOLMASK);
 * - `probability p` on a quick rule is an independent draw per rule, so a
 *   cascade p1, p2, … gives backend i the share p_i·Π_{j<i}(1−p_j);
 * - a redirection port with a single matched port always yields the first
 *   port of the range: nport = (dport − dst.port[0]) mod size + proxy_port[0]
 *   (pf_lb.c, PF_RDR), so a range is an offset map, not a rotation; with a
 *   matched range LO:HI, `port LO:*` (proxy range as wide as the matched one,
 *   starting at LO) and no redirection port at all both leave the port as the
 *   client chose it ("kept");
 * - `from <table>` on the translation rule balances only the table's sources;
 *   the others are refused when a quick `block … from ! <table>` with the same
 *   destination drops them (they were not translated, so the filter sees the vip).
 */
import { Address4, Address6 } from 'ip-address';
import type { FilterStmt, HostSpec, NatStmt, NatTarget, PfAst, PfFamily, Pool, PoolType, RdrStmt, TableStmt } from './ast.js';

export interface PfTargetShare {
  address: string;
  /** 'kept': the destination port the client chose (a service with several ports). */
  port: number | 'kept';
  /** Expected fraction of new connections (0..1). */
  share: number;
}

export type PfDestination =
  | { kind: 'any' }
  | { kind: 'interface'; name: string }
  | { kind: 'prefix'; address: string; prefixLength: number }
  | { kind: 'table'; name: string };

export interface PfServiceMeaning {
  /** Line of the first rule of the service. */
  line: number;
  family: 'ipv4' | 'ipv6';
  protocol: 'tcp' | 'udp';
  interface: string | null;
  destination: PfDestination;
  port: number;
  /** The destination ports the rule catches (from === to for one). */
  ports: { from: number; to: number };
  /** `from <table>`: the client blocks of that table; null: from any. */
  allow: string[] | null;
  /** A quick block (drop) rule refuses every other client of this destination. */
  othersRefused: boolean;
  /** 'single': one backend, no choice; 'probability': a cascade of probability rules. */
  choice: 'single' | 'probability' | PoolType;
  hashKey: string | null;
  sticky: boolean;
  /** src.track seconds that apply to this service's sticky entries: per rule, else `set timeout src.track`, else null (pf's default). */
  stickyTimeoutSeconds: number | null;
  /** Aggregated by (address, port), sorted by address then port. */
  targets: PfTargetShare[];
  /** Share of new connections the rules catch but do not redirect (an open-ended cascade). */
  unredirected: number;
  /** Whether the translated connection is passed: `rdr pass`, a pass rule `tagged` with the rdr tag, or pass … rdr-to. */
  passed: boolean;
  /** Tables whose contents the ruleset does not give (their entries are unknown). */
  unknownTables: string[];
  /**
   * The source the translated connections get on their way out: a `nat … tagged T ->` rule (FreeBSD) or a
   * `pass out … tagged T nat-to` rule (OpenBSD) for the tag the service's rules set; null without one.
   */
  sourceNat: PfSourceNat | null;
}

export type PfSourceNat = { kind: 'interface'; name: string } | { kind: 'address'; address: string };

function sourceNatOf(target: NatTarget | null | undefined): PfSourceNat | null {
  if (!target) return null;
  return target.kind === 'interface' ? { kind: 'interface', name: target.name } : { kind: 'address', address: canonical(target.address) };
}

export class PfMeaningError extends Error {}

const MAX_EXPAND = 4096;

function family(f: PfFamily): 'ipv4' | 'ipv6' {
  return f === 'inet' ? 'ipv4' : 'ipv6';
}

function canonical(address: string): string {
  return address.includes(':') ? new Address6(address).correctForm() : new Address4(address).correctForm();
}

/** Every address of a block (a /32 or /128 gives itself). */
export function expandPrefix(address: string, prefixLength: number): string[] {
  const v6 = address.includes(':');
  const bits = v6 ? 128 : 32;
  const size = 1n << BigInt(bits - prefixLength);
  if (size > BigInt(MAX_EXPAND)) throw new PfMeaningError(`block ${address}/${prefixLength} too large to model`);
  const base = v6 ? new Address6(address).bigInt() : new Address4(address).bigInt();
  const start = (base >> BigInt(bits - prefixLength)) << BigInt(bits - prefixLength);
  const out: string[] = [];
  for (let i = 0n; i < size; i++) {
    const n = start + i;
    out.push(v6 ? Address6.fromBigInt(n).correctForm() : Address4.fromBigInt(n).correctForm());
  }
  return out;
}

function aggregate(list: PfTargetShare[]): PfTargetShare[] {
  const m = new Map<string, PfTargetShare>();
  for (const t of list) {
    const k = `${t.address}|${t.port}`;
    const prev = m.get(k);
    if (prev) prev.share += t.share;
    else m.set(k, { ...t });
  }
  return [...m.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : String(a.port) < String(b.port) ? -1 : String(a.port) > String(b.port) ? 1 : 0));
}

/** The port a translated connection goes to (pf_lb.c, PF_RDR: offset map, fixed port, or unchanged). */
function targetPort(pool: Pool, dst: { from: number; to: number }): number | 'kept' {
  const range = dst.to !== dst.from;
  if (!pool.port) return range ? 'kept' : dst.from;
  if (!range || pool.port.to === null) return pool.port.from;
  const size = pool.port.to === '*' ? dst.to - dst.from + 1 : pool.port.to - pool.port.from + 1;
  if (pool.port.from === dst.from && size === dst.to - dst.from + 1) return 'kept';
  throw new PfMeaningError(`a matched port range mapped by offset onto another range is not modelled`);
}

interface PoolMeaning {
  choice: PfServiceMeaning['choice'];
  targets: PfTargetShare[];
  unknownTables: string[];
}

function poolMeaning(pool: Pool, dst: { from: number; to: number }, tables: Map<string, TableStmt>, dialect: PfAst['dialect']): PoolMeaning {
  const port = targetPort(pool, dst);
  const entries: { address: string; weight: number }[] = [];
  const unknownTables: string[] = [];
  let single = false;
  if (pool.table) {
    const t = tables.get(pool.table);
    if (!t || t.entries === null) unknownTables.push(pool.table);
    for (const e of t?.entries ?? []) {
      const w = dialect === 'openbsd' && e.weight ? e.weight : 1;
      for (const a of expandPrefix(e.address, e.prefixLength)) entries.push({ address: a, weight: w });
    }
  } else {
    for (const h of pool.hosts) {
      const w = dialect === 'openbsd' && h.weight ? h.weight : 1;
      for (const a of expandPrefix(h.address, h.prefixLength)) entries.push({ address: a, weight: w });
    }
    single = pool.hosts.length === 1 && entries.length === 1;
  }
  // OpenBSD turns an inline list into a table, which cannot hold an address twice (collapse_redirspec, add_opt_table).
  if (dialect === 'openbsd' && !pool.table) {
    const seen = new Map<string, { address: string; weight: number }>();
    for (const e of entries) seen.set(e.address, e);
    entries.splice(0, entries.length, ...seen.values());
  }
  const total = entries.reduce((s, e) => s + e.weight, 0);
  const multi = pool.table !== null || pool.hosts.length > 1;
  const type: PoolType = pool.type ?? (multi ? 'round-robin' : 'bitmask');
  const choice: PoolMeaning['choice'] = single ? 'single' : type;
  return {
    choice,
    targets: entries.map((e) => ({ address: canonical(e.address), port, share: total ? e.weight / total : 0 })),
    unknownTables,
  };
}

function destinationOf(h: HostSpec | null): PfDestination {
  if (!h || h.kind === 'any') return { kind: 'any' };
  if (h.kind === 'not') throw new PfMeaningError('a negated translation destination is not modelled');
  if (h.kind === 'interface') return { kind: 'interface', name: h.name };
  if (h.kind === 'table') return { kind: 'table', name: h.name };
  return { kind: 'prefix', address: canonical(h.address), prefixLength: h.prefixLength };
}

function familyOf(st: RdrStmt | FilterStmt, pool: Pool): 'ipv4' | 'ipv6' {
  if (st.af) return family(st.af);
  if (st.dst?.kind === 'address') return family(st.dst.family);
  if (pool.hosts[0]) return family(pool.hosts[0].family);
  throw new PfMeaningError(`line ${st.line}: address family not determined`);
}

function destinationPorts(st: RdrStmt | FilterStmt): { from: number; to: number } {
  if (!st.dstPort) throw new PfMeaningError(`line ${st.line}: translation without a destination port is not a balanced service`);
  if (!st.proto) throw new PfMeaningError(`line ${st.line}: protocol not given`);
  if (st.proto !== 'tcp' && st.proto !== 'udp') throw new PfMeaningError(`line ${st.line}: a ${st.proto} rule is not a balanced service`);
  return { from: st.dstPort.from, to: st.dstPort.to ?? st.dstPort.from };
}

/** The sources a translation rule takes: any, or the blocks of one table. */
function sourcesOf(st: RdrStmt | FilterStmt, tables: Map<string, TableStmt>): string[] | null {
  if (!st.src || st.src.kind === 'any') return null;
  if (st.src.kind !== 'table') throw new PfMeaningError(`line ${st.line}: translation sources other than a table are not modelled`);
  const t = tables.get(st.src.name);
  if (!t || t.entries === null) throw new PfMeaningError(`line ${st.line}: source table <${st.src.name}> has no contents here`);
  return t.entries.map((e) => `${canonical(e.address)}/${e.prefixLength}`).sort();
}

/** A quick `block [drop] in … from ! <table>` with the translation rule's destination refuses the table's complement. */
function refusesOthers(st: RdrStmt | FilterStmt, filters: FilterStmt[]): boolean {
  if (st.src?.kind !== 'table') return false;
  const table = st.src.name;
  const same = (f: FilterStmt) => JSON.stringify([f.interface, f.af, f.proto, f.dst, f.dstPort]) === JSON.stringify([st.interface, st.af, st.proto, st.dst, st.dstPort]);
  return filters.some(
    (f) => f.action === 'block' && f.blockPolicy !== 'return' && f.direction === 'in' && f.quick && f.src?.kind === 'not' && f.src.host.kind === 'table' && f.src.host.name === table && same(f),
  );
}

function matchKey(st: FilterStmt): string {
  return JSON.stringify([st.action, st.direction, st.interface, st.af, st.proto, st.src, st.srcPort, st.dst, st.dstPort, st.tagged]);
}

/** The meaning of every balanced service in the ruleset, in rule order. */
export function pfMeaning(ast: PfAst): PfServiceMeaning[] {
  const tables = new Map<string, TableStmt>();
  let globalSrcTrack: number | null = null;
  for (const s of ast.statements) {
    if (s.kind === 'table') tables.set(s.name, s);
    if (s.kind === 'set-timeout' && s.name === 'src.track') globalSrcTrack = s.seconds;
  }
  const filters = ast.statements.filter((s): s is FilterStmt => s.kind === 'filter');
  const nats = ast.statements.filter((s): s is NatStmt => s.kind === 'nat');
  const out: PfServiceMeaning[] = [];

  for (const st of ast.statements) {
    if (st.kind !== 'rdr' || st.no || !st.pool) continue;
    const dst = destinationPorts(st);
    const pm = poolMeaning(st.pool, dst, tables, ast.dialect);
    // Without `rdr pass` the translated packet meets the filter rules (pf.conf(5) TRANSLATION); lbc tags it and passes the tag.
    const passRule = st.tag ? filters.find((f) => f.action === 'pass' && f.tagged === st.tag) : undefined;
    const perRule = passRule?.keepState?.options['src.track'];
    out.push({
      line: st.line,
      family: familyOf(st, st.pool),
      protocol: st.proto as 'tcp' | 'udp',
      interface: st.interface,
      destination: destinationOf(st.dst),
      port: dst.from,
      ports: dst,
      allow: sourcesOf(st, tables),
      othersRefused: refusesOthers(st, filters),
      choice: pm.choice,
      hashKey: st.pool.type === 'source-hash' ? st.pool.key : null,
      sticky: st.pool.sticky,
      stickyTimeoutSeconds: perRule ?? globalSrcTrack,
      targets: aggregate(pm.targets),
      unredirected: 0,
      passed: st.pass || passRule !== undefined,
      unknownTables: pm.unknownTables,
      sourceNat: st.tag ? sourceNatOf(nats.find((n) => n.tagged === st.tag)?.target) : null,
    });
  }

  // pass/match … rdr-to: group consecutive quick rules with the same match into one service (a probability cascade).
  for (let i = 0; i < filters.length; i++) {
    const first = filters[i];
    if (!first.rdrTo || first.direction !== 'in') continue;
    const group: FilterStmt[] = [first];
    while (first.quick && first.probability !== null && i + 1 < filters.length) {
      const next = filters[i + 1];
      if (!next.rdrTo || !next.quick || matchKey(next) !== matchKey(first)) break;
      group.push(next);
      i++;
      if (next.probability === null) break;
    }
    const dst = destinationPorts(first);
    let remaining = 1;
    const targets: PfTargetShare[] = [];
    const unknownTables: string[] = [];
    let choice: PfServiceMeaning['choice'] = 'single';
    let sticky = false;
    let key: string | null = null;
    let timeout: number | null = null;
    for (const r of group) {
      const p = r.probability ?? 1;
      const take = remaining * p;
      remaining -= take;
      const pm = poolMeaning(r.rdrTo!, dst, tables, ast.dialect);
      for (const t of pm.targets) targets.push({ ...t, share: t.share * take });
      unknownTables.push(...pm.unknownTables);
      choice = group.length > 1 ? 'probability' : pm.choice;
      sticky = sticky || r.rdrTo!.sticky;
      if (r.rdrTo!.type === 'source-hash') key = r.rdrTo!.key;
      timeout = r.keepState?.options['src.track'] ?? timeout;
    }
    out.push({
      line: first.line,
      family: familyOf(first, first.rdrTo!),
      protocol: first.proto as 'tcp' | 'udp',
      interface: first.interface,
      destination: destinationOf(first.dst),
      port: dst.from,
      ports: dst,
      allow: sourcesOf(first, tables),
      othersRefused: refusesOthers(first, filters),
      choice,
      hashKey: key,
      sticky,
      stickyTimeoutSeconds: timeout ?? globalSrcTrack,
      targets: aggregate(targets),
      unredirected: remaining,
      // A pass rule passes what it translates; a match rule leaves passing to later rules, which we do not model.
      passed: first.action === 'pass',
      unknownTables,
      sourceNat: first.tag ? sourceNatOf(filters.find((f) => f.direction === 'out' && f.tagged === first.tag && f.natTo)?.natTo) : null,
    });
  }
  return out.sort((a, b) => a.line - b.line);
}
