// allow, ports and the icmp/udp checks as the validator reads them: values, positions, refusals.
import { describe, expect, it } from 'vitest';
import { checkSpec, formatDiagnostic, parseSpec } from '../../src/index.js';

const svc = (body: string, extra = '') => `version: 1\nservices:\n  - name: s\n    vip: 10.0.0.1\n${body}    backends: [10.1.0.1${extra}]\n`;
const diags = (text: string) => checkSpec(text, 's.yaml').diagnostics.map(formatDiagnostic);
const errors = (text: string) => checkSpec(text, 's.yaml').diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);

describe('ports', () => {
  it('reads ports and ranges, sorted, with the first port as the service port', () => {
    const s = parseSpec(svc('    ports: [5684, "4000-4010", 5683]\n')).services[0];
    expect(s.ports).toEqual([{ from: 4000, to: 4010 }, { from: 5683, to: 5683 }, { from: 5684, to: 5684 }]);
    expect(s.port).toBe(4000);
    expect(s.loc.ports).toMatchObject({ line: 5, column: 12 });
  });

  it('a backend without a port keeps the client port; one with a port sends every port there', () => {
    const s = parseSpec(`version: 1\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [5683, 5684]\n    backends: [10.1.0.1, "10.1.0.2:5700", { address: 10.1.0.3 }, { address: 10.1.0.4, port: 5683 }]\n`).services[0];
    expect(s.backends.map((b) => [b.port, b.keepsPort])).toEqual([[5683, true], [5700, false], [5683, true], [5683, false]]);
  });

  it('a single port keeps the old meaning: no backend keeps "the client port"', () => {
    const s = parseSpec(svc('    port: 80\n')).services[0];
    expect(s.ports).toEqual([{ from: 80, to: 80 }]);
    expect(s.backends[0]).toMatchObject({ port: 80, keepsPort: false });
    expect(s.allow).toBeNull();
  });

  it('port: [a, b] points at ports, with the list to write', () => {
    expect(errors(svc('    port: [5683, 5684]\n'))).toEqual([
      's.yaml:5:11: error: "port" takes one port; service "s" lists several [LBC2060]\n  note: write "ports: [5683, 5684]" for one service on all of them (one rotation and affinity shared by every port), or one service per port',
    ]);
  });

  it.each([
    ['both port and ports', '    port: 80\n    ports: [81]\n', /6:5: error: service "s" has both "port" and "ports" \[LBC2060\]/],
    ['neither', '', /3:5: error: service "s" needs a "port" \(1-65535\), or "ports" for several \[LBC2015\]/],
    ['an empty list', '    ports: []\n', /5:12: error: "ports" must be a non-empty list .* \[LBC2061\]/],
    ['a reversed range', '    ports: ["90-80"]\n', /5:13: error: port range "90-80" must be LOW-HIGH with LOW below HIGH \[LBC2063\]/],
    ['a range beyond 65535', '    ports: ["65000-65536"]\n', /5:13: error: an entry of "ports" must be a port .* \[LBC2061\]/],
    ['port 0', '    ports: [0, 80]\n', /5:13: error: a port in "ports" must be between 1 and 65535, not 0 \[LBC2004\]/],
    ['a port twice', '    ports: [80, 443, 80]\n', /5:22: error: port 80 is listed twice in "ports" \(first at line 5\) \[LBC2062\]/],
    ['overlapping ranges', '    ports: ["4000-4010", 4005]\n', /5:26: error: "4005" overlaps "4000-4010" in "ports" \(first at line 5\) \[LBC2062\]/],
    ['a word', '    ports: [http]\n', /5:13: error: an entry of "ports" must be a port .* not the string "http" \[LBC2061\]/],
  ])('refuses %s', (_what, body, re) => {
    const e = errors(svc(body));
    expect(e.length, e.join('\n')).toBe(1);
    expect(e[0]).toMatch(re);
  });

  it('two services may not share a port of a range on one vip; disjoint ports are fine', () => {
    const two = (a: string, b: string) => `version: 1\nservices:\n  - { name: a, vip: 10.0.0.1, ${a}, backends: [10.1.0.1] }\n  - { name: b, vip: 10.0.0.1, ${b}, backends: [10.1.0.2] }\n`;
    expect(errors(two('ports: ["4000-4010"]', 'port: 4007'))).toEqual([
      expect.stringMatching(/^s\.yaml:4:21: error: services "a" and "b" both claim tcp port 4007 on 10\.0\.0\.1\/32 \[LBC2051\]/),
    ]);
    expect(errors(two('ports: ["4000-4010"]', 'ports: [4011, "5000-5001"]'))).toEqual([]);
    // Nested CIDR blocks are refused where their ports meet, also through a range.
    const nested = `version: 1\nservices:\n  - { name: a, vip: 10.0.0.0/8, ports: ["1-100"], backends: [10.1.0.1] }\n  - { name: b, vip: 10.2.0.0/16, port: 50, backends: [10.1.0.2] }\n  - { name: c, vip: 10.3.0.0/16, port: 101, backends: [10.1.0.2] }\n`;
    expect(errors(nested)).toEqual([expect.stringMatching(/^s\.yaml:4:21: error: vip 10\.2\.0\.0\/16 of "b" overlaps 10\.0\.0\.0\/8 of "a" on the same protocol and port \[LBC2052\]/)]);
  });
});

