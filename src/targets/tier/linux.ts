/**
 * What the Linux targets share for the balancer tier: their capability rules and the host steps of
 * `lbc apply --node` beside loading the tier's rules.
 *
 * apply, in this order:
 * 1. Active-active: under the ownership lock (lock.ts), read the bucket states keepalived's events
 *    script recorded in RUN/bucket.N and load the tier's rules with the buckets this node owns, in one
 *    transaction — so a reload, a changed spec or a reboot (the files are gone with /run; keepalived
 *    reports every bucket again when it starts) never leaves the kernel with an ownership keepalived
 *    did not decide. Failover: load the tier's rules (nothing at run time lives in them).
 * 2. net.netfilter.nf_conntrack_tcp_loose=0 (per network namespace): a packet of a connection this
 *    node has no entry for becomes invalid instead of a connection picked up mid-stream. After the
 *    rules, which load nf_conntrack, so the sysctl exists.
 * 3. Active-active: every vip as a /32 on the tier's interface and the cluster MAC joined there
 *    (`ip maddr add`), so the node accepts frames sent to it; vips an earlier apply added and the spec
 *    no longer has are removed (RUN/tier-vips records them).
 * Everything is idempotent: a second apply changes nothing.
 */
import { readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ApplyContext, Support } from '../target.js';
import type { TierEmitContext, TierFeature, TierRule } from './features.js';
import { holdLock } from './lock.js';
import { bucketCount, clusterMac, LINUX_NAMES, tierVips } from './plan.js';

export type LinuxFlavor = 'nftables' | 'iptables' | 'ip6tables' | 'iptables-condition';

/** xt_cluster's limit (XT_CLUSTER_NODES_MAX in include/uapi/linux/netfilter/xt_cluster.h): 32 buckets, so 6 nodes. */
export const XT_CLUSTER_MAX_BUCKETS = 32;

export function linuxTierCapabilities(flavor: LinuxFlavor): Partial<Record<TierFeature, TierRule>> {
  const failover: Support = {
    level: 'yes',
    note: 'keepalived (VRRPv3) moves the vips (lbc compile --target keepalived --node NODE); this ruleset drops invalid packets to the vips and from the backends',
  };
  const caps: Partial<Record<TierFeature, TierRule>> = {
    'tier.failover': failover,
    'tier.sync': { level: 'yes', note: 'conntrackd (FTFW) copies the connections, driven by keepalived\'s events script' },
    'tier.advert-fine': { level: 'yes', note: 'VRRPv3 advertises in centiseconds (RFC 5798)' },
  };
  if (flavor === 'nftables') {
    caps['tier.active-active'] = { level: 'yes', note: 'jhash of the original source address into N·(N−1) buckets, a set of owned buckets kept by keepalived; the vips resolve to a multicast MAC (table arp)' };
  } else if (flavor === 'iptables') {
    caps['tier.active-active'] = (tier) =>
      bucketCount(tier.nodes.length) <= XT_CLUSTER_MAX_BUCKETS
        ? { level: 'yes', note: 'xt_cluster (-m cluster) into N·(N−1) buckets, one rule per owned bucket kept by keepalived; the vips resolve to a multicast MAC (arptables)' }
        : {
            level: 'no',
            why: `${tier.nodes.length} nodes need ${bucketCount(tier.nodes.length)} buckets (one per ordered pair of nodes), and xt_cluster hashes into at most ${XT_CLUSTER_MAX_BUCKETS} (XT_CLUSTER_NODES_MAX)`,
            instead: 'use --target nftables (jhash into any number of buckets), or at most 6 nodes',
          };
  } else {
    caps['tier.active-active'] = {
      level: 'no',
      why: flavor === 'ip6tables'
        ? 'an active-active cluster is IPv4 (the vips resolve to a multicast MAC by ARP) and ip6tables carries IPv6 only'
        : 'the buckets a node owns are restored into a reloaded partition only by lbc apply, and lbc cannot load the condition rules (they need xtables-addons)',
      instead: 'use --target nftables or --target iptables',
    };
  }
  return caps;
}

export interface TierLoad {
  /** Load the tier's rules in one transaction; `owned` is the buckets this node owns now (active-active), else null. */
  loadRules(owned: number[] | null): Promise<void>;
}

/** Buckets whose state file says MASTER: what keepalived decided last, per bucket. */
export function readOwned(dir: string, buckets: number): number[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const owned: number[] = [];
  for (const name of names) {
    const m = /^bucket\.(\d+)$/.exec(name);
    if (!m || Number(m[1]) >= buckets) continue;
    try {
      if (readFileSync(join(dir, name), 'utf8').trim() === 'MASTER') owned.push(Number(m[1]));
    } catch {
      // a file that went away while we listed: its bucket is not ours
    }
  }
  return owned.sort((a, b) => a - b);
}

