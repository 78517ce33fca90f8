/**
 * OpenBSD host files of a balancer tier's node (carp(4), pfsync(4), hostname.if(5), netstart(8)):
 *   hostname.carp0   the vips: `inet ADDR 255.255.255.255 NONE carpdev em0 vhid 51 advskew 100`
 *                    (carpdev is mandatory since OpenBSD 5.7), more addresses as `inet alias …`;
 *                    active-active: one carp interface with `carpnodes vhid:advskew,…` (one carpnode
 *                    per bucket, tier/plan.ts) and `balancing ip`, which filters every packet by a hash
 *                    of its source and destination against the carpnodes this node is master of;
 *   hostname.carp1   the gateway address (vhid id+1) on its interface, with its network's netmask;
 *   hostname.pfsync0 `up syncdev em2` (and `syncpeer` for two nodes);
 *   sysctl.conf      net.inet.carp.preempt=1.
 * netstart turns each line into `ifconfig carpN …` (parse_hn_line: "inet ADDR MASK BCAST" become
 * netmask/broadcast arguments, NONE drops the broadcast) and evals a `!` line, with $if replaced by the
 * interface name — how the key is read from the secret-file at boot.
 */
import type { OutputFile } from '../target.js';
import { headerLines } from '../text.js';
import type { TierEmitContext } from '../tier/features.js';
import { advbase, carpNodes, describeNode, failoverGroups, keyComment, type CarpAddress } from './common.js';
import { tierVips } from '../tier/plan.js';

export const OPENBSD_SYSCTL_CONF = 'sysctl.conf';

function netmask(prefix: number): string {
  const n = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

function addressLine(a: CarpAddress, first: boolean, carp: string): string {
  if (a.family === 'ipv4') return `inet ${first ? '' : 'alias '}${a.address} ${netmask(a.prefixLength)} NONE${carp ? ` ${carp}` : ''}`;
  return `inet6 ${first ? '' : 'alias '}${a.address} ${a.prefixLength}${carp ? ` ${carp}` : ''}`;
}

function carpFile(ctx: TierEmitContext, target: string, what: string, addresses: CarpAddress[], carp: string): string {
  const { tier, node } = ctx;
  const lines = [
    ...headerLines(target, ctx.ir.file).map((l) => `# ${l}`),
    `# OpenBSD hostname.if(5) of ${describeNode(tier, node)}: ${what}.`,
    ...keyComment(tier, 'when netstart(8) configures the interface (the ! line)').map((l) => `# ${l}`),
    ...addresses.map((a, i) => addressLine(a, i === 0, i === 0 ? carp : '')),
  ];
  if (tier.secretFile) lines.push(`!ifconfig $if pass "$(cat ${tier.secretFile})"`);
  return `${lines.join('\n')}\n`;
}

export function openbsdFiles(ctx: TierEmitContext, target: string): OutputFile[] {
  const { tier, node } = ctx;
  const head = headerLines(target, ctx.ir.file).map((l) => `# ${l}`);
  const base = advbase(tier) === 1 ? '' : ` advbase ${advbase(tier)}`;
  const files: OutputFile[] = [];
  if (tier.mode === 'active-active') {
    const vips = tierVips(ctx.ir).map((v) => ({ address: v.address, family: v.family, prefixLength: 32 }));
    const carp = `carpdev ${tier.interface} carpnodes ${carpNodes(tier, node)} balancing ip${base}`;
    files.push({ name: 'hostname.carp0', content: carpFile(ctx, target, `the vips, shared by every node, each keeping the connections of the carpnodes it is master of (advskew 0: its own)`, vips, carp) });
  } else {
    failoverGroups(ctx).forEach((g, i) => {
      const carp = `carpdev ${g.interface} vhid ${g.vhid}${base} advskew ${g.advskew}`;
      const what = g.role === 'vips' ? `the vips (vhid ${g.vhid} on ${g.interface})` : `the backends' default route (vhid ${g.vhid} on ${g.interface})`;
      files.push({ name: `hostname.carp${i}`, content: carpFile(ctx, target, what, g.addresses, carp) });
    });
  }
  if (tier.sync) {
    const peers = tier.nodes.filter((n) => n !== node);
    files.push({
      name: 'hostname.pfsync0',
      content: `${[
        ...head,
        `# OpenBSD hostname.if(5) of ${describeNode(tier, node)}: pfsync(4) copies pf's states to the other node${peers.length > 1 ? 's (multicast)' : ' (unicast)'} over ${tier.sync.interface}.`,
        `up syncdev ${tier.sync.interface}${peers.length === 1 ? ` syncpeer ${peers[0].syncAddress}` : ''}`,
      ].join('\n')}\n`,
    });
  }
  files.push({
    name: OPENBSD_SYSCTL_CONF,
    content: `${[
      ...head,
      `# OpenBSD sysctl.conf line of ${describeNode(tier, node)}: add it to /etc/sysctl.conf.`,
      `# The ${tier.mode === 'failover' ? 'preferred node takes its addresses' : 'owner of a carpnode takes it'} back when it returns.`,
      'net.inet.carp.preempt=1',
    ].join('\n')}\n`,
  });
  return files;
}
