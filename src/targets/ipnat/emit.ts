/**
 * IR -> ipnat.rules (rdr rules) and ipf.rules (the pass rules the translated
 * traffic needs). Only called with services the capability table accepted:
 * every service has an interface, a vip, mode nth.
 *
 * Forms used (FreeBSD ipnat.5 / ipnat_y.y, sys/netpfil/ipfilter/netinet/ip_nat.c):
 * - one backend:        rdr IF VIP/LEN port P -> ADDR port BP tcp
 * - several backends on one address with consecutive ports, equal weights,
 *   no sticky:          rdr IF VIP/LEN port P -> ADDR port LO-HI tcp
 *   One rule; each new connection gets the next port (ipf_nat_newrdr:
 *   with a single left port, nport = in_dpnext++ wrapping at in_dpmax).
 * - otherwise:          one `round-robin` rule per turn with the same left side;
 *   the rule that made a translation moves to the end of its hash bucket
 *   (ipf_nat_add), so the rules take turns in file order. A weight w is w
 *   rules; identical rules are refused by the kernel (SIOCADNAT: EEXIST from
 *   ipf_nat_cmp_rules), and each rule's `tag` (below) tells repeats apart.
 * - Every rdr rule carries a `tag` (ipnat_y.y rdroptions), which the kernel
 *   puts on every packet the rule translates (ip_nat.c ipf_nat_in:
 *   fin_nattag = &np->in_tag); each pass rule in ipf.rules requires that tag
 *   with match-tag(nat=TAG) (ipf_y.y intag, after keep state; fil.c
 *   ipf_scanlist skips an inbound rule whose fr_nattag differs), so it admits
 *   exactly the redirected connections, not any traffic addressed to a
 *   backend. Tags are `lbc` + 7 hex digits of the service name's SHA-256
 *   (+ `_N` for the N-th rule to the same backend): at most 15 characters,
 *   which ipnat and ipf both keep whole, and only letters, digits and `_`,
 *   which their lexer (sbin/ipf/common/lexer.c) reads as one word.
 * - `sticky` needs round-robin (ipnat_y.y: "'sticky' for use with
 *   round-robin/IP splitting only"); it pins the rule, so sticky services
 *   always use one rule per turn.
 * - The filter sees the translated destination (fil.c: ipf_nat_checkin runs
 *   before the filter rules), so ipf.rules passes the backends, not the vip.
 *   `flags S/SA` rather than `flags S`: the latter compares all flag bits and
 *   would refuse SYNs carrying ECN bits.
 */
