/**
 * The `balancers` block: the machines that run the rules, as a failover group (one node active, the
 * vips move: VRRP / CARP) or an active-active cluster (every node takes its share of new connections
 * by a hash of the client address). Target-neutral like the rest of the IR: which daemon or kernel
 * facility carries it out is decided by the targets (targets/tier/).
 *
 * Invariants the validator establishes for every consumer:
 * - 2 ≤ nodes ≤ MAX_NODES, names unique and matching NODE_NAME_RE, addresses canonical, unique, one family;
 * - sync-address on every node exactly when `sync` is given;
 * - interface names match the IR's interface alphabet; secret-file is an absolute path of safe characters;
 * - advert is a whole number of centiseconds (VRRPv3's unit) in [10ms, 40.95s];
 * - failover: every service has a host vip (that is what the group moves);
 * - active-active: every service is IPv4 on a host vip with only local backends (each node serves
 *   the vip itself), no gateway, no sync; the id range id … id+buckets−1 fits in 1-255.
 */
import type { DiagnosticBag, SourceLocation } from '../diagnostics/diagnostic.js';
import { describeNode, type SNode } from '../spec/ast.js';
import { MAX_ADVERT_MS, MAX_NODES, NODE_NAME_RE, printable } from '../spec/definition.js';
import { parseAddress } from './address.js';
import { MapReader } from './reader.js';
import type { Family, Service } from './types.js';

export { MAX_ADVERT_MS, MAX_NODES, NODE_NAME_RE };

export type TierMode = 'failover' | 'active-active';

export interface BalancerNode {
  /** Position in the spec's node list: the order that decides priorities. */
  index: number;
  name: string;
  /** The node's own address on the tier's interface (canonical). */
  address: string;
  /** The node's address on the sync link, when `sync` is given. */
  syncAddress: string | null;
  loc: SourceLocation;
}

export interface Balancers {
  mode: TierMode;
  /** VRRP virtual router id / CARP vhid of the first group; active-active uses id … id+buckets−1. */
  id: number;
  advertMs: number;
  /** Where the vips live (and, active-active, where every node receives the vip's traffic). */
  interface: string;
  /** The backends' default route, moved together with the vips (an address with its prefix length). */
  gateway: { interface: string; address: string; prefixLength: number; family: Family } | null;
  sync: { interface: string } | null;
  /** A file on each node holding the CARP key; read there when the interfaces are configured, never by lbc. */
  secretFile: string | null;
  /** Active-active: the multicast MAC every node answers ARP for the vips with; null: derived from the first vip. */
  mac: string | null;
  nodes: BalancerNode[];
  loc: {
    block: SourceLocation;
    mode: SourceLocation;
    id: SourceLocation;
    advert?: SourceLocation;
    interface: SourceLocation;
    gateway?: SourceLocation;
    sync?: SourceLocation;
    secretFile?: SourceLocation;
    mac?: SourceLocation;
    nodes: SourceLocation;
  };
}

/** Buckets of an active-active cluster: one per ordered pair of nodes (owner, the node that takes it over). */
export function bucketCount(nodes: number): number {
  return nodes * (nodes - 1);
}

export function readBalancers(node: SNode, bag: DiagnosticBag, services: readonly Service[]): Balancers | null {
  if (node.kind !== 'map') {
    bag.error('LBC2100', `"balancers" must be a mapping with mode, id, interface and nodes, not ${describeNode(node)}`, node.loc);
    return null;
  }
  const before = bag.items.length;
  const r = new MapReader(node, bag, 'balancers');
  const mode = r.oneOf<TierMode>('mode');
  if (!r.has('mode')) bag.error('LBC2101', 'balancers needs a "mode": failover or active-active', node.loc);
  const id = r.integer('id');
  if (!r.has('id')) bag.error('LBC2101', 'balancers needs an "id" (VRRP virtual router id / CARP vhid, 1-255)', node.loc);
  const iface = r.text('interface')?.value ?? null;
  if (!r.has('interface')) bag.error('LBC2101', 'balancers needs an "interface": where the vips live', node.loc);

  let advertMs = 1000;
  const adv = r.duration('advert', 'advert');
  if (adv && adv.value % 10 !== 0) bag.error('LBC2102', `advert must be a whole number of centiseconds (steps of 10ms: VRRPv3 counts centiseconds), not ${adv.value}ms`, adv.loc);
  else if (adv) advertMs = adv.value;

  const gateway = r.node('gateway') ? readGateway(r.node('gateway')!, bag) : null;
  const sync = r.node('sync') ? readSync(r.node('sync')!, bag) : null;
  const secretFile = r.text('secret-file')?.value ?? null;
  const mac = r.text('mac')?.value.toLowerCase() ?? null;

  const nodes = readNodes(r, node, bag, sync !== null);

  if (bag.items.slice(before).some((d) => d.severity === 'error') || !mode || !id || !iface || !nodes) return null;
  const b: Balancers = {
    mode: mode.value,
    id: id.value,
    advertMs,
    interface: iface,
    gateway,
    sync,
    secretFile,
    mac,
    nodes,
    loc: {
      block: node.loc,
      mode: mode.loc,
      id: id.loc,
      advert: r.loc('advert'),
      interface: r.loc('interface')!,
      gateway: r.loc('gateway'),
      sync: r.loc('sync'),
      secretFile: r.loc('secret-file'),
      mac: r.loc('mac'),
      nodes: r.loc('nodes')!,
    },
  };
  checkAgainstServices(b, services, bag);
  return bag.items.slice(before).some((d) => d.severity === 'error') ? null : b;
}

