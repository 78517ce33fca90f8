/**
 * FreeBSD host files of a balancer tier's node (FreeBSD ≥ 10 CARP, carp(4), rc.conf(5)):
 *   rc.conf      the vips (and the gateway) as aliases of the physical interface with a vhid,
 *                  ifconfig_em0_alias0="inet vhid 51 advskew 100 pass … alias 192.0.2.10/32"
 *                (the FreeBSD Handbook's form; vhid first: ifconfig refuses advskew, advbase or pass
 *                before it, "advskew requires vhid", sbin/ifconfig/carp.c), and with `sync`
 *                pfsync_enable, pfsync_syncdev and, for two nodes, pfsync_syncpeer (unicast);
 *   loader.conf  carp_load="YES" (carp is a module since FreeBSD 10);
 *   sysctl.conf  net.inet.carp.preempt=1.
 * Aliases go to /32 (/128): an interface already has its own address in that network.
 * FreeBSD's CARP has no load-balancing mode since 10.0 (arpbalance was dropped with the rewrite),
 * so active-active is refused for FreeBSD (tier capabilities).
 */
import type { OutputFile } from '../target.js';
import { headerLines } from '../text.js';
import type { TierEmitContext } from '../tier/features.js';
import { advbase, describeNode, failoverGroups, keyComment } from './common.js';

export const RC_CONF = 'rc.conf';
export const LOADER_CONF = 'loader.conf';
export const SYSCTL_CONF = 'sysctl.conf';

function carpArgs(ctx: TierEmitContext, vhid: number, advskew: number): string {
  const parts = [`vhid ${vhid}`];
  if (advbase(ctx.tier) !== 1) parts.push(`advbase ${advbase(ctx.tier)}`);
  parts.push(`advskew ${advskew}`);
  if (ctx.tier.secretFile) parts.push(`pass $(cat ${ctx.tier.secretFile})`);
  return parts.join(' ');
}

export function freebsdFiles(ctx: TierEmitContext, target: string, sysctlFor = 'FreeBSD'): OutputFile[] {
  const { tier, node } = ctx;
  const head = headerLines(target, ctx.ir.file).map((l) => `# ${l}`);
  const rc = [
    ...head,
    `# FreeBSD rc.conf lines of ${describeNode(tier, node)}: add them to /etc/rc.conf.`,
    '# CARP addresses are aliases of the physical interface with a vhid; the node with the lowest advskew',
    '# is master. rc.d/netif numbers aliases from 0 and stops at the first gap: renumber these if the',
    '# interface has aliases already.',
    ...keyComment(tier, 'when rc(8) reads rc.conf (sh command substitution)').map((l) => `# ${l}`),
  ];
  for (const g of failoverGroups(ctx)) {
    rc.push(`# ${g.role === 'vips' ? 'The vips' : 'The backends\' default route'} (vhid ${g.vhid}) on ${g.interface}.`);
    g.addresses.forEach((a, i) => {
      const addr = a.family === 'ipv4' ? `alias ${a.address}/32` : `alias ${a.address} prefixlen 128`;
      rc.push(`ifconfig_${g.interface.replace(/[.-]/g, '_')}_alias${i}="${a.family === 'ipv4' ? 'inet' : 'inet6'} ${carpArgs(ctx, g.vhid, g.advskew)} ${addr}"`);
    });
  }
  if (tier.sync) {
    const peers = tier.nodes.filter((n) => n !== node);
    rc.push(
      `# pfsync(4) copies pf's states to the other node${peers.length > 1 ? 's (multicast)' : ' (unicast to its sync-address)'} over ${tier.sync.interface}.`,
      'pfsync_enable="YES"',
      `pfsync_syncdev="${tier.sync.interface}"`,
    );
    if (peers.length === 1) rc.push(`pfsync_syncpeer="${peers[0].syncAddress}"`);
  }
  const loader = [...head, `# FreeBSD loader.conf line of ${describeNode(tier, node)}: add it to /boot/loader.conf.`, 'carp_load="YES"'];
  const sysctl = [
    ...head,
    `# ${sysctlFor} sysctl.conf line of ${describeNode(tier, node)}: add it to /etc/sysctl.conf.`,
    '# The preferred node takes its addresses back when it returns, and all carp groups of a node fail',
    '# over together when one of its interfaces goes down.',
    'net.inet.carp.preempt=1',
  ];
  return [
    { name: RC_CONF, content: `${rc.join('\n')}\n` },
    { name: LOADER_CONF, content: `${loader.join('\n')}\n` },
    { name: SYSCTL_CONF, content: `${sysctl.join('\n')}\n` },
  ];
}
