/**
 * A one-pass reader for the plain block YAML that specs are written in, because the yaml package needs
 * about a second for ten thousand services. It accepts a deliberately small subset and must produce exactly
 * the tree parse.ts builds from the yaml package for it (values, types, `quoted`, every line and column);
 * for anything else — including every malformed input — it returns null and the yaml package reads the
 * text instead, reporting the errors. It never reports errors itself.
 *
 * The subset: comment and blank lines, an optional leading `---` line; block mappings whose keys are plain
 * words ([A-Za-z_][A-Za-z0-9_-]*, not null/true/false); block sequences, including compact ones (`- a: 1`,
 * `- - a`) and a sequence at the same indentation as its key; single-line plain, single-quoted and
 * double-quoted scalars; single-line flow sequences and mappings. Plain scalars resolve with the YAML 1.2
 * core schema (YAML 1.2.2 §10.3.2).
 *
 * Lines may end in LF or CRLF. It gives up (returns null) on: tabs, a CR outside CRLF, BOM, NUL and other
 * control characters, unpaired surrogates, U+2028/U+2029; directives, document end markers and more than
 * one document; anchors, aliases, tags, block scalars (| >), explicit keys (?), quoted or non-word keys,
 * keys longer than 1000 characters, duplicate keys; scalars or flow collections spanning lines; a scalar
 * alone on its own line as a value; empty flow values, trailing commas, `:` before a space or a flow
 * indicator inside flow collections; text after a quoted scalar or flow collection other than a comment;
 * any line whose indentation does not line up with an open collection; nesting deeper than parse.ts
 * allows; an empty document.
 */
import type { SourceLocation } from '../diagnostics/diagnostic.js';
import type { SMapEntry, SNode, SScalar } from './ast.js';

/** parse.ts's limit; a deeper node is left to the yaml path, which reports it. */
const MAX_DEPTH = 64;
/** YAML limits an implicit key to 1024 characters before its `:`; stay well inside that. */
const MAX_KEY = 1000;

/**
 * Characters the subset never contains: a CR not followed by LF, tab and the other C0/C1 controls, DEL,
 * the Unicode line and paragraph separators, BOM, the noncharacters U+FFFE/U+FFFF, unpaired surrogates.
 */
const UNSAFE = /\r(?!\n)|[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

// YAML 1.2.2 §10.3.2 (core schema) tag resolution for plain scalars.
const INT = /^[-+]?[0-9]+$/;
const INT_OCT = /^0o[0-7]+$/;
const INT_HEX = /^0x[0-9a-fA-F]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;
const INF_NAN = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;

/** Double-quoted escapes (YAML 1.2.2 §5.7) except the tab forms, tabs being outside the subset. */
const ESCAPES: Record<string, string> = {
  '0': '\0',
  a: '\x07',
  b: '\b',
  e: '\x1b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  N: '\u0085',
  _: '\u00a0',
  L: '\u2028',
  P: '\u2029',
  ' ': ' ',
  '"': '"',
  '/': '/',
  '\\': '\\',
};

const C_SPACE = 32;
const C_HASH = 35;
const C_DASH = 45;
const C_COLON = 58;
const C_DQUOTE = 34;
const C_SQUOTE = 39;
const C_LBRACKET = 91;
const C_RBRACKET = 93;
const C_LBRACE = 123;
const C_RBRACE = 125;
const C_COMMA = 44;

/** Thrown to abandon the fast path; caught in readSimpleYaml only. */
const BAIL = Symbol('not in the simple subset');

/**
 * The positioned tree of `text`, or null when the text is outside the subset this reader is sure about
 * (then the yaml package must read it).
 */
export function readSimpleYaml(text: string, file: string): SNode | null {
  if (text.length === 0 || UNSAFE.test(text)) return null;
  try {
    return new Reader(text, file).document();
  } catch (e) {
    if (e === BAIL) return null;
    throw e;
  }
}

function bail(): never {
  throw BAIL;
}

/** A key character: [A-Za-z0-9_-]; `first` excludes digits and the dash. */
function isKeyChar(c: number, first: boolean): boolean {
  if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95) return true;
  return !first && ((c >= 48 && c <= 57) || c === C_DASH);
}

