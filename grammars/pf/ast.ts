/**
 * Typed syntax tree for the pf.conf subset, built from the CST by a visitor,
 * and the checks pfctl makes on these constructs (so a text lbc emits that
 * pfctl would refuse is refused here too). Each check names where pfctl
 * makes it: FreeBSD sbin/pfctl/parse.y (14.x) or OpenBSD sbin/pfctl/parse.y.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { CstNode, IToken } from 'chevrotain';
import { pfParser } from './parser.js';

/** 'freebsd': the classic ruleset with rdr … -> (FreeBSD ≤ 14, still read by 15). 'openbsd': pass/match … rdr-to (OpenBSD ≥ 4.7, FreeBSD ≥ 15). */
export type PfDialect = 'freebsd' | 'openbsd';
export type PfFamily = 'inet' | 'inet6';
export type PoolType = 'round-robin' | 'random' | 'source-hash' | 'bitmask' | 'least-states';

export interface PfAddress {
  address: string;
  prefixLength: number;
  family: PfFamily;
}

export type HostSpec =
  /** `! host`: every address but these. */
  | { kind: 'not'; host: HostSpec }
  | { kind: 'any' }
  | { kind: 'interface'; name: string }
  | { kind: 'table'; name: string }
  | ({ kind: 'address' } & PfAddress);

export interface PortRange {
  from: number;
  /** null: a single port. */
  to: number | null;
}

export interface PoolHost extends PfAddress {
  weight: number | null;
}

export interface Pool {
  /** A table reference, or one or more inline hosts. */
  table: string | null;
  hosts: PoolHost[];
  /** true when written as a { list }, even of one host. */
  list: boolean;
  port: { from: number; to: number | '*' | null } | null;
  type: PoolType | null;
  /** Hex key as written ("0x…"), or a quoted string key without quotes. */
  key: string | null;
  sticky: boolean;
}

export interface RuleHead {
  interface: string | null;
  af: PfFamily | null;
  proto: 'tcp' | 'udp' | 'carp' | 'pfsync' | null;
  all: boolean;
  src: HostSpec | null;
  srcPort: PortRange | null;
  dst: HostSpec | null;
  dstPort: PortRange | null;
}

export interface TableStmt {
  kind: 'table';
  line: number;
  name: string;
  flags: string[];
  /** null: no { } initialiser (the table keeps what it has). */
  entries: PoolHost[] | null;
}

export interface RdrStmt extends RuleHead {
  kind: 'rdr';
  line: number;
  no: boolean;
  pass: boolean;
  tag: string | null;
  pool: Pool | null;
}

/** The source a translation gives: an address, or the address of an interface. */
export type NatTarget = ({ kind: 'address' } & PfAddress) | { kind: 'interface'; name: string };

/** FreeBSD classic `nat` (source translation on the way out). */
export interface NatStmt extends RuleHead {
  kind: 'nat';
  line: number;
  pass: boolean;
  tag: string | null;
  tagged: string | null;
  target: NatTarget;
}

export interface FilterStmt extends RuleHead {
  kind: 'filter';
  line: number;
  action: 'pass' | 'match' | 'block';
  /** block drop / block return; null: the ruleset's block-policy. */
  blockPolicy: 'drop' | 'return' | null;
  direction: 'in' | 'out' | null;
  quick: boolean;
  tag: string | null;
  tagged: string | null;
  /** null: no explicit keep state. */
  keepState: { options: Record<string, number>; noSync: boolean } | null;
  /** In (0, 1]; null when absent. */
  probability: number | null;
  rdrTo: Pool | null;
  /** OpenBSD `nat-to` (outbound pass/match rules only). */
  natTo: NatTarget | null;
  label: string | null;
}

export interface SetTimeoutStmt {
  kind: 'set-timeout';
  line: number;
  name: string;
  seconds: number;
}

export type PfStatement = TableStmt | RdrStmt | NatStmt | FilterStmt | SetTimeoutStmt;

export interface PfAst {
  dialect: PfDialect;
  statements: PfStatement[];
}

export class PfSyntaxError extends Error {
  readonly line: number;
  readonly column: number;
  constructor(message: string, line: number, column = 1) {
    super(`line ${line}: ${message}`);
    this.name = 'PfSyntaxError';
    this.line = line;
    this.column = column;
  }
}

