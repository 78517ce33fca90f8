import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkSpec, formatDiagnostic, LbcError, parseSpec } from '../../src/index.js';

const errorsOf = (text: string) => checkSpec(text, 's.yaml').diagnostics.filter((d) => d.severity === 'error');
const lines = (text: string) => errorsOf(text).map(formatDiagnostic);

const ISSUE_EXAMPLE = `version: 1
services:
  - name: web
    vip: 203.0.113.10
    port: 80
    protocol: tcp
    interface: eth0
    mode: hash
    hash: [saddr]
    sticky: 10m
    backends:
      - { address: 10.0.0.1, port: 8080, weight: 2 }
      - { address: 10.0.0.2 }
      - { port: 4001 }
      - 10.0.0.3:8080
`;

describe('spec → IR', () => {
  it('normalizes the documented example', () => {
    const ir = parseSpec(ISSUE_EXAMPLE, 'web.yaml');
    const s = ir.services[0];
    expect(s).toMatchObject({ name: 'web', family: 'ipv4', port: 80, protocol: 'tcp', interface: 'eth0', mode: 'hash', hashFields: ['saddr'], sticky: { timeoutSeconds: 600 }, local: false });
    expect(s.vip).toEqual({ address: '203.0.113.10', prefixLength: 32, isHost: true });
    expect(s.backends.map((b) => [b.address, b.port, b.weight])).toEqual([
      ['10.0.0.1', 8080, 2],
      ['10.0.0.2', 80, 1],
      [null, 4001, 1],
      ['10.0.0.3', 8080, 1],
    ]);
    expect(s.backends[3].loc).toEqual({ file: 'web.yaml', line: 15, column: 9 });
  });

  it('reads round-robin as nth, defaults tcp and mode, canonical hash order', () => {
    const ir = parseSpec('version: 1\nservices:\n  - {name: a, port: 1, mode: round-robin, backends: [":2"]}\n  - {name: b, port: 1, vip: 10.0.0.0/8, mode: hash, hash: [dport, saddr], backends: ["10.1.1.1"]}\n');
    expect(ir.services[0].mode).toBe('nth');
    expect(ir.services[0].protocol).toBe('tcp');
    expect(ir.services[1].hashFields).toEqual(['saddr', 'dport']);
    expect(ir.services[1].vip).toEqual({ address: '10.0.0.0', prefixLength: 8, isHost: false });
  });

  it('canonicalizes IPv6 and infers the family from backends', () => {
    const ir = parseSpec('version: 1\nservices:\n  - name: six\n    port: 443\n    backends: ["[2001:DB8:0:0::1]:8443", {address: "2001:db8::2"}]\n');
    expect(ir.services[0].family).toBe('ipv6');
    expect(ir.services[0].backends.map((b) => b.address)).toEqual(['2001:db8::1', '2001:db8::2']);
  });

  it('accepts JSON with the same shape', () => {
    const ir = parseSpec('{"version": 1, "services": [{"name": "j", "vip": "192.0.2.1", "port": 53, "protocol": "udp", "backends": ["10.0.0.1:5353"]}]}', 's.json');
    expect(ir.services[0]).toMatchObject({ protocol: 'udp', port: 53 });
  });

  it('merges per-backend health over the service check', () => {
    const ir = parseSpec(`version: 1
services:
  - name: m
    port: 25
    health: { check: banner, expect: "220", interval: 1s, timeout: 500ms, rise: 2, fall: 2 }
    backends:
      - 10.0.0.1
      - { address: 10.0.0.2, health: { fall: 5 } }
      - { address: 10.0.0.3, backup: true }
`);
    const [a, b, c] = ir.services[0].backends;
    expect(a.health).toMatchObject({ check: 'banner', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2, banner: { send: null, expect: '220' } });
    expect(b.health).toMatchObject({ fall: 5, rise: 2, banner: { expect: '220' } });
    expect(c.backup).toBe(true);
  });
});

