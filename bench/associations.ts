/**
 * UDP associations benchmark (`npm run bench:associations`): the nftables design options of seed
 * 004 measured side by side, and 100,000 associations held by lbc's nftables and iptables rules
 * while lbc applies changed specs.
 *
 *   npm run bench:associations                    100,000 associations, 3 runs per figure
 *   npm run bench:associations -- --count 20000 --runs 1
 *
 * A raw-socket sender (native/udpflood.c) in a client namespace sends one datagram per client address
 * and port through a balancer namespace to a backend namespace that drops them (no replies, no ICMP:
 * the same work behind every design). Figures:
 * - new/s: datagrams per second when every one is a new client (each creates an association);
 * - known/s: the same clients again (each refreshes its association);
 * - associations: what the kernel holds afterwards (set elements, map elements or conntrack entries);
 * - memory: growth of the kernel's slab caches (/proc/slabinfo: active objects × object size) per
 *   association. The machine is shared, so other work moves these figures a little; the bucket arrays
 *   of the hash tables (a few bytes per element, page allocations) are not in slabinfo.
 * Nothing here is a test; progress goes to stderr, one table to stdout.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseSpec } from '../src/index.js';
import { compileForTarget, type ApplyContext, type TargetDefinition } from '../src/targets/target.js';
import { nftablesTarget } from '../src/targets/nftables/index.js';
import { ip6tablesTarget, iptablesTarget } from '../src/targets/iptables/index.js';
import { cleanupAllSync } from './lib/netns.js';
import { haveCommand, median, must, run } from './lib/proc.js';
import { arrived, createAssocTopology, type AssocTopology } from './lib/assoc-netns.js';

const { values: opt } = parseArgs({ options: { count: { type: 'string' }, runs: { type: 'string' }, help: { type: 'boolean', default: false } } });
if (opt.help) {
  process.stdout.write('usage: npm run bench:associations -- [--count N (default 100000)] [--runs R (default 3)]\n');
  process.exit(0);
}
const COUNT = Number(opt.count ?? 100_000);
const RUNS = Number(opt.runs ?? 3);
const log = (s: string) => process.stderr.write(`${s}\n`);

if (process.getuid?.() !== 0 || !['ip', 'nft', 'iptables', 'ipset', 'conntrack', 'cc'].every(haveCommand)) {
  log('bench:associations needs root, ip, nft, iptables, ipset, conntrack and cc');
  process.exit(2);
}

const PORT = 5683;

// ---------------------------------------------------------------------------------------------
// Kernel memory

function slab(): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of readFileSync('/proc/slabinfo', 'utf8').split('\n').slice(2)) {
    const f = l.trim().split(/\s+/);
    if (f.length > 4) out.set(f[0], Number(f[1]) * Number(f[3]));
  }
  return out;
}

/**
 * Growth of the caches that grew by at least 8 bytes per association: what the associations took.
 * Summing every cache would add the noise of everything else the shared machine does meanwhile.
 */
function slabGrowth(before: Map<string, number>, after: Map<string, number>, count = COUNT): { bytes: number; top: string } {
  let bytes = 0;
  const grew: Array<[string, number]> = [];
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d < count * 8) continue;
    bytes += d;
    grew.push([k, d]);
  }
  grew.sort((x, y) => y[1] - x[1]);
  return { bytes, top: grew.slice(0, 3).map(([k, d]) => `${k} +${(d / 1e6).toFixed(1)} MB`).join(', ') };
}

// ---------------------------------------------------------------------------------------------
// Designs

interface Design {
  name: string;
  family: 'ipv4' | 'ipv6';
  /** Load the rules into the balancer namespace. */
  load(topo: AssocTopology): Promise<void>;
  /** Associations the kernel holds now. */
  count(topo: AssocTopology): Promise<number>;
  /** Take everything out again. */
  unload(topo: AssocTopology): Promise<void>;
}

/** The service coap on backends `from`..`to`-1, and with `unrelated` a TCP service beside it. */
function spec(family: 'ipv4' | 'ipv6', topo: AssocTopology, to: number, o: { from?: number; unrelated?: boolean } = {}): string {
  const a = topo.addr[family];
  const list = a.backends.slice(o.from ?? 0, to).map((b) => (family === 'ipv6' ? `"${b}"` : b));
  return [
    'version: 1',
    'services:',
    '  - name: coap',
    `    vip: ${a.vip}`,
    `    port: ${PORT}`,
    '    protocol: udp',
    '    associations: { backend-initiated: true }',
    `    backends: [${list.join(', ')}]`,
    ...(o.unrelated ? ['  - name: web', `    vip: ${a.vip2}`, '    port: 80', `    backends: ["${family === 'ipv6' ? `[${a.backends[7]}]` : a.backends[7]}:8080"]`] : []),
    '',
  ].join('\n');
}

