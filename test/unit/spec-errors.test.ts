/** Spec text that used to get confusing errors (or none) gets one clear, positioned diagnostic. */
import { describe, expect, it } from 'vitest';
import { checkSpec, formatDiagnostic } from '../../src/index.js';

const errors = (text: string, file = 's.yaml') => checkSpec(text, file).diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);

const WEB = `version: 1
services:
  - name: web
    port: 80
    backends: ["10.0.0.1"]
`;

describe('errors that used to confuse', () => {
  it('more than one YAML document: says so at the second', () => {
    expect(errors(`${WEB}---\nversion: 1\n`)).toEqual([
      's.yaml:6:1: error: the spec holds more than one YAML document ("---" starts another); lbc reads one: put every service in the one "services" list [LBC1009]',
    ]);
    expect(errors(`--- # first\n${WEB}--- # second\n`)).toEqual([expect.stringMatching(/^s\.yaml:7:1: error: the spec holds more than one YAML document/)]);
    // A document end marker alone is one document.
    expect(errors(`${WEB}...\n`)).toEqual([]);
  });

  it('deep nesting: a limit, not a stack overflow, in YAML and JSON', () => {
    for (const [text, file] of [
      [`version: 1\nx: ${'['.repeat(100_000)}`, 's.yaml'],
      [`${'- '.repeat(50_000)}x\n`, 's.yaml'],
      [`{"version": 1, "x": ${'['.repeat(100_000)}`, 's.json'],
      [`{"version": 1, "x": ${'{"a":'.repeat(100_000)}`, 's.json'],
    ]) {
      const out = errors(text, file);
      expect(out, text.slice(0, 30)).toEqual([expect.stringMatching(/^s\.(yaml|json):\d+:\d+: error: the spec is nested more than 64 levels deep; no spec needs that \[LBC1007\]$/)]);
    }
    // 60 levels are read (and refused only as unknown fields).
    expect(errors(`${WEB}x: ${'['.repeat(60)}${']'.repeat(60)}\n`)).toEqual([expect.stringMatching(/unknown field "x"/)]);
  });

  it('a byte order mark: accepted in YAML and JSON, positions as the editor shows them', () => {
    const bad = 'version: 1\nservices:\n  - name: Web\n    port: 80\n    backends: ["10.0.0.1"]\n';
    expect(errors(`\ufeff${bad}`)).toEqual(errors(bad));
    expect(errors(`\ufeff${bad}`)[0]).toMatch(/^s\.yaml:3:11: error: service name "Web"/);
    const json = '{"version": 1, "services": [{"name": "web", "port": 80, "backends": ["10.0.0.1"]}], "x": 1}';
    expect(errors(`\ufeff${json}`, 's.json')).toEqual([`s.json:1:${json.indexOf('"x"') + 1}: error: unknown field "x" in the spec [LBC2001]\n  note: allowed fields: version, source-nat, services, balancers`]);
    expect(checkSpec(`\ufeff${WEB}`, 's.yaml').ir).not.toBeNull();
  });

  it('merge keys: supported, written fields win, positions where the values were written', () => {
    const text = `version: 1
defaults: &defaults
  port: 80
  mode: random
  backends: ["10.0.0.1", "10.0.0.2"]
services:
  - <<: *defaults
    name: web
  - <<: *defaults
    name: api
    port: 8080
`;
    // "defaults" is not a spec field: the anchor must be somewhere; the error is that field only.
    expect(errors(text)).toEqual(['s.yaml:2:1: error: unknown field "defaults" in the spec [LBC2001]\n  note: allowed fields: version, source-nat, services, balancers']);
    const r = checkSpec(
      `version: 1
services:
  - &base
    name: base
    port: 80
    mode: random
    backends: ["10.0.0.1", "10.0.0.2"]
  - <<: *base
    name: web
    vip: 192.0.2.10
  - <<: *base
    name: api
    port: 8080
`,
      's.yaml',
    );
    expect(r.diagnostics).toEqual([]);
    const [base, web, api] = r.ir!.services;
    expect([base.name, web.name, api.name]).toEqual(['base', 'web', 'api']);
    expect(web).toMatchObject({ port: 80, mode: 'random' });
    expect(api).toMatchObject({ port: 8080, mode: 'random' });
    expect(api.backends.map((b) => b.address)).toEqual(['10.0.0.1', '10.0.0.2']);
    // Merged values point where they were written.
    expect(web.backends[0].loc).toEqual({ file: 's.yaml', line: 7, column: 16 });
    expect(web.loc.port).toEqual({ file: 's.yaml', line: 5, column: 11 });
    expect(api.loc.port).toEqual({ file: 's.yaml', line: 13, column: 11 });
    expect(errors('version: 1\nservices:\n  - <<: 5\n    name: x\n')).toEqual([expect.stringMatching(/^s\.yaml:3:9: error: a merge key "<<" takes a mapping or a list of mappings, such as <<: \*defaults \[LBC1010\]/)]);
    // A quoted "<<" is an ordinary key.
    expect(errors(WEB.replace('    port: 80', '    "<<": {port: 80}')).join('\n')).toMatch(/s\.yaml:4:5: error: unknown field "<<" in a service/);
  });

  it('a list of ports: one error for the service, with the way out', () => {
    const text = `version: 1
services:
  - name: coap
    port: [5683, 5684]
    protocol: udp
    backends:
      - 10.188.100.163
      - 10.188.100.230
      - { address: 10.188.100.231 }
`;
    expect(errors(text)).toEqual([
      's.yaml:4:11: error: "port" takes one port; service "coap" lists several [LBC2060]\n  note: write "ports: [5683, 5684]" for one service on all of them (one rotation and affinity shared by every port), or one service per port',
    ]);
    // A missing port is also reported once, not again for every backend that would take it.
    expect(errors('version: 1\nservices:\n  - name: a\n    backends: ["10.0.0.1", "10.0.0.2"]\n')).toEqual([expect.stringMatching(/^s\.yaml:3:5: error: service "a" needs a "port"/)]);
  });

  it('YAML tags: core tags mean what they say, others are refused', () => {
    expect(errors(WEB.replace('port: 80', 'port: !!str 80'))).toEqual([expect.stringMatching(/^s\.yaml:4:17: error: "port" in a service must be a whole number, not the string "80"/)]);
    expect(checkSpec(WEB.replace('port: 80', 'port: !!int "80"'), 's.yaml').ir?.services[0].port).toBe(80);
    expect(errors(WEB.replace('port: 80', 'port: !custom 80'))).toEqual([expect.stringMatching(/^s\.yaml:4:19: error: unsupported YAML tag !custom; a spec holds plain numbers, strings, booleans, lists and mappings \[LBC1006\]/)]);
    expect(errors(WEB.replace('port: 80', 'port: !!int eighty'))).toEqual([expect.stringMatching(/^s\.yaml:4:17: error: "eighty" is not a valid !!int \[LBC1006\]/)]);
  });

  it('aliases: an unknown one is positioned, and expansion is bounded', () => {
    expect(errors(WEB.replace('port: 80', 'port: *p'))).toEqual([expect.stringMatching(/^s\.yaml:4:11: error: YAML syntax: the alias \*p names no anchor/)]);
  });

  it('syntax errors, duplicate keys, NUL bytes and empty specs keep their positions', () => {
    expect(errors('version: 1\nservices:\n  - name: a\n    name: b\n')).toEqual([expect.stringMatching(/^s\.yaml:4:5: error: this key appears twice in the same mapping \[LBC1003\]/)]);
    expect(errors('version: 1\nservices: [\n')[0]).toMatch(/^s\.yaml:3:1: error: YAML syntax: /);
    expect(errors('version: 1\nservices:\n  - n\u0000')).toEqual(['s.yaml:3:6: error: the spec contains a NUL byte; it must be UTF-8 text [LBC1001]']);
    expect(errors('# nothing here\n')).toEqual(['s.yaml:1:1: error: the spec is empty; it needs at least `version: 1` and `services:` [LBC1004]']);
    expect(errors('')).toEqual(['s.yaml:1:1: error: the spec is empty; it needs at least `version: 1` and `services:` [LBC1004]']);
  });
});

