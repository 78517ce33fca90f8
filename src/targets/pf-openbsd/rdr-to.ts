/**
 * pf with translation as an option of filter rules,
 *   pass in quick on IF inet proto tcp from any to VIP port N rdr-to POOL port P POOLTYPE [sticky-address] keep state (…)
 * as OpenBSD pf.conf(5) and sbin/pfctl/parse.y (filter_opt RDRTO, PROBABILITY) define it since OpenBSD 4.7,
 * and as FreeBSD 15 reads it. Two flavours share this emitter (targets pf-openbsd and pf-freebsd15); they
 * differ in what their pf can do with a pool:
 *
 * - OpenBSD tables carry weights (`table <t> { 10.0.0.1 weight 3, … }`, parse.y host weight; pfctl
 *   regress pfr15) and round-robin over such a table is an exact weighted rotation: pfr_pool_get() lowers
 *   rpool->curweight by the table's gcd each time it wraps to the first entry, and pf_map_addr() skips
 *   entries whose weight is below it (sys/net/pf_table.c, pf_lb.c PF_POOL_ROUNDROBIN) — interleaved
 *   weighted round-robin, every entry w/gcd times per pass over the weights (after the first pass, which
 *   starts at curweight 0 and takes every entry once).
 * - FreeBSD 15 documents no table weights (FreeBSD's parse.y has no WEIGHT token, and its pfr_pool_get()
 *   has no weight argument), so unequal weights are a probability cascade there.
 * - Both draw an entry of a `random` pool over a table with arc4random_uniform() per translation (OpenBSD
 *   pf_lb.c and FreeBSD's current sys/netpfil/pf/pf_lb.c, PF_POOL_RANDOM, table case), while a random pool
 *   over a CIDR block only steps its counter when pf_map_addr() is called without an init_addr, which is
 *   how rdr calls it (OpenBSD pf_get_transaddr; FreeBSD ≤ 14 pf_get_translation); so random pools are
 *   always written over a table here.
 *
 * How each mode is written:
 * - one backend: rdr-to ADDR port P;
 * - nth, one port: a persistent table, round-robin (exact rotation per new connection); on OpenBSD with
 *   `weight` per entry when the weights differ;
 * - hash (equal weights, one port): source-hash with a fixed key, over the one CIDR block the backends
 *   make up, else over the table;
 * - random (equal weights, one port): a random pool over the table (one rule, rewritten in place by the
 *   agent, and one pool sticky-address can pin sources in);
 * - everything else (random; nth with ports that differ, and on FreeBSD 15 with unequal weights): one quick
 *   rule per backend with `probability`, a cascade in which rule i takes w_i of the weight not yet
 *   assigned. pf draws the probability independently per rule and per new connection (pf.c,
 *   pf_test_rule), so the cascade is an exact weighted *random* choice; for mode nth it is an
 *   approximation (same long-run shares, no strict rotation), and the output says so.
 */
