/**
 * ipnat.conf, the part lbc writes: `rdr` rules (ipnat(5) "INBOUND DESTINATION
 * TRANSLATION"), written from FreeBSD sbin/ipf/ipnat/ipnat_y.y:
 *
 *   redir:   rdrit ifnames addr dport tlate dip nport setproto rdroptions
 *   ifnames: ifname [',' otherifname] [inet | inet6]      -- the interface is not optional
 *   dip:     hostname ',' hostname | rhdaddr              -- rhdaddr mask must be /0 or /32 (/128)
 *   nport:   [port portpair | port '=' portspec]
 *   rdroptions: [round-robin] [frag] [age n[/m]] [sticky] [mssclamp n] [proxy name] [tag name] [purge]
 *
 * The options have a fixed order (yacc sequence, not a list), the protocol comes
 * before them, and `sticky` without round-robin or an A,B pair is ignored with
 * a warning ("'sticky' for use with round-robin/IP splitting only").
 * and the `map` rules of source NAT, in their from/to form (ipnat_y.y mapit ifnames mapfrom tlate rhsaddr
 * proxy mapoptions, with "from any to ADDR port = N"):
 *
 *   map IF [inet6] from any to ADDR/LEN port = N -> ADDR/LEN [tcp|udp]
 *
 * Other `map` forms, `bimap`, `map-block`, `rewrite`, `divert` and from/to matching in rdr are
 * outside lbc's subset and are rejected as such.
 *
 * Pipeline: tokens -> lexer -> one reused parser instance -> CST visitor -> typed AST.
 */
import { CstParser, Lexer, type CstNode, type IToken, type TokenType } from 'chevrotain';
import {
  Arrow, Comma, Comment, Dash, Equals, GrammarError, IPv4, IPv6, LineContinuation, NewLine, NumberTok, Semicolon, Slash,
  WhiteSpace, Word, canonicalAddress, familyBits, keyword, maskAddress, tokenProblem,
  type AddrFamily, type GrammarProblem, type MaskedAddress,
} from './common.js';

const Rdr = keyword('Rdr', 'rdr');
const MapBlock = keyword('MapBlock', 'map-block');
const MapKw = keyword('Map', 'map');
const Bimap = keyword('Bimap', 'bimap');
const Rewrite = keyword('Rewrite', 'rewrite');
const Divert = keyword('Divert', 'divert');
const Port = keyword('Port', 'port');
const TcpUdp = keyword('TcpUdp', 'tcpudp');
const Tcp = keyword('Tcp', 'tcp');
const Udp = keyword('Udp', 'udp');
const RoundRobin = keyword('RoundRobin', 'round-robin');
const Sticky = keyword('Sticky', 'sticky');
const Frag = keyword('Frag', 'frag');
const Age = keyword('Age', 'age');
const Mssclamp = keyword('Mssclamp', 'mssclamp');
const Proxy = keyword('Proxy', 'proxy');
const Tag = keyword('Tag', 'tag');
const Purge = keyword('Purge', 'purge');
const Inet6 = keyword('Inet6', 'inet6');
const Inet = keyword('Inet', 'inet');
const Range = keyword('Range', 'range');
const Any = keyword('Any', 'any');
const From = keyword('From', 'from');
const To = keyword('To', 'to');
const Colon = keyword('Colon', ':');

const allTokens: TokenType[] = [
  LineContinuation, WhiteSpace, Comment, NewLine, Semicolon, Comma, Slash, Arrow,
  IPv6, IPv4, NumberTok, Dash, Equals, Colon,
  MapBlock, Rdr, Bimap, MapKw, Rewrite, Divert, Port, TcpUdp, Tcp, Udp, RoundRobin, Sticky, Frag, Age, Mssclamp, Proxy, Tag,
  Purge, Inet6, Inet, Range, Any, From, To,
  Word,
];

/** Every token that may appear in a line lbc does not read (all but the line end). */
const tailTokens: TokenType[] = allTokens.filter((t) => t !== NewLine && t !== WhiteSpace && t !== Comment && t !== LineContinuation);

const ipnatLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: false });

class IpnatParser extends CstParser {
  constructor() {
    super(allTokens, { recoveryEnabled: false });
    this.performSelfAnalysis();
  }

  file = this.RULE('file', () => {
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(NewLine) },
        { ALT: () => { this.SUBRULE(this.rule); this.OPTION(() => this.CONSUME(Semicolon)); this.CONSUME2(NewLine); } },
      ]);
    });
  });

  rule = this.RULE('rule', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.rdr) },
      { ALT: () => this.SUBRULE(this.mapRule) },
      // Recognised so the message can say they are outside lbc's subset.
      { ALT: () => { this.OR2([{ ALT: () => this.CONSUME(Bimap) }, { ALT: () => this.CONSUME(MapBlock) }, { ALT: () => this.CONSUME(Rewrite) }, { ALT: () => this.CONSUME(Divert) }]); this.SUBRULE(this.unsupportedTail); } },
    ]);
  });

  /** The rest of a line lbc does not read; the AST builder reports it. */
  unsupportedTail = this.RULE('unsupportedTail', () => {
    this.MANY(() => this.OR(tailTokens.map((t) => ({ ALT: () => this.CONSUME(t) }))));
  });

  rdr = this.RULE('rdr', () => {
    this.CONSUME(Rdr);
    this.SUBRULE(this.ifnames);
    this.OR([
      { ALT: () => { this.CONSUME(From); this.SUBRULE(this.unsupportedTail); } },
      {
        ALT: () => {
          this.SUBRULE(this.addr, { LABEL: 'match' });
          this.OPTION(() => this.SUBRULE(this.portpair, { LABEL: 'dport' }));
          this.CONSUME(Arrow);
          this.SUBRULE(this.dip);
          this.OPTION2(() => this.SUBRULE(this.nport));
          this.OPTION3(() => this.SUBRULE(this.proto));
          this.OPTION4(() => this.CONSUME(RoundRobin));
          this.OPTION5(() => this.CONSUME(Frag));
          this.OPTION6(() => { this.CONSUME(Age); this.CONSUME(NumberTok, { LABEL: 'age' }); this.OPTION7(() => { this.CONSUME(Slash); this.CONSUME2(NumberTok, { LABEL: 'age' }); }); });
          this.OPTION8(() => this.CONSUME(Sticky));
          this.OPTION9(() => { this.CONSUME(Mssclamp); this.CONSUME3(NumberTok, { LABEL: 'mss' }); });
          this.MANY(() => this.OR2([
            { ALT: () => { this.CONSUME(Proxy); this.CONSUME(Word, { LABEL: 'proxy' }); } },
            { ALT: () => { this.CONSUME(Tag); this.CONSUME2(Word, { LABEL: 'tag' }); } },
            { ALT: () => this.CONSUME(Purge) },
          ]));
        },
      },
    ]);
  });

  /** map IF from SRC [port = N] to DST [port = N] -> DIP [proto]; any other map form is read as unsupported. */
  mapRule = this.RULE('mapRule', () => {
    this.CONSUME(MapKw);
    this.SUBRULE(this.ifnames);
    this.OR({
      IGNORE_AMBIGUITIES: true,
      DEF: [
        {
          ALT: () => {
            this.CONSUME(From);
            this.SUBRULE(this.addr, { LABEL: 'src' });
            this.OPTION(() => this.SUBRULE(this.portEq, { LABEL: 'sport' }));
            this.CONSUME(To);
            this.SUBRULE2(this.addr, { LABEL: 'dst' });
            this.OPTION2(() => this.SUBRULE2(this.portEq, { LABEL: 'dport' }));
            this.CONSUME(Arrow);
            this.SUBRULE(this.dip);
            this.OPTION3(() => this.SUBRULE(this.proto));
          },
        },
        { ALT: () => this.SUBRULE(this.unsupportedTail) },
      ],
    });
  });

  portEq = this.RULE('portEq', () => {
    this.CONSUME(Port);
    this.CONSUME(Equals);
    this.CONSUME(NumberTok, { LABEL: 'n' });
  });

  ifnames = this.RULE('ifnames', () => {
    this.CONSUME(Word, { LABEL: 'ifname' });
    this.OPTION(() => { this.CONSUME(Comma); this.CONSUME2(Word, { LABEL: 'ifname' }); });
    this.OPTION2(() => this.OR([{ ALT: () => this.CONSUME(Inet6) }, { ALT: () => this.CONSUME(Inet) }]));
  });

  host = this.RULE('host', () => {
    this.OR([{ ALT: () => this.CONSUME(IPv6) }, { ALT: () => this.CONSUME(IPv4) }, { ALT: () => this.CONSUME(NumberTok) }]);
  });

  addr = this.RULE('addr', () => {
    this.OR([
      { ALT: () => this.CONSUME(Any) },
      { ALT: () => { this.SUBRULE(this.host); this.OPTION(() => { this.CONSUME(Slash); this.CONSUME(NumberTok, { LABEL: 'bits' }); }); } },
    ]);
  });

  portpair = this.RULE('portpair', () => {
    this.CONSUME(Port);
    this.CONSUME(NumberTok, { LABEL: 'lo' });
    this.OPTION(() => { this.OR([{ ALT: () => this.CONSUME(Dash) }, { ALT: () => this.CONSUME(Colon) }]); this.CONSUME2(NumberTok, { LABEL: 'hi' }); });
  });

  dip = this.RULE('dip', () => {
    this.OR([
      { ALT: () => { this.CONSUME(Range); this.SUBRULE(this.host, { LABEL: 'from' }); this.CONSUME(Dash); this.SUBRULE2(this.host, { LABEL: 'to' }); } },
      {
        ALT: () => {
          this.SUBRULE3(this.host, { LABEL: 'from' });
          this.OPTION(() => this.OR2([
            { ALT: () => { this.CONSUME(Comma); this.SUBRULE4(this.host, { LABEL: 'split' }); } },
            { ALT: () => { this.CONSUME2(Dash); this.SUBRULE5(this.host, { LABEL: 'to' }); } },
            { ALT: () => { this.CONSUME(Slash); this.CONSUME(NumberTok, { LABEL: 'bits' }); } },
          ]));
        },
      },
    ]);
  });

  nport = this.RULE('nport', () => {
    this.OR([
      { ALT: () => { this.CONSUME(Port); this.CONSUME(Equals); this.CONSUME(NumberTok, { LABEL: 'fixed' }); } },
      { ALT: () => this.SUBRULE(this.portpair) },
    ]);
  });

  proto = this.RULE('proto', () => {
    this.OR([
      { ALT: () => { this.CONSUME(Tcp); this.OPTION(() => { this.CONSUME(Slash); this.CONSUME(Udp, { LABEL: 'andUdp' }); }); } },
      { ALT: () => this.CONSUME2(Udp) },
      { ALT: () => this.CONSUME(TcpUdp) },
      { ALT: () => this.CONSUME(NumberTok) },
    ]);
  });
}

