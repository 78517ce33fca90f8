/**
 * --target relayd: relayd.conf(5) redirections for pf hosts, so relayd runs the
 * health checks and keeps the pf table of live hosts, plus the pf.conf anchor
 * lines relayd needs.
 *
 * Grammar and limits as OpenBSD usr.sbin/relayd defines them (relayd.conf.5
 * rev 1.193, sections GLOBAL CONFIGURATION, TABLES, REDIRECTIONS; parse.y):
 *   interval N                  seconds (global); a table's interval must be a multiple
 *   timeout MS                  milliseconds (global default for checks)
 *   table <NAME> { host [retry N], ... }      retry N: N more failed checks before "down"
 *   redirect "NAME" {
 *     listen on ADDR [udp] port P [interface IF]
 *     forward to <NAME> port P mode roundrobin|random|source-hash KEY
 *       check tcp | check http "PATH" [host H] code N | check send DATA|nothing expect PATTERN
 *       interval N timeout MS
 *     forward to <BACKUP> ...        the second forward to is the backup table
 *     sticky-address
 *   }
 * Facts the capability table rests on (parse.y unless noted):
 * - one port per table, and "redirection %s uses two different ports for its
 *   table and backup table": every backend must share one port;
 * - tables carry no weights;
 * - "table %s has no check": a redirection table must have exactly one check,
 *   shared by all its hosts (relayd.conf.5 TABLES);
 * - check http ... code sends "HEAD path HTTP/1.0" (HTTP/1.1 with Host when host is given);
 * - check send: the data is written as is (check_tcp.c) and a quoted string
 *   cannot carry CR or LF (the lexer drops newlines inside quotes and keeps "\r"
 *   as two characters); expect is matched with fnmatch(3) against everything
 *   read so far (check_tcp.c), so "E*" means "the answer starts with E";
 * - there is no rise count: one passed check brings a host up;
 * - mode source-hash takes a key ("0x" + 32 hex digits or a string, MD5-hashed);
 *   without one relayd draws a random key at every start.
 */
import { createHash } from 'node:crypto';
import { primaries, type Backend, type HealthCheck, type IR, type Service } from '../../ir/types.js';
import type { CapabilityTable, OutputFile, Support, TargetDefinition } from '../target.js';
import { renderTemplate } from '../template.js';
import { commentText, headerLines } from '../text.js';
import { gcd } from '../weights.js';
import { associationsRefused } from '../associations-refused.js';


const NAME = 'relayd';
const no = (why: string, instead: string): Support => ({ level: 'no', why, instead });

export const DEFAULT_CHECK: HealthCheck = { check: 'tcp', intervalMs: 10000, timeoutMs: 200, rise: 1, fall: 1, port: null, http: null, banner: null };

