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
 *       check tcp | check icmp | check http "PATH" [host H] code N | check send DATA|nothing expect PATTERN
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
 * - check icmp pings each host (ICMP or ICMPv6 by its family; check_icmp.c); relayd has no UDP
 *   probe (its TCP checks connect, check_icmp.c sends echoes, check script runs a program);
 * - a redirection is "listen on ADDR port P" (one port each; several listen lines would each get
 *   a pf rule and a rotation of their own), and it matches any source: an allow list is written
 *   as pf.conf lines beside relayd's anchor (pf-anchors template);
 * - mode source-hash takes a key ("0x" + 32 hex digits or a string, MD5-hashed);
 *   without one relayd draws a random key at every start;
 * - `check icmp` pings the hosts (check_icmp.c, ICMP or ICMPv6 by family): the one check relayd has that
 *   a UDP-only host can pass (check tcp is a TCP connect, relayd.conf.5 TABLES);
 * - relayd sets the established-TCP timeout of its rule to the redirection's `session timeout`
 *   (pfe_filter.c sync_ruleset: rio.rule.timeout[PFTM_TCP_ESTABLISHED] = rdr->conf.timeout, TCP only;
 *   600 s unless set, relayd.conf.5 REDIRECTIONS), so an idle TCP connection through relayd would be
 *   dropped after 10 minutes; lbc writes pf's own default, 86400 s (pf.conf(5) OPTIONS, tcp.established),
 *   as its pf targets leave it, since the spec has no idle timeout for connections.
 *
 * Two flavours (targets relayd and relayd-freebsd), decided from the FreeBSD port (net/relayd; its
 * pfe_filter.c, in files/patch-relayd-pfe_filter.c and later in the port's own source tree):
 * - OpenBSD relayd loads `pass in quick … rdr-to <table>` rules with the redirection's mode
 *   (roundrobin, random, source-hash with its key, least-states) into the anchor relayd/NAME; pf.conf
 *   needs only `anchor "relayd/*"`.
 * - The FreeBSD port loads classic `rdr` rules (action PF_RDR in the rdr ruleset, so pf.conf needs
 *   `rdr-anchor "relayd/*"`), sets `rio.rule.rpool.opts = PF_POOL_ROUNDROBIN` whatever the mode (plus
 *   PF_POOL_STICKYADDR for sticky-address) and ignores the hash key: random becomes round-robin and
 *   source-hash is not available. Its rdr rules do not pass the traffic, so pf.conf needs pass rules;
 *   relayd puts the redirection's `pftag` on the rdr rule (rio.rule.tagname), and the pass rules match
 *   that tag (`tagged`), so they pass exactly the redirected connections, not any traffic sent to a
 *   backend's address and port (pf.conf(5) tag/tagged; pf_lb.c pf_match_translation tags the packet).
 */
import { createHash } from 'node:crypto';
import { primaries, type Backend, type HealthCheck, type IR, type Service } from '../../ir/types.js';
import type { CapabilityTable, OutputFile, Support, TargetDefinition } from '../target.js';
import { renderTemplate } from '../template.js';
import { commentText, headerLines } from '../text.js';
import { gcd } from '../weights.js';
import { pfTier } from '../carp/index.js';
import { allowTable, allowTableName, allowedSource, fromSource, refusedRule } from '../pf/allow.js';
import { associationsRefused } from '../associations-refused.js';


const no = (why: string, instead: string): Support => ({ level: 'no', why, instead });

interface RelaydFlavour {
  target: 'relayd' | 'relayd-freebsd';
  title: string;
  /** The FreeBSD port: classic rdr rules, always round-robin, pass rules by tag. */
  freebsd: boolean;
}

/** pf's default for established TCP states (pf.conf(5) OPTIONS); relayd's own default is 600 s. */
export const SESSION_TIMEOUT = 86400;

const ICMP_NOTE =
  'this UDP service has no health check, and relayd needs one per table: lbc writes check icmp (check tcp would mark every UDP-only host down), so a host counts as up while it answers ping, whether or not the UDP service runs';

/** The pf tag the FreeBSD port's rdr rule sets and the pass rules match (PF_TAG_NAME_SIZE is 64). */
export const pfTag = (svc: Service) => `lbc-${svc.name}`;

export const DEFAULT_CHECK: HealthCheck = { check: 'tcp', intervalMs: 10000, timeoutMs: 200, rise: 1, fall: 1, port: null, http: null, banner: null, udp: null };

function sameHealth(a: HealthCheck | null, b: HealthCheck | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const groups = (svc: Service): Backend[][] => [primaries(svc), svc.backends.filter((b) => b.backup)].filter((g) => g.length > 0);

/** relayd's check is per table: the primaries share one, the backups another (seed 002: tcp, then icmp). */
function groupProblem(svc: Service): string | null {
  for (const group of groups(svc)) {
    if (!group.every((b) => sameHealth(b.health, group[0].health))) {
      return `relayd runs one check per table, shared by all its hosts, but these ${group[0].backup ? 'backups' : 'primaries'} have different health checks (or some have none)`;
    }
  }
  return null;
}

/** Why the health checks of a service cannot be written as relayd checks, or null. */
function healthProblem(svc: Service): string | null {
  const g = groupProblem(svc);
  if (g) return g;
  for (const group of groups(svc)) {
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

const unchecked = (svc: Service) => [primaries(svc), svc.backends.filter((b) => b.backup)].some((g) => g.length > 0 && !g[0].health);

const FREEBSD_ROUNDROBIN = 'the FreeBSD port of relayd loads every redirection as a round-robin pool (pfe_filter.c under __FreeBSD__: rpool.opts = PF_POOL_ROUNDROBIN, the mode and hash key are not used)';

function capabilitiesFor(f: RelaydFlavour): CapabilityTable {
  return {
    'mode.nth': { level: 'yes', note: 'mode roundrobin over the live hosts' },
    'mode.random': f.freebsd
      ? { level: 'approx', note: `${FREEBSD_ROUNDROBIN}: connections rotate over the live hosts, the same long-run shares as random but not drawn at random; lbc writes mode roundrobin, which is what happens` }
      : { level: 'yes', note: 'mode random over the live hosts' },
    'mode.hash': f.freebsd
      ? no(`${FREEBSD_ROUNDROBIN}, so a client would not keep its backend`, 'use mode nth with sticky (sticky-address keeps a client on its host), --target relayd on OpenBSD, or --target pf with `lbc agent` (source-hash over one CIDR block)')
      : { level: 'yes', note: 'mode source-hash with a key derived from the service name' },
    'protocol.udp': (svc) => (unchecked(svc) ? { level: 'approx', note: ICMP_NOTE } : { level: 'yes' }),
    'hash.fields': no('relayd redirections hash the source address only (mode source-hash)', 'use hash: [saddr], or a netfilter target'),
    weights: no('relayd tables have no weights', 'use --target pf-openbsd (weighted tables) with `lbc agent`, or equal weights'),
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
    'health.icmp': { level: 'yes', note: 'check icmp' },
    'health.udp': no(
      'relayd has no UDP check: its checks connect over TCP (check tcp, http, send/expect), ping (check icmp) or run a program (check script)',
      'use check: icmp for relayd, or `lbc agent` with --target pf or pf-openbsd, which sends the datagram',
    ),
    'health.per-backend': (svc: Service): Support => {
      const p = groupProblem(svc);
      return p ? no(p, 'give every primary the same check (and every backup the same check), or use `lbc agent` with --target pf or pf-openbsd') : { level: 'yes', note: 'one check for the table of primaries, another for the backup table' };
    },
    'ports.list': no(
      'a redirection listens on one port; several "listen on" lines would each become a pf rule with a rotation of its own, and the table forwards to one port',
      'write one service per port, or use --target pf or pf-openbsd (one rule for a range of ports) with `lbc agent`',
    ),
    'ports.range': no('a redirection listens on one port, and the table forwards to one port', 'write one service per port, or use --target pf or pf-openbsd with `lbc agent`'),
    allow: {
      level: 'yes',
      note: f.freebsd
        ? 'relayd matches any source, so the allow list is a pf table, a "no rdr" rule for everyone else before relayd\'s rdr-anchor and a block rule for them (the untranslated connections are dropped)'
        : 'relayd matches any source, so the allow list is a pf table and a quick block rule before relayd\'s anchor (the refused connections are dropped before relayd\'s rules)',
    },
    ...associationsRefused(
      'relayd redirections are pf rdr rules in its anchor: pf remembers a client only in per-flow states and in source nodes keyed by the source address alone (sticky-address), never by address and port',
    ),
    'source-nat': no(
      'relayd writes only the redirection (rdr) rules of its anchor; a source NAT rule would have to be in the main pf.conf, outside relayd',
      'compile with --target pf (or pf-openbsd), which writes the nat rule, or add a nat rule for the backends to pf.conf yourself',
    ),
  };
}

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

function checkText(hc: HealthCheck | null, svc: Service): string {
  // No check in the spec: relayd needs one anyway (parse.y "table %s has no check").
  if (!hc) return svc.protocol === 'udp' ? 'check icmp' : 'check tcp';
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
    case 'icmp':
      return 'check icmp';
    case 'udp':
      throw new Error('lbc: relayd has no UDP check; the capability table should have refused it');
  }
}

interface Forward {
  table: string;
  hosts: string[];
  line: string;
}

function forward(f: RelaydFlavour, svc: Service, table: string, group: Backend[], globalInterval: number): Forward {
  const hc = group[0].health ?? DEFAULT_CHECK;
  // The FreeBSD port rotates whatever the mode says: write what it does.
  const mode = svc.mode === 'nth' || f.freebsd ? 'roundrobin' : svc.mode === 'random' ? 'random' : `source-hash ${q(hashKey(svc))}`;
  const intervalS = hc.intervalMs / 1000;
  const opts = [`port ${group[0].port}`, `mode ${mode}`, checkText(group[0].health, svc)];
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

/**
 * pf.conf lines for a service's allow list: relayd's redirections match any source, so clients
 * outside the list are kept from them in pf. OpenBSD: relayd's rules are `pass in quick … rdr-to` in
 * its anchor, so a quick block before the anchor decides first. FreeBSD (classic rdr in relayd's
 * rdr-anchor): `no rdr` before the anchor leaves those clients untranslated (pf.conf(5): "no" — the
 * first matching translation rule decides, and a no rule translates nothing), and the block rule
 * drops them (pf/allow.ts).
 */
function allowLines(svc: Service): { table: string; noRdr: string; block: string } | null {
  const table = allowTable(svc);
  if (!table) return null;
  const af = svc.family === 'ipv4' ? 'inet' : 'inet6';
  const head = `${svc.interface ? `on ${svc.interface} ` : ''}${af} proto ${svc.protocol} from any to ${svc.vip!.address} port ${svc.port}`;
  return { table, noRdr: `no rdr ${fromSource(head, `! <${allowTableName(svc)}>`)}`, block: refusedRule(svc, head)! };
}

function emit(f: RelaydFlavour, ir: IR): OutputFile[] {
  const { interval, timeout } = globalTiming(ir);
  const services = ir.services.map((svc) => {
    const name = `lbc-${svc.name}`;
    const prim = primaries(svc);
    const backups = svc.backends.filter((b) => b.backup);
    const fw = [forward(f, svc, name, prim, interval)];
    if (backups.length) fw.push(forward(f, svc, `${name}-backup`, backups, interval));
    const listen = [`listen on ${svc.vip!.address}`];
    if (svc.protocol === 'udp') listen.push('udp');
    listen.push(`port ${svc.port}`);
    if (svc.interface) listen.push(`interface ${q(svc.interface)}`);
    const notes: string[] = [];
    if (unchecked(svc)) {
      notes.push(svc.protocol === 'udp' ? ICMP_NOTE : "the spec has no health check, but relayd needs one per table: check tcp with relayd's defaults");
    }
    notes.push(...healthApprox(svc));
    if (f.freebsd && svc.mode === 'random') notes.push('mode random is written as roundrobin: the FreeBSD port rotates every redirection');
    if (svc.sticky) notes.push(`sticky: ${svc.sticky.timeoutSeconds}s idle affinity wanted; set "set timeout src.track ${svc.sticky.timeoutSeconds}" in pf.conf`);
    const body = [listen.join(' '), ...fw.map((x) => x.line)];
    // relayd sets only the TCP established timeout from it (pfe_filter.c); see the header of this file.
    if (svc.protocol === 'tcp') body.push(`session timeout ${SESSION_TIMEOUT}`);
    if (f.freebsd) body.push(`pftag ${q(pfTag(svc))}`);
    if (svc.sticky) body.push('sticky-address');
    return {
      name,
      comment: commentText(`service ${svc.name}: ${svc.protocol} port ${svc.port}, mode ${svc.mode}`),
      notes: notes.map(commentText),
      tables: fw.map((x) => ({ name: x.table, hosts: x.hosts.join(', ') })),
      body,
      pass: `pass in quick${svc.interface ? ` on ${svc.interface}` : ''} ${svc.family === 'ipv4' ? 'inet' : 'inet6'} proto ${svc.protocol} all tagged ${pfTag(svc)} keep state`,
      allow: allowLines(svc),
    };
  });
  const header = headerLines(f.target, ir.file).map(commentText);
  const sessionTimeout = ir.services.some((s) => s.protocol === 'tcp') ? SESSION_TIMEOUT : null;
  const conf = renderTemplate('relayd', 'relayd.conf', { header, interval, timeout, sessionTimeout, freebsd: f.freebsd, services });
  const anchors = renderTemplate('relayd', 'pf-anchors', { header, freebsd: f.freebsd, services });
  return [
    { name: 'relayd.conf', content: conf },
    { name: 'pf.conf.relayd', content: anchors },
  ];
}

function define(f: RelaydFlavour): TargetDefinition {
  return {
    name: f.target,
    title: f.title,
    families: ['ipv4', 'ipv6'],
    capabilities: capabilitiesFor(f),
    // relayd's parse.y ends load_config with "no actions, nothing to do" (an error) when there is no redirection.
    refusesEmpty: { why: 'relayd refuses a configuration without redirections ("no actions, nothing to do")', instead: 'stop relayd instead, or compile for pf, which loads an empty anchor' },
    emit: (ir) => emit(f, ir),
    tier: pfTier('pf.conf.relayd', f.freebsd ? 'freebsd' : 'openbsd', f.target),
  };
}

export const relaydTarget = define({
  target: 'relayd',
  title: 'OpenBSD relayd.conf redirections (health checks in relayd) with the pf.conf anchor line they need',
  freebsd: false,
});

export const relaydFreebsdTarget = define({
  target: 'relayd-freebsd',
  title: 'relayd.conf redirections for the FreeBSD net/relayd port, with the pf.conf anchors and tagged pass rules it needs',
  freebsd: true,
});
