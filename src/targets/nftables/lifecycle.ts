/**
 * `lbc status`, `lbc plan` and `lbc remove` for nftables. lbc owns the table `inet lbc`, and `inet lbc_assoc`
 * when a service has UDP associations: removing them is one `nft delete table` each, and the kernel's
 * listing of them is what status and plan read.
 */
import type { ApplyContext, OutputFile } from '../target.js';
import { dropState, readTextState, stateFilePath } from '../applied-state.js';
import { inScratchNamespace, trackedByDestination, unifiedDiff, type PlanReport, type TargetStatus } from '../lifecycle.js';
import { MARKER_PREFIX, markerChain, planFromState } from './incremental.js';
import { RULES_FILE, TABLE } from './emit.js';
import { ASSOC_TABLE, splitAssociations, terseTable } from './associations.js';

/**
 * `nft list table inet lbc` (and lbc's associations table after it, terse: its elements are the packet
 * path's, and listing them costs seconds at a million associations), or null when lbc's table does not
 * exist. Whether a table exists is read from the terse ruleset, which nft lists without fetching any set
 * element (`nft list tables` fetches them all: associations.ts, terseTable()).
 */
async function listTable(ctx: ApplyContext): Promise<string | null> {
  if ((await terseTable(ctx, TABLE)) === null) return null;
  const own = await ctx.query(['nft', 'list', 'table', ...TABLE.split(' ')]);
  const assoc = await terseTable(ctx, ASSOC_TABLE);
  return assoc === null ? own : `${own}${assoc}\n`;
}

/**
 * The listing without what a load does not decide: lbc's marker chain, packet counters, and the
 * elements the packet path adds to dynamic sets (sticky clients, which a full load forgets anyway).
 */
export function comparableListing(listing: string): string {
  const out: string[] = [];
  const lines = listing.split('\n');
  let inSet: string[] | null = null;
  let dynamic = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const t = line.trim();
    if (t.startsWith(`chain ${MARKER_PREFIX}`)) {
      // The listing puts a blank line between chains: the marker's goes with it.
      if (out.length && out[out.length - 1].trim() === '') out.pop();
      while (i < lines.length && lines[i].trim() !== '}') i++;
      continue;
    }
    if (/^set \S+ \{$/.test(t)) {
      inSet = [line];
      dynamic = false;
      continue;
    }
    if (inSet) {
      if (/^flags .*\bdynamic\b/.test(t)) dynamic = true;
      if (t.startsWith('elements = {') && dynamic) {
        // Skip to the end of the element list (it may span lines).
        while (i < lines.length && !lines[i].trimEnd().endsWith('}')) i++;
        continue;
      }
      inSet.push(line);
      if (t === '}') {
        out.push(...inSet);
        inSet = null;
      }
      continue;
    }
    out.push(line.replace(/counter packets \d+ bytes \d+/g, 'counter'));
  }
  return out.join('\n');
}

export async function removeNftables(ctx: ApplyContext): Promise<void> {
  const stateFile = stateFilePath(ctx, 'nftables');
  const owned: string[] = [];
  for (const t of [TABLE, ASSOC_TABLE]) if ((await terseTable(ctx, t)) !== null) owned.push(t);
  if (owned.length === 0) ctx.log(`nftables: table ${TABLE} is not loaded; nothing to remove`);
  for (const t of owned) {
    ctx.log(`nftables: deleting table ${t}${t === ASSOC_TABLE ? ' (and every UDP association in it)' : ''}`);
    await ctx.run(['nft', 'delete', 'table', ...t.split(' ')]);
  }
  if (!ctx.dryRun) await dropState(stateFile);
}

export async function nftablesStatus(ctx: ApplyContext): Promise<TargetStatus> {
  const state = readTextState(stateFilePath(ctx, 'nftables'), 'nftables');
  const listing = await listTable(ctx);
  const recorded = state?.meta ? { ...state.meta, marker: state.marker } : null;
  let kernel: TargetStatus['kernel'];
  let detail: string;
  if (listing === null) {
    kernel = 'absent';
    detail = `table ${TABLE} is not loaded`;
  } else if (!state) {
    kernel = 'unknown';
    detail = `table ${TABLE} is loaded, but there is no record of lbc loading it on this host`;
  } else if (listing.includes(`chain ${markerChain(state.marker)} {`)) {
    kernel = 'holds';
    detail = `table ${TABLE} holds lbc's last load (marker chain ${markerChain(state.marker)})`;
  } else {
    kernel = 'differs';
    detail = `table ${TABLE} is loaded but is not lbc's last load (its marker chain is missing): changed since, or loaded by another run; the next apply loads it whole`;
  }
  const tracked = await trackedByDestination(ctx);
  return {
    target: 'nftables',
    recorded,
    kernel,
    detail,
    services: (state?.meta?.services ?? []).map((s) => ({ ...s, backends: s.backends.map((b) => ({ backend: b, ...(tracked ? { tracked: tracked.get(b) ?? 0 } : {}) })) })),
    countersNote: tracked
      ? 'tracked: connections conntrack holds to each backend now (lbc emits no per-backend counter rules in nftables)'
      : 'no counters: conntrack is not available, and lbc emits no per-backend counter rules in nftables',
  };
}

export async function planNftables(files: OutputFile[], ctx: ApplyContext): Promise<PlanReport> {
  const rules = files.find((f) => f.name === RULES_FILE);
  const text = rules?.content ?? '';
  const live = comparableListing((await listTable(ctx)) ?? '');
  const after = await inScratchNamespace(ctx, async (scratch) => {
    await scratch.run(['nft', '-f', '-'], text);
    return comparableListing((await listTable(scratch)) ?? '');
  });
  const state = ctx.fullApply ? null : readTextState(stateFilePath(ctx, 'nftables'), 'nftables');
  const main = (t: string) => splitAssociations(t).main;
  const partial = state ? planFromState({ ...state, texts: state.texts.map(main) }, main(text)) : null;
  const method = partial
    ? partial.empty
      ? 'nothing to load: the record says this ruleset is loaded (apply only checks its marker)'
      : `only what changed: ${partial.chains.length} chain(s), ${partial.elements.length} map element(s), ${partial.sets.length} set(s), ${partial.maps.length} map(s); rotation restarts only in changed chains`
    : `the whole table ${TABLE} (${ctx.fullApply ? '--full' : state ? 'this change needs a full load' : 'no record of an earlier lbc load'}): every rotation restarts and sticky clients are forgotten`;
  const diff = unifiedDiff(`table ${TABLE}`, live === '' ? '' : `${live}\n`, after === '' ? '' : `${after}\n`);
  return {
    target: 'nftables',
    unchanged: diff === '',
    method: partial?.empty && diff ? `${method}; but the kernel's table differs from that record (edited by hand?): only \`lbc apply --full\` puts it right` : method,
    diff,
    basis: `the live \`nft list table ${TABLE}\` (and the terse listing of ${ASSOC_TABLE}, without its associations) against the same listing of the new file loaded into a scratch network namespace (counters, sticky clients and lbc's marker left out)`,
  };
}
