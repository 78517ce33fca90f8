/**
 * What every target of the balancer tier derives the same way from the `balancers` block, so that the
 * nodes' files agree with each other whatever target wrote them: which node is being compiled, the
 * buckets of an active-active cluster and who owns them, priorities and skews, the partition's hash
 * seed and the cluster MAC.
 *
 * Buckets. A dead node's share must spread over every survivor, so buckets are finer than nodes: one
 * per ordered pair of nodes (owner i, fallback j), N·(N−1) in all, each a VRRP instance (keepalived)
 * or carpnode (OpenBSD) of its own. Node i owns its N−1 buckets; when it dies, each moves to a
 * different fallback. When owner and fallback are both gone the others take it in a fixed order.
 * With one bucket per node instead, a dead node's whole share would land on a single survivor.
 *
 * Hash. A connection's bucket is jhash(original source address, seed) scaled to [0, N·(N−1)) — the
 * kernel's reciprocal_scale, which both xt_cluster (net/netfilter/xt_cluster.c, xt_cluster_hash) and
 * nftables' `jhash … mod M` (net/netfilter/nft_hash.c) use, so bucket b means the same clients in
 * both. lbc numbers buckets from 0, as the kernel does: xt_cluster's `--cluster-local-node K` is bit
 * K−1 of the node mask (iptables extensions/libxt_cluster.c), and `iptables-translate` prints that
 * node as `jhash … eq K`, one too high; lbc writes the mask (`--cluster-local-nodemask`) itself.
 */
import { createHash } from 'node:crypto';
import { didYouMean, LbcError } from '../../diagnostics/diagnostic.js';
import { bucketCount, type BalancerNode, type Balancers } from '../../ir/balancers.js';
import type { Family, IR } from '../../ir/types.js';
import type { EmitOptions } from '../target.js';

export const DEFAULT_RUN_DIR = '/run/lbc';
/** Paths written into daemon configurations and scripts: nothing a shell or a config parser reads specially. */
const RUN_DIR_RE = /^(\/[A-Za-z0-9_][A-Za-z0-9._-]{0,63}){1,16}$/;

export interface Bucket {
  index: number;
  owner: number;
  fallback: number;
  /** VRRP virtual router id / CARP vhid. */
  vrid: number;
}

/** The node a compile is for (EmitOptions.node), or an LbcError saying which names the spec has. */
export function tierNode(tier: Balancers, options: EmitOptions): BalancerNode {
  const names = tier.nodes.map((n) => n.name);
  const want = options.node;
  if (typeof want !== 'string' || want === '') {
    throw new LbcError([
      {
        code: 'LBC4010',
        severity: 'error',
        message: `this spec describes ${tier.nodes.length} balancer nodes (${tier.mode}); name the one to compile for with --node`,
        notes: [`nodes: ${names.join(', ')}`],
      },
    ]);
  }
  const node = tier.nodes.find((n) => n.name === want);
  if (node) return node;
  const guess = didYouMean(want, names);
  throw new LbcError([
    {
      code: 'LBC4010',
      severity: 'error',
      message: `the spec has no balancer node "${want.replace(/[^\x20-\x7e]/g, '?').slice(0, 40)}"`,
      notes: [...(guess ? [`did you mean "${guess}"?`] : []), `nodes: ${names.join(', ')}`],
    },
  ]);
}

/** The node a compile is for, or null for a spec without a tier (where naming a node is a mistake). */
export function nodeOfCompile(tier: Balancers | undefined, options: EmitOptions): BalancerNode | null {
  if (tier) return tierNode(tier, options);
  if (typeof options.node === 'string') {
    throw new LbcError([
      { code: 'LBC4010', severity: 'error', message: 'a node is named (--node), but the spec has no "balancers" block', notes: ['remove --node, or describe the nodes in a balancers block'] },
    ]);
  }
  return null;
}

/** EmitOptions.runDir, checked: every runtime path the tier's files name lives under it. */
export function runDir(options: EmitOptions): string {
  const dir = options.runDir;
  if (dir === undefined || dir === null) return DEFAULT_RUN_DIR;
  if (typeof dir !== 'string' || !RUN_DIR_RE.test(dir) || /\/\.\.?(\/|$)/.test(dir)) {
    throw new LbcError([
      {
        code: 'LBC4011',
        severity: 'error',
        message: `--run-dir must be an absolute path of letters, digits, ".", "_" and "-" without a trailing "/", not "${String(dir).replace(/[^\x20-\x7e]/g, '?').slice(0, 60)}"`,
        notes: ['it is written into daemon configurations and scripts'],
      },
    ]);
  }
  return dir;
}