describe('allow', () => {
  it('reads addresses and blocks, sorted, inner blocks left out with a warning', () => {
    const text = svc('    port: 80\n    allow: [222.222.222.0/24, 10.0.0.0/8, 221.222.212.0/24, 10.9.0.0/16, 192.0.2.7, 222.222.222.0/24]\n');
    const r = checkSpec(text, 's.yaml');
    expect(r.ir!.services[0].allow!.map((p) => `${p.address}/${p.prefixLength}`)).toEqual(['10.0.0.0/8', '192.0.2.7/32', '221.222.212.0/24', '222.222.222.0/24']);
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([
      's.yaml:6:61: warning: allow: 10.9.0.0/16 lies inside 10.0.0.0/8 (line 6); it changes nothing [LBC2073]',
      's.yaml:6:85: warning: allow: 222.222.222.0/24 is listed twice (line 6); it changes nothing [LBC2073]',
    ]);
    expect(r.ir!.services[0].loc.allow).toMatchObject({ line: 6, column: 12 });
  });

  it('the whole address space is every client: no list, and a warning', () => {
    const r = checkSpec(svc('    port: 80\n    allow: [10.0.0.0/8, 0.0.0.0/0]\n'), 's.yaml');
    expect(r.ir!.services[0].allow).toBeNull();
    expect(r.diagnostics.map(formatDiagnostic)).toEqual(['s.yaml:6:25: warning: allow: 0.0.0.0/0 lets every client in, so service "s" balances everyone [LBC2072]\n  note: leave "allow" out']);
  });

  it.each([
    ['an empty list', '    allow: []\n', /6:12: error: "allow" must be a non-empty list .* \[LBC2070\]\n  note: an empty list would refuse every client/],
    ['host bits', '    allow: [10.0.0.1/8]\n', /6:13: error: allow: "10\.0\.0\.1\/8" has host bits set \[LBC2071\]\n  note: the network is 10\.0\.0\.0\/8/],
    ['another family', '    allow: [2001:db8::/32]\n', /6:13: error: service "s" mixes address families: this address is IPv6 but the service is IPv4 \(from line 4\) \[LBC2013\]/],
    ['a name', '    allow: [office]\n', /6:13: error: allow: "office" is not an IP address \[LBC2071\]/],
    ['a number', '    allow: [10]\n', /6:13: error: an entry of "allow" must be an address or CIDR block, not the number 10 \[LBC2071\]/],
    ['a single value', '    allow: 10.0.0.0/8\n', /6:12: error: "allow" must be a non-empty list .* \[LBC2070\]/],
  ])('refuses %s', (_what, body, re) => {
    const e = errors(svc(`    port: 80\n${body}`));
    expect(e.length, e.join('\n')).toBe(1);
    expect(e[0]).toMatch(re);
  });

  it('settles the family of a service that has no other address', () => {
    const s = parseSpec('version: 1\nservices:\n  - { name: s, port: 80, allow: ["2001:db8::/32"], backends: [":8080"] }\n').services[0];
    expect(s.family).toBe('ipv6');
  });
});

