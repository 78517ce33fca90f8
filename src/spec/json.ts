/**
 * A JSON reader that keeps positions, for machine-written specs: YAML's
 * general parser costs seconds for ten thousand services, while JSON needs
 * one pass over the characters. Produces the same positioned tree as the
 * YAML path (spec/ast.ts); a duplicate key is an error, as in YAML.
 */
import type { SourceLocation } from '../diagnostics/diagnostic.js';
import type { ItemSink, SMapEntry, SNode } from './ast.js';
import { MAX_DEPTH, MAX_NODES } from './limits.js';

/** A JSON syntax error (LBC1008), or a limit the text goes past (LBC1007). */
export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly loc: SourceLocation,
    readonly code: 'LBC1008' | 'LBC1007' = 'LBC1008',
  ) {
    super(message);
  }
}

/** `sink`, if given, receives each item of the top-level "services" array as soon as it is read. */
export function parseJsonSpec(text: string, file: string, sink?: ItemSink): SNode {
  let i = 0;
  let nodes = 0;
  let line = 1;
  let lineStart = 0;
  const at = (pos: number): SourceLocation => {
    // Positions are only asked for at or after the last newline seen, except in errors; recount then.
    if (pos >= lineStart) return { file, line, column: pos - lineStart + 1 };
    let l = 1;
    let s = 0;
    for (let k = 0; k < pos; k++) if (text.charCodeAt(k) === 10) (l++, (s = k + 1));
    return { file, line: l, column: pos - s + 1 };
  };
  const fail = (message: string, pos = i): never => {
    throw new JsonSyntaxError(message, at(Math.min(pos, text.length)));
  };
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 10) {
        i++;
        line++;
        lineStart = i;
      } else if (c === 32 || c === 9 || c === 13) i++;
      else return;
    }
  };
  const str = (): string => {
    const start = i++;
    let out = '';
    let chunk = i;
    for (;;) {
      if (i >= text.length) fail('unterminated string', start);
      const c = text.charCodeAt(i);
      if (c === 34) {
        out += text.slice(chunk, i++);
        return out;
      }
      if (c < 32) fail('control character in a string');
      if (c === 92) {
        out += text.slice(chunk, i);
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e in simple) {
          out += simple[e];
          i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else fail('bad escape in a string');
        chunk = i;
        continue;
      }
      i++;
    }
  };
  const value = (depth: number): SNode => {
    if (depth > MAX_DEPTH) throw new JsonSyntaxError(`the spec is nested more than ${MAX_DEPTH} levels deep; no spec needs that`, at(i), 'LBC1007');
    if (++nodes > MAX_NODES) {
      throw new JsonSyntaxError(`the spec holds more than ${MAX_NODES.toLocaleString('en-US')} values, beyond lbc's limits (see "Limits" in the README)`, at(i), 'LBC1007');
    }
    ws();
    const start = i;
    const loc = at(start);
    const c = text[i];
    if (c === '{') {
      i++;
      const entries: SMapEntry[] = [];
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') {
        i++;
        return { kind: 'map', entries, loc };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a quoted key');
        const keyLoc = at(i);
        const key = str();
        if (seen.has(key)) throw new JsonSyntaxError('this key appears twice in the same mapping', keyLoc);
        seen.add(key);
        ws();
        if (text[i] !== ':') fail('expected ":" after a key');
        i++;
        ws();
        entries.push({ key, keyLoc, value: depth === 0 && sink && key === 'services' && text[i] === '[' ? list(depth + 1, sink) : value(depth + 1) });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return { kind: 'map', entries, loc };
        }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') return list(depth, null);
    if (c === '"') return { kind: 'scalar', value: str(), quoted: true, loc };
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 40));
    if (!m) fail('expected a value');
    i += m![0].length;
    const w = m![0];
    return { kind: 'scalar', value: w === 'true' ? true : w === 'false' ? false : w === 'null' ? null : Number(w), quoted: false, loc };
  };
  /**
   * An array; with `give` (the top-level "services"), each item goes to it as soon as it is read and is
   * neither kept nor counted against MAX_NODES.
   */
  const list = (depth: number, give: ItemSink | null): SNode => {
    const loc = at(i);
    i++;
    const items: SNode[] = [];
    const done = (): SNode => (give ? { kind: 'seq', items, loc, streamed: true } : { kind: 'seq', items, loc });
    ws();
    if (text[i] === ']') {
      i++;
      return done();
    }
    for (;;) {
      if (give) {
        const before = nodes;
        const item = value(depth + 1);
        nodes = before;
        give(item);
      } else items.push(value(depth + 1));
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return done();
      }
      fail('expected "," or "]"');
    }
  };
  const root = value(0);
  ws();
  if (i < text.length) fail('unexpected text after the end of the document');
  return root;
}
