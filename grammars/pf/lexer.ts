/**
 * Tokens of the part of pf.conf(5) that lbc emits, for both dialects.
 *
 * pfctl's own lexer (sbin/pfctl/parse.y, yylex) splits on white space and a
 * few punctuation characters and then looks words up in a keyword table; an
 * unquoted word may contain letters, digits and punctuation such as '-', '.',
 * ':' and '_'. We mirror that with keyword tokens whose longer alternative is
 * the generic Word token, so "round-robin" is a keyword but "lbc-web" a word.
 * A backslash at the end of a line continues the line (pf.conf(5), MACROS
 * examples); '#' starts a comment that runs to the end of the line.
 */
import { createToken, Lexer, type TokenType } from 'chevrotain';

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t]+/, group: Lexer.SKIPPED });
export const LineContinuation = createToken({ name: 'LineContinuation', pattern: /\\\r?\n/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: 'Comment', pattern: /#[^\n]*/, group: Lexer.SKIPPED });
export const Newline = createToken({ name: 'Newline', pattern: /\r?\n/, line_breaks: true });

export const LBrace = createToken({ name: 'LBrace', pattern: /\{/ });
export const RBrace = createToken({ name: 'RBrace', pattern: /\}/ });
export const LParen = createToken({ name: 'LParen', pattern: /\(/ });
export const RParen = createToken({ name: 'RParen', pattern: /\)/ });
export const Comma = createToken({ name: 'Comma', pattern: /,/ });
export const Arrow = createToken({ name: 'Arrow', pattern: /->/ });
export const Lt = createToken({ name: 'Lt', pattern: /</ });
export const Gt = createToken({ name: 'Gt', pattern: />/ });
export const Slash = createToken({ name: 'Slash', pattern: /\// });
export const Colon = createToken({ name: 'Colon', pattern: /:/ });
export const Star = createToken({ name: 'Star', pattern: /\*/ });
/** `! host`: every address but these (pf.conf(5) GRAMMAR, host). */
export const Bang = createToken({ name: 'Bang', pattern: /!/ });
export const QuotedString = createToken({ name: 'QuotedString', pattern: /"[^"\n]*"/ });

/** "12.5%": pfctl accepts a plain number or a percentage for probability (parse.y, rule `probability`). */
export const Percent = createToken({ name: 'Percent', pattern: /\d+(?:\.\d+)?%/ });
/** IPv6 needs at least two colons, so "4001:4008" stays a port range. */
export const Ipv6Address = createToken({
  name: 'Ipv6Address',
  pattern: /(?:[0-9a-fA-F]{0,4}:){2,7}(?:[0-9a-fA-F]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?/,
});
export const Ipv4Address = createToken({ name: 'Ipv4Address', pattern: /\d{1,3}(?:\.\d{1,3}){3}/ });
export const HexKey = createToken({ name: 'HexKey', pattern: /0x[0-9a-fA-F]+/ });
export const NumberLit = createToken({ name: 'NumberLit', pattern: /\d+/ });
export const Word = createToken({ name: 'Word', pattern: /[A-Za-z_][A-Za-z0-9_.\-]*/ });

const kw = (name: string, text: string): TokenType =>
  createToken({ name, pattern: new RegExp(text.replace(/[.\-]/g, (c) => `\\${c}`)), longer_alt: Word });

export const Table = kw('Table', 'table');
export const Persist = kw('Persist', 'persist');
export const Const = kw('Const', 'const');
export const Counters = kw('Counters', 'counters');
export const Weight = kw('Weight', 'weight');
export const No = kw('No', 'no');
export const Rdr = kw('Rdr', 'rdr');
export const RdrTo = kw('RdrTo', 'rdr-to');
export const NatTo = kw('NatTo', 'nat-to');
export const Nat = kw('Nat', 'nat');
export const Pass = kw('Pass', 'pass');
export const Match = kw('Match', 'match');
export const Block = kw('Block', 'block');
export const In = kw('In', 'in');
export const Out = kw('Out', 'out');
export const Quick = kw('Quick', 'quick');
export const On = kw('On', 'on');
export const Inet6 = kw('Inet6', 'inet6');
export const Inet = kw('Inet', 'inet');
export const Proto = kw('Proto', 'proto');
export const Tcp = kw('Tcp', 'tcp');
export const Udp = kw('Udp', 'udp');
/** The balancer tier's pass rules: CARP advertisements and pfsync state messages (protocols 112 and 240). */
export const Carp = kw('Carp', 'carp');
export const Pfsync = kw('Pfsync', 'pfsync');
export const NoSync = kw('NoSync', 'no-sync');
export const From = kw('From', 'from');
export const To = kw('To', 'to');
export const All = kw('All', 'all');
export const Any = kw('Any', 'any');
export const Port = kw('Port', 'port');
export const Tagged = kw('Tagged', 'tagged');
export const Tag = kw('Tag', 'tag');
export const Keep = kw('Keep', 'keep');
export const State = kw('State', 'state');
export const Probability = kw('Probability', 'probability');
export const Flags = kw('Flags', 'flags');
export const Label = kw('Label', 'label');
export const RoundRobin = kw('RoundRobin', 'round-robin');
export const Random = kw('Random', 'random');
export const SourceHash = kw('SourceHash', 'source-hash');
export const Bitmask = kw('Bitmask', 'bitmask');
export const LeastStates = kw('LeastStates', 'least-states');
export const StickyAddress = kw('StickyAddress', 'sticky-address');
export const Set = kw('Set', 'set');
export const Timeout = kw('Timeout', 'timeout');
export const Max = kw('Max', 'max');
export const Drop = kw('Drop', 'drop');
export const Return = kw('Return', 'return');

/** Order matters: longer keywords before their prefixes, addresses before numbers, Word last. */
export const allTokens: TokenType[] = [
  WhiteSpace, LineContinuation, Comment, Newline,
  LBrace, RBrace, LParen, RParen, Comma, Arrow, Lt, Gt, Slash, Bang, QuotedString,
  Percent, Ipv6Address, Ipv4Address, Colon, Star, HexKey, NumberLit,
  Table, Persist, Const, Counters, Weight, RdrTo, Rdr, NatTo, Nat, NoSync, No, Pass, Match, Block, Inet6, Inet, In, Out, Quick, On,
  Proto, Tcp, Udp, Carp, Pfsync, From, To, All, Any, Port, Tagged, Tag, Keep, State, Probability, Flags, Label,
  RoundRobin, Random, SourceHash, Bitmask, LeastStates, StickyAddress, Set, Timeout, Max, Drop, Return,
  Word,
];

export const pfLexer = new Lexer(allTokens, { ensureOptimizations: false, positionTracking: 'full' });
