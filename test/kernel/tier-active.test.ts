/**
 * An active-active cluster in network namespaces (seed 003): three nodes and the client on one bridge,
 * each node serving the vip itself (a local port), keepalived deciding who owns which of the 6 buckets
 * with lbc's keepalived.conf and events script, lbc apply loading the partition. The semantics:
 * - every client address is answered by exactly one node — the owner of its bucket, which the test
 *   predicts with the kernel's own hash (harness/jhash.ts), for nftables and for iptables (xt_cluster);
 * - a client address always lands on the same node, and re-applying the ruleset keeps the ownership;
 * - a node dies: within seconds each of its buckets is answered by that bucket's fallback — its clients
 *   spread over both survivors — while the survivors' own clients stay where they were;
 * - it comes back: it takes its buckets back, and a connection a survivor accepted meanwhile goes on.
 * Timings are printed, and only bounded generously here (the bench measures them).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kernelSuite } from './harness/index.js';
import { createTierTopology, TIER_ADDR, waitFor, type TierTopology } from './harness/tier.js';
import { bucketOf } from './harness/jhash.js';
import { activeSpec, applyNode, conntrackSources, kernelOwned, owners, specIR, startKeepalived, writeKeepalivedFiles, type NodeRun } from './harness/tier-node.js';
import { buckets, partitionSeed } from '../../src/targets/tier/plan.js';
import type { IR } from '../../src/ir/types.js';
import { TARGETS } from '../../src/targets/registry.js';

const SOURCES = 240;
const NODES = 3;

for (const target of ['nftables', 'iptables'] as const) {
  kernelSuite(`balancer tier: active-active, ${target}`, ['keepalived', 'nft', 'iptables', 'arptables', 'conntrack', 'flock'], () => {
    let topo: TierTopology;
    let ir: IR;
    let runs: NodeRun[];
    const sources = Array.from({ length: SOURCES }, (_, i) => TIER_ADDR.extraClient(i));
    let expected: Map<string, string>;

    const predictedOwner = (tierIr: IR, source: string, alive: readonly string[]) => {
      const tier = tierIr.balancers!;
      const all = buckets(tier);
      const b = all[bucketOf(source, partitionSeed(tier), all.length)];
      // The highest-priority live node: owner, fallback, then the rest in order after the fallback.
      const order = [b.owner, b.fallback, ...tier.nodes.map((_, k) => (b.fallback + 1 + k) % tier.nodes.length).filter((k) => k !== b.owner && k !== b.fallback)];
      return tier.nodes[order.find((k) => alive.includes(tier.nodes[k].name))!].name;
    };

    const answered = async (from: readonly string[], timeoutMs = 1500) => {
      const r = await topo.connect({ host: TIER_ADDR.vip, port: 80, protocol: 'tcp', count: from.length, sources: [...from], timeoutMs });
      return new Map(r.map((x) => [x.source!, x.backend]));
    };

    beforeAll(async () => {
      topo = await createTierTopology({ nodes: NODES, clientSources: SOURCES });
      ir = specIR(activeSpec(NODES));
      runs = topo.nodes.map((n) => ({ node: n, dir: topo.runDir(n) }));
      for (const r of runs) {
        await topo.startServers(r.node, [{ protocol: 'tcp', address: '0.0.0.0', port: 8080, id: r.node }]);
        await topo.startEcho(r.node, [{ protocol: 'tcp', address: '0.0.0.0', port: 7007, id: r.node }]);
        writeKeepalivedFiles(ir, r);
        await applyNode(topo, ir, target, r);
        startKeepalived(topo, r);
      }
      expected = new Map(sources.map((s) => [s, predictedOwner(ir, s, topo.nodes)]));
      // Settled: every bucket has exactly its owner as master (keepalived starts every instance as backup).
      const settled = await waitFor(async () => {
        const o = owners(runs);
        return buckets(ir.balancers!).every((b) => (o.get(b.index) ?? []).join() === `n${b.owner + 1}`);
      }, 30_000, 200);
      if (settled === null) throw new Error(`buckets did not settle in 30 s: ${JSON.stringify([...owners(runs)])}\n${topo.output('keepalived-n1').slice(-2000)}`);
      process.stdout.write(`[tier ${target}] buckets settled ${settled} ms after the last node started\n`);
    }, 120_000);

    afterAll(async () => {
      await topo?.destroy();
    });

    it('answers every client address from exactly one node, the owner of its bucket', async () => {
      const got = await answered(sources);
      const tally: Record<string, number> = {};
      for (const s of sources) {
        expect(got.get(s), `source ${s}`).toBe(expected.get(s));
        tally[got.get(s)!] = (tally[got.get(s)!] ?? 0) + 1;
      }
      // Roughly equal: each node owns 2 of the 6 buckets; a third of 240 is 80.
      for (const n of topo.nodes) expect(tally[n]).toBeGreaterThan(SOURCES / NODES / 2);
      process.stdout.write(`[tier ${target}] shares ${JSON.stringify(tally)}\n`);
      // Exactly one node: no other node even kept a conntrack entry for a source it does not own.
      const seen = new Map<string, string[]>();
      for (const n of topo.nodes) for (const s of await conntrackSources(topo, n, TIER_ADDR.vip)) seen.set(s, [...(seen.get(s) ?? []), n]);
      for (const s of sources) expect(seen.get(s), `conntrack entries of ${s}`).toEqual([expected.get(s)]);
    });

    it('keeps a client address on its node, also across a full re-apply of the same spec and of a changed one', async () => {
      const again = await answered(sources.slice(0, 60));
      for (const [s, n] of again) expect(n).toBe(expected.get(s));
      const before = target === 'nftables' ? await Promise.all(topo.nodes.map((n) => kernelOwned(topo, n))) : null;
      const changed = specIR(activeSpec(NODES).replace('port: 7, backends', 'port: 7, mode: random, backends'));
      for (const r of runs) await applyNode(topo, changed, target, r);
      if (before) expect(await Promise.all(topo.nodes.map((n) => kernelOwned(topo, n)))).toEqual(before);
      const after = await answered(sources.slice(60, 120));
      for (const [s, n] of after) expect(n).toBe(expected.get(s));
      for (const r of runs) await applyNode(topo, ir, target, r);
    });

    it('moves a dead node\'s clients to the fallbacks of its buckets, spread over every survivor, and leaves the others', async () => {
      const victim = 'n1';
      const survivors = topo.nodes.filter((n) => n !== victim);
      // One client of each bucket the victim owned, probed with a short timeout so a round is quick.
      const tier = ir.balancers!;
      const all = buckets(tier);
      const probe = all
        .filter((b) => tier.nodes[b.owner].name === victim)
        .map((b) => sources.find((s) => all[bucketOf(s, partitionSeed(tier), all.length)] === b)!);
      const t0 = await topo.crash(victim);
      const first = await topo.probe({ host: TIER_ADDR.vip, port: 80, sources: probe, timeoutMs: 200, everyMs: 20, deadlineMs: 30_000 });
      expect([...first.keys()].sort(), 'every moved bucket answered within 30 s').toEqual([...probe].sort());
      for (const s of probe) expect(first.get(s)!.id).toBe(predictedOwner(ir, s, survivors));
      const takeover = Math.max(...[...first.values()].map((x) => x.t)) - t0;
      process.stdout.write(`[tier ${target}] takeover: the dead node's buckets answered again ${takeover} ms after it died\n`);
      const got = await answered(sources);
      const moved: Record<string, number> = {};
      for (const s of sources) {
        const want = predictedOwner(ir, s, survivors);
        expect(got.get(s), `source ${s}`).toBe(want);
        if (expected.get(s) === victim) moved[want] = (moved[want] ?? 0) + 1;
        else expect(got.get(s)).toBe(expected.get(s));
      }
      // Both survivors took part of the dead node's share (one bucket each).
      for (const n of survivors) expect(moved[n] ?? 0).toBeGreaterThan(0);
    }, 90_000);

    it('takes its buckets back when it returns, without breaking a connection a survivor accepted meanwhile', async () => {
      const victim = 'n1';
      const source = sources.find((s) => expected.get(s) === victim)!;
      const holder = predictedOwner(ir, source, ['n2', 'n3']);
      const stream = topo.stream({ host: TIER_ADDR.vip, port: 7, source, everyMs: 100, maxMs: 60_000 });
      await stream.ready;
      // The node returns: links up, its rules re-applied (they survived), keepalived started again.
      await topo.exec(victim, ['ip', 'link', 'set', 'eth0', 'up']);
      await topo.exec(victim, ['ip', 'route', 'replace', TIER_ADDR.extraClientNet, 'via', TIER_ADDR.client]);
      const run = runs.find((r) => r.node === victim)!;
      await topo.startServers(victim, [{ protocol: 'tcp', address: '0.0.0.0', port: 8080, id: victim }]);
      await topo.startEcho(victim, [{ protocol: 'tcp', address: '0.0.0.0', port: 7007, id: victim }]);
      await applyNode(topo, ir, target, run);
      startKeepalived(topo, run);
      const back = await waitFor(async () => (await answered([source])).get(source) === victim, 30_000, 200);
      expect(back, 'the returning node answers its clients again within 30 s').not.toBeNull();
      await new Promise((r) => setTimeout(r, 1000));
      const rec = await stream.stop();
      expect(rec.error).toBeNull();
      const late = rec.replies.filter((x) => x.t > Date.now() - 1500);
      expect(late.length, 'echoes after the return').toBeGreaterThan(3);
      expect(new Set(rec.replies.map((x) => x.id))).toEqual(new Set([holder]));
      // No echo missing: numbered lines came back in order, none lost.
      rec.replies.forEach((x, i) => expect(x.n).toBe(i));
    }, 90_000);

    it('lbc remove takes out the services, the tier\'s rules, the vips and the MAC, and nothing else', async () => {
      const def = TARGETS.get(target)!;
      const r = runs[1];
      const ctx = { ...topo.applyContext(r.node), stateDir: r.dir };
      await def.remove!(ctx);
      await def.tier!.remove!(ctx, r.dir);
      const addrs = (await topo.exec(r.node, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout;
      expect(addrs).not.toContain(TIER_ADDR.vip);
      expect(addrs).toContain(TIER_ADDR.node(1));
      expect((await topo.exec(r.node, ['ip', 'maddr', 'show', 'dev', 'eth0'])).stdout).not.toContain('03:4c:42');
      if (target === 'nftables') expect((await topo.exec(r.node, ['nft', 'list', 'tables'])).stdout).not.toMatch(/lbc/);
      else {
        expect((await topo.exec(r.node, ['iptables-save'])).stdout).not.toMatch(/LBC/);
        expect((await topo.exec(r.node, ['arptables-save'])).stdout).not.toContain('LBCT');
      }
    });
  });
}
