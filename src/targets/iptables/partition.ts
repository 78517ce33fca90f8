/**
 * The balancer tier's iptables rules for one node: iptables-restore --noflush input with chains of
 * their own in the mangle table (LBCT-PRE, and LBCT-PART for active-active), outside the LBC- chains
 * that `lbc apply --target iptables` replaces and prunes, so reloading the services never touches the
 * bucket ownership keepalived's events script keeps here. Same semantics as nftables/partition.ts.
 *
 * Active-active uses xt_cluster (net/netfilter/xt_cluster.c): bucket = jhash of the conntrack's
 * original source address (the master's, for related connections), scaled to --cluster-total-nodes;
 * the match accepts when bit `bucket` of its node mask is set. lbc writes one rule per owned bucket
 * with `--cluster-local-node bucket+1` (the option sets bit K−1, extensions/libxt_cluster.c), not a
 * mask: libxt_cluster range-checks `--cluster-local-nodemask` as if it were a node number (1-32), so
 * a mask above 32 cannot be given at all. The match also turns PACKET_MULTICAST into PACKET_HOST for
 * every packet it looks at — the reason for the first rule, a cluster match that always matches
 * (total 1) and has no target, so established connections and nodes owning nothing are fixed too.
 * xt_cluster hashes at most 32 buckets (XT_CLUSTER_NODES_MAX): 6 nodes.
 */
import { LbcError } from '../../diagnostics/diagnostic.js';
import type { Family } from '../../ir/types.js';
import type { ApplyContext, OutputFile } from '../target.js';
import { headerLines } from '../text.js';
import type { TierEmitContext, TierHooks } from '../tier/features.js';
import { applyLinuxTier, linuxTierCapabilities, removeTierAddresses, type LinuxFlavor } from '../tier/linux.js';
import { backendAddresses, bucketCount, clusterMac, hex32, LINUX_NAMES, partitionSeed, tierVips } from '../tier/plan.js';

const PRE = LINUX_NAMES.iptChain;
const PART = 'LBCT-PART';
const ARP = LINUX_NAMES.arpChain;

export const tierFile = (family: Family): string => (family === 'ipv4' ? 'lbc-tier.rules' : 'lbc-tier6.rules');
export const ARP_SCRIPT = 'lbc-tier-arp.sh';

/** The rule that accepts one owned bucket; `node` is the bucket + 1 (a number, or a shell expression in the events script). */
export function ownedBucketRule(ctx: TierEmitContext, node: string): string {
  return `-A ${PART} -m cluster --cluster-total-nodes ${bucketCount(ctx.tier.nodes.length)} --cluster-local-node ${node} --cluster-hash-seed ${hex32(partitionSeed(ctx.tier))} -j RETURN`;
}

/** LBCT-PART's rules before and after the owned buckets' rules. */
export function partitionChain(): { head: string[]; tail: string[] } {
  return {
    head: [
      `:${PART} - [0:0]`,
      `-A ${PART} -m cluster --cluster-total-nodes 1 --cluster-local-node 1 --cluster-hash-seed 0x00000000`,
      `-A ${PART} -m conntrack --ctstate INVALID -j DROP`,
    ],
    tail: [`-A ${PART} -m conntrack --ctstate ESTABLISHED,RELATED --ctproto tcp -j RETURN`, `-A ${PART} -j DROP`],
  };
}

export function iptTierText(ctx: TierEmitContext, family: Family, owned: readonly number[] | null): string {
  const { tier, node } = ctx;
  const tool = family === 'ipv4' ? 'iptables' : 'ip6tables';
  const host = family === 'ipv4' ? 32 : 128;
  const vips = tierVips(ctx.ir).filter((v) => v.family === family).map((v) => v.address);
  const lines = headerLines(tool, ctx.ir.file).map((l) => `# ${l}`);
  const rules: string[] = [];
  const chains = [`:${PRE} - [0:0]`];
  if (tier.mode === 'failover') {
    lines.push(
      `# Balancer tier, node ${node.name} of failover group ${tier.id}: drop invalid packets to the vips and from the`,
      '# backends, so that after a failover a packet that arrives before conntrackd committed its connection',
      '# is retransmitted by its sender rather than reset (needs net.netfilter.nf_conntrack_tcp_loose=0).',
    );
    for (const v of vips) rules.push(`-A ${PRE} -d ${v}/${host} -m conntrack --ctstate INVALID -j DROP`);
    for (const b of backendAddresses(ctx.ir, family)) rules.push(`-A ${PRE} -s ${b}/${host} -m conntrack --ctstate INVALID -j DROP`);
  } else {
    lines.push(
      `# Balancer tier, node ${node.name} of active-active cluster ${tier.id}: every node receives the vips' traffic`,
      `# and keeps the connections whose source address hashes to a bucket it owns (${bucketCount(tier.nodes.length)} buckets, one per`,
      `# ordered pair of nodes). The owned buckets' rules are written at run time by keepalived's events script`,
      `# (${ctx.runDir}/${LINUX_NAMES.eventsScript}) and by lbc apply, from the states recorded in ${ctx.runDir}.`,
    );
    const part = partitionChain();
    chains.push(part.head[0]);
    for (const v of vips) rules.push(`-A ${PRE} -d ${v}/${host} -j ${PART}`);
    rules.push(...part.head.slice(1), ...(owned ?? []).map((b) => ownedBucketRule(ctx, String(b + 1))), ...part.tail);
  }
  lines.push(
    `# Load with \`${tool}-restore --noflush\` (lbc apply --node ${node.name} does): it replaces the chains below and`,
    `# nothing else; apply then makes sure mangle PREROUTING jumps to ${PRE} once (-C, else -I).`,
    '*mangle',
    ...chains,
    ...rules,
    'COMMIT',
  );
  return `${lines.join('\n')}\n`;
}

