/**
 * Names that tie kernel objects of UDP associations to a backend by its address (not its position
 * in the list), so a backend keeps its sets when others are added or removed around it.
 */
import { createHash } from 'node:crypto';
import { v4ToInt, v6ToBigInt } from '../ir/address.js';
import type { Family, Service } from '../ir/types.js';
import type { Support } from './target.js';

/** The address as hexadecimal digits: 8 for IPv4, 32 for IPv6. */
export function addressHex(address: string, family: Family): string {
  return family === 'ipv4' ? v4ToInt(address).toString(16).padStart(8, '0') : v6ToBigInt(address).toString(16).padStart(32, '0');
}

/**
 * 8 hexadecimal digits naming a backend where names are short (ipset: 31 characters): the address
 * itself for IPv4, a digest of it for IPv6, salted until it differs from the other backends' tags
 * (`taken`), so two backends of a service never share a name.
 */
export function shortAddressTag(address: string, family: Family, taken: ReadonlySet<string>): string {
  if (family === 'ipv4') return addressHex(address, family);
  for (let salt = 0; ; salt++) {
    const tag = createHash('sha256').update(`${address}#${salt}`).digest('hex').slice(0, 8);
    if (!taken.has(tag)) return tag;
  }
}

/**
 * source-nat on a Linux target that keeps associations by `how`: a backend's reply to the balancer's own
 * address names no client, so it cannot be sent back through the association.
 */
export function sourceNatBesideAssociations(how: string): (svc: Service) => Support {
  return (svc) =>
    svc.associations
      ? {
          level: 'no',
          why: `associations keep their backend in ${how}, and a backend's reply to the balancer's own address cannot be traced back to its client that way`,
          instead: "route the backends' replies through the balancer (default route or a route for the client networks) and drop source-nat, or drop associations (conntrack then keeps each flow on its backend)",
        }
      : { level: 'yes', note: 'by the backend a connection was sent to: masquerade or snat in nat postrouting, for destination-NATed connections only' };
}
