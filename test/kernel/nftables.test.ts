// The nftables target against the real kernel: rules loaded with nft in a private namespace,
// real TCP/UDP connections from a client namespace through the balancer to identity servers.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Backend, HashField, IR, Mode, Service } from '../../src/ir/types.js';
import { compileForTarget, type OutputFile } from '../../src/targets/target.js';
import { nftablesTarget } from '../../src/targets/nftables/index.js';
import { ADDR, createTopology, kernelSuite, tally, type ConnResult, type Topology } from './harness/index.js';

const loc = { file: 'kernel.yaml', line: 1, column: 1 };

interface SvcInput {
  name: string;
  vip: string | null;
  port: number;
  protocol?: 'tcp' | 'udp';
  mode?: Mode;
  hash?: HashField[];
  sticky?: number;
  backends: Array<{ address: string | null; port: number; weight?: number; backup?: boolean }>;
}

function svc(s: SvcInput): Service {
  const family = s.vip?.includes(':') || s.backends.some((b) => b.address?.includes(':')) ? 'ipv6' : 'ipv4';
  const full = family === 'ipv4' ? 32 : 128;
  const [address, len] = (s.vip ?? '').split('/');
  const prefixLength = len ? Number(len) : full;
  const backends: Backend[] = s.backends.map((b, index) => ({
    index, address: b.address, port: b.port, keepsPort: false, weight: b.weight ?? 1, backup: b.backup ?? false, health: null, loc,
  }));
  const mode = s.mode ?? 'nth';
  return {
    name: s.name, family, vip: s.vip ? { address, prefixLength, isHost: prefixLength === full } : null, port: s.port, ports: [{ from: s.port, to: s.port }], allow: null,
    protocol: s.protocol ?? 'tcp', interface: null, mode, hashFields: mode === 'hash' ? (s.hash ?? ['saddr']) : [],
    sticky: s.sticky ? { timeoutSeconds: s.sticky } : null, local: false, backends, health: null,
    loc: { service: loc, name: loc, backends: loc },
  };
}

const be4 = (i: number, port = 8080, weight = 1) => ({ address: ADDR.v4.backends[i], port, weight });
const CIDR_ADDR = '10.201.100.200';

const SPEC: IR = {
  file: 'kernel.yaml',
  services: [
    svc({ name: 'nthw', vip: ADDR.v4.vip(1), port: 80, backends: [be4(0, 8080, 1), be4(1, 8080, 2), be4(2, 8080, 3), { ...be4(3), backup: true }] }),
    svc({ name: 'nthudp', vip: ADDR.v4.vip(2), port: 53, protocol: 'udp', backends: [be4(0, 5300), be4(1, 5300)] }),
    svc({ name: 'rnd', vip: ADDR.v4.vip(3), port: 80, mode: 'random', backends: [be4(0), be4(1), be4(2), be4(3)] }),
    svc({ name: 'hsh', vip: ADDR.v4.vip(4), port: 80, mode: 'hash', backends: [be4(0), be4(1), be4(2), be4(3)] }),
    svc({ name: 'stk', vip: ADDR.v4.vip(5), port: 80, mode: 'random', sticky: 600, backends: [be4(0), be4(1), be4(2), be4(3)] }),
    svc({ name: 'mixed', vip: ADDR.v4.vip(6), port: 80, backends: [{ address: null, port: 9001 }, be4(0), { address: null, port: 9002 }] }),
    svc({ name: 'alllocal', vip: ADDR.v4.vip(7), port: 80, backends: [{ address: null, port: 9001 }, { address: null, port: 9002, weight: 3 }] }),
    svc({ name: 'same-port', vip: ADDR.v4.vip(8), port: 8080, backends: [be4(2), be4(3)] }),
    // A CIDR vip that contains nthw's host vip: the host vip must win for its own address.
    svc({ name: 'block', vip: '10.201.100.0/24', port: 80, backends: [be4(3)] }),
    // rnd, hsh and sixudp are eligible for the shared selection maps; odd (weight sum 17, over the
    // slot cap) keeps its chain and must still be reached past those maps.
    svc({ name: 'odd', vip: ADDR.v4.vip(9), port: 80, mode: 'random', backends: [be4(0, 8080, 1), be4(1, 8080, 16)] }),
    // No vip: any local address of the balancer, looked up after every host and CIDR vip.
    svc({ name: 'anyvip', vip: null, port: 80, backends: [be4(2)] }),
    svc({ name: 'six', vip: ADDR.v6.vip(1), port: 80, backends: [{ address: ADDR.v6.backends[0], port: 8080 }, { address: ADDR.v6.backends[1], port: 8080 }] }),
    svc({ name: 'sixudp', vip: ADDR.v6.vip(2), port: 53, protocol: 'udp', mode: 'hash', hash: ['saddr', 'sport'], backends: [{ address: ADDR.v6.backends[0], port: 5300 }, { address: ADDR.v6.backends[1], port: 5300 }] }),
  ],
};

