/** The one-pass JSON reader must mean exactly what the YAML path means, with right positions. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkSpec, formatDiagnostic } from '../../src/index.js';
import { parseJsonSpec } from '../../src/spec/json.js';
import type { SNode } from '../../src/spec/ast.js';
import { specArbitrary } from '../property/spec-arbitrary.js';

const plain = (n: SNode): unknown =>
  n.kind === 'map' ? Object.fromEntries(n.entries.map((e) => [e.key, plain(e.value)])) : n.kind === 'seq' ? n.items.map(plain) : n.value;
const withoutLocations = (v: unknown) => JSON.parse(JSON.stringify(v, (k, x) => (k === 'loc' || k === 'file' ? undefined : x)));

describe('JSON specs', () => {
  it('reads the same values as JSON.parse', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        const text = JSON.stringify(v, null, 1);
        expect(plain(parseJsonSpec(text, 'v.json'))).toEqual(JSON.parse(text));
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same IR as the YAML parser for the same document', () => {
    for (const text of fc.sample(specArbitrary(), { numRuns: 60, seed: 7 })) {
      const viaJson = checkSpec(text, 's.json');
      const viaYaml = checkSpec(`# read by the YAML parser\n${text}`, 's.yaml');
      expect(viaJson.diagnostics).toEqual([]);
      expect(withoutLocations(viaJson.ir)).toEqual(withoutLocations(viaYaml.ir));
      // The YAML copy has one more line at the top; every position is otherwise the same.
      expect(viaJson.ir!.services[0].backends[0].loc.line + 1).toBe(viaYaml.ir!.services[0].backends[0].loc.line);
      expect(viaJson.ir!.services[0].backends[0].loc.column).toBe(viaYaml.ir!.services[0].backends[0].loc.column);
    }
  });

  it('reports syntax errors and duplicate keys with positions', () => {
    const err = (t: string) => checkSpec(t, 'e.json').diagnostics.map(formatDiagnostic)[0];
    expect(err('{"version": 1,\n  "services": [\n    {"name": "a" "port": 1}]}')).toMatch(/^e\.json:3:18: error: JSON syntax: expected "," or "}"/);
    expect(err('{"version": 1, "version": 1}')).toMatch(/^e\.json:1:16: error: JSON syntax: this key appears twice/);
    expect(err('{"version": 1,\n"services": "\u0001"}')).toMatch(/^e\.json:2:\d+: error: JSON syntax: control character/);
    expect(err('{"a": 1} x')).toMatch(/unexpected text after the end/);
    expect(err('{"a": tru}')).toMatch(/expected a value/);
  });

  it('falls back to YAML for a YAML file that opens with a flow mapping', () => {
    const r = checkSpec('{version: 1, services: [{name: a, port: 80, backends: [":81"]}]}', 'flow.yaml');
    expect(r.diagnostics).toEqual([]);
    expect(r.ir!.services[0].name).toBe('a');
  });
});
