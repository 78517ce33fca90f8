/**
 * A failover pair in network namespaces (seed 002): client — switch — two balancer nodes — switch —
 * backends, the backends' default route being the gateway address the pair moves with the vip, and a
 * sync link on which conntrackd copies connection state. keepalived and conntrackd run inside the node
 * namespaces with lbc's files; lbc apply loads the services and the tier's rules. The semantics:
 * - exactly one node holds the vip and the gateway address; mode nth splits exactly through it;
 * - the master dies (every process SIGKILLed, links down): the other node holds both within seconds,
 *   an established TCP connection opened through the old master goes on (conntrackd carried its NAT
 *   binding), and new connections split exactly again;
 * - the old master returns: it does not preempt, and nothing established breaks.
 * Timings are printed, and only bounded generously here (the bench measures them).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kernelSuite, tally } from './harness/index.js';
import { createTierTopology, TIER_ADDR, waitFor, type TierTopology } from './harness/tier.js';
import { applyNode, failoverSpec, specIR, startConntrackd, startKeepalived, writeKeepalivedFiles, type NodeRun } from './harness/tier-node.js';
import { readFileSync } from 'node:fs';
import type { IR } from '../../src/ir/types.js';

for (const target of ['nftables', 'iptables'] as const) {
  kernelSuite(`balancer tier: failover pair with conntrackd, ${target}`, ['keepalived', 'conntrackd', 'nft', 'iptables', 'conntrack', 'flock'], () => {
    let topo: TierTopology;
    let ir: IR;
    let runs: NodeRun[];

    const holds = async (node: string) => {
      const { stdout } = await topo.exec(node, ['ip', '-o', '-4', 'addr', 'show']);
      return stdout.includes(`inet ${TIER_ADDR.vip}/32`) && stdout.includes(`inet ${TIER_ADDR.gateway}/24`);
    };
    const holders = async (nodes: readonly string[]) => (await Promise.all(nodes.map(async (n) => ((await holds(n)) ? n : null)))).filter(Boolean);

    const startNode = async (r: NodeRun) => {
      await applyNode(topo, ir, target, r);
      startConntrackd(topo, r);
      // conntrackd must be listening before keepalived's first transition asks it for anything.
      const up = await waitFor(async () => (await topo.exec(r.node, ['conntrackd', '-C', `${r.dir}/conntrackd.conf`, '-s'])).stdout.length > 0, 10_000, 100);
      if (up === null) throw new Error(`conntrackd on ${r.node} did not start: ${topo.output(`conntrackd-${r.node}`)}`);
      startKeepalived(topo, r);
    };

    beforeAll(async () => {
      topo = await createTierTopology({ nodes: 2, back: true, sync: true });
      ir = specIR(failoverSpec());
      runs = topo.nodes.map((n) => ({ node: n, dir: topo.runDir(n) }));
      await topo.startServers('be', TIER_ADDR.backends.slice(0, 2).map((a, i) => ({ protocol: 'tcp' as const, address: a, port: 8080, id: `b${i}` })));
      await topo.startEcho('be', [{ protocol: 'tcp', address: TIER_ADDR.backends[0], port: 7007, id: 'b0' }]);
      for (const r of runs) writeKeepalivedFiles(ir, r);
      for (const r of runs) await startNode(r);
      const elected = await waitFor(async () => (await holders(topo.nodes)).join() === 'n1', 30_000, 100);
      if (elected === null) throw new Error(`n1 did not become the only master in 30 s: ${await holders(topo.nodes)}\n${topo.output('keepalived-n1').slice(-2000)}`);
    }, 120_000);

    afterAll(async () => {
      await topo?.destroy();
    });

    it('holds the vip and the gateway on exactly one node, and nth splits exactly through it', async () => {
      expect(await holders(topo.nodes)).toEqual(['n1']);
      const r = await topo.connect({ host: TIER_ADDR.vip, port: 80, protocol: 'tcp', count: 20 });
      expect(tally(r)).toEqual({ b0: 10, b1: 10 });
    });

    it('fails over: the survivor holds both addresses, an established connection goes on, new ones split exactly', async () => {
      const stream = topo.stream({ host: TIER_ADDR.vip, port: 7, everyMs: 50, maxMs: 60_000 });
      await stream.ready;
      const echoing = await waitFor(async () => stream.echoes() >= 5, 10_000, 50);
      if (echoing === null) {
        for (const r of runs) process.stdout.write(`${r.node}:\n${readFileSync(`${r.dir}/lbc-vrrp-events.log`, 'utf8')}\n${(await topo.exec(r.node, ['ip', '-o', '-4', 'addr'])).stdout}\n${(await topo.exec(r.node, ['conntrack', '-L', '-p', 'tcp', '--orig-port-dst', '7'])).stdout}\n`);
        process.stdout.write(`${(await topo.exec('cl', ['ip', 'neigh'])).stdout}\n`);
      }
      expect(echoing, 'the connection echoes through the master').not.toBeNull();
      // conntrackd copies the connection to n2 within a moment (FTFW, events from the kernel).
      const copied = await waitFor(async () => (await topo.exec('n2', ['conntrackd', '-C', `${runs[1].dir}/conntrackd.conf`, '-e'])).stdout.includes(`dport=7 `), 10_000, 100);
      if (copied === null) {
        const ext = await topo.exec('n2', ['conntrackd', '-C', `${runs[1].dir}/conntrackd.conf`, '-e']);
        const int = await topo.exec('n1', ['conntrackd', '-C', `${runs[0].dir}/conntrackd.conf`, '-i']);
        const ct = await topo.exec('n1', ['conntrack', '-L']);
        process.stdout.write(`n2 external:\n${ext.stdout}\nn1 internal:\n${int.stdout}\nn1 kernel:\n${ct.stdout}\n${topo.output('conntrackd-n1')}\n${topo.output('conntrackd-n2')}\n`);
      }
      expect(copied, 'n2 has the connection in its external cache').not.toBeNull();
      const before = stream.echoes();
      const t0 = await topo.crash('n1');
      const took = await waitFor(async () => holds('n2'), 30_000, 20);
      expect(took, 'n2 holds the vip and the gateway within 30 s').not.toBeNull();
      const failover = Date.now() - t0;
      const again = await waitFor(async () => {
        const r = await topo.connect({ host: TIER_ADDR.vip, port: 80, protocol: 'tcp', count: 1, timeoutMs: 500 });
        return r[0].backend !== null;
      }, 30_000, 50);
      expect(again).not.toBeNull();
      // The connection comes back with TCP's next retransmission, whose backoff (0.2, 0.4, 0.8, 1.6, 3.2 s …)
      // can put it seconds after the takeover on a loaded machine: wait for it, generously.
      const back = await waitFor(async () => stream.echoes() > before + 5, 30_000, 50);
      if (back === null) process.stdout.write(`n2 conntrack:\n${(await topo.exec('n2', ['conntrack', '-L', '-p', 'tcp', '--orig-port-dst', '7'])).stdout}\n${topo.output('conntrackd-n2').slice(-1500)}\n`);
      expect(back, 'the established connection echoes again within 30 s of the takeover').not.toBeNull();
      const rec = await stream.stop();
      expect(rec.error, 'the established connection survived').toBeNull();
      const after = rec.replies.filter((x) => x.t > t0);
      expect(after.length, 'echoes after the crash').toBeGreaterThan(5);
      // The connection's outage: the longest wait between two echoes (one is sent every 50 ms).
      const gap = Math.max(...rec.replies.slice(1).map((x, i) => x.t - rec.replies[i].t));
      process.stdout.write(`[tier ${target}] failover: n2 held vip and gateway ${failover} ms after the crash; the established connection's longest silence was ${gap} ms\n`);
      // Nothing lost or duplicated: the echoes are the numbered lines, in order.
      rec.replies.forEach((x, i) => expect(x.n).toBe(i));
      // New connections: n2's own rotation, still exact.
      const r = await topo.connect({ host: TIER_ADDR.vip, port: 80, protocol: 'tcp', count: 20 });
      expect(tally(r)).toEqual({ b0: 10, b1: 10 });
    }, 90_000);

    it('lets the old master return without preempting or breaking an established connection', async () => {
      const stream = topo.stream({ host: TIER_ADDR.vip, port: 7, everyMs: 50, maxMs: 60_000 });
      await stream.ready;
      for (const dev of ['eth0', 'eth1', 'eth2']) await topo.exec('n1', ['ip', 'link', 'set', dev, 'up']);
      // Its old conntrackd left a lock file behind when it was killed: conntrackd refuses to start over one.
      await topo.exec('n1', ['rm', '-f', `${runs[0].dir}/conntrackd.lock`]);
      await startNode(runs[0]);
      // Give it time to become backup and resync; it must not take the addresses back.
      await new Promise((r) => setTimeout(r, 6000));
      expect(await holders(topo.nodes)).toEqual(['n2']);
      const rec = await stream.stop();
      expect(rec.error).toBeNull();
      expect(rec.replies.length).toBeGreaterThan(60);
      rec.replies.forEach((x, i) => expect(x.n).toBe(i));
      const state = await topo.exec('n1', ['cat', `${runs[0].dir}/state.lbc_51`]);
      expect(state.stdout.trim()).toBe('BACKUP');
    }, 90_000);
  });
}