/** Plain words the core schema reads as null or a boolean: not a usable key. */
function isReservedWord(k: string): boolean {
  switch (k) {
    case 'null':
    case 'Null':
    case 'NULL':
    case 'true':
    case 'True':
    case 'TRUE':
    case 'false':
    case 'False':
    case 'FALSE':
      return true;
  }
  return false;
}

/** Cannot start a plain scalar (YAML 1.2.2 §7.3.3 ns-plain-first), or starts something outside the subset. */
function isIndicator(c: number): boolean {
  switch (c) {
    case 44: // ,
    case 91: // [
    case 93: // ]
    case 123: // {
    case 125: // }
    case 35: // #
    case 38: // &
    case 42: // *
    case 33: // !
    case 124: // |
    case 62: // >
    case 39: // '
    case 34: // "
    case 37: // %
    case 64: // @
    case 96: // `
      return true;
  }
  return false;
}

function isFlowIndicator(c: number): boolean {
  return c === C_COMMA || c === C_LBRACKET || c === C_RBRACKET || c === C_LBRACE || c === C_RBRACE;
}

/**
 * Bails when `key` is already in the mapping (the yaml path reports duplicates as errors). Small mappings
 * are compared directly; from the ninth key on a set keeps long mappings linear. Returns the set to use next.
 */
function uniqueKey(entries: readonly SMapEntry[], seen: Set<string> | null, key: string): Set<string> | null {
  if (seen) {
    if (seen.has(key)) bail();
    return seen.add(key);
  }
  for (const e of entries) if (e.key === key) bail();
  return entries.length >= 8 ? new Set(entries.map((e) => e.key)).add(key) : null;
}

/** A plain scalar's value under the core schema (YAML 1.2.2 §10.3.2). */
function plainValue(s: string): string | number | boolean | null {
  const c = s.charCodeAt(0);
  switch (c) {
    case 126: // ~
      return s.length === 1 ? null : s;
    case 110: // n
    case 78: // N
      return s === 'null' || s === 'Null' || s === 'NULL' ? null : s;
    case 116: // t
    case 84: // T
      return s === 'true' || s === 'True' || s === 'TRUE' ? true : s;
    case 102: // f
    case 70: // F
      return s === 'false' || s === 'False' || s === 'FALSE' ? false : s;
  }
  if ((c >= 48 && c <= 57) || c === 43 || c === C_DASH || c === 46) {
    if (INT.test(s)) return parseInt(s, 10);
    if (INT_OCT.test(s)) return parseInt(s.slice(2), 8);
    if (INT_HEX.test(s)) return parseInt(s.slice(2), 16);
    if (FLOAT.test(s)) return parseFloat(s);
    if (INF_NAN.test(s)) {
      if (s.endsWith('nan') || s.endsWith('NaN') || s.endsWith('NAN')) return NaN;
      return s.charCodeAt(0) === C_DASH ? -Infinity : Infinity;
    }
  }
  return s;
}

class Reader {
  /** Start of the current line. */
  private ls = 0;
  /** End of the current line (its newline, or the end of the text). */
  private le = 0;
  /** First non-space character of the current line (== le for a blank line). */
  private cs = 0;
  /** 1-based number of the current line. */
  private ln = 1;
  private eof = false;
  /** Where the last flow node or quoted scalar ended. */
  private fp = 0;
  /**
   * Next-occurrence caches for characters searched with indexOf: each holds the first occurrence at or
   * after `from` (Infinity for none), so rare characters are not searched for to the end of the text
   * again for every scalar.
   */
  private readonly hash = { from: Infinity, at: Infinity };
  private readonly backslash = { from: Infinity, at: Infinity };
  private readonly colon = { from: Infinity, at: Infinity };

