/**
 * `lbc status`, `lbc plan` and `lbc remove` for iptables and ip6tables. What lbc owns: the chains named
 * LBC-* in any table, the plain jumps to them from the built-in chains, and the ipsets named with the
 * flavor's prefix (LBC4-/LBC6-). Nothing else is read as lbc's or ever removed.
 */
import type { ApplyContext, OutputFile } from '../target.js';
import { dropState, readTextState, stateFilePath } from '../applied-state.js';
import { inScratchNamespace, trackedByDestination, unifiedDiff, type BackendStatus, type PlanReport, type TargetStatus } from '../lifecycle.js';
import { applyIptables } from './apply.js';
import type { Flavor } from './emit.js';
import { iptChanges, iptPlan, MARKER_PREFIX, markerChain } from './incremental.js';
import { ENTRY_POINTS } from './emit.js';

const JUMP = /^-A (PREROUTING|OUTPUT|INPUT|FORWARD|POSTROUTING) -j (LBC-\S+)$/;

interface Owned {
  /** table -> lbc chains (marker chains included) */
  chains: Map<string, string[]>;
  /** [table, built-in chain, lbc chain], once per occurrence */
  jumps: Array<[string, string, string]>;
}

/** lbc's chains and jumps in an iptables-save text. */
function owned(save: string): Owned {
  const chains = new Map<string, string[]>();
  const jumps: Array<[string, string, string]> = [];
  let table = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    else if (line.startsWith(':LBC-')) (chains.get(table) ?? chains.set(table, []).get(table)!).push(line.slice(1).split(' ')[0]);
    else {
      const m = JUMP.exec(line);
      if (m) jumps.push([table, m[1], m[2]]);
    }
  }
  return { chains, jumps };
}

/**
 * lbc's part of an iptables-save text, as comparable text: per table, lbc's chain declarations and rules
 * and the jumps into them, without counters and without the marker chain.
 */
export function comparableSave(save: string): string {
  const out: string[] = [];
  let table = '';
  let section: string[] = [];
  const flush = () => {
    if (section.length) out.push(`*${table}`, ...section, 'COMMIT');
    section = [];
  };
  for (const raw of save.split('\n')) {
    const line = raw.replace(/^\[\d+:\d+\] /, '');
    if (line.startsWith('*')) {
      flush();
      table = line.slice(1).trim();
    } else if (line.startsWith(`:${MARKER_PREFIX}`) || line.startsWith(`-A ${MARKER_PREFIX}`)) continue;
    else if (line.startsWith(':LBC-')) section.push(line.replace(/\[\d+:\d+\]$/, '[0:0]'));
    else if (line.startsWith('-A LBC-') || JUMP.test(line)) section.push(line);
  }
  flush();
  return out.join('\n');
}

/** The create lines of lbc's sets (members are what the packet path added: not a load's doing). */
function comparableSets(ipsetSave: string, prefix: string): string {
  return ipsetSave
    .split('\n')
    .filter((l) => l.startsWith(`create ${prefix}`))
    .map((l) => l.replace(/ bucketsize \d+| initval 0x[0-9a-f]+/g, ''))
    .sort()
    .join('\n');
}

async function ipsetSave(ctx: ApplyContext): Promise<string> {
  try {
    return await ctx.query(['ipset', 'save']);
  } catch {
    return '';
  }
}

async function listing(flavor: Flavor, ctx: ApplyContext): Promise<string> {
  const rules = comparableSave(await ctx.query([`${flavor.tool}-save`]));
  const sets = comparableSets(await ipsetSave(ctx), flavor.setPrefix);
  return [rules, sets ? `# ipset\n${sets}` : ''].filter(Boolean).join('\n') + (rules || sets ? '\n' : '');
}

export async function removeIptables(flavor: Flavor, ctx: ApplyContext): Promise<void> {
  const { chains, jumps } = owned(await ctx.query([`${flavor.tool}-save`]));
  const tables = [...new Set([...chains.keys(), ...jumps.map(([t]) => t)])].sort();
  if (tables.length === 0) ctx.log(`${flavor.target}: no LBC- chains are loaded; nothing to remove from the tables`);
  else {
    // One transaction per table: the jumps out of the built-in chains first, then every lbc chain flushed,
    // then deleted (a chain can only go once nothing refers to it).
    const restore: string[] = [];
    for (const t of tables) {
      restore.push(`*${t}`);
      for (const [jt, builtin, chain] of jumps) if (jt === t) restore.push(`-D ${builtin} -j ${chain}`);
      for (const c of chains.get(t) ?? []) restore.push(`-F ${c}`);
      for (const c of chains.get(t) ?? []) restore.push(`-X ${c}`);
      restore.push('COMMIT');
    }
    const n = [...chains.values()].reduce((a, c) => a + c.filter((x) => !x.startsWith(MARKER_PREFIX)).length, 0);
    ctx.log(`${flavor.target}: removing ${n} LBC- chain(s) and ${jumps.length} jump(s) from table(s) ${tables.join(', ')}`);
    await ctx.run([`${flavor.tool}-restore`, '--noflush'], `${restore.join('\n')}\n`);
  }
  const sets = (await ipsetSave(ctx))
    .split('\n')
    .map((l) => /^create (\S+) /.exec(l)?.[1])
    .filter((n): n is string => !!n && n.startsWith(flavor.setPrefix))
    .sort();
  if (sets.length) ctx.log(`${flavor.target}: destroying ${sets.length} ipset(s) ${flavor.setPrefix}*`);
  for (const s of sets) await ctx.run(['ipset', 'destroy', s]);
  if (!ctx.dryRun) await dropState(stateFilePath(ctx, flavor.target));
}

