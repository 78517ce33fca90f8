/**
 * iptables-restore / ip6tables-restore input for lbc's own chains.
 *
 * Layout (chosen for load time and per-connection cost at 10,000 services; see tree.ts):
 *   nat    LBC-PREROUTING  dispatch: a tree on (vip, port) for single-address vips, then the services
 *                          without a vip or with a CIDR vip, in spec order (so a single-address vip takes
 *                          precedence over a vip-less or CIDR service matching the same packet)
 *   nat    LBC-OUTPUT      the same for services with `local: true` (connections made on the balancer)
 *   nat    LBC-S-<name>    one chain per service: the balancing cascade with the DNAT inline. When the
 *                          dispatch is a tree (more than FLAT_MAX services), a service that needs nothing
 *                          else (single-address vip, not sticky, not local) has no chain: its cascade sits
 *                          in its tree leaf, every rule carrying the service's whole match, because each
 *                          chain costs the --noflush loader far more than a rule (tree.ts)
 *   nat    LBC-B-<name>-<i> only for sticky services: record the client in the backend's ipset, then DNAT
 *   mangle LBC-PREROUTING / LBC-OUTPUT  only for mode hash: HMARK on the first packet of a connection
 * The built-in chains' jumps into LBC-PREROUTING / LBC-OUTPUT are added by apply(), not by this file.
 */
import { createHash } from 'node:crypto';
import type { Backend, Family, HashField, IR, Service } from '../../ir/types.js';
import { primaries } from '../../ir/types.js';
import type { OutputFile } from '../target.js';
import { commentText, headerLines } from '../text.js';
import { renderTemplate } from '../template.js';
import { buildTree, FLAT_MAX, type TreeItem } from './tree.js';
import { markBlocks, randomProbabilities, type MarkBlock } from './slots.js';
import { rotationPlan, type RotationPlan } from './rotation.js';
import { appendAll } from '../arrays.js';
import { allowSetLines, guardChain, guardRules, portMatches, shadowing } from './access.js';
import { hasSeveralPorts } from '../../ir/types.js';
import { portsText } from '../../ir/ports.js';
import { associationRules } from './associations.js';
import { sourceNatRules } from './source-nat.js';

export interface Flavor {
  target: 'iptables' | 'ip6tables';
  family: Family;
  /** Command prefix: iptables / ip6tables (-save, -restore). */
  tool: 'iptables' | 'ip6tables';
  rulesFile: string;
  ipsetFile: string;
  /** ipset names are global to the host (not per family), so each flavor owns its own prefix. */
  setPrefix: string;
}

export const IPV4: Flavor = { target: 'iptables', family: 'ipv4', tool: 'iptables', rulesFile: 'iptables.rules', ipsetFile: 'ipset.rules', setPrefix: 'LBC4-' };
export const IPV6: Flavor = { target: 'ip6tables', family: 'ipv6', tool: 'ip6tables', rulesFile: 'ip6tables.rules', ipsetFile: 'ipset6.rules', setPrefix: 'LBC6-' };

/** Chains lbc jumps to from the built-in chains: [table, built-in chain, lbc chain]. */
export const ENTRY_POINTS: ReadonlyArray<readonly [string, string, string]> = [
  ['nat', 'PREROUTING', 'LBC-PREROUTING'],
  ['nat', 'OUTPUT', 'LBC-OUTPUT'],
  ['mangle', 'PREROUTING', 'LBC-PREROUTING'],
  ['mangle', 'OUTPUT', 'LBC-OUTPUT'],
  // UDP associations (associations.ts): raw for every packet, nat POSTROUTING for backends' new flows.
  ['raw', 'PREROUTING', 'LBC-PREROUTING'],
  ['nat', 'POSTROUTING', 'LBC-POSTROUTING'],
];

/**
 * First HMARK mark value; hash value v of a service is marked MARK_BASE + v. A high, recognisable
 * base keeps clear of the small marks policy routing usually uses and of kube-proxy's 0x4000 bit.
 * Its low 17 bits are zero, so every mark block (slots.ts markBlocks, at most 2^9 values for weights
 * up to 1000) stays aligned after the base is added.
 */
export const MARK_BASE = 0x4c420000;

const HMARK_TUPLE: Record<HashField, string> = { saddr: 'src', daddr: 'dst', sport: 'sport', dport: 'dport' };

