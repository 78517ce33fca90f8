/**
 * What a parsed ipnat.conf / ipf.conf pair does to a new connection, as a
 * target-neutral model. The model follows the FreeBSD kernel, not the text:
 *
 * - rdr rules are found by destination (most specific mask first) and, among
 *   rules with the same left side, in list order; a round-robin rule that
 *   created a translation is moved to the tail of its hash bucket
 *   (sys/netpfil/ipfilter/netinet/ip_nat.c ipf_nat_add: "if ((move == 1) &&
 *   (np->in_flags & IPN_ROUNDR)) { ipf_nat_delrdr(); ipf_nat_addrdr(); }"), so
 *   rules sharing a left side take turns only when every one of them is
 *   round-robin; otherwise the first one always wins;
 * - one rule whose single left port maps to a right-side port range hands out
 *   the ports in turn (ip_nat.c ipf_nat_newrdr: in_odport == in_dtop, so
 *   nport = in_dpnext++ wrapping at in_dpmax); a left-side range maps port by
 *   offset instead;
 * - `sticky` (with round-robin or an A,B pair) remembers the rule that served
 *   a client (ipf_nat_hostmap keyed by source, destination and port; the
 *   entry dies with the client's last translation) — it pins the rule, so a
 *   rule that rotates ports does not pin the port;
 * - the filter sees the translated destination on the way in (fil.c
 *   ipf_check calls ipf_nat_checkin before ipf_firewall), and the `tag` of the
 *   rdr rule that translated it (ip_nat.c ipf_nat_in: fin_nattag = &np->in_tag),
 *   which an inbound rule with match-tag(nat=NAME) requires (fil.c ipf_scanlist).
 */
import { type AddrFamily, type MaskedAddress, prefixContains, prefixText } from './common.js';
import type { IpnatFile, IpnatRdr } from './ipnat.js';
import type { IpfFile, IpfRule } from './ipf.js';

/** Where a redirected connection ends up. */
export type PoolDestination =
  /** A backend host. */
  | { kind: 'host'; address: string }
  /** This host: 127.0.0.0/8, or the original destination kept (0/0 on the right side). */
  | { kind: 'local' };

export interface PoolMember {
  destination: PoolDestination;
  port: number;
  /** Turns this member gets in one full rotation. */
  turns: number;
  /** The destination the filter sees after translation (a prefix: 0/0 keeps the matched block). */
  translated: MaskedAddress;
  /** The tags of the rules that send here (null: a rule without tag). */
  tags: (string | null)[];
}

export interface RedirectMeaning {
  /** Inbound interface. */
  interface: string;
  family: AddrFamily;
  protocol: 'tcp' | 'udp' | 'tcp/udp';
  match: MaskedAddress;
  ports: { lo: number; hi: number };
  /** 'single': one destination; 'rotate': members take turns per new connection. */
  policy: 'single' | 'rotate';
  sticky: boolean;
  members: PoolMember[];
  lines: number[];
}

export interface IpnatMeaning {
  redirects: RedirectMeaning[];
  /** Things the model cannot express or that do not do what they seem to; empty for lbc output. */
  problems: string[];
}

function isZero(a: MaskedAddress): boolean {
  return a.prefixLength === 0;
}

function isLoopback(a: MaskedAddress): boolean {
  if (a.family === 'ipv4') return a.address.startsWith('127.');
  return a.address === '::1';
}

function memberKey(d: PoolDestination, port: number): string {
  return `${d.kind === 'host' ? d.address : 'local'}|${port}`;
}