/** New connections per DNAT/REDIRECT destination, from the nat table's packet counters (only first packets reach nat). */
function natCounters(saveWithCounters: string, family: 'ipv4' | 'ipv6'): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of saveWithCounters.split('\n')) {
    const m = /^\[(\d+):\d+\] -A LBC-\S+ .*-j (?:DNAT --to-destination (\S+)|REDIRECT --to-ports (\d+))/.exec(line);
    if (!m) continue;
    let key = m[3] ? `:${m[3]}` : m[2];
    if (family === 'ipv6' && key.startsWith('[')) key = key.toLowerCase();
    out.set(key, (out.get(key) ?? 0) + Number(m[1]));
  }
  return out;
}

export async function iptablesStatus(flavor: Flavor, ctx: ApplyContext): Promise<TargetStatus> {
  const state = readTextState(stateFilePath(ctx, flavor.target), flavor.target);
  const saveC = await ctx.query([`${flavor.tool}-save`, '-c']);
  const { chains } = owned(saveC.replace(/^\[\d+:\d+\] /gm, ''));
  const any = [...chains.values()].some((c) => c.some((x) => !x.startsWith(MARKER_PREFIX)));
  let kernel: TargetStatus['kernel'];
  let detail: string;
  if (!any) {
    kernel = 'absent';
    detail = 'no LBC- chains are loaded';
  } else if (!state) {
    kernel = 'unknown';
    detail = 'LBC- chains are loaded, but there is no record of lbc loading them on this host';
  } else if (chains.get('nat')?.includes(markerChain(state.marker))) {
    kernel = 'holds';
    detail = `the LBC- chains hold lbc's last load (marker chain ${markerChain(state.marker)} in table nat)`;
  } else {
    kernel = 'differs';
    detail = "LBC- chains are loaded but are not lbc's last load (its marker chain is missing); the next apply loads them whole";
  }
  const counters = natCounters(saveC, flavor.family);
  const tracked = await trackedByDestination(ctx);
  // In the dispatch tree's leaves several services share a chain: counters are per destination, so a backend
  // shared by two services shows the sum (said in countersNote).
  const services = (state?.meta?.services ?? []).map((s) => ({
    ...s,
    backends: s.backends.map((b): BackendStatus => ({ backend: b, newConnections: counters.get(b) ?? 0, ...(tracked ? { tracked: tracked.get(b) ?? 0 } : {}) })),
  }));
  return {
    target: flavor.target,
    recorded: state?.meta ? { ...state.meta, marker: state.marker } : null,
    kernel,
    detail,
    services,
    countersNote: `new: connections DNATed to the backend since its rules were loaded (nat-table packet counters; summed over services sharing a backend)${tracked ? '; tracked: connections conntrack holds to it now' : ''}`,
  };
}

export async function planIptables(flavor: Flavor, files: OutputFile[], ctx: ApplyContext): Promise<PlanReport> {
  const live = await listing(flavor, ctx);
  const after = await inScratchNamespace(ctx, async (scratch) => {
    await applyIptables(flavor, files, scratch);
    return listing(flavor, scratch);
  });
  const rules = files.find((f) => f.name === flavor.rulesFile)?.content ?? '';
  const sets = files.find((f) => f.name === flavor.ipsetFile)?.content ?? '';
  const state = ctx.fullApply ? null : readTextState(stateFilePath(ctx, flavor.target), flavor.target);
  const changes = state && state.texts.length === 2 ? iptChanges(state.texts[0], state.texts[1] || null, rules, sets || null) : null;
  const partial = changes ? iptPlan(changes.old, changes.next, state!.marker, ENTRY_POINTS) : null;
  let method = partial
    ? partial.empty
      ? 'nothing to load: the record says this ruleset is loaded (apply only checks its marker and jumps)'
      : `only what changed: ${partial.chains.length} chain(s); rotation restarts in those chains only`
    : `every LBC- chain (${ctx.fullApply ? '--full' : state ? 'this change needs a full load' : 'no record of an earlier lbc load'}): every rotation restarts`;
  const diff = unifiedDiff(`${flavor.tool} LBC- chains and ${flavor.setPrefix}* sets`, live, after);
  if (partial?.empty && diff) method += "; but the kernel differs from that record (edited by hand?): only `lbc apply --full` puts it right";
  return {
    target: flavor.target,
    unchanged: diff === '',
    method,
    diff,
    basis: `the live \`${flavor.tool}-save\` (LBC- chains and their jumps) and ipset definitions against the same after loading the new files into a scratch network namespace (counters, set members and lbc's marker left out)`,
  };
}