/** The one parser instance; chevrotain parsers are reusable by resetting `input`. */
const parser = new IpnatParser();

// ---------------------------------------------------------------------------
// AST

export type IpnatDestination =
  | { kind: 'host'; address: MaskedAddress }
  /** `A,B`: alternate between two hosts (IPN_SPLIT). */
  | { kind: 'split'; a: MaskedAddress; b: MaskedAddress }
  /** `A-B` or `range A-B`. */
  | { kind: 'range'; from: MaskedAddress; to: MaskedAddress };

export interface IpnatRdr {
  kind: 'rdr';
  line: number;
  /** Inbound interface and, when given, the outbound one. */
  interfaces: [string, string | null];
  /** `inet`/`inet6` after the interfaces, if written. */
  familyKeyword: AddrFamily | null;
  family: AddrFamily;
  /** Destination the rule matches (`any` is 0/0). */
  match: MaskedAddress;
  /** Destination ports matched, or null for every port. */
  dport: { lo: number; hi: number } | null;
  to: IpnatDestination;
  /** New destination port(s); `fixed` is the `port = N` form. */
  nport: { lo: number; hi: number; fixed: boolean } | null;
  protocol: 'tcp' | 'udp' | 'tcp/udp' | number | null;
  roundRobin: boolean;
  frag: boolean;
  age: [number, number] | null;
  /** Effective stickiness: false when written without round-robin or an A,B pair (ipnat ignores it then). */
  sticky: boolean;
  stickyWritten: boolean;
  mssclamp: number | null;
  proxy: string | null;
  tag: string | null;
  purge: boolean;
}

