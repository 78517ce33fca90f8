/**
 * --target keepalived --node NAME: what one Linux node of a balancer tier runs beside its ruleset.
 *   keepalived.conf   VRRPv3 (RFC 5798). Failover: one instance holding every vip and the gateway
 *                     address, nopreempt. Active-active: one instance per bucket (an ordered pair of
 *                     nodes, tier/plan.ts), preempting, so a returning node takes its buckets back.
 *   conntrackd.conf   with `sync` (failover): FTFW over UDP to the peer (two nodes) or multicast.
 *   lbc-vrrp-events   the script keepalived feeds its VRRP events to, in order, through a FIFO:
 *                     conntrackd's commit/flush/resync/bulk-send on becoming master, timer shortening
 *                     and a resync request on becoming backup; active-active, the node's owned
 *                     buckets into the partition the firewall target loaded.
 * Every runtime path (FIFO, state files, lock, sockets, logs, the script itself) is under --run-dir
 * (default /run/lbc), where these files belong: several nodes can share a host in network namespaces.
 *
 * Failover does not preempt: a node that returns stays backup and takes the copies of the master's
 * connections (conntrackd StartupResync, `-n` on becoming backup), so its return breaks nothing; it
 * becomes master again only when the current master fails. (Preempting would make it master before it
 * had the state, resetting every established connection.)
 * VRRPv3 carries no authentication (RFC 5798 §9 removed it; keepalived ignores `authentication` with
 * version 3): a spec's secret-file is for CARP and not used here.
 */
import { LbcError } from '../../diagnostics/diagnostic.js';
import type { BalancerNode, Balancers } from '../../ir/balancers.js';
import type { IR } from '../../ir/types.js';
import type { EmitOptions, OutputFile, TargetDefinition } from '../target.js';
import { renderTemplate } from '../template.js';
import { commentText, headerLines } from '../text.js';
import type { TierEmitContext } from '../tier/features.js';
import { linuxTierCapabilities } from '../tier/linux.js';
import { bucketPriority, buckets, bucketCount, failoverPriority, LINUX_NAMES, runDir, tierNode, tierVips, type Bucket } from '../tier/plan.js';
import { ownedBucketRule, partitionChain } from '../iptables/partition.js';

const NAME = 'keepalived';
export const KEEPALIVED_FILE = 'keepalived.conf';
export const CONNTRACKD_FILE = 'conntrackd.conf';
const CONNTRACKD_PORT = 3780;
const CONNTRACKD_GROUP = '225.0.0.50';

/** keepalived reads advert_int in seconds with decimals; the IR holds whole centiseconds. */
function advertText(ms: number): string {
  return String(ms / 1000);
}

function family(a: string): 'ipv4' | 'ipv6' {
  return a.includes(':') ? 'ipv6' : 'ipv4';
}

/** A stand-in address per bucket instance: VRRPv3 instances need one; keepalived adds it to lo while master. */
function bucketStandIn(tier: Balancers, b: Bucket): string {
  return `127.254.${tier.id}.${b.index + 1}/32 dev lo`;
}

interface Instance {
  name: string;
  comments: string[];
  nopreempt: boolean;
  interface: string;
  vrid: number;
  priority: number;
  advert: string;
  source: string;
  track: string[];
  addresses: string[];
  excluded: string[];
}

function failoverInstance(ctx: TierEmitContext): Instance {
  const { tier, node } = ctx;
  const own = family(node.address);
  const host = (a: string) => `${a}/${family(a) === 'ipv4' ? 32 : 128} dev ${tier.interface}`;
  const addrs = tierVips(ctx.ir).map((v) => ({ text: host(v.address), fam: v.family }));
  if (tier.gateway) addrs.push({ text: `${tier.gateway.address}/${tier.gateway.prefixLength} dev ${tier.gateway.interface}`, fam: tier.gateway.family });
  // Adverts carry the addresses of the instance's family; the others move with it unannounced.
  let addresses = addrs.filter((a) => a.fam === own).map((a) => a.text);
  const excluded = addrs.filter((a) => a.fam !== own).map((a) => a.text);
  if (addresses.length === 0) addresses = [`127.254.${tier.id}.0/32 dev lo`];
  const order = tier.nodes.map((n) => `${n.name} ${failoverPriority(n.index)}`).join(', ');
  return {
    name: LINUX_NAMES.failoverInstance(tier),
    comments: [
      `Failover group ${tier.id}: every vip${tier.gateway ? ' and the backends\' gateway' : ''} move together. Priorities: ${order}.`,
      'No preemption: a node that comes back stays backup until the master fails.',
    ],
    nopreempt: true,
    interface: tier.interface,
    vrid: tier.id,
    priority: failoverPriority(node.index),
    advert: advertText(tier.advertMs),
    source: node.address,
    // The backends reach the tier through the gateway interface: a node that lost it must not stay master.
    track: tier.gateway && tier.gateway.interface !== tier.interface ? [tier.gateway.interface] : [],
    addresses,
    excluded,
  };
}

