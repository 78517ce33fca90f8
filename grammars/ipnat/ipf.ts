/**
 * ipf.conf, the part lbc writes: filter rules that let the redirected traffic
 * in. Written from ipf(5) and FreeBSD sbin/ipf/common/ipf_y.y:
 *
 *   inrule:  action in inopts ipfrule ruletail       (inopts: log | quick | on IF ...)
 *   ipfrule: family tos ttl proto ip                 (family: [family] inet | inet6)
 *   ip:      srcdst flags icmp                       (srcdst: all | from X to Y | to Y | from X)
 *   ruletail: with keep head group                   (keep: keep state [(...)] | keep frags)
 *   intag:    settagin matchtagin                    (matchtagin: match-tag(nat=NAME), inbound rules)
 *
 * Checks done in ipf_y.y actions are done here too: "flags with non-TCP rule",
 * "port use incorrect" (ports need tcp, udp or no protocol), and the address
 * family of each address against `family` and the other side
 * ("src/dst address family mismatch").
 *
 * Pipeline: tokens -> lexer -> one reused parser instance -> CST visitor -> typed AST.
 */
import { CstParser, Lexer, createToken, type CstNode, type IToken, type TokenType } from 'chevrotain';
import {
  Comma, Comment, Equals, GrammarError, IPv4, IPv6, LineContinuation, NewLine, NumberTok, Semicolon, Slash, WhiteSpace, Word,
  canonicalAddress, familyBits, keyword, maskAddress, tokenProblem,
  type AddrFamily, type GrammarProblem, type MaskedAddress,
} from './common.js';

const Pass = keyword('Pass', 'pass');
const Block = keyword('Block', 'block');
const In = keyword('In', 'in');
const Out = keyword('Out', 'out');
const Quick = keyword('Quick', 'quick');
const On = keyword('On', 'on');
const Log = keyword('Log', 'log');
const Family = keyword('Family', 'family');
const Inet6 = keyword('Inet6', 'inet6');
const Inet = keyword('Inet', 'inet');
const Proto = keyword('Proto', 'proto');
const All = keyword('All', 'all');
const From = keyword('From', 'from');
const To = keyword('To', 'to');
const Any = keyword('Any', 'any');
const Port = keyword('Port', 'port');
const Flags = keyword('Flags', 'flags');
const Keep = keyword('Keep', 'keep');
const State = keyword('State', 'state');
const Frags = keyword('Frags', 'frags');
const MatchTag = keyword('MatchTag', 'match-tag');
const Nat = keyword('Nat', 'nat');
const Eq = keyword('Eq', 'eq');
const Ne = keyword('Ne', 'ne');
const Lt = keyword('Lt', 'lt');
const Gt = keyword('Gt', 'gt');
const Le = keyword('Le', 'le');
const Ge = keyword('Ge', 'ge');
const NotEq = createToken({ name: 'NotEq', pattern: /!=/ });
const Bang = createToken({ name: 'Bang', pattern: /!/ });
const LessEq = createToken({ name: 'LessEq', pattern: /<=/ });
const GreaterEq = createToken({ name: 'GreaterEq', pattern: />=/ });
const RangeOut = createToken({ name: 'RangeOut', pattern: /<>/ });
const RangeIn = createToken({ name: 'RangeIn', pattern: /></ });
const Less = createToken({ name: 'Less', pattern: /</ });
const Greater = createToken({ name: 'Greater', pattern: />/ });
const Colon = createToken({ name: 'Colon', pattern: /:/ });
const LParen = createToken({ name: 'LParen', pattern: /\(/ });
const RParen = createToken({ name: 'RParen', pattern: /\)/ });

const allTokens: TokenType[] = [
  LineContinuation, WhiteSpace, Comment, NewLine, Semicolon, Comma, Slash,
  IPv6, IPv4, NumberTok, NotEq, Bang, LessEq, GreaterEq, RangeOut, RangeIn, Less, Greater, Equals, Colon, LParen, RParen,
  Pass, Block, Inet6, Inet, In, Out, Quick, On, Log, Family, Proto, All, From, To, Any, Port, Flags, Keep, State, Frags, MatchTag, Nat,
  Eq, Ne, Lt, Gt, Le, Ge,
  Word,
];

const ipfLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: false });