/** Timeout names pfctl knows (pfctl_parser.c pf_timeouts); only dotted ones are valid per rule (parse.y state_opt_item). */
const TIMEOUT_NAMES = new Set([
  'tcp.first', 'tcp.opening', 'tcp.established', 'tcp.closing', 'tcp.finwait', 'tcp.closed', 'tcp.tsdiff',
  'sctp.first', 'sctp.opening', 'sctp.established', 'sctp.closing', 'sctp.closed',
  'udp.first', 'udp.single', 'udp.multiple', 'icmp.first', 'icmp.error',
  'other.first', 'other.single', 'other.multiple', 'frag', 'interval', 'adaptive.start', 'adaptive.end', 'src.track',
]);

/** PF_TABLE_NAME_SIZE and PF_TAG_NAME_SIZE (net/pfvar.h) include the terminating NUL. */
const TABLE_NAME_MAX = 31;
const TAG_NAME_MAX = 63;

type Ctx = Record<string, (CstNode | IToken)[] | undefined>;
const tok = (ctx: Ctx, name: string, i = 0): IToken | undefined => ctx[name]?.[i] as IToken | undefined;
const node = (ctx: Ctx, name: string, i = 0): CstNode | undefined => ctx[name]?.[i] as CstNode | undefined;
const nodes = (ctx: Ctx, name: string): CstNode[] => (ctx[name] ?? []) as CstNode[];
const toks = (ctx: Ctx, name: string): IToken[] => (ctx[name] ?? []) as IToken[];
const lineOf = (t: IToken | undefined): number => t?.startLine ?? 1;
const fail = (msg: string, t?: IToken): never => {
  throw new PfSyntaxError(msg, lineOf(t), t?.startColumn ?? 1);
};

function firstToken(n: CstNode): IToken {
  let best: IToken | undefined;
  const walk = (c: CstNode) => {
    for (const list of Object.values(c.children)) {
      for (const el of list) {
        if ('image' in el) {
          if (!best || el.startOffset < best.startOffset) best = el;
        } else walk(el);
      }
    }
  };
  walk(n);
  return best!;
}

function portNumber(t: IToken): number {
  const n = Number(t.image);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`port ${t.image} out of range 1-65535`, t);
  return n;
}

const BaseVisitor = pfParser.getBaseCstVisitorConstructor();

class AstBuilder extends BaseVisitor {
  constructor(private readonly dialect: PfDialect) {
    super();
    this.validateVisitor();
  }

  file(ctx: Ctx): PfStatement[] {
    const stmts = nodes(ctx, 'statement');
    const newlines = toks(ctx, 'Newline').map((t) => t.startOffset);
    // pf.conf is line oriented: parse.y's ruleset rule ends every statement with '\n'.
    for (let i = 1; i < stmts.length; i++) {
      const prevEnd = stmts[i - 1].location!.endOffset!;
      const start = stmts[i].location!.startOffset;
      if (!newlines.some((o) => o > prevEnd && o < start)) fail('two statements on one line', firstToken(stmts[i]));
    }
    return stmts.map((s) => this.visit(s) as PfStatement);
  }

  statement(ctx: Ctx): PfStatement {
    const child = node(ctx, 'tableStmt') ?? node(ctx, 'rdrStmt') ?? node(ctx, 'natStmt') ?? node(ctx, 'filterStmt') ?? node(ctx, 'setStmt');
    return this.visit(child!) as PfStatement;
  }

  setStmt(ctx: Ctx): SetTimeoutStmt {
    const name = tok(ctx, 'name')!;
    if (!TIMEOUT_NAMES.has(name.image)) fail(`unknown timeout ${name.image}`, name);
    return { kind: 'set-timeout', line: lineOf(tok(ctx, 'Set')), name: name.image, seconds: Number(tok(ctx, 'seconds')!.image) };
  }