const VIPS_RECORD = 'tier-vips';

export async function applyLinuxTier(ctx: ApplyContext, t: TierEmitContext, load: TierLoad): Promise<void> {
  const active = t.tier.mode === 'active-active';
  if (!active) {
    ctx.log(`tier: loading the failover rules of node ${t.node.name}`);
    await load.loadRules(null);
  } else {
    const release = ctx.dryRun ? null : await holdLock(join(t.runDir, LINUX_NAMES.lock));
    try {
      const owned = readOwned(t.runDir, bucketCount(t.tier.nodes.length));
      ctx.log(`tier: node ${t.node.name} owns ${owned.length ? `bucket${owned.length === 1 ? '' : 's'} ${owned.join(', ')}` : 'no bucket yet'} (as recorded in ${t.runDir})`);
      await load.loadRules(owned);
    } finally {
      await release?.();
    }
  }
  await ctx.run(['sysctl', '-q', '-w', 'net.netfilter.nf_conntrack_tcp_loose=0']);
  if (active) await ensureAddresses(ctx, t);
}

async function ensureAddresses(ctx: ApplyContext, t: TierEmitContext): Promise<void> {
  const dev = t.tier.interface;
  const wanted = tierVips(t.ir).map((v) => v.address);
  const present = new Set([...(await ctx.query(['ip', '-o', '-4', 'addr', 'show', 'dev', dev])).matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\/32\b/g)].map((m) => m[1]));
  for (const vip of wanted) if (!present.has(vip)) await ctx.run(['ip', 'addr', 'add', `${vip}/32`, 'dev', dev]);
  const mac = clusterMac(t.tier);
  const maddrs = (await ctx.query(['ip', 'maddr', 'show', 'dev', dev])).toLowerCase();
  if (!maddrs.includes(mac)) await ctx.run(['ip', 'maddr', 'add', mac, 'dev', dev]);
  // What an earlier apply added and this spec no longer wants: vips it dropped, a MAC or interface it changed.
  const record = join(t.runDir, VIPS_RECORD);
  let earlier: string[][] = [];
  try {
    earlier = readFileSync(record, 'utf8').split('\n').map((l) => l.split(' ')).filter((w) => w.length === 3 && (w[0] === 'vip' || w[0] === 'mac'));
  } catch {
    // no earlier apply on this host
  }
  const stale = earlier.filter(([kind, value, onDev]) => onDev !== dev || (kind === 'vip' ? !wanted.includes(value) : value !== mac));
  for (const [kind, value, onDev] of stale) {
    const argv = kind === 'vip' ? ['ip', 'addr', 'del', `${value}/32`, 'dev', onDev] : ['ip', 'maddr', 'del', value, 'dev', onDev];
    await ctx.run(argv).catch(() => ctx.log(`tier: ${value} was already gone from ${onDev}`));
  }
  if (!ctx.dryRun) {
    mkdirSync(t.runDir, { recursive: true, mode: 0o755 });
    writeFileSync(record, [...wanted.map((v) => `vip ${v} ${dev}\n`), `mac ${mac} ${dev}\n`].join(''));
  }
}

/** The vips and MAC an earlier apply added (RUN/tier-vips), as [kind, value, interface]. */
function recorded(runDir: string): string[][] {
  try {
    return readFileSync(join(runDir, VIPS_RECORD), 'utf8').split('\n').map((l) => l.split(' ')).filter((w) => w.length === 3 && (w[0] === 'vip' || w[0] === 'mac'));
  } catch {
    return [];
  }
}

/**
 * `lbc remove` of a node: the addresses and the MAC apply added (from its record), after the target's
 * hook took out the tier's rules. keepalived, conntrackd and their files are the operator's to stop.
 */
export async function removeTierAddresses(ctx: ApplyContext, runDir: string): Promise<void> {
  const present = new Map<string, string>();
  for (const [kind, value, dev] of recorded(runDir)) {
    if (!present.has(dev)) present.set(dev, await ctx.query(['ip', '-o', '-4', 'addr', 'show', 'dev', dev]).catch(() => ''));
    if (kind === 'vip' && present.get(dev)!.includes(`inet ${value}/32`)) await ctx.run(['ip', 'addr', 'del', `${value}/32`, 'dev', dev]);
    if (kind === 'mac') await ctx.run(['ip', 'maddr', 'del', value, 'dev', dev]).catch(() => ctx.log(`tier: ${value} was not joined on ${dev}`));
  }
  if (!ctx.dryRun) rmSync(join(runDir, VIPS_RECORD), { force: true });
}
