/**
 * Property: for every BSD target in the registry (pf, pf-openbsd, pf-freebsd15, ipnat), any
 * valid IR either compiles to output that its grammar reads back with the
 * same meaning, or is refused with error diagnostics that carry a spec
 * position — never an exception, never output the grammar rejects.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Backend, IR, Service } from '../../src/ir/types.js';
import { TARGETS } from '../../src/targets/registry.js';
import { compileForTarget, type TargetDefinition } from '../../src/targets/target.js';
import { filterCoverage, ipfMeaning, ipnatMeaning, parseIpf, parseIpnat } from '../../grammars/ipnat/index.js';
import { compareToService, parsePf, pfMeaning } from '../../grammars/pf/index.js';
import { at, expectedNat, normalizeNat } from '../roundtrip/ipnat-support.js';

// Documentation ranges only (RFC 5737, RFC 3849).
const v4Host = fc.tuple(fc.constantFrom('192.0.2', '198.51.100', '203.0.113'), fc.integer({ min: 1, max: 254 })).map(([n, h]) => `${n}.${h}`);
const v6Host = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 1, max: 0xffff })).map(([a, b]) => `2001:db8:${a.toString(16)}::${b.toString(16)}`);
const v4Block = fc.tuple(fc.constantFrom('192.0.2', '198.51.100', '203.0.113'), fc.integer({ min: 24, max: 31 })).map(([n, len]) => ({ address: `${n}.0`, prefixLength: len, isHost: false }));
const v6Block = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(48, 64, 120)).map(([a, len]) => ({ address: `2001:db8:${a.toString(16)}::`, prefixLength: len, isHost: false }));

const backendArb = (family: 'ipv4' | 'ipv6') =>
  fc.record({
    address: fc.option(family === 'ipv4' ? v4Host : v6Host, { freq: 4, nil: null }),
    // Mostly one shared port (what pool-based targets can express), sometimes any port.
    port: fc.oneof({ weight: 4, arbitrary: fc.constant(8080) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 65535 }) }),
    weight: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 6 })),
    backup: fc.boolean(),
  });

const serviceArb = (index: number) =>
  fc.constantFrom<'ipv4' | 'ipv6'>('ipv4', 'ipv6').chain((family) =>
    fc.record({
      family: fc.constant(family),
      vip: fc.oneof(
        { weight: 6, arbitrary: (family === 'ipv4' ? v4Host : v6Host).map((address) => ({ address, prefixLength: family === 'ipv4' ? 32 : 128, isHost: true })) },
        { weight: 2, arbitrary: family === 'ipv4' ? v4Block : v6Block },
        { weight: 1, arbitrary: fc.constant(null) },
      ),
      port: fc.integer({ min: 1, max: 60000 }).map((p) => p + index), // distinct listeners per service
      protocol: fc.constantFrom<'tcp' | 'udp'>('tcp', 'udp'),
      interface: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('em0', 'lagg0', 'vlan100', 'igb1') }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constant('wan-1') }),
      mode: fc.constantFrom<Service['mode']>('nth', 'nth', 'random', 'hash'),
      hashFields: fc.constantFrom<Service['hashFields']>(['saddr'], ['saddr', 'sport']),
      sticky: fc.option(fc.integer({ min: 1, max: 86400 }).map((timeoutSeconds) => ({ timeoutSeconds })), { nil: null }),
      /** local: true in about one service of ten. */
      localOn: fc.integer({ min: 0, max: 9 }),
      backends: fc.uniqueArray(backendArb(family), { minLength: 1, maxLength: 6, selector: (b) => `${b.address}|${b.port}` }),
    }),
  );

