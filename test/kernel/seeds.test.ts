/**
 * The five situations lbc grew from, compiled from their fixture specs and
 * proven in a real kernel for both Linux targets. The fixtures' addresses are
 * moved onto the harness's private test addresses (and interface names dropped,
 * since the namespaces have their own), nothing else changes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec, TARGETS } from '../../src/index.js';
import type { IR } from '../../src/ir/types.js';
import { compileForTarget } from '../../src/targets/target.js';
import { ADDR, createTopology, kernelSuite, tally, type Listener, type Topology } from './harness/index.js';

const FIX = join(import.meta.dirname, '..', '..', 'fixtures');
const B = ADDR.v4.backends;

/** fixture → [from, to] replacements; the spec is otherwise the fixture's own. */
const MOVES: Record<string, Array<[string, string]>> = {
  'seed-000-local-ports': [['198.18.240.0/20', '10.201.100.0/24']],
  'seed-001-smtp-health': [['10.0.0.1', ADDR.v4.vip(1)], ['192.168.0.1', B[0]], ['192.168.0.2', B[1]]],
  'seed-002-web-sticky': [
    ['192.168.1.51', ADDR.v4.vip(51)],
    ...[20, 21, 22, 23, 24, 30, 31, 32].map((h, i): [string, string] => [`192.168.10.${h}`, B[i]]),
    // Eight backend addresses exist in the harness; the last two servers share addresses on another port.
    ['192.168.10.33', `"${B[0]}:81"`],
    ['192.168.10.34', `"${B[1]}:81"`],
  ],
  'seed-003-hash': [['192.168.44.3', ADDR.v4.vip(3)], ['192.168.44.11', B[4]], ['192.168.44.12', B[5]], ['192.168.44.13', B[6]]],
  'seed-004-udp-sticky': [['10.188.7.99', ADDR.v4.vip(99)], ['10.188.100.163', B[2]], ['10.188.100.230', B[3]]],
};

function seedIR(name: string): IR {
  let text = readFileSync(join(FIX, name, 'spec.yaml'), 'utf8').replace(/^\s*interface: .*\n/gm, '');
  for (const [from, to] of MOVES[name]) text = text.split(from).join(to);
  const { ir, diagnostics } = checkSpec(text, `${name}.yaml`);
  if (!ir) throw new Error(diagnostics.map((d) => d.message).join('\n'));
  return ir;
}

/** Every backend of every seed answers with "address:port" (local ones with "local:port"). */
function listeners(ir: IR): { be: Listener[]; lb: Listener[] } {
  const be: Listener[] = [];
  const lb: Listener[] = [];
  for (const s of ir.services)
    for (const b of s.backends) {
      if (b.address === null) lb.push({ protocol: s.protocol, address: ADDR.v4.balancerClientSide, port: b.port, id: `local:${b.port}` });
      else be.push({ protocol: s.protocol, address: b.address, port: b.port, id: `${b.address}:${b.port}` });
    }
  return { be, lb };
}

for (const targetName of ['iptables', 'nftables']) {
  kernelSuite(`seeds on ${targetName}`, targetName === 'iptables' ? ['iptables-restore', 'ipset'] : ['nft'], () => {
    const target = TARGETS.get(targetName)!;
    let topo: Topology;
    beforeAll(async () => {
      topo = await createTopology({ clientSources: 120, backendAddresses: 8 });
    }, 60_000);
    afterAll(async () => {
      await topo?.destroy();
    });

    async function load(name: string): Promise<IR> {
      const ir = seedIR(name);
      const r = compileForTarget(target, ir, {});
      expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      await target.apply!(r.files, topo.applyContext('lb'));
      const { be, lb } = listeners(ir);
      const fresh = (l: Listener) => !started.has(`${l.protocol}|${l.address}|${l.port}`);
      const beNew = be.filter(fresh);
      const lbNew = lb.filter(fresh);
      for (const l of [...beNew, ...lbNew]) started.add(`${l.protocol}|${l.address}|${l.port}`);
      if (beNew.length) await topo.startServers('be', beNew);
      if (lbNew.length) await topo.startServers('lb', lbNew);
      return ir;
    }
    const started = new Set<string>();

    it('seed 000: eight local instances behind one port rotate exactly', async () => {
      await load('seed-000-local-ports');
      const r = await topo.connect({ host: '10.201.100.77', port: 4000, protocol: 'tcp', count: 80 });
      const t = tally(r);
      expect(Object.keys(t).sort()).toEqual([4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008].map((p) => `local:${p}`));
      for (const n of Object.values(t)) expect(n).toBe(10);
    }, 60_000);

    it('seed 001: SMTP alternates between the two servers', async () => {
      await load('seed-001-smtp-health');
      const t = tally(await topo.connect({ host: ADDR.v4.vip(1), port: 25, protocol: 'tcp', count: 40 }));
      expect(t).toEqual({ [`${B[0]}:25`]: 20, [`${B[1]}:25`]: 20 });
    }, 60_000);

    it('seed 002: ten web servers in rotation, each client kept on its server', async () => {
      await load('seed-002-web-sticky');
      const clients = Array.from({ length: 120 }, (_, i) => ADDR.v4.extraClient(i));
      const first = await topo.connect({ host: ADDR.v4.vip(51), port: 80, protocol: 'tcp', count: 120, sources: clients });
      const t = tally(first);
      expect(Object.keys(t)).toHaveLength(10);
      for (const n of Object.values(t)) expect(n).toBe(12);
      const again = await topo.connect({ host: ADDR.v4.vip(51), port: 80, protocol: 'tcp', count: 240, sources: clients });
      const home = new Map(first.map((c) => [c.source, c.backend]));
      for (const c of again) expect(c.backend, `client ${c.source}`).toBe(home.get(c.source));
    }, 90_000);

    it('seed 003: the same client address always reaches the same server', async () => {
      await load('seed-003-hash');
      const clients = Array.from({ length: 60 }, (_, i) => ADDR.v4.extraClient(i));
      const first = await topo.connect({ host: ADDR.v4.vip(3), port: 80, protocol: 'tcp', count: 60, sources: clients });
      const again = await topo.connect({ host: ADDR.v4.vip(3), port: 80, protocol: 'tcp', count: 60, sources: clients });
      const home = new Map(first.map((c) => [c.source, c.backend]));
      for (const c of again) expect(c.backend).toBe(home.get(c.source));
      expect(new Set(first.map((c) => c.backend)).size).toBe(3);
    }, 60_000);

    it('seed 004: UDP clients keep their server on both ports', async () => {
      await load('seed-004-udp-sticky');
      const clients = Array.from({ length: 40 }, (_, i) => ADDR.v4.extraClient(i));
      for (const port of [5683, 5684]) {
        const first = await topo.connect({ host: ADDR.v4.vip(99), port, protocol: 'udp', count: 40, sources: clients });
        expect(tally(first)).toEqual({ [`${B[2]}:${port}`]: 20, [`${B[3]}:${port}`]: 20 });
        const again = await topo.connect({ host: ADDR.v4.vip(99), port, protocol: 'udp', count: 80, sources: clients });
        const home = new Map(first.map((c) => [c.source, c.backend]));
        for (const c of again) expect(c.backend).toBe(home.get(c.source));
      }
    }, 60_000);
  });
}

describe('seed fixtures', () => {
  it('all five are covered', () => expect(Object.keys(MOVES)).toHaveLength(5));
});