import { createHash } from 'node:crypto';
import type { Backend, IR, Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import type { OutputFile } from '../target.js';
import { renderTemplate } from '../template.js';
import { commentText, headerLines } from '../text.js';
import { reducedWeights } from './capabilities.js';
import { smoothOrder } from '../weights.js';

interface Block {
  title: string;
  notes: string[];
  rules: string[];
}

/** Where a backend's traffic is sent: the text after "->" and the destination the filter then sees. */
function destinationOf(svc: Service, b: Backend): { rhs: string; filterDst: string } {
  const vip = svc.vip!;
  if (b.address !== null) return { rhs: b.address, filterDst: `${b.address}/${svc.family === 'ipv4' ? 32 : 128}` };
  // Local listener. IPv4: 127.0.0.1 as in ipnat.5's own example. IPv6: ::1 would be
  // dropped by ip6_input (loopback destination on a non-loopback interface), so
  // ::0/0 keeps the original destination (ipf_nat6_newrdr "0/0 - use the original
  // destination address/port") and only the port changes.
  if (svc.family === 'ipv4') return { rhs: '127.0.0.1', filterDst: '127.0.0.1/32' };
  return { rhs: '::0/0', filterDst: `${vip.address}/${vip.prefixLength}` };
}


/** The tag of the `copy`-th rdr rule of `svc` to one backend (see the header). */
export function natTag(svc: Service, copy: number): string {
  const base = `lbc${createHash('sha256').update(svc.name).digest('hex').slice(0, 7)}`;
  return copy === 1 ? base : `${base}_${copy}`;
}

function consecutivePorts(backends: Backend[]): boolean {
  return backends.every((b, i) => b.port === backends[0].port + i);
}

function serviceBlocks(svc: Service): { nat: Block; filter: Block } {
  const vip = svc.vip!;
  const iface = svc.interface!;
  const fam = svc.family === 'ipv6' ? ' inet6' : '';
  const left = `rdr ${iface}${fam} ${vip.address}/${vip.prefixLength} port ${svc.port} ->`;
  const proto = svc.protocol;
  const prim = primaries(svc);
  const dests = prim.map((b) => destinationOf(svc, b));
  const notes: string[] = [];
  const rules: string[] = [];
  /** (filter destination, port, tag) the rules send traffic to, in order of first use. */
  const targets: { dst: string; port: number; tag: string }[] = [];
  const target = (dst: string, port: number, tag: string) => {
    if (!targets.some((t) => t.dst === dst && t.port === port && t.tag === tag)) targets.push({ dst, port, tag });
  };

  const sameDest = dests.every((d) => d.rhs === dests[0].rhs);
  const equalWeights = prim.every((b) => b.weight === prim[0].weight);
  if (prim.length > 1 && sameDest && equalWeights && !svc.sticky && consecutivePorts(prim)) {
    const lo = prim[0].port;
    const hi = prim[prim.length - 1].port;
    notes.push(`one rule hands out ports ${lo}-${hi} in turn, one per new connection`);
    rules.push(`${left} ${dests[0].rhs} port ${lo}-${hi} ${proto} tag ${natTag(svc, 1)}`);
    prim.forEach((b) => target(dests[0].filterDst, b.port, natTag(svc, 1)));
  } else {
    const turns = reducedWeights(prim.map((b) => b.weight));
    const order = prim.length === 1 ? [0] : smoothOrder(turns);
    const rotate = prim.length > 1 || svc.sticky !== null;
    if (turns.some((t) => t > 1)) notes.push('a backend with w turns has w rules, told apart by their tags');
    const seen = new Map<string, number>();
    for (const i of order) {
      const b = prim[i];
      const d = dests[i];
      const key = `${d.rhs}|${b.port}`;
      const copy = (seen.get(key) ?? 0) + 1;
      seen.set(key, copy);
      const opts: string[] = [proto];
      if (rotate) opts.push('round-robin');
      if (svc.sticky) opts.push('sticky');
      // rdroptions order in ipnat_y.y: round-robin, frag, age, sticky, mssclamp, proxy, tag, purge.
      opts.push(`tag ${natTag(svc, copy)}`);
      rules.push(`${left} ${d.rhs} port ${b.port} ${opts.join(' ')}`);
      target(d.filterDst, b.port, natTag(svc, copy));
    }
  }
  if (svc.sticky) {
    notes.push(`sticky (approximate): a client keeps its backend while it has a live translation; the ${svc.sticky.timeoutSeconds} s idle timeout cannot be set`);
  }
  if (prim.some((b) => b.address === null)) {
    notes.push(svc.family === 'ipv4' ? 'local backends: 127.0.0.1 (listen on 127.0.0.1 or on all addresses)' : 'local backends: ::0/0 keeps the destination the client used, which must be an address of this host');
  }
  const backups = svc.backends.filter((b) => b.backup);
  if (backups.length) notes.push(`backups left out (used only while every primary is down): ${backups.map(backendText).join(', ')}`);
  if (svc.backends.some((b) => b.health)) notes.push("health checks are run by lbc's agent, not by IPFilter");

  const pass: string[] = [];
  const flags = proto === 'tcp' ? ' flags S/SA' : '';
  for (let i = 0; i < targets.length; ) {
    let j = i;
    while (j + 1 < targets.length && targets[j + 1].dst === targets[i].dst && targets[j + 1].tag === targets[i].tag && targets[j + 1].port === targets[j].port + 1) j++;
    const ports = i === j ? `port = ${targets[i].port}` : `port ${targets[i].port}:${targets[j].port}`;
    pass.push(`pass in quick on ${iface} proto ${proto} from any to ${targets[i].dst} ${ports}${flags} keep state match-tag(nat=${targets[i].tag})`);
    i = j + 1;
  }
  rules.push(...sourceNatMaps(svc));
  if (svc.sourceNat) notes.push(`source NAT: what goes to the backends leaves ${iface} from ${svc.sourceNat.kind === 'masquerade' ? `the address of ${iface}` : svc.sourceNat.address}`);
  const title = commentText(`service ${svc.name}: ${vip.address}/${vip.prefixLength} port ${svc.port}/${proto} on ${iface}`);
  return {
    nat: { title, notes: notes.map(commentText), rules },
    filter: { title, notes: [], rules: pass },
  };
}

/**
 * Source NAT: a map rule per backend, for what the rdr rules send to it on the way out of the service's
 * interface (ipnat.5: "map ifname fromto -> dstipmask [mapoptions]", with "to addr port = N" and the
 * protocol as the map option). IPFilter translates a connection in on an rdr session and out on a map
 * session, so the backend sees the map address; its replies are translated back by both. 0/32 means the
 * address of the interface (ipnat.5: "map ppp0 0/0 -> 0/32").
 */
function sourceNatMaps(svc: Service): string[] {
  if (!svc.sourceNat) return [];
  const bits = svc.family === 'ipv4' ? 32 : 128;
  const fam = svc.family === 'ipv6' ? ' inet6' : '';
  const target = svc.sourceNat.kind === 'masquerade' ? '0/32' : `${svc.sourceNat.address}/${bits}`;
  const seen = new Set<string>();
  const out: string[] = [];
  for (const b of primaries(svc)) {
    if (b.address === null || seen.has(`${b.address}|${b.port}`)) continue;
    seen.add(`${b.address}|${b.port}`);
    out.push(`map ${svc.interface}${fam} from any to ${b.address}/${bits} port = ${b.port} -> ${target} ${svc.protocol}`);
  }
  return out;
}

function backendText(b: Backend): string {
  if (b.address === null) return `local port ${b.port}`;
  return b.address.includes(':') ? `[${b.address}]:${b.port}` : `${b.address}:${b.port}`;
}

export function emitIpnat(ir: IR): OutputFile[] {
  const blocks = ir.services.map(serviceBlocks);
  const header = headerLines('ipnat', ir.file);
  const nat = renderTemplate('ipnat', 'ipnat.rules', {
    header: [
      ...header,
      'IPFilter NAT rules (ipnat.conf(5)); load with: ipnat -f ipnat.rules',
      'The filter rules these redirections need are in ipf.rules.',
      // Said once here rather than under each of thousands of services.
      'Rules with the same left side and round-robin take turns, in the order written.',
    ],
    services: blocks.map((b) => b.nat),
  });
  const filter = renderTemplate('ipnat', 'ipf.rules', {
    header: [
      ...header,
      'IPFilter filter rules (ipf.conf(5)) for the redirections in ipnat.rules; load with: ipf -f ipf.rules',
      'They are quick pass rules: put them before any rule that would block this traffic.',
      "Each service's rules let its redirected connections in: the filter sees the translated destination,",
      'and match-tag requires the tag of the rdr rule that translated the packet, so nothing else gets in.',
    ],
    services: blocks.map((b) => b.filter),
  });
  return [
    { name: 'ipnat.rules', content: nat },
    { name: 'ipf.rules', content: filter },
  ];
}