/** The semantic model of an ipnat.conf rdr ruleset. */
export function ipnatMeaning(file: IpnatFile): IpnatMeaning {
  const problems: string[] = [];
  const groups = new Map<string, IpnatRdr[]>();
  for (const r of file.rules) {
    const key = [r.interfaces[0], r.interfaces[1] ?? '', r.family, String(r.protocol), prefixText(r.match), r.dport ? `${r.dport.lo}-${r.dport.hi}` : '*'].join(' ');
    const g = groups.get(key);
    if (g) g.push(r);
    else groups.set(key, [r]);
  }
  const redirects: RedirectMeaning[] = [];
  for (const rules of groups.values()) {
    const first = rules[0];
    const where = `line${rules.length > 1 ? 's' : ''} ${rules.map((r) => r.line).join(', ')}`;
    if (first.protocol !== 'tcp' && first.protocol !== 'udp' && first.protocol !== 'tcp/udp') {
      problems.push(`${where}: rdr without tcp/udp translates other protocols too`);
      continue;
    }
    if (!first.dport) {
      problems.push(`${where}: rdr without a port matches every port`);
      continue;
    }
    if (first.interfaces[1] !== null) problems.push(`${where}: an outbound interface is not modelled`);
    let used = rules;
    if (rules.length > 1 && rules.some((r) => !r.roundRobin)) {
      problems.push(`${where}: rules with the same left side take turns only when all are round-robin; here only line ${first.line} is ever used`);
      used = [first];
    }
    const stickies = new Set(used.map((r) => r.sticky));
    if (stickies.size > 1) problems.push(`${where}: sticky on some rules of a round-robin group only`);
    const sticky = used.every((r) => r.sticky);
    const members = new Map<string, PoolMember>();
    let turnsTotal = 0;
    const add = (destination: PoolDestination, port: number, translated: MaskedAddress, tag: string | null) => {
      turnsTotal++;
      const k = memberKey(destination, port);
      const m = members.get(k);
      if (m) {
        m.turns++;
        if (!m.tags.includes(tag)) m.tags.push(tag);
      } else members.set(k, { destination, port, turns: 1, translated, tags: [tag] });
    };
    for (const r of used) {
      if (r.frag || r.age || r.mssclamp !== null || r.proxy) problems.push(`line ${r.line}: frag/age/mssclamp/proxy are not modelled`);
      const single = r.dport!.lo === r.dport!.hi;
      let ports: number[];
      if (!r.nport) {
        if (!single) problems.push(`line ${r.line}: a left port range without a right port is not modelled`);
        ports = [r.dport!.lo];
      } else if (r.nport.fixed || r.nport.lo === r.nport.hi) {
        if (!single && !r.nport.fixed) problems.push(`line ${r.line}: a left port range shifts ports by offset; not modelled`);
        ports = [r.nport.lo];
      } else {
        if (!single) {
          problems.push(`line ${r.line}: a left port range with a right port range is not modelled`);
          continue;
        }
        ports = [];
        for (let p = r.nport.lo; p <= r.nport.hi; p++) ports.push(p);
        if (r.sticky) problems.push(`line ${r.line}: sticky pins the rule, not the port this rule rotates through`);
      }
      const hosts: MaskedAddress[] = [];
      if (r.to.kind === 'host') hosts.push(r.to.address);
      else if (r.to.kind === 'split') hosts.push(r.to.a, r.to.b);
      else {
        problems.push(`line ${r.line}: an address range on the right side is not modelled`);
        continue;
      }
      for (const h of hosts) {
        let dest: PoolDestination;
        let translated: MaskedAddress;
        if (isZero(h)) {
          // ip_nat.c ipf_nat_newrdr: "0/0 - use the original destination address/port".
          dest = { kind: 'local' };
          translated = r.match;
        } else if (isLoopback(h)) {
          if (h.family === 'ipv6') problems.push(`line ${r.line}: ::1 as a redirect target is dropped by ip6_input (loopback address on a non-loopback interface)`);
          dest = { kind: 'local' };
          translated = h;
        } else if (h.address === (h.family === 'ipv4' ? '0.0.0.0' : '::')) {
          problems.push(`line ${r.line}: 0/${h.prefixLength} (the interface address) is not modelled`);
          continue;
        } else {
          dest = { kind: 'host', address: h.address };
          translated = h;
        }
        for (const p of ports) add(dest, p, translated, r.tag);
      }
    }
    redirects.push({
      interface: first.interfaces[0],
      family: first.family,
      protocol: first.protocol,
      match: first.match,
      ports: first.dport,
      policy: turnsTotal > 1 ? 'rotate' : 'single',
      sticky,
      members: [...members.values()],
      lines: used.map((r) => r.line),
    });
  }
  return { redirects, problems };
}

export interface PassMeaning {
  interface: string | null;
  family: AddrFamily | null;
  protocol: IpfRule['protocol'];
  /** Destination prefix, or null for any. */
  dst: MaskedAddress | null;
  ports: { lo: number; hi: number } | null;
  keepState: boolean;
  quick: boolean;
  /** TCP flags test, e.g. "S/SA" (new connections only); null when absent. */
  flags: string | null;
  /** match-tag(nat=NAME): admits only what an rdr rule with that tag translated; null: anything. */
  natTag: string | null;
  line: number;
}

export interface IpfMeaning {
  passes: PassMeaning[];
  problems: string[];
}

