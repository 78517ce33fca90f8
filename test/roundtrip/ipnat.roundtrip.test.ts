/**
 * Round trip for --target ipnat: compile IR, parse both files back with the
 * IPFilter grammars, extract what they do, and compare with what the IR asks
 * for. No string comparison with expected output.
 */
import { describe, expect, it } from 'vitest';
import { compileForTarget } from '../../src/targets/target.js';
import { ipnatTarget } from '../../src/targets/ipnat/index.js';
import type { IR } from '../../src/ir/types.js';
import { filterCoverage, ipfMeaning, ipnatMeaning, parseIpf, parseIpnat } from '../../grammars/ipnat/index.js';
import { expectedNat, makeIR, makeService, normalizeNat } from './ipnat-support.js';

export function roundTrip(ir: IR) {
  const result = compileForTarget(ipnatTarget, ir);
  expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  expect(result.files.map((f) => f.name)).toEqual(['ipnat.rules', 'ipf.rules']);
  const natFile = parseIpnat(result.files[0].content);
  expect(natFile.warnings).toEqual([]);
  const nat = ipnatMeaning(natFile);
  expect(nat.problems).toEqual([]);
  const filt = ipfMeaning(parseIpf(result.files[1].content));
  expect(filt.problems).toEqual([]);
  expect(normalizeNat(nat)).toEqual(expectedNat(ir));
  expect(filterCoverage(nat, filt)).toEqual([]);
  // Precise: each pass rule requires the tag of the rdr rules that send there (match-tag), so traffic
  // addressed to a backend directly, without a translation, is not let in by lbc's rules.
  for (const p of filt.passes) expect(p.natTag, `ipf.rules line ${p.line}`).toMatch(/^lbc[0-9a-f]{7}(_\d+)?$/);
  return { result, nat, filt };
}

describe('ipnat round trip', () => {
  it('seed 000: eight local instances on ports 4001-4008 behind port 4000 on a /20', () => {
    const svc = makeService({
      name: 'game',
      vip: { address: '198.51.96.0', prefixLength: 20, isHost: false },
      port: 4000,
      interface: 'lagg0',
      backends: [4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008].map((port) => ({ address: null, port })),
    });
    const { nat, result } = roundTrip(makeIR([svc]));
    expect(nat.redirects).toHaveLength(1);
    expect(nat.redirects[0].policy).toBe('rotate');
    expect(nat.redirects[0].members.map((m) => m.port)).toEqual([4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008]);
    expect(result.diagnostics).toEqual([]);
  });

  it('seed 002: ten web servers, round-robin, sticky, port 80', () => {
    const svc = makeService({
      name: 'www',
      vip: { address: '192.0.2.51', prefixLength: 32, isHost: true },
      sticky: { timeoutSeconds: 300 },
      backends: ['20', '21', '22', '23', '24', '30', '31', '32', '33', '34'].map((o) => ({ address: `198.51.100.${o}`, port: 80 })),
    });
    const { nat, result } = roundTrip(makeIR([svc]));
    expect(nat.redirects[0].sticky).toBe(true);
    expect(nat.redirects[0].members).toHaveLength(10);
    // sticky is an approximation: said once as a warning, with the spec position.
    expect(result.diagnostics.map((d) => [d.code, d.severity, d.location?.line])).toEqual([['LBC3002', 'warning', 7]]);
    expect(result.files[0].content).toMatch(/# +sticky \(approximate\)/);
  });

  it('weights, a local backend and a backup on IPv6', () => {
    const svc = makeService({
      name: 'api6',
      family: 'ipv6',
      port: 443,
      backends: [
        { address: '2001:db8::a', port: 8443, weight: 2 },
        { address: '2001:db8::b', port: 8443, weight: 4 },
        { address: null, port: 9443, weight: 2 },
        { address: '2001:db8::c', port: 8443, backup: true },
      ],
    });
    const { nat } = roundTrip(makeIR([svc]));
    expect(nat.redirects[0].family).toBe('ipv6');
  });

  it('UDP, a CIDR vip, several services and ports that are not consecutive', () => {
    const ir = makeIR([
      makeService({ name: 'dns', protocol: 'udp', port: 53, vip: { address: '203.0.113.0', prefixLength: 28, isHost: false }, backends: [{ address: '10.1.0.1', port: 53 }, { address: '10.1.0.2', port: 5353 }] }, 1),
      makeService({ name: 'web', port: 80, interface: 'vlan100', backends: [{ address: '10.2.0.1', port: 8080 }, { address: '10.2.0.1', port: 8082 }, { address: null, port: 8081, weight: 3 }] }, 40),
      makeService({ name: 'one', port: 25, backends: [{ address: '10.3.0.1', port: 2525 }] }, 80),
      makeService({ name: 'range', port: 90, backends: [{ address: '10.4.0.1', port: 9001 }, { address: '10.4.0.1', port: 9002 }, { address: '10.4.0.1', port: 9003 }] }, 120),
    ]);
    roundTrip(ir);
  });

  it('a sticky service with one backend stays sticky', () => {
    roundTrip(makeIR([makeService({ sticky: { timeoutSeconds: 60 }, backends: [{ address: '10.0.0.1', port: 80 }] })]));
  });

  it('output is deterministic', () => {
    const mk = () => makeIR([makeService({ backends: [{ address: '10.0.0.1', port: 80, weight: 3 }, { address: '10.0.0.2', port: 80, weight: 2 }] })]);
    expect(compileForTarget(ipnatTarget, mk()).files).toEqual(compileForTarget(ipnatTarget, mk()).files);
  });
});
