/**
 * source-nat on the BSD targets, read back with the grammars: the pf `nat … tagged` rules (FreeBSD),
 * `pass out … tagged … nat-to` (OpenBSD) and ipnat `map` rules must give every service exactly the
 * source the spec asks for, and nothing to a service without source-nat. Each check is shown to fail
 * on a ruleset with the translation taken out.
 */
import { describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/index.js';
import { compileForTarget } from '../../src/targets/target.js';
import { pfTarget } from '../../src/targets/pf/index.js';
import { pfOpenbsdTarget } from '../../src/targets/pf-openbsd/index.js';
import { ipnatTarget } from '../../src/targets/ipnat/index.js';
import { compareToService, parsePf, pfMeaning, type PfDialect } from '../../grammars/pf/index.js';
import { parseIpnat } from '../../grammars/ipnat/ipnat.js';
import type { IR } from '../../src/ir/types.js';

const SPEC = `version: 1
source-nat: masquerade
services:
  - { name: web, vip: 192.0.2.10, port: 80, interface: em0, backends: ["10.0.0.1:8080", "10.0.0.2:8080"] }
  - { name: dns, vip: 192.0.2.10, port: 53, protocol: udp, interface: em0, source-nat: 10.0.0.254, backends: ["10.0.0.3", "10.0.0.4"] }
  - { name: plain, vip: 192.0.2.11, port: 80, interface: em0, source-nat: none, backends: [10.0.0.5] }
  - { name: six, vip: "2001:db8::10", port: 443, interface: em0, source-nat: "2001:db8:1::fe", backends: ["[2001:db8:1::1]:8443", "[2001:db8:1::2]:8443"] }
`;
const ir: IR = parseSpec(SPEC, 'snat.yaml');

function compiled(target: typeof pfTarget): string {
  const r = compileForTarget(target, ir);
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return r.files[0].content;
}

describe.each<[string, typeof pfTarget, PfDialect]>([
  ['pf', pfTarget, 'freebsd'],
  ['pf-openbsd', pfOpenbsdTarget, 'openbsd'],
])('source-nat on %s', (_name, target, dialect) => {
  it('gives each service the source the spec asks for, and none to the one without', () => {
    const text = compiled(target);
    const meanings = pfMeaning(parsePf(text, dialect));
    expect(meanings).toHaveLength(ir.services.length);
    ir.services.forEach((svc, i) => expect(compareToService(svc, meanings[i]), `${svc.name}\n${text}`).toEqual([]));
    expect(meanings.map((m) => m.sourceNat)).toEqual([
      { kind: 'interface', name: 'em0' },
      { kind: 'address', address: '10.0.0.254' },
      null,
      { kind: 'address', address: '2001:db8:1::fe' },
    ]);
  });

  it('is noticed when the translation is missing', () => {
    const text = compiled(target)
      .split('\n')
      .filter((l) => !/^nat |nat-to 10\.0\.0\.254/.test(l))
      .join('\n');
    const meanings = pfMeaning(parsePf(text, dialect));
    expect(compareToService(ir.services[1], meanings[1]).join('\n')).toMatch(/source nat/);
  });
});

describe('source-nat on ipnat', () => {
  it('writes one map rule per backend, with the address, or 0/32 for the interface address', () => {
    const r = compileForTarget(ipnatTarget, ir);
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const parsed = parseIpnat(r.files.find((f) => f.name === 'ipnat.rules')!.content);
    const maps = parsed.maps.map((m) => `${m.interface} ${m.family} ${m.protocol} ${m.src.address}/${m.src.prefixLength} -> ${m.dst.address}/${m.dst.prefixLength}:${m.dport} as ${m.target.address}/${m.target.prefixLength}`);
    // Derived from the spec: masquerade is the interface's own address (0/32), plain has none.
    expect(maps).toEqual([
      'em0 ipv4 tcp 0.0.0.0/0 -> 10.0.0.1/32:8080 as 0.0.0.0/32',
      'em0 ipv4 tcp 0.0.0.0/0 -> 10.0.0.2/32:8080 as 0.0.0.0/32',
      'em0 ipv4 udp 0.0.0.0/0 -> 10.0.0.3/32:53 as 10.0.0.254/32',
      'em0 ipv4 udp 0.0.0.0/0 -> 10.0.0.4/32:53 as 10.0.0.254/32',
      'em0 ipv6 tcp ::/0 -> 2001:db8:1::1/128:8443 as 2001:db8:1::fe/128',
      'em0 ipv6 tcp ::/0 -> 2001:db8:1::2/128:8443 as 2001:db8:1::fe/128',
    ]);
    expect(parsed.rules).toHaveLength(7);
  });

  it('refuses what ipnat refuses in a map rule', () => {
    expect(() => parseIpnat('map em0 from any to 10.0.0.1/32 port = 80 -> 10.0.0.9/24 tcp\n')).toThrow(/bitmask not \/32/);
    expect(() => parseIpnat('map em0 from any to 10.0.0.1/32 port = 80 -> 10.0.0.9/32\n')).toThrow(/needs tcp or udp/);
    expect(() => parseIpnat('map em0 10.0.0.0/8 -> 0/32\n')).toThrow(/outside the subset/);
  });
});
