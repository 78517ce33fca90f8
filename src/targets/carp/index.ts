/**
 * The balancer tier on the BSDs: capabilities and hooks of the pf, pf-openbsd, relayd and ipnat
 * targets. Each adds to its own ruleset the pass rules CARP and pfsync need, and writes the node's
 * host files (freebsd.ts, openbsd.ts) beside it.
 *
 * Pass rules (pf): `pass quick on IF proto carp keep state (no-sync)` on every interface with a carp
 * group, `pass quick on SYNC proto pfsync keep state (no-sync)` on the sync link — the forms of
 * pfsync(4)'s example; no-sync, because a state about CARP or pfsync itself must not be synced.
 * `quick`: lbc's rules are loaded into an anchor, and a quick match ends the evaluation of the whole
 * ruleset there (pf.conf(5) ANCHORS), so a later `block` in the main ruleset cannot undo it.
 * IPFilter (ipf(5)): `pass in|out quick on IF proto carp all`; it has no pfsync, and its own state
 * sync (ipsync) is not configured by lbc.
 */
import { LbcError } from '../../diagnostics/diagnostic.js';
import type { OutputFile, Support } from '../target.js';
import type { TierEmitContext, TierFeature, TierHooks, TierRule } from '../tier/features.js';
import { bucketCount } from '../tier/plan.js';
import { freebsdFiles } from './freebsd.js';
import { openbsdFiles } from './openbsd.js';

/** CARP_MAXNODES in OpenBSD's sys/netinet/ip_carp.h: the carpnodes one carp interface takes. */
export const CARP_MAX_NODES = 32;

const failover: TierRule = (tier) =>
  tier.gateway && tier.id === 255
    ? { level: 'no', why: 'the gateway address is a second CARP group, vhid id+1, and vhids end at 255', instead: 'use an id of at most 254' }
    : { level: 'yes', note: 'carp(4) groups with advskew by node order and net.inet.carp.preempt=1 (host files beside the ruleset)' };

const WHOLE_SECONDS: Support = {
  level: 'no',
  why: "CARP advertises every advbase seconds, a whole number; advbase 0 would leave a backup's master-down timer at advskew/256 s alone, one interval rather than three (ip_carp.c, carp_setrun), and FreeBSD refuses it",
  instead: 'use advert: 1s (or whole seconds) on the BSDs, or keepalived (VRRPv3 counts centiseconds) with a Linux target',
};

const PFSYNC: Support = { level: 'yes', note: 'pfsync(4) over the sync interface, unicast to the peer for two nodes' };

function capabilities(os: 'freebsd' | 'openbsd', firewall: 'pf' | 'ipf'): Partial<Record<TierFeature, TierRule>> {
  const caps: Partial<Record<TierFeature, TierRule>> = { 'tier.failover': failover, 'tier.advert-fine': WHOLE_SECONDS };
  caps['tier.sync'] =
    firewall === 'pf'
      ? PFSYNC
      : {
          level: 'no',
          why: 'pfsync copies pf states; IPFilter keeps its own state table, whose sync (ipsync) lbc does not configure',
          instead: 'use --target pf (pfsync), or a Linux target (conntrackd), or a failover group without sync',
        };
  if (os === 'openbsd') {
    caps['tier.active-active'] = (tier) =>
      bucketCount(tier.nodes.length) <= CARP_MAX_NODES
        ? { level: 'yes', note: 'one carp interface with a carpnode per bucket (an ordered pair of nodes) and balancing ip' }
        : {
            level: 'no',
            why: `${tier.nodes.length} nodes need ${bucketCount(tier.nodes.length)} carpnodes (one per ordered pair of nodes); a carp interface takes at most ${CARP_MAX_NODES}`,
            instead: 'use at most 6 nodes, or a Linux target (nftables: any number of buckets)',
          };
  } else {
    caps['tier.active-active'] = {
      level: 'no',
      why: "FreeBSD's CARP has no load balancing since FreeBSD 10 (net.inet.carp.arpbalance went with the rewrite), so every node but the master would drop the vips' traffic",
      instead: 'use --target pf-openbsd (carp balancing ip on OpenBSD), or a Linux target (nftables or iptables, with keepalived)',
    };
  }
  return caps;
}

/** The pf pass rules of the node's carp groups and sync link. */
export function pfTierRules(ctx: TierEmitContext): string[] {
  const { tier, node } = ctx;
  const carpIfs = [...new Set([tier.interface, ...(tier.gateway ? [tier.gateway.interface] : [])])];
  return [
    '',
    `# --- balancer tier: ${node.name} of ${tier.mode === 'failover' ? 'failover group' : 'active-active cluster'} ${tier.id} ---`,
    '# CARP advertisements and pfsync messages, never synced themselves (pfsync(4)); quick, so that the',
    "# main ruleset's rules after the anchor cannot block them.",
    ...carpIfs.map((i) => `pass quick on ${i} proto carp keep state (no-sync)`),
    ...(tier.sync ? [`pass quick on ${tier.sync.interface} proto pfsync keep state (no-sync)`] : []),
  ];
}

function appendTo(files: OutputFile[], name: string, lines: string[]): OutputFile[] {
  const i = files.findIndex((f) => f.name === name);
  if (i < 0) throw new LbcError([{ code: 'LBC3014', severity: 'error', message: `the tier's rules belong in ${name}, which the target did not write` }]);
  const f = files[i];
  const out = [...files];
  out[i] = { ...f, content: `${f.content.replace(/\n*$/, '\n')}${lines.join('\n')}\n` };
  return out;
}

/** The tier of a pf-based target (pf, pf-openbsd, pf-freebsd15, both relayd flavours): pass rules in `ruleFile`, host files for `os`. */
export function pfTier(ruleFile: string, os: 'freebsd' | 'openbsd', target: string): TierHooks {
  return {
    capabilities: capabilities(os, 'pf'),
    files: (files, ctx) => [...appendTo(files, ruleFile, pfTierRules(ctx)), ...(os === 'freebsd' ? freebsdFiles(ctx, target) : openbsdFiles(ctx, target))],
  };
}

export function ipnatTier(ipfRules: string): TierHooks {
  return {
    capabilities: capabilities('freebsd', 'ipf'),
    files(files, ctx) {
      const { tier, node } = ctx;
      const carpIfs = [...new Set([tier.interface, ...(tier.gateway ? [tier.gateway.interface] : [])])];
      const rules = [
        '',
        `# --- balancer tier: ${node.name} of failover group ${tier.id}: CARP advertisements (protocol 112) in and out ---`,
        ...carpIfs.flatMap((i) => [`pass in quick on ${i} proto carp all`, `pass out quick on ${i} proto carp all`]),
      ];
      return [...appendTo(files, ipfRules, rules), ...freebsdFiles(ctx, 'ipnat')];
    },
  };
}