  tableStmt(ctx: Ctx): TableStmt {
    const name = tok(ctx, 'name')!;
    if (name.image.length > TABLE_NAME_MAX) fail(`table name '${name.image}' too long`, name);
    const entries = tok(ctx, 'open') ? nodes(ctx, 'tableEntry').map((e) => this.visit(e) as PoolHost) : null;
    return { kind: 'table', line: lineOf(tok(ctx, 'Table')), name: name.image, flags: toks(ctx, 'flag').map((t) => t.image), entries };
  }

  tableEntry(ctx: Ctx): PoolHost {
    return this.hostWithWeight(ctx);
  }

  poolHost(ctx: Ctx): PoolHost {
    return this.hostWithWeight(ctx);
  }

  private hostWithWeight(ctx: Ctx): PoolHost {
    const addr = this.visit(node(ctx, 'address')!) as PfAddress;
    const w = tok(ctx, 'weight');
    if (w) {
      // FreeBSD's parse.y has no WEIGHT token; OpenBSD's optweight allows 1..USHRT_MAX.
      if (this.dialect === 'freebsd') fail("'weight' is not accepted by FreeBSD's pfctl", w);
      const n = Number(w.image);
      if (n < 1 || n > 65535) fail('weight out of range', w);
      return { ...addr, weight: n };
    }
    return { ...addr, weight: null };
  }

  address(ctx: Ctx): PfAddress {
    const a = tok(ctx, 'addr')!;
    const family: PfFamily = isIPv4(a.image) ? 'inet' : isIPv6(a.image) ? 'inet6' : fail(`could not parse host specification ${a.image}`, a);
    const max = family === 'inet' ? 32 : 128;
    const p = tok(ctx, 'prefix');
    const prefixLength = p ? Number(p.image) : max;
    if (prefixLength > max) fail(`invalid netmask /${prefixLength}`, p);
    return { address: a.image, prefixLength, family };
  }

  tableRef(ctx: Ctx): string {
    const name = tok(ctx, 'name')!;
    if (name.image.length > TABLE_NAME_MAX) fail(`table name '${name.image}' too long`, name);
    return name.image;
  }

  hostSpec(ctx: Ctx): HostSpec {
    const h = this.plainHost(ctx);
    const not = tok(ctx, 'not');
    // parse.y host: "!" before "any" is not an address that can be negated.
    if (not && h.kind === 'any') fail('syntax error', not);
    return not ? { kind: 'not', host: h } : h;
  }

  private plainHost(ctx: Ctx): HostSpec {
    if (tok(ctx, 'Any')) return { kind: 'any' };
    const ifn = tok(ctx, 'ifname');
    if (ifn) {
      // parse.y dynaddr: "invalid interface name" unless it starts with a letter.
      if (!/^[A-Za-z]/.test(ifn.image)) fail(`invalid interface name '${ifn.image}'`, ifn);
      return { kind: 'interface', name: ifn.image };
    }
    const t = node(ctx, 'tableRef');
    if (t) return { kind: 'table', name: this.visit(t) as string };
    return { kind: 'address', ...(this.visit(node(ctx, 'address')!) as PfAddress) };
  }

  portSpec(ctx: Ctx): PortRange {
    const from = portNumber(tok(ctx, 'from')!);
    const toTok = tok(ctx, 'to');
    const to = toTok ? portNumber(toTok) : null;
    if (to !== null && to < from) fail('invalid port range', toTok);
    return { from, to };
  }

  ruleHead(ctx: Ctx): RuleHead {
    const af = tok(ctx, 'af');
    const proto = tok(ctx, 'proto');
    return {
      interface: tok(ctx, 'ifname')?.image ?? null,
      af: af ? (af.image as PfFamily) : null,
      proto: proto ? (proto.image as RuleHead['proto']) : null,
      all: Boolean(tok(ctx, 'All')),
      src: node(ctx, 'src') ? (this.visit(node(ctx, 'src')!) as HostSpec) : null,
      srcPort: node(ctx, 'srcPort') ? (this.visit(node(ctx, 'srcPort')!) as PortRange) : null,
      dst: node(ctx, 'dst') ? (this.visit(node(ctx, 'dst')!) as HostSpec) : null,
      dstPort: node(ctx, 'dstPort') ? (this.visit(node(ctx, 'dstPort')!) as PortRange) : null,
    };
  }

