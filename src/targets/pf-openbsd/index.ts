/**
 * --target pf-openbsd: translation as an option of filter rules,
 *   pass in quick on IF inet proto tcp from any to VIP port N rdr-to POOL port P POOLTYPE [sticky-address] keep state (…)
 * as OpenBSD pf.conf(5) and sbin/pfctl/parse.y (filter_opt RDRTO, PROBABILITY)
 * define it since OpenBSD 4.7, and FreeBSD 15 reads it.
 *
 * How each mode is written:
 * - one backend: rdr-to ADDR port P;
 * - nth, equal weights, one port: a persistent table, round-robin (exact rotation per new connection);
 * - hash (equal weights, one port): source-hash with a fixed key, over the one CIDR block the backends
 *   make up, else over the table;
 * - random with sticky (equal weights, one port): a random pool, so sticky-address can pin sources;
 * - everything else (random; nth with unequal weights or ports): one quick rule per backend with
 *   `probability`, a cascade in which rule i takes w_i of the weight not yet assigned. pf draws the
 *   probability independently per rule and per new connection (pf.c, pf_test_rule), so the cascade is
 *   an exact weighted *random* choice; for mode nth it is an approximation (same long-run shares, no
 *   strict rotation), and the output says so.
 * OpenBSD's table weights (`10.0.0.1 weight 3`) are not used: FreeBSD 15 does not document them.
 */
