/**
 * The `balancers` block: what it normalizes to, and every way it can be wrong — each reported with
 * its position, all of them at once, and nothing that could reach a configuration file unchecked.
 */
import { describe, expect, it } from 'vitest';
import { checkSpec, compile, formatDiagnostic, LbcError, parseSpec } from '../../src/index.js';

const errors = (text: string) =>
  checkSpec(text, 's.yaml')
    .diagnostics.filter((d) => d.severity === 'error')
    .map(formatDiagnostic);

const SVC = `services:
  - name: web
    vip: 192.0.2.10
    port: 80
    backends: [10.0.0.1:8080, 10.0.0.2:8080]
`;

const FAILOVER = `version: 1
balancers:
  mode: failover
  id: 51
  advert: 100ms
  interface: eth0
  gateway: { interface: eth1, address: 10.0.0.254/24 }
  sync: { interface: eth2 }
  secret-file: /etc/lbc/carp.key
  nodes:
    - { name: lb1, address: 192.0.2.2, sync-address: 10.9.0.1 }
    - { name: lb2, address: 192.0.2.3, sync-address: 10.9.0.2 }
${SVC}`;

const block = (body: string, services = SVC) => `version: 1\nbalancers:\n${body}${services}`;

describe('balancers block', () => {
  it('normalizes a failover pair', () => {
    const ir = parseSpec(FAILOVER, 'f.yaml');
    expect(ir.balancers).toMatchObject({
      mode: 'failover',
      id: 51,
      advertMs: 100,
      interface: 'eth0',
      gateway: { interface: 'eth1', address: '10.0.0.254', prefixLength: 24, family: 'ipv4' },
      sync: { interface: 'eth2' },
      secretFile: '/etc/lbc/carp.key',
      mac: null,
    });
    expect(ir.balancers!.nodes.map((n) => [n.index, n.name, n.address, n.syncAddress])).toEqual([
      [0, 'lb1', '192.0.2.2', '10.9.0.1'],
      [1, 'lb2', '192.0.2.3', '10.9.0.2'],
    ]);
    expect(ir.balancers!.loc.mode).toEqual({ file: 'f.yaml', line: 3, column: 9 });
  });

  it('defaults advert to 1s and leaves a spec without the block as it was', () => {
    const ir = parseSpec(block('  mode: failover\n  id: 1\n  interface: em0\n  nodes: [{ name: a, address: 192.0.2.2 }, { name: b, address: 192.0.2.3 }]\n'));
    expect(ir.balancers!.advertMs).toBe(1000);
    expect('balancers' in parseSpec(`version: 1\n${SVC}`)).toBe(false);
  });

  it('reports every problem of the block at once, each where it is', () => {
    const out = errors(
      block(
        '  mode: hot-standby\n  id: 256\n  advert: 5ms\n  interface: "eth 0"\n  secret-file: "/etc/$(reboot)"\n  mac: 00:11:22:33:44:55\n  colour: blue\n  nodes:\n    - { name: Lb1, address: 192.0.2.002 }\n    - { name: lb2, address: 192.0.2.3, sync-address: 10.0.0.1 }\n',
      ),
    );
    expect(out).toEqual([
      expect.stringMatching(/^s\.yaml:3:9: error: "mode" in balancers must be one of failover, active-active, not "hot-standby"/),
      expect.stringMatching(/^s\.yaml:4:7: error: "id" in balancers must be between 1 and 255, not 256/),
      expect.stringMatching(/^s\.yaml:5:11: error: advert must be between 10ms and 40950ms \(VRRPv3 counts centiseconds\), not 5ms/),
      expect.stringMatching(/^s\.yaml:6:14: error: interface "eth 0" is not a valid interface name/),
      expect.stringMatching(/^s\.yaml:7:16: error: secret-file must be an absolute path/),
      expect.stringMatching(/^s\.yaml:8:8: error: mac must be a multicast Ethernet address/),
      expect.stringMatching(/^s\.yaml:9:3: error: unknown field "colour" in balancers/),
      expect.stringMatching(/^s\.yaml:11:15: error: node name "Lb1" must be/),
      expect.stringMatching(/^s\.yaml:11:29: error: address: /),
      expect.stringMatching(/^s\.yaml:12:40: error: "sync-address" needs a "sync" block/),
    ]);
  });

  it('needs mode, id, interface and two nodes with unique names and addresses', () => {
    expect(errors(block('  nodes: []\n'))).toEqual([
      expect.stringContaining('balancers needs a "mode"'),
      expect.stringContaining('balancers needs an "id"'),
      expect.stringContaining('balancers needs an "interface"'),
      expect.stringContaining('"nodes" must be a list of 2 to 16 nodes'),
    ]);
    const dup = errors(block('  mode: failover\n  id: 1\n  interface: em0\n  nodes: [{ name: a, address: 192.0.2.2 }, { name: a, address: 192.0.2.2 }]\n'));
    expect(dup).toEqual([expect.stringContaining('node name "a" is used twice (first at line 6)'), expect.stringContaining('address 192.0.2.2 is given twice')]);
  });

  it('wants sync-address on every node exactly when sync is given, and a gateway with its prefix', () => {
    const out = errors(
      block('  mode: failover\n  id: 1\n  interface: em0\n  sync: { interface: em2 }\n  gateway: { interface: em1, address: 10.0.0.254 }\n  nodes: [{ name: a, address: 192.0.2.2 }, { name: b, address: 192.0.2.3, sync-address: 10.9.0.2 }]\n'),
    );
    expect(out).toEqual([expect.stringContaining('gateway address must be an address with its prefix length'), expect.stringContaining('with "sync", every node needs a "sync-address"')]);
  });

  it('wants single-address vips that are nobody\'s own address', () => {
    const out = errors(
      block(
        '  mode: failover\n  id: 1\n  interface: em0\n  nodes: [{ name: a, address: 192.0.2.2 }, { name: b, address: 192.0.2.3 }]\n',
        'services:\n  - { name: web, vip: 192.0.2.0/28, port: 80, backends: ["10.0.0.1"] }\n  - { name: own, vip: 192.0.2.3, port: 80, backends: ["10.0.0.1"] }\n  - { name: any, port: 81, backends: ["10.0.0.1"] }\n',
      ),
    );
    expect(out).toEqual([
      expect.stringMatching(/^s\.yaml:8:23: error: service "web" needs a single-address vip/),
      expect.stringMatching(/^s\.yaml:9:23: error: vip 192\.0\.2\.3 of service "own" is node b's own address/),
      expect.stringMatching(/^s\.yaml:10:5: error: service "any" needs a single-address vip/),
    ]);
  });

  it('keeps an active-active cluster to what every node can serve itself', () => {
    const out = errors(
      block(
        '  mode: active-active\n  id: 251\n  interface: eth0\n  gateway: { interface: eth1, address: 10.0.0.1/24 }\n  sync: { interface: eth2 }\n  nodes: [{ name: a, address: 192.0.2.2, sync-address: 10.9.0.1 }, { name: b, address: 192.0.2.3, sync-address: 10.9.0.2 }, { name: c, address: 192.0.2.4, sync-address: 10.9.0.3 }]\n',
        'services:\n  - { name: web, vip: 192.0.2.10, port: 80, backends: ["10.0.0.1"] }\n  - { name: six, vip: "2001:db8::10", port: 80, backends: [":8080"] }\n  - { name: other, vip: 192.0.2.11, port: 80, interface: eth1, local: true, backends: [":8080"] }\n',
      ),
    );
    expect(out).toEqual([
      expect.stringMatching(/^s\.yaml:4:7: error: 3 nodes need 6 virtual router ids \(one per ordered pair of nodes\) from id 251, past 255/),
      expect.stringContaining('has no gateway to move'),
      expect.stringContaining('has no connection state to sync'),
      expect.stringMatching(/service "web" has a backend on another host \(10\.0\.0\.1\)/),
      expect.stringMatching(/service "six" is IPv6/),
      expect.stringMatching(/service "other" is restricted to interface eth1/),
      expect.stringMatching(/service "other" also balances connections made on the node itself/),
    ]);
  });

  it('rejects a mac in failover mode', () => {
    expect(errors(block('  mode: failover\n  id: 1\n  interface: em0\n  mac: 03:00:00:00:00:01\n  nodes: [{ name: a, address: 192.0.2.2 }, { name: b, address: 192.0.2.3 }]\n'))).toEqual([
      expect.stringContaining('"mac" only applies to mode: active-active'),
    ]);
  });
});

describe('--node', () => {
  const ir = parseSpec(FAILOVER, 'f.yaml');
  const codeOf = (fn: () => unknown) => {
    try {
      fn();
      return null;
    } catch (e) {
      return e instanceof LbcError ? e.diagnostics.map((d) => `${d.code} ${d.message} | ${(d.notes ?? []).join(' | ')}`) : String(e);
    }
  };

  it('is required for a spec with a tier, must name one of its nodes, and is refused without one', () => {
    expect(codeOf(() => compile(ir, 'nftables'))).toEqual([expect.stringMatching(/^LBC4010 this spec describes 2 balancer nodes \(failover\); name the one .* nodes: lb1, lb2$/)]);
    expect(codeOf(() => compile(ir, 'nftables', { emit: { node: 'lb3' } }))).toEqual([expect.stringMatching(/^LBC4010 the spec has no balancer node "lb3" \| did you mean "lb1"\?/)]);
    expect(codeOf(() => compile(parseSpec(`version: 1\n${SVC}`), 'nftables', { emit: { node: 'lb1' } }))).toEqual([expect.stringMatching(/^LBC4010 a node is named \(--node\), but the spec has no "balancers" block/)]);
    expect(codeOf(() => compile(ir, 'nftables', { emit: { node: 'lb1', runDir: '/run/lbc;rm -rf /' } }))).toEqual([expect.stringMatching(/^LBC4011 --run-dir must be an absolute path/)]);
    expect(codeOf(() => compile(ir, 'keepalived', { emit: { node: 'lb1', runDir: '/run/../etc' } }))).toEqual([expect.stringMatching(/^LBC4011/)]);
  });

  it('gives each node its own files from the same spec', () => {
    const a = compile(ir, 'keepalived', { emit: { node: 'lb1', runDir: '/run/lbc-a' } }).files;
    const b = compile(ir, 'keepalived', { emit: { node: 'lb2', runDir: '/run/lbc-b' } }).files;
    expect(a.map((f) => f.name)).toEqual(['keepalived.conf', 'lbc-vrrp-events', 'conntrackd.conf']);
    expect(a[0].content).toContain('priority 250');
    expect(b[0].content).toContain('priority 240');
    expect(a[0].content).not.toContain('/run/lbc-b');
    expect(b[2].content).toContain('IPv4_Destination_Address 10.9.0.1');
    // Deterministic: the same input gives the same bytes.
    expect(compile(ir, 'keepalived', { emit: { node: 'lb1', runDir: '/run/lbc-a' } }).files).toEqual(a);
  });

  it('never writes a secret: the spec names a file, every output names only that path', () => {
    for (const target of ['pf', 'pf-openbsd', 'relayd', 'keepalived', 'nftables', 'iptables']) {
      const spec = target === 'pf' || target === 'pf-openbsd' || target === 'relayd' ? FAILOVER.replace('advert: 100ms', 'advert: 1s') : FAILOVER;
      const text = compile(parseSpec(spec), target, { emit: { node: 'lb2' } })
        .files.map((f) => f.content)
        .join('\n');
      if (target === 'pf' || target === 'pf-openbsd' || target === 'relayd') expect(text, target).toContain('$(cat /etc/lbc/carp.key)');
      // A key would follow "pass" outside comments; pf's own pass rules are "pass in|out|quick".
      const lines = text.split('\n').filter((l) => !l.trimStart().startsWith('#'));
      expect(lines.filter((l) => /\bpass (?!in\b|out\b|quick\b|\$\(cat |"\$\(cat )/.test(l)), target).toEqual([]);
    }
  });
});