describe('services are validated as they are read, not kept in the tree', () => {
  it('hands each item of the top-level services list to the sink, in YAML and JSON', async () => {
    const { parseSpecText } = await import('../../src/spec/parse.js');
    const { DiagnosticBag } = await import('../../src/diagnostics/diagnostic.js');
    const json = '{"version": 1, "services": [{"name": "a", "port": 1, "backends": [":2"]}, {"name": "b", "port": 3, "backends": [":4"]}]}';
    for (const [text, file] of [[WEB + '  - name: api\n    port: 81\n    backends: ["10.0.0.2"]\n', 's.yaml'], [json, 's.json']]) {
      const seen: string[] = [];
      const { root } = parseSpecText(text, file, new DiagnosticBag(), (item) => seen.push(item.kind === 'map' ? String((item.entries[0].value as { value: unknown }).value) : '?'));
      expect(seen).toHaveLength(2);
      const services = root!.kind === 'map' ? root!.entries.find((e) => e.key === 'services')!.value : null;
      expect(services).toMatchObject({ kind: 'seq', items: [], streamed: true });
      // Without a sink the tree is whole.
      const whole = parseSpecText(text, file, new DiagnosticBag()).root!;
      expect(whole.kind === 'map' && whole.entries.find((e) => e.key === 'services')!.value).toMatchObject({ kind: 'seq', items: [{ kind: 'map' }, { kind: 'map' }] });
    }
  });

  it('stops at the service limit with one error', async () => {
    const { limits } = await import('../../src/index.js');
    const items = Array.from({ length: limits.MAX_SERVICES + 1 }, (_, i) => `{"name": "s${i}", "port": ${(i % 60000) + 1}, "vip": "10.${i >> 16}.${(i >> 8) & 255}.${i & 255}", "backends": [":1"]}`);
    const out = errors(`{"version": 1, "services": [\n${items.join(',\n')}\n]}`, 'big.json');
    expect(out).toEqual([`big.json:50002:1: error: a spec may have at most 50,000 services; this is service 50,001 [LBC2008]\n  note: see "Limits" in the README`]);
  });
});