class IpfParser extends CstParser {
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
    this.OR([{ ALT: () => this.CONSUME(Pass) }, { ALT: () => this.CONSUME(Block) }]);
    this.OR2([{ ALT: () => this.CONSUME(In) }, { ALT: () => this.CONSUME(Out) }]);
    this.MANY(() => this.OR3([
      { ALT: () => this.CONSUME(Quick) },
      { ALT: () => this.CONSUME(Log) },
      { ALT: () => { this.CONSUME(On); this.CONSUME(Word, { LABEL: 'ifname' }); } },
    ]));
    this.OPTION(() => this.OR4([
      { ALT: () => { this.CONSUME(Family); this.OR5([{ ALT: () => this.CONSUME(Inet6) }, { ALT: () => this.CONSUME(Inet) }]); } },
      { ALT: () => this.CONSUME2(Inet6) },
      { ALT: () => this.CONSUME2(Inet) },
    ]));
    this.OPTION2(() => { this.CONSUME(Proto); this.SUBRULE(this.protocol); });
    this.OR6([
      { ALT: () => this.CONSUME(All) },
      {
        ALT: () => {
          this.OR7([
            { ALT: () => { this.CONSUME(From); this.SUBRULE(this.object, { LABEL: 'src' }); this.OPTION3(() => { this.CONSUME(To); this.SUBRULE2(this.object, { LABEL: 'dst' }); }); } },
            { ALT: () => { this.CONSUME2(To); this.SUBRULE3(this.object, { LABEL: 'dst' }); } },
          ]);
        },
      },
    ]);
    this.OPTION4(() => {
      this.CONSUME(Flags);
      this.CONSUME2(Word, { LABEL: 'flagset' });
      this.OPTION5(() => { this.CONSUME2(Slash); this.CONSUME3(Word, { LABEL: 'flagmask' }); });
    });
    this.OPTION6(() => {
      this.CONSUME(Keep);
      this.OR8([{ ALT: () => this.CONSUME(State) }, { ALT: () => this.CONSUME(Frags) }]);
    });
    // intag: the NAT tag the packet must carry (fil.c ipf_scanlist compares fr_nattag with fin_nattag on inbound rules).
    this.OPTION7(() => {
      this.CONSUME(MatchTag);
      this.CONSUME(LParen);
      this.CONSUME(Nat);
      this.CONSUME(Equals);
      this.CONSUME4(Word, { LABEL: 'nattag' });
      this.CONSUME(RParen);
    });
  });

  protocol = this.RULE('protocol', () => {
    this.OR([
      { ALT: () => { this.CONSUME(Word, { LABEL: 'name' }); this.OPTION(() => { this.CONSUME(Slash); this.CONSUME2(Word, { LABEL: 'name' }); }); } },
      { ALT: () => this.CONSUME(NumberTok) },
    ]);
  });

  object = this.RULE('object', () => {
    this.OPTION(() => this.CONSUME(Bang));
    this.OR([
      { ALT: () => this.CONSUME(Any) },
      { ALT: () => { this.OR2([{ ALT: () => this.CONSUME(IPv6) }, { ALT: () => this.CONSUME(IPv4) }]); this.OPTION2(() => { this.CONSUME(Slash); this.CONSUME(NumberTok, { LABEL: 'bits' }); }); } },
    ]);
    this.OPTION3(() => this.SUBRULE(this.portspec));
  });

  portspec = this.RULE('portspec', () => {
    this.CONSUME(Port);
    this.OR([
      {
        ALT: () => {
          this.OR2([
            { ALT: () => this.CONSUME(Equals) }, { ALT: () => this.CONSUME(NotEq) }, { ALT: () => this.CONSUME(LessEq) },
            { ALT: () => this.CONSUME(GreaterEq) }, { ALT: () => this.CONSUME(Less) }, { ALT: () => this.CONSUME(Greater) },
            { ALT: () => this.CONSUME(Eq) }, { ALT: () => this.CONSUME(Ne) }, { ALT: () => this.CONSUME(Lt) },
            { ALT: () => this.CONSUME(Gt) }, { ALT: () => this.CONSUME(Le) }, { ALT: () => this.CONSUME(Ge) },
          ]);
          this.CONSUME(NumberTok, { LABEL: 'p1' });
        },
      },
      {
        ALT: () => {
          this.CONSUME2(NumberTok, { LABEL: 'p1' });
          this.OR3([{ ALT: () => this.CONSUME(Colon) }, { ALT: () => this.CONSUME(RangeIn) }, { ALT: () => this.CONSUME(RangeOut) }]);
          this.CONSUME3(NumberTok, { LABEL: 'p2' });
        },
      },
    ]);
  });
}

const parser = new IpfParser();

// ---------------------------------------------------------------------------
// AST