function ctxOf(topo: AssocTopology): ApplyContext {
  return {
    dryRun: false,
    run: async (argv, stdin) => {
      await must(['ip', 'netns', 'exec', topo.lb, ...argv], { input: stdin, timeoutMs: 300_000 });
    },
    query: async (argv) => (await must(['ip', 'netns', 'exec', topo.lb, ...argv], { timeoutMs: 300_000 })).stdout,
    log: () => {},
  };
}

async function lbcApply(target: TargetDefinition, topo: AssocTopology, text: string): Promise<number> {
  const r = compileForTarget(target, parseSpec(text, 'bench.yaml'));
  if (r.diagnostics.some((d) => d.severity === 'error')) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  const t0 = performance.now();
  await target.apply!(r.files, ctxOf(topo));
  return performance.now() - t0;
}

const inLb = (topo: AssocTopology, argv: string[], input?: string) => must(['ip', 'netns', 'exec', topo.lb, ...argv], { input, timeoutMs: 300_000 });

async function nftCount(topo: AssocTopology, kind: 'set' | 'map', table: string, name: string): Promise<number> {
  const out = JSON.parse((await inLb(topo, ['nft', '-j', 'list', kind, 'inet', table, name])).stdout) as { nftables: Array<Record<string, { elem?: unknown[] }>> };
  return out.nftables.find((o) => o[kind])?.[kind]?.elem?.length ?? 0;
}

async function conntrackCount(topo: AssocTopology): Promise<number> {
  const r = await run(['ip', 'netns', 'exec', topo.lb, 'conntrack', '-C']);
  return Number(r.stdout.trim()) || 0;
}

const flushAll = async (topo: AssocTopology) => {
  // iptables here is iptables-nft: its rules are nftables tables too, and go with the ruleset.
  await inLb(topo, ['nft', 'flush', 'ruleset']);
  await run(['ip', 'netns', 'exec', topo.lb, 'ipset', 'destroy']);
  await run(['ip', 'netns', 'exec', topo.lb, 'conntrack', '-F']);
};

function lbcDesign(family: 'ipv4' | 'ipv6', backends: number): Design {
  return {
    name: `lbc nftables: stateless, a dynamic set per backend + one of all (${backends} backends)`,
    family,
    load: async (topo) => void (await lbcApply(nftablesTarget, topo, spec(family, topo, backends))),
    count: (topo) => nftCount(topo, 'set', 'lbc_assoc', 'all_coap'),
    unload: flushAll,
  };
}

/** One dynamic map client → backend, stateless; IPv4 only (nft 1.0.6 aborts on an IPv6 key from the packet path). */
function mapDesign(): Design {
  return {
    name: 'nft: stateless, one dynamic map saddr . sport → backend (IPv4 only)',
    family: 'ipv4',
    load: async (topo) => {
      const a = topo.addr.ipv4;
      const [b0, b1] = a.backends;
      await inLb(topo, ['nft', '-f', '-'], `table inet m {
  map assoc { typeof ip saddr . udp sport : ip daddr; size 1048576; flags dynamic,timeout; timeout 3650d; }
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    ip daddr ${a.vip} udp dport ${PORT} ip daddr set ip saddr . udp sport map @assoc update @assoc { ip saddr . udp sport : ip daddr } notrack accept
    ip daddr ${a.vip} udp dport ${PORT} numgen inc mod 2 0 update @assoc { ip saddr . udp sport : ${b0} } ip daddr set ${b0} notrack accept
    ip daddr ${a.vip} udp dport ${PORT} update @assoc { ip saddr . udp sport : ${b1} } ip daddr set ${b1} notrack accept
  }
}
`);
    },
    count: (topo) => nftCount(topo, 'map', 'm', 'assoc'),
    unload: flushAll,
  };
}