/** Connections answered by nobody make every later assertion meaningless: fail on them first. */
function answered(rs: ConnResult[]): ConnResult[] {
  expect(rs.filter((r) => r.backend === null)).toEqual([]);
  return rs;
}

kernelSuite('nftables target in the kernel', ['nft'], () => {
  let topo: Topology | undefined;
  let files: OutputFile[] = [];
  let firstListing = '';
  const clients = Array.from({ length: 120 }, (_, i) => ADDR.v4.extraClient(i));

  beforeAll(async () => {
    const result = compileForTarget(nftablesTarget, SPEC);
    expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    files = result.files;
    topo = await createTopology({ clientSources: 120, backendAddresses: 4 });
    const servers = [];
    for (let i = 0; i < 4; i++) {
      servers.push({ protocol: 'tcp' as const, address: ADDR.v4.backends[i], port: 8080, id: `b${i}` });
      servers.push({ protocol: 'udp' as const, address: ADDR.v4.backends[i], port: 5300, id: `u${i}` });
    }
    for (let i = 0; i < 2; i++) {
      servers.push({ protocol: 'tcp' as const, address: ADDR.v6.backends[i], port: 8080, id: `v6b${i}` });
      servers.push({ protocol: 'udp' as const, address: ADDR.v6.backends[i], port: 5300, id: `v6u${i}` });
    }
    await topo.startServers('be', servers);
    await topo.startServers('lb', [
      { protocol: 'tcp', address: '0.0.0.0', port: 9001, id: 'l1' },
      { protocol: 'tcp', address: '0.0.0.0', port: 9002, id: 'l2' },
    ]);
    // Someone else's table, present before lbc arrives; lbc must never touch it.
    await topo.exec('lb', ['nft', '-f', '-'], 'table ip keepme {\n\tchain c {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 counter accept\n\t}\n}\n');
    await nftablesTarget.apply!(files, topo.applyContext('lb'));
    firstListing = (await topo.exec('lb', ['nft', 'list', 'ruleset'])).stdout;
  }, 120_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  it('applying twice leaves the same ruleset and keeps the unrelated table', async () => {
    const t = topo!;
    expect(firstListing).toContain('table inet lbc');
    expect(firstListing).toContain('table ip keepme');
    await nftablesTarget.apply!(files, t.applyContext('lb'));
    const second = (await t.exec('lb', ['nft', 'list', 'ruleset'])).stdout;
    expect(second).toBe(firstListing);
    expect((await t.exec('lb', ['nft', 'list', 'table', 'ip', 'keepme'])).stdout).toContain('tcp dport 22 counter');
  }, 60_000);

  it('random and hash host-vip services live in shared maps, the others in chains', async () => {
    const t = topo!;
    const listing = (await t.exec('lb', ['nft', 'list', 'table', 'inet', 'lbc'])).stdout;
    for (const m of ['pre4_rnd_4', 'pre4_hash_saddr_4', 'pre6_hash_saddr_sport_2']) expect(listing).toContain(`map ${m} {`);
    for (const c of ['svc_rnd', 'svc_hsh', 'svc_sixudp']) expect(listing).not.toContain(`chain ${c} {`);
    for (const c of ['svc_odd', 'svc_stk', 'svc_nthw', 'svc_block']) expect(listing).toContain(`chain ${c} {`);
  }, 60_000);

  it('a random service outside the shared maps is reached past them (a lookup miss falls through)', async () => {
    const r = answered(await topo!.connect({ host: ADDR.v4.vip(9), port: 80, protocol: 'tcp', count: 40 }));
    const got = tally(r);
    expect(Object.keys(got).every((k) => k === 'b0' || k === 'b1')).toBe(true);
    expect(got.b1 ?? 0).toBeGreaterThan(0);
  }, 60_000);

  it('nth with weights 1:2:3 gives exact counts over TCP; the backup gets nothing', async () => {
    const r = answered(await topo!.connect({ host: ADDR.v4.vip(1), port: 80, protocol: 'tcp', count: 60 }));
    expect(tally(r)).toEqual({ b0: 10, b1: 20, b2: 30 });
  }, 60_000);

  it('nth gives exact counts over UDP', async () => {
    const r = answered(await topo!.connect({ host: ADDR.v4.vip(2), port: 53, protocol: 'udp', count: 40 }));
    expect(tally(r)).toEqual({ u0: 20, u1: 20 });
  }, 60_000);

  it('random spreads evenly (chi-square, 3 degrees of freedom, p = 0.001)', async () => {
    const n = 400;
    const r = answered(await topo!.connect({ host: ADDR.v4.vip(3), port: 80, protocol: 'tcp', count: n }));
    const counts = ['b0', 'b1', 'b2', 'b3'].map((k) => tally(r)[k] ?? 0);
    const expected = n / 4;
    const chi2 = counts.reduce((s, o) => s + ((o - expected) ** 2) / expected, 0);
    // 16.27 is the 0.999 quantile of chi-square with 3 degrees of freedom: a correct uniform
    // choice fails this test once in a thousand runs, while a selection that never reaches a
    // backend (chi2 >= 133) or the FireHOL-style skew 1/4, 3/16, 9/64, ... (chi2 ≈ 40 at n = 400) fails
    // essentially always.
    expect(chi2, `counts ${counts.join(', ')}`).toBeLessThan(16.27);
    expect(counts.every((c) => c > 0)).toBe(true);
  }, 90_000);

  it('hash keeps each client on one backend and uses several', async () => {
    const t = topo!;
    const first = answered(await t.connect({ host: ADDR.v4.vip(4), port: 80, protocol: 'tcp', count: clients.length, sources: clients }));
    const second = answered(await t.connect({ host: ADDR.v4.vip(4), port: 80, protocol: 'tcp', count: clients.length, sources: clients }));
    expect(second.map((r) => [r.source, r.backend])).toEqual(first.map((r) => [r.source, r.backend]));
    expect(Object.keys(tally(first)).length).toBeGreaterThanOrEqual(3);
  }, 90_000);

  it('sticky keeps each of 120 clients on its backend, remembered in the per-backend sets', async () => {
    const t = topo!;
    const first = answered(await t.connect({ host: ADDR.v4.vip(5), port: 80, protocol: 'tcp', count: clients.length, sources: clients }));
    for (let round = 0; round < 2; round++) {
      const again = answered(await t.connect({ host: ADDR.v4.vip(5), port: 80, protocol: 'tcp', count: clients.length, sources: clients }));
      expect(again.map((r) => [r.source, r.backend])).toEqual(first.map((r) => [r.source, r.backend]));
    }
    // Random selection without affinity would spread a client's three connections over backends;
    // with affinity every backend still has clients, and the sets hold each client exactly once.
    expect(Object.keys(tally(first)).length).toBeGreaterThanOrEqual(3);
    let remembered = 0;
    for (let i = 0; i < 4; i++) {
      const listing = (await t.exec('lb', ['nft', 'list', 'set', 'inet', 'lbc', `aff_stk_${i}`])).stdout;
      remembered += (listing.match(/10\.201\.1[2-9]\d\.\d+/g) ?? []).length;
    }
    expect(remembered).toBe(clients.length);
  }, 120_000);

  it('sends mixed local and remote backends to redirect and dnat in exact rotation', async () => {
    const r = answered(await topo!.connect({ host: ADDR.v4.vip(6), port: 80, protocol: 'tcp', count: 30 }));
    expect(tally(r)).toEqual({ l1: 10, b0: 10, l2: 10 });
    const l = answered(await topo!.connect({ host: ADDR.v4.vip(7), port: 80, protocol: 'tcp', count: 40 }));
    expect(tally(l)).toEqual({ l1: 10, l2: 30 });
  }, 60_000);

  it('keeps the port when the backend port is the service port', async () => {
    const r = answered(await topo!.connect({ host: ADDR.v4.vip(8), port: 8080, protocol: 'tcp', count: 10 }));
    expect(tally(r)).toEqual({ b2: 5, b3: 5 });
  }, 60_000);

  it('a host vip wins over a CIDR vip containing it', async () => {
    const t = topo!;
    expect(tally(answered(await t.connect({ host: CIDR_ADDR, port: 80, protocol: 'tcp', count: 4 })))).toEqual({ b3: 4 });
    // A service without vip still answers on the balancer's own address.
    expect(tally(answered(await t.connect({ host: ADDR.v4.balancerClientSide, port: 80, protocol: 'tcp', count: 3 })))).toEqual({ b2: 3 });
    // A host vip in a shared map wins too: the CIDR block would send everything to b3, the hash
    // service spreads 120 clients over its four backends.
    const h = answered(await t.connect({ host: ADDR.v4.vip(4), port: 80, protocol: 'tcp', count: clients.length, sources: clients }));
    expect(Object.keys(tally(h)).length).toBeGreaterThanOrEqual(3);
    // nthw: one full cycle of 6 from wherever its counter stands.
    expect(tally(answered(await t.connect({ host: ADDR.v4.vip(1), port: 80, protocol: 'tcp', count: 6 })))).toEqual({ b0: 1, b1: 2, b2: 3 });
  }, 60_000);

  it('balances IPv6 over TCP (nth) and UDP (hash on address and port)', async () => {
    const t = topo!;
    const r = answered(await t.connect({ host: ADDR.v6.vip(1), port: 80, protocol: 'tcp', count: 20 }));
    expect(tally(r)).toEqual({ v6b0: 10, v6b1: 10 });
    const sources = Array.from({ length: 40 }, (_, i) => ADDR.v6.extraClient(i));
    const u = answered(await t.connect({ host: ADDR.v6.vip(2), port: 53, protocol: 'udp', count: sources.length, sources }));
    expect(Object.keys(tally(u)).sort()).toEqual(['v6u0', 'v6u1']);
  }, 60_000);

  // Last, since it changes the loaded ruleset: shared map elements are diffed like dispatch elements.
  it('incremental apply adds and deletes shared map elements per service, equal to a full load', async () => {
    const t = topo!;
    const stateDir = await mkdtemp(join(tmpdir(), `${t.ns.lb}-state-`));
    try {
      const log: string[] = [];
      const ctx = { ...t.applyContext('lb', (l: string) => log.push(l)), stateDir };
      const sets = (ir: IR) => compileForTarget(nftablesTarget, ir).files;
      await nftablesTarget.apply!(files, ctx);
      const by = new Map(SPEC.services.map((s) => [s.name, s]));
      const reweighted = (name: string, ws: number[]): Service => {
        const s = by.get(name)!;
        let k = 0;
        return { ...s, backends: s.backends.map((b) => (b.backup ? b : { ...b, weight: ws[k++] })) };
      };
      // hsh: new weights, so it moves to the map of weight sum 6; odd: 1:15 (W = 16) is within the slot cap and
      // moves from its chain into a shared map; rnd: 1:1:1:14 (W = 17) is not and moves into a chain.
      const changed: IR = {
        ...SPEC,
        services: SPEC.services.map((s) =>
          s.name === 'hsh' ? reweighted('hsh', [1, 1, 1, 3]) : s.name === 'odd' ? reweighted('odd', [1, 15]) : s.name === 'rnd' ? reweighted('rnd', [1, 1, 1, 14]) : s,
        ),
      };
      log.length = 0;
      await nftablesTarget.apply!(sets(changed), ctx);
      expect(log.join('\n')).toMatch(/loading only what changed: \d+ chain\(s\), [1-9]\d* map element\(s\)/);
      const partial = (await t.exec('lb', ['nft', 'list', 'table', 'inet', 'lbc'])).stdout;
      expect(partial).toContain('chain svc_rnd {');
      expect(partial).not.toContain('chain svc_odd {');
      // odd now spreads 1:15 from the shared map; hsh keeps answering every client.
      const o = tally(answered(await t.connect({ host: ADDR.v4.vip(9), port: 80, protocol: 'tcp', count: 32 })));
      expect(Object.keys(o).every((k) => k === 'b0' || k === 'b1')).toBe(true);
      answered(await t.connect({ host: ADDR.v4.vip(4), port: 80, protocol: 'tcp', count: 20, sources: clients.slice(0, 20) }));
      await nftablesTarget.apply!(sets(changed), { ...ctx, fullApply: true });
      expect((await t.exec('lb', ['nft', 'list', 'table', 'inet', 'lbc'])).stdout).toBe(partial);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  }, 120_000);
});
