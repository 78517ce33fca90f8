/** The spec's `associations` and `source-nat`: defaults, inheritance, and every refusal with its position. */
import { describe, expect, it } from 'vitest';
import { checkSpec } from '../../src/index.js';

const errors = (text: string) =>
  checkSpec(text, 's.yaml')
    .diagnostics.filter((d) => d.severity === 'error')
    .map((d) => `${d.location?.line}:${d.location?.column} ${d.code} ${d.message}`);

const coap = (extra: string, backends = '[10.0.0.1, 10.0.0.2]') => `version: 1
services:
  - name: coap
    vip: 192.0.2.1
    port: 5683
    protocol: udp
${extra}    backends: ${backends}
`;

describe('associations in the spec', () => {
  it('has sbulb\'s defaults: 1,048,576 associations, never idle, not backend-initiated', () => {
    const { ir } = checkSpec(coap('    associations: {}\n'), 's.yaml');
    expect(ir!.services[0].associations).toEqual({ max: 1_048_576, idleSeconds: null, backendInitiated: false });
    expect(ir!.services[0].loc.associations).toMatchObject({ line: 7 });
  });

  it('reads max, idle and backend-initiated', () => {
    const { ir } = checkSpec(coap('    associations: { max: 4, idle: 1d2h, backend-initiated: true }\n'), 's.yaml');
    expect(ir!.services[0].associations).toEqual({ max: 4, idleSeconds: 93_600, backendInitiated: true });
  });

  it.each([
    ['a bare number as idle', 'associations: { idle: 600 }', '7:27 LBC2130 associations idle needs a unit'],
    ['an idle that is not whole seconds', 'associations: { idle: 1500ms }', '7:27 LBC2130 associations idle must be a whole number of seconds'],
    ['an idle beyond 24 days', 'associations: { idle: 30d }', '7:27 LBC2130 associations idle must be between 1s and'],
    ['max 0', 'associations: { max: 0 }', '7:26 LBC2004 "max" in associations must be between 1 and 16777216'],
    ['a misspelt field', 'associations: { backend-initated: true }', '7:21 LBC2001 unknown field "backend-initated" in associations'],
    ['a list instead of a mapping', 'associations: [1]', '7:19 LBC2130 "associations" must be a mapping'],
  ])('refuses %s', (_what, line, want) => {
    expect(errors(coap(`    ${line}\n`)).join('\n')).toContain(want);
  });

  it('refuses TCP, a CIDR or missing vip, sticky, local, a backend port of its own and a local backend, each where it is written', () => {
    const text = `version: 1
services:
  - name: a
    vip: 192.0.2.0/24
    port: 80
    sticky: 10m
    local: true
    associations: {}
    backends: ["10.0.0.1:81", ":90"]
  - name: b
    port: 53
    protocol: udp
    associations: {}
    backends: [10.0.0.3]
`;
    expect(errors(text)).toEqual([
      '4:10 LBC2132 service "a": associations need a single-address vip: a backend\'s packets leave from the vip, so it must be one address',
      '6:5 LBC2133 service "a": sticky and associations both choose who keeps a backend; associations already keep each client address and port on its backend',
      '7:5 LBC2133 service "a": associations are kept for clients on the network; connections made on the balancer itself (local: true) are not associated',
      '8:5 LBC2131 service "a": associations are for UDP services; this one is tcp',
      '9:16 LBC2134 service "a": with associations backends run on the service port (80), not 81: only addresses are rewritten, so clients and backends see the same ports',
      '9:31 LBC2134 service "a": with associations every backend needs an address: only addresses are rewritten, and a port on the balancer itself would be the vip again',
      '10:5 LBC2132 service "b": associations need a single-address vip: a backend\'s packets leave from the vip, so it must be one address',
    ]);
  });

  it('refuses a backend that serves a service with associations and another UDP service', () => {
    const text = `version: 1
services:
  - { name: a, vip: 192.0.2.1, port: 5683, protocol: udp, associations: {}, backends: [10.0.0.1] }
  - { name: b, vip: 192.0.2.2, port: 5683, protocol: udp, associations: {}, backends: [10.0.0.1] }
  - { name: c, vip: 192.0.2.3, port: 53, protocol: udp, backends: ["10.0.0.1:5683"] }
  - { name: d, vip: 192.0.2.4, port: 80, backends: ["10.0.0.1:5683"] }
`;
    const e = errors(text);
    expect(e).toHaveLength(2);
    expect(e[0]).toMatch(/^4:\d+ LBC2136 backend 10\.0\.0\.1 port 5683 serves both "a" and "b"/);
    expect(e[1]).toMatch(/^5:\d+ LBC2136 backend 10\.0\.0\.1 port 5683 of "c" is also a backend of "b"/);
  });
});

