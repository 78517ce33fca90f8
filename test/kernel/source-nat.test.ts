// One-arm balancing in the kernel: backends whose default route does not point at the balancer still
// answer when the service has source-nat, for nftables, iptables and ip6tables, TCP and UDP, masquerade
// and an explicit address; a service without source-nat, as a control, gets no answer at all. And with
// only the clients' prefix routed via the balancer (still not the default route), backend-initiated
// associations leave from the vip.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/index.js';
import type { Family } from '../../src/ir/types.js';
import { compileForTarget, type TargetDefinition } from '../../src/targets/target.js';
import { nftablesTarget } from '../../src/targets/nftables/index.js';
import { ip6tablesTarget, iptablesTarget } from '../../src/targets/iptables/index.js';
import { ADDR, createTopology, kernelSuite, type Topology } from './harness/index.js';
import type { UdpPeer } from './harness/udp-peer.js';

/** An address of the balancer on the backends' network, beside the one the harness gives it. */
const NAT_ADDR = { ipv4: '10.201.2.250', ipv6: 'fd00:201:2::fa' } as const;
/** A router that does not exist: the backends' default route leads nowhere the clients are. */
const ELSEWHERE = { ipv4: '10.201.2.254', ipv6: 'fd00:201:2::fe' } as const;

function spec(family: Family): string {
  const a = family === 'ipv4' ? ADDR.v4 : ADDR.v6;
  const be = (i: number, port: number) => (family === 'ipv4' ? `${a.backends[i]}:${port}` : `[${a.backends[i]}]:${port}`);
  return [
    'version: 1',
    'services:',
    `  - { name: web, vip: "${a.vip(1)}", port: 80, source-nat: masquerade, backends: ["${be(0, 8080)}", "${be(1, 8080)}"] }`,
    `  - { name: dns, vip: "${a.vip(2)}", port: 53, protocol: udp, source-nat: "${NAT_ADDR[family]}", backends: ["${be(0, 5300)}", "${be(1, 5300)}"] }`,
    `  - { name: plain, vip: "${a.vip(3)}", port: 80, backends: ["${be(2, 8080)}"] }`,
    `  - { name: coap, vip: "${a.vip(4)}", port: 5683, protocol: udp, associations: { backend-initiated: true }, backends: ["${a.backends[0]}", "${a.backends[1]}"] }`,
    '',
  ].join('\n');
}

function cases(target: TargetDefinition, family: Family): void {
  const a = family === 'ipv4' ? ADDR.v4 : ADDR.v6;
  let topo: Topology;
  let cl: UdpPeer;
  let be: UdpPeer;
  beforeAll(async () => {
    topo = await createTopology({ clientSources: 2, backendAddresses: 3 });
    const ip = family === 'ipv4' ? ['ip'] : ['ip', '-6'];
    await topo.exec('be', [...ip, 'route', 'replace', 'default', 'via', ELSEWHERE[family]]);
    // The clients with extra addresses (the associations' clients) are routed via the balancer; the client's
    // own address, which the source-nat cases use, is not.
    await topo.exec('be', [...ip, 'route', 'add', family === 'ipv4' ? '10.201.128.0/17' : 'fd00:201:80::/64', 'via', family === 'ipv4' ? ADDR.v4.balancerBackendSide : ADDR.v6.balancerBackendSide]);
    await topo.exec('lb', ['ip', 'addr', 'add', `${NAT_ADDR[family]}/${family === 'ipv4' ? 24 : 64}`, 'dev', 'be0', ...(family === 'ipv6' ? ['nodad'] : [])]);
    const servers = [0, 1, 2].map((i) => ({ protocol: 'tcp' as const, address: a.backends[i], port: 8080, id: `b${i}` }));
    await topo.startServers('be', servers);
    be = await topo.startUdpPeer('be', [
      ...[0, 1].map((i) => ({ id: `u${i}`, address: a.backends[i], port: 5300, echo: `u${i}` })),
      ...[0, 1].map((i) => ({ id: `rs${i}`, address: a.backends[i], port: 5683, echo: `rs${i}` })),
    ]);
    cl = await topo.startUdpPeer('cl', [
      { id: 'c', address: a.client, port: 41000 },
      { id: 'd', address: a.extraClient(0), port: 41001 },
    ]);
    const r = compileForTarget(target, parseSpec(spec(family), 'one-arm.yaml'));
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    await target.apply!(r.files, topo.applyContext('lb'));
  }, 120_000);
  afterAll(async () => {
    await topo?.destroy();
  });

  it('TCP with masquerade: the backends answer through the balancer, in turn', async () => {
    // From the client's own address, which the backends have no route for (IPv6 might pick another source).
    const r = await topo.connect({ host: a.vip(1), port: 80, protocol: 'tcp', count: 6, sources: [a.client] });
    expect(r.map((x) => x.backend)).toEqual(['b0', 'b1', 'b0', 'b1', 'b0', 'b1']);
  });

  it('UDP with an explicit address: the backend sees that address, answers it, and a later datagram of its own reaches the client from the vip', async () => {
    cl.send('c', a.vip(2), 53, 'who');
    const d = await cl.next('c');
    const [id, saw] = d.data.split(' ');
    expect([d.from, d.port]).toEqual([a.vip(2), 53]);
    expect(saw).toBe(NAT_ADDR[family]);
    // The backend writes to the peer it knows (the balancer's address and the port it saw) from its port.
    const sawPort = Number(d.data.split(' ')[2]);
    be.send(id, NAT_ADDR[family], sawPort, 'push later');
    const p = await cl.next('c', (x) => x.data === 'push later');
    expect([p.from, p.port]).toEqual([a.vip(2), 53]);
  });

  it('a backend-initiated association leaves from the vip (the clients routed via the balancer, the default route elsewhere)', async () => {
    be.send('rs1', a.extraClient(0), 41001, 'push first');
    const d = await cl.next('d', (x) => x.data === 'push first');
    expect([d.from, d.port]).toEqual([a.vip(4), 5683]);
    cl.send('d', a.vip(4), 5683, 'who');
    expect((await cl.next('d', (x) => x.data.endsWith(' who'))).data.split(' ')[0]).toBe('rs1');
  });

  it('without source-nat (the control) the same backends cannot answer: their replies go to the default route', async () => {
    const r = await topo.connect({ host: a.vip(3), port: 80, protocol: 'tcp', count: 2, timeoutMs: 1500, sources: [a.client] });
    expect(r.map((x) => x.backend)).toEqual([null, null]);
  });
}

kernelSuite('source NAT (one-arm) in the kernel', ['nft', 'iptables', 'ip6tables', 'conntrack'], () => {
  describe('nftables, IPv4', () => cases(nftablesTarget, 'ipv4'));
  describe('nftables, IPv6', () => cases(nftablesTarget, 'ipv6'));
  describe('iptables', () => cases(iptablesTarget, 'ipv4'));
  describe('ip6tables', () => cases(ip6tablesTarget, 'ipv6'));
});
