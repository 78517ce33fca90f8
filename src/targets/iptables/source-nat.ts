/**
 * Source NAT towards the backends (`source-nat`) for iptables / ip6tables: rules in nat LBC-POSTROUTING
 * for connections that were destination-NATed (`-m conntrack --ctstate DNAT`) and now go to a backend
 * of a service with source-nat: MASQUERADE (the address of the outgoing interface) or SNAT to the
 * address (iptables-extensions(8)). They see a connection's first packet only; conntrack does the rest.
 * Matched by the backend (address, protocol, port), as nftables does: services sharing a backend agree
 * on their source NAT (ir/validate.ts, LBC2152). One rule per backend, walked by every new connection
 * leaving the balancer: for thousands of NATed services, nftables' single map lookup scales better.
 */
import type { Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import type { Flavor } from './emit.js';

export function sourceNatRules(flavor: Flavor, services: readonly Service[]): string[] {
  const out = new Map<string, string>();
  for (const s of services) {
    if (!s.sourceNat || s.family !== flavor.family) continue;
    const to = s.sourceNat.kind === 'masquerade' ? '-j MASQUERADE' : `-j SNAT --to-source ${s.sourceNat.address}`;
    for (const b of primaries(s)) {
      // A port on this host is delivered locally: it never reaches POSTROUTING.
      if (b.address === null) continue;
      const rule = `-A LBC-POSTROUTING -d ${b.address}/${s.family === 'ipv4' ? 32 : 128} -p ${s.protocol} -m ${s.protocol} --dport ${b.port} -m conntrack --ctstate DNAT ${to}`;
      out.set(`${b.address}|${s.protocol}|${b.port}`, rule);
    }
  }
  return [...out.values()];
}
