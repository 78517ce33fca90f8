/**
 * Pieces shared by the ipnat.conf and ipf.conf grammars: the problem type
 * every stage reports with a position, address handling (canonical text,
 * masking as ipnat/ipf do when they load a rule) and the lexer tokens both
 * languages spell the same way.
 *
 * Both FreeBSD parsers are yacc grammars over one hand-written lexer
 * (sbin/ipf/common/lexer.c). Facts about that lexer that shape the tokens here:
 * - '#' starts a comment that runs to the end of the line;
 * - "=,/;{}()@" always stand alone; '-' stands alone unless it is inside a
 *   word ("round-robin") and "->" is one token;
 * - a word that starts with a digit is a number (YY_NUMBER), so interface
 *   names must start with a letter;
 * - keywords are matched case-insensitively (yyfindkey uses strcasecmp), so an
 *   interface called "port" would be read as the keyword.
 */
import { createToken, Lexer, type IToken, type TokenType } from 'chevrotain';
import { Address4, Address6 } from 'ip-address';

export type AddrFamily = 'ipv4' | 'ipv6';

/** A problem found while reading a rules file; line and column are 1-based. */
export interface GrammarProblem {
  severity: 'error' | 'warning';
  message: string;
  line: number;
  column: number;
}

/** Thrown by parseIpnat/parseIpf when the text is not something the real tool would load. */
export class GrammarError extends Error {
  readonly problems: GrammarProblem[];
  constructor(what: string, problems: GrammarProblem[]) {
    super(`${what}: ${problems.map((p) => `${p.line}:${p.column}: ${p.message}`).join('; ')}`);
    this.name = 'GrammarError';
    this.problems = problems;
  }
}

/** An address with its mask, as the tool stores it after loading (host bits cleared). */
export interface MaskedAddress {
  family: AddrFamily;
  /** Canonical text of the masked address (dotted quad, or RFC 5952 for IPv6). */
  address: string;
  prefixLength: number;
}

export function familyBits(f: AddrFamily): number {
  return f === 'ipv4' ? 32 : 128;
}

/** Canonical text of a literal, or null when it is not an address of that family. */
export function canonicalAddress(text: string, family: AddrFamily): string | null {
  try {
    if (family === 'ipv4') {
      if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) return null;
      if (text.split('.').some((o) => Number(o) > 255)) return null;
      return text
        .split('.')
        .map((o) => String(Number(o)))
        .join('.');
    }
    if (!Address6.isValid(text)) return null;
    return new Address6(text).correctForm();
  } catch {
    return null;
  }
}

/** The network of address/len (ipnat_y.y and ipf_y.y AND the address with the mask). */
export function maskAddress(address: string, family: AddrFamily, prefixLength: number): MaskedAddress {
  const start =
    family === 'ipv4'
      ? new Address4(`${address}/${prefixLength}`).startAddress().correctForm()
      : new Address6(`${address}/${prefixLength}`).startAddress().correctForm();
  return { family, address: start, prefixLength };
}

export function addressBits(address: string, family: AddrFamily): bigint {
  return family === 'ipv4' ? new Address4(address).bigInt() : new Address6(address).bigInt();
}

/** Whether prefix `outer` contains prefix `inner` (same family). */
export function prefixContains(outer: MaskedAddress, inner: MaskedAddress): boolean {
  if (outer.family !== inner.family || inner.prefixLength < outer.prefixLength) return false;
  const shift = BigInt(familyBits(outer.family) - outer.prefixLength);
  return addressBits(outer.address, outer.family) >> shift === addressBits(inner.address, inner.family) >> shift;
}

export function prefixText(p: MaskedAddress): string {
  return `${p.address}/${p.prefixLength}`;
}

// ---------------------------------------------------------------------------
// Tokens common to both languages.

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r]+/, group: Lexer.SKIPPED });
/** A backslash at the end of a line joins it with the next (lexer.c: lnext). */
export const LineContinuation = createToken({ name: 'LineContinuation', pattern: /\\\r?\n/, group: Lexer.SKIPPED, line_breaks: true });
export const Comment = createToken({ name: 'Comment', pattern: /#[^\n]*/, group: Lexer.SKIPPED });
export const NewLine = createToken({ name: 'NewLine', pattern: /\n/, line_breaks: true });
export const Semicolon = createToken({ name: 'Semicolon', pattern: /;/ });
export const Comma = createToken({ name: 'Comma', pattern: /,/ });
export const Slash = createToken({ name: 'Slash', pattern: /\// });
export const Arrow = createToken({ name: 'Arrow', pattern: /->/ });
export const Dash = createToken({ name: 'Dash', pattern: /-/ });
export const Equals = createToken({ name: 'Equals', pattern: /=/ });

/**
 * IPv6 literal: at least two colons, hex groups, optional embedded dotted quad.
 * Checked with a custom matcher so "4001:4008" (a port range) stays two numbers.
 */
export const IPv6 = createToken({
  name: 'IPv6',
  pattern: {
    exec(text: string, offset: number) {
      const m = /^[0-9A-Fa-f:.]+/.exec(text.slice(offset, offset + 46));
      if (!m) return null;
      // The longest prefix of the run that is an address (lexer.c buildipv6 + inet_pton).
      for (let s = m[0]; s.length > 0; s = s.slice(0, -1)) {
        if ((s.match(/:/g) ?? []).length >= 2 && Address6.isValid(s)) {
          const r = [s] as unknown as RegExpExecArray;
          r.index = offset;
          r.input = text;
          return r;
        }
      }
      return null;
    },
  },
  line_breaks: false,
  start_chars_hint: [...'0123456789abcdefABCDEF:'],
});
export const IPv4 = createToken({ name: 'IPv4', pattern: /\d+\.\d+\.\d+\.\d+/ });
export const NumberTok = createToken({ name: 'Number', pattern: /\d+/ });

/** A word: interface names, tags, protocol names. Keywords are declared with longer_alt: Word. */
export const Word = createToken({ name: 'Word', pattern: /[A-Za-z_][A-Za-z0-9_.-]*/ });

export function keyword(name: string, text: string): TokenType {
  const escaped = text.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&');
  return createToken({ name, pattern: new RegExp(escaped, 'i'), longer_alt: Word });
}

export function tokenProblem(tok: IToken | undefined, message: string, severity: 'error' | 'warning' = 'error'): GrammarProblem {
  return { severity, message, line: tok?.startLine ?? 1, column: tok?.startColumn ?? 1 };
}
