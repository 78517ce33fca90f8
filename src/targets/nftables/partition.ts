/**
 * The balancer tier's nftables rules for one node, in a table of their own (`inet lbc_tier`, and
 * `arp lbc_tier` for active-active), so that `lbc apply` of the services' table `inet lbc` — full or
 * incremental — never touches the bucket ownership that keepalived's events script keeps here.
 *
 * Failover (both families): drop what conntrack calls invalid to a vip or from a backend. After a
 * failover, a packet of an established connection can reach the new master before conntrackd has
 * committed the old master's entries; with nf_conntrack_tcp_loose=0 (lbc apply sets it) conntrack
 * marks it invalid instead of picking the connection up mid-stream, and dropping it (rather than
 * letting it reach the vip's local stack, which answers with a reset, or be forwarded untranslated)
 * leaves the client to retransmit until the entry is there.
 *
 * Active-active (IPv4): every node receives every packet for the vips (the vips resolve to a
 * multicast MAC, table arp lbc_tier) and keeps only its share:
 *   meta pkttype set host      frames to a multicast MAC arrive as PACKET_MULTICAST, which TCP and
 *                              forwarding drop (tcp_v4_rcv, ip_forward); xt_cluster does the same
 *   ct state invalid drop      a packet of a connection another node holds (tcp_loose=0)
 *   jhash ct original ip saddr mod B seed S @owned accept
 *                              a new connection (or UDP flow) in a bucket this node owns
 *   ct protocol tcp ct state established,related accept
 *                              a TCP connection this node accepted, even after its bucket moved on:
 *                              a returning node takes its buckets back without resetting connections
 *                              the survivors accepted meanwhile (only the node that accepted a
 *                              connection has its conntrack entry; the others see its packets as invalid)
 *   drop                       everyone else's share
 * UDP has no such state: a UDP flow goes where its bucket goes. The rules run at priority -150, after
 * conntrack (-200) and before the services' translation (-100), so only the owner balances a connection.
 */
import { LbcError } from '../../diagnostics/diagnostic.js';
import type { ApplyContext, OutputFile } from '../target.js';
import { headerLines } from '../text.js';
import type { TierEmitContext, TierHooks } from '../tier/features.js';
import { applyLinuxTier, linuxTierCapabilities, removeTierAddresses, type TierLoad } from '../tier/linux.js';
import { backendAddresses, bucketCount, clusterMac, hex32, LINUX_NAMES, partitionSeed, tierVips } from '../tier/plan.js';

export const TIER_FILE = 'lbc-tier.nft';
const T = LINUX_NAMES.nftTable;

/** `jhash … mod B seed S`: the bucket of a connection, as keepalived's events script and xt_cluster see it. */
export function bucketExpression(ctx: TierEmitContext): string {
  return `jhash ct original ip saddr mod ${bucketCount(ctx.tier.nodes.length)} seed ${hex32(partitionSeed(ctx.tier))}`;
}

function setBlock(name: string, type: string, elements: readonly string[]): string[] {
  return [`\tset ${name} {`, `\t\ttype ${type}`, ...(elements.length ? [`\t\telements = { ${elements.join(', ')} }`] : []), '\t}', ''];
}