  pool(ctx: Ctx): Pool {
    const tableNode = node(ctx, 'tableRef');
    const hosts = nodes(ctx, 'poolHost').map((h) => this.visit(h) as PoolHost);
    const list = Boolean(tok(ctx, 'open'));
    if (list && hosts.length === 0) fail('empty redirection list', tok(ctx, 'open'));
    const pf = tok(ctx, 'portFrom');
    const pt = tok(ctx, 'portTo');
    const port = pf ? { from: portNumber(pf), to: pt ? portNumber(pt) : tok(ctx, 'portStar') ? ('*' as const) : null } : null;
    let type: PoolType | null = null;
    let key: string | null = null;
    let sticky = false;
    for (const o of nodes(ctx, 'poolOpt')) {
      const oc = o.children as Ctx;
      const t = tok(oc, 'type');
      if (t) {
        if (type) fail('pool type cannot be redefined', t);
        type = t.image as PoolType;
        if (type === 'least-states' && this.dialect === 'freebsd') fail("pool type 'least-states' is not accepted by FreeBSD's pfctl", t);
        const k = tok(oc, 'key');
        if (k) {
          if (k.image.startsWith('0x')) {
            // parse.y hashkey: "hex key must be 128 bits (32 hex digits) long".
            if (k.image.length !== 34) fail('hex key must be 128 bits (32 hex digits) long', k);
            key = k.image.toLowerCase();
          } else key = k.image.slice(1, -1);
        }
      } else {
        const s = tok(oc, 'sticky')!;
        if (sticky) fail('sticky-address cannot be redefined', s);
        sticky = true;
      }
    }
    const families = new Set(hosts.map((h) => h.family));
    if (families.size > 1) fail('all pool addresses must be in the same address family', pf ?? tok(ctx, 'open'));
    const multi = tableNode !== undefined || hosts.length > 1;
    const at = tok(ctx, 'open') ?? firstToken(tableNode ?? nodes(ctx, 'poolHost')[0]);
    if (multi && type !== null) {
      if (this.dialect === 'freebsd' && type !== 'round-robin') {
        // FreeBSD parse.y natrule.
        fail(tableNode ? 'tables are only supported in round-robin redirection pools' : 'only round-robin valid for multiple redirection addresses', at);
      }
      if (this.dialect === 'openbsd' && type === 'bitmask') {
        // OpenBSD parse.y collapse_redirspec / apply_redirspec (PF_POOL_DYNTYPE excludes bitmask).
        fail(tableNode ? 'tables are not supported by pool type' : 'pool type is not valid for multiple translation or routing addresses', at);
      }
    }
    return { table: tableNode ? (this.visit(tableNode) as string) : null, hosts, list, port, type, key, sticky };
  }

  // Read inline by pool() and filterStmt(), which need their position among siblings.
  poolOpt(): void {}
  filterOpt(): void {}
  stateOpt(): void {}

  rdrStmt(ctx: Ctx): RdrStmt {
    const rdrTok = tok(ctx, 'Rdr')!;
    if (this.dialect === 'openbsd') fail("'rdr … ->' translation rules are not accepted by this pf (OpenBSD ≥ 4.7); use 'pass in … rdr-to'", rdrTok);
    const head = this.visit(node(ctx, 'ruleHead')!) as RuleHead;
    const no = Boolean(tok(ctx, 'No'));
    const pool = node(ctx, 'pool') ? (this.visit(node(ctx, 'pool')!) as Pool) : null;
    if (no && tok(ctx, 'Pass')) fail('"pass" not valid with "no"', rdrTok);
    if (no && pool) fail("translation rule with 'no' does not need '->'", rdrTok);
    if (!no && !pool) fail("translation rule requires '-> address'", rdrTok);
    const tag = tok(ctx, 'tag');
    if (tag && tag.image.length > TAG_NAME_MAX) fail(`tag too long, max ${TAG_NAME_MAX} chars`, tag);
    checkFamily(head, pool, rdrTok);
    // FreeBSD parse.y rdr_consistent.
    if (head.proto !== 'tcp' && head.proto !== 'udp' && (head.srcPort || head.dstPort || pool?.port)) fail('dst port only applies to tcp/udp', rdrTok);
    return { kind: 'rdr', line: lineOf(rdrTok), no, pass: Boolean(tok(ctx, 'Pass')), tag: tag?.image ?? null, pool, ...head };
  }

