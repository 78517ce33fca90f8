/**
 * The fast YAML reader must give exactly the yaml package's tree — values, types, quoting and every
 * position — for whatever it accepts, and step aside (null) for everything else.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import fc from 'fast-check';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { genSpecText } from '../../bench/lib/gen.js';
import { checkSpec, formatDiagnostic } from '../../src/index.js';
import { DiagnosticBag, sortDiagnostics } from '../../src/diagnostics/diagnostic.js';
import { validateSpec } from '../../src/ir/validate.js';
import { parseWithYamlPackage } from '../../src/spec/parse.js';
import { readSimpleYaml } from '../../src/spec/yaml-fast.js';
import { specArbitrary } from '../property/spec-arbitrary.js';

function viaYaml(text: string, file = 's.yaml') {
  const bag = new DiagnosticBag();
  const { root } = parseWithYamlPackage(text, file, bag);
  return { root, errors: bag.items.filter((d) => d.severity === 'error') };
}

/** checkSpec as it was before the fast path: the yaml package, then the validator. */
function checkViaYaml(text: string, file = 's.yaml') {
  const bag = new DiagnosticBag();
  const { root } = parseWithYamlPackage(text, file, bag);
  const ir = root && !bag.hasErrors ? validateSpec(root, file, bag) : null;
  return { ir: bag.hasErrors ? null : ir, diagnostics: sortDiagnostics(bag.items) };
}

/** Accepted text must read the same both ways; returns whether the fast reader accepted it. */
function agrees(text: string): boolean {
  const fast = readSimpleYaml(text, 's.yaml');
  if (fast === null) return false;
  const slow = viaYaml(text);
  expect(slow.errors, text).toEqual([]);
  // toStrictEqual: -0 is not 0, NaN is NaN, and every loc must match.
  expect(fast, text).toStrictEqual(slow.root);
  return true;
}

const fixtureSpecs = readdirSync('fixtures')
  .map((d) => `fixtures/${d}/spec.yaml`)
  .filter((p) => existsSync(p));

