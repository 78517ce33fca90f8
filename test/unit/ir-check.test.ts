/**
 * The library checks every IR it is handed (ir/check.ts): what a script builds or edits gets the
 * spec validator's diagnostics, and nothing it holds reaches a ruleset unless the spec could have
 * said it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkIR, checkSpec, compile, formatDiagnostic, LbcError, parseSpec, TARGET_NAMES, TARGETS, type IR, type TargetName } from '../../src/index.js';
import { liveIR, type HealthMap } from '../../src/health/live.js';
import { TARGETS as REGISTRY } from '../../src/targets/registry.js';
import { specArbitrary } from '../property/spec-arbitrary.js';

const clone = (ir: IR): IR => structuredClone(ir);
const refusal = (f: () => unknown): string[] => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(LbcError);
    return (e as LbcError).diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
  }
  throw new Error('not refused');
};

const SPEC = `version: 1
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    interface: eth0
    mode: hash
    sticky: 10m
    health: { check: http, path: /healthz, host: example.org, interval: 1s, timeout: 500ms }
    backends:
      - { address: 10.0.0.1, port: 8080, weight: 2 }
      - { address: 10.0.0.2, health: { fall: 5 } }
      - { port: 4001, backup: true }
  - name: six
    vip: 2001:db8::10/124
    port: 53
    protocol: udp
    backends: ["[2001:db8::1]:53", "[2001:db8::2]:5353"]
`;
const base = () => parseSpec(SPEC, 'web.yaml');

/** The same IR with every position removed, as a script would build it. */
function withoutLocations(ir: IR): IR {
  const c = clone(ir);
  for (const s of c.services) {
    s.loc = {};
    for (const b of s.backends) delete b.loc;
  }
  return c;
}

