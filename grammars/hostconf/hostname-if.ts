/**
 * OpenBSD hostname.if(5) files, the subset lbc writes for a balancer tier's node (carp and pfsync
 * interfaces), read the way netstart(8) reads them (etc/netstart, parse_hn_line), then what the
 * resulting ifconfig(8) commands configure.
 *
 * netstart splits each line into words and turns it into one command:
 *   inet [alias] ADDR [MASK [BCAST|NONE]] [opts]  → ifconfig IF inet [alias] ADDR netmask MASK [broadcast BCAST] opts
 *   inet6 [alias] ADDR [PREFIXLEN] [opts]         → ifconfig IF inet6 [alias] ADDR prefixlen PREFIXLEN opts
 *   !COMMAND                                      → COMMAND with "$if" replaced by the interface, run by eval
 *   anything else (up, …)                         → ifconfig IF WORDS
 * and comment lines (first word starting with '#') are skipped.
 * The carp options modelled (carp(4), ifconfig(8)): carpdev IF (mandatory since OpenBSD 5.7), vhid N
 * (1-255), advbase N, advskew N (0-254), carpnodes VHID:ADVSKEW,… (a load-balancing group; at most
 * 32, CARP_MAXNODES), balancing ip|ip-stealth|ip-unicast|arp, pass KEY; and pfsync's syncdev IF,
 * syncpeer ADDR. A `!` line is modelled only as lbc writes it: `ifconfig $if pass "$(cat /FILE)"`.
 */
import { HostConfError, type HostConfProblem } from './rcconf.js';

export interface CarpNode {
  vhid: number;
  advskew: number;
}

export interface OpenbsdCarp {
  carpdev: string | null;
  /** vhid and advskew of a plain carp interface, or the carpnodes of a balancing one. */
  nodes: CarpNode[];
  balancing: string | null;
  advbase: number;
  addresses: Array<{ family: 'ipv4' | 'ipv6'; address: string; prefixLength: number }>;
  /** The key: read from a file when the interface is configured, literal, or none. */
  pass: { kind: 'file'; path: string } | { kind: 'text'; text: string } | null;
  up: boolean;
}

export interface OpenbsdPfsync {
  syncdev: string | null;
  syncpeer: string | null;
  up: boolean;
}

export interface HostnameIf {
  /** The commands netstart would run, in order. */
  commands: string[][];
  carp: OpenbsdCarp | null;
  pfsync: OpenbsdPfsync | null;
}

function maskLength(mask: string): number | null {
  if (/^\d+$/.test(mask)) return Number(mask) <= 32 ? Number(mask) : null;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(mask);
  if (!m) return null;
  const n = m.slice(1).reduce((a, o) => a * 256 + Number(o), 0);
  const bits = n.toString(2).padStart(32, '0');
  if (!/^1*0*$/.test(bits)) return null;
  return bits.indexOf('0') < 0 ? 32 : bits.indexOf('0');
}