describe('fast YAML reader: real specs', () => {
  it('reads every fixture exactly as the yaml package does', () => {
    expect(fixtureSpecs.length).toBeGreaterThan(0);
    for (const p of fixtureSpecs) expect(agrees(readFileSync(p, 'utf8')), p).toBe(true);
  });

  it('reads the benchmark specs exactly as the yaml package does', () => {
    for (const style of ['linux4', 'linux6', 'bsd'] as const) expect(agrees(genSpecText(50, style)), style).toBe(true);
  });

  it('reads the forms specs use, with their positions', () => {
    const forms = [
      'a:\nb: 1', // null values sit after the colon ...
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
    ];
    for (const text of forms) expect(agrees(text), text).toBe(true);
  });

  it('gives the same IR and diagnostics through checkSpec', () => {
    for (const p of fixtureSpecs) {
      const text = readFileSync(p, 'utf8');
      expect(checkSpec(text, 's.yaml')).toStrictEqual(checkViaYaml(text));
    }
  });

  it('reads specs as the yaml package writes them', () => {
    let accepted = 0;
    const samples = fc.sample(specArbitrary(), { numRuns: 60, seed: 11 });
    for (const json of samples) {
      const text = YAML.stringify(JSON.parse(json));
      if (agrees(text)) accepted++;
      expect(checkSpec(text, 's.yaml')).toStrictEqual(checkViaYaml(text));
    }
    expect(accepted).toBe(samples.length);
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

describe('fast YAML reader: random documents', () => {
  /** Runs the agreement property; it is only meaningful if the fast path takes a good share of the documents. */
  const agreesOnRandomDocuments = (params: fc.Parameters<[fc.GeneratorValue]>) => {
    let accepted = 0;
    let runs = 0;
    fc.assert(
      fc.property(fc.gen(), (g) => {
        runs++;
        if (agrees(documentText(g))) accepted++;
      }),
      params,
    );
    expect(accepted).toBeGreaterThan(runs * 0.25);
  };

  it('accepts only what the yaml package reads the same way', () => agreesOnRandomDocuments({ numRuns: 3000, seed: 20240611 }));
  it('accepts only what the yaml package reads the same way (unseeded)', () => agreesOnRandomDocuments({ numRuns: 1000 }));
});

// ---------------------------------------------------------------------------------------------

const BASE = `version: 1
services:
  - name: web
    vip: 10.0.0.1
    port: 80
    backends:
      - 10.0.1.1
`;

describe('fast YAML reader: constructs it leaves to the yaml package', () => {
  const cases: Array<[string, string, boolean]> = [
    // [what, text, yaml reports an error]
    ['an anchor and alias', BASE.replace('vip: 10.0.0.1', 'vip: &v 10.0.0.1').replace('- 10.0.1.1', '- *v'), false],
    ['a tag', BASE.replace('port: 80', 'port: !!int "80"'), false],
    ['a literal block scalar', BASE.replace('name: web', 'name: |\n      web'), false],
    ['a folded block scalar', BASE.replace('name: web', 'name: >-\n      web'), false],
    ['a tab in the indentation', BASE.replace('    port: 80', '\tport: 80'), true],
    ['a tab after a value', BASE.replace('port: 80', 'port: 80\t'), false],
    ['a multi-line plain scalar', BASE.replace('name: web', 'name: we\n      b'), false],
    ['a multi-line quoted scalar', BASE.replace('name: web', 'name: "we\n      b"'), false],
    ['a multi-line flow sequence', BASE.replace('      - 10.0.1.1', '      - [10.0.1.1,\n         10.0.1.2]'), false],
    ['a duplicate key', BASE.replace('port: 80', 'port: 80\n    port: 81'), true],
    ['a duplicate key in a long mapping', BASE.replace('port: 80', Array.from({ length: 12 }, (_, i) => `x${i}: ${i}`).join('\n    ') + '\n    x3: 3'), true],
    ['a duplicate key in a flow mapping', BASE.replace('- 10.0.1.1', '- { port: 1, port: 2 }'), true],
    ['a quoted key', BASE.replace('port: 80', '"port": 80'), false],
    ['an explicit key', BASE.replace('port: 80', '? port\n    : 80'), false],
    ['a CR alone', BASE.replace('port: 80\n', 'port: 80\r'), true],
    ['a CR inside a line', BASE.replace('name: web', 'name: w\reb'), false],
    ['a byte order mark', '\ufeff' + BASE, false],
    ['a directive', '%YAML 1.2\n---\n' + BASE, false],
    ['two documents', BASE + '---\nversion: 1\n', true],
    ['a document end marker', BASE + '...\n', false],
    ['a mapping in a compact value', BASE.replace('port: 80', 'port: a: 80'), true],
    ['a misaligned key', BASE.replace('    port: 80', '     port: 80'), true],
    ['a key of true', BASE.replace('port: 80', 'true: 80'), true],
    ['an empty document', '# nothing\n', true],
    ['a very long key', BASE.replace('port: 80', `${'k'.repeat(1100)}: 80`), true],
    ['a comment without a space after a flow sequence', BASE.replace('- 10.0.1.1', '- [10.0.1.1]#c'), true],
  ];
  for (const [what, text, yamlErrors] of cases) {
    it(`gives up on ${what}, with the same diagnostics as before`, () => {
      expect(readSimpleYaml(text, 's.yaml')).toBeNull();
      const before = checkViaYaml(text);
      expect(before.diagnostics.some((d) => d.code.startsWith('LBC1'))).toBe(yamlErrors);
      expect(checkSpec(text, 's.yaml')).toStrictEqual(before);
    });
  }

  it('leaves nesting deeper than the limit to the yaml path, which reports it', () => {
    const nested = (depth: number) => {
      const lines: string[] = [];
      for (let i = 0; i < depth; i++) lines.push(`${pad(i)}-`);
      return lines.join('\n').replace(/-$/, '- x') + '\n';
    };
    // nested(n) puts the scalar at depth n; parse.ts allows depth 64.
    expect(agrees(nested(64))).toBe(true);
    expect(readSimpleYaml(nested(65), 's.yaml')).toBeNull();
    expect(viaYaml(nested(65)).errors.map((d) => d.code)).toEqual(['LBC1007']);
  });

  it('keeps the NUL check and the JSON reader ahead of it', () => {
    expect(checkSpec('version: 1\u0000', 's.yaml').diagnostics.map((d) => d.code)).toEqual(['LBC1001']);
    // Where the byte is: line 3, column 6 (after "  - n").
    expect(checkSpec('version: 1\nservices:\n  - n\u0000', 's.yaml').diagnostics.map(formatDiagnostic)[0]).toMatch(/^s\.yaml:3:6: error: the spec contains a NUL byte/);
    expect(checkSpec('{"version": 1, "services": []}', 's.yaml')).toStrictEqual(checkViaYaml('{"version": 1, "services": []}'));
  });
});
