/**
 * pf.conf grammar for the rulesets lbc emits (targets pf and pf-openbsd).
 *
 * API
 *   parsePf(text, dialect = 'freebsd'): PfAst
 *       Lexes and parses with chevrotain (one reused parser instance), builds a
 *       typed AST with a CST visitor and applies pfctl's own checks for the
 *       covered constructs. Throws PfSyntaxError (with .line/.column) on any
 *       text pfctl would reject. dialect 'freebsd' is the classic ruleset
 *       (rdr … -> …; no rdr-to, no table weights); 'openbsd' is the filter-rule
 *       translation form (pass/match … rdr-to …; no rdr rules).
 *   pfMeaning(ast): PfServiceMeaning[]
 *       The semantic model: per balanced service its family, protocol,
 *       interface, destination and port, the pool choice (round-robin,
 *       random, source-hash, probability cascade, single), stickiness and its
 *       src.track timeout, and the share of new connections per (address,
 *       port). Throws PfMeaningError for constructs it does not model.
 *   compareToService(svc, meaning): string[]
 *       Differences between an IR service and a meaning (empty = same).
 *
 * Covered statements: `table <t> [persist|const|counters] { addr[/len] [weight N], … }`,
 * `set timeout NAME N`, `[no] rdr [pass] [on IF] [inet|inet6] [proto tcp|udp]
 * (all | from H [port P] to H [port P]) [tag T] -> POOL [port P[:P2|:*]] [pool options]`,
 * `pass|match|block [in|out] [quick] … [tagged T] [tag T] [keep state (opts)]
 * [probability N%] [rdr-to POOL …] [flags S/SA] [label "…"]`; comments and `\` continuations.
 * Sources: pf.conf(5) of FreeBSD and OpenBSD; sbin/pfctl/parse.y of both.
 */
import { pfLexer } from './lexer.js';
import { pfParser } from './parser.js';
import { buildAst, PfSyntaxError, type PfAst, type PfDialect } from './ast.js';

export { PfSyntaxError } from './ast.js';
export type { PfAst, PfDialect, PfStatement, TableStmt, RdrStmt, FilterStmt, SetTimeoutStmt, Pool, PoolHost, HostSpec, PoolType } from './ast.js';
export { pfMeaning, PfMeaningError, expandPrefix } from './meaning.js';
export type { PfServiceMeaning, PfTargetShare, PfDestination } from './meaning.js';
export { compareToService, expectedTargets, localAddress, SHARE_TOLERANCE } from './compare.js';

export function parsePf(text: string, dialect: PfDialect = 'freebsd'): PfAst {
  const lexed = pfLexer.tokenize(text);
  if (lexed.errors.length) {
    const e = lexed.errors[0];
    throw new PfSyntaxError(`unexpected character ${JSON.stringify(text.substr(e.offset, 1))}`, e.line ?? 1, e.column ?? 1);
  }
  pfParser.input = lexed.tokens;
  const cst = pfParser.file();
  if (pfParser.errors.length) {
    const e = pfParser.errors[0];
    throw new PfSyntaxError(`syntax error near ${JSON.stringify(e.token.image)}`, e.token.startLine ?? 1, e.token.startColumn ?? 1);
  }
  return buildAst(cst, dialect);
}