/** Connection tracking as the association: dnat by rotation, a ct timeout policy of one day for the flow. */
function conntrackDesign(family: 'ipv4' | 'ipv6'): Design {
  return {
    name: 'nft: conntrack (dnat + a 1-day ct timeout policy per flow)',
    family,
    load: async (topo) => {
      const a = topo.addr[family];
      const ip = family === 'ipv4' ? 'ip' : 'ip6';
      await inLb(topo, ['nft', '-f', '-'], `table inet c {
  ct timeout assoc { protocol udp; l3proto ${family === 'ipv4' ? 'ip' : 'ip6'}; policy = { unreplied : 86400, replied : 86400 }; }
  chain early { type filter hook prerouting priority -300; policy accept; ${ip} daddr ${a.vip} udp dport ${PORT} ct timeout set "assoc"; }
  chain dn { type nat hook prerouting priority -100; policy accept; ${ip} daddr ${a.vip} udp dport ${PORT} dnat ${ip} to numgen inc mod 2 map { 0 : ${a.backends[0]}, 1 : ${a.backends[1]} }; }
}
`);
    },
    count: conntrackCount,
    unload: flushAll,
  };
}

function iptablesDesign(family: 'ipv4' | 'ipv6'): Design {
  const target = family === 'ipv4' ? iptablesTarget : ip6tablesTarget;
  return {
    name: `lbc ${target.name}: hash:ip,port ipsets + conntrack zones (2 backends)`,
    family,
    load: async (topo) => void (await lbcApply(target, topo, spec(family, topo, 2))),
    count: async (topo) => Number(/Number of entries: (\d+)/.exec((await inLb(topo, ['ipset', 'list', '-t', `${family === 'ipv4' ? 'LBC4' : 'LBC6'}-coap-all`])).stdout)?.[1]),
    unload: async (topo) => {
      await target.remove!(ctxOf(topo));
      await flushAll(topo);
    },
  };
}

