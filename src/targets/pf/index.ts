/**
 * --target pf: FreeBSD's classic pf translation ruleset,
 *   table <lbc-NAME> persist { … }
 *   rdr on IF inet proto tcp from any to VIP port N tag lbc-NAME -> POOL port P POOLTYPE [sticky-address]
 *   pass in quick on IF inet proto tcp all tagged lbc-NAME keep state (src.track S)
 * as pf.conf(5) and sbin/pfctl/parse.y (natrule, pool_opts) of FreeBSD ≤ 14
 * define it; FreeBSD 15 still accepts it.
 */
import type { IR, Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import type { CapabilityTable, OutputFile, Support, TargetDefinition } from '../target.js';
import { renderTemplate } from '../template.js';
import { pfAgentDriver, pfAnchorApply } from '../../agent-bsd/pf.js';
import { bsdPlan, pfRemove, pfStatus } from '../../agent-bsd/lifecycle.js';
import { headerLines } from '../text.js';
import { pfTier } from '../carp/index.js';
import { associationsRefused } from '../associations-refused.js';
import {
  MAX_REPEATED_ENTRIES, backendAddress, exactBlock, hashKey, interfaceSupport, keepState, localBackendSupport, matchText, poolName,
  poolPort, portsSupport, reducedWeights, serviceComment, smoothOrder, sourceNatSupport, sourceNatTarget,
} from './common.js';
import { allowTable, allowedSource, fromSource, refusedRule } from './allow.js';

const no = (why: string, instead: string): Support => ({ level: 'no', why, instead });

/**
 * FreeBSD's rdr calls pf_map_addr() without an init_addr (pf_lb.c pf_get_translation, case PF_RDR), and
 * PF_POOL_RANDOM draws a random address only when one is given; otherwise it steps rpool->counter
 * (PF_AINC) and masks it into the block. So a `random` rdr pool hands out the block's addresses in
 * turn: every address gets its share, but the sequence is a fixed rotation, not independent draws.
 */
export const RANDOM_BLOCK_NOTE =
  'a classic rdr "random" pool steps through the block in turn (FreeBSD pf_lb.c: pf_map_addr without init_addr increments the pool counter), so every backend gets its share but the choice is a fixed rotation, not an independent random draw per connection';

export const pfCapabilities: CapabilityTable = {
  'mode.nth': { level: 'yes', note: 'round-robin pool: the next backend for every new connection (new source with sticky)' },
  'mode.random': (svc) =>
    exactBlock(svc)
      ? primaries(svc).length === 1
        ? { level: 'yes', note: 'one backend: no choice to make' }
        : { level: 'approx', note: RANDOM_BLOCK_NOTE }
      : no(
          'a classic rdr rule takes random only over a single CIDR block; a list or a table forces round-robin (pf.conf(5) POOL OPTIONS; pfctl: "only round-robin valid for multiple redirection addresses")',
          'use --target pf-openbsd (weighted random by probability rules), mode nth (round-robin, same long-run shares), or backends that make up exactly one CIDR block',
        ),
  'mode.hash': (svc) =>
    exactBlock(svc)
      ? { level: 'yes', note: 'source-hash over the one CIDR block the backends make up, with a fixed key derived from the service name' }
      : no(
          'a classic rdr rule takes source-hash only over a single CIDR block; a list or a table forces round-robin (pf.conf(5) POOL OPTIONS)',
          'use --target pf-openbsd (source-hash over a table), mode nth with sticky, or backends that make up exactly one CIDR block',
        ),
  'hash.fields': no('pf source-hash hashes the source address only', 'use hash: [saddr], or a netfilter target (iptables, nftables) for other fields'),
  weights: (svc) => {
    if (svc.mode !== 'nth') {
      return no(
        'random and source-hash pools are one CIDR block in which every address counts once',
        'use mode nth (weights by repeating addresses in a round-robin list) or --target pf-openbsd (probability rules)',
      );
    }
    const n = reducedWeights(svc).reduce((s, x) => s + x, 0);
    if (n > MAX_REPEATED_ENTRIES) {
      return no(
        `weights are written by repeating addresses in a round-robin list; these weights need ${n} entries (limit ${MAX_REPEATED_ENTRIES})`,
        'use smaller weights with the same ratios, or --target pf-openbsd',
      );
    }
    return {
      level: 'approx',
      note: 'weights become repeated addresses in an inline round-robin list (FreeBSD has no table weights; pf_lb.c visits every list entry): exact shares per cycle, and the list is fixed at load time so a health agent cannot rewrite it',
    };
  },
  sticky: (svc) =>
    svc.mode === 'hash'
      ? { level: 'yes', note: 'source-hash already sends a source to one backend while the pool is unchanged' }
      : { level: 'yes', note: 'sticky-address with a per-rule src.track timeout on the pass rule' },
  'vip.none': (svc) =>
    svc.interface
      ? { level: 'approx', note: `matches the addresses of ${svc.interface} ("to (${svc.interface})", updated when they change), not every local address` }
      : no('a translation rule needs a destination and pf has no "any local address" short of listing them', 'give the service a vip, or an interface (the rule then matches that interface\'s addresses)'),
  interface: interfaceSupport,
  'backend.local': (svc) => localBackendSupport(svc, 'redirected to the loopback address (pf.conf(5) TRANSLATION: redirections may go "to the firewall itself")'),
  'backend.ports-differ': no(
    'a FreeBSD rdr rule has one redirection port for its whole pool ("-> pool port P"), and a port range there maps the matched port by offset, it does not rotate (pf_lb.c: nport = (dport - dst.port[0]) % size + proxy_port[0])',
    'use --target pf-openbsd (one probability rule per backend) or --target ipnat, or give every instance its own address (e.g. loopback aliases 127.0.0.2, 127.0.0.3, …) on one port',
  ),
  local: no(
    'pf translates packets passing an interface; connections the balancer itself opens to the vip are not redirected (pf.conf(5) TRANSLATION)',
    'connect to a backend directly, or on Linux use --target iptables or nftables (output hook)',
  ),
  health: { level: 'yes', note: 'checks run in relayd or the lbc health agent, which rewrite table <lbc-NAME>; the ruleset itself has no checks' },
  'backup.port': no(
    'a backup takes the place of the primaries in the same pool (the table the agent or relayd refills), and that pool has one port',
    'run the backup on the primaries\' port (e.g. { port: P, backup: true } (P being the port of the primaries) for a local fallback), or use a Linux target with `lbc agent`',
  ),
  backup: { level: 'approx', note: 'backups are not in the static ruleset; the health agent or relayd puts them into the table when every primary is down' },
  allow: { level: 'yes', note: 'a const table of the client blocks, translation only from it, and a quick block drop rule for everyone else' },
  'ports.list': portsSupport,
  'ports.range': portsSupport,
  'source-nat': sourceNatSupport,
  ...associationsRefused(
    'pf remembers where a client went only in its states (one per flow, gone at their timeout or with `pfctl -F states`) and in source nodes keyed by the source address alone (sticky-address; pf_find_src_node() in pf.c): nothing keeps a client address and port on its backend across flows, or lets a backend start one',
  ),
};

interface Block {
  comment: string[];
  tables: string[];
  rdr: string[];
  nat: string[];
  pass: string[];
}

function serviceBlock(svc: Service): Block {
  const name = poolName(svc);
  const prim = primaries(svc);
  const port = poolPort(svc, prim[0]);
  const comment = serviceComment(svc, 'pf');
  const tables: string[] = [];
  const allow = allowTable(svc);
  if (allow) tables.push(allow);
  let pool: string;
  if (svc.mode === 'nth') {
    const weights = reducedWeights(svc);
    if (weights.every((w) => w === weights[0])) {
      // A persistent table: relayd or the health agent can replace its contents (pfctl -t lbc-NAME -T replace …).
      const addrs = [...new Set(prim.map((b) => backendAddress(svc, b)))];
      tables.push(`table <${name}> persist { ${addrs.join(', ')} }`);
      pool = `<${name}> port ${port} round-robin`;
    } else {
      const order = smoothOrder(prim.map((b) => backendAddress(svc, b)), weights);
      comment.push('approximation: weights by repetition in an inline round-robin list (FreeBSD tables have no weights)');
      pool = `{ ${order.join(', ')} } port ${port} round-robin`;
    }
    if (svc.sticky) pool += ' sticky-address';
  } else {
    const block = exactBlock(svc)!;
    const single = prim.length === 1;
    const target = single ? block.address : `${block.address}/${block.prefixLength}`;
    if (single) pool = `${target} port ${port}`;
    else if (svc.mode === 'random') {
      comment.push(`approximation: ${RANDOM_BLOCK_NOTE}`);
      pool = `${target} port ${port} random${svc.sticky ? ' sticky-address' : ''}`;
    }
    else pool = `${target} port ${port} source-hash ${hashKey(svc)}`;
  }
  const on = svc.interface ? ` on ${svc.interface}` : '';
  const af = svc.family === 'ipv4' ? 'inet' : 'inet6';
  const refused = refusedRule(svc, matchText(svc));
  // Source NAT: the rdr rule's tag marks the connections on their way out too (pf keeps a packet's tag),
  // so a nat rule `tagged` with it translates exactly those (FreeBSD parse.y natrule takes tagged), and
  // they are passed out even under a default block. pf.conf(5) TRANSLATION: rdr and nat on one interface.
  const nat = sourceNatTarget(svc);
  return {
    comment,
    tables,
    rdr: [`rdr ${fromSource(matchText(svc), allowedSource(svc))} tag ${name} -> ${pool}`],
    nat: nat ? [`nat${on} ${af} proto ${svc.protocol} all tagged ${name} -> ${nat}`] : [],
    pass: [
      ...(refused ? [refused] : []),
      `pass in quick${on} ${af} proto ${svc.protocol} all tagged ${name} ${keepState(svc)}`,
      ...(nat ? [`pass out quick${on} ${af} proto ${svc.protocol} all tagged ${name} keep state`] : []),
    ],
  };
}

function emit(ir: IR): OutputFile[] {
  const content = renderTemplate('pf', 'pf.conf', {
    header: headerLines('pf', ir.file),
    services: ir.services.map(serviceBlock),
  });
  return [{ name: 'lbc.pf.conf', content }];
}

export const pfTarget: TargetDefinition = {
  name: 'pf',
  title: 'FreeBSD pf, classic rdr translation rules (FreeBSD ≤ 14, read by 15)',
  families: ['ipv4', 'ipv6'],
  capabilities: pfCapabilities,
  emit,
  // Into lbc's own anchor; the main pf.conf needs rdr-anchor "lbc" and anchor "lbc" (agent-bsd/pf.ts).
  apply: pfAnchorApply('lbc.pf.conf', 'pf'),
  remove: (ctx) => pfRemove('pf', ctx),
  status: (ctx) => pfStatus('pf', ctx),
  plan: (files, ctx) => bsdPlan('pf', files, ctx),
  agentDriver: pfAgentDriver('lbc.pf.conf'),
  tier: pfTier('lbc.pf.conf', 'freebsd', 'pf'),
};