function readGateway(node: SNode, bag: DiagnosticBag): Balancers['gateway'] {
  if (node.kind !== 'map') {
    bag.error('LBC2105', `"gateway" must be a mapping such as { interface: eth1, address: 192.168.10.100/24 }, not ${describeNode(node)}`, node.loc);
    return null;
  }
  const r = new MapReader(node, bag, 'gateway');
  const iface = r.text('interface');
  if (!r.has('interface')) bag.error('LBC2105', 'the gateway needs an "interface" (where the backends reach it)', node.loc);
  const a = r.text('address');
  if (!r.has('address')) bag.error('LBC2105', 'the gateway needs an "address" with its prefix length, such as 192.168.10.100/24', node.loc);
  if (!a || !iface) return null;
  // An interface address: host bits are the point, so the halves are read apart rather than as a block.
  const slash = a.value.indexOf('/');
  const host = parseAddress(a.value.slice(0, slash), false);
  const len = Number(a.value.slice(slash + 1));
  if (!host.ok) {
    bag.error('LBC2106', `gateway address: ${host.message}`, a.loc, host.hint ? [host.hint] : undefined);
    return null;
  }
  const max = host.family === 'ipv4' ? 32 : 128;
  if (len < 1 || len > max) {
    bag.error('LBC2106', `the gateway's prefix length must be 1-${max}, not ${len}`, a.loc);
    return null;
  }
  return { interface: iface.value, address: host.prefix.address, prefixLength: len, family: host.family };
}

function readSync(node: SNode, bag: DiagnosticBag): Balancers['sync'] {
  if (node.kind !== 'map') {
    bag.error('LBC2107', `"sync" must be a mapping such as { interface: eth2 }, not ${describeNode(node)}`, node.loc);
    return null;
  }
  const r = new MapReader(node, bag, 'sync');
  const iface = r.text('interface');
  if (!r.has('interface')) bag.error('LBC2107', 'sync needs an "interface": the link the nodes exchange connection state on', node.loc);
  return iface ? { interface: iface.value } : null;
}

function readNodes(r: MapReader, block: SNode, bag: DiagnosticBag, withSync: boolean): BalancerNode[] | null {
  const list = r.node('nodes');
  if (!list) {
    bag.error('LBC2108', 'balancers needs a "nodes" list (at least two)', block.loc);
    return null;
  }
  if (list.kind !== 'seq' || list.items.length < 2 || list.items.length > MAX_NODES) {
    bag.error('LBC2108', `"nodes" must be a list of 2 to ${MAX_NODES} nodes, not ${describeNode(list)}`, list.loc);
    return null;
  }
  const out: BalancerNode[] = [];
  const names = new Map<string, SourceLocation>();
  const addrs = new Map<string, SourceLocation>();
  let family: Family | null = null;
  let syncFamily: Family | null = null;
  list.items.forEach((item, index) => {
    if (item.kind !== 'map') {
      bag.error('LBC2109', `each node must be a mapping such as { name: lb1, address: 192.0.2.2 }, not ${describeNode(item)}`, item.loc);
      return;
    }
    const nr = new MapReader(item, bag, 'node');
    const name = nr.text('name');
    if (!nr.has('name')) bag.error('LBC2109', 'a node needs a "name"', item.loc);
    else if (name) {
      const prev = names.get(name.value);
      if (prev) bag.error('LBC2110', `node name "${name.value}" is used twice (first at line ${prev.line})`, name.loc);
      names.set(name.value, name.loc);
    }
    const address = readNodeAddress(nr, 'address', bag, addrs, (f, loc) => {
      if (family && family !== f) bag.error('LBC2111', 'every node address must be of one family', loc);
      family ??= f;
    });
    if (!nr.has('address')) bag.error('LBC2109', 'a node needs an "address": its own address on the tier\'s interface', item.loc);
    let syncAddress: string | null = null;
    if (nr.has('sync-address') && !withSync) {
      bag.error('LBC2112', '"sync-address" needs a "sync" block in balancers (the interface the nodes exchange state on)', nr.keyLoc('sync-address')!);
    } else if (withSync) {
      syncAddress = readNodeAddress(nr, 'sync-address', bag, addrs, (f, loc) => {
        if (syncFamily && syncFamily !== f) bag.error('LBC2111', 'every sync-address must be of one family', loc);
        syncFamily ??= f;
      });
      if (!nr.has('sync-address')) bag.error('LBC2112', 'with "sync", every node needs a "sync-address" on the sync link', item.loc);
    }
    if (name && address) out.push({ index, name: name.value, address, syncAddress, loc: item.loc });
  });
  return out.length === list.items.length ? out : null;
}

