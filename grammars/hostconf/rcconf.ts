/**
 * FreeBSD rc.conf, loader.conf and sysctl.conf, the subset lbc writes for a balancer tier's node,
 * read back for tests: the text as the system reads it, then what it configures.
 *
 * rc.conf(5) and loader.conf(5) lines are sh variable assignments (rc(8) sources rc.conf; the loader
 * reads `name="value"` the same way): NAME=WORD, NAME="TEXT" or NAME='TEXT', comments from '#'. In a
 * double-quoted value sh would expand `$`, `` ` `` and `\`; the only expansion modelled here is
 * command substitution of a file's content, `$(cat /PATH)` — how lbc lets the node read its CARP key.
 * sysctl.conf(5): `name=value` per line.
 *
 * ifconfig_IF_aliasN (network.subr ifalias): the value is handed to `ifconfig IF` word by word (after
 * the substitution), aliases numbered from 0, and rc.d/netif stops at the first missing number. A
 * CARP alias (carp(4), FreeBSD ≥ 10) is `inet|inet6 vhid N [advbase N] [advskew N] [pass KEY] alias
 * ADDR[/LEN] | ADDR prefixlen N`; sbin/ifconfig/carp.c refuses advskew, advbase, pass and state before
 * vhid ("advskew requires vhid"), vhid must be 1-255 (CARP_MAXVHID), and the kernel (netinet/ip_carp.c,
 * carp_ioctl) takes advskew below 255 and advbase from 1 to 240.
 */
import { Address6 } from 'ip-address';

export interface HostConfProblem {
  message: string;
  line: number;
  column: number;
}

export class HostConfError extends Error {
  constructor(
    readonly what: string,
    readonly problems: HostConfProblem[],
  ) {
    super(`${what}: ${problems.map((p) => `${p.line}:${p.column}: ${p.message}`).join('; ')}`);
    this.name = 'HostConfError';
  }
}

/** A word of a value after sh expansion: literal text, or the content of a file read at that moment. */
export type Word = { kind: 'text'; text: string } | { kind: 'file'; path: string };

export interface Assignment {
  name: string;
  /** The value's words, as a later unquoted use of the variable splits them. */
  words: Word[];
  line: number;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SUBST = /\$\(cat (\/[A-Za-z0-9._/-]+)\)/g;

/** The assignments of an sh-assignment file (rc.conf, loader.conf). */
export function parseAssignments(text: string, what: string): Assignment[] {
  const out: Assignment[] = [];
  const problems: HostConfProblem[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) return;
    const eq = raw.indexOf('=');
    const name = eq < 0 ? '' : raw.slice(0, eq);
    if (!NAME.test(name)) {
      problems.push({ message: 'not a variable assignment (NAME=value)', line, column: 1 });
      return;
    }
    let rest = raw.slice(eq + 1);
    let value: string;
    const col = eq + 2;
    if (rest.startsWith('"')) {
      const end = rest.indexOf('"', 1);
      if (end < 0) {
        problems.push({ message: 'unterminated double quote', line, column: col });
        return;
      }
      value = rest.slice(1, end);
      rest = rest.slice(end + 1);
      const bad = /[`\\]|\$(?!\(cat \/)/.exec(value.replace(SUBST, ''));
      if (bad) {
        problems.push({ message: `"${bad[0]}" in a double-quoted value: sh would expand it`, line, column: col + 1 + bad.index });
        return;
      }
    } else if (rest.startsWith("'")) {
      const end = rest.indexOf("'", 1);
      if (end < 0) {
        problems.push({ message: 'unterminated single quote', line, column: col });
        return;
      }
      value = rest.slice(1, end);
      rest = rest.slice(end + 1);
    } else {
      const m = /^[^\s#"'$`\\;&|<>()]*/.exec(rest)!;
      value = m[0];
      rest = rest.slice(value.length);
    }
    if (rest.trim() !== '' && !rest.trim().startsWith('#')) {
      problems.push({ message: `text after the value: "${rest.trim()}"`, line, column: raw.length - rest.length + 1 });
      return;
    }
    const words: Word[] = [];
    // Split on blanks, keeping each $(cat FILE) whole (its output is one word, if the file holds one).
    for (const part of value.replace(SUBST, (_m, p: string) => `\u0000${p}\u0000`).split(/[ \t]+/).filter(Boolean)) {
      if (part.startsWith('\u0000')) words.push({ kind: 'file', path: part.slice(1, -1) });
      else words.push({ kind: 'text', text: part });
    }
    out.push({ name, words, line });
  });
  if (problems.length) throw new HostConfError(what, problems);
  return out;
}

export interface SysctlSetting {
  name: string;
  value: string;
  line: number;
}