  constructor(
    private readonly t: string,
    private readonly file: string,
  ) {}

  document(): SNode {
    this.load(0);
    // Skip leading comments; a single `---` may open the document.
    for (;;) {
      if (this.eof) bail();
      if (this.cs === this.le || this.t.charCodeAt(this.cs) === C_HASH) {
        this.nextLine();
        continue;
      }
      if (this.cs === this.ls && this.t.startsWith('---', this.ls)) {
        this.trailing(this.ls + 3, this.ls + 3);
        this.nextLine();
      }
      break;
    }
    this.skip();
    if (this.eof) bail();
    const root = this.blockNode(0);
    if (!this.eof) bail();
    return root;
  }

  private at(p: number): SourceLocation {
    return { file: this.file, line: this.ln, column: p - this.ls + 1 };
  }

  private load(start: number): void {
    const t = this.t;
    this.ls = start;
    let le = t.indexOf('\n', start);
    if (le < 0) le = t.length;
    // CRLF: the CR belongs to the line break (the yaml package's lexer treats "\r\n" as one), never to content.
    else if (le > start && t.charCodeAt(le - 1) === 13) le--;
    this.le = le;
    let p = start;
    while (p < le && t.charCodeAt(p) === C_SPACE) p++;
    this.cs = p;
  }

  private nextLine(): void {
    const nl = this.t.indexOf('\n', this.le);
    if (nl < 0) {
      this.eof = true;
      return;
    }
    this.ln++;
    this.load(nl + 1);
  }

  /** Move to the next line with content (or the end); a line there at column 1 must not be a marker or directive. */
  private skip(): void {
    const t = this.t;
    for (;;) {
      if (this.eof) return;
      const cs = this.cs;
      if (cs === this.le || t.charCodeAt(cs) === C_HASH) {
        this.nextLine();
        continue;
      }
      if (cs === this.ls) {
        const c = t.charCodeAt(cs);
        if (c === 37 || ((c === C_DASH || c === 46) && (t.startsWith('---', cs) || t.startsWith('...', cs)))) bail();
      }
      return;
    }
  }

  /** First index >= p holding `ch` (Infinity for none), through one of the caches. */
  private next(cache: { from: number; at: number }, ch: string, p: number): number {
    if (p < cache.from || p > cache.at) {
      const i = this.t.indexOf(ch, p);
      cache.from = p;
      cache.at = i < 0 ? Infinity : i;
    }
    return cache.at;
  }

  /** After a node ending at `end` (scanning from `p`): only spaces, then the line's end or a comment. */
  private trailing(p: number, end: number): void {
    const t = this.t;
    const le = this.le;
    while (p < le && t.charCodeAt(p) === C_SPACE) p++;
    if (p === le) return;
    if (t.charCodeAt(p) === C_HASH && p > end) return;
    bail();
  }

  /** `-` followed by a space or the end of the line. */
  private isSeqMark(p: number): boolean {
    if (this.t.charCodeAt(p) !== C_DASH) return false;
    return p + 1 === this.le || this.t.charCodeAt(p + 1) === C_SPACE;
  }

  /** Where the `:` of a word key starting at p is, or -1 when p does not start `word:` + space/end of line. */
  private keyEnd(p: number): number {
    const t = this.t;
    const le = this.le;
    if (p >= le || !isKeyChar(t.charCodeAt(p), true)) return -1;
    let i = p + 1;
    while (i < le && isKeyChar(t.charCodeAt(i), false)) i++;
    if (i >= le || t.charCodeAt(i) !== C_COLON) return -1;
    if (i + 1 < le && t.charCodeAt(i + 1) !== C_SPACE) return -1;
    return i;
  }