function readNodeAddress(
  r: MapReader,
  key: string,
  bag: DiagnosticBag,
  seen: Map<string, SourceLocation>,
  family: (f: Family, loc: SourceLocation) => void,
): string | null {
  const s = r.string(key);
  if (!s) return null;
  const res = parseAddress(s.value, false);
  if (!res.ok) {
    bag.error('LBC2111', `${key}: ${res.message}`, s.loc, res.hint ? [res.hint] : undefined);
    return null;
  }
  const prev = seen.get(res.prefix.address);
  if (prev) {
    bag.error('LBC2111', `address ${res.prefix.address} is given twice (first at line ${prev.line}); every node has addresses of its own`, s.loc);
    return null;
  }
  seen.set(res.prefix.address, s.loc);
  family(res.family, s.loc);
  return res.prefix.address;
}

/** What the tier needs of the services it carries. */
function checkAgainstServices(b: Balancers, services: readonly Service[], bag: DiagnosticBag): void {
  const own = new Map<string, string>(b.nodes.flatMap((n) => [[n.address, `node ${n.name}`], ...(n.syncAddress ? [[n.syncAddress, `node ${n.name}'s sync-address`] as [string, string]] : [])]));
  if (b.gateway) own.set(b.gateway.address, 'the gateway');
  for (const svc of services) {
    if (!svc.vip || !svc.vip.isHost) {
      bag.error('LBC2120', `service "${svc.name}" needs a single-address vip: the ${b.mode === 'failover' ? 'failover group moves' : 'cluster shares'} its vips between the nodes`, svc.loc.vip ?? svc.loc.service, [
        svc.vip ? 'give the service one address (a /32 or /128); VRRP and CARP carry addresses, not blocks' : 'add a vip the nodes can carry',
      ]);
      continue;
    }
    const clash = own.get(svc.vip.address);
    if (clash) bag.error('LBC2121', `vip ${svc.vip.address} of service "${svc.name}" is ${clash}'s own address`, svc.loc.vip);
  }
  if (b.mac && b.mode !== 'active-active') {
    bag.error('LBC2104', '"mac" only applies to mode: active-active (a failover group moves the vips with their own MAC)', b.loc.mac ?? b.loc.block);
  }
  if (b.mode === 'active-active') {
    const at = (loc: SourceLocation | undefined) => loc ?? b.loc.block;
    if (b.gateway) {
      bag.error('LBC2122', 'an active-active cluster has no gateway to move: each node serves the vip itself', at(b.loc.gateway), [
        'remove "gateway", or use mode: failover for backends that route through the balancer',
      ]);
    }
    if (b.sync) {
      bag.error('LBC2122', 'an active-active cluster has no connection state to sync: every connection ends at the node that accepted it', at(b.loc.sync), [
        'remove "sync"; a node that dies takes its open connections with it, and its clients reconnect to the survivors',
      ]);
    }
    if (b.id + bucketCount(b.nodes.length) - 1 > 255) {
      bag.error('LBC2123', `${b.nodes.length} nodes need ${bucketCount(b.nodes.length)} virtual router ids (one per ordered pair of nodes) from id ${b.id}, past 255`, b.loc.id, [
        `use an id of at most ${256 - bucketCount(b.nodes.length)}`,
      ]);
    }
    for (const svc of services) {
      if (svc.family !== 'ipv4') {
        bag.error('LBC2124', `service "${svc.name}" is IPv6: an active-active cluster receives the vip's traffic on every node through a multicast MAC the vip resolves to by ARP, which IPv6 (neighbour discovery) does not offer`, svc.loc.vip ?? svc.loc.service, [
          'use mode: failover for IPv6 services',
        ]);
      }
      const remote = svc.backends.find((be) => be.address !== null);
      if (remote) {
        bag.error('LBC2125', `service "${svc.name}" has a backend on another host (${remote.address}); in an active-active cluster each node serves the vip itself, so backends are local ports (address omitted)`, remote.loc, [
          'a remote backend would send its replies to its one default gateway, not to the node that translated the connection (lbc writes no source NAT); use mode: failover with a gateway instead',
        ]);
      }
      if (svc.interface && svc.interface !== b.interface) {
        bag.error('LBC2126', `service "${svc.name}" is restricted to interface ${svc.interface}, but the cluster receives its vips on ${b.interface}`, svc.loc.interface, [
          `remove "interface" or set it to ${b.interface}`,
        ]);
      }
      if (svc.local) {
        bag.error('LBC2126', `service "${svc.name}" also balances connections made on the node itself (local: true); in an active-active cluster those would reach the node's own share only`, svc.loc.local);
      }
    }
  }
}