export function parseSysctlConf(text: string): SysctlSetting[] {
  const out: SysctlSetting[] = [];
  const problems: HostConfProblem[] = [];
  text.split('\n').forEach((raw, i) => {
    const t = raw.replace(/#.*$/, '').trim();
    if (t === '') return;
    const m = /^([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)=(\S+)$/.exec(t);
    if (!m) problems.push({ message: 'not a sysctl setting (name.of.it=value)', line: i + 1, column: 1 });
    else out.push({ name: m[1], value: m[2], line: i + 1 });
  });
  if (problems.length) throw new HostConfError('sysctl.conf', problems);
  return out;
}

export interface FreebsdCarpAlias {
  interface: string;
  alias: number;
  family: 'ipv4' | 'ipv6';
  vhid: number;
  advskew: number;
  advbase: number;
  /** Where the key comes from: a file read at boot, literal text, or nothing (no authentication). */
  pass: Word | null;
  address: string;
  prefixLength: number;
  line: number;
}

export interface FreebsdTier {
  carp: FreebsdCarpAlias[];
  pfsync: { enable: boolean; syncdev: string | null; syncpeer: string | null };
  other: Assignment[];
}

function num(word: Word | undefined, min: number, max: number, what: string, line: number, problems: HostConfProblem[]): number {
  const t = word?.kind === 'text' ? word.text : '';
  if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max) {
    problems.push({ message: `${what} must be a number from ${min} to ${max}, not "${t}"`, line, column: 1 });
    return -1;
  }
  return Number(t);
}

/** The CARP aliases and pfsync settings an rc.conf configures (FreeBSD ≥ 10). */
export function freebsdTier(text: string): FreebsdTier {
  const assignments = parseAssignments(text, 'rc.conf');
  const problems: HostConfProblem[] = [];
  const carp: FreebsdCarpAlias[] = [];
  const pfsync: FreebsdTier['pfsync'] = { enable: false, syncdev: null, syncpeer: null };
  const other: Assignment[] = [];
  const seen = new Set<string>();
  for (const a of assignments) {
    if (seen.has(a.name)) problems.push({ message: `${a.name} is set twice (the last one wins)`, line: a.line, column: 1 });
    seen.add(a.name);
    const alias = /^ifconfig_([A-Za-z0-9_]+)_alias(\d+)$/.exec(a.name);
    const text1 = (w: Word | undefined) => (w?.kind === 'text' ? w.text : null);
    if (alias) {
      const w = a.words;
      const fam = text1(w[0]);
      if (fam !== 'inet' && fam !== 'inet6') {
        problems.push({ message: `${a.name} must start with inet or inet6`, line: a.line, column: 1 });
        continue;
      }
      let vhid = -1;
      let advskew = 0;
      let advbase = 1;
      let pass: Word | null = null;
      let address: string | null = null;
      let prefixLength = fam === 'inet' ? 32 : 128;
      for (let i = 1; i < w.length; i++) {
        const k = text1(w[i]);
        const needVhid = () => {
          if (vhid < 0) problems.push({ message: `${k} requires vhid before it (sbin/ifconfig/carp.c)`, line: a.line, column: 1 });
        };
        if (k === 'vhid') vhid = num(w[++i], 1, 255, 'vhid', a.line, problems);
        else if (k === 'advskew') (needVhid(), (advskew = num(w[++i], 0, 254, 'advskew', a.line, problems)));
        else if (k === 'advbase') (needVhid(), (advbase = num(w[++i], 1, 240, 'advbase', a.line, problems)));
        else if (k === 'pass') {
          needVhid();
          pass = w[++i] ?? null;
          if (!pass) problems.push({ message: 'pass needs a key', line: a.line, column: 1 });
        } else if (k === 'alias') continue;
        else if (k === 'prefixlen') prefixLength = num(w[++i], 0, 128, 'prefixlen', a.line, problems);
        else if (k && address === null && /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(k)) {
          const [addr, len] = k.split('/');
          address = addr;
          if (len !== undefined) prefixLength = Number(len);
        } else problems.push({ message: `unexpected ifconfig argument "${k ?? '$(…)'}"`, line: a.line, column: 1 });
      }
      if (vhid < 0) problems.push({ message: `${a.name} has no vhid: not a CARP address`, line: a.line, column: 1 });
      if (address === null) {
        problems.push({ message: `${a.name} has no address`, line: a.line, column: 1 });
        continue;
      }
      const family = fam === 'inet' ? 'ipv4' : 'ipv6';
      const canonical = family === 'ipv4' ? (/^(\d{1,3}\.){3}\d{1,3}$/.test(address) ? address : null) : Address6.isValid(address) ? new Address6(address).correctForm() : null;
      if (!canonical) problems.push({ message: `"${address}" is not an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} address`, line: a.line, column: 1 });
      carp.push({ interface: alias[1], alias: Number(alias[2]), family, vhid, advskew, advbase, pass, address: canonical ?? address, prefixLength, line: a.line });
    } else if (a.name === 'pfsync_enable') pfsync.enable = text1(a.words[0])?.toUpperCase() === 'YES';
    else if (a.name === 'pfsync_syncdev') pfsync.syncdev = text1(a.words[0]);
    else if (a.name === 'pfsync_syncpeer') pfsync.syncpeer = text1(a.words[0]);
    else other.push(a);
  }
  // network.subr: aliases are read from 0 up to the first missing number.
  const byIf = new Map<string, number[]>();
  for (const c of carp) byIf.set(c.interface, [...(byIf.get(c.interface) ?? []), c.alias]);
  for (const [ifname, nums] of byIf) {
    const sorted = [...nums].sort((x, y) => x - y);
    sorted.forEach((n, i) => {
      if (n !== i) problems.push({ message: `ifconfig_${ifname}_alias${n}: aliases must be numbered 0, 1, … without gaps (rc.d/netif stops at alias${i})`, line: 1, column: 1 });
    });
  }
  if ((pfsync.syncdev || pfsync.syncpeer) && !pfsync.enable) problems.push({ message: 'pfsync_syncdev without pfsync_enable="YES"', line: 1, column: 1 });
  if (problems.length) throw new HostConfError('rc.conf', problems);
  return { carp, pfsync, other };
}