describe('bad input', () => {
  it('reports every problem with its position', () => {
    const text = `version: 1
services:
  - name: Bad_Name
    vip: 300.1.2.3
    port: 0
    protocl: udp
    mode: fastest
    backends:
      - { address: 10.0.0.1, weight: 0 }
      - 10.0.0.1:99999
`;
    expect(lines(text)).toEqual([
      expect.stringMatching(/^s\.yaml:3:11: error: service name "Bad_Name"/),
      expect.stringMatching(/^s\.yaml:4:10: error: vip: "300\.1\.2\.3" is not a valid IPv4 address/),
      expect.stringMatching(/^s\.yaml:5:11: error: "port" in a service must be between 1 and 65535, not 0/),
      expect.stringMatching(/^s\.yaml:6:5: error: unknown field "protocl" in a service \[LBC2001\]\n {2}note: did you mean "protocol"\?/),
      expect.stringMatching(/^s\.yaml:7:11: error: mode must be nth/),
      expect.stringMatching(/^s\.yaml:9:38: error: "weight" in a backend must be between 1 and 1000, not 0/),
      expect.stringMatching(/^s\.yaml:10:9: error: backend port must be between 1 and 65535/),
    ]);
  });

  it.each([
    ['mixed families', 'vip: 10.0.0.1\n    port: 80\n    backends: ["[2001:db8::1]:80"]', /mixes address families/],
    ['a CIDR backend', 'port: 80\n    backends: ["10.0.0.0/24"]', /not ADDRESS|CIDR block/],
    ['host bits in a vip block', 'vip: 10.0.0.1/24\n    port: 80\n    backends: ["10.1.1.1"]', /host bits set[\s\S]*10\.0\.0\.0\/24/],
    ['leading zeros', 'vip: 010.0.0.1\n    port: 80\n    backends: ["10.1.1.1"]', /not a valid IPv4/],
    ['a string port', 'port: "80"\n    backends: ["10.1.1.1"]', /must be a whole number/],
    ['weight zero', 'port: 80\n    backends: [{address: 10.1.1.1, weight: 0}]', /between 1 and 1000/],
    ['hash fields without hash mode', 'port: 80\n    hash: [saddr]\n    backends: ["10.1.1.1"]', /only apply to mode: hash/],
    ['unknown hash field', 'port: 80\n    mode: hash\n    hash: [srcip]\n    backends: ["10.1.1.1"]', /hash field must be one of/],
    ['bad sticky', 'port: 80\n    sticky: forever\n    backends: ["10.1.1.1"]', /sticky must be an idle timeout/],
    ['duplicate backend', 'port: 80\n    backends: ["10.1.1.1", "10.1.1.1:80"]', /listed twice/],
    ['only backups', 'port: 80\n    backends: [{address: 10.1.1.1, backup: true}]', /only backup backends/],
    ['no backends', 'port: 80\n    backends: []', /non-empty list, not an empty list/],
    ['banner without expect', 'port: 25\n    health: {check: banner}\n    backends: ["10.1.1.1"]', /needs "expect"/],
    ['http keys on tcp check', 'port: 25\n    health: {check: tcp, path: /x}\n    backends: ["10.1.1.1"]', /only applies to check: http/],
    ['timeout above interval', 'port: 25\n    health: {interval: 1s, timeout: 2s}\n    backends: ["10.1.1.1"]', /must not exceed the interval/],
    ['an IPv4-mapped address', 'port: 80\n    backends: ["::ffff:10.0.0.1"]', /IPv4-mapped/],
    ['a zone index', 'port: 80\n    backends: ["fe80::1%eth0"]', /not ADDRESS|not an IP/],
  ])('refuses %s', (_what, body, re) => {
    const text = `version: 1\nservices:\n  - name: x\n    ${body}\n`;
    const errs = errorsOf(text);
    expect(errs.length).toBeGreaterThan(0);
    expect(errs.map(formatDiagnostic).join('\n')).toMatch(re);
    for (const e of errs) expect(e.location?.line).toBeGreaterThan(0);
  });

  it('refuses a duration without a unit in every duration field, saying which units there are', () => {
    for (const [field, value] of [['sticky: ', '600'], ['health: { interval: ', '5 }'], ['health: { interval: ', '5000 }'], ['health: { timeout: ', '1 }']] as const) {
      const out = lines(`version: 1\nservices:\n  - name: x\n    port: 80\n    ${field}${value}\n    backends: ["10.1.1.1"]\n`);
      expect(out, field + value).toHaveLength(1);
      const n = value.replace(/\D/g, '');
      expect(out[0]).toMatch(new RegExp(`^s\\.yaml:5:${field.length + 5}: error: (sticky|health \\w+) needs a unit \\(ms, s, m, h(, d)?\\): a bare number such as ${n} is ambiguous[\\s\\S]*note: write ${n}s for seconds or ${n}ms for milliseconds`));
    }
  });

  it('refuses duplicate names and services claiming the same traffic', () => {
    const out = lines(`version: 1
services:
  - {name: a, vip: 10.0.0.0/16, port: 80, backends: ["10.9.0.1"]}
  - {name: a, vip: 10.0.0.0/24, port: 80, backends: ["10.9.0.2"]}
  - {name: c, vip: 10.0.0.0/24, port: 80, protocol: udp, backends: ["10.9.0.2"]}
  - {name: d, vip: 10.0.0.5, port: 80, backends: ["10.9.0.2"]}
  - {name: e, vip: 10.0.0.5, port: 80, interface: eth1, backends: ["10.9.0.3"]}
`);
    expect(out.join('\n')).toMatch(/s\.yaml:4:12: error: service name "a" is used twice \(first at line 3\)/);
    expect(out.join('\n')).toMatch(/s\.yaml:4:20: error: vip 10\.0\.0\.0\/24 of "a" overlaps 10\.0\.0\.0\/16/);
    expect(out.join('\n')).toMatch(/s\.yaml:7:20: error: services "d" and "e" both claim tcp port 80 on 10\.0\.0\.5\/32[\s\S]*interface does not tell/);
    expect(out).toHaveLength(3);
  });

  it('reports YAML syntax errors and duplicate keys with positions', () => {
    expect(lines('version: 1\nservices:\n  - name: a\n    name: b\n')[0]).toMatch(/^s\.yaml:4:5: error: this key appears twice/);
    expect(lines('version: 1\nservices: [\n')[0]).toMatch(/^s\.yaml:\d+:\d+: error: YAML syntax/);
    expect(lines('')[0]).toMatch(/^s\.yaml:1:1: error: the spec is empty/);
    expect(lines('- 1\n- 2\n')[0]).toMatch(/must be a mapping/);
    expect(lines('version: 2\nservices: []\n')).toEqual([expect.stringMatching(/^s\.yaml:1:10: error: unsupported spec version the number 2; this lbc reads version 1/)]);
  });

  it('refuses hostile alias expansion without hanging', () => {
    let t = 'version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
    for (let i = 1; i < 9; i++) t += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
    t += 'services: [*a8]\n';
    const errs = lines(t);
    expect(errs.join('\n')).toMatch(/aliases expand the spec beyond 100,000 values/);
  });

  it('keeps text that could reach a ruleset out of the IR', () => {
    const hostile = [
      'name: "web\\n-A INPUT -j ACCEPT"',
      'name: web\n    interface: "eth0 -j ACCEPT"',
      'name: web\n    interface: "eth0\\"; flush ruleset; #"',
      'name: web\n    health: {check: http, path: "/x\\"\\ncheck tcp"}',
      'name: web\n    health: {check: banner, expect: "220\\u0000"}',
      'name: "we b"',
      'name: "web}"',
    ];
    for (const h of hostile) {
      const text = `version: 1\nservices:\n  - ${h}\n    port: 80\n    backends: ["10.0.0.1"]\n`;
      expect(errorsOf(text).length, h).toBeGreaterThan(0);
    }
  });

  it('throws LbcError from parseSpec, never another error, on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        try {
          parseSpec(s);
        } catch (e) {
          expect(e).toBeInstanceOf(LbcError);
          for (const d of (e as LbcError).diagnostics) expect(d.location ?? null).not.toBeNull();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never crashes on structurally plausible but wrong specs', () => {
    const scalar = fc.oneof(fc.string({ maxLength: 12 }), fc.integer({ min: -5, max: 70000 }), fc.boolean(), fc.constant(null), fc.constantFrom('10.0.0.1', '2001:db8::1', '10.0.0.0/8', ':80', '10m'));
    const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.dictionary(fc.constantFrom('address', 'port', 'weight', 'backup', 'x'), scalar));
    const svc = fc.dictionary(fc.constantFrom('name', 'vip', 'port', 'protocol', 'mode', 'hash', 'sticky', 'backends', 'interface', 'local', 'health', 'family'), value);
    fc.assert(
      fc.property(fc.array(svc, { maxLength: 3 }), (services) => {
        const r = checkSpec(JSON.stringify({ version: 1, services }), 'p.json');
        if (r.ir === null) expect(r.diagnostics.some((d) => d.severity === 'error' && d.location)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});