/** A source NAT rule: what leaves `interface` for dst (port) gets the source `target`. */
export interface IpnatMap {
  kind: 'map';
  line: number;
  interface: string;
  family: AddrFamily;
  src: MaskedAddress;
  sport: number | null;
  dst: MaskedAddress;
  dport: number | null;
  /** The new source; 0/32 is the address of the interface. */
  target: MaskedAddress;
  protocol: 'tcp' | 'udp' | 'tcp/udp' | number | null;
}

export interface IpnatFile {
  rules: IpnatRdr[];
  maps: IpnatMap[];
  /** Non-fatal messages ipnat would print while loading (e.g. an ignored `sticky`). */
  warnings: GrammarProblem[];
}

type Children = Record<string, (CstNode | IToken)[] | undefined>;
const tok = (c: Children, k: string, i = 0): IToken | undefined => c[k]?.[i] as IToken | undefined;
const node = (c: Children, k: string, i = 0): CstNode | undefined => c[k]?.[i] as CstNode | undefined;

const BaseVisitor = parser.getBaseCstVisitorConstructor();

/** Turns the CST into the AST, checking what ipnat_y.y checks in its actions. */
class IpnatAstBuilder extends BaseVisitor {
  problems: GrammarProblem[] = [];
  warnings: GrammarProblem[] = [];
  constructor() {
    super();
    this.validateVisitor();
  }

  file(ctx: Children): Array<IpnatRdr | IpnatMap> {
    return (ctx.rule ?? []).map((r) => this.visit(r as CstNode)).filter((r): r is IpnatRdr | IpnatMap => r !== null);
  }

  rule(ctx: Children): IpnatRdr | IpnatMap | null {
    if (ctx.rdr) return this.visit(ctx.rdr[0] as CstNode);
    if (ctx.mapRule) return this.visit(ctx.mapRule[0] as CstNode);
    const kw = (tok(ctx, 'Bimap') ?? tok(ctx, 'MapBlock') ?? tok(ctx, 'Rewrite') ?? tok(ctx, 'Divert'))!;
    this.problems.push(tokenProblem(kw, `"${kw.image}" rules are outside the subset lbc reads (rdr only)`));
    return null;
  }

  unsupportedTail(): null {
    return null;
  }

  portEq(ctx: Children): number {
    return this.number(tok(ctx, 'n')!, 65535, 'port number');
  }

  mapRule(ctx: Children): IpnatMap | null {
    const kw = tok(ctx, 'Map')!;
    if (!ctx.From) {
      this.problems.push(tokenProblem(kw, '"map" rules other than "map IF from … to … -> …" are outside the subset lbc reads'));
      return null;
    }
    const ifs = this.visit(node(ctx, 'ifnames')!);
    const src = this.visit(node(ctx, 'src')!, ifs.family);
    const dst = this.visit(node(ctx, 'dst')!, ifs.family);
    const d = this.visit(node(ctx, 'dip')!, ifs.family);
    const fams = [ifs.family, src.family, dst.family, d.family].filter((f): f is AddrFamily => f !== null);
    if (new Set(fams).size > 1) {
      this.problems.push(tokenProblem(tok(ctx, 'Arrow'), 'address family mismatch'));
      return null;
    }
    const family: AddrFamily = fams[0] ?? 'ipv4';
    const to = d.build(family) as IpnatDestination;
    if (to.kind !== 'host') {
      this.problems.push(tokenProblem(tok(ctx, 'Arrow'), 'only one address after "->" is modelled in map rules'));
      return null;
    }
    const protocol = ctx.proto ? this.visit(node(ctx, 'proto')!) : null;
    const sport = ctx.sport ? this.visit(node(ctx, 'sport')!) : null;
    const dport = ctx.dport ? this.visit(node(ctx, 'dport')!) : null;
    // ipnat_y.y: a port comparison needs a protocol that has ports.
    if ((sport !== null || dport !== null) && (protocol === null || (typeof protocol === 'number' && protocol !== 6 && protocol !== 17))) {
      this.problems.push(tokenProblem(kw, 'a port in a map rule needs tcp or udp'));
    }
    if (ifs.names[1] !== null) this.problems.push(tokenProblem(kw, 'two interfaces in a map rule are outside the subset lbc reads'));
    return { kind: 'map', line: kw.startLine ?? 1, interface: ifs.names[0], family, src: src.build(family), sport, dst: dst.build(family), dport, target: to.address, protocol };
  }

