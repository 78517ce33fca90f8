/**
 * YAML specs are read from js-yaml's event stream (src/spec/yaml.ts). The yaml package, a second and
 * independent YAML 1.2 parser, is the reference here: for every document both read without error,
 * the tree — values, types, quoting and every line and column — must be the same.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import YAML, { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YNode } from 'yaml';
import { describe, expect, it } from 'vitest';
import { genSpecText } from '../../bench/lib/gen.js';
import { checkSpec, formatDiagnostic } from '../../src/index.js';
import { DiagnosticBag } from '../../src/diagnostics/diagnostic.js';
import type { SNode } from '../../src/spec/ast.js';
import { parseYamlSpec } from '../../src/spec/yaml.js';
import { specArbitrary } from '../property/spec-arbitrary.js';

/** lbc's tree and errors for YAML text. */
function ours(text: string, file = 's.yaml') {
  const bag = new DiagnosticBag();
  const root = parseYamlSpec(text, file, bag);
  return { root, errors: bag.items.filter((d) => d.severity === 'error') };
}

/** The same tree built from the yaml package's document (aliases resolved, -0 read as 0 as the core schema's int does). */
function reference(text: string, file = 's.yaml'): { root: SNode | null; ok: boolean } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true, version: '1.2' });
  if (doc.errors.length > 0 || doc.warnings.length > 0) return { root: null, ok: false };
  const at = (offset: number) => {
    const p = lines.linePos(offset);
    return { file, line: p.line, column: p.col };
  };
  const convert = (node: YNode | null, fallback: number): SNode => {
    if (node === null) return { kind: 'scalar', value: null, quoted: false, loc: at(fallback) };
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (!target) throw new UnknownAlias();
      return convert(target as YNode, fallback);
    }
    const loc = at(node.range![0]);
    if (isMap(node)) {
      return {
        kind: 'map',
        entries: node.items.map((p) => {
          const k = p.key as YNode;
          // lbc refuses keys that are not words or numbers; mark them so such documents are left out.
          const key = isScalar(k) && (typeof k.value === 'string' || typeof k.value === 'number') ? String(k.value) : '\u0000odd';
          return { key, keyLoc: at(k.range![0]), value: convert(p.value as YNode | null, k.range![1]) };
        }),
        loc,
      };
    }
    if (isSeq(node)) return { kind: 'seq', items: node.items.map((it) => convert(it as YNode | null, node.range![0])), loc };
    if (isScalar(node)) {
      return { kind: 'scalar', value: node.value as string | number | boolean | null, quoted: node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE', loc };
    }
    throw new Error('unexpected node');
  };
  try {
    return { root: doc.contents === null ? null : convert(doc.contents as YNode, 0), ok: true };
  } catch (e) {
    if (e instanceof UnknownAlias) return { root: null, ok: false };
    throw e;
  }
}

class UnknownAlias extends Error {}

/** Keys lbc refuses (booleans, null, collections as keys). */
const hasOddKeys = (n: SNode | null): boolean =>
  n !== null && (n.kind === 'map' ? n.entries.some((e) => e.key === '\u0000odd' || hasOddKeys(e.value)) : n.kind === 'seq' ? n.items.some(hasOddKeys) : false);

type Verdict = 'read' | 'refused' | 'only-lbc-refused' | 'only-reference-refused';

/** When both parsers read the text, the trees must be equal; otherwise says who refused it. */
function compare(text: string): Verdict {
  const mine = ours(text);
  // A lone CR is a line break in YAML 1.2 (§5.4), as js-yaml reads it; the yaml package keeps it as text.
  if (/\r(?!\n)/.test(text)) return mine.root === null ? 'refused' : 'read';
  const ref = reference(text);
  if (!ref.ok || ref.root === null || hasOddKeys(ref.root)) return mine.root === null ? 'refused' : 'only-reference-refused';
  if (mine.root === null) {
    for (const e of mine.errors) expect(e.location, text).toBeDefined();
    return 'only-lbc-refused';
  }
  expect(mine.errors, JSON.stringify(text)).toEqual([]);
  // toStrictEqual: -0 is not 0, NaN is NaN, and every loc must match.
  expect(mine.root, JSON.stringify(text)).toStrictEqual(ref.root);
  return 'read';
}

const agrees = (text: string): boolean => compare(text) === 'read';

const fixtureSpecs = readdirSync('fixtures')
  .map((d) => `fixtures/${d}/spec.yaml`)
  .filter((p) => existsSync(p));