  private key(p: number, colon: number): string {
    if (colon - p > MAX_KEY) bail();
    const k = this.t.slice(p, colon);
    if (isReservedWord(k)) bail();
    return k;
  }

  /** A block collection starting the current line. */
  private blockNode(depth: number): SNode {
    const cs = this.cs;
    if (this.isSeqMark(cs)) return this.seq(cs, depth);
    if (this.keyEnd(cs) >= 0) return this.map(cs, depth);
    return bail();
  }

  private map(p: number, depth: number): SNode {
    if (depth > MAX_DEPTH) bail();
    const t = this.t;
    const col = p - this.ls;
    const loc = this.at(p);
    const entries: SMapEntry[] = [];
    let seen: Set<string> | null = null;
    for (;;) {
      const colon = this.keyEnd(p);
      if (colon < 0) bail();
      const key = this.key(p, colon);
      seen = uniqueKey(entries, seen, key);
      const keyLoc = this.at(p);
      let q = colon + 1;
      while (q < this.le && t.charCodeAt(q) === C_SPACE) q++;
      let value: SNode;
      if (q === this.le || t.charCodeAt(q) === C_HASH) {
        // Nothing after the colon: the value is on the lines below, or null (located where the yaml
        // package puts an empty node: the first non-space after the colon).
        const nullLoc = this.at(q);
        this.nextLine();
        this.skip();
        if (!this.eof && this.cs - this.ls > col) value = this.blockNode(depth + 1);
        // A sequence may sit at its key's own indentation (YAML 1.2.2 §8.2.1, seq-spaces for block-out).
        else if (!this.eof && this.cs - this.ls === col && this.isSeqMark(this.cs)) value = this.seq(this.cs, depth + 1);
        else value = { kind: 'scalar', value: null, quoted: false, loc: nullLoc };
      } else {
        value = this.inline(q, depth + 1);
        this.nextLine();
        this.skip();
      }
      entries.push({ key, keyLoc, value });
      if (this.eof) break;
      const ind = this.cs - this.ls;
      if (ind < col) break;
      if (ind > col) bail();
      if (this.isSeqMark(this.cs)) break;
      p = this.cs;
    }
    return { kind: 'map', entries, loc };
  }

  private seq(p: number, depth: number): SNode {
    if (depth > MAX_DEPTH) bail();
    const t = this.t;
    const col = p - this.ls;
    const loc = this.at(p);
    const items: SNode[] = [];
    for (;;) {
      let q = p + 1;
      while (q < this.le && t.charCodeAt(q) === C_SPACE) q++;
      let item: SNode;
      if (q === this.le || t.charCodeAt(q) === C_HASH) {
        const nullLoc = this.at(q);
        this.nextLine();
        this.skip();
        if (!this.eof && this.cs - this.ls > col) item = this.blockNode(depth + 1);
        else item = { kind: 'scalar', value: null, quoted: false, loc: nullLoc };
      } else if (this.isSeqMark(q)) {
        item = this.seq(q, depth + 1);
      } else if (this.keyEnd(q) >= 0) {
        item = this.map(q, depth + 1);
      } else {
        item = this.inline(q, depth + 1);
        this.nextLine();
        this.skip();
      }
      items.push(item);
      if (this.eof) break;
      const ind = this.cs - this.ls;
      if (ind < col) break;
      if (ind > col) bail();
      if (!this.isSeqMark(this.cs)) break;
      p = this.cs;
    }
    return { kind: 'seq', items, loc };
  }

  /** A scalar or flow collection that must end on this line (a comment may follow). */
  private inline(q: number, depth: number): SNode {
    if (depth > MAX_DEPTH) bail();
    const c = this.t.charCodeAt(q);
    let node: SNode;
    if (c === C_DQUOTE) node = this.doubleQuoted(q);
    else if (c === C_SQUOTE) node = this.singleQuoted(q);
    else if (c === C_LBRACKET || c === C_LBRACE) node = this.flow(q, depth);
    else return this.blockPlain(q);
    this.trailing(this.fp, this.fp);
    return node;
  }