  private number(t: IToken, max: number, what: string): number {
    const n = Number(t.image);
    if (!Number.isSafeInteger(n) || n > max) this.problems.push(tokenProblem(t, `invalid ${what} "${t.image}"`));
    return n;
  }

  /** hostname: an IPv4/IPv6 literal or a bare number (0 is the unspecified address). */
  host(ctx: Children): { text: string; family: AddrFamily | null; tok: IToken } {
    const t = (tok(ctx, 'IPv6') ?? tok(ctx, 'IPv4') ?? tok(ctx, 'Number'))!;
    if (t.tokenType === IPv6) return { text: canonicalAddress(t.image, 'ipv6')!, family: 'ipv6', tok: t };
    if (t.tokenType === IPv4) {
      const c = canonicalAddress(t.image, 'ipv4');
      if (c === null) {
        this.problems.push(tokenProblem(t, `Invalid octet string for IP address "${t.image}"`));
        return { text: '0.0.0.0', family: 'ipv4', tok: t };
      }
      return { text: c, family: 'ipv4', tok: t };
    }
    // ipnat_y.y hostname: YY_NUMBER is an IPv4 address in host order; 0 has no family yet.
    const n = Number(t.image);
    if (!Number.isSafeInteger(n) || n > 0xffffffff) {
      this.problems.push(tokenProblem(t, `invalid address "${t.image}"`));
      return { text: '0.0.0.0', family: null, tok: t };
    }
    const text = [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
    return { text, family: n === 0 ? null : 'ipv4', tok: t };
  }

  private withFamily(h: { text: string; family: AddrFamily | null }, family: AddrFamily): string {
    if (h.family === null && family === 'ipv6') return '::';
    return h.text;
  }

  addr(ctx: Children, family: AddrFamily | null): { family: AddrFamily | null; build: (f: AddrFamily) => MaskedAddress } {
    if (ctx.Any) return { family: null, build: (f) => ({ family: f, address: f === 'ipv4' ? '0.0.0.0' : '::', prefixLength: 0 }) };
    const h = this.visit(node(ctx, 'host')!);
    const bitsTok = tok(ctx, 'bits');
    let f: AddrFamily | null = h.family ?? family;
    const bits = bitsTok ? this.number(bitsTok, 128, 'netmask') : null;
    // ipnat.5 IPv6: a netmask longer than 32 bits means IPv6.
    if (f === null && bits !== null && bits > 32) f = 'ipv6';
    return {
      family: f,
      build: (fam) => {
        const len = bits ?? familyBits(fam);
        if (len > familyBits(fam)) this.problems.push(tokenProblem(bitsTok, `netmask /${len} is too long for ${fam === 'ipv4' ? 'IPv4' : 'IPv6'}`));
        return maskAddress(this.withFamily(h, fam), fam, Math.min(len, familyBits(fam)));
      },
    };
  }

  portpair(ctx: Children): { lo: number; hi: number } {
    const lo = this.number(tok(ctx, 'lo')!, 65535, 'port number');
    const hiTok = tok(ctx, 'hi');
    const hi = hiTok ? this.number(hiTok, 65535, 'port number') : lo;
    if (hi < lo) this.problems.push(tokenProblem(hiTok, `port range ${lo}-${hi} is empty`));
    return { lo, hi };
  }

  nport(ctx: Children): { lo: number; hi: number; fixed: boolean } {
    const f = tok(ctx, 'fixed');
    if (f) {
      const n = this.number(f, 65535, 'port number');
      return { lo: n, hi: n, fixed: true };
    }
    return { ...this.visit(node(ctx, 'portpair')!), fixed: false };
  }

  proto(ctx: Children): IpnatRdr['protocol'] {
    if (ctx.TcpUdp || ctx.andUdp) return 'tcp/udp';
    if (ctx.Tcp) return 'tcp';
    if (ctx.Udp) return 'udp';
    return this.number(tok(ctx, 'Number')!, 255, 'protocol number');
  }

  ifnames(ctx: Children): { names: [string, string | null]; family: AddrFamily | null } {
    const names = (ctx.ifname ?? []).map((t) => (t as IToken).image);
    const family = ctx.Inet6 ? 'ipv6' : ctx.Inet ? 'ipv4' : null;
    return { names: [names[0], names[1] ?? null], family };
  }

  dip(ctx: Children, family: AddrFamily | null): { family: AddrFamily | null; build: (f: AddrFamily) => IpnatDestination } {
    const from = this.visit(node(ctx, 'from')!);
    const other = node(ctx, 'split') ?? node(ctx, 'to');
    const o = other ? this.visit(other) : null;
    let f: AddrFamily | null = from.family ?? o?.family ?? family;
    if (o && from.family && o.family && from.family !== o.family) this.problems.push(tokenProblem(o.tok, 'address family mismatch'));
    const bitsTok = tok(ctx, 'bits');
    const bits = bitsTok ? this.number(bitsTok, 128, 'netmask') : null;
    if (f === null && bits !== null && bits > 32) f = 'ipv6';
    return {
      family: f,
      build: (fam) => {
        const full = familyBits(fam);
        const one = (h: typeof from) => maskAddress(this.withFamily(h, fam), fam, full);
        if (ctx.split) return { kind: 'split', a: one(from), b: one(o) };
        if (ctx.to) return { kind: 'range', from: one(from), to: one(o) };
        const len = bits ?? full;
        // ipnat_y.y dip: "dest ip bitmask not /32" (/128 for IPv6); /0 is allowed.
        if (len !== 0 && len !== full) this.problems.push(tokenProblem(bitsTok, `dest ip bitmask not /${full}`));
        return { kind: 'host', address: maskAddress(this.withFamily(from, fam), fam, Math.min(len, full)) };
      },
    };
  }

  rdr(ctx: Children): IpnatRdr | null {
    const rdrTok = tok(ctx, 'Rdr')!;
    const ifs = this.visit(node(ctx, 'ifnames')!);
    if (ctx.From) {
      this.problems.push(tokenProblem(tok(ctx, 'From'), 'from/to matching in rdr rules is outside the subset lbc reads'));
      return null;
    }
    const m = this.visit(node(ctx, 'match')!, ifs.family);
    const d = this.visit(node(ctx, 'dip')!, ifs.family);
    if (m.family && d.family && m.family !== d.family) {
      this.problems.push(tokenProblem(tok(ctx, 'Arrow'), 'address family mismatch'));
      return null;
    }
    if (ifs.family && ((m.family && m.family !== ifs.family) || (d.family && d.family !== ifs.family))) {
      this.problems.push(tokenProblem(rdrTok, `addresses do not match "${ifs.family === 'ipv6' ? 'inet6' : 'inet'}"`));
      return null;
    }
    const family: AddrFamily = ifs.family ?? m.family ?? d.family ?? 'ipv4';
    const dport = ctx.dport ? this.visit(node(ctx, 'dport')!) : null;
    const nport = ctx.nport ? this.visit(node(ctx, 'nport')!) : null;
    const protocol = ctx.proto ? this.visit(node(ctx, 'proto')!) : null;
    if ((dport || nport) && protocol !== null && typeof protocol === 'number' && protocol !== 6 && protocol !== 17) {
      this.problems.push(tokenProblem(rdrTok, 'ports need tcp or udp'));
    }
    const ages = (ctx.age ?? []).map((t) => this.number(t as IToken, 0xffffffff, 'age'));
    const rr = Boolean(ctx.RoundRobin);
    const to: IpnatDestination = d.build(family);
    const stickyWritten = Boolean(ctx.Sticky);
    const sticky = stickyWritten && (rr || to.kind === 'split');
    if (stickyWritten && !sticky) this.warnings.push(tokenProblem(tok(ctx, 'Sticky'), "'sticky' for use with round-robin/IP splitting only", 'warning'));
    const tags = (ctx.tag ?? []) as IToken[];
    const proxies = (ctx.proxy ?? []) as IToken[];
    if (tags.length > 1) this.problems.push(tokenProblem(tags[1], 'tag given twice'));
    if (proxies.length > 1) this.problems.push(tokenProblem(proxies[1], 'proxy given twice'));
    if ((ctx.Purge ?? []).length > 1) this.problems.push(tokenProblem(ctx.Purge![1] as IToken, 'purge given twice'));
    // nattag/purge come after proxy in ipnat_y.y rdroptions: enforce the order.
    const order = [...proxies.map((t) => ['proxy', t] as const), ...tags.map((t) => ['tag', t] as const), ...((ctx.Purge ?? []) as IToken[]).map((t) => ['purge', t] as const)].sort((a, b) => a[1].startOffset - b[1].startOffset);
    const rank = { proxy: 0, tag: 1, purge: 2 } as const;
    for (let i = 1; i < order.length; i++) if (rank[order[i][0]] < rank[order[i - 1][0]]) this.problems.push(tokenProblem(order[i][1], `"${order[i][0]}" must come before "${order[i - 1][0]}"`));
    if (tags[0] && tags[0].image.length > 15) this.problems.push(tokenProblem(tags[0], 'tag longer than 15 characters is cut short'));
    return {
      kind: 'rdr',
      line: rdrTok.startLine ?? 1,
      interfaces: ifs.names,
      familyKeyword: ifs.family,
      family,
      match: m.build(family),
      dport,
      to,
      nport,
      protocol,
      roundRobin: rr,
      frag: Boolean(ctx.Frag),
      age: ages.length === 0 ? null : [ages[0], ages[1] ?? ages[0]],
      sticky,
      stickyWritten,
      mssclamp: ctx.mss ? this.number(tok(ctx, 'mss')!, 0xffffffff, 'mssclamp') : null,
      proxy: proxies[0]?.image ?? null,
      tag: tags[0]?.image ?? null,
      purge: Boolean(ctx.Purge),
    };
  }
}

/**
 * Parse ipnat.conf text (the rdr subset). Throws GrammarError with every
 * problem (line:column) when ipnat would refuse the file or when it uses
 * constructs outside the subset. Warnings ipnat prints but loads anyway are
 * returned in `warnings`.
 */
export function parseIpnat(text: string): IpnatFile {
  const src = text.endsWith('\n') ? text : `${text}\n`;
  const lexed = ipnatLexer.tokenize(src);
  const problems: GrammarProblem[] = lexed.errors.map((e) => ({ severity: 'error', message: `unexpected character: ${JSON.stringify(src.slice(e.offset, e.offset + 1))}`, line: e.line ?? 1, column: e.column ?? 1 }));
  if (problems.length) throw new GrammarError('ipnat', problems);
  parser.input = lexed.tokens;
  const cst = parser.file();
  for (const e of parser.errors) problems.push(tokenProblem(e.token, e.message));
  if (problems.length) throw new GrammarError('ipnat', problems);
  const builder = new IpnatAstBuilder();
  const all = builder.visit(cst) as Array<IpnatRdr | IpnatMap>;
  if (builder.problems.length) throw new GrammarError('ipnat', builder.problems);
  return { rules: all.filter((r): r is IpnatRdr => r.kind === 'rdr'), maps: all.filter((r): r is IpnatMap => r.kind === 'map'), warnings: builder.warnings };
}
