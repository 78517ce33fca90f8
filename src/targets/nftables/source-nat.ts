/**
 * Source NAT towards the backends (`source-nat`), for lbc's table inet lbc: a nat postrouting chain
 * that looks up where a destination-NATed connection now goes — backend address, protocol and port —
 * in one verdict map per family, whose element jumps to `masquerade` (the address of the interface
 * the packet leaves by) or to `snat to ADDRESS`. nft(8) NAT STATEMENTS: both act on a connection's
 * first packet; conntrack translates the rest and the replies.
 * Why the backend and not the vip the client used: nft 1.0.6 cannot put `ct original proto-dst` in a
 * concatenation ("can not use variable sized data types"), so the original port cannot be a map key;
 * validation makes services that share a backend agree on their source NAT (ir/validate.ts, LBC2152).
 * `ct status dnat` keeps the map to connections something translated, never to traffic that was
 * addressed to the backend in the first place.
 */
import type { Family, Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import { addressHex } from '../associations.js';

export interface SourceNatLayout {
  maps: Array<{ name: string; type: string; elements: string[] }>;
  chains: Array<{ name: string; rules: string[] }>;
  /** Rules of the nat postrouting base chain. */
  rules: string[];
}

const ip = (f: Family) => (f === 'ipv4' ? 'ip' : 'ip6');

export function buildSourceNat(services: readonly Service[]): SourceNatLayout | null {
  const natted = services.filter((s) => s.sourceNat);
  if (natted.length === 0) return null;
  const out: SourceNatLayout = { maps: [], chains: [], rules: [] };
  const chains = new Map<string, string[]>();
  for (const family of ['ipv4', 'ipv6'] as Family[]) {
    const elements = new Map<string, string>();
    for (const s of natted.filter((x) => x.family === family)) {
      const nat = s.sourceNat!;
      const chain = nat.kind === 'masquerade' ? 'snat_masquerade' : `snat_${addressHex(nat.address, family)}`;
      if (!chains.has(chain)) chains.set(chain, [nat.kind === 'masquerade' ? 'masquerade' : `snat ${ip(family)} to ${nat.address}`]);
      // Backends on this host are delivered locally and never reach postrouting; backups are in the
      // agent's re-renders, where they are primaries.
      for (const b of primaries(s)) if (b.address !== null) elements.set(`${b.address} . ${s.protocol} . ${b.port}`, `goto ${chain}`);
    }
    if (elements.size === 0) continue;
    const name = `snat${family === 'ipv4' ? '4' : '6'}`;
    out.maps.push({ name, type: `type ${family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr'} . inet_proto . inet_service : verdict`, elements: [...elements].map(([k, v]) => `${k} : ${v}`) });
    out.rules.push(`ct status dnat ${ip(family)} daddr . meta l4proto . th dport vmap @${name}`);
  }
  for (const [name, rules] of chains) out.chains.push({ name, rules });
  return out;
}