  natTarget(ctx: Ctx): NatTarget {
    const ifn = tok(ctx, 'ifname');
    if (ifn) {
      if (!/^[A-Za-z]/.test(ifn.image)) fail(`invalid interface name '${ifn.image}'`, ifn);
      return { kind: 'interface', name: ifn.image };
    }
    return { kind: 'address', ...(this.visit(node(ctx, 'address')!) as PfAddress) };
  }

  natStmt(ctx: Ctx): NatStmt {
    const natTok = tok(ctx, 'Nat')!;
    if (this.dialect === 'openbsd') fail("'nat … ->' translation rules are not accepted by this pf (OpenBSD ≥ 4.7); use 'pass out … nat-to'", natTok);
    const head = this.visit(node(ctx, 'ruleHead')!) as RuleHead;
    const target = this.visit(node(ctx, 'natTarget')!) as NatTarget;
    for (const k of ['tag', 'tagged']) {
      const t = tok(ctx, k);
      if (t && t.image.length > TAG_NAME_MAX) fail(`tag too long, max ${TAG_NAME_MAX} chars`, t);
    }
    checkFamily(head, target.kind === 'address' ? { table: null, hosts: [{ ...target, weight: null }], list: false, port: null, type: null, key: null, sticky: false } : null, natTok);
    if (head.proto === null && (head.srcPort || head.dstPort)) fail('dst port only applies to tcp/udp', natTok);
    return { kind: 'nat', line: lineOf(natTok), pass: Boolean(tok(ctx, 'Pass')), tag: tok(ctx, 'tag')?.image ?? null, tagged: tok(ctx, 'tagged')?.image ?? null, target, ...head };
  }

