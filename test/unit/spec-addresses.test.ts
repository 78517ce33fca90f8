/** Addresses no balanced service can use are refused where they are written, with what to write instead. */
import { describe, expect, it } from 'vitest';
import { checkSpec, formatDiagnostic } from '../../src/index.js';
import { specialUse } from '../../src/ir/address.js';

const spec = (svc: string) => `version: 1\nservices:\n  - name: s\n    port: 80\n${svc.replace(/^/gm, '    ')}\n`;
const errors = (svc: string) => checkSpec(spec(svc), 's.yaml').diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
const ok = (svc: string) => expect(checkSpec(spec(svc), 's.yaml').diagnostics.filter((d) => d.severity === 'error'), svc).toEqual([]);

describe('vips', () => {
  it.each([
    ['0.0.0.0/0', /vip 0\.0\.0\.0\/0 is every IPv4 address: it would capture every forwarded connection to port 80 \[LBC2014\]\n {2}note: omit "vip"/],
    ['::/0', /vip ::\/0 is every IPv6 address/],
    ['0.0.0.0', /vip 0\.0\.0\.0 is the unspecified address 0\.0\.0\.0: no connection is addressed to it[\s\S]*omit "vip"/],
    ['0.1.2.3', /vip 0\.1\.2\.3 is 0\.0\.0\.0\/8 \("this network"/],
    ['"::"', /vip :: is the unspecified address ::/],
    ['224.0.0.5', /vip 224\.0\.0\.5 is in the multicast block 224\.0\.0\.0\/4: lbc balances connections, which are made to unicast addresses[\s\S]*note: give the service the unicast address/],
    ['ff02::1', /vip ff02::1 is in the multicast block ff00::\/8/],
    ['255.255.255.255', /vip 255\.255\.255\.255 is the broadcast address 255\.255\.255\.255: lbc balances connections/],
    ['128.0.0.0/1', /vip block 128\.0\.0\.0\/1 contains the link-local block 169\.254\.0\.0\/16/],
    ['192.0.0.0/2', /vip block 192\.0\.0\.0\/2 contains the multicast block 224\.0\.0\.0\/4/],
    ['0.0.0.0/4', /vip block 0\.0\.0\.0\/4 contains 0\.0\.0\.0\/8/],
    ['"::1"', /vip ::1 is the loopback address ::1: connections from other hosts never arrive there/],
    ['127.0.0.1', /vip 127\.0\.0\.1 is in the loopback block 127\.0\.0\.0\/8: connections from other hosts never arrive there[\s\S]*local: true/],
    ['fe80::1', /vip fe80::1 is in the link-local block fe80::\/10: the same address may be in use on every link[\s\S]*add "interface"/],
    ['169.254.10.1', /vip 169\.254\.10\.1 is in the link-local block/],
  ])('refuses vip %s', (vip, re) => {
    const out = errors(`vip: ${vip}\nbackends: ["${vip.includes(':') ? '[2001:db8::5]:80' : '10.0.0.5'}"]`);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^s\.yaml:5:10: error: /);
    expect(out[0]).toMatch(re);
  });

  it('accepts a loopback vip for local connections and a link-local vip on a named link', () => {
    ok('vip: 127.0.0.10\nlocal: true\nbackends: ["10.0.0.5"]');
    ok('vip: fe80::10\ninterface: eth0\nbackends: ["[2001:db8::5]:80"]');
    ok('vip: 169.254.169.254\ninterface: eth0\nbackends: ["10.0.0.5"]');
    // A block's own first and last addresses are not special: lbc does not know the links' subnets.
    ok('vip: 10.0.0.0/24\nbackends: ["10.1.0.255", "10.1.0.0"]');
    ok('vip: 223.255.255.0/24\nbackends: ["10.0.0.5"]');
  });
});

describe('backends', () => {
  it.each([
    ['0.0.0.0', /backend address 0\.0\.0\.0 is the unspecified address 0\.0\.0\.0: nothing can be reached there[\s\S]*\{ port: N \}/],
    ['"::"', /backend address :: is the unspecified address ::/],
    ['127.0.0.1', /backend address 127\.0\.0\.1 is in the loopback block 127\.0\.0\.0\/8: a connection from the network redirected there is dropped[\s\S]*note: write a port on this host as \{ port: N \}/],
    ['127.1.2.3', /loopback block/],
    ['"::1"', /backend address ::1 is the loopback address ::1: a connection from the network/],
    ['239.1.1.1', /backend address 239\.1\.1\.1 is in the multicast block 224\.0\.0\.0\/4: a connection cannot be redirected to a group/],
    ['255.255.255.255', /backend address 255\.255\.255\.255 is the broadcast address 255\.255\.255\.255/],
    ['169.254.1.1', /backend address 169\.254\.1\.1 is in the link-local block 169\.254\.0\.0\/16: a NAT rule cannot say which link[\s\S]*private or public/],
    ['fe80::1', /backend address fe80::1 is in the link-local block fe80::\/10[\s\S]*global or unique-local/],
  ])('refuses backend %s, in both forms', (address, re) => {
    const short = address.includes(':') ? `"[${address.replace(/"/g, '')}]:8080"` : `"${address}:8080"`;
    for (const form of [`{ address: ${address} }`, short]) {
      const out = errors(`backends:\n  - 10.0.0.5\n  - ${form}`.replace('10.0.0.5', address.includes(':') ? '"[2001:db8::5]:80"' : '10.0.0.5'));
      expect(out, form).toHaveLength(1);
      expect(out[0]).toMatch(new RegExp(`^s\\.yaml:7:${form.startsWith('{') ? 20 : 9}: error: `));
      expect(out[0]).toMatch(re);
    }
  });

  it('refuses a backend that is the service itself, and takes the vip on another port', () => {
    expect(errors('vip: 192.0.2.1\nbackends: ["192.0.2.1", "10.0.0.5"]')).toEqual([
      "s.yaml:6:16: error: backend 192.0.2.1 port 80 is the service's own vip and port: connections would be sent where they are already going [LBC2034]\n  note: to hand them to a listener on this host, give that listener another port (a backend { port: N }, or this address with port N)",
    ]);
    ok('vip: 192.0.2.1\nbackends: ["192.0.2.1:8080"]');
  });
});

describe('specialUse', () => {
  it('tells blocks within, containing and beside the special ones', () => {
    const p = (address: string, prefixLength: number, full = 32) => ({ address, prefixLength, isHost: prefixLength === full });
    expect(specialUse(p('10.0.0.0', 8), 'ipv4')).toBeNull();
    expect(specialUse(p('223.255.255.255', 32), 'ipv4')).toBeNull();
    expect(specialUse(p('224.0.0.0', 32), 'ipv4')).toMatchObject({ use: 'multicast', within: true });
    expect(specialUse(p('192.0.0.0', 2), 'ipv4')).toMatchObject({ use: 'multicast', within: false });
    expect(specialUse(p('255.255.255.254', 31), 'ipv4')).toMatchObject({ use: 'broadcast', within: false });
    expect(specialUse(p('fe80::', 64, 128), 'ipv6')).toMatchObject({ use: 'link-local', within: true });
    expect(specialUse(p('fec0::', 10, 128), 'ipv6')).toBeNull();
    expect(specialUse(p('::', 127, 128), 'ipv6')).toMatchObject({ use: 'unspecified', within: false });
    expect(specialUse(p('2001:db8::', 32, 128), 'ipv6')).toBeNull();
  });
});