describe('checkIR', () => {
  it('takes what parseSpec makes, and gives an equal, separate copy', () => {
    const ir = base();
    const r = checkIR(ir);
    expect(r.diagnostics).toEqual([]);
    expect(r.ir).toEqual(ir);
    expect(r.ir).not.toBe(ir);
    expect(r.ir!.services[0]).not.toBe(ir.services[0]);
  });

  it('gives every random spec back unchanged, and the live IRs the agent makes of it', () => {
    for (const text of fc.sample(specArbitrary(), { numRuns: 80, seed: 3 })) {
      const ir = parseSpec(text, 'r.json');
      expect(checkIR(ir), text).toEqual({ ir, diagnostics: [] });
      // Backups promoted, checks dropped, indexes kept with gaps: still an IR emitters may trust.
      const down: HealthMap = new Map(ir.services.flatMap((s) => s.backends.filter((b) => !b.backup).map((b) => [`${s.name}#${b.index}`, 'down' as const])));
      const live = liveIR(ir, down);
      expect(checkIR(live).ir, text).toEqual(live);
    }
  });

  it('refuses text that would reach a ruleset, as the spec validator words it, with no position when the IR has none', () => {
    const ir = withoutLocations(base());
    ir.services[0].name = 'eth0"; flush ruleset; "';
    ir.services[0].interface = 'eth0"; flush ruleset; "';
    expect(checkIR(ir).diagnostics.map(formatDiagnostic)).toEqual([
      `lbc: error: service name "eth0\\"; flush ruleset; \\"" must be 1-16 characters of lower-case letters, digits and '-', starting with a letter and not ending with '-' [LBC2012]\n  note: the name becomes part of chain, table and set names in every target, which limits its length and alphabet`.replace(/\\"/g, '"'),
      `lbc: error: interface "eth0"; flush ruleset; "" is not a valid interface name (a letter, then up to 14 letters, digits, '_', '.', '-') [LBC2016]`,
    ]);
  });

  it('gives the diagnostics a spec with the same mistake gets, at the IR\'s own positions', () => {
    const cases: Array<[string, (ir: IR) => void, string, string]> = [
      ['weight 0', (ir) => (ir.services[0].backends[0].weight = 0), '{ address: 10.0.0.1, port: 8080, weight: 2 }', '{ address: 10.0.0.1, port: 8080, weight: 0 }'],
      ['port 70000', (ir) => (ir.services[1].port = 70000), 'port: 53', 'port: 70000'],
      ['an unknown mode', (ir) => (ir.services[0].mode = 'fastest' as never), 'mode: hash', 'mode: fastest'],
      ['a health path with a quote', (ir) => (ir.services[0].health!.http!.path = '/x"y'), 'path: /healthz', "path: '/x\"y'"],
      ['a multicast vip', (ir) => (ir.services[0].vip = { address: '224.0.0.1', prefixLength: 32, isHost: true }), 'vip: 192.0.2.10', 'vip: 224.0.0.1'],
      ['a duplicate name', (ir) => (ir.services[1].name = 'web'), 'name: six', 'name: web'],
    ];
    for (const [what, edit, from, to] of cases) {
      const ir = base();
      edit(ir);
      const viaIR = checkIR(ir).diagnostics.filter((d) => d.severity === 'error');
      const viaSpec = checkSpec(SPEC.replace(from, to), 'web.yaml').diagnostics.filter((d) => d.severity === 'error');
      expect(viaIR.length, what).toBeGreaterThan(0);
      // Same codes and messages; positions are the IR's (the value's field or its service/backend).
      expect(viaIR.map((d) => `${d.code} ${d.message}`), what).toEqual(viaSpec.map((d) => `${d.code} ${d.message}`));
      for (const d of viaIR) expect(d.location?.file, what).toBe('web.yaml');
    }
  });

  it('refuses values the validator would have normalized, and bad backend indexes', () => {
    const msgs = (edit: (ir: IR) => void) => {
      const ir = withoutLocations(base());
      edit(ir);
      return checkIR(ir).diagnostics.map(formatDiagnostic).join('\n');
    };
    expect(msgs((ir) => (ir.services[1].vip!.address = '2001:DB8::10'))).toMatch(/service "six": vip is .*"2001:DB8::10".*not in the normalized form .*"2001:db8::10".* \[LBC2092\]/);
    expect(msgs((ir) => (ir.services[0].mode = 'round-robin' as never))).toMatch(/service "web": mode is "round-robin", not in the normalized form "nth"/);
    expect(msgs((ir) => (ir.services[0].hashFields = ['sport', 'saddr']))).toMatch(/hashFields is \["sport","saddr"\], not in the normalized form \["saddr","sport"\]/);
    expect(msgs((ir) => (ir.services[0].hashFields = []))).toMatch(/hash needs at least one field \[LBC2018\]/);
    expect(msgs((ir) => (ir.services[1].hashFields = ['saddr']))).toMatch(/"hash" fields only apply to mode: hash \[LBC2017\]/);
    expect(msgs((ir) => (ir.services[1].vip!.isHost = true))).toMatch(/vip is .*"isHost":true.*normalized form .*"isHost":false/);
    expect(msgs((ir) => (ir.services[0].backends[1].health = null))).toMatch(/backend 1: health is null[\s\S]*every backend of a service with a health check carries the check/);
    expect(msgs((ir) => (ir.services[0].backends[1].index = 0))).toMatch(/service "web", backend 1: index 0 must be a whole number from 0 to 1023, different for every backend of the service \[LBC2091\]/);
    expect(msgs((ir) => (ir.services[0].backends[0].index = -1))).toMatch(/LBC2091/);
    expect(msgs((ir) => (ir.services[0].sticky = { timeoutSeconds: 0.5 }))).toMatch(/sticky must be an idle timeout/);
    expect(msgs((ir) => ((ir.services[0] as { family: unknown }).family = 'ipx'))).toMatch(/"family" in a service must be one of ipv4, ipv6, not "ipx"/);
    expect(msgs((ir) => (ir.services[1].family = 'ipv4'))).toMatch(/mixes address families/);
    expect(msgs((ir) => (ir.services[0].backends = []))).toMatch(/"backends" must be a non-empty list/);
    expect(msgs((ir) => (ir.services[0].backends[0].backup = true) && (ir.services[0].backends[1].backup = true))).toMatch(/only backup backends/);
  });

  it('refuses what is not an IR, and an IR whose getters throw, without throwing itself', () => {
    for (const bad of [null, 7, 'x', [], { services: [] }, { file: 3, services: [] }]) {
      expect(checkIR(bad).diagnostics.map((d) => d.code)).toEqual(['LBC2090']);
    }
    expect(checkIR({ file: 'f', services: 5 }).diagnostics.map((d) => d.message)).toEqual(['"services" must be a list, not the number 5']);
    const ir = base();
    Object.defineProperty(ir.services[0], 'port', {
      get() {
        throw new Error('no port for you');
      },
    });
    expect(checkIR(ir).diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual(['LBC2090 the IR cannot be read: no port for you']);
  });

  it('emits the checked copy: a getter cannot change a value after the check', () => {
    const ir = clone(base());
    let reads = 0;
    Object.defineProperty(ir.services[0], 'interface', { get: () => (reads++ === 0 ? 'eth0' : 'eth0"; flush ruleset; "'), enumerable: true });
    const out = compile(ir, 'nftables').files.map((f) => f.content).join('\n');
    expect(reads).toBe(1);
    expect(out).not.toContain('flush ruleset');
    expect(out).toContain('iifname "eth0"');
  });

  it('checks an IR that parseSpec made again once it was changed', () => {
    const ir = base();
    expect(compile(ir, 'nftables').files.length).toBeGreaterThan(0);
    ir.services[1].name = 'x y';
    expect(refusal(() => compile(ir, 'nftables'))).toEqual([expect.stringMatching(/^web\.yaml:14:11: error: service name "x y" must be/)]);
    ir.services[1].name = 'six';
    ir.services[0].backends.push({ ...ir.services[0].backends[0], index: 3 });
    expect(refusal(() => compile(ir, 'nftables'))).toEqual([expect.stringMatching(/backend 10\.0\.0\.1 port 8080 is listed twice \(first at line 11\) \[LBC2021\]/)]);
  });
});

describe('entry points that take an IR', () => {
  const hostile = () => {
    const ir = withoutLocations(base());
    ir.services[0].interface = 'eth0"; flush ruleset; "';
    return ir;
  };

  it('compile(ir, target) refuses it for every target', () => {
    for (const t of TARGET_NAMES) expect(refusal(() => compile(hostile(), t)), t).toEqual([expect.stringMatching(/^lbc: error: interface "eth0"; flush ruleset; "" is not a valid interface name .*\[LBC2016\]$/)]);
  });

  it('TARGETS: emit() and the agent drivers refuse it', async () => {
    for (const t of TARGETS.values()) {
      expect(refusal(() => t.emit(hostile(), {})), t.name).toHaveLength(1);
      if (t.agentDriver) {
        const live = hostile();
        await expect(t.agentDriver.load({ spec: base(), live, files: [], previous: null, compile: () => [] }, { dryRun: true, run: async () => {}, query: async () => '', log: () => {} }), t.name).rejects.toBeInstanceOf(LbcError);
      }
    }
  });

  it('names the targets in the types, and the list is the registry', () => {
    expect([...REGISTRY.keys()].sort()).toEqual([...TARGET_NAMES].sort());
    expect([...TARGETS.keys()]).toEqual([...REGISTRY.keys()]);
    const name: TargetName = 'nftables';
    expect(compile(base(), name).files.length).toBeGreaterThan(0);
    expect(refusal(() => compile(base(), 'nft' as TargetName))).toEqual(['lbc: error: unknown target "nft" [LBC4002]\n  note: targets: ' + [...REGISTRY.keys()].join(', ')]);
  });
});

/** Values a script might put anywhere: each marked, so any that reaches output is found. */
const HOSTILE = [
  'x"; flush ruleset; "PWNED',
  'PWNED\n-A INPUT -j ACCEPT',
  'eth0 PWNED',
  '10.0.0.1 PWNED',
  '/PWNED"\ncheck tcp',
  'PWNED}',
  '220\u0000PWNED',
];
const NUMBERS = [0, -1, 1.5, 65536, 1e9, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53];

describe('random edits of valid IRs', () => {
  it('are refused, or compile to output without any edited text in it', () => {
    const irs = fc.sample(specArbitrary({ maxServices: 3, maxBackends: 3 }), { numRuns: 30, seed: 99 }).map((t) => parseSpec(t, 'p.json'));
    irs.push(base());
    const edit = fc.record({
      which: fc.nat(),
      backend: fc.nat(),
      field: fc.constantFrom('name', 'interface', 'vip', 'port', 'protocol', 'mode', 'hashFields', 'sticky', 'local', 'family', 'b.address', 'b.port', 'b.weight', 'b.backup', 'b.index', 'h.path', 'h.host', 'h.send', 'h.expect', 'h.intervalMs'),
      value: fc.oneof(fc.constantFrom(...HOSTILE), fc.constantFrom(...NUMBERS), fc.constantFrom(null, true, undefined, {}, [], ['PWNED'])),
    });
    let refused = 0;
    let compiled = 0;
    fc.assert(
      fc.property(fc.nat(irs.length - 1), fc.array(edit, { minLength: 1, maxLength: 3 }), fc.constantFrom<TargetName>(...TARGET_NAMES), (k, edits, target) => {
        const ir = clone(irs[k]);
        for (const e of edits) {
          const s = ir.services[e.which % ir.services.length] as unknown as Record<string, unknown> & { backends: Record<string, unknown>[] };
          const b = s.backends[e.backend % s.backends.length];
          const [scope, f] = e.field.includes('.') ? e.field.split('.') : ['s', e.field];
          if (scope === 's') s[f] = f === 'vip' && typeof e.value === 'string' ? { address: e.value, prefixLength: 32, isHost: true } : e.value;
          else if (scope === 'b') b[f] = e.value;
          else if (b.health && typeof b.health === 'object') {
            const h = b.health as Record<string, Record<string, unknown> | unknown>;
            if (f === 'path' || f === 'host') h.http = { ...(h.http as object), [f]: e.value };
            else if (f === 'send' || f === 'expect') h.banner = { ...(h.banner as object), [f]: e.value };
            else h[f] = e.value;
          }
        }
        let text: string;
        try {
          text = compile(ir, target, { emit: { specPath: '/etc/lbc/p.json' } }).files.map((f) => f.content).join('\n');
        } catch (err) {
          expect(err).toBeInstanceOf(LbcError);
          refused++;
          return;
        }
        compiled++;
        expect(text).not.toContain('PWNED');
        expect(text).not.toMatch(/\u0000|\r/);
      }),
      { numRuns: 600, seed: 424242 },
    );
    // Both outcomes happened: the property was not vacuous.
    expect(refused).toBeGreaterThan(100);
    expect(compiled).toBeGreaterThan(20);
  });
});