/** The ARP rules as idempotent arptables commands (arptables-restore --noflush drops the OUTPUT jump). */
export function arpCommands(ctx: TierEmitContext): string[][] {
  const dev = ctx.tier.interface;
  return tierVips(ctx.ir)
    .filter((v) => v.family === 'ipv4')
    .map((v) => ['arptables', '-A', ARP, '-o', dev, '-s', v.address, '-j', 'mangle', '--mangle-mac-s', clusterMac(ctx.tier)]);
}

function arpScript(ctx: TierEmitContext): string {
  const lines = [
    '#!/bin/sh',
    ...headerLines('iptables', ctx.ir.file).map((l) => `# ${l}`),
    `# ARP for active-active cluster ${ctx.tier.id}: every ARP packet this node sends for a vip names the cluster MAC`,
    `# ${clusterMac(ctx.tier)}, its own requests included; lbc apply runs these same commands.`,
    'set -e',
    `arptables -L ${ARP} -n >/dev/null 2>&1 || arptables -N ${ARP}`,
    `arptables -F ${ARP}`,
    ...arpCommands(ctx).map((c) => c.join(' ')),
    `arptables -C OUTPUT -j ${ARP} 2>/dev/null || arptables -I OUTPUT -j ${ARP}`,
  ];
  return `${lines.join('\n')}\n`;
}

async function ensureJump(ctx: ApplyContext, tool: string, argv: string[]): Promise<void> {
  try {
    await ctx.query([tool, ...argv.map((a) => (a === '-I' ? '-C' : a))]);
  } catch {
    await ctx.run([tool, ...argv]);
  }
}

function flavorFamilies(flavor: LinuxFlavor): Family[] {
  return flavor === 'iptables' ? ['ipv4'] : flavor === 'ip6tables' ? ['ipv6'] : ['ipv4', 'ipv6'];
}

export function iptablesTier(flavor: LinuxFlavor, canApply = true): TierHooks {
  const families = flavorFamilies(flavor);
  return {
    capabilities: linuxTierCapabilities(flavor),
    files(files, ctx) {
      const out = [...files];
      for (const f of families) {
        if (ctx.tier.mode === 'active-active' && f === 'ipv6') continue;
        out.push({ name: tierFile(f), content: iptTierText(ctx, f, null) });
      }
      if (ctx.tier.mode === 'active-active') out.push({ name: ARP_SCRIPT, content: arpScript(ctx), executable: true });
      return out;
    },
    ...(canApply
      ? {
          async apply(files: OutputFile[], ctx: ApplyContext, tier: TierEmitContext) {
            const family = families[0];
            const tool = family === 'ipv4' ? 'iptables' : 'ip6tables';
            if (!files.some((f) => f.name === tierFile(family))) throw new LbcError([{ code: 'LBC5001', severity: 'error', message: `${tool}: no ${tierFile(family)} among the files` }]);
            await applyLinuxTier(ctx, tier, {
              loadRules: async (owned) => {
                await ctx.run([`${tool}-restore`, '--noflush'], iptTierText(tier, family, owned));
                await ensureJump(ctx, tool, ['-t', 'mangle', '-I', 'PREROUTING', '-j', PRE]);
                if (tier.tier.mode !== 'active-active') return;
                try {
                  await ctx.query(['arptables', '-L', ARP, '-n']);
                } catch {
                  await ctx.run(['arptables', '-N', ARP]);
                }
                await ctx.run(['arptables', '-F', ARP]);
                for (const c of arpCommands(tier)) await ctx.run(c);
                await ensureJump(ctx, 'arptables', ['-I', 'OUTPUT', '-j', ARP]);
              },
            });
          },
          async remove(ctx: ApplyContext, runDir: string) {
            const tool = families[0] === 'ipv4' ? 'iptables' : 'ip6tables';
            const save = await ctx.query([`${tool}-save`, '-t', 'mangle']);
            const chains = [PRE, PART].filter((c) => save.includes(`\n:${c} `));
            if (chains.length) {
              ctx.log(`${tool}: removing the balancer tier's chains ${chains.join(', ')}`);
              const jump = save.includes(`\n-A PREROUTING -j ${PRE}\n`) ? [`-D PREROUTING -j ${PRE}`] : [];
              await ctx.run([`${tool}-restore`, '--noflush'], ['*mangle', ...jump, ...chains.map((c) => `-F ${c}`), ...chains.map((c) => `-X ${c}`), 'COMMIT', ''].join('\n'));
            }
            if (tool === 'iptables' && (await ctx.query(['arptables', '-L', ARP, '-n']).then(() => true, () => false))) {
              await ctx.run(['arptables', '-D', 'OUTPUT', '-j', ARP]).catch(() => {});
              await ctx.run(['arptables', '-F', ARP]);
              await ctx.run(['arptables', '-X', ARP]);
            }
            await removeTierAddresses(ctx, runDir);
          },
        }
      : {}),
  };
}