describe('source-nat in the spec', () => {
  it('is inherited from the top of the spec, and none or an own value overrides it', () => {
    const { ir, diagnostics } = checkSpec(
      `version: 1
source-nat: masquerade
services:
  - { name: a, vip: 192.0.2.1, port: 80, backends: [10.0.0.1] }
  - { name: b, vip: 192.0.2.1, port: 81, source-nat: none, backends: [10.0.0.2] }
  - { name: c, vip: "2001:db8::1", port: 80, source-nat: "2001:DB8::fe", backends: ["2001:db8::2"] }
`,
      's.yaml',
    );
    expect(diagnostics).toEqual([]);
    expect(ir!.services.map((s) => s.sourceNat)).toEqual([{ kind: 'masquerade' }, null, { kind: 'address', address: '2001:db8::fe' }]);
    expect(ir!.services[0].loc.sourceNat).toMatchObject({ line: 2 });
  });

  it('refuses a misspelt word, an address of the other family, a block, and backend-initiated associations', () => {
    const text = `version: 1
source-nat: 192.0.2.250
services:
  - { name: a, vip: 192.0.2.1, port: 80, source-nat: masqurade, backends: [10.0.0.1] }
  - { name: b, vip: "2001:db8::1", port: 80, backends: ["2001:db8::2"] }
  - { name: c, vip: 192.0.2.3, port: 80, source-nat: 10.0.0.0/8, backends: [10.0.0.3] }
  - { name: d, vip: 192.0.2.4, port: 5683, protocol: udp, associations: { backend-initiated: true }, backends: [10.0.0.4] }
`;
    const e = errors(text);
    expect(e[0]).toBe('4:54 LBC2150 "source-nat" in a service must be masquerade, none or an IP address, not "masqurade"');
    expect(e[1]).toBe('5:5 LBC2151 service "b" is IPv6, but its source-nat address 192.0.2.250 is IPv4 (the spec\'s source-nat, line 2)');
    expect(e[2]).toMatch(/^6:54 LBC2150 source-nat: "10\.0\.0\.0\/8" is a CIDR block/);
    expect(e[3]).toMatch(/^7:\d+ LBC2135 service "d": backend-initiated associations need backends that see their clients' addresses/);
    expect(e).toHaveLength(4);
    const hint = checkSpec(text, 's.yaml').diagnostics.find((d) => d.code === 'LBC2150')!;
    expect(hint.notes).toEqual(['did you mean "masquerade"?']);
  });

  it('refuses services that share a backend with different source-nat', () => {
    const e = errors(`version: 1
services:
  - { name: a, vip: 192.0.2.1, port: 80, source-nat: masquerade, backends: ["10.0.0.1:8080"] }
  - { name: b, vip: 192.0.2.2, port: 80, backends: ["10.0.0.1:8080"] }
  - { name: c, vip: 192.0.2.3, port: 80, source-nat: masquerade, backends: ["10.0.0.1:8080"] }
`);
    expect(e).toEqual([
      '4:53 LBC2152 backend 10.0.0.1 port 8080 serves "a" (source-nat masquerade) and "b" (source-nat none): source NAT is decided by the backend a connection goes to, so they must agree',
    ]);
  });
});