export function serviceChain(svc: Service): string {
  return `LBC-S-${svc.name}`;
}
export function backendChain(svc: Service, b: Backend): string {
  return `LBC-B-${svc.name}-${b.index}`;
}
export function setName(flavor: Flavor, svc: Service, b: Backend): string {
  return `${flavor.setPrefix}${svc.name}-${b.index}`;
}

/** A seed for HMARK that depends only on the service name: same spec, same bytes, same spread. */
export function hmarkSeed(name: string): string {
  return `0x${createHash('sha256').update(`lbc hmark ${name}`).digest('hex').slice(0, 8)}`;
}

function destination(family: Family, address: string, port: number): string {
  return family === 'ipv6' ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The full matches of a service: one, or one per multiport chunk for several ports (access.ts). */
function serviceMatches(svc: Service, hook: 'pre' | 'out'): string[] {
  const parts: string[] = [];
  if (svc.vip) parts.push(`-d ${svc.vip.address}/${svc.vip.prefixLength}`);
  // IR: no vip means any local address of the balancer (kube-proxy's nodeport form).
  else parts.push('-m addrtype --dst-type LOCAL');
  // Locally made connections have no inbound interface; `interface` only limits forwarded traffic.
  if (svc.interface && hook === 'pre') parts.push(`-i ${svc.interface}`);
  const head = parts.join(' ');
  return portMatches(svc).map((p) => `${head} ${p}`);
}

/** DNAT/REDIRECT for one backend. A port in the target needs `-p` in the same rule (libxt_DNAT, libxt_REDIRECT). */
function natAction(svc: Service, b: Backend): string {
  // No port: the connection keeps the destination port the client chose (a service with several ports).
  if (b.address === null) return b.keepsPort ? '-j REDIRECT' : `-j REDIRECT --to-ports ${b.port}`;
  return `-j DNAT --to-destination ${b.keepsPort ? b.address : destination(svc.family, b.address, b.port)}`;
}

function hmarkAction(svc: Service, modulus: number): string {
  const tuple = svc.hashFields.map((f) => HMARK_TUPLE[f]).join(',');
  return `-j HMARK --hmark-tuple ${tuple} --hmark-mod ${modulus} --hmark-offset 0x${MARK_BASE.toString(16)} --hmark-rnd ${hmarkSeed(svc.name)}`;
}

/** `--mark VALUE/MASK` for one block of hash values (aligned to its power-of-two size). */
function markMatch(block: MarkBlock): string {
  const value = MARK_BASE + block.offset;
  if (value % block.size !== 0) throw new Error('lbc: mark block not aligned; please report this');
  // Written as iptables-save prints it (libxt_mark: no mask when it is 0xffffffff), so a save compares equal.
  if (block.size === 1) return `-m mark --mark 0x${value.toString(16)}`;
  const mask = (0xffffffff - (block.size - 1)) >>> 0;
  return `-m mark --mark 0x${value.toString(16)}/0x${mask.toString(16)}`;
}

interface Table {
  chains: string[];
  lines: string[];
}

function describeService(svc: Service, rotation: RotationPlan | null): string {
  const vip = svc.vip ? `${svc.vip.address}${svc.vip.isHost ? '' : `/${svc.vip.prefixLength}`}` : 'any local address';
  const ports = hasSeveralPorts(svc) ? `${svc.protocol} ports ${portsText(svc.ports)} (one rotation for all)` : `${svc.protocol}/${svc.port}`;
  const prim = primaries(svc);
  const skipped = svc.backends.length - prim.length;
  return commentText(
    `service ${svc.name}: ${vip} ${ports}${svc.interface ? ` in on ${svc.interface}` : ''}, mode ${svc.mode}` +
      `${svc.mode === 'hash' ? ` (${svc.hashFields.join(',')})` : ''}${svc.sticky ? `, sticky ${svc.sticky.timeoutSeconds}s` : ''}` +
      `${svc.local ? ', also local' : ''}${svc.allow ? `, only from the ${svc.allow.length} client block(s) of its allow list` : ''}` +
      `, ${prim.length} backend(s)${skipped ? `, ${skipped} backup(s) left to lbc agent` : ''}` +
      `${rotation && rotation.rules.length < rotation.period ? `, exact rotation over ${rotation.period} connections in ${rotation.rules.length} rules` : ''}`,
  );
}

export function emitIptables(flavor: Flavor, ir: IR): OutputFile[] {
  // Services with UDP associations have rules of their own (associations.ts).
  const assoc = associationRules(flavor, ir.services);
  const services = ir.services.filter((s) => s.family === flavor.family && !s.associations);
  const nat: Table = { chains: ['LBC-PREROUTING'], lines: [] };
  const mangle: Table = { chains: [], lines: [] };
  // hosts: host vips with several ports, which the tree (one port per item) cannot hold; they go
  // right after the tree's root rules, before the CIDR and vip-less services (`rest`).
  type Dispatch = { tree: TreeItem[]; hosts: string[]; rest: string[] };
  const natPre: Dispatch = { tree: [], hosts: [], rest: [] };
  const natOut: Dispatch = { tree: [], hosts: [], rest: [] };
  const manglePre: Dispatch = { tree: [], hosts: [], rest: [] };
  const mangleOut: Dispatch = { tree: [], hosts: [], rest: [] };
  const guards: string[] = [];
  const guardChains: string[] = [];
  const serviceLines: string[] = [];
  const serviceChains: string[] = [];
  const sets: string[] = [];

  // Services the tree can hold whole. Sticky ones jump to per-backend chains; local ones are balanced
  // from two hooks with one set of nth counters, which needs one chain both jump to.
  const treeMode = services.filter((s) => s.vip?.isHost).length > FLAT_MAX;
  // Several ports share one rotation, so their dispatch rules all jump to one chain: never inline.
  const inline = (svc: Service) => treeMode && !!svc.vip?.isHost && !svc.sticky && !svc.local && !hasSeveralPorts(svc);
  const localServices = services.filter((s) => s.local);

  let hashedAny = false;
  for (const svc of services) {
    const prim = primaries(svc);
    const chain = serviceChain(svc);
    const weights = prim.map((b) => b.weight);
    const rotation = svc.mode === 'nth' ? rotationPlan(weights) : null;
    const blocks = svc.mode === 'hash' ? markBlocks(weights) : [];
    const modulus = blocks.reduce((s, b) => s + b.size, 0);
    const hashed = blocks.length > 1;

    const addDispatch = (dst: Dispatch, rules: string[], hook: 'pre' | 'out', comment?: string) => {
      const full = serviceMatches(svc, hook).flatMap((m) => rules.map((r) => `${m} ${r}`));
      if (svc.vip?.isHost && !hasSeveralPorts(svc)) dst.tree.push({ family: svc.family, address: svc.vip.address, port: svc.port, protocol: svc.protocol, rules: full, comment });
      else if (svc.vip?.isHost) appendAll(dst.hosts, full);
      else appendAll(dst.rest, full);
    };
    if (svc.allow) {
      // Before any HMARK of the same service: a refused client is dropped, an allowed one marked next.
      const chain = guardChain(svc);
      guardChains.push(chain);
      guards.push(`# allow list of service ${svc.name}: clients outside it are dropped before translation`);
      appendAll(guards, guardRules(flavor, svc, shadowing(svc, services), (t) => serviceMatches(t, 'pre')));
      addDispatch(manglePre, [`-j ${chain}`], 'pre');
      if (svc.local) {
        // Locally made connections: the OUTPUT dispatch holds only local services, and has no interfaces.
        const out = `LBC-A-O-${svc.name}`;
        guardChains.push(out);
        appendAll(guards, guardRules(flavor, svc, shadowing(svc, localServices), (t) => serviceMatches(t, 'out')).map((r) => r.replace(`-A ${chain} `, `-A ${out} `)));
        addDispatch(mangleOut, [`-j ${out}`], 'out');
      }
      sets.push(...allowSetLines(flavor, svc));
    }
    if (hashed) {
      hashedAny = true;
      addDispatch(manglePre, [hmarkAction(svc, modulus)], 'pre');
      if (svc.local) addDispatch(mangleOut, [hmarkAction(svc, modulus)], 'out');
    }

    // The balancing rules without the service match: what goes into the service chain, or, inline, after
    // the service match. Inline, each rule's statistic (or mark) match comes after the whole service match,
    // so it is evaluated only for packets of this service: -d, -i and -p are checked before any -m match,
    // the -m matches in the order written, and the first that fails ends the rule (ipt_do_table in
    // net/ipv4/netfilter/ip_tables.c; with the nf_tables backend, nft_do_chain in
    // net/netfilter/nf_tables_core.c, where a failed comparison breaks off the rule). xt_statistic moves
    // its nth counter only when its match function runs (net/netfilter/xt_statistic.c), so every
    // service's nth cascade counts only its own connections, as in a chain of its own.
    // test/kernel/iptables-scale.test.ts checks this with services on one vip, where only the port differs.
    const inlined = inline(svc);
    const proto = svc.sticky || inlined ? '' : `-p ${svc.protocol} `;
    const action = (b: Backend) => (svc.sticky ? `-j ${backendChain(svc, b)}` : natAction(svc, b));
    const body: string[] = [];
    if (svc.sticky) {
      // Affinity before balancing: a client seen recently goes back to its backend. ipset instead of
      // xt_recent, whose lists hold 100 addresses by default (ip_list_tot) and then forget clients.
      for (const b of prim) body.push(`-m set --match-set ${setName(flavor, svc, b)} src -j ${backendChain(svc, b)}`);
    }
    if (svc.mode === 'random') {
      const probs = randomProbabilities(prim.map((b) => b.weight));
      prim.forEach((b, i) => {
        const cond = i < probs.length ? `-m statistic --mode random --probability ${probs[i]} ` : '';
        body.push(`${proto}${cond}${action(b)}`);
      });
    } else if (rotation) {
      // The plain cascade, or past PLAIN_MAX slots the composed one; rotation.ts proves both exact.
      for (const r of rotation.rules) {
        const cond = r.every === null ? '' : `-m statistic --mode nth --every ${r.every} --packet 0 `;
        body.push(`${proto}${cond}${action(prim[r.backend])}`);
      }
    } else {
      // HMARK marked the connection's first packet MARK_BASE + (hash mod W) in mangle; each block of
      // values is one value/mask match. The last block is unconditional, so a packet whose mark was
      // changed in between still reaches a backend.
      blocks.forEach((block, k) => {
        const cond = k < blocks.length - 1 ? `${markMatch(block)} ` : '';
        body.push(`${proto}${cond}${action(prim[block.backend])}`);
      });
    }

    if (inlined) {
      addDispatch(natPre, body, 'pre', describeService(svc, rotation));
      continue;
    }
    serviceChains.push(chain);
    addDispatch(natPre, [`-j ${chain}`], 'pre');
    if (svc.local) addDispatch(natOut, [`-j ${chain}`], 'out');
    serviceLines.push(`# ${describeService(svc, rotation)}`);
    for (const r of body) serviceLines.push(`-A ${chain} ${r}`);
    if (svc.sticky) {
      for (const b of prim) {
        const bc = backendChain(svc, b);
        const set = setName(flavor, svc, b);
        serviceChains.push(bc);
        // --exist re-adds a known client, which restarts its timeout (ipset(8), SET target in iptables-extensions(8)).
        serviceLines.push(`-A ${bc} -j SET --add-set ${set} src --exist`, `-A ${bc} -p ${svc.protocol} ${natAction(svc, b)}`);
        sets.push(`create ${set} hash:ip family ${svc.family === 'ipv4' ? 'inet' : 'inet6'} timeout ${svc.sticky.timeoutSeconds}`);
      }
    }
  }

  const dispatch = (t: Table, root: string, ns: string, d: Dispatch, prelude: string[] = [], first: string[] = []) => {
    const tree = buildTree(root, ns, flavor.family, d.tree);
    appendAll(t.chains, tree.chains);
    // A comment line goes with the rule after it; the root's own rules come first.
    const rootLines: string[] = [];
    const otherLines: string[] = [];
    let pending: string[] = [];
    for (const r of tree.rules) {
      if (r.startsWith('#')) {
        pending.push(r);
        continue;
      }
      const dst = r.startsWith(`-A ${root} `) ? rootLines : otherLines;
      appendAll(dst, pending);
      dst.push(r);
      pending = [];
    }
    appendAll(t.lines, first);
    appendAll(t.lines, prelude.map((p) => `-A ${root} ${p}`));
    appendAll(t.lines, rootLines);
    appendAll(t.lines, d.hosts.map((r) => `-A ${root} ${r}`));
    appendAll(t.lines, d.rest.map((r) => `-A ${root} ${r}`));
    appendAll(t.lines, otherLines);
  };
  dispatch(nat, 'LBC-PREROUTING', 'T', natPre, [], assoc?.nat.prerouting);
  if (natOut.tree.length + natOut.hosts.length + natOut.rest.length) {
    nat.chains.push('LBC-OUTPUT');
    dispatch(nat, 'LBC-OUTPUT', 'O', natOut);
  }
  // Only the first packet of a connection is hashed (or judged by an allow list): nat sees no other,
  // and marking later packets would only clobber marks other rules rely on.
  const newOnly = ['-m conntrack ! --ctstate NEW -j RETURN'];
  if (manglePre.tree.length + manglePre.hosts.length + manglePre.rest.length) {
    mangle.chains.push('LBC-PREROUTING');
    dispatch(mangle, 'LBC-PREROUTING', 'T', manglePre, newOnly);
  }
  if (mangleOut.tree.length + mangleOut.hosts.length + mangleOut.rest.length) {
    mangle.chains.push('LBC-OUTPUT');
    dispatch(mangle, 'LBC-OUTPUT', 'O', mangleOut, newOnly);
  }
  if (guardChains.length) {
    if (!mangle.chains.length) throw new Error('lbc: allow guards without a mangle dispatch');
    appendAll(mangle.chains, guardChains);
    appendAll(mangle.lines, guards);
  }
  // Keep the tree chains' declarations next to the entry chains, service chains after.
  appendAll(nat.chains, serviceChains);
  appendAll(nat.lines, serviceLines);
  const raw: Table = { chains: [], lines: [] };
  const snat = sourceNatRules(flavor, services);
  if (assoc || snat.length) nat.chains.push('LBC-POSTROUTING');
  appendAll(nat.lines, snat);
  if (assoc) {
    raw.chains.push('LBC-PREROUTING', ...assoc.raw.chains);
    appendAll(raw.lines, assoc.raw.lines);
    nat.chains.push(...assoc.nat.chains);
    appendAll(nat.lines, assoc.nat.postrouting);
    appendAll(nat.lines, assoc.nat.lines);
    appendAll(sets, assoc.sets);
  }

  const entries = ENTRY_POINTS.filter(([table, , chain]) => (table === 'nat' ? nat : table === 'raw' ? raw : mangle).chains.includes(chain));
  const header = [
    ...headerLines(flavor.target, ir.file),
    `Load with \`${flavor.tool}-restore --noflush\` (as \`lbc apply\` does): it replaces the LBC- chains below and nothing else.`,
    'The jumps from the built-in chains are not in this file, because a --noflush load would append them again',
    'on every load; `lbc apply` checks for each (-C) and inserts it (-I) when missing:',
    ...entries.map(([table, builtin, chain]) => `  ${flavor.tool} -t ${table} -I ${builtin} -j ${chain}`),
  ];
  if (sets.length) header.push(`Needs the ipset sets of ${flavor.ipsetFile}, loaded first: ipset restore -exist < ${flavor.ipsetFile}`);
  if (hashedAny) {
    header.push(
      `Mode hash sets the packet mark (HMARK, 0x${MARK_BASE.toString(16)} + hash mod W) on the first packet of each new`,
      'connection to a hash service, replacing any mark set before; later packets are not marked.',
    );
  }
  if (guardChains.length) {
    header.push(
      'Clients outside a service\'s allow list are dropped in mangle (LBC-A- chains), before translation: the nat',
      'table refuses DROP, and an untranslated connection would reach the balancer itself.',
    );
  }
  if (assoc) {
    header.push(
      'UDP associations: raw-table rules give each packet the conntrack zone of its association, and the',
      `${flavor.ipsetFile} sets (hash:ip,port) hold the associations; loading this file again keeps them.`,
    );
  }
  const tables = [
    ...(raw.chains.length ? [{ name: 'raw', ...raw }] : []),
    ...(mangle.chains.length ? [{ name: 'mangle', ...mangle }] : []),
    { name: 'nat', ...nat },
  ];
  const files: OutputFile[] = [{ name: flavor.rulesFile, content: renderTemplate('iptables', 'rules', { header, tables }) }];
  if (sets.length) {
    const setHeader = [
      ...headerLines(flavor.target, ir.file),
      `Load before ${flavor.rulesFile} with: ipset restore -exist < ${flavor.ipsetFile}`,
      ...(services.some((s) => s.sticky) ? ['One hash:ip set per backend of a sticky service: the clients it served, each forgotten after the timeout.'] : []),
      ...(guardChains.length
        ? ['One hash:net set per allow list (A-), filled in a copy (N-) that is swapped in, so a reload never empties it.']
        : []),
      ...(assoc ? ['UDP associations: per service one hash:ip,port set of every association (-all) and one per backend.'] : []),
    ];
    files.push({ name: flavor.ipsetFile, content: renderTemplate('iptables', 'ipset', { header: setHeader, sets }) });
  }
  return files;
}
