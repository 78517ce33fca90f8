/**
 * What the BSD host files of a balancer tier share: the CARP groups of a node (which vhid carries
 * which addresses, on which interface, with which advskew) and how the key gets in.
 *
 * carp(4): the node advertising most often (lowest advskew) is master; the master-down timer of a
 * backup is 3 × advbase + advskew/256 s (ip_carp.c, carp_setrun), so advbase 1 and advskew 100 take
 * over 2.4–3.4 s after the master's last advertisement. net.inet.carp.preempt=1 makes the preferred
 * node take its addresses back when it returns — safe with pfsync, which demotes carp on a node that
 * has not finished its bulk update yet (pfsync(4)) — and fails every carp group of a node over
 * together when one of its interfaces dies.
 *
 * The key (`pass`) is read on the node from the spec's secret-file at the moment the interfaces are
 * configured (FreeBSD: command substitution in rc.conf, which rc(8) sources as sh; OpenBSD: a `!`
 * line of hostname.if(5), which netstart(8) evals); lbc never reads it, and its output never holds it.
 * FreeBSD keeps at most 19 characters of it (CARP_KEY_LEN 20 with the NUL, sbin/ifconfig/carp.c).
 */
import type { BalancerNode, Balancers } from '../../ir/balancers.js';
import type { Family } from '../../ir/types.js';
import type { TierEmitContext } from '../tier/features.js';
import { bucketAdvskew, buckets, failoverAdvskew, tierVips } from '../tier/plan.js';

export interface CarpAddress {
  address: string;
  family: Family;
  /** The prefix the address is configured with on a carp(4) interface (OpenBSD): /32 or /128 for vips. */
  prefixLength: number;
}

export interface CarpGroup {
  /** What the group carries, for comments. */
  role: 'vips' | 'gateway';
  vhid: number;
  advskew: number;
  /** The physical interface (FreeBSD: the one with the aliases; OpenBSD: carpdev). */
  interface: string;
  addresses: CarpAddress[];
}

/** The failover groups of one node: the vips on the tier's interface, and the gateway (vhid id+1) on its own. */
export function failoverGroups(ctx: TierEmitContext): CarpGroup[] {
  const { tier, node } = ctx;
  const advskew = failoverAdvskew(node.index);
  const groups: CarpGroup[] = [
    {
      role: 'vips',
      vhid: tier.id,
      advskew,
      interface: tier.interface,
      addresses: tierVips(ctx.ir).map((v) => ({ address: v.address, family: v.family, prefixLength: v.family === 'ipv4' ? 32 : 128 })),
    },
  ];
  if (tier.gateway) {
    groups.push({
      role: 'gateway',
      vhid: tier.id + 1,
      advskew,
      interface: tier.gateway.interface,
      addresses: [{ address: tier.gateway.address, family: tier.gateway.family, prefixLength: tier.gateway.prefixLength }],
    });
  }
  return groups;
}

/** OpenBSD carpnodes of an active-active cluster: one vhid per bucket, this node's advskew for each. */
export function carpNodes(tier: Balancers, node: BalancerNode): string {
  return buckets(tier)
    .map((b) => `${b.vrid}:${bucketAdvskew(tier, b, node.index)}`)
    .join(',');
}

/** advbase in whole seconds (the tier capability refuses anything finer on CARP). */
export function advbase(tier: Balancers): number {
  return Math.round(tier.advertMs / 1000);
}

export function describeNode(tier: Balancers, node: BalancerNode): string {
  return tier.mode === 'failover'
    ? `node ${node.name} (${node.index + 1} of ${tier.nodes.length}) of failover group ${tier.id}`
    : `node ${node.name} (${node.index + 1} of ${tier.nodes.length}) of active-active cluster ${tier.id}`;
}

/** The header lines about the key, for both systems. */
export function keyComment(tier: Balancers, how: string): string[] {
  return tier.secretFile
    ? [`The CARP key is read from ${tier.secretFile} on the node ${how}; lbc never reads it. Keep it one word of at most 19 characters, the same on every node.`]
    : ['No secret-file in the spec: CARP advertisements are not authenticated (any host on the segment could take the addresses).'];
}