  /** A plain scalar in block context, running to the end of the line or a ` #` comment. */
  private blockPlain(q: number): SScalar {
    const t = this.t;
    const le = this.le;
    const c0 = t.charCodeAt(q);
    if (c0 === C_DASH || c0 === 63 /* ? */ || c0 === C_COLON) {
      if (q + 1 >= le || t.charCodeAt(q + 1) === C_SPACE) bail();
    } else if (isIndicator(c0)) bail();
    // The scalar ends at a comment (` #`) or the end of the line, trailing spaces trimmed.
    let end = le;
    for (let h = this.next(this.hash, '#', q + 1); h < le; h = this.next(this.hash, '#', h + 1)) {
      if (t.charCodeAt(h - 1) === C_SPACE) {
        end = h;
        break;
      }
    }
    // `: ` or a final `:` would make this a nested mapping, which YAML rejects here.
    for (let c = this.next(this.colon, ':', q + 1); c < end; c = this.next(this.colon, ':', c + 1)) {
      if (c + 1 === le || t.charCodeAt(c + 1) === C_SPACE) bail();
    }
    while (t.charCodeAt(end - 1) === C_SPACE) end--;
    return { kind: 'scalar', value: plainValue(t.slice(q, end)), quoted: false, loc: this.at(q) };
  }

  private doubleQuoted(q: number): SScalar {
    const t = this.t;
    const le = this.le;
    const close = t.indexOf('"', q + 1);
    if (close < 0 || close >= le) bail();
    if (this.next(this.backslash, '\\', q + 1) > close) {
      this.fp = close + 1;
      return { kind: 'scalar', value: t.slice(q + 1, close), quoted: true, loc: this.at(q) };
    }
    let i = q + 1;
    let out = '';
    let chunk = i;
    for (;;) {
      if (i >= le) bail();
      const c = t.charCodeAt(i);
      if (c === C_DQUOTE) {
        out += t.slice(chunk, i);
        this.fp = i + 1;
        return { kind: 'scalar', value: out, quoted: true, loc: this.at(q) };
      }
      if (c === 92 /* \ */) {
        out += t.slice(chunk, i);
        if (i + 1 >= le) bail();
        const e = t[i + 1];
        const simple = ESCAPES[e];
        if (simple !== undefined && Object.prototype.hasOwnProperty.call(ESCAPES, e)) {
          out += simple;
          i += 2;
        } else if (e === 'x' || e === 'u' || e === 'U') {
          const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
          if (i + 2 + n > le) bail();
          const hex = t.slice(i + 2, i + 2 + n);
          if (!/^[0-9a-fA-F]+$/.test(hex)) bail();
          const code = parseInt(hex, 16);
          if (code > 0x10ffff) bail();
          out += String.fromCodePoint(code);
          i += 2 + n;
        } else bail();
        chunk = i;
        continue;
      }
      i++;
    }
  }

  private singleQuoted(q: number): SScalar {
    const t = this.t;
    const le = this.le;
    let i = q + 1;
    let out = '';
    let chunk = i;
    for (;;) {
      if (i >= le) bail();
      if (t.charCodeAt(i) === C_SQUOTE) {
        if (i + 1 < le && t.charCodeAt(i + 1) === C_SQUOTE) {
          out += t.slice(chunk, i + 1);
          i += 2;
          chunk = i;
          continue;
        }
        out += t.slice(chunk, i);
        this.fp = i + 1;
        return { kind: 'scalar', value: out, quoted: true, loc: this.at(q) };
      }
      i++;
    }
  }

  private spaces(p: number): number {
    const t = this.t;
    while (p < this.le && t.charCodeAt(p) === C_SPACE) p++;
    if (p >= this.le) bail(); // a flow collection continuing on the next line
    return p;
  }