import type { IR, Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import type { CapabilityTable, OutputFile, Support, TargetDefinition } from '../target.js';
import { renderTemplate } from '../template.js';
import { pfAgentDriver, pfAnchorApply } from '../../agent-bsd/pf.js';
import { bsdPlan, pfRemove, pfStatus } from '../../agent-bsd/lifecycle.js';
import { headerLines } from '../text.js';
import {
  backendAddress, cascade, endpoints, exactBlock, hashKey, interfaceSupport, isUniform, keepState, matchText, percent,
  poolName, serviceComment, sourceNatTarget,
} from '../pf/common.js';
import { pfCapabilities } from '../pf/index.js';

const no = (why: string, instead: string): Support => ({ level: 'no', why, instead });

const CASCADE_NOTE =
  'one quick rule per backend chosen by probability (pf draws per new connection): the same long-run shares as the weights, but random, not a strict rotation';

export const pfOpenbsdCapabilities: CapabilityTable = {
  'backup.port': no(
    'a backup takes the place of the primaries in the same pool (the table the agent or relayd refills), and that pool has one port',
    'run the backup on the port of the primaries, or use a Linux target with `lbc agent`',
  ),
  ...pfCapabilities,
  'mode.nth': { level: 'yes', note: 'round-robin pool when weights and ports are equal; otherwise see weights / backend ports' },
  'mode.random': { level: 'yes', note: 'a probability cascade (exact weighted random choice), or a random pool when sticky' },
  'mode.hash': (svc) =>
    exactBlock(svc) || primaries(svc).length === 1
      ? { level: 'yes', note: 'source-hash with a fixed key derived from the service name' }
      : {
          level: 'yes',
          note: 'source-hash over a table with a fixed key; needs a pf whose source-hash takes tables (OpenBSD parse.y PF_POOL_DYNTYPE; FreeBSD 15)',
        },
  weights: (svc) =>
    svc.mode === 'random'
      ? { level: 'yes', note: 'probability cascade: rule i takes w_i of the weight not yet assigned' }
      : svc.mode === 'nth'
        ? { level: 'approx', note: `weighted rotation becomes weighted random choice: ${CASCADE_NOTE}` }
        : no('a source-hash pool counts every address once', 'use equal weights, or mode random / nth'),
  'backend.ports-differ': (svc) =>
    svc.mode === 'random'
      ? { level: 'yes', note: 'one rdr-to rule per backend, each with its own port, chosen by probability' }
      : svc.mode === 'nth'
        ? { level: 'approx', note: `an rdr-to pool has one port, so each backend gets its own rule: ${CASCADE_NOTE}` }
        : no('an rdr-to pool has one port and source-hash needs one pool', 'put the backends on one port, or use mode random / nth'),
  sticky: (svc): Support => {
    if (primaries(svc).length === 1) return { level: 'yes', note: 'one backend: every source goes there anyway' };
    if (!isUniform(svc)) {
      return no(
        'unequal weights or ports need one rule per backend chosen by probability, and sticky-address only pins a source within one pool, not across rules',
        'use equal weights and one port (one pool with sticky-address), or mode hash',
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
  'backend.local': (svc) =>
    svc.family === 'ipv6'
      ? {
          level: 'no',
          why: 'an IPv6 local backend would be redirected to ::1, and the IPv6 input path drops packets for the loopback address that arrive on any other interface (ip6_input.c address-scope check), so the rule could never deliver',
          instead: 'list the instance under an IPv6 address of this host (e.g. the vip itself) as an ordinary backend address',
        }
      : { level: 'yes', note: 'rdr-to the loopback address; pf.conf(5) warns that daemons bound only to loopback become reachable' },
  local: no(
    'rdr-to applies to connections arriving on an interface; connections the balancer itself opens to the vip are not redirected',
    'connect to a backend directly, or on Linux use --target iptables or nftables (output hook)',
  ),
};

interface Block {
  comment: string[];
  tables: string[];
  rules: string[];
}

function serviceBlock(svc: Service): Block {
  const name = poolName(svc);
  const prim = primaries(svc);
  const comment = serviceComment(svc, 'pf-openbsd');
  const nat = sourceNatTarget(svc);
  // With source NAT the translated connections are tagged, and a pass out rule tagged with it translates
  // their source on the way to the backends (OpenBSD parse.y filter_opt NATTO; pf keeps a packet's tag).
  const head = nat ? `pass in quick ${matchText(svc)} tag ${name}` : `pass in quick ${matchText(svc)}`;
  const state = keepState(svc);
  const tables: string[] = [];
  const rules: string[] = [];
  const uniform = isUniform(svc);
  const port = prim[0].port;
  const eps = endpoints(svc);
  const tableOf = () => {
    tables.push(`table <${name}> persist { ${[...new Set(prim.map((b) => backendAddress(svc, b)))].join(', ')} }`);
    return `<${name}>`;
  };
  const blockOrTable = () => {
    const b = exactBlock(svc);
    return b ? `${b.address}/${b.prefixLength}` : tableOf();
  };
  if (eps.length === 1) {
    rules.push(`${head} rdr-to ${eps[0].address} port ${eps[0].port} ${state}`);
  } else if (uniform && svc.mode === 'nth') {
    rules.push(`${head} rdr-to ${tableOf()} port ${port} round-robin${svc.sticky ? ' sticky-address' : ''} ${state}`);
  } else if (uniform && svc.mode === 'hash') {
    rules.push(`${head} rdr-to ${blockOrTable()} port ${port} source-hash ${hashKey(svc)} ${state}`);
  } else if (uniform && svc.mode === 'random' && svc.sticky) {
    rules.push(`${head} rdr-to ${blockOrTable()} port ${port} random sticky-address ${state}`);
  } else {
    if (svc.mode === 'nth') comment.push(`approximation: ${CASCADE_NOTE}`);
    else comment.push('weighted random choice: rule i takes w_i of the weight not yet assigned');
    const probs = cascade(prim.map((b) => b.weight));
    prim.forEach((b, i) => {
      const p = probs[i];
      const prob = p === null ? '' : ` probability ${percent(p)}`;
      rules.push(`${head}${prob} rdr-to ${backendAddress(svc, b)} port ${b.port} ${state}`);
    });
  }
  if (nat) {
    const on = svc.interface ? ` on ${svc.interface}` : '';
    rules.push(`pass out quick${on} ${svc.family === 'ipv4' ? 'inet' : 'inet6'} proto ${svc.protocol} all tagged ${name} nat-to ${nat} keep state`);
  }
  return { comment, tables, rules };
}

function emit(ir: IR): OutputFile[] {
  const content = renderTemplate('pf-openbsd', 'pf.conf', {
    header: headerLines('pf-openbsd', ir.file),
    services: ir.services.map(serviceBlock),
  });
  return [{ name: 'lbc.pf-openbsd.conf', content }];
}

export const pfOpenbsdTarget: TargetDefinition = {
  name: 'pf-openbsd',
  title: 'pf with pass … rdr-to translation (OpenBSD ≥ 4.7, FreeBSD ≥ 15)',
  families: ['ipv4', 'ipv6'],
  capabilities: pfOpenbsdCapabilities,
  emit,
  // Into lbc's own anchor; the main pf.conf needs anchor "lbc" (agent-bsd/pf.ts).
  apply: pfAnchorApply('lbc.pf-openbsd.conf', 'pf-openbsd'),
  remove: (ctx) => pfRemove('pf-openbsd', ctx),
  status: (ctx) => pfStatus('pf-openbsd', ctx),
  plan: (files, ctx) => bsdPlan('pf-openbsd', files, ctx),
  agentDriver: pfAgentDriver('lbc.pf-openbsd.conf'),
};
