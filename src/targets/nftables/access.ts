/**
 * Who may connect and on which ports, for the nftables layout (layout.ts calls these hooks).
 *
 * Allow lists. A service with `allow` gets a named interval set of the client blocks and, as the
 * first rule of its chain, `ip saddr != @allow_NAME drop`: a client outside the list is dropped
 * before translation. The service chain is where its traffic is already told apart from every other
 * service's (dispatch precedence, interface), so the rule needs no match of its own, and drop is a
 * valid verdict in a nat chain (nft(8), CHAINS; unlike iptables, whose nat table refuses DROP). Only
 * a connection's first packet traverses the nat hook; a dropped first packet leaves no conntrack
 * entry, so each retransmission is judged again, and allowed connections are never looked at after
 * their first packet. One set per service, named, with one rule referring to it: the kernel walks a
 * set's elements each time a rule binds it (nf_tables_bind_set()), so a set shared by many chains
 * would load quadratically. `flags interval` makes the set an rbtree of ranges: 10,000 blocks are
 * 10,000 elements, and the IR's list has no block inside another, which an interval set would refuse.
 * Services with an allow list keep a chain of their own (no shared selection map).
 *
 * Several ports. A service's dispatch entries are one per port or range, all leading to its one
 * chain, so every port shares the service's rotation counter and affinity sets. Ranges need an
 * interval map; the host-vip and vip-less dispatch maps are plain (faster to load), so services with a
 * range go to interval maps of their own, looked up right after the plain map of their kind, which
 * keeps the precedence host vip, CIDR vip, no vip. A backend without a port of its own keeps the
 * client's destination port: dnat/redirect without a port leave it as it is (nft(8), NAT STATEMENTS).
 */
import type { Backend, Service } from '../../ir/types.js';
import { hasSeveralPorts } from '../../ir/types.js';

export interface AllowSet {
  name: string;
  service: string;
  type: 'ipv4_addr' | 'ipv6_addr';
  elements: string[];
}

export const allowSetName = (svc: Service): string => `allow_${svc.name}`;

/** The service's allow set, or null. */
export function allowSet(svc: Service): AllowSet | null {
  if (!svc.allow) return null;
  return {
    name: allowSetName(svc),
    service: svc.name,
    type: svc.family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr',
    elements: svc.allow.map((p) => (p.isHost ? p.address : `${p.address}/${p.prefixLength}`)),
  };
}

/** The first rule of the service chain: clients outside the list are dropped. */
export function allowRule(svc: Service): string[] {
  if (!svc.allow) return [];
  return [`${svc.family === 'ipv4' ? 'ip' : 'ip6'} saddr != @${allowSetName(svc)} drop`];
}

/** The dispatch key's port part, one per port or range of the service. */
export function portKeys(svc: Service): string[] {
  return svc.ports.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`));
}

/** A port range among the service's ports: its dispatch entries need an interval map. */
export function needsIntervalMap(svc: Service): boolean {
  return svc.ports.some((r) => r.from !== r.to);
}

/** Services whose selection the shared maps cannot hold: they need a chain of their own. */
export function needsOwnChain(svc: Service): boolean {
  return svc.allow !== null || hasSeveralPorts(svc);
}

/** dnat/redirect leave the destination port alone: the backend has the service's one port, or keeps the client's. */
export function keepsDestinationPort(svc: Service, b: Backend): boolean {
  return b.keepsPort || (!hasSeveralPorts(svc) && b.port === svc.port);
}
