// allow and ports in a real kernel, for nftables and iptables/ip6tables: allowed clients reach a
// backend, refused ones reach nothing (not a backend, not the balancer's own listener on the vip,
// and leave no conntrack entry), everything else on the balancer works as before; several ports
// share one rotation and one affinity table, and a backend without a port keeps the client's.
// Only inside the namespaces the harness creates; every wait is bounded.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseSpec } from '../../src/index.js';
import { iptablesTarget, ip6tablesTarget } from '../../src/targets/iptables/index.js';
import { nftablesTarget } from '../../src/targets/nftables/index.js';
import { compileForTarget, type TargetDefinition } from '../../src/targets/target.js';
import { ADDR, createTopology, kernelSuite, tally, type ConnResult, type Topology } from './harness/index.js';

const B = ADDR.v4.backends;
const B6 = ADDR.v6.backends;
const LB = ADDR.v4.balancerClientSide;
const allowed = [0, 1, 2, 7].map((i) => ADDR.v4.extraClient(i)); // 10.201.128.1-3 and .8
const refused = [3, 4, 5, 6].map((i) => ADDR.v4.extraClient(i)); // 10.201.128.4-7
const allowed6 = [0, 1, 2].map((i) => ADDR.v6.extraClient(i)); // fd00:201:80::1-3
const refused6 = [3, 4].map((i) => ADDR.v6.extraClient(i)); // fd00:201:80::4-5

const SPEC = `version: 1
services:
  # The vip is the balancer's own address, where it also runs a server on the same port:
  # a refused client that were merely not translated would reach that server.
  - name: web
    vip: ${LB}
    port: 80
    allow: [10.201.128.0/30, 10.201.128.8]
    backends: ["${B[0]}:8080", "${B[1]}:8080"]
  - name: other
    vip: ${ADDR.v4.vip(2)}
    port: 80
    backends: ["${B[2]}:8080"]
  - name: coap
    vip: ${ADDR.v4.vip(3)}
    ports: [5683, 5684]
    protocol: udp
    sticky: 1h
    backends: [${B[0]}, ${B[1]}]
  - name: range
    vip: ${ADDR.v4.vip(4)}
    ports: ["7000-7002"]
    backends: [${B[0]}, ${B[1]}]
  - name: fixed
    vip: ${ADDR.v4.vip(5)}
    ports: [81, 82]
    backends: ["${B[2]}:8080"]
  # A CIDR vip with an allow list around a host vip without one: the host vip's clients are its own.
  - name: block
    vip: 10.201.100.128/25
    port: 80
    allow: [10.201.128.0/30]
    backends: ["${B[3]}:8080"]
  - name: inner
    vip: 10.201.100.130
    port: 80
    backends: ["${B[2]}:8080"]
  # No vip (any local address) with an allow list.
  - name: nodeport
    port: 30080
    allow: [10.201.128.0/30]
    backends: ["${B[3]}:8080"]
  - name: six
    vip: ${ADDR.v6.vip(1)}
    ports: [80, 443]
    allow: ["fd00:201:80::/126"]
    backends: ["[${B6[0]}]:8080"]
`;

interface Case {
  name: string;
  tools: string[];
  targets: TargetDefinition[];
}

const CASES: Case[] = [
  { name: 'nftables', tools: ['nft', 'conntrack'], targets: [nftablesTarget] },
  { name: 'iptables and ip6tables', tools: ['iptables-restore', 'ip6tables-restore', 'iptables-save', 'ipset', 'conntrack'], targets: [iptablesTarget, ip6tablesTarget] },
];

const backendOf = (r: ConnResult[]) => r.map((x) => x.backend);