describe('check: icmp and udp', () => {
  it('reads a udp check: hex bytes, spaces optional, lower case', () => {
    const s = parseSpec(svc('    port: 5683\n    protocol: udp\n    health: { check: udp, send: "40 01 00 00", expect: 70 00 AB CD }\n')).services[0];
    expect(s.health).toMatchObject({ check: 'udp', port: null, udp: { send: '40010000', expect: '7000abcd' }, banner: null, http: null });
    expect(s.backends[0].health).toBe(s.health);
  });

  it('expect is optional: any answer is healthy', () => {
    expect(parseSpec(svc('    port: 53\n    health: { check: udp, send: "00" }\n')).services[0].health!.udp).toEqual({ send: '00', expect: null });
  });

  it('an icmp check has no port, even when the service check it overrides had one', () => {
    const text = `version: 1\nservices:\n  - name: www\n    vip: 192.168.1.51\n    port: 80\n    health: { check: tcp, port: 8081, interval: 10s }\n    backends:\n      - 192.168.10.20\n      - { port: 80, backup: true, health: { check: icmp } }\n`;
    const s = parseSpec(text).services[0];
    expect(s.backends[0].health).toMatchObject({ check: 'tcp', port: 8081 });
    expect(s.backends[1].health).toMatchObject({ check: 'icmp', port: null, intervalMs: 10000 });
  });

  it('a backend override of a udp check keeps its payload', () => {
    const text = svc('    port: 5683\n    protocol: udp\n    health: { check: udp, send: "40 00 00 00", expect: "70 00 00 00" }\n', ', { address: 10.1.0.2, health: { fall: 5 } }');
    const b = parseSpec(text).services[0].backends[1];
    expect(b.health).toMatchObject({ check: 'udp', fall: 5, udp: { send: '40000000', expect: '70000000' } });
  });

  it.each([
    ['udp without send', '    health: { check: udp }\n', /7:13: error: check: udp needs "send": the datagram to send as hex bytes, e\.g\. "40 00 00 00" \(a CoAP ping\) \[LBC2048\]/],
    ['send that is not hex', '    health: { check: udp, send: "ping" }\n', /7:33: error: health send for check: udp must be hex bytes .* not "ping" \[LBC2047\]/],
    ['an odd digit', '    health: { check: udp, send: "40 0" }\n', /\[LBC2047\]/],
    ['bytes as a bare number', '    health: { check: udp, send: 40000000 }\n', /7:33: error: health send: write the bytes of check: udp as a quoted string of hex pairs, e\.g\. "70 00 00 00", not the number 40000000 \[LBC2047\]/],
    ['a port on icmp', '    health: { check: icmp, port: 80 }\n', /7:28: error: "port" does not apply to check: icmp \(an ICMP echo has no port\) \[LBC2049\]/],
    ['send on icmp', '    health: { check: icmp, send: "00" }\n', /7:28: error: "send" only applies to check: banner or udp \[LBC2043\]/],
    ['path on udp', '    health: { check: udp, send: "00", path: /x }\n', /\[LBC2043\]/],
  ])('refuses %s', (_what, body, re) => {
    const e = errors(svc(`    port: 80\n    protocol: udp\n${body}`));
    expect(e.length, e.join('\n')).toBe(1);
    expect(e[0]).toMatch(re);
  });

  it('banner checks are as they were', () => {
    expect(diags(svc('    port: 25\n    health: { check: banner, expect: 220, send: "QUIT\\r\\n" }\n'))).toEqual([]);
  });
});