/** Port comparison as ipf_y.y stores it (fr_dcmp): equality, order, or a range form. */
export type IpfPortOp = '=' | '!=' | '<' | '>' | '<=' | '>=' | ':' | '><' | '<>';

export interface IpfPortMatch {
  op: IpfPortOp;
  p1: number;
  /** Second port of the range forms. */
  p2: number | null;
}

export interface IpfEndpoint {
  not: boolean;
  /** null for `any`. */
  address: MaskedAddress | null;
  port: IpfPortMatch | null;
}

export interface IpfRule {
  line: number;
  action: 'pass' | 'block';
  direction: 'in' | 'out';
  quick: boolean;
  log: boolean;
  interface: string | null;
  /** From `family`/`inet`/`inet6` or from the addresses; null matches both. */
  family: AddrFamily | null;
  protocol: 'tcp' | 'udp' | 'tcp/udp' | string | number | null;
  /** null for `all` or when the side is not written. */
  src: IpfEndpoint | null;
  dst: IpfEndpoint | null;
  flags: { set: string; mask: string | null } | null;
  keep: 'state' | 'frags' | null;
  /** match-tag(nat=NAME): only packets an ipnat rule with `tag NAME` translated; null: any packet. */
  natTag: string | null;
}

export interface IpfFile {
  rules: IpfRule[];
}

type Children = Record<string, (CstNode | IToken)[] | undefined>;
const tok = (c: Children, k: string, i = 0): IToken | undefined => c[k]?.[i] as IToken | undefined;
const node = (c: Children, k: string, i = 0): CstNode | undefined => c[k]?.[i] as CstNode | undefined;

const TCP_FLAGS = /^[FSRPAUEC]+$/;

const BaseVisitor = parser.getBaseCstVisitorConstructor();

class IpfAstBuilder extends BaseVisitor {
  problems: GrammarProblem[] = [];
  constructor() {
    super();
    this.validateVisitor();
  }

  file(ctx: Children): IpfRule[] {
    return (ctx.rule ?? []).map((r) => this.visit(r as CstNode)).filter((r): r is IpfRule => r !== null);
  }

  protocol(ctx: Children): IpfRule['protocol'] {
    const names = ((ctx.name ?? []) as IToken[]).map((t) => t.image.toLowerCase());
    if (names.length === 2) {
      if (names[0] === 'tcp' && names[1] === 'udp') return 'tcp/udp';
      this.problems.push(tokenProblem(ctx.name![1] as IToken, `"${names.join('/')}" is not a protocol`));
      return null;
    }
    if (names.length === 1) return names[0] === 'tcp-udp' ? 'tcp/udp' : names[0];
    const n = Number(tok(ctx, 'Number')!.image);
    if (n > 255) this.problems.push(tokenProblem(tok(ctx, 'Number'), `protocol ${n} is out of range`));
    // ipf stores numbers; spell the two that matter by name so rules compare equal.
    return n === 6 ? 'tcp' : n === 17 ? 'udp' : n;
  }

  portspec(ctx: Children): IpfPortMatch {
    const num = (t: IToken) => {
      const n = Number(t.image);
      if (n > 65535) this.problems.push(tokenProblem(t, `invalid port number "${t.image}"`));
      return n;
    };
    const p1 = num(tok(ctx, 'p1')!);
    const p2t = tok(ctx, 'p2');
    if (p2t) {
      const op: IpfPortOp = ctx.Colon ? ':' : ctx.RangeIn ? '><' : '<>';
      return { op, p1, p2: num(p2t) };
    }
    const op: IpfPortOp = ctx.Equals || ctx.Eq ? '=' : ctx.NotEq || ctx.Ne ? '!=' : ctx.LessEq || ctx.Le ? '<=' : ctx.GreaterEq || ctx.Ge ? '>=' : ctx.Less || ctx.Lt ? '<' : '>';
    return { op, p1, p2: null };
  }

