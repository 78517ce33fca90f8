/**
 * Spec text (YAML, or JSON, which YAML 1.2 reads too) → positioned syntax tree.
 * Syntax problems become diagnostics with file:line:col; nothing here throws on bad input.
 */
import { Alias, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YNode, type Document } from 'yaml';
import { DiagnosticBag, type SourceLocation } from '../diagnostics/diagnostic.js';
import type { SNode, SMapEntry } from './ast.js';
import { JsonSyntaxError, parseJsonSpec } from './json.js';
import { readSimpleYaml } from './yaml-fast.js';

/** Aliases can multiply a document (the "billion laughs"); no spec needs more nodes reached through aliases than this. */
const MAX_ALIAS_NODES = 100_000;
/** Deeper than any spec; stops runaway recursion on hostile input. */
const MAX_DEPTH = 64;

export interface ParsedSpec {
  root: SNode | null;
  file: string;
}

export function parseSpecText(text: string, file: string, bag: DiagnosticBag): ParsedSpec {
  const nul = text.indexOf('\u0000');
  if (nul >= 0) {
    const lineStart = text.lastIndexOf('\n', nul - 1) + 1;
    const line = text.slice(0, lineStart).split('\n').length;
    bag.error('LBC1001', 'the spec contains a NUL byte; it must be UTF-8 text', { file, line, column: nul - lineStart + 1 });
    return { root: null, file };
  }
  // JSON (a .json file, or text that opens with "{") takes the one-pass reader; a YAML file that merely
  // starts with a flow mapping falls back to the YAML parser when it is not valid JSON.
  const isJsonFile = /\.json$/i.test(file);
  if (isJsonFile || /^\s*\{/.test(text)) {
    try {
      return { root: parseJsonSpec(text, file), file };
    } catch (e) {
      if (!(e instanceof JsonSyntaxError)) throw e;
      if (isJsonFile) {
        bag.error('LBC1008', `JSON syntax: ${e.message}`, e.loc);
        return { root: null, file };
      }
    }
  }
  // Plain block YAML, as people write specs, takes a one-pass reader too; it steps aside (null) for
  // anything outside the subset it is sure about, including every error, and the yaml package reads that.
  const simple = readSimpleYaml(text, file);
  if (simple) return { root: simple, file };
  return parseWithYamlPackage(text, file, bag);
}

/**
 * The general YAML path: the yaml package reads anything YAML 1.2 allows and reports every syntax error.
 * readSimpleYaml() must give exactly this tree for whatever it accepts (its tests compare the two).
 */
export function parseWithYamlPackage(text: string, file: string, bag: DiagnosticBag): ParsedSpec {
  const lines = new LineCounter();
  const at = (offset: number): SourceLocation => {
    const p = lines.linePos(Math.max(0, Math.min(offset, text.length)));
    return { file, line: p.line, column: p.col };
  };
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true, version: '1.2' });
  } catch (e) {
    bag.error('LBC1002', `the spec cannot be read: ${(e as Error).message}`, at(0));
    return { root: null, file };
  }
  for (const err of doc.errors) {
    bag.error('LBC1003', yamlMessage(err.code, err.message), at(err.pos[0]));
  }
  if (bag.hasErrors) return { root: null, file };
  if (doc.contents === null) {
    bag.error('LBC1004', 'the spec is empty; it needs at least `version: 1` and `services:`', at(0));
    return { root: null, file };
  }
  let count = 0;
  const convert = (node: YNode | Alias | null, fallback: number, depth: number, viaAlias = false): SNode => {
    if ((viaAlias && ++count > MAX_ALIAS_NODES) || depth > MAX_DEPTH) {
      throw new TooBig(at(node?.range?.[0] ?? fallback));
    }
    if (node === null) return { kind: 'scalar', value: null, quoted: false, loc: at(fallback) };
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (!target) return { kind: 'scalar', value: null, quoted: false, loc: at(node.range?.[0] ?? fallback) };
      return convert(target as YNode, node.range?.[0] ?? fallback, depth + 1, true);
    }
    const start = node.range?.[0] ?? fallback;
    const loc = at(start);
    if (isMap(node)) {
      const entries: SMapEntry[] = [];
      for (const pair of node.items) {
        const k = pair.key as YNode | null;
        const kStart = k?.range?.[0] ?? start;
        if (!isScalar(k) || (typeof k.value !== 'string' && typeof k.value !== 'number')) {
          bag.error('LBC1005', 'a key must be a plain word', at(kStart));
          continue;
        }
        entries.push({ key: String(k.value), keyLoc: at(kStart), value: convert(pair.value as YNode | null, k.range?.[1] ?? kStart, depth + 1, viaAlias) });
      }
      return { kind: 'map', entries, loc };
    }
    if (isSeq(node)) {
      return { kind: 'seq', items: node.items.map((it) => convert(it as YNode | null, start, depth + 1, viaAlias)), loc };
    }
    if (isScalar(node)) {
      const v = node.value;
      const quoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE';
      if (v === null || typeof v === 'string' || typeof v === 'boolean') return { kind: 'scalar', value: v, quoted, loc };
      if (typeof v === 'number') return { kind: 'scalar', value: v, quoted, loc };
      if (typeof v === 'bigint') return { kind: 'scalar', value: Number(v), quoted, loc };
      bag.error('LBC1006', `unsupported value (${node.tag ?? typeof v}); use a plain number, string or boolean`, loc);
      return { kind: 'scalar', value: null, quoted, loc };
    }
    bag.error('LBC1006', 'unsupported YAML node', loc);
    return { kind: 'scalar', value: null, quoted: false, loc };
  };
  try {
    return { root: convert(doc.contents as YNode, 0, 0), file };
  } catch (e) {
    if (e instanceof TooBig) {
      bag.error('LBC1007', 'the spec is too large or too deeply nested (aliases expand beyond what a spec needs)', e.loc);
      return { root: null, file };
    }
    throw e;
  }
}

class TooBig extends Error {
  constructor(readonly loc: SourceLocation) {
    super('too big');
  }
}

function yamlMessage(code: string, message: string): string {
  if (code === 'DUPLICATE_KEY') return 'this key appears twice in the same mapping';
  // The yaml package's messages are single-line already when prettyErrors is off; keep them, lower-cased start.
  const first = message.split('\n')[0];
  return `YAML syntax: ${first.charAt(0).toLowerCase()}${first.slice(1)}`;
}