import type { IR, Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import type { CapabilityTable, OutputFile, Support, TargetDefinition } from '../target.js';
import { renderTemplate } from '../template.js';
import { pfAgentDriver, pfAnchorApply } from '../../agent-bsd/pf.js';
import { bsdPlan, pfRemove, pfStatus } from '../../agent-bsd/lifecycle.js';
import { pfTier } from '../carp/index.js';
import { headerLines } from '../text.js';
import {
  backendAddress, cascade, endpoints, exactBlock, hashKey, interfaceSupport, keepState, localBackendSupport, matchText, percent,
  poolName, poolPort, portsSupport, serviceComment, sourceNatTarget,
} from '../pf/common.js';
import { allowTable, allowedSource, fromSource, refusedRule } from '../pf/allow.js';
import { pfCapabilities } from '../pf/index.js';

export interface RdrToFlavour {
  target: 'pf-openbsd' | 'pf-freebsd15';
  title: string;
  /** Lines of the file header saying which pf reads it and how to load it. */
  about: string[];
  /** Tables may carry `weight` (OpenBSD). */
  tableWeights: boolean;
  /** Whose host files (CARP, pfsync) a balancer tier gets: OpenBSD's hostname.if or FreeBSD's rc.conf. */
  os: 'openbsd' | 'freebsd';
}

const no = (why: string, instead: string): Support => ({ level: 'no', why, instead });

const CASCADE_NOTE =
  'one quick rule per backend chosen by probability (pf draws per new connection): the same long-run shares as the weights, but random, not a strict rotation';

/** Same port on every primary: one pool can carry the service. */
function onePort(svc: Service): boolean {
  const p = primaries(svc);
  return p.every((b) => b.port === p[0].port);
}

function equalWeights(svc: Service): boolean {
  const p = primaries(svc);
  return p.every((b) => b.weight === p[0].weight);
}

/** What the service is written as (see the header): the one decision both the capability table and the emitter use. */
type Form = 'single' | 'table-rotation' | 'source-hash' | 'random-pool' | 'cascade';

function formOf(f: RdrToFlavour, svc: Service): Form {
  if (endpoints(svc).length === 1) return 'single';
  const pooled = onePort(svc) && equalWeights(svc);
  if (svc.mode === 'nth' && onePort(svc) && (equalWeights(svc) || f.tableWeights)) return 'table-rotation';
  if (svc.mode === 'hash' && pooled) return 'source-hash';
  // A table the agent can rewrite beats a cascade it must reload.
  if (svc.mode === 'random' && pooled) return 'random-pool';
  return 'cascade';
}

export function rdrToCapabilities(f: RdrToFlavour): CapabilityTable {
  return {
    'backup.port': no(
      'a backup takes the place of the primaries in the same pool (the table the agent or relayd refills), and that pool has one port',
      'run the backup on the port of the primaries, or use a Linux target with `lbc agent`',
    ),
    ...pfCapabilities,
    'mode.nth': { level: 'yes', note: 'round-robin pool when the primaries share a port; otherwise see weights / backend ports' },
    'mode.random': { level: 'yes', note: 'a random pool over a table, or a probability cascade (exact weighted random choice) for unequal weights or ports' },
    'mode.hash': (svc) =>
      exactBlock(svc) || primaries(svc).length === 1
        ? { level: 'yes', note: 'source-hash with a fixed key derived from the service name' }
        : {
            level: 'yes',
            note: 'source-hash over a table with a fixed key; needs a pf whose source-hash takes tables (OpenBSD parse.y PF_POOL_DYNTYPE; FreeBSD 15)',
          },
    weights: (svc) => {
      if (svc.mode === 'random') return { level: 'yes', note: 'probability cascade: rule i takes w_i of the weight not yet assigned' };
      if (svc.mode === 'hash') return no('a source-hash pool counts every address once', 'use equal weights, or mode random / nth');
      if (formOf(f, svc) === 'table-rotation') {
        return { level: 'yes', note: 'a round-robin table with a weight per entry: exact weighted rotation (pf_table.c pfr_pool_get, pf_lb.c)' };
      }
      return f.tableWeights || !onePort(svc)
        ? { level: 'approx', note: `weighted rotation over backends on different ports becomes weighted random choice: ${CASCADE_NOTE}` }
        : { level: 'approx', note: `FreeBSD tables have no weights, so weighted rotation becomes weighted random choice: ${CASCADE_NOTE}` };
    },
    'backend.ports-differ': (svc) =>
      svc.mode === 'random'
        ? { level: 'yes', note: 'one rdr-to rule per backend, each with its own port, chosen by probability' }
        : svc.mode === 'nth'
          ? { level: 'approx', note: `an rdr-to pool has one port, so each backend gets its own rule: ${CASCADE_NOTE}` }
          : no('an rdr-to pool has one port and source-hash needs one pool', 'put the backends on one port, or use mode random / nth'),
    sticky: (svc): Support => {
      const form = formOf(f, svc);
      if (form === 'single') return { level: 'yes', note: 'one backend: every source goes there anyway' };
      if (form === 'cascade') {
        return no(
          'unequal weights or ports need one rule per backend chosen by probability, and sticky-address only pins a source within one pool, not across rules',
          f.tableWeights ? 'use mode nth (a weighted table), one port, or mode hash' : 'use equal weights and one port (one pool with sticky-address), or mode hash',
        );
      }
      return svc.mode === 'hash'
        ? { level: 'yes', note: 'source-hash already sends a source to one backend while the pool is unchanged' }
        : { level: 'yes', note: 'sticky-address with a per-rule src.track timeout' };
    },
    'vip.none': (svc) =>
      svc.interface
        ? { level: 'approx', note: `matches the addresses of ${svc.interface} ("to (${svc.interface})", updated when they change), not every local address` }
        : no('a translation rule needs a destination; lbc does not write "self", which FreeBSD does not document', 'give the service a vip, or an interface'),
    interface: interfaceSupport,
    'backend.local': (svc) => localBackendSupport(svc, 'rdr-to the loopback address; pf.conf(5) warns that daemons bound only to loopback become reachable'),
    local: no(
      'rdr-to applies to connections arriving on an interface; connections the balancer itself opens to the vip are not redirected',
      'connect to a backend directly, or on Linux use --target iptables or nftables (output hook)',
    ),
    allow: { level: 'yes', note: 'a const table of the client blocks in the rules\' "from", and a quick block drop rule for everyone else' },
    'ports.list': portsSupport,
    'ports.range': portsSupport,
  };
}

interface Block {
  comment: string[];
  tables: string[];
  rules: string[];
}

function serviceBlock(f: RdrToFlavour, svc: Service): Block {
  const name = poolName(svc);
  const prim = primaries(svc);
  const comment = serviceComment(svc, f.target);
  const nat = sourceNatTarget(svc);
  // With source NAT the translated connections are tagged, and a pass out rule tagged with it translates
  // their source on the way to the backends (OpenBSD parse.y filter_opt NATTO; pf keeps a packet's tag).
  const head = `pass in quick ${fromSource(matchText(svc), allowedSource(svc))}${nat ? ` tag ${name}` : ''}`;
  const state = keepState(svc);
  const tables: string[] = [];
  const rules: string[] = [];
  const allow = allowTable(svc);
  if (allow) tables.push(allow);
  const port = poolPort(svc, prim[0]);
  const eps = endpoints(svc);
  const tableOf = (weighted: boolean) => {
    // A backend listed twice (same address) counts once in a table; its weights add up.
    const weights = new Map<string, number>();
    for (const b of prim) weights.set(backendAddress(svc, b), (weights.get(backendAddress(svc, b)) ?? 0) + b.weight);
    const entries = [...weights].map(([a, w]) => (weighted ? `${a} weight ${w}` : a));
    tables.push(`table <${name}> persist { ${entries.join(', ')} }`);
    return `<${name}>`;
  };
  const form = formOf(f, svc);
  if (form === 'single') {
    rules.push(`${head} rdr-to ${eps[0].address} port ${eps[0].port} ${state}`);
  } else if (form === 'table-rotation') {
    const weighted = !equalWeights(svc);
    if (weighted) comment.push('exact weighted rotation: round-robin over a table with a weight per entry (pf_lb.c, pf_table.c pfr_pool_get)');
    rules.push(`${head} rdr-to ${tableOf(weighted)} port ${port} round-robin${svc.sticky ? ' sticky-address' : ''} ${state}`);
  } else if (form === 'source-hash') {
    const b = exactBlock(svc);
    rules.push(`${head} rdr-to ${b ? `${b.address}/${b.prefixLength}` : tableOf(false)} port ${port} source-hash ${hashKey(svc)} ${state}`);
  } else if (form === 'random-pool') {
    rules.push(`${head} rdr-to ${tableOf(false)} port ${port} random${svc.sticky ? ' sticky-address' : ''} ${state}`);
  } else {
    if (svc.mode === 'nth') comment.push(`approximation: ${CASCADE_NOTE}`);
    else comment.push('weighted random choice: rule i takes w_i of the weight not yet assigned');
    const probs = cascade(prim.map((b) => b.weight));
    prim.forEach((b, i) => {
      const p = probs[i];
      const prob = p === null ? '' : ` probability ${percent(p)}`;
      rules.push(`${head}${prob} rdr-to ${backendAddress(svc, b)} port ${poolPort(svc, b)} ${state}`);
    });
  }
  // After the service's pass rules, which take the allowed clients first (quick).
  const refused = refusedRule(svc, matchText(svc));
  if (refused) rules.push(refused);
  if (nat) {
    const on = svc.interface ? ` on ${svc.interface}` : '';
    rules.push(`pass out quick${on} ${svc.family === 'ipv4' ? 'inet' : 'inet6'} proto ${svc.protocol} all tagged ${name} nat-to ${nat} keep state`);
  }
  return { comment, tables, rules };
}

export function rdrToTarget(f: RdrToFlavour): TargetDefinition {
  const file = `lbc.${f.target}.conf`;
  return {
    name: f.target,
    title: f.title,
    families: ['ipv4', 'ipv6'],
    capabilities: rdrToCapabilities(f),
    emit: (ir: IR): OutputFile[] => [
      {
        name: file,
        content: renderTemplate('pf-openbsd', 'pf.conf', { header: headerLines(f.target, ir.file), about: f.about, services: ir.services.map((s) => serviceBlock(f, s)) }),
      },
    ],
    // Into lbc's own anchor; the main pf.conf needs anchor "lbc" (agent-bsd/pf.ts).
    apply: pfAnchorApply(file, f.target),
    agentDriver: pfAgentDriver(file),
    remove: (ctx) => pfRemove(f.target, ctx),
    status: (ctx) => pfStatus(f.target, ctx),
    plan: (files, ctx) => bsdPlan(f.target, files, ctx),
    tier: pfTier(file, f.os, f.target),
  };
}