/** The node's tier file; `owned` (apply) adds the buckets it owns now, null (compile) leaves the set empty. */
export function nftTierText(ctx: TierEmitContext, owned: readonly number[] | null): string {
  const { tier, node } = ctx;
  const vips = tierVips(ctx.ir);
  const v4 = vips.filter((v) => v.family === 'ipv4').map((v) => v.address);
  const v6 = vips.filter((v) => v.family === 'ipv6').map((v) => v.address);
  const lines = headerLines('nftables', ctx.ir.file).map((l) => `# ${l}`);
  const table: string[] = [];
  const rules: string[] = [];
  if (tier.mode === 'failover') {
    lines.push(
      `# Balancer tier, node ${node.name} of failover group ${tier.id}: drop invalid packets to the vips and from the`,
      '# backends, so that after a failover a packet that arrives before conntrackd committed its connection',
      '# is retransmitted by its sender rather than reset (needs net.netfilter.nf_conntrack_tcp_loose=0).',
    );
    const b4 = backendAddresses(ctx.ir, 'ipv4');
    const b6 = backendAddresses(ctx.ir, 'ipv6');
    if (v4.length) table.push(...setBlock('vips4', 'ipv4_addr', v4));
    if (v6.length) table.push(...setBlock('vips6', 'ipv6_addr', v6));
    if (b4.length) table.push(...setBlock('backends4', 'ipv4_addr', b4));
    if (b6.length) table.push(...setBlock('backends6', 'ipv6_addr', b6));
    if (v4.length) rules.push('ct state invalid ip daddr @vips4 drop');
    if (v6.length) rules.push('ct state invalid ip6 daddr @vips6 drop');
    if (b4.length) rules.push('ct state invalid ip saddr @backends4 drop');
    if (b6.length) rules.push('ct state invalid ip6 saddr @backends6 drop');
  } else {
    const n = bucketCount(tier.nodes.length);
    lines.push(
      `# Balancer tier, node ${node.name} of active-active cluster ${tier.id}: every node receives the vips' traffic`,
      `# and keeps the connections whose source address hashes to a bucket it owns (${n} buckets, one per ordered`,
      '# pair of nodes; set "owned", kept by keepalived\'s events script and restored by lbc apply).',
    );
    table.push(...setBlock('vips', 'ipv4_addr', v4));
    table.push(
      '\t# Buckets this node owns now. Filled at run time: keepalived reports each bucket\'s VRRP state to',
      `\t# ${ctx.runDir}/${LINUX_NAMES.eventsScript}, which updates this set; lbc apply restores it from ${ctx.runDir}.`,
      '\t# (The typeof names symhash only for the type, a 32-bit integer: nft 1.0.6 cannot list a typeof holding jhash.)',
      `\tset ${LINUX_NAMES.nftOwnedSet} {`,
      `\t\ttypeof symhash mod ${n}`,
      '\t}',
      '',
      '\tchain partition {',
      '\t\tmeta pkttype set host',
      '\t\tct state invalid drop',
      `\t\t${bucketExpression(ctx)} @${LINUX_NAMES.nftOwnedSet} accept`,
      '\t\tct protocol tcp ct state established,related accept',
      '\t\tdrop',
      '\t}',
      '',
    );
    rules.push('ip daddr @vips jump partition');
  }
  lines.push(
    `# Load with \`nft -f\` (lbc apply --node ${node.name} does, with the owned buckets): replaces table inet ${T} only.`,
    `table inet ${T} {}`,
    `delete table inet ${T}`,
    `table inet ${T} {`,
    ...table,
    '\tchain prerouting {',
    '\t\ttype filter hook prerouting priority -150; policy accept;',
    ...rules.map((r) => `\t\t${r}`),
    '\t}',
    '}',
  );
  if (tier.mode === 'active-active') {
    lines.push(
      '',
      `# ARP: every ARP packet this node sends for a vip names the cluster MAC ${clusterMac(tier)} as the vip's`,
      '# hardware address, its own requests included (mangling only the replies lets neighbours learn a',
      '# unicast MAC from the requests); the node joins that MAC on the interface (lbc apply: ip maddr add).',
      `table arp ${T} {}`,
      `delete table arp ${T}`,
      `table arp ${T} {`,
      ...setBlock('vips', 'ipv4_addr', v4),
      '\tchain output {',
      '\t\ttype filter hook output priority 0; policy accept;',
      `\t\tarp saddr ip @vips arp saddr ether set ${clusterMac(tier)}`,
      '\t}',
      '}',
    );
  }
  if (owned && owned.length) lines.push(`add element inet ${T} ${LINUX_NAMES.nftOwnedSet} { ${owned.join(', ')} }`);
  return `${lines.join('\n')}\n`;
}

async function loadNft(ctx: ApplyContext, text: string): Promise<void> {
  await ctx.run(['nft', '-f', '-'], text);
}

export const nftablesTier: TierHooks = {
  capabilities: linuxTierCapabilities('nftables'),
  files: (files, ctx) => [...files, { name: TIER_FILE, content: nftTierText(ctx, null) }],
  async apply(files: OutputFile[], ctx: ApplyContext, tier) {
    if (!files.some((f) => f.name === TIER_FILE)) throw new LbcError([{ code: 'LBC5001', severity: 'error', message: `nftables: no ${TIER_FILE} among the files` }]);
    const load: TierLoad = { loadRules: (owned) => loadNft(ctx, nftTierText(tier, owned)) };
    await applyLinuxTier(ctx, tier, load);
  },
  async remove(ctx, runDir) {
    const tables = (await ctx.query(['nft', 'list', 'tables'])).split('\n').map((l) => l.trim());
    for (const family of ['inet', 'arp']) {
      if (!tables.includes(`table ${family} ${T}`)) continue;
      ctx.log(`nftables: deleting table ${family} ${T} (the balancer tier)`);
      await ctx.run(['nft', 'delete', 'table', family, T]);
    }
    await removeTierAddresses(ctx, runDir);
  },
};