function sameHealth(a: HealthCheck | null, b: HealthCheck | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Why the health checks of a service cannot be written as relayd checks, or null. */
function healthProblem(svc: Service): string | null {
  for (const group of [primaries(svc), svc.backends.filter((b) => b.backup)]) {
    if (group.length === 0) continue;
    if (!group.every((b) => sameHealth(b.health, group[0].health))) {
      return 'relayd runs one check per table, shared by all its hosts, but these backends have different health checks (or some have none)';
    }
    const hc = group[0].health;
    if (!hc) continue;
    if (hc.port !== null && hc.port !== group[0].port) return `relayd checks a table's hosts on the table's port; a check on port ${hc.port} cannot be written`;
    if (hc.intervalMs % 1000 !== 0) return 'relayd intervals are whole seconds';
    if (hc.banner) {
      if (hc.banner.send !== null && /[\r\n"\\]/.test(hc.banner.send)) {
        return 'a relayd.conf string cannot carry CR, LF, quotes or backslashes in "check send" data (parse.y lexer; check_tcp.c writes the data as is)';
      }
      if (/[*?[\\"]/.test(hc.banner.expect)) return 'the expect text holds fnmatch(3) or quoting characters (* ? [ \\ ")';
    }
  }
  if (svc.backends.some((b) => b.backup) && !primaries(svc).some((b) => b.health)) {
    return 'relayd uses the backup table only when the main table\'s checks find every host down, so the primaries need a health check';
  }
  return null;
}

function healthApprox(svc: Service): string[] {
  const notes = new Set<string>();
  for (const b of svc.backends) {
    const hc = b.health;
    if (!hc) continue;
    if (hc.rise > 1) notes.add(`relayd has no rise count: one passed check brings a host back (rise ${hc.rise} ignored)`);
    if (hc.http && hc.http.method === 'GET') notes.add('relayd sends HEAD, not GET, for "check http ... code"');
    if (hc.http && hc.http.host === null) notes.add('relayd sends HTTP/1.0 without a Host header when no host is given');
  }
  return [...notes];
}

export const capabilities: CapabilityTable = {
  'mode.nth': { level: 'yes', note: 'mode roundrobin over the live hosts' },
  'mode.hash': { level: 'yes', note: 'mode source-hash with a key derived from the service name' },
  'hash.fields': no('relayd redirections hash the source address only (mode source-hash)', 'use hash: [saddr], or a netfilter target'),
  weights: no('relayd tables have no weights', 'use --target pf-openbsd (weighted rules) with `lbc agent`, or equal weights'),
  'backend.ports-differ': no(
    'relayd forwards a table to one port, and the backup table must use the same port (parse.y: "uses two different ports for its table and backup table")',
    'give every backend the same port, or use --target ipnat',
  ),
  'vip.none': no('"listen on" needs an address', 'give the service a vip'),
  'vip.cidr': no('"listen on" takes one address', 'give the service a single-address vip'),
  local: no('pf does not translate connections the balancer opens itself', 'connect to a backend directly'),
  sticky: {
    level: 'approx',
    note: 'sticky-address keeps a client on its host while pf keeps its source node; the idle lifetime is pf\'s global "set timeout src.track", not the spec\'s timeout',
  },
  health: (svc: Service): Support => {
    const p = healthProblem(svc);
    if (p) return no(p, 'use the same check on every backend of a table, or `lbc agent` with --target pf or pf-openbsd');
    const a = healthApprox(svc);
    return a.length ? { level: 'approx', note: a.join('; ') } : { level: 'yes' };
  },
  'backup.port': no(
    'a backup takes the place of the primaries in the same pool (the table the agent or relayd refills), and that pool has one port',
    'run the backup on the primaries\' port (e.g. { port: P, backup: true } (P being the port of the primaries) for a local fallback), or use a Linux target with `lbc agent`',
  ),
  backup: (svc: Service): Support => {
    const p = healthProblem(svc);
    return p ? no(p, 'give the primaries a health check') : { level: 'yes', note: 'the second "forward to" is relayd\'s backup table' };
  },
  ...associationsRefused(
    'relayd redirections are pf rdr rules in its anchor: pf remembers a client only in per-flow states and in source nodes keyed by the source address alone (sticky-address), never by address and port',
  ),
  'source-nat': no(
    'relayd writes only the redirection (rdr) rules of its anchor; a source NAT rule would have to be in the main pf.conf, outside relayd',
    'compile with --target pf (or pf-openbsd), which writes the nat rule, or add a nat rule for the backends to pf.conf yourself',
  ),
};

function addr(svc: Service, b: Backend): string {
  return b.address ?? (svc.family === 'ipv6' ? '::1' : '127.0.0.1');
}

/** relayd.conf string: the IR already keeps quotes and backslashes out of everything quoted here. */
function q(s: string): string {
  if (/["\\\n\r]/.test(s)) throw new Error(`cannot quote ${JSON.stringify(s)} for relayd.conf`);
  return `"${s}"`;
}

export function hashKey(svc: Service): string {
  // 128-bit hex key as parse.y's hashkey wants ("0x" + 32 hex digits), fixed per service name.
  return `0x${createHash('md5').update(`lbc-${svc.name}`).digest('hex')}`;
}

function checkText(hc: HealthCheck): string {
  switch (hc.check) {
    case 'tcp':
      return 'check tcp';
    case 'http': {
      const h = hc.http!;
      return `check http ${q(h.path)}${h.host ? ` host ${q(h.host)}` : ''} code ${h.status}`;
    }
    case 'banner': {
      const bn = hc.banner!;
      return `check send ${bn.send ? q(bn.send) : 'nothing'} expect ${q(`${bn.expect}*`)}`;
    }
  }
}

interface Forward {
  table: string;
  hosts: string[];
  line: string;
}

function forward(svc: Service, table: string, group: Backend[], globalInterval: number): Forward {
  const hc = group[0].health ?? DEFAULT_CHECK;
  const mode = svc.mode === 'nth' ? 'roundrobin' : svc.mode === 'random' ? 'random' : `source-hash ${q(hashKey(svc))}`;
  const intervalS = hc.intervalMs / 1000;
  const opts = [`port ${group[0].port}`, `mode ${mode}`, checkText(hc)];
  if (intervalS !== globalInterval) opts.push(`interval ${intervalS}`);
  opts.push(`timeout ${hc.timeoutMs}`);
  const retry = hc.fall > 1 ? ` retry ${hc.fall - 1}` : '';
  return { table, hosts: group.map((b) => `${addr(svc, b)}${retry}`), line: `forward to <${table}> ${opts.join(' ')}` };
}


export function globalTiming(ir: IR): { interval: number; timeout: number } {
  const checks = ir.services.flatMap((s) => s.backends.map((b) => b.health ?? DEFAULT_CHECK));
  const interval = checks.reduce((g, c) => gcd(g, c.intervalMs / 1000), 0) || 10;
  // "must not exceed the global interval" (relayd.conf.5); tables set their own anyway.
  const timeout = checks.reduce((m, c) => Math.min(m, c.timeoutMs), interval * 1000);
  return { interval, timeout };
}

function emit(ir: IR): OutputFile[] {
  const { interval, timeout } = globalTiming(ir);
  const services = ir.services.map((svc) => {
    const name = `lbc-${svc.name}`;
    const prim = primaries(svc);
    const backups = svc.backends.filter((b) => b.backup);
    const fw = [forward(svc, name, prim, interval)];
    if (backups.length) fw.push(forward(svc, `${name}-backup`, backups, interval));
    const listen = [`listen on ${svc.vip!.address}`];
    if (svc.protocol === 'udp') listen.push('udp');
    listen.push(`port ${svc.port}`);
    if (svc.interface) listen.push(`interface ${q(svc.interface)}`);
    const notes: string[] = [];
    if (!prim[0].health) notes.push('the spec has no health check, but relayd needs one per table: check tcp with relayd\'s defaults');
    notes.push(...healthApprox(svc));
    if (svc.sticky) notes.push(`sticky: ${svc.sticky.timeoutSeconds}s idle affinity wanted; set "set timeout src.track ${svc.sticky.timeoutSeconds}" in pf.conf`);
    return {
      name,
      comment: commentText(`service ${svc.name}: ${svc.protocol} port ${svc.port}, mode ${svc.mode}`),
      notes: notes.map(commentText),
      tables: fw.map((f) => ({ name: f.table, hosts: f.hosts.join(', ') })),
      body: [listen.join(' '), ...fw.map((f) => f.line), ...(svc.sticky ? ['sticky-address'] : [])],
      passTo: svc.backends.map((b) => ({ proto: svc.protocol, addr: addr(svc, b), port: b.port, iface: svc.interface })),
    };
  });
  const header = headerLines(NAME, ir.file).map(commentText);
  const conf = renderTemplate(NAME, 'relayd.conf', { header, interval, timeout, services });
  const openbsd = renderTemplate(NAME, 'pf-anchors', { header, freebsd: false, services });
  const freebsd = renderTemplate(NAME, 'pf-anchors', { header, freebsd: true, services });
  return [
    { name: 'relayd.conf', content: conf },
    { name: 'pf.conf.relayd-openbsd', content: openbsd },
    { name: 'pf.conf.relayd-freebsd', content: freebsd },
  ];
}

export const relaydTarget: TargetDefinition = {
  name: NAME,
  title: 'relayd.conf redirections (health checks in relayd) with the pf.conf anchor lines they need',
  families: ['ipv4', 'ipv6'],
  capabilities,
  emit,
};
