/**
 * --target iptables-condition: iptables-restore input (for --noflush) that
 * balances with statistic + MARK/CONNMARK in mangle and DNATs by mark in nat,
 * and stays exact for whichever backends are up by reading xtables-addons
 * `condition` variables (/proc/net/nf_condition/NAME) that a generated POSIX
 * sh checker writes. See plan.ts for the construction.
 *
 * Why mark + CONNMARK: mangle sees every packet of a connection, nat only its
 * first. The connection mark is restored first thing, so only a connection's
 * first packet walks the selection (the nth counters count connections, not
 * packets), and the saved ctmark names the backend for the life of the
 * connection (conntrack -L --mark shows who went where; `conntrack -D --mark`
 * can cut a dead backend's connections).
 */
import type { Family, IR, Service } from '../../ir/types.js';
import type { CapabilityTable, OutputFile, Support, TargetDefinition } from '../target.js';
import { renderTemplate } from '../template.js';
import { commentText, headerLines } from '../text.js';
import { checkerScript, CHECKER_FILE } from './checker.js';
import { chainName, hex, MARK_FIELD, markValue, planLimit, planService } from './plan.js';
import { appendAll } from '../arrays.js';
import { LbcError } from '../../diagnostics/diagnostic.js';
import { iptablesTier } from '../iptables/partition.js';
import { associationsRefused } from '../associations-refused.js';

const NAME = 'iptables-condition';

const refuseHash: Support = {
  level: 'no',
  why: 'a hash over a live set that changes at run time needs a HMARK per live subset, which this target does not build',
  instead: 'use --target iptables (or nftables) with `lbc agent`, which rewrites the rules when a backend changes state',
};

const useAgent = 'use --target iptables (or nftables) with `lbc agent`';

export const capabilities: CapabilityTable = {
  'health.icmp': {
    level: 'no',
    why: 'the generated checker script probes over TCP with netcat; it sends no ICMP echo',
    instead: `${useAgent}, whose checks include icmp`,
  },
  'health.udp': {
    level: 'no',
    why: 'the generated checker script probes over TCP with netcat; it sends no UDP datagram',
    instead: `${useAgent}, whose checks include udp`,
  },
  allow: {
    level: 'no',
    why: 'this target builds its selection in its own chains and has no client filter',
    instead: `${useAgent}, which refuse clients outside the allow list`,
  },
  'ports.list': { level: 'no', why: 'its selection tree matches one port per service', instead: `one service per port, or ${useAgent}` },
  'ports.range': { level: 'no', why: 'its selection tree matches one port per service', instead: `one service per port, or ${useAgent}` },
  'mode.hash': refuseHash,
  'hash.fields': refuseHash,
  sticky: {
    level: 'no',
    why: 'source affinity would have to be kept per backend and dropped when that backend goes down; this target keeps no such table',
    instead: 'use --target iptables with `lbc agent`, or drop sticky',
  },
  health: (svc: Service): Support => {
    const why = planLimit(svc);
    return why
      ? { level: 'no', why, instead: 'use `lbc agent` with --target iptables or nftables: it rewrites the ruleset when a backend changes state instead of encoding every outcome' }
      : { level: 'yes' };
  },
  // Without health checks the same limits still apply to the mark field.
  backup: (svc: Service): Support => {
    const why = planLimit(svc);
    return why ? { level: 'no', why, instead: 'use `lbc agent` with --target iptables or nftables' } : { level: 'yes' };
  },
  ...associationsRefused(
    'this target remembers nothing per client: it balances with connection marks chosen anew for every flow, from condition files',
    'use --target iptables (or nftables) with `lbc agent`, which keep associations per client address and port',
  ),
  'source-nat': {
    level: 'no',
    why: 'this target writes destination NAT only',
    instead: 'use --target iptables with `lbc agent`, which writes the source NAT too',
  },
};

function l4(svc: Service): string {
  return `-p ${svc.protocol} -m ${svc.protocol} --dport ${svc.port}`;
}

/** The packet match of a service on a hook, without "-A CHAIN". */
function serviceMatch(svc: Service, hook: 'PREROUTING' | 'OUTPUT'): string {
  const parts: string[] = [];
  if (hook === 'PREROUTING' && svc.interface) parts.push(`-i ${svc.interface}`);
  if (svc.vip) parts.push(`-d ${svc.vip.address}/${svc.vip.prefixLength}`);
  // "any local address": without it a vip-less service would also catch traffic routed through the balancer.
  else parts.push('-m addrtype --dst-type LOCAL');
  parts.push(l4(svc));
  return parts.join(' ');
}