/** Sends `count` clients' datagrams at `pace` per second (0: as fast as it can); the rate reached and how many arrived. */
async function flood(topo: AssocTopology, family: 'ipv4' | 'ipv6', tool: string, count: number, pace = 0, to?: string): Promise<{ rate: number; lost: number }> {
  const a = topo.addr[family];
  const before = await arrived(topo);
  const r = await must(['ip', 'netns', 'exec', topo.cl, tool, family === 'ipv4' ? '4' : '6', a.keyBase, to ?? a.vip, String(PORT), String(count), '1', String(Math.round(pace))], { timeoutMs: 300_000 });
  const m = /sent=(\d+) seconds=([\d.]+)/.exec(r.stdout);
  if (!m) throw new Error(`udpflood: ${r.stdout} ${r.stderr}`);
  // The last datagrams may still be on their way through the balancer.
  let got = 0;
  for (let i = 0; i < 20; i++) {
    got = (await arrived(topo)) - before;
    if (got >= count) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  return { rate: Number(m[1]) / Number(m[2]), lost: count - got };
}

/**
 * The highest rate this design takes without losing a datagram: as fast as the sender can, then 25 %
 * slower each time something was lost (at most 10 tries). `attempt` sends at a pace and says whether
 * all arrived (and, for new clients, became associations).
 */
async function lossless(attempt: (pace: number) => Promise<{ rate: number; ok: boolean }>): Promise<number> {
  let pace = 0;
  let last = NaN;
  for (let i = 0; i < 10; i++) {
    const r = await attempt(pace);
    if (r.ok) return r.rate;
    last = r.rate;
    pace = (pace || r.rate) * 0.75;
  }
  return -last;
}

interface Figures {
  newRate: number;
  knownRate: number;
  held: number;
  bytesPer: number;
  top: string;
}

async function measure(d: Design, topo: AssocTopology, tool: string): Promise<Figures> {
  const runs: Figures[] = [];
  for (let i = 0; i < RUNS; i++) {
    let held = 0;
    let g = { bytes: NaN, top: '' };
    const newRate = await lossless(async (pace) => {
      await flushAll(topo);
      await d.load(topo);
      const before = slab();
      const f = await flood(topo, d.family, tool, COUNT, pace);
      g = slabGrowth(before, slab());
      held = await d.count(topo);
      return { rate: f.rate, ok: f.lost === 0 && held === COUNT };
    });
    const knownRate = await lossless(async (pace) => {
      const f = await flood(topo, d.family, tool, COUNT, pace);
      return { rate: f.rate, ok: f.lost === 0 };
    });
    runs.push({ newRate, knownRate, held, bytesPer: held > 0 ? g.bytes / held : NaN, top: g.top });
    await d.unload(topo);
  }
  return {
    newRate: median(runs.map((r) => r.newRate)),
    knownRate: median(runs.map((r) => r.knownRate)),
    held: Math.min(...runs.map((r) => r.held)),
    bytesPer: median(runs.map((r) => r.bytesPer)),
    top: runs[runs.length - 1].top,
  };
}

/** A negative rate: even the slowest try lost datagrams (shown as "< |x|"). */
const fmt = (x: number) => (!Number.isFinite(x) ? '-' : x < 0 ? `< ${Math.round(-x).toLocaleString('en-US')}` : Math.round(x).toLocaleString('en-US'));

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lbc-bench-assoc-'));
  const tool = join(dir, 'udpflood');
  await must(['cc', '-O2', '-Wall', '-o', tool, fileURLToPath(new URL('./native/udpflood.c', import.meta.url))]);
  const topo = await createAssocTopology();
  const lines: string[] = [];
  try {
    log(`bench:associations: ${COUNT.toLocaleString('en-US')} clients per run, ${RUNS} run(s) per figure; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    // Forwarding alone, for scale: the same datagrams sent to a backend address, with no rules loaded.
    const base: Record<string, number> = {};
    for (const family of ['ipv4', 'ipv6'] as const) {
      const rates: number[] = [];
      await flushAll(topo);
      for (let i = 0; i < RUNS; i++) rates.push(await lossless(async (pace) => {
        const f = await flood(topo, family, tool, COUNT, pace, topo.addr[family].backends[0]);
        return { rate: f.rate, ok: f.lost === 0 };
      }));
      base[family] = median(rates);
    }
    lines.push('| design | family | new/s | known/s | associations held | kernel memory per association | grew most |', '|---|---|--:|--:|--:|--:|---|');
    lines.push(`| forwarding only, no rules (for scale) | IPv4 | ${fmt(base.ipv4)} | | | | |`, `| forwarding only, no rules (for scale) | IPv6 | ${fmt(base.ipv6)} | | | | |`);
    const designs: Design[] = [
      lbcDesign('ipv4', 2), lbcDesign('ipv6', 2), lbcDesign('ipv4', 8),
      mapDesign(),
      conntrackDesign('ipv4'), conntrackDesign('ipv6'),
      iptablesDesign('ipv4'), iptablesDesign('ipv6'),
    ];
    for (const d of designs) {
      log(`  ${d.name} (${d.family})`);
      const f = await measure(d, topo, tool);
      lines.push(`| ${d.name} | ${d.family === 'ipv4' ? 'IPv4' : 'IPv6'} | ${fmt(f.newRate)} | ${fmt(f.knownRate)} | ${fmt(f.held)} | ${Math.round(f.bytesPer)} B | ${f.top} |`);
    }

    // 100,000 associations held while lbc applies changed specs.
    lines.push('', '| held by lbc (default max 1,048,576) | associations | apply: a backend added | apply: unrelated service added | apply: a backend removed | after removal |', '|---|--:|--:|--:|--:|--:|');
    for (const [target, family] of [[nftablesTarget, 'ipv4'], [iptablesTarget, 'ipv4']] as const) {
      log(`  held: ${target.name}`);
      await flushAll(topo);
      await lbcApply(target, topo, spec(family, topo, 2));
      const count = target === nftablesTarget ? () => nftCount(topo, 'set', 'lbc_assoc', 'all_coap') : () => iptablesDesign('ipv4').count(topo);
      const before = slab();
      // Paced well below what every design takes, so every client becomes an association.
      for (let k = 0; k < 3 && (await count()) < COUNT; k++) await flood(topo, family, tool, COUNT, 20_000);
      const g = slabGrowth(before, slab());
      const held = await count();
      const added = await lbcApply(target, topo, spec(family, topo, 3));
      const afterAdd = await count();
      const unrelated = await lbcApply(target, topo, spec(family, topo, 3, { unrelated: true }));
      const afterOther = await count();
      // Refreshing all of them (a second round) keeps the count.
      await flood(topo, family, tool, COUNT, 20_000);
      const removed = await lbcApply(target, topo, spec(family, topo, 3, { from: 1, unrelated: true }));
      const afterRemove = await count();
      lines.push(
        `| ${target.name}: ${fmt(held)} held, ${(g.bytes / 1e6).toFixed(1)} MB of slab (${Math.round(g.bytes / held)} B each) | ${fmt(held)} | ${(added / 1000).toFixed(2)} s, ${fmt(afterAdd)} kept | ${(unrelated / 1000).toFixed(2)} s, ${fmt(afterOther)} kept | ${(removed / 1000).toFixed(2)} s | ${fmt(afterRemove)} (the removed backend's forgotten) |`,
      );
      if (target === iptablesTarget) await iptablesTarget.remove!(ctxOf(topo));
    }
    log(`load at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
    cleanupAllSync();
  }
}

main().catch((e) => {
  log(`bench:associations failed: ${(e as Error).stack ?? e}`);
  cleanupAllSync();
  process.exit(1);
});
