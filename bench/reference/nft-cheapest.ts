/**
 * Reference layout (b): the cheapest nftables layout to load that was measured for this kernel —
 * one map for all services, keyed by destination address, port and a random slot, and one rule:
 *   dnat ip to ip daddr . tcp dport . numgen random mod 8 map @backends
 * It has no per-service chain at all, so it only expresses equal-weight random choice over exactly
 * 8 backends per service; it is a floor for load time, not a layout lbc could emit for every spec.
 * (`typeof` keys a map by the expressions themselves; `flags interval` as in the measured layout.)
 */
import { BACKENDS_PER_SERVICE, type GenService } from '../lib/gen.js';

export function nftCheapest(services: GenService[]): string {
  const elems: string[] = [];
  for (const s of services) {
    s.backends.forEach((b, j) => elems.push(`\t\t\t${s.vip} . ${s.port} . ${j} : ${b.address} . ${b.port},`));
  }
  return [
    'table ip lbcref {}',
    'delete table ip lbcref',
    'table ip lbcref {',
    '\tmap backends {',
    `\t\ttypeof ip daddr . tcp dport . numgen random mod ${BACKENDS_PER_SERVICE} : ip daddr . tcp dport`,
    '\t\tflags interval',
    '\t\telements = {',
    ...elems,
    '\t\t}',
    '\t}',
    '\tchain prerouting {',
    '\t\ttype nat hook prerouting priority -100; policy accept;',
    `\t\tmeta l4proto tcp dnat ip to ip daddr . tcp dport . numgen random mod ${BACKENDS_PER_SERVICE} map @backends`,
    '\t}',
    '}',
    '',
  ].join('\n');
}