for (const c of CASES) {
  kernelSuite(`allow and ports with ${c.name}`, c.tools, () => {
    let topo: Topology | undefined;
    let othersBefore = '';
    // Applies record what they loaded here, so the next one may load only what changed.
    const stateDir = mkdtempSync(join(tmpdir(), 'lbc-access-state-'));
    const logs: string[] = [];
    const ctx = () => ({ ...topo!.applyContext('lb', (l) => logs.push(l)), stateDir });
    const others = async () => {
      const t = topo!;
      if (c.name === 'nftables') return (await t.exec('lb', ['nft', 'list', 'table', 'ip', 'keepme'])).stdout;
      return (await t.exec('lb', ['iptables-save', '-t', 'filter'])).stdout.split('\n').filter((l) => !l.startsWith('#') && !l.includes('LBC')).join('\n');
    };

    beforeAll(async () => {
      const ir = parseSpec(SPEC, 'access.yaml');
      topo = await createTopology({ clientSources: 8, backendAddresses: 4 });
      const servers = [];
      for (let i = 0; i < 4; i++) servers.push({ protocol: 'tcp' as const, address: B[i], port: 8080, id: `b${i}` });
      for (let i = 0; i < 2; i++) {
        for (const p of [5683, 5684]) servers.push({ protocol: 'udp' as const, address: B[i], port: p, id: `b${i}:${p}` });
        for (const p of [7000, 7001, 7002]) servers.push({ protocol: 'tcp' as const, address: B[i], port: p, id: `b${i}:${p}` });
      }
      servers.push({ protocol: 'tcp' as const, address: B6[0], port: 8080, id: 'v6b0' });
      await topo.startServers('be', servers);
      // The balancer's own servers: on the vip's port and on another one.
      await topo.startServers('lb', [
        { protocol: 'tcp', address: '0.0.0.0', port: 80, id: 'lb-self' },
        { protocol: 'tcp', address: '0.0.0.0', port: 81, id: 'lb-81' },
        { protocol: 'tcp', address: '0.0.0.0', port: 30080, id: 'lb-30080' },
      ]);
      // Someone else's rules, present before lbc arrives.
      if (c.name === 'nftables') {
        await topo.exec('lb', ['nft', '-f', '-'], 'table ip keepme {\n\tchain c {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 counter accept\n\t}\n}\n');
      } else {
        await topo.exec('lb', ['iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);
      }
      othersBefore = await others();
      for (const target of c.targets) {
        const r = compileForTarget(target, ir);
        expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
        await target.apply!(r.files, ctx());
      }
    }, 120_000);

    afterAll(async () => {
      await topo?.destroy();
      rmSync(stateDir, { recursive: true, force: true });
    });

    it('an allowed client reaches a backend; a refused one reaches nothing, not even the balancer\'s own server on the vip', async () => {
      const t = topo!;
      const ok = await t.connect({ host: LB, port: 80, protocol: 'tcp', count: 8, sources: allowed });
      expect(tally(ok)).toEqual({ b0: 4, b1: 4 });
      const no = await t.connect({ host: LB, port: 80, protocol: 'tcp', count: 4, sources: refused, timeoutMs: 700 });
      expect(backendOf(no)).toEqual([null, null, null, null]);
      // Dropped on the first packet: the kernel tracks no connection from them.
      for (const src of refused) {
        const listed = (await t.exec('lb', ['conntrack', '-L', '-s', src])).stdout.trim();
        expect(listed, `conntrack entries of ${src}`).toBe('');
      }
    }, 60_000);

    it('nothing else changes: refused clients reach other services and the balancer\'s other ports; other rules stay', async () => {
      const t = topo!;
      expect(tally(await t.connect({ host: ADDR.v4.vip(2), port: 80, protocol: 'tcp', count: 4, sources: refused }))).toEqual({ b2: 4 });
      expect(tally(await t.connect({ host: LB, port: 81, protocol: 'tcp', count: 2, sources: refused }))).toEqual({ 'lb-81': 2 });
      expect(await others()).toBe(othersBefore);
    }, 60_000);

    it('a CIDR vip\'s allow list leaves the host vip inside it to that service; refused elsewhere in the block', async () => {
      const t = topo!;
      expect(tally(await t.connect({ host: '10.201.100.130', port: 80, protocol: 'tcp', count: 3, sources: refused }))).toEqual({ b2: 3 });
      expect(tally(await t.connect({ host: '10.201.100.131', port: 80, protocol: 'tcp', count: 2, sources: allowed }))).toEqual({ b3: 2 });
      expect(backendOf(await t.connect({ host: '10.201.100.131', port: 80, protocol: 'tcp', count: 2, sources: refused, timeoutMs: 700 }))).toEqual([null, null]);
    }, 60_000);

    it('a service without vip refuses outside its allow list on any local address', async () => {
      const t = topo!;
      expect(tally(await t.connect({ host: LB, port: 30080, protocol: 'tcp', count: 2, sources: allowed.slice(0, 2) }))).toEqual({ b3: 2 });
      expect(backendOf(await t.connect({ host: LB, port: 30080, protocol: 'tcp', count: 2, sources: refused, timeoutMs: 700 }))).toEqual([null, null]);
    }, 60_000);

    it('IPv6: the allow list works on every port of the service', async () => {
      const t = topo!;
      for (const port of [80, 443]) {
        expect(tally(await t.connect({ host: ADDR.v6.vip(1), port, protocol: 'tcp', count: 3, sources: allowed6 }))).toEqual({ v6b0: 3 });
        expect(backendOf(await t.connect({ host: ADDR.v6.vip(1), port, protocol: 'tcp', count: 2, sources: refused6, timeoutMs: 700 }))).toEqual([null, null]);
      }
    }, 60_000);

    it('several ports: one rotation for all of them, each connection on the port the client chose', async () => {
      const t = topo!;
      // Three connections to 7000, then one to 7002: with one rotation the fourth goes to the next backend.
      const seen: (string | null)[] = [];
      for (const port of [7000, 7000, 7000, 7002, 7001, 7001]) seen.push(...backendOf(await t.connect({ host: ADDR.v4.vip(4), port, protocol: 'tcp', count: 1 })));
      expect(seen).toEqual(['b0:7000', 'b1:7000', 'b0:7000', 'b1:7002', 'b0:7001', 'b1:7001']);
    }, 60_000);

    it('several ports: one affinity table, so a UDP client keeps its backend on both ports', async () => {
      const t = topo!;
      const clients = [...allowed, ...refused];
      const first = await t.connect({ host: ADDR.v4.vip(3), port: 5683, protocol: 'udp', count: clients.length, sources: clients });
      const second = await t.connect({ host: ADDR.v4.vip(3), port: 5684, protocol: 'udp', count: clients.length, sources: clients });
      expect(first.every((r) => r.backend?.endsWith(':5683'))).toBe(true);
      expect(second.every((r) => r.backend?.endsWith(':5684'))).toBe(true);
      expect(second.map((r) => r.backend!.split(':')[0])).toEqual(first.map((r) => r.backend!.split(':')[0]));
      expect(new Set(first.map((r) => r.backend)).size).toBe(2);
    }, 60_000);

    it('a backend with a port of its own takes every port of the service there', async () => {
      const t = topo!;
      for (const port of [81, 82]) expect(tally(await t.connect({ host: ADDR.v4.vip(5), port, protocol: 'tcp', count: 2 }))).toEqual({ b2: 2 });
    }, 60_000);

    it('a changed allow list is loaded in place: a client taken out is refused, one put in reaches a backend, affinities stay', async () => {
      const t = topo!;
      const clients = [...allowed, ...refused];
      const before = await t.connect({ host: ADDR.v4.vip(3), port: 5683, protocol: 'udp', count: clients.length, sources: clients });
      // 10.201.128.8 leaves the list, 10.201.128.4 joins it.
      const changed = parseSpec(SPEC.replace('allow: [10.201.128.0/30, 10.201.128.8]', 'allow: [10.201.128.0/30, 10.201.128.4]'), 'access.yaml');
      logs.length = 0;
      for (const target of c.targets) await target.apply!(compileForTarget(target, changed).files, ctx());
      // Loaded as a change of the allow set alone: no chain is touched.
      if (c.name === 'nftables') expect(logs.join('\n')).toMatch(/loading only what changed: 0 chain\(s\), 2 map element\(s\)/);
      else expect(logs.join('\n')).toMatch(/^iptables: loading only what changed: 0 chain\(s\), 1 set\(s\) created or refilled, 0 set\(s\) to remove$/m);
      // Sticky clients keep their backends: asked in the other order, each still lands where it did.
      const again = await t.connect({ host: ADDR.v4.vip(3), port: 5683, protocol: 'udp', count: clients.length, sources: [...clients].reverse() });
      expect(again.map((r) => [r.source, r.backend]).reverse()).toEqual(before.map((r) => [r.source, r.backend]));
      expect(backendOf(await t.connect({ host: LB, port: 80, protocol: 'tcp', count: 1, sources: [ADDR.v4.extraClient(7)], timeoutMs: 700 }))).toEqual([null]);
      expect(backendOf(await t.connect({ host: LB, port: 80, protocol: 'tcp', count: 1, sources: [ADDR.v4.extraClient(3)] }))[0]).toMatch(/^b[01]$/);
      expect(backendOf(await t.connect({ host: LB, port: 80, protocol: 'tcp', count: 1, sources: [ADDR.v4.extraClient(5)], timeoutMs: 700 }))).toEqual([null]);
    }, 60_000);

    it('lbc remove takes the allow sets away with everything else, and other rules stay', async () => {
      const t = topo!;
      for (const target of c.targets) await target.remove!(ctx());
      if (c.name === 'nftables') expect((await t.exec('lb', ['nft', 'list', 'tables'])).stdout).not.toContain('lbc');
      else expect((await t.exec('lb', ['ipset', 'list', '-n'])).stdout.trim()).toBe('');
      expect(await others()).toBe(othersBefore);
      // With nothing of lbc's left, the vip is the balancer's own again.
      expect(backendOf(await t.connect({ host: LB, port: 80, protocol: 'tcp', count: 1, sources: refused }))).toEqual(['lb-self']);
    }, 60_000);
  });
}
