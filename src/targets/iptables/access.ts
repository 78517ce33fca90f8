/**
 * Who may connect and on which ports, for the iptables layout (emit.ts calls these hooks).
 *
 * Allow lists. iptables refuses DROP in the nat table ("The nat table is not intended for filtering,
 * the use of DROP is therefore inhibited": iptables and iptables-restore, both backends), and a
 * client that is merely not translated would reach whatever the balancer itself runs on the vip.
 * So the refusal happens one hook earlier, in mangle PREROUTING (OUTPUT for local: true), which runs
 * before nat (priorities -150 and -100): the service's match jumps to a guard chain LBC-A-NAME that
 * returns for the clients of an ipset hash:net of the allow list and drops everyone else, before
 * translation. lbc's mangle chains see only a connection's first packet (the `! --ctstate NEW`
 * return at their top), as the nat table does: a dropped first packet leaves no conntrack entry, so
 * every retransmission is judged again, and established connections cost nothing.
 * Mangle has no dispatch precedence of its own, so a guard of a CIDR or vip-less service first returns
 * for the packets a more specific service takes in nat (a host vip inside the block, or one written
 * before it among the CIDR and vip-less services): those are that service's to judge.
 * The set is filled beside a copy and swapped in (`ipset swap`), so a reload never leaves it empty
 * for a moment; it is created with the largest size an allow list may have, so its parameters never
 * change and `ipset restore -exist` always accepts it.
 *
 * Several ports. Dispatch matches `-m multiport --dports` (at most 15 ports a rule, a range counting
 * as two: libxt_multiport), one rule per chunk, all jumping to the service's one chain, so the ports
 * share its nth counters and affinity sets. A backend without a port of its own keeps the client's
 * destination port: DNAT to an address without a port, REDIRECT without --to-ports.
 */
import type { Backend, Service } from '../../ir/types.js';
import { hasSeveralPorts } from '../../ir/types.js';
import { MAX_ALLOW } from '../../spec/definition.js';
import { rangesOverlap } from '../../ir/ports.js';
import { bitsOf } from '../../ir/address.js';
import type { Flavor } from './emit.js';

/** multiport's limit per rule (XT_MULTI_PORTS), a range taking two. */
const MULTIPORT_MAX = 15;

export const guardChain = (svc: Service): string => `LBC-A-${svc.name}`;
export const allowSetName = (flavor: Flavor, svc: Service): string => `${flavor.setPrefix}A-${svc.name}`;
const freshSetName = (flavor: Flavor, svc: Service): string => `${flavor.setPrefix}N-${svc.name}`;

/** The port matches of a service: one, or one per multiport chunk. */
export function portMatches(svc: Service): string[] {
  const p = svc.protocol;
  if (!hasSeveralPorts(svc)) return [`-p ${p} -m ${p} --dport ${svc.port}`];
  const chunks: string[][] = [[]];
  let used = 0;
  for (const r of svc.ports) {
    const cost = r.from === r.to ? 1 : 2;
    if (used + cost > MULTIPORT_MAX) {
      chunks.push([]);
      used = 0;
    }
    chunks[chunks.length - 1].push(r.from === r.to ? `${r.from}` : `${r.from}:${r.to}`);
    used += cost;
  }
  return chunks.map((c) => `-p ${p} -m multiport --dports ${c.join(',')}`);
}

/** Whether DNAT/REDIRECT must name no port, so the connection keeps the one the client chose. */
export const keepsPort = (b: Backend): boolean => b.keepsPort;

/** ipset restore lines for the allow set of a service: filled aside, then swapped in. */
export function allowSetLines(flavor: Flavor, svc: Service): string[] {
  if (!svc.allow) return [];
  const fam = svc.family === 'ipv4' ? 'inet' : 'inet6';
  const live = allowSetName(flavor, svc);
  const fresh = freshSetName(flavor, svc);
  const create = (n: string) => `create ${n} hash:net family ${fam} maxelem ${MAX_ALLOW}`;
  return [
    create(live),
    create(fresh),
    `flush ${fresh}`,
    ...svc.allow.map((p) => `add ${fresh} ${p.address}/${p.prefixLength}`),
    `swap ${fresh} ${live}`,
    `destroy ${fresh}`,
  ];
}

/** Could a packet to `s` also be addressed to `t`'s vip (same family, protocol, a port in common)? */
function mayMeet(s: Service, t: Service): boolean {
  if (s.family !== t.family || s.protocol !== t.protocol || !rangesOverlap(s.ports, t.ports)) return false;
  if (!s.vip || !t.vip) return true;
  const len = Math.min(s.vip.prefixLength, t.vip.prefixLength);
  return bitsOf(s.vip.address, s.family).slice(0, len) === bitsOf(t.vip.address, t.family).slice(0, len);
}

/**
 * The services nat dispatch tries before `svc` and that may take a packet `svc` matches: every host
 * vip (they come first), then the CIDR and vip-less services written before it (spec order).
 * A host-vip service has none: no other service shares its vip and a port.
 */
export function shadowing(svc: Service, dispatched: readonly Service[]): Service[] {
  if (svc.vip?.isHost) return [];
  const before = dispatched.slice(0, Math.max(0, dispatched.indexOf(svc)));
  return [
    ...dispatched.filter((t) => t !== svc && t.vip?.isHost && mayMeet(svc, t)),
    ...before.filter((t) => !t.vip?.isHost && mayMeet(svc, t)),
  ];
}

/**
 * The rules of the guard chain: return for packets a more specific service takes (`matchOf` gives a
 * service's full dispatch matches), return for allowed clients, drop the rest.
 */
export function guardRules(flavor: Flavor, svc: Service, shadows: readonly Service[], matchOf: (s: Service) => string[]): string[] {
  const chain = guardChain(svc);
  return [
    ...shadows.flatMap((t) => matchOf(t).map((m) => `-A ${chain} ${m} -j RETURN`)),
    `-A ${chain} -m set --match-set ${allowSetName(flavor, svc)} src -j RETURN`,
    `-A ${chain} -j DROP`,
  ];
}