function toService(raw: any, index: number): Service {
  const line = 1 + index * 40;
  const backends: Backend[] = raw.backends.map((b: any, i: number) => ({ ...b, index: i, health: null, loc: at(line + 20 + i, 9) }));
  if (backends.every((b) => b.backup)) backends[0].backup = false;
  return {
    name: `svc${index}`,
    family: raw.family,
    vip: raw.vip,
    port: raw.port,
    protocol: raw.protocol,
    interface: raw.interface,
    mode: raw.mode,
    hashFields: raw.mode === 'hash' ? raw.hashFields : [],
    sticky: raw.sticky,
    local: raw.localOn === 0,
    backends,
    health: null,
    loc: { service: at(line, 3), name: at(line, 9), vip: at(line + 1, 10), port: at(line + 2, 11), protocol: at(line + 3, 15), interface: at(line + 4, 16), mode: at(line + 5, 11), hash: at(line + 6, 11), sticky: at(line + 7, 13), local: at(line + 8, 12), backends: at(line + 9, 5) },
  };
}

const irArb: fc.Arbitrary<IR> = fc.integer({ min: 1, max: 3 }).chain((n) =>
  fc.tuple(...Array.from({ length: n }, (_, i) => serviceArb(i))).map((raws) => ({ file: 'spec.yaml', services: raws.map(toService) })),
);

function checkIpnat(target: TargetDefinition, ir: IR, files: { name: string; content: string }[]) {
  const kept: IR = { ...ir, services: ir.services.filter((s) => target.families.includes(s.family)) };
  const natFile = parseIpnat(files.find((f) => f.name === 'ipnat.rules')!.content);
  expect(natFile.warnings).toEqual([]);
  const nat = ipnatMeaning(natFile);
  expect(nat.problems).toEqual([]);
  expect(normalizeNat(nat)).toEqual(expectedNat(kept));
  const filt = ipfMeaning(parseIpf(files.find((f) => f.name === 'ipf.rules')!.content));
  expect(filt.problems).toEqual([]);
  expect(filterCoverage(nat, filt)).toEqual([]);
  // Every pass rule admits only what an rdr rule translated (its tag), not any traffic to a backend.
  for (const p of filt.passes) expect(p.natTag, `ipf.rules line ${p.line}`).not.toBeNull();
}

function checkPf(target: TargetDefinition, ir: IR, files: { name: string; content: string }[]) {
  const kept = ir.services.filter((s) => target.families.includes(s.family));
  // FreeBSD 15 reads the rdr-to syntax (the openbsd dialect) but has no table weights.
  const text = files[0].content;
  if (target.name === 'pf-freebsd15') expect(text.replace(/^#.*\n/gm, '')).not.toMatch(/ weight \d/);
  const meanings = pfMeaning(parsePf(text, target.name === 'pf' ? 'freebsd' : 'openbsd'));
  expect(meanings).toHaveLength(kept.length);
  for (const svc of kept) {
    const diffs = meanings.map((m) => compareToService(svc, m));
    expect(diffs.some((d) => d.length === 0), `${svc.name}: ${JSON.stringify(diffs)}`).toBe(true);
  }
}

const BSD = ['pf', 'pf-openbsd', 'pf-freebsd15', 'ipnat'].filter((n) => TARGETS.has(n));

describe('BSD targets: compile and round trip, or refuse with a position', () => {
  for (const name of BSD) {
    it(`${name}`, () => {
      const target = TARGETS.get(name)!;
      let compiled = 0;
      fc.assert(
        fc.property(irArb, (ir) => {
          let result: ReturnType<typeof compileForTarget> | undefined;
          expect(() => (result = compileForTarget(target, ir))).not.toThrow();
          const errors = result!.diagnostics.filter((d) => d.severity === 'error');
          if (errors.length > 0) {
            expect(result!.files).toEqual([]);
            for (const e of errors) {
              expect(e.location, e.message).toBeDefined();
              expect(e.location!.line).toBeGreaterThan(0);
            }
            return;
          }
          for (const d of result!.diagnostics) expect(d.location, d.message).toBeDefined();
          compiled++;
          if (name === 'ipnat') checkIpnat(target, ir, result!.files);
          else checkPf(target, ir, result!.files);
        }),
        { numRuns: 150, seed: 20240611 },
      );
      // Not vacuous: a fair part of the generated specs compile.
      expect(compiled).toBeGreaterThan(15);
    });
  }
});