function portRange(r: IpfRule): { lo: number; hi: number } | null | 'complex' {
  const p = r.dst?.port;
  if (!p) return null;
  switch (p.op) {
    case '=':
      return { lo: p.p1, hi: p.p1 };
    case ':':
      return { lo: p.p1, hi: p.p2! };
    case '><':
      return { lo: p.p1 + 1, hi: p.p2! - 1 };
    case '<':
      return { lo: 0, hi: p.p1 - 1 };
    case '<=':
      return { lo: 0, hi: p.p1 };
    case '>':
      return { lo: p.p1 + 1, hi: 65535 };
    case '>=':
      return { lo: p.p1, hi: 65535 };
    default:
      return 'complex';
  }
}

/** The inbound pass rules of an ipf.conf ruleset. */
export function ipfMeaning(file: IpfFile): IpfMeaning {
  const problems: string[] = [];
  const passes: PassMeaning[] = [];
  for (const r of file.rules) {
    if (r.action !== 'pass' || r.direction !== 'in') {
      problems.push(`line ${r.line}: only "pass in" rules are modelled`);
      continue;
    }
    if (r.src && (r.src.not || r.src.address || r.src.port)) problems.push(`line ${r.line}: source matching is not modelled`);
    if (r.dst?.not) problems.push(`line ${r.line}: negated destinations are not modelled`);
    const ports = portRange(r);
    if (ports === 'complex') {
      problems.push(`line ${r.line}: "!=" and "<>" port tests are not modelled`);
      continue;
    }
    passes.push({
      interface: r.interface,
      family: r.family,
      protocol: r.protocol,
      dst: r.dst?.address ?? null,
      ports,
      keepState: r.keep === 'state',
      quick: r.quick,
      flags: r.flags ? `${r.flags.set}${r.flags.mask ? `/${r.flags.mask}` : ''}` : null,
      natTag: r.natTag,
      line: r.line,
    });
  }
  return { passes, problems };
}

function protocolCovers(rule: PassMeaning['protocol'], p: 'tcp' | 'udp'): boolean {
  return rule === null || rule === p || rule === 'tcp/udp';
}

/**
 * Whether a pass rule lets a new connection to (prefix, port) in on the interface, keeping state for the
 * replies; `tag` is the tag of the rdr rule that translated it (null: none).
 */
export function passAdmits(pass: PassMeaning, iface: string, protocol: 'tcp' | 'udp', dst: MaskedAddress, port: number, tag: string | null = null): boolean {
  if (pass.natTag !== null && pass.natTag !== tag) return false;
  if (pass.interface !== null && pass.interface !== iface) return false;
  if (pass.family !== null && pass.family !== dst.family) return false;
  if (!protocolCovers(pass.protocol, protocol)) return false;
  if (pass.dst && !prefixContains(pass.dst, dst)) return false;
  if (pass.ports && (port < pass.ports.lo || port > pass.ports.hi)) return false;
  // A TCP SYN must pass the flags test; "S" alone (mask: all flags) would refuse ECN SYNs.
  if (protocol === 'tcp' && pass.flags !== null && pass.flags !== 'S/SA' && pass.flags !== 'S/AS') return false;
  return pass.keepState;
}

/**
 * Problems with a ruleset pair: a translated destination no quick pass rule
 * admits, or a pass rule that admits nothing the rdr rules produce (an
 * opening lbc did not ask for). Empty when the pair is consistent.
 */
export function filterCoverage(nat: IpnatMeaning, filter: IpfMeaning): string[] {
  const problems: string[] = [];
  const used = new Set<PassMeaning>();
  for (const rd of nat.redirects) {
    const protos: ('tcp' | 'udp')[] = rd.protocol === 'tcp/udp' ? ['tcp', 'udp'] : [rd.protocol];
    for (const m of rd.members) {
      for (const p of protos) {
        for (const tag of m.tags) {
          const ok = filter.passes.filter((ps) => ps.quick && passAdmits(ps, rd.interface, p, m.translated, m.port, tag));
          if (ok.length === 0) problems.push(`no quick pass rule admits ${p} to ${prefixText(m.translated)} port ${m.port} on ${rd.interface}${tag ? ` tagged ${tag}` : ''} (rdr line ${rd.lines.join(', ')})`);
          ok.forEach((x) => used.add(x));
        }
      }
    }
  }
  for (const ps of filter.passes) if (!used.has(ps)) problems.push(`pass rule at line ${ps.line} admits nothing the rdr rules produce`);
  return problems;
}