  object(ctx: Children, family: AddrFamily | null): { endpoint: IpfEndpoint; family: AddrFamily | null } {
    const a = tok(ctx, 'IPv6') ?? tok(ctx, 'IPv4');
    const port = ctx.portspec ? this.visit(node(ctx, 'portspec')!) : null;
    if (!a) return { endpoint: { not: Boolean(ctx.Bang), address: null, port }, family: null };
    const f: AddrFamily = a.tokenType === IPv6 ? 'ipv6' : 'ipv4';
    // ipf_y.y hostname: an IPv4 literal in a `family inet6` rule (or the reverse) is YYERROR.
    if (family && family !== f) this.problems.push(tokenProblem(a, 'src/dst address family mismatch'));
    const canon = canonicalAddress(a.image, f);
    if (canon === null) {
      this.problems.push(tokenProblem(a, `Invalid octet string for IP address "${a.image}"`));
      return { endpoint: { not: Boolean(ctx.Bang), address: null, port }, family: f };
    }
    const bitsTok = tok(ctx, 'bits');
    const bits = bitsTok ? Number(bitsTok.image) : familyBits(f);
    if (bits > familyBits(f)) {
      this.problems.push(tokenProblem(bitsTok, `netmask /${bits} is too long`));
      return { endpoint: { not: Boolean(ctx.Bang), address: null, port }, family: f };
    }
    return { endpoint: { not: Boolean(ctx.Bang), address: maskAddress(canon, f, bits), port }, family: f };
  }

  rule(ctx: Children): IpfRule | null {
    const first = (tok(ctx, 'Pass') ?? tok(ctx, 'Block'))!;
    const ifnames = (ctx.ifname ?? []) as IToken[];
    if (ifnames.length > 1) this.problems.push(tokenProblem(ifnames[1], '"on" given twice'));
    let family: AddrFamily | null = ctx.Inet6 ? 'ipv6' : ctx.Inet ? 'ipv4' : null;
    const protocol = ctx.protocol ? this.visit(node(ctx, 'protocol')!) : null;
    const src = ctx.src ? this.visit(node(ctx, 'src')!, family) : null;
    family = family ?? src?.family ?? null;
    const dst = ctx.dst ? this.visit(node(ctx, 'dst')!, family) : null;
    family = family ?? dst?.family ?? null;
    for (const e of [src, dst]) {
      if (e?.endpoint.port && protocol !== null && protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'tcp/udp') {
        this.problems.push(tokenProblem(first, 'port use incorrect'));
      }
    }
    let flags: IpfRule['flags'] = null;
    if (ctx.Flags) {
      if (protocol !== 'tcp') this.problems.push(tokenProblem(tok(ctx, 'Flags'), 'flags with non-TCP rule'));
      const set = tok(ctx, 'flagset')!;
      const mask = tok(ctx, 'flagmask');
      for (const t of [set, mask]) if (t && !TCP_FLAGS.test(t.image)) this.problems.push(tokenProblem(t, `"${t.image}" is not a set of TCP flags`));
      flags = { set: set.image, mask: mask?.image ?? null };
    }
    const natTag = tok(ctx, 'nattag');
    if (natTag && ctx.Out) this.problems.push(tokenProblem(natTag, 'match-tag(nat=...) is only checked on inbound rules'));
    // ipnat keeps 15 characters of a tag (see ipnat.ts); a longer name here would never match it.
    if (natTag && natTag.image.length > 15) this.problems.push(tokenProblem(natTag, 'nat tag longer than 15 characters'));
    return {
      line: first.startLine ?? 1,
      action: ctx.Pass ? 'pass' : 'block',
      direction: ctx.In ? 'in' : 'out',
      quick: Boolean(ctx.Quick),
      log: Boolean(ctx.Log),
      interface: ifnames[0]?.image ?? null,
      family,
      protocol,
      src: src?.endpoint ?? null,
      dst: dst?.endpoint ?? null,
      flags,
      keep: ctx.State ? 'state' : ctx.Frags ? 'frags' : null,
      natTag: natTag?.image ?? null,
    };
  }
}

/**
 * Parse ipf.conf text (the subset described above). Throws GrammarError with
 * every problem (line:column) when ipf would refuse the file or when the text
 * uses constructs outside the subset.
 */
export function parseIpf(text: string): IpfFile {
  const src = text.endsWith('\n') ? text : `${text}\n`;
  const lexed = ipfLexer.tokenize(src);
  const problems: GrammarProblem[] = lexed.errors.map((e) => ({ severity: 'error', message: `unexpected character: ${JSON.stringify(src.slice(e.offset, e.offset + 1))}`, line: e.line ?? 1, column: e.column ?? 1 }));
  if (problems.length) throw new GrammarError('ipf', problems);
  parser.input = lexed.tokens;
  const cst = parser.file();
  for (const e of parser.errors) problems.push(tokenProblem(e.token, e.message));
  if (problems.length) throw new GrammarError('ipf', problems);
  const builder = new IpfAstBuilder();
  const rules = builder.visit(cst) as IpfRule[];
  if (builder.problems.length) throw new GrammarError('ipf', builder.problems);
  return { rules };
}
