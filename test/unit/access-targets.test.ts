// How the Linux targets lay out allow lists and several ports (the kernel tests prove the traffic;
// these pin the shapes the layouts rely on).
import { describe, expect, it } from 'vitest';
import { compile, parseSpec } from '../../src/index.js';
import { shadowing } from '../../src/targets/iptables/access.js';

const spec = (services: string) => parseSpec(`version: 1\nservices:\n${services}`, 's.yaml');
const out = (services: string, target: string) => {
  const r = compile(spec(services), target);
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return Object.fromEntries(r.files.map((f) => [f.name, f.content]));
};

describe('nftables', () => {
  it('a random service with an allow list or several ports keeps a chain of its own (no shared map)', () => {
    const t = out(
      `  - { name: plain, vip: 10.0.0.1, port: 80, mode: random, backends: [10.1.0.1, 10.1.0.2] }
  - { name: guarded, vip: 10.0.0.2, port: 80, mode: random, allow: [192.0.2.0/24], backends: [10.1.0.1, 10.1.0.2] }
  - { name: multi, vip: 10.0.0.3, ports: [80, 443], mode: random, backends: [10.1.0.1, 10.1.0.2] }
`,
      'nftables',
    )['nftables.nft'];
    expect(t).toContain('10.0.0.1 . tcp . 80 . 0 : 10.1.0.1 . 80');
    expect(t).not.toContain('chain svc_plain {');
    expect(t).toMatch(/chain svc_guarded \{\n\t\tip saddr != @allow_guarded drop\n\t\tnumgen random mod 2 0 dnat ip to 10\.1\.0\.1\n/);
    expect(t).toContain('10.0.0.3 . tcp . 80 : goto svc_multi,\n\t\t\t10.0.0.3 . tcp . 443 : goto svc_multi,');
  });

  it('a backend naming the service\'s first port still names it when the service has several', () => {
    const t = out('  - { name: m, vip: 10.0.0.3, ports: [5683, 5684], protocol: udp, backends: [{ address: 10.1.0.1, port: 5683 }, 10.1.0.2] }\n', 'nftables')['nftables.nft'];
    expect(t).toContain('meta l4proto udp dnat ip to 10.1.0.1:5683');
    expect(t).toMatch(/\n\t\tdnat ip to 10\.1\.0\.2\n/);
  });

  it('port ranges go to interval maps after the plain ones, IPv6 allow sets are ipv6_addr', () => {
    const t = out(
      `  - { name: r, vip: 10.0.0.4, ports: ["4000-4010"], backends: [10.1.0.1] }
  - { name: n, ports: ["5000-5001", 5003], backends: [10.1.0.1] }
  - { name: six, vip: "2001:db8::1", port: 80, allow: ["2001:db8:1::/48"], backends: ["[2001:db8::2]:80"] }
`,
      'nftables',
    )['nftables.nft'];
    expect(t).toMatch(/map pre4_hostr \{\n\t\ttype ipv4_addr \. inet_proto \. inet_service : verdict\n\t\tflags interval\n\t\telements = \{\n\t\t\t10\.0\.0\.4 \. tcp \. 4000-4010 : goto svc_r,/);
    expect(t).toMatch(/map pre4_anyr \{\n\t\ttype inet_proto \. inet_service : verdict\n\t\tflags interval\n\t\telements = \{\n\t\t\ttcp \. 5000-5001 : goto svc_n,\n\t\t\ttcp \. 5003 : goto svc_n,/);
    expect(t).toMatch(/set allow_six \{\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\telements = \{\n\t\t\t2001:db8:1::\/48,/);
    expect(t.indexOf('vmap @pre4_hostr')).toBeGreaterThan(t.indexOf('vmap @pre4_host\n'));
    expect(t.indexOf('vmap @pre4_anyr')).toBeGreaterThan(t.indexOf('vmap @pre4_hostr'));
    expect(t).toContain('ip6 saddr != @allow_six drop');
  });
});

describe('iptables', () => {
  it('multiport takes at most 15 ports a rule, a range counting two, each rule jumping to the one chain', () => {
    const ports = Array.from({ length: 14 }, (_, i) => 6000 + 2 * i).join(', ');
    const t = out(`  - { name: many, vip: 10.0.0.5, ports: [${ports}, "7000-7005"], backends: [10.1.0.1] }\n`, 'iptables')['iptables.rules'];
    const jumps = t.split('\n').filter((l) => l.startsWith('-A LBC-PREROUTING') && l.includes('-j LBC-S-many'));
    expect(jumps).toEqual([
      `-A LBC-PREROUTING -d 10.0.0.5/32 -p tcp -m multiport --dports ${Array.from({ length: 14 }, (_, i) => 6000 + 2 * i).join(',')} -j LBC-S-many`,
      '-A LBC-PREROUTING -d 10.0.0.5/32 -p tcp -m multiport --dports 7000:7005 -j LBC-S-many',
    ]);
    expect(t).toContain('-A LBC-S-many -p tcp -j DNAT --to-destination 10.1.0.1\n');
  });

  it('keeps host vips with several ports ahead of CIDR and vip-less services in the dispatch', () => {
    const t = out(
      `  - { name: wide, vip: 10.0.0.0/24, port: 80, backends: [10.1.0.9] }
  - { name: multi, vip: 10.0.0.7, ports: [80, 81], backends: [10.1.0.1] }
`,
      'iptables',
    )['iptables.rules'];
    expect(t.indexOf('-j LBC-S-multi')).toBeLessThan(t.indexOf('-j LBC-S-wide'));
  });

  it('an allow list is a guard chain in mangle over an ipset swapped in whole', () => {
    const f = out('  - { name: web, vip: 10.0.0.1, port: 80, local: true, allow: [192.0.2.0/24, 198.51.100.7], backends: [10.1.0.1] }\n', 'iptables');
    expect(f['iptables.rules']).toContain('*mangle\n:LBC-PREROUTING - [0:0]\n:LBC-OUTPUT - [0:0]\n:LBC-A-web - [0:0]\n:LBC-A-O-web - [0:0]\n');
    expect(f['iptables.rules']).toContain('-A LBC-PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j LBC-A-web\n');
    expect(f['iptables.rules']).toContain('-A LBC-OUTPUT -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j LBC-A-O-web\n');
    expect(f['iptables.rules']).toContain('-A LBC-A-web -m set --match-set LBC4-A-web src -j RETURN\n-A LBC-A-web -j DROP\n');
    expect(f['ipset.rules'].split('\n').filter((l) => !l.startsWith('#'))).toEqual([
      'create LBC4-A-web hash:net family inet maxelem 65536',
      'create LBC4-N-web hash:net family inet maxelem 65536',
      'flush LBC4-N-web',
      'add LBC4-N-web 192.0.2.0/24',
      'add LBC4-N-web 198.51.100.7/32',
      'swap LBC4-N-web LBC4-A-web',
      'destroy LBC4-N-web',
      '',
    ]);
  });

  it('a CIDR or vip-less guard first returns for the services that win the dispatch over it', () => {
    const ir = spec(`  - { name: host, vip: 10.0.0.9, ports: [80, 8080], backends: [10.1.0.1] }
  - { name: other, vip: 10.0.1.9, port: 80, backends: [10.1.0.1] }
  - { name: udp, vip: 10.0.0.8, port: 80, protocol: udp, backends: [10.1.0.1] }
  - { name: away, vip: 10.0.0.7, port: 443, backends: [10.1.0.1] }
  - { name: blk, vip: 10.0.0.0/24, port: 80, allow: [192.0.2.0/24], backends: [10.1.0.2] }
  - { name: any, port: 80, allow: [192.0.2.0/24], backends: [10.1.0.3] }
`);
    const [host, other, , , blk, any] = ir.services;
    expect(shadowing(blk, ir.services).map((s) => s.name)).toEqual(['host']);
    expect(shadowing(any, ir.services).map((s) => s.name)).toEqual(['host', 'other', 'blk']);
    expect(shadowing(host, ir.services)).toEqual([]);
    void other;
    const t = compile(ir, 'iptables').files[0].content;
    expect(t).toContain('-A LBC-A-blk -d 10.0.0.9/32 -p tcp -m multiport --dports 80,8080 -j RETURN\n-A LBC-A-blk -m set --match-set LBC4-A-blk src -j RETURN\n-A LBC-A-blk -j DROP\n');
  });
});