describe('YAML specs: real specs', () => {
  it('reads every fixture as the yaml package does', () => {
    expect(fixtureSpecs.length).toBeGreaterThan(0);
    for (const p of fixtureSpecs) expect(agrees(readFileSync(p, 'utf8')), p).toBe(true);
  });

  it('reads the benchmark specs in every style as the yaml package does', () => {
    for (const style of ['linux4', 'linux6', 'bsd'] as const) {
      for (const layout of ['block', 'flow'] as const) expect(agrees(genSpecText(50, style, undefined, layout)), `${style} ${layout}`).toBe(true);
    }
    expect(agrees(YAML.stringify(YAML.parse(genSpecText(20, 'linux4', undefined, 'flow'))))).toBe(true);
  });

  it('reads the forms specs use, with their positions', () => {
    const forms = [
      'a:\nb: 1', // empty values sit after the colon ...
      'a:   # c\nb:   \nc:', // ... at the first non-space after it
      '- \n-\n- # c\n- x',
      'a:\n- x\n- y\nb: 2', // a sequence at its key's indentation
      '- a:\n  - x\n  b: 2',
      '- - a\n  - b\n-   c: 1\n    d: 2',
      '-\n  a: 1\n-\n   - b',
      '  a: 1\n  b:\n     c: 2',
      '--- # doc\n# c\na: 1 # c\n',
      'a: [x, ::1, a:b, :4001, -x, ?y, 2001:db8::3, "q", \'s\', [], {}]',
      '- { address: 2001:db8::3, port: 80, backup: true }',
      'a: {b: [1, {c: d}], e: f}   # c',
      'a: "esc \\" \\\\ \\/ \\n \\t \\x41 \\u00e9 \\U0001F600 \\ "',
      "a: 'it''s' # c",
      'a: x#y\nb: x # y\nc: a  b  \nd: 1:30\ne: ---\nf: x]{,',
      'a: 007\nb: 0x1F\nc: 0o17\nd: 1e3\ne: .5\nf: -.inf\ng: .NaN\nh: -0\ni: 12345678901234567890\nj: 10.96.0.1\nk: ~\nl: NULL\nm: True\nn: yes',
      'a: 1\nb: é 😀 ü\nc: [😀, x]',
      'a:\r\n- x  \r\n- "q" # c\r\n-\r\nb:   \r\n', // CRLF line ends
      'a: &v 10.0.0.1\nb: *v\nc: &m {x: 1}\nd: *m', // anchors and aliases
      'a: !!str 80\nb: !!int "81"\nc: ! 82', // core tags
      'a: |\n  two\n  lines\nb: >-\n  folded\n  text\nc: 1', // block scalars
      'a: we\n  b\nc: "multi\n  line"', // multi-line scalars
      'a: [1,\n   2]\nb: {x: 1,\n  y: 2}', // multi-line flow collections
      '? a\n: 1\n"b": 2', // explicit and quoted keys
      'a: 1\n...\n', // a document end marker
      '%YAML 1.2\n---\na: 1', // a directive
    ];
    for (const text of forms) expect(agrees(text), text).toBe(true);
  });

  it('reads specs as the yaml package writes them', () => {
    const samples = fc.sample(specArbitrary(), { numRuns: 60, seed: 11 });
    for (const json of samples) expect(agrees(YAML.stringify(JSON.parse(json)))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Random documents in and around the subset.

/** Scalars the subset should take in some style, many of them easy to resolve wrongly. */
const SCALARS = [
  '', 'null', 'Null', 'NULL', '~', 'true', 'True', 'TRUE', 'false', 'FALSE', 'yes', 'no', 'on',
  '0', '-0', '+0', '007', '08', '0x1F', '0xg', '0o17', '0o8', '1e3', '1E-3', '.5', '-.5', '1.', '1.5', '1.50', '+1.5e+2',
  '.inf', '-.Inf', '+.INF', '.nan', '.NaN', 'nan', 'inf', '-1', '+1', '12345678901234567890', '10.96.0.1', '10.96',
  '1_000', '1:30', '::1', '2001:db8::10', ':4001', '-x', '--', '---', '...', '?x', 'a:b', 'a#b', 'é', 'ü ß', '"q"',
  "it's", "''", 'a "b" c', 'x]', 'x,y', 'a}', 'a  b', 'back\\slash', 'web', 'svc-1', 'eth0', 'bond0.204', 'round-robin',
  '80', '8080', '10m', '300ms', 'nbsp\u00a0x', '😀',
];
/** Scalars that leave the subset or YAML when written plain (some also quoted). */
const EDGE_SCALARS = [
  'a: b', 'a:', 'a #b', '#a', '- x', '-', ':', '?', '[a', '{a', '&a', '*a', '!a', '|', '>', '%x', '@x', '`x',
  'tab\there', 'QUIT\r\n', 'line\nbreak', 'a\u2028b', 'x # y: z',
];
const KEYS = ['a', 'b', 'c', 'd', 'e', 'name', 'port', 'vip', 'a-b', '_x', 'A_9-', 'k1', 'x', 'Yes', 'on', 'nulls', 'True_', 'n0', 'z-'];
const EDGE_KEYS = ['true', 'null', 'NULL', '1', 'a b', 'a.b', '-a', '"q"', "'s'", 'é', '~', ''];
const COMMENTS = ['', '', '', '', '', ' # c', '  # x: y', ' #', ' # - a', ' # "', ' #: x', ' ##'];
const comment = (g: Gen): string => (chance(g, 1) ? pick(g, ['#nospace', '#', ' #\t', ' #\u0085']) : pick(g, COMMENTS));

type Gen = fc.GeneratorValue;

/** Unbiased choices: fast-check's default bias towards small numbers would skew every percentage below. */
const unbiasedNat = (max: number) => fc.noBias(fc.nat({ max }));
const num = (g: Gen, max: number): number => g(unbiasedNat, max);
const pick = <T,>(g: Gen, xs: readonly T[]): T => xs[num(g, xs.length - 1)];
const chance = (g: Gen, percent: number): boolean => num(g, 99) < percent;

const keyText = (g: Gen): string => (chance(g, 2) ? pick(g, EDGE_KEYS) : pick(g, KEYS));

function scalarText(g: Gen, inFlow: boolean): string {
  const raw = chance(g, 4) ? pick(g, EDGE_SCALARS) : pick(g, SCALARS);
  const style = num(g, 9);
  if (style < 6 && !(inFlow && raw === '')) return raw;
  if (style < 8) {
    const esc = raw.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, chance(g, 70) ? '\\n' : '\n').replace(/\r/g, '\\r');
    return `"${chance(g, 10) ? pick(g, ['\\t', '\\x41', '\\u00e9', '\\U0001F600', '\\/', '\\ ', '\\q', '\\u12']) : ''}${esc}"`;
  }
  return `'${raw.replace(/'/g, "''")}'`;
}

function flowText(g: Gen, depth: number): string {
  const sp = () => (chance(g, 25) ? pick(g, [' ', '  ']) : '');
  const n = num(g, 3);
  const item = (): string => (depth < 3 && chance(g, 20) ? flowText(g, depth + 1) : scalarText(g, true));
  const parts: string[] = [];
  if (chance(g, 50)) {
    for (let i = 0; i < n; i++) parts.push(sp() + item() + sp());
    return `[${parts.join(',')}${n > 0 && chance(g, 2) ? ',' : ''}${sp()}]`;
  }
  for (let i = 0; i < n; i++) parts.push(`${sp()}${keyText(g)}:${chance(g, 98) ? ' ' : ''}${sp()}${chance(g, 2) ? '' : item()}${sp()}`);
  return `{${parts.join(',')}${sp()}}`;
}

function inlineText(g: Gen): string {
  return chance(g, 20) ? flowText(g, 0) : scalarText(g, false);
}

const pad = (n: number) => ' '.repeat(n);

/** Lines of a block collection whose first line starts at column `indent`. */
function blockLines(g: Gen, indent: number, depth: number): string[] {
  const out: string[] = [];
  const deeper = () => indent + 1 + num(g, 3);
  if (depth > 3 || chance(g, 55)) {
    const n = 1 + num(g, 3);
    for (let i = 0; i < n; i++) {
      const head = `${pad(indent)}${keyText(g)}:`;
      const kind = num(g, 9);
      if (depth < 4 && kind < 3) {
        out.push(head + comment(g));
        out.push(...blockLines(g, deeper(), depth + 1));
      } else if (depth < 4 && kind === 3) {
        // A sequence at the key's own indentation.
        out.push(head);
        out.push(...seqLines(g, indent, depth + 1));
      } else if (kind === 4) {
        out.push(head + (chance(g, 50) ? pick(g, ['', ' ', '   ']) : comment(g)));
      } else {
        out.push(`${head}${pad(1 + (chance(g, 20) ? num(g, 3) : 0))}${inlineText(g)}${comment(g)}`);
      }
    }
    return out;
  }
  return seqLines(g, indent, depth);
}

function seqLines(g: Gen, indent: number, depth: number): string[] {
  const out: string[] = [];
  const n = 1 + num(g, 3);
  for (let i = 0; i < n; i++) {
    const kind = num(g, 9);
    const gap = 1 + (chance(g, 20) ? num(g, 2) : 0);
    if (depth < 4 && kind < 3) {
      // Compact: the nested collection's first line shares the dash's line.
      const inner = blockLines(g, indent + 1 + gap, depth + 1);
      inner[0] = `${pad(indent)}-${pad(gap)}${inner[0].trimStart()}`;
      out.push(...inner);
    } else if (depth < 4 && kind === 3) {
      out.push(`${pad(indent)}-${comment(g)}`);
      out.push(...blockLines(g, indent + 1 + num(g, 3), depth + 1));
    } else if (kind === 4) {
      out.push(`${pad(indent)}-${chance(g, 50) ? pick(g, ['', ' ', '  ']) : comment(g)}`);
    } else {
      out.push(`${pad(indent)}-${pad(gap)}${inlineText(g)}${comment(g)}`);
    }
  }
  return out;
}

/** Small edits that often leave the subset (or YAML) altogether. */
function mutate(g: Gen, lines: string[]): string[] {
  const ls = [...lines];
  const n = num(g, 2);
  for (let k = 0; k < n; k++) {
    const i = num(g, ls.length - 1);
    const line = ls[i];
    const col = num(g, line.length);
    switch (num(g, 11)) {
      case 0:
        ls[i] = ' ' + line;
        break;
      case 1:
        ls[i] = line.replace(/^ /, '');
        break;
      case 2:
        ls[i] = line.slice(0, col) + pick(g, ['\t', '\r', '\u0000', '\ufeff', '\u0085']) + line.slice(col);
        break;
      case 3:
        ls[i] = line.slice(0, col) + pick(g, ['&a ', '*a', '!!str ', '!x ', '| ', '> ', '? ', ': ', ' #', '#', '"', "'", '[', ']', '{', '}', ',', '- ', ':']) + line.slice(col);
        break;
      case 4:
        ls.splice(i, 0, line);
        break;
      case 5:
        ls.splice(i, 0, pick(g, ['---', '...', '%YAML 1.2', '--- a', '---x', '- x', 'a: 1', '  a: 1', '  - x', '  continued', '|', 'k: |']));
        break;
      case 6:
        if (i + 1 < ls.length) ls.splice(i, 2, line + ls[i + 1]);
        break;
      case 7:
        ls[i] = line.slice(0, col) + '\n' + line.slice(col);
        break;
      case 8:
        ls[i] = line.slice(0, col) + line.slice(col + 1);
        break;
      default:
        ls[i] = line + pick(g, [' ', '  ', ' # t', ':', ' x']);
    }
  }
  return ls;
}

function documentText(g: Gen): string {
  let lines = blockLines(g, chance(g, 10) ? 1 + num(g, 2) : 0, 0);
  // Comments and blank lines anywhere, at any indentation.
  const withNoise: string[] = [];
  if (chance(g, 15)) withNoise.push(pick(g, ['---', '--- # doc', '# head', '']));
  for (const l of lines) {
    if (chance(g, 10)) withNoise.push(pad(num(g, 6)) + pick(g, ['', '# c', '#', '# a: b']));
    withNoise.push(chance(g, 8) ? l + pick(g, [' ', '  ']) : l);
  }
  lines = chance(g, 15) ? mutate(g, withNoise) : withNoise;
  const text = lines.join('\n') + pick(g, ['\n', '', '\n\n', '\n# end\n']);
  return chance(g, 15) ? text.replace(/\n/g, '\r\n') : text;
}

describe('YAML specs: random documents', () => {
  /** The property is only meaningful if a good share of the documents is read (the rest both refuse). */
  const agreesOnRandomDocuments = (params: fc.Parameters<[fc.GeneratorValue]>) => {
    const count: Record<Verdict, number> = { read: 0, refused: 0, 'only-lbc-refused': 0, 'only-reference-refused': 0 };
    const differ: string[] = [];
    fc.assert(
      fc.property(fc.gen(), (g) => {
        const text = documentText(g);
        const v = compare(text);
        count[v]++;
        if (v !== 'read' && v !== 'refused') differ.push(`${v}: ${JSON.stringify(text)}`);
      }),
      params,
    );
    const runs = params.numRuns!;
    expect(count.read).toBeGreaterThan(runs * 0.5);
    // Two conforming parsers may judge an odd corner of YAML differently; that must stay rare.
    expect(differ.length, differ.slice(0, 10).join('\n')).toBeLessThan(runs * 0.01);
  };

  it('reads every document as the yaml package does', () => agreesOnRandomDocuments({ numRuns: 2000, seed: 20240611 }));
  it('reads every document as the yaml package does (unseeded)', () => agreesOnRandomDocuments({ numRuns: 500 }));
});
