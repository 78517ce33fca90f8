// Smoke test of the harness itself: plain routing through the balancer, no NAT rules.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDR, createTopology, kernelSuite, tally, type Topology } from './index.js';

kernelSuite('kernel harness', [], () => {
  let topo: Topology | undefined;
  beforeAll(async () => {
    topo = await createTopology({ clientSources: 3, backendAddresses: 2 });
    await topo.startServers('be', [
      { protocol: 'tcp', address: ADDR.v4.backends[0], port: 7000, id: 'v4tcp' },
      { protocol: 'udp', address: ADDR.v4.backends[1], port: 7000, id: 'v4udp' },
      { protocol: 'tcp', address: ADDR.v6.backends[0], port: 7000, id: 'v6tcp' },
      { protocol: 'udp', address: ADDR.v6.backends[1], port: 7000, id: 'v6udp' },
    ]);
    await topo.startServers('lb', [{ protocol: 'tcp', address: '0.0.0.0', port: 7001, id: 'local' }]);
  }, 60_000);
  afterAll(async () => {
    await topo?.destroy();
  });

  it('reaches backends over TCP and UDP, IPv4 and IPv6, from several sources', async () => {
    const t = topo!;
    const sources = [ADDR.v4.client, ADDR.v4.extraClient(0), ADDR.v4.extraClient(2)];
    const a = await t.connect({ host: ADDR.v4.backends[0], port: 7000, protocol: 'tcp', count: 6, sources });
    expect(tally(a)).toEqual({ v4tcp: 6 });
    expect(a.map((r) => r.source)).toEqual([...sources, ...sources]);
    expect(new Set(a.map((r) => r.sport)).size).toBe(6);
    expect(tally(await t.connect({ host: ADDR.v4.backends[1], port: 7000, protocol: 'udp', count: 4 }))).toEqual({ v4udp: 4 });
    const s6 = [ADDR.v6.client, ADDR.v6.extraClient(1)];
    expect(tally(await t.connect({ host: ADDR.v6.backends[0], port: 7000, protocol: 'tcp', count: 4, sources: s6 }))).toEqual({ v6tcp: 4 });
    expect(tally(await t.connect({ host: ADDR.v6.backends[1], port: 7000, protocol: 'udp', count: 4, sources: s6 }))).toEqual({ v6udp: 4 });
    expect(tally(await t.connect({ host: ADDR.v4.balancerClientSide, port: 7001, protocol: 'tcp', count: 2 }))).toEqual({ local: 2 });
  }, 60_000);

  it('reports a failed connection as null instead of hanging', async () => {
    const r = await topo!.connect({ host: ADDR.v4.backends[0], port: 7999, protocol: 'udp', count: 1, timeoutMs: 300 });
    expect(r[0].backend).toBeNull();
  }, 30_000);
});