function bucketInstances(ctx: TierEmitContext): Instance[] {
  const { tier, node } = ctx;
  return buckets(tier).map((b) => {
    const order = tier.nodes
      .map((n) => ({ n, p: bucketPriority(tier, b, n.index) }))
      .sort((x, y) => y.p - x.p)
      .map((x) => `${x.n.name} ${x.p}`)
      .join(', ');
    return {
      name: LINUX_NAMES.bucketInstance(tier, b),
      comments: [`Bucket ${b.index}: owned by ${tier.nodes[b.owner].name}, taken over by ${tier.nodes[b.fallback].name}. Priorities: ${order}.`],
      nopreempt: false,
      interface: tier.interface,
      vrid: b.vrid,
      priority: bucketPriority(tier, b, node.index),
      advert: advertText(tier.advertMs),
      source: node.address,
      track: [],
      addresses: [bucketStandIn(tier, b)],
      excluded: [],
    };
  });
}

function describe(tier: Balancers, node: BalancerNode): string {
  return tier.mode === 'failover'
    ? `failover group ${tier.id}, node ${node.index + 1} of ${tier.nodes.length}, priority ${failoverPriority(node.index)}`
    : `active-active cluster ${tier.id}, node ${node.index + 1} of ${tier.nodes.length}, ${bucketCount(tier.nodes.length)} buckets`;
}

function conntrackdConf(ctx: TierEmitContext, header: string[]): string {
  const { tier, node } = ctx;
  const own = node.syncAddress!;
  const fam = family(own);
  const others = tier.nodes.filter((n) => n !== node);
  const unicast = others.length === 1;
  if (!unicast && fam === 'ipv6') {
    throw new LbcError([
      {
        code: 'LBC3012',
        severity: 'error',
        message: `target ${NAME}: conntrackd syncs more than two nodes by IPv4 multicast; the sync addresses are IPv6`,
        location: tier.loc.sync,
        notes: ['give the nodes IPv4 sync-addresses, or sync two nodes (UDP unicast works over IPv6)'],
      },
    ]);
  }
  const ignore = new Set<string>(['IPv4_address 127.0.0.1', 'IPv6_address ::1']);
  const add = (a: string) => ignore.add(`${family(a) === 'ipv4' ? 'IPv4' : 'IPv6'}_address ${a}`);
  for (const n of tier.nodes) {
    add(n.address);
    if (n.syncAddress) add(n.syncAddress);
  }
  if (tier.gateway) add(tier.gateway.address);
  return renderTemplate(NAME, 'conntrackd.conf', {
    header,
    node: node.name,
    runDir: ctx.runDir,
    interface: tier.sync!.interface,
    unicast,
    family: fam === 'ipv4' ? 'IPv4' : 'IPv6',
    own,
    peer: unicast ? others[0].syncAddress : '',
    group: CONNTRACKD_GROUP,
    port: CONNTRACKD_PORT,
    ignore: [...ignore],
  });
}

export function keepalivedFiles(ctx: TierEmitContext): OutputFile[] {
  const { tier, node } = ctx;
  const header = headerLines(NAME, ctx.ir.file).map(commentText);
  const active = tier.mode === 'active-active';
  const notes: string[] = [];
  if (tier.secretFile) notes.push(`secret-file ${tier.secretFile} is not used: VRRPv3 has no authentication (RFC 5798 section 9).`);
  if (active) notes.push('Every node holds the vips itself (lbc apply --node); these instances only decide who owns which bucket.');
  const conf = renderTemplate(NAME, 'keepalived.conf', {
    header,
    node: node.name,
    describe: describe(tier, node),
    runDir: ctx.runDir,
    notes,
    instances: active ? bucketInstances(ctx) : [failoverInstance(ctx)],
  });
  const part = partitionChain();
  const events = renderTemplate(NAME, 'lbc-vrrp-events', {
    header,
    node: node.name,
    describe: describe(tier, node),
    runDir: ctx.runDir,
    active,
    sync: !active && tier.sync !== null,
    buckets: bucketCount(tier.nodes.length),
    nftTable: LINUX_NAMES.nftTable,
    nftSet: LINUX_NAMES.nftOwnedSet,
    iptChain: part.head[0].slice(1, part.head[0].indexOf(' ')),
    iptHead: part.head,
    iptTail: part.tail,
    iptOwned: ownedBucketRule(ctx, '$((b + 1))'),
    bucketPrefix: `${LINUX_NAMES.bucketInstance(tier, { index: 0, owner: 0, fallback: 0, vrid: 0 }).replace(/0$/, '')}`,
    instance: LINUX_NAMES.failoverInstance(tier),
    lock: LINUX_NAMES.lock,
  });
  const files: OutputFile[] = [
    { name: KEEPALIVED_FILE, content: conf },
    { name: LINUX_NAMES.eventsScript, content: events, executable: true },
  ];
  if (!active && tier.sync) files.push({ name: CONNTRACKD_FILE, content: conntrackdConf(ctx, header) });
  return files;
}

function emit(ir: IR, options: EmitOptions): OutputFile[] {
  const tier = ir.balancers;
  // compileForTarget already noted it (tier.only): nothing to write without a tier.
  if (!tier) return [];
  return keepalivedFiles({ ir, tier, node: tierNode(tier, options), runDir: runDir(options), options });
}

export const keepalivedTarget: TargetDefinition = {
  name: NAME,
  title: 'keepalived (VRRPv3), conntrackd and the events script for one Linux node of a balancer tier',
  families: ['ipv4', 'ipv6'],
  capabilities: {},
  emit,
  tier: {
    only: true,
    capabilities: { ...linuxTierCapabilities('nftables') },
    files: (files) => files,
  },
};