  /** A flow sequence or mapping closed on the same line; sets fp after its closing bracket. */
  private flow(p: number, depth: number): SNode {
    if (depth > MAX_DEPTH) bail();
    const t = this.t;
    const loc = this.at(p);
    if (t.charCodeAt(p) === C_LBRACKET) {
      const items: SNode[] = [];
      p = this.spaces(p + 1);
      if (t.charCodeAt(p) === C_RBRACKET) {
        this.fp = p + 1;
        return { kind: 'seq', items, loc };
      }
      for (;;) {
        items.push(this.flowItem(p, depth + 1));
        p = this.spaces(this.fp);
        const c = t.charCodeAt(p);
        if (c === C_COMMA) {
          p = this.spaces(p + 1);
          continue;
        }
        if (c === C_RBRACKET) {
          this.fp = p + 1;
          return { kind: 'seq', items, loc };
        }
        bail();
      }
    }
    const entries: SMapEntry[] = [];
    let seen: Set<string> | null = null;
    p = this.spaces(p + 1);
    if (t.charCodeAt(p) === C_RBRACE) {
      this.fp = p + 1;
      return { kind: 'map', entries, loc };
    }
    for (;;) {
      const colon = this.keyEnd(p);
      // In a flow mapping the colon must be followed by a space here (not `,` or `}`: an empty value).
      if (colon < 0 || colon + 1 >= this.le) bail();
      const key = this.key(p, colon);
      seen = uniqueKey(entries, seen, key);
      const keyLoc = this.at(p);
      const q = this.spaces(colon + 1);
      const c0 = t.charCodeAt(q);
      if (c0 === C_COMMA || c0 === C_RBRACE) bail();
      entries.push({ key, keyLoc, value: this.flowItem(q, depth + 1) });
      p = this.spaces(this.fp);
      const c = t.charCodeAt(p);
      if (c === C_COMMA) {
        p = this.spaces(p + 1);
        continue;
      }
      if (c === C_RBRACE) {
        this.fp = p + 1;
        return { kind: 'map', entries, loc };
      }
      bail();
    }
  }

  /** A character that may follow `:` (or a leading `-`/`?`) inside a flow plain scalar: not space, not a flow indicator. */
  private flowSafe(p: number): boolean {
    if (p >= this.le) return false;
    const c = this.t.charCodeAt(p);
    return c !== C_SPACE && !isFlowIndicator(c);
  }

  /** One element of a flow collection; sets fp after it. */
  private flowItem(p: number, depth: number): SNode {
    if (depth > MAX_DEPTH) bail();
    const t = this.t;
    const le = this.le;
    const c0 = t.charCodeAt(p);
    if (c0 === C_LBRACKET || c0 === C_LBRACE) return this.flow(p, depth);
    if (c0 === C_DQUOTE) return this.doubleQuoted(p);
    if (c0 === C_SQUOTE) return this.singleQuoted(p);
    // `-`, `?` and `:` start a plain scalar only before a "safe" character (YAML 1.2.2 §7.3.3), which
    // inside a flow collection excludes the flow indicators.
    if (c0 === C_DASH || c0 === 63 /* ? */ || c0 === C_COLON) {
      if (!this.flowSafe(p + 1)) bail();
    } else if (isIndicator(c0)) bail();
    let i = p + 1;
    let last = i;
    for (;;) {
      if (i >= le) bail();
      const c = t.charCodeAt(i);
      if (c === C_SPACE) {
        i++;
        continue;
      }
      if (isFlowIndicator(c)) break;
      // `: `, `:,` or `:]` would make a key of what came before; a comment would end the line inside the flow.
      if ((c === C_COLON && !this.flowSafe(i + 1)) || (c === C_HASH && t.charCodeAt(i - 1) === C_SPACE)) bail();
      last = ++i;
    }
    this.fp = i;
    return { kind: 'scalar', value: plainValue(t.slice(p, last)), quoted: false, loc: this.at(p) };
  }
}