/** Parse /etc/hostname.IF (`ifname` is IF, e.g. carp0) and interpret its commands. */
export function parseHostnameIf(text: string, ifname: string): HostnameIf {
  const problems: HostConfProblem[] = [];
  const commands: string[][] = [];
  const kind = /^carp\d+$/.test(ifname) ? 'carp' : /^pfsync\d+$/.test(ifname) ? 'pfsync' : null;
  if (!kind) throw new HostConfError(`hostname.${ifname}`, [{ message: 'only carp and pfsync interfaces are modelled', line: 1, column: 1 }]);
  const carp: OpenbsdCarp = { carpdev: null, nodes: [], balancing: null, advbase: 1, addresses: [], pass: null, up: false };
  const pfsync: OpenbsdPfsync = { syncdev: null, syncpeer: null, up: false };
  let vhid: number | null = null;
  let advskew = 0;
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const words = raw.trim().split(/[ \t]+/).filter(Boolean);
    if (words.length === 0 || words[0].startsWith('#')) return;
    const bad = (message: string) => problems.push({ message, line, column: 1 });
    if (words[0].startsWith('!')) {
      const cmd = words.join(' ').slice(1).replace(/\$if/g, ifname);
      const m = /^ifconfig (\S+) pass "\$\(cat (\/[A-Za-z0-9._/-]+)\)"$/.exec(cmd);
      if (!m || m[1] !== ifname) return bad(`a ! line other than 'ifconfig $if pass "$(cat FILE)"' is not modelled: ${cmd}`);
      commands.push(['ifconfig', ifname, 'pass', `$(cat ${m[2]})`]);
      carp.pass = { kind: 'file', path: m[2] };
      return;
    }
    let args: string[];
    let opts: string[];
    if (words[0] === 'inet' || words[0] === 'inet6') {
      const fam = words[0] === 'inet' ? 'ipv4' : 'ipv6';
      let k = 1;
      const isAlias = words[k] === 'alias';
      if (isAlias) k++;
      const address = words[k++];
      if (!address) return bad(`${words[0]} needs an address`);
      args = [words[0], ...(isAlias ? ['alias'] : []), address];
      let prefixLength = fam === 'ipv4' ? 32 : 128;
      if (fam === 'ipv4') {
        const mask = words[k];
        if (mask !== undefined && /^[\d.x]/.test(mask)) {
          k++;
          const len = maskLength(mask);
          if (len === null) return bad(`"${mask}" is not a netmask`);
          prefixLength = len;
          args.push('netmask', mask);
          const bc = words[k];
          if (bc !== undefined && (bc === 'NONE' || /^\d+\.\d+\.\d+\.\d+$/.test(bc))) {
            k++;
            if (bc !== 'NONE') args.push('broadcast', bc);
          }
        }
        if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(address)) return bad(`"${address}" is not an IPv4 address`);
      } else {
        const pl = words[k];
        if (pl !== undefined && /^\d+$/.test(pl)) {
          k++;
          prefixLength = Number(pl);
          args.push('prefixlen', pl);
        }
      }
      carp.addresses.push({ family: fam, address, prefixLength });
      opts = words.slice(k);
      args.push(...opts);
    } else {
      args = words;
      opts = words;
    }
    commands.push(['ifconfig', ifname, ...args]);
    for (let j = 0; j < opts.length; j++) {
      const w = opts[j];
      const next = () => opts[++j];
      const int = (min: number, max: number, what: string) => {
        const v = next();
        if (v === undefined || !/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
          bad(`${what} must be a number from ${min} to ${max}, not "${v ?? ''}"`);
          return min;
        }
        return Number(v);
      };
      if (w === 'up') (carp.up = true), (pfsync.up = true);
      else if (kind === 'carp' && w === 'carpdev') carp.carpdev = next() ?? null;
      else if (kind === 'carp' && w === 'vhid') vhid = int(1, 255, 'vhid');
      else if (kind === 'carp' && w === 'advskew') advskew = int(0, 254, 'advskew');
      else if (kind === 'carp' && w === 'advbase') carp.advbase = int(0, 254, 'advbase');
      else if (kind === 'carp' && w === 'balancing') {
        const mode = next();
        if (!['ip', 'ip-stealth', 'ip-unicast', 'arp', 'none'].includes(mode ?? '')) bad(`balancing must be ip, ip-stealth, ip-unicast, arp or none, not "${mode ?? ''}"`);
        carp.balancing = mode ?? null;
      } else if (kind === 'carp' && w === 'carpnodes') {
        const list = next() ?? '';
        const nodes = list.split(',').map((p) => /^(\d{1,3}):(\d{1,3})$/.exec(p));
        if (nodes.some((n) => !n || Number(n[1]) < 1 || Number(n[1]) > 255 || Number(n[2]) > 254)) bad(`carpnodes must be VHID:ADVSKEW,… (vhid 1-255, advskew 0-254), not "${list}"`);
        else carp.nodes = nodes.map((n) => ({ vhid: Number(n![1]), advskew: Number(n![2]) }));
        if (carp.nodes.length > 32) bad(`at most 32 carpnodes (CARP_MAXNODES), not ${carp.nodes.length}`);
        if (new Set(carp.nodes.map((n) => n.vhid)).size !== carp.nodes.length) bad('a vhid appears twice in carpnodes');
      } else if (kind === 'carp' && w === 'pass') {
        const key = next();
        carp.pass = key === undefined ? null : { kind: 'text', text: key };
      } else if (kind === 'pfsync' && w === 'syncdev') pfsync.syncdev = next() ?? null;
      else if (kind === 'pfsync' && w === 'syncpeer') pfsync.syncpeer = next() ?? null;
      else bad(`unexpected ifconfig argument "${w}"`);
    }
  });
  if (kind === 'carp') {
    if (vhid !== null && carp.nodes.length) problems.push({ message: 'vhid and carpnodes both given', line: 1, column: 1 });
    if (vhid !== null) carp.nodes = [{ vhid, advskew }];
    if (carp.nodes.length === 0) problems.push({ message: 'a carp interface needs a vhid or carpnodes', line: 1, column: 1 });
    if (!carp.carpdev) problems.push({ message: 'carpdev is mandatory (OpenBSD ≥ 5.7)', line: 1, column: 1 });
    if (carp.addresses.length === 0) problems.push({ message: 'a carp interface needs an address', line: 1, column: 1 });
    if (carp.balancing && carp.balancing !== 'none' && carp.nodes.length < 2) problems.push({ message: 'balancing needs carpnodes (one per node at least)', line: 1, column: 1 });
  }
  if (problems.length) throw new HostConfError(`hostname.${ifname}`, problems);
  return { commands, carp: kind === 'carp' ? carp : null, pfsync: kind === 'pfsync' ? pfsync : null };
}
