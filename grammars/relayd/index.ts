/**
 * A parser for the subset of relayd.conf(5) that --target relayd emits:
 * global interval/timeout, `table <NAME> { HOST [retry N], ... }` and
 * `redirect "NAME" { listen on ...; forward to ...; session timeout N; pftag NAME; sticky-address }`.
 * It is used by the round-trip tests to read the output back into a meaning
 * that can be compared with the IR; anything outside the subset is an error.
 *
 * Lexing follows relayd's parse.y yylex in the parts that matter here: '#'
 * starts a comment to the end of the line, strings are double-quoted, and an
 * unquoted word may hold letters, digits and most punctuation but not
 * '{', '}', '<', '>', ',', '/', '#' (allowed_in_string).
 */
import { createToken, EmbeddedActionsParser, Lexer } from 'chevrotain';

const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t]+/, group: Lexer.SKIPPED });
const Comment = createToken({ name: 'Comment', pattern: /#[^\n]*/, group: Lexer.SKIPPED });
const Newline = createToken({ name: 'Newline', pattern: /\r?\n/, line_breaks: true });
const LBrace = createToken({ name: 'LBrace', pattern: /\{/ });
const RBrace = createToken({ name: 'RBrace', pattern: /\}/ });
const Lt = createToken({ name: 'Lt', pattern: /</ });
const Gt = createToken({ name: 'Gt', pattern: />/ });
const Comma = createToken({ name: 'Comma', pattern: /,/ });
const Quoted = createToken({ name: 'Quoted', pattern: /"[^"\n]*"/ });
const Word = createToken({ name: 'Word', pattern: /[A-Za-z0-9_:.\-*?[\]$@%&+;|~^]+/ });

const kw = (w: string) => createToken({ name: `Kw_${w.replace(/-/g, '_')}`, pattern: new RegExp(w.replace(/-/g, '\\-')), longer_alt: Word });
const Interval = kw('interval');
const Timeout = kw('timeout');
const Table = kw('table');
const Redirect = kw('redirect');
const Listen = kw('listen');
const On = kw('on');
const Port = kw('port');
const Interface = kw('interface');
const Forward = kw('forward');
const To = kw('to');
const Mode = kw('mode');
const Check = kw('check');
const Retry = kw('retry');
const StickyAddress = kw('sticky-address');
const Udp = kw('udp');
const Tcp = kw('tcp');
const Http = kw('http');
const Host = kw('host');
const Code = kw('code');
const Send = kw('send');
const Expect = kw('expect');
const Nothing = kw('nothing');
const Icmp = kw('icmp');
const Session = kw('session');
const Pftag = kw('pftag');

const keywords = [
  StickyAddress, Interval, Timeout, Table, Redirect, Listen, On, Port, Interface, Forward, To, Mode, Check, Retry, Udp, Tcp,
  Http, Host, Code, Send, Expect, Nothing, Icmp, Session, Pftag,
];
const allTokens = [WhiteSpace, Comment, Newline, LBrace, RBrace, Lt, Gt, Comma, Quoted, ...keywords, Word];
const lexer = new Lexer(allTokens);

export type RelaydCheck =
  | { kind: 'tcp' }
  | { kind: 'icmp' }
  | { kind: 'http'; path: string; host: string | null; code: number }
  | { kind: 'send'; send: string | null; expect: string };

export interface RelaydForward {
  table: string;
  port: number | null;
  mode: string | null;
  key: string | null;
  check: RelaydCheck | null;
  interval: number | null;
  timeout: number | null;
}

export interface RelaydRedirect {
  name: string;
  listen: { address: string; proto: 'tcp' | 'udp'; port: number; interface: string | null };
  forwards: RelaydForward[];
  sticky: boolean;
  /** `session timeout N` (seconds), or null. */
  sessionTimeout: number | null;
  /** `pftag NAME`, or null. */
  pftag: string | null;
}

export interface RelaydConf {
  interval: number | null;
  timeout: number | null;
  tables: Map<string, { address: string; retry: number }[]>;
  redirects: RelaydRedirect[];
}

const unquote = (s: string) => s.slice(1, -1);

class RelaydParser extends EmbeddedActionsParser {
  constructor() {
    super(allTokens);
    this.performSelfAnalysis();
  }

  private nl = this.RULE('nl', () => {
    this.MANY(() => this.CONSUME(Newline));
  });

  private word = this.RULE('word', (): string => this.OR([{ ALT: () => this.CONSUME(Word).image }, { ALT: () => unquote(this.CONSUME(Quoted).image) }]));

  private num = this.RULE('num', (): number => {
    const w = this.CONSUME(Word).image;
    return this.ACTION(() => {
      if (!/^\d+$/.test(w)) throw new Error(`not a number: ${w}`);
      return Number(w);
    }) as number;
  });

  private tableName = this.RULE('tableName', (): string => {
    this.CONSUME(Lt);
    const n = this.CONSUME(Word).image;
    this.CONSUME(Gt);
    return n;
  });

  private host = this.RULE('host', (): { address: string; retry: number } => {
    const address = this.CONSUME(Word).image;
    let retry = 0;
    this.OPTION(() => {
      this.CONSUME(Retry);
      retry = this.SUBRULE(this.num);
    });
    return { address, retry };
  });

  private table = this.RULE('table', (): { name: string; hosts: { address: string; retry: number }[] } => {
    this.CONSUME(Table);
    const name = this.SUBRULE(this.tableName);
    this.CONSUME(LBrace);
    const hosts: { address: string; retry: number }[] = [];
    this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => hosts.push(this.SUBRULE(this.host)) });
    this.CONSUME(RBrace);
    return { name, hosts };
  });

  private check = this.RULE('check', (): RelaydCheck => {
    this.CONSUME(Check);
    return this.OR([
      { ALT: () => (this.CONSUME(Tcp), { kind: 'tcp' as const }) },
      { ALT: () => (this.CONSUME(Icmp), { kind: 'icmp' as const }) },
      {
        ALT: () => {
          this.CONSUME(Http);
          const path = unquote(this.CONSUME(Quoted).image);
          let host: string | null = null;
          this.OPTION(() => {
            this.CONSUME(Host);
            host = unquote(this.CONSUME2(Quoted).image);
          });
          this.CONSUME(Code);
          const code = this.SUBRULE(this.num);
          return { kind: 'http' as const, path, host, code };
        },
      },
      {
        ALT: () => {
          this.CONSUME(Send);
          const send = this.OR2([{ ALT: () => (this.CONSUME(Nothing), null) }, { ALT: () => unquote(this.CONSUME3(Quoted).image) }]);
          this.CONSUME(Expect);
          const expect = unquote(this.CONSUME4(Quoted).image);
          return { kind: 'send' as const, send, expect };
        },
      },
    ]);
  });

  private forward = this.RULE('forward', (): RelaydForward => {
    this.CONSUME(Forward);
    this.CONSUME(To);
    const f: RelaydForward = { table: this.SUBRULE(this.tableName), port: null, mode: null, key: null, check: null, interval: null, timeout: null };
    this.MANY(() =>
      this.OR([
        { ALT: () => (this.CONSUME(Port), (f.port = this.SUBRULE(this.num))) },
        {
          ALT: () => {
            this.CONSUME(Mode);
            f.mode = this.CONSUME(Word).image;
            this.OPTION(() => (f.key = unquote(this.CONSUME(Quoted).image)));
          },
        },
        { ALT: () => (f.check = this.SUBRULE(this.check)) },
        { ALT: () => (this.CONSUME(Interval), (f.interval = this.SUBRULE2(this.num))) },
        { ALT: () => (this.CONSUME(Timeout), (f.timeout = this.SUBRULE3(this.num))) },
      ]),
    );
    return f;
  });

  private redirect = this.RULE('redirect', (): RelaydRedirect => {
    this.CONSUME(Redirect);
    const name = unquote(this.CONSUME(Quoted).image);
    this.CONSUME(LBrace);
    this.SUBRULE(this.nl);
    const r: RelaydRedirect = { name, listen: { address: '', proto: 'tcp', port: 0, interface: null }, forwards: [], sticky: false, sessionTimeout: null, pftag: null };
    this.MANY(() => {
      this.OR([
        {
          ALT: () => {
            this.CONSUME(Listen);
            this.CONSUME(On);
            r.listen.address = this.CONSUME(Word).image;
            this.OPTION(() => this.OR2([{ ALT: () => (this.CONSUME(Udp), (r.listen.proto = 'udp')) }, { ALT: () => (this.CONSUME(Tcp), (r.listen.proto = 'tcp')) }]));
            this.CONSUME(Port);
            r.listen.port = this.SUBRULE(this.num);
            this.OPTION2(() => {
              this.CONSUME(Interface);
              r.listen.interface = this.SUBRULE(this.word);
            });
          },
        },
        { ALT: () => r.forwards.push(this.SUBRULE(this.forward)) },
        { ALT: () => (this.CONSUME(StickyAddress), (r.sticky = true)) },
        {
          ALT: () => {
            this.CONSUME(Session);
            this.CONSUME2(Timeout);
            r.sessionTimeout = this.SUBRULE2(this.num);
          },
        },
        { ALT: () => (this.CONSUME(Pftag), (r.pftag = this.SUBRULE2(this.word))) },
      ]);
      this.SUBRULE2(this.nl);
    });
    this.CONSUME(RBrace);
    return r;
  });

  conf = this.RULE('conf', (): RelaydConf => {
    const c: RelaydConf = { interval: null, timeout: null, tables: new Map(), redirects: [] };
    this.SUBRULE(this.nl);
    this.MANY(() => {
      this.OR([
        { ALT: () => (this.CONSUME(Interval), (c.interval = this.SUBRULE(this.num))) },
        { ALT: () => (this.CONSUME(Timeout), (c.timeout = this.SUBRULE2(this.num))) },
        {
          ALT: () => {
            const t = this.SUBRULE(this.table);
            this.ACTION(() => c.tables.set(t.name, t.hosts));
          },
        },
        {
          ALT: () => {
            const r = this.SUBRULE(this.redirect);
            this.ACTION(() => c.redirects.push(r));
          },
        },
      ]);
      this.SUBRULE2(this.nl);
    });
    return c;
  });
}

const parser = new RelaydParser();

export function parseRelaydConf(text: string): RelaydConf {
  const lexed = lexer.tokenize(text);
  if (lexed.errors.length) throw new Error(`relayd.conf lexer: ${lexed.errors[0].message} at line ${lexed.errors[0].line}`);
  parser.input = lexed.tokens;
  const conf = parser.conf();
  if (parser.errors.length) throw new Error(`relayd.conf parser: ${parser.errors[0].message} at line ${parser.errors[0].token.startLine}`);
  return conf;
}
