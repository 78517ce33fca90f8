/**
 * Pieces both pf targets share: names, loopback addresses, pool shapes and
 * the rule head. Sources cited inline: FreeBSD and OpenBSD pf.conf(5),
 * sbin/pfctl/parse.y, sys/netpfil/pf/pf_lb.c, sys/netpfil/pf/pf.c.
 */
import { createHash } from 'node:crypto';
import { intToV4, v4ToInt, v6FromBigInt, v6ToBigInt } from '../../ir/address.js';
import type { Backend, Family, Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import type { Support } from '../target.js';
import { commentText } from '../text.js';
import { backendPortKey, isContiguous, joinedRanges, portsText } from '../../ir/ports.js';
import { allowTableName } from './allow.js';
import { reduceWeights, smoothOrder as smoothTurns } from '../weights.js';

/** lbc's table and tag names; service names are at most 16 characters, so these fit PF_TABLE_NAME_SIZE (32). */
export const poolName = (svc: Service): string => `lbc-${svc.name}`;

export function loopback(family: Family): string {
  return family === 'ipv4' ? '127.0.0.1' : '::1';
}

export function backendAddress(svc: Service, b: Backend): string {
  return b.address ?? loopback(svc.family);
}

/**
 * A deterministic source-hash key: without one pfctl draws a random key at
 * every load (pf.conf(5) POOL OPTIONS; parse.y hashkey), which would move
 * every client to another backend on each reload. 32 hex digits as parse.y wants.
 */
export function hashKey(svc: Service): string {
  return '0x' + createHash('md5').update(`lbc/${svc.name}`).digest('hex');
}

/** Same port and weight on every primary: one pool can carry the service. */
export function isUniform(svc: Service): boolean {
  const p = primaries(svc);
  return p.every((b) => backendPortKey(b) === backendPortKey(p[0]) && b.weight === p[0].weight);
}

/**
 * The redirection port of a backend: its own, or — keeping the client's port on a service with several
 * (consecutive) ports — `LO:*`, a proxy range as wide as the matched LO:HI and starting at LO, which
 * maps every port to itself (pf.conf(5) TRANSLATION, "port 4000:*"; pf_lb.c PF_RDR:
 * nport = (dport − dst.port[0]) % size + proxy_port[0]).
 */
export function poolPort(svc: Service, b: Backend): string {
  return b.keepsPort ? `${svc.ports[0].from}:*` : `${b.port}`;
}

/** The primaries' distinct (address, port) endpoints; port as poolPort() writes it. */
export function endpoints(svc: Service): { address: string; port: string }[] {
  const seen = new Map<string, { address: string; port: string }>();
  for (const b of primaries(svc)) {
    const address = backendAddress(svc, b);
    seen.set(`${address}|${poolPort(svc, b)}`, { address, port: poolPort(svc, b) });
  }
  return [...seen.values()];
}

/** The destination port of a service's rules: one port, or one block of consecutive ones as LO:HI. */
export function portMatch(svc: Service): string {
  const [r] = joinedRanges(svc.ports);
  return r.from === r.to ? `${r.from}` : `${r.from}:${r.to}`;
}

/**
 * Several ports: one pf rule catches one block of consecutive ports and keeps one rotation (its
 * pool's) and one set of source nodes for it. A list with gaps would be a rule per block (pfctl
 * expands `port { … }` into one rule per port), each rotating and keeping affinity on its own.
 */
export function portsSupport(svc: Service): Support {
  if (isContiguous(svc.ports)) return { level: 'yes', note: `one rule catches ports ${portMatch(svc)}, with one rotation for all of them` };
  return {
    level: 'no',
    why: `ports ${portsText(svc.ports)} are not one block of consecutive ports; pf would need a rule per block (pfctl expands port lists into a rule per port), each with a rotation and source nodes of its own, not the one rotation lbc gives a service`,
    instead: 'write one service per block of consecutive ports, or use --target nftables or iptables',
  };
}

function toBig(a: string): bigint {
  return a.includes(':') ? v6ToBigInt(a) : BigInt(v4ToInt(a));
}

/**
 * The one CIDR block whose addresses are exactly the primaries' addresses
 * (each once), or null. random, source-hash and bitmask pick inside a single
 * block (pf.conf(5) POOL OPTIONS: "a single redirection address which has a
 * subnet mask smaller than 32"), every address of the block counting once.
 */
export function exactBlock(svc: Service): { address: string; prefixLength: number } | null {
  const addrs = primaries(svc).map((b) => backendAddress(svc, b));
  if (new Set(addrs).size !== addrs.length) return null;
  const n = addrs.length;
  if ((n & (n - 1)) !== 0) return null;
  const bits = svc.family === 'ipv4' ? 32 : 128;
  const host = Math.log2(n);
  const nums = addrs.map(toBig).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const start = nums[0];
  if (start % BigInt(n) !== 0n) return null;
  if (!nums.every((x, i) => x === start + BigInt(i))) return null;
  const address = svc.family === 'ipv4' ? intToV4(Number(start)) : v6FromBigInt(start);
  return { address, prefixLength: bits - host };
}


/** Largest inline list lbc writes for weights by repetition. */
export const MAX_REPEATED_ENTRIES = 64;

export function reducedWeights(svc: Service): number[] {
  return reduceWeights(primaries(svc).map((b) => b.weight));
}

/**
 * Smooth weighted round-robin order (each step picks the largest running
 * credit), so repeated entries interleave instead of coming in bursts.
 */
export function smoothOrder<T>(items: T[], weights: number[]): T[] {
  return smoothTurns(weights).map((i) => items[i]);
}

/** "12.5%": four decimals at most; pfctl reads it with strtod and scales to UINT_MAX (parse.y probability). */
export function percent(p: number): string {
  return `${Number((p * 100).toFixed(4))}%`;
}

/**
 * Conditional probabilities of a first-match cascade: rule i takes w_i of the
 * weight still unassigned, the last rule takes the rest (no probability).
 */
export function cascade(weights: number[]): (number | null)[] {
  let rest = weights.reduce((s, x) => s + x, 0);
  return weights.map((w, i) => {
    if (i === weights.length - 1) return null;
    const p = w / rest;
    rest -= w;
    return p;
  });
}

/** `[on IF] inet|inet6 proto P from any to DEST port N` */
export function matchText(svc: Service): string {
  const on = svc.interface ? `on ${svc.interface} ` : '';
  const af = svc.family === 'ipv4' ? 'inet' : 'inet6';
  // vip null with an interface: `(IF)` follows the interface's addresses as they change (pf.conf(5) PARAMETERS).
  const dest = svc.vip ? (svc.vip.isHost ? svc.vip.address : `${svc.vip.address}/${svc.vip.prefixLength}`) : `(${svc.interface})`;
  return `${on}${af} proto ${svc.protocol} from any to ${dest} port ${portMatch(svc)}`;
}

/**
 * Per-rule sticky timeout. `set timeout src.track` is global; instead the
 * timeout is a state option of the rule that creates the state: pfctl accepts
 * any dotted timeout name there (parse.y state_opt_item), and the kernel
 * takes a source node's expiry from that rule (pf.c pf_src_tree_remove_state:
 * s->rule.ptr->timeout[PFTM_SRC_NODE], applied to nat_src_node too). So
 * services with different sticky timeouts do not fight over one global value.
 */
export function keepState(svc: Service): string {
  return svc.sticky ? `keep state (src.track ${svc.sticky.timeoutSeconds})` : 'keep state';
}

/**
 * IPv6 local backends are refused on every pf target: ::1 is dropped by the IPv6 input path when it
 * arrives on another interface (ip6_input.c address-scope check), so the rule could never deliver.
 */
export function localBackendSupport(svc: Service, ipv4Note: string): Support {
  if (svc.family === 'ipv6') {
    return {
      level: 'no',
      why: 'an IPv6 local backend would be redirected to ::1, and the IPv6 input path drops packets for the loopback address that arrive on any other interface (ip6_input.c address-scope check), so the rule could never deliver',
      instead: 'list the instance under an IPv6 address of this host (e.g. the vip itself) as an ordinary backend address',
    };
  }
  return { level: 'yes', note: ipv4Note };
}

/** BSD interface names start with a letter; ':' and '-' would be read as modifiers in `(IF)`. */
export function interfaceSupport(svc: Service): Support {
  if (svc.interface && !/^[A-Za-z][A-Za-z0-9_.]{0,14}$/.test(svc.interface)) {
    return {
      level: 'no',
      why: `interface name "${svc.interface}" is not a BSD interface name pf.conf can take (letter first, then letters, digits, '.', '_')`,
      instead: 'use the BSD name of the interface (e.g. em0, vtnet0, lagg0)',
    };
  }
  return { level: 'yes' };
}

/**
 * Where source NAT sends a connection from: `(IF)`, the address of the service's interface (the
 * balancer beside its servers on one network, the one-arm case source NAT is for), or the address.
 * pf.conf(5) TRANSLATION: "(interface)" follows the interface's address as it changes.
 */
export function sourceNatTarget(svc: Service): string | null {
  if (!svc.sourceNat) return null;
  return svc.sourceNat.kind === 'masquerade' ? `(${svc.interface})` : svc.sourceNat.address;
}

/** pf needs an interface to take an address from for masquerade. */
export function sourceNatSupport(svc: Service): Support {
  if (svc.sourceNat?.kind === 'masquerade' && !svc.interface) {
    return {
      level: 'no',
      why: 'pf translates to an interface\'s address only when told which interface ("-> (em0)"), and this service has none',
      instead: 'give the service an `interface` (in a one-arm setup the one its clients and backends share), or write `source-nat: ADDRESS`',
    };
  }
  return { level: 'yes', note: 'a nat rule for the connections the service\'s rules tagged, on their way out to the backends' };
}

export function serviceComment(svc: Service, target: string): string[] {
  const dest = svc.vip ? `${svc.vip.address}${svc.vip.isHost ? '' : `/${svc.vip.prefixLength}`}` : svc.interface ? `(${svc.interface})` : 'any';
  const lines = [
    `service ${svc.name}: ${svc.protocol} ${dest} port ${portsText(svc.ports)}, mode ${svc.mode}${svc.sticky ? `, sticky ${svc.sticky.timeoutSeconds}s` : ''}` +
      `${svc.allow ? `, only from the ${svc.allow.length} client block(s) of <${allowTableName(svc)}>` : ''}`,
  ];
  for (const b of svc.backends) {
    const addr = b.address ?? `${loopback(svc.family)} (on this host)`;
    lines.push(`  backend ${addr} ${b.keepsPort ? 'on the client\'s port' : `port ${b.port}`} weight ${b.weight}${b.backup ? ' backup: not in this ruleset' : ''}`);
  }
  if (svc.backends.some((b) => b.backup)) {
    lines.push('  backups are not in this static ruleset; where the pool is a table, the health agent or relayd can put them in when every primary is down');
  }
  if (primaries(svc).some((b) => b.address === null)) {
    lines.push(`  local backends: redirected to ${loopback(svc.family)}; pf.conf(5) warns this lets outside hosts reach daemons bound only to loopback`);
    if (svc.family === 'ipv6') lines.push('  redirecting IPv6 to ::1 has not been tried on a BSD kernel by lbc');
  }
  void target;
  return lines.map(commentText);
}