function dnatTarget(svc: Service, address: string | null, port: number): string {
  if (address === null) return `-j REDIRECT --to-ports ${port}`;
  return svc.family === 'ipv6' ? `-j DNAT --to-destination [${address}]:${port}` : `-j DNAT --to-destination ${address}:${port}`;
}

interface Table {
  chains: string[];
  rules: string[];
}

function familyRules(ir: IR, family: Family): { mangle: Table; nat: Table } | null {
  const services = ir.services.filter((s) => s.family === family);
  // A spec without services still gets the IPv4 file: loading it empties lbc's chains.
  if (services.length === 0 && !(family === 'ipv4' && ir.services.length === 0)) return null;
  const mangle: Table = { chains: ['LBC-PREROUTING', 'LBC-OUTPUT'], rules: [] };
  const nat: Table = { chains: ['LBC-PREROUTING', 'LBC-OUTPUT'], rules: [] };
  let total = 0;
  const perService: { mangle: string[]; nat: string[] }[] = [];
  for (const svc of services) {
    const sel = chainName(svc, '');
    const dnat = chainName(svc, 'dnat');
    const hooks: ('PREROUTING' | 'OUTPUT')[] = svc.local ? ['PREROUTING', 'OUTPUT'] : ['PREROUTING'];
    for (const hook of hooks) {
      mangle.rules.push(`-A LBC-${hook} ${serviceMatch(svc, hook)} -j ${sel}`);
      nat.rules.push(`-A LBC-${hook} ${serviceMatch(svc, hook)} -j ${dnat}`);
    }
    const plan = planService(svc);
    mangle.chains.push(sel, ...plan.chains);
    nat.chains.push(dnat);
    const m: string[] = [
      `# service ${svc.name}: ${svc.protocol} port ${svc.port}, mode ${svc.mode}`,
      `-A ${sel} -j CONNMARK --restore-mark --nfmask ${MARK_FIELD} --ctmask ${MARK_FIELD}`,
      `-A ${sel} -m mark ! --mark 0x0/${MARK_FIELD} -j RETURN`,
      `-A ${sel} -j ${plan.chains[0]}`,
      '# nothing is up: drop rather than let the connection reach the balancer itself',
      `-A ${sel} -m mark --mark 0x0/${MARK_FIELD} -j DROP`,
      `-A ${sel} -j CONNMARK --save-mark --nfmask ${MARK_FIELD} --ctmask ${MARK_FIELD}`,
      ...plan.lines,
    ];
    const n: string[] = svc.backends.map(
      (b) => `-A ${dnat} -m mark --mark ${hex(markValue(b))}/${MARK_FIELD} ${dnatTarget(svc, b.address, b.port)}`,
    );
    perService.push({ mangle: m, nat: n });
    total += m.length + n.length;
    if (total > MAX_TOTAL_RULES) {
      // Each checked backend doubles a service's selection tree; many services make a ruleset no kernel should load.
      throw new LbcError([
        {
          code: 'LBC3004',
          severity: 'error',
          message: `target ${NAME}: the selection trees of these services need more than ${MAX_TOTAL_RULES} rules (reached at service "${svc.name}")`,
          location: svc.loc.service,
          notes: ['use `lbc agent` with --target iptables or nftables, which re-renders only the live backends'],
        },
      ]);
    }
  }
  appendAll(mangle.rules, perService.flatMap((p) => p.mangle));
  appendAll(nat.rules, perService.flatMap((p) => p.nat));
  return { mangle, nat };
}

/** Beyond this many rules in one ruleset, refuse instead of writing a file nobody should load. */
const MAX_TOTAL_RULES = 500_000;

function rulesFile(ir: IR, family: Family): OutputFile | null {
  const t = familyRules(ir, family);
  if (!t) return null;
  const cmd = family === 'ipv4' ? 'iptables' : 'ip6tables';
  const content = renderTemplate(NAME, 'rules', {
    header: headerLines(NAME, ir.file).map(commentText),
    cmd,
    checker: CHECKER_FILE,
    markField: MARK_FIELD,
    mangle: t.mangle,
    nat: t.nat,
  });
  return { name: `${cmd}-condition.rules`, content };
}

export const iptablesConditionTarget: TargetDefinition = {
  name: NAME,
  title: 'iptables-restore rules with health via the xtables-addons condition match, plus a sh checker',
  families: ['ipv4', 'ipv6'],
  capabilities,
  tier: iptablesTier('iptables-condition', false),
  emit(ir: IR): OutputFile[] {
    const files: OutputFile[] = [];
    for (const family of ['ipv4', 'ipv6'] as const) {
      const f = rulesFile(ir, family);
      if (f) files.push(f);
    }
    const checker = checkerScript(ir);
    if (checker) files.push({ name: CHECKER_FILE, content: checker, executable: true });
    return files;
  },
};