export function buckets(tier: Balancers): Bucket[] {
  const n = tier.nodes.length;
  const out: Bucket[] = [];
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < n - 1; t++) {
      const index = i * (n - 1) + t;
      out.push({ index, owner: i, fallback: (i + 1 + t) % n, vrid: tier.id + index });
    }
  }
  return out;
}

/** 0 for the fallback, then the nodes after it in spec order (cyclically), owner excluded: who takes a bucket next. */
function rankAfterFallback(tier: Balancers, b: Bucket, node: number): number {
  const n = tier.nodes.length;
  let rank = 0;
  for (let step = 1; step < n; step++) {
    const k = (b.fallback + step) % n;
    if (k === b.owner) continue;
    if (k === node) return rank;
    rank++;
  }
  throw new Error('rankAfterFallback: node is owner or fallback');
}

/**
 * VRRP priority of a node for one bucket: owner 250, fallback 200, the rest 150 and below, all
 * distinct, so every election has one winner without falling back to comparing addresses. Below 255,
 * so no node claims to own the address (RFC 5798 §5.2.4) and every master waits out the skew.
 */
export function bucketPriority(tier: Balancers, b: Bucket, node: number): number {
  if (node === b.owner) return 250;
  if (node === b.fallback) return 200;
  return 150 - rankAfterFallback(tier, b, node);
}

/** CARP advskew for one bucket (OpenBSD carpnodes): lower wins; the same order as bucketPriority. */
export function bucketAdvskew(tier: Balancers, b: Bucket, node: number): number {
  if (node === b.owner) return 0;
  if (node === b.fallback) return 100;
  return 200 + rankAfterFallback(tier, b, node);
}

/** Failover: the first node in the spec is preferred, each next one less. */
export function failoverPriority(node: number): number {
  return 250 - 10 * node;
}

/** Failover on CARP: advskew 0 for the first node, 100, 109, … for the others (FreeBSD demotes with 240). */
export function failoverAdvskew(node: number): number {
  return node === 0 ? 0 : 100 + 9 * (node - 1);
}

/** The partition's jhash seed: from the tier's id alone, so every node computes the same buckets. */
export function partitionSeed(tier: Balancers): number {
  return createHash('sha256').update(`lbc partition ${tier.id}`).digest().readUInt32BE(0);
}

export function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/**
 * The active-active cluster MAC: the spec's, or 03:4c:42:00:00:ID — a locally administered group
 * address (bits 1 and 0 of the first byte) outside IANA's 01:00:5e IPv4 multicast block, so switches
 * that snoop IGMP do not confine it to ports that joined a group (nobody joins one), and flood it.
 */
export function clusterMac(tier: Balancers): string {
  return tier.mac ?? `03:4c:42:00:00:${tier.id.toString(16).padStart(2, '0')}`;
}

/** The distinct vips of the spec's services, in spec order, with their family. */
export function tierVips(ir: IR): Array<{ address: string; family: Family }> {
  const seen = new Set<string>();
  const out: Array<{ address: string; family: Family }> = [];
  for (const s of ir.services) {
    if (!s.vip || seen.has(s.vip.address)) continue;
    seen.add(s.vip.address);
    out.push({ address: s.vip.address, family: s.family });
  }
  return out;
}

/** The distinct remote backend addresses (primaries and backups), for the rules that guard their replies. */
export function backendAddresses(ir: IR, family: Family): string[] {
  const seen = new Set<string>();
  for (const s of ir.services) if (s.family === family) for (const b of s.backends) if (b.address) seen.add(b.address);
  return [...seen];
}

export { bucketCount };

/** Names shared by the Linux files: keepalived's instances, the events script, the partition's objects. */
export const LINUX_NAMES = {
  /** nftables table of the tier (both families' rules) and its arp-family twin. */
  nftTable: 'lbc_tier',
  /** The set of buckets this node owns, filled at run time. */
  nftOwnedSet: 'owned',
  /** iptables chain (mangle) of the tier: outside lbc's LBC- namespace, which `lbc apply --target iptables` replaces. */
  iptChain: 'LBCT-PRE',
  arpChain: 'LBCT-ARP',
  eventsScript: 'lbc-vrrp-events',
  fifo: 'vrrp.fifo',
  lock: 'tier.lock',
  /** One file per bucket holding the VRRP state last reported for it (MASTER, BACKUP, FAULT, STOP). */
  bucketFile: (b: number) => `bucket.${b}`,
  failoverInstance: (tier: Balancers) => `lbc_${tier.id}`,
  bucketInstance: (tier: Balancers, b: Bucket) => `lbc_${tier.id}_b${b.index}`,
} as const;