  filterStmt(ctx: Ctx): FilterStmt {
    const actionTok = tok(ctx, 'action')!;
    const action = actionTok.image as FilterStmt['action'];
    const head = this.visit(node(ctx, 'ruleHead')!) as RuleHead;
    const st: FilterStmt = {
      kind: 'filter', line: lineOf(actionTok), action, blockPolicy: (tok(ctx, 'policy')?.image as 'drop' | 'return') ?? null, direction: (tok(ctx, 'dir')?.image as 'in' | 'out') ?? null,
      quick: Boolean(tok(ctx, 'Quick')), tag: null, tagged: null, keepState: null, probability: null, rdrTo: null, natTo: null, label: null, ...head,
    };
    for (const o of nodes(ctx, 'filterOpt')) {
      const oc = o.children as Ctx;
      if (tok(oc, 'tagged')) st.tagged = tok(oc, 'tagged')!.image;
      else if (tok(oc, 'tag')) {
        const t = tok(oc, 'tag')!;
        if (t.image.length > TAG_NAME_MAX) fail(`tag too long, max ${TAG_NAME_MAX} chars`, t);
        st.tag = t.image;
      } else if (tok(oc, 'Keep')) {
        if (st.keepState) fail('modulate or keep cannot be redefined', tok(oc, 'Keep'));
        const options: Record<string, number> = {};
        let noSync = false;
        for (const so of nodes(oc, 'stateOpt')) {
          const sc = so.children as Ctx;
          if (tok(sc, 'noSync')) {
            noSync = true;
            continue;
          }
          const name = tok(sc, 'name')!;
          if (name.image !== 'max') {
            if (!TIMEOUT_NAMES.has(name.image)) fail(`illegal timeout name ${name.image}`, name);
            if (!name.image.includes('.')) fail(`illegal state timeout ${name.image}`, name);
          }
          if (name.image in options) fail(`state timeout ${name.image} multiple definitions`, name);
          options[name.image] = Number(tok(sc, 'value')!.image);
        }
        st.keepState = { options, noSync };
      } else if (tok(oc, 'probability')) {
        const p = tok(oc, 'probability')!;
        const v = p.image.endsWith('%') ? Number(p.image.slice(0, -1)) / 100 : Number(p.image);
        // parse.y filter_opt PROBABILITY: the value must lie in [0, 1]; pf.conf(5) says "between 0 and 1".
        if (!(v > 0) || v > 1) fail(`invalid probability: ${p.image}`, p);
        st.probability = v;
      } else if (tok(oc, 'RdrTo')) {
        if (this.dialect === 'freebsd') fail("'rdr-to' is not accepted by FreeBSD's classic pfctl (≤ 14); use 'rdr … ->'", tok(oc, 'RdrTo'));
        if (st.rdrTo) fail('cannot respecify rdr-to', tok(oc, 'RdrTo'));
        st.rdrTo = this.visit(node(oc, 'pool')!) as Pool;
      } else if (tok(oc, 'NatTo')) {
        if (this.dialect === 'freebsd') fail("'nat-to' is not accepted by FreeBSD's classic pfctl (≤ 14); use 'nat … ->'", tok(oc, 'NatTo'));
        if (st.natTo) fail('cannot respecify nat-to', tok(oc, 'NatTo'));
        st.natTo = this.visit(node(oc, 'natTarget')!) as NatTarget;
      } else if (tok(oc, 'Flags')) {
        if (!/^[FSRPAUEW]*$/.test(tok(oc, 'flagsSet')!.image) || !/^[FSRPAUEW]+$/.test(tok(oc, 'flagsMask')!.image)) fail('bad flags', tok(oc, 'Flags'));
      } else if (tok(oc, 'label')) st.label = tok(oc, 'label')!.image.slice(1, -1);
    }
    // parse.y: drop and return are a block rule's blockspec only.
    if (st.blockPolicy && action !== 'block') fail('syntax error', tok(ctx, 'policy'));
    // parse.y filter_consistent / OpenBSD rule_consistent.
    if (st.keepState && action !== 'pass') fail('keep state is great, but only for pass rules', actionTok);
    if (head.proto !== 'tcp' && head.proto !== 'udp' && (head.srcPort || head.dstPort)) fail('port only applies to tcp/udp', actionTok);
    if (st.natTo) {
      // OpenBSD parse.y rule_consistent: nat-to needs the outbound direction.
      if (st.direction !== 'out') fail('nat-to can only be used outbound', actionTok);
      if (action === 'block') fail('nat-to is not valid on block rules', actionTok);
      if (st.natTo.kind === 'address') checkFamily(head, { table: null, hosts: [{ ...st.natTo, weight: null }], list: false, port: null, type: null, key: null, sticky: false }, actionTok);
    }
    if (st.rdrTo) {
      if (st.direction === null) fail('nat-to and rdr-to require a direction', actionTok);
      if (action === 'block') fail('rdr-to is not valid on block rules', actionTok);
      checkFamily(head, st.rdrTo, actionTok);
    }
    return st;
  }
}

function checkFamily(head: RuleHead, pool: Pool | null, at: IToken): void {
  const fams = new Set<PfFamily>();
  if (head.af) fams.add(head.af);
  for (const h of [head.src, head.dst]) if (h?.kind === 'address') fams.add(h.family);
  for (const h of pool?.hosts ?? []) fams.add(h.family);
  if (fams.size > 1) fail('address family mismatch in rule', at);
}

const builders: Record<PfDialect, AstBuilder> = { freebsd: new AstBuilder('freebsd'), openbsd: new AstBuilder('openbsd') };

/** Statement-order rule of FreeBSD's pfctl with the default `set require-order yes` (parse.y check_rulestate). */
function checkOrder(stmts: PfStatement[]): void {
  const rank = (s: PfStatement) => (s.kind === 'set-timeout' ? 1 : s.kind === 'rdr' || s.kind === 'nat' ? 2 : s.kind === 'filter' ? 3 : 0);
  let seen = 0;
  for (const s of stmts) {
    const r = rank(s);
    if (r === 0) continue;
    if (r < seen) {
      const what = r === 1 ? 'options' : 'translation rules';
      throw new PfSyntaxError(`${what} must come before ${seen === 3 ? 'filter rules' : 'translation rules'} (set require-order)`, s.line);
    }
    seen = r;
  }
}

export function buildAst(cst: CstNode, dialect: PfDialect): PfAst {
  const statements = builders[dialect].visit(cst) as PfStatement[];
  if (dialect === 'freebsd') checkOrder(statements);
  return { dialect, statements };
}
