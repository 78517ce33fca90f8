/**
 * Balancer tier timings, measured in network namespaces with lbc's files (keepalived, conntrackd,
 * nftables), each run on a fresh topology (test/kernel/harness/tier.ts):
 *   failover        two nodes; the master dies (links down, every process killed): until the survivor
 *                   holds the vip and the gateway, and the longest silence of a TCP connection that
 *                   sends a line every 20 ms through the pair (conntrackd carries it over)
 *   active-active   three nodes; one dies: until every bucket it owned is answered by its fallback
 *                   (one client per bucket, probed every 20 ms, 150 ms per attempt)
 * with advert 1s (keepalived's default) and 100ms.
 *
 *   npm run bench:tier                 5 runs of each
 *   npm run bench:tier -- --runs 3
 * Needs root, keepalived, conntrackd, nft, conntrack, flock. Prints one table on stdout.
 */
import { parseArgs } from 'node:util';
import { createTierTopology, TIER_ADDR, waitFor, type TierTopology } from '../test/kernel/harness/tier.js';
import { activeSpec, applyNode, failoverSpec, owners, specIR, startConntrackd, startKeepalived, writeKeepalivedFiles, type NodeRun } from '../test/kernel/harness/tier-node.js';
import { bucketOf } from '../test/kernel/harness/jhash.js';
import { buckets, partitionSeed } from '../src/targets/tier/plan.js';
import { median } from './lib/proc.js';

const { values: opt } = parseArgs({ options: { runs: { type: 'string' }, help: { type: 'boolean', default: false } } });
if (opt.help) {
  process.stdout.write('usage: npm run bench:tier -- [--runs R]   (R runs per figure, default 5)\n');
  process.exit(0);
}
const RUNS = Number(opt.runs ?? 5);
if (!(RUNS >= 1 && RUNS <= 50)) {
  process.stderr.write('bench:tier: --runs must be 1-50\n');
  process.exit(2);
}
const log = (s: string) => process.stderr.write(`[bench:tier] ${s}\n`);

async function holds(topo: TierTopology, node: string): Promise<boolean> {
  const { stdout } = await topo.exec(node, ['ip', '-o', '-4', 'addr', 'show']);
  return stdout.includes(`inet ${TIER_ADDR.vip}/32`) && stdout.includes(`inet ${TIER_ADDR.gateway}/24`);
}

async function failoverRun(advert: string): Promise<{ takeover: number; silence: number }> {
  const topo = await createTierTopology({ nodes: 2, back: true, sync: true });
  try {
    const ir = specIR(failoverSpec(advert));
    const runs: NodeRun[] = topo.nodes.map((n) => ({ node: n, dir: topo.runDir(n) }));
    await topo.startServers('be', TIER_ADDR.backends.slice(0, 2).map((a, i) => ({ protocol: 'tcp' as const, address: a, port: 8080, id: `b${i}` })));
    await topo.startEcho('be', [{ protocol: 'tcp', address: TIER_ADDR.backends[0], port: 7007, id: 'b0' }]);
    for (const r of runs) {
      writeKeepalivedFiles(ir, r);
      await applyNode(topo, ir, 'nftables', r);
      startConntrackd(topo, r);
      if ((await waitFor(async () => (await topo.exec(r.node, ['conntrackd', '-C', `${r.dir}/conntrackd.conf`, '-s'])).stdout.length > 0, 10_000, 100)) === null) throw new Error('conntrackd did not start');
      startKeepalived(topo, r);
    }
    if ((await waitFor(async () => (await holds(topo, 'n1')) && !(await holds(topo, 'n2')), 30_000, 100)) === null) throw new Error('n1 did not become master');
    const stream = topo.stream({ host: TIER_ADDR.vip, port: 7, everyMs: 20, maxMs: 60_000 });
    await stream.ready;
    if ((await waitFor(async () => stream.echoes() >= 10, 10_000, 20)) === null) throw new Error('no echoes through the master');
    // Let conntrackd copy the connection (and a few of its updates) to n2.
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = await topo.crash('n1');
    const took = await waitFor(async () => holds(topo, 'n2'), 30_000, 10);
    if (took === null) throw new Error('n2 did not take over within 30 s');
    const takeover = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 4000));
    const rec = await stream.stop();
    if (rec.error) throw new Error(`the connection broke: ${rec.error}`);
    const silence = Math.max(...rec.replies.slice(1).map((x, i) => x.t - rec.replies[i].t));
    return { takeover, silence };
  } finally {
    await topo.destroy();
  }
}

async function activeRun(advert: string): Promise<number> {
  const topo = await createTierTopology({ nodes: 3, clientSources: 200 });
  try {
    const ir = specIR(activeSpec(3, advert));
    const tier = ir.balancers!;
    const runs: NodeRun[] = topo.nodes.map((n) => ({ node: n, dir: topo.runDir(n) }));
    for (const r of runs) {
      await topo.startServers(r.node, [{ protocol: 'tcp', address: '0.0.0.0', port: 8080, id: r.node }]);
      writeKeepalivedFiles(ir, r);
      await applyNode(topo, ir, 'nftables', r);
      startKeepalived(topo, r);
    }
    const all = buckets(tier);
    const settled = await waitFor(async () => {
      const o = owners(runs);
      return all.every((b) => (o.get(b.index) ?? []).join() === `n${b.owner + 1}`);
    }, 30_000, 100);
    if (settled === null) throw new Error('buckets did not settle');
    const sources = Array.from({ length: 200 }, (_, i) => TIER_ADDR.extraClient(i));
    const probe = all.filter((b) => b.owner === 0).map((b) => sources.find((s) => all[bucketOf(s, partitionSeed(tier), all.length)] === b)!);
    const t0 = await topo.crash('n1');
    const first = await topo.probe({ host: TIER_ADDR.vip, port: 80, sources: probe, timeoutMs: 150, everyMs: 20, deadlineMs: 30_000 });
    if (first.size !== probe.length) throw new Error('a bucket was not taken over within 30 s');
    return Math.max(...[...first.values()].map((x) => x.t)) - t0;
  } finally {
    await topo.destroy();
  }
}

const fmt = (xs: number[]) => `median ${median(xs)} ms (${xs.join(', ')})`;
const rows: string[] = ['| measure | measured | goal | |', '|---|---|---|---|'];
const verdict = (xs: number[], goal: number) => (median(xs) <= goal ? (Math.max(...xs) <= goal ? 'met' : 'met (median)') : 'missed');

for (const [advert, goal] of [['1s', 4000], ['100ms', 1000]] as const) {
  const take: number[] = [];
  const quiet: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    log(`failover, advert ${advert}, run ${i + 1}/${RUNS}`);
    const r = await failoverRun(advert);
    take.push(r.takeover);
    quiet.push(r.silence);
  }
  rows.push(`| failover (advert ${advert}): survivor holds vip and gateway after the master dies | ${fmt(take)} | ≤ ${goal / 1000} s | ${verdict(take, goal)} |`);
  rows.push(`| failover (advert ${advert}): longest silence of an established TCP connection | ${fmt(quiet)} | (one TCP retransmission after the takeover) | |`);
  const aa: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    log(`active-active, advert ${advert}, run ${i + 1}/${RUNS}`);
    aa.push(await activeRun(advert));
  }
  rows.push(`| active-active (advert ${advert}): every bucket of a dead node answered by its fallback | ${fmt(aa)} | ≤ ${goal / 1000} s | ${verdict(aa, goal)} |`);
}
process.stdout.write(`${rows.join('\n')}\n`);
