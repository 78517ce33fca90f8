/**
 * What IPFilter's ipnat/ipf (FreeBSD 5.x code, sbin/ipf and
 * sys/netpfil/ipfilter) can express of a service. Every entry either emits
 * the exact construct, is an approximation the output comments on, or is
 * refused with the reason and what works instead.
 */
import type { Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import type { CapabilityTable, Support } from '../target.js';
import { associationsRefused } from '../associations-refused.js';

/** Rules one service may turn into; weights are spelled as repeated rules. */
export const MAX_RULES_PER_SERVICE = 1024;

/**
 * Words the ipnat and ipf lexers read as keywords, case-insensitively
 * (ipnat_y.y yywords, ipf_y.y ipfwords): an interface with one of these
 * names would be parsed as the keyword.
 */
const KEYWORDS = new Set(
  (
    'age any auto bimap config divert dst dstlist frag from hash icmpidmap in inet inet6 mask map map-block mssclamp netmask no on out ' +
    'pool port portmap ports proto proxy purge range rewrite rdr round-robin sequential src sticky tag tcp tcpudp to udp eq ne lt gt le ge ' +
    'all auth block body bpf-v4 bpf-v6 call comment count decapsulate dup-to family fastroute first flags group head icmp-type icmp-code ' +
    'keep level limit log nomatch now or-block pass pps preauth quick reply-to return-icmp return-icmp-as-dest return-rst route-to rule-ttl ' +
    'set set-tag skip state strict tos ttl v6hdr with frags loose newisn sync'
  ).split(' '),
);

/** Interface names both lexers read as one word (lexer.c ends a word at ':' and reads a leading digit as a number). */
export function interfaceProblem(name: string): string | null {
  if (!/^[A-Za-z][A-Za-z0-9_.]*$/.test(name)) return `"${name}" does not start with a letter or contains characters other than letters, digits, "_" and "."; the ipf/ipnat lexer (sbin/ipf/common/lexer.c) would split it`;
  if (KEYWORDS.has(name.toLowerCase())) return `"${name}" is an ipnat/ipf keyword and would be read as one`;
  return null;
}

/** Rotation turns after dividing the weights by their common factor. */
import { reduceWeights as reducedWeights } from '../weights.js';
export { reducedWeights };

const NO_INTERFACE: Support = {
  level: 'no',
  why: 'an ipnat rdr rule cannot be written without the interface the packets arrive on (ipnat.5; ipnat_y.y "redir: rdrit ifnames ..."), and this service has no `interface`',
  instead: 'add `interface: <name>` (e.g. em0, the interface clients reach the vip through) to the service',
};


export const capabilities: CapabilityTable = {
  'mode.nth': { level: 'yes', note: 'rdr rules with the same left side and round-robin take turns; one rule with a port range hands out its ports in turn' },
  'interface.none': NO_INTERFACE,
  'mode.random': {
    level: 'no',
    why: 'IPFilter rdr rules have no random choice (ipnat_y.y rdroptions: round-robin, frag, age, sticky, mssclamp, proxy, tag, purge)',
    instead: 'use mode nth (exact rotation), or the pf target, whose rdr pools have `random`',
  },
  'mode.hash': {
    level: 'no',
    why: 'IPFilter rdr rules cannot hash a connection to a backend (the `hash` keyword in ipnat.conf names an address lookup table, not a pool policy)',
    instead: 'use mode nth with `sticky` for source affinity, or the pf target, whose rdr pools have `source-hash`',
  },
  'hash.fields': {
    level: 'no',
    why: 'IPFilter rdr rules cannot hash on any field',
    instead: 'use mode nth, or the nftables target for hashing on ports',
  },
  weights: (svc) => {
    const turns = reducedWeights(primaries(svc).map((b) => b.weight)).reduce((s, w) => s + w, 0);
    if (turns > MAX_RULES_PER_SERVICE) {
      return {
        level: 'no',
        why: `weights are spelled as one round-robin rdr rule per turn, and these weights need ${turns} rules (more than ${MAX_RULES_PER_SERVICE})`,
        instead: 'use smaller weights with the same ratios (e.g. 1 and 3 rather than 100 and 300) or fewer distinct ratios',
      };
    }
    return { level: 'yes', note: 'a backend of weight w gets w round-robin rules (told apart by their tags), so it gets w turns of every rotation' };
  },
  sticky: (svc) => ({
    level: 'approx',
    note: `IPFilter keeps a client on its backend while the client has a live translation (ip_nat.c host map, freed with its last translation); the ${svc.sticky?.timeoutSeconds ?? 0} s idle timeout cannot be set`,
  }),
  'protocol.udp': { level: 'yes' },
  'family.ipv6': { level: 'yes', note: 'IPFilter 5 rdr rules take IPv6 addresses (`rdr IF inet6 ...`)' },
  'vip.none': {
    level: 'no',
    why: 'an rdr rule cannot match "any address of this host": its left side is an address/mask (ipnat_y.y addr), and 0/0 would also redirect traffic routed through the host',
    instead: 'give the service a `vip` (the address or CIDR block clients connect to)',
  },
  'vip.cidr': { level: 'yes', note: 'the left side of rdr takes an address/mask' },
  interface: (svc) => {
    const p = svc.interface ? interfaceProblem(svc.interface) : null;
    return p ? { level: 'no', why: p, instead: 'name the interface as FreeBSD does (letters then digits, e.g. em0, lagg0, vlan100)' } : { level: 'yes' };
  },
  'backend.local': (svc) =>
    svc.family === 'ipv4'
      ? { level: 'yes', note: 'redirected to 127.0.0.1 (ipnat.5: rdr ... -> 127.0.0.1 port N)' }
      : { level: 'yes', note: 'the right side ::0/0 keeps the original destination, which must be an address of this host (::1 is dropped by ip6_input on non-loopback interfaces)' },
  'backend.port': { level: 'yes' },
  'backend.ports-differ': { level: 'yes' },
  local: {
    level: 'no',
    why: 'ipnat rdr rules translate packets arriving on an interface (ipnat.5 "INBOUND DESTINATION TRANSLATION"); connections made on the balancer itself never arrive on one',
    instead: 'connect through another host, or use the iptables or nftables target, which can redirect locally made connections',
  },
  health: { level: 'yes', note: "checked by lbc's health agent, not by IPFilter (which does not probe backends)" },
  backup: { level: 'yes', note: 'backups are left out of the static rules: they serve only while every primary is down, which only the health agent knows' },
  allow: {
    level: 'no',
    why: 'lbc does not write IPFilter address pools yet: an allow list needs an ippool.conf pool of role nat, rdr rules of the form `rdr IF from pool/NAME to VIP port = P -> …` (ipnat_y.y rdrfrom; pools only with from/to rules) and a block rule in ipf.rules, loaded and removed beside the rules',
    instead: 'use --target pf or pf-openbsd (a table), or a Linux target; or refuse the other clients in your own ipf.conf, ahead of lbc\'s pass rules',
  },
  'ports.list': {
    level: 'no',
    why: 'lbc does not write several ports for ipnat yet: a list needs a rule per port (each its own rotation), and how a left-side port range maps onto the right side (ip_nat.c ipf_nat_newrdr) is not modelled here',
    instead: 'write one service per port, or use --target pf or pf-openbsd (one rule for a block of consecutive ports), or a Linux target',
  },
  'ports.range': {
    level: 'no',
    why: 'lbc does not write port ranges for ipnat yet: how a left-side range maps onto the right side (ip_nat.c ipf_nat_newrdr) is not modelled here',
    instead: 'write one service per port, or use --target pf or pf-openbsd, or a Linux target',
  },
  'source-nat': (svc) =>
    svc.sourceNat?.kind === 'masquerade' && svc.family === 'ipv6'
      ? {
          level: 'no',
          why: "ipnat's 0/32 (the interface's own address) is written for IPv4 maps; lbc does not write an IPv6 form it cannot check",
          instead: 'write `source-nat: ADDRESS` (an IPv6 address of this host on the backends\' network)',
        }
      : { level: 'yes', note: 'a map rule per backend on the service\'s interface: the backend sees the map address, and its replies go back through both translations' },
  ...associationsRefused(
    'IPFilter remembers a client only in its live translations (one per flow) and, with sticky, in a host map keyed by addresses without ports (ipf_nat_hostmap() in ip_nat.c), freed with the client\'s last translation',
  ),
};
