/**
 * Loading the emitted files on this host, atomically for the rules and touching only what lbc owns
 * (chains named LBC-*, ipset sets named LBC4-* / LBC6-*).
 *
 * Order: ipset sets first (the rules reference them), then one `iptables-restore --noflush`
 * transaction that replaces lbc's chains, removes the jumps to and the chains lbc no longer emits,
 * then the jumps from the built-in chains (checked with -C, inserted with -I only when missing, so
 * applying twice changes nothing), then the sets no rule refers to any more.
 * When lbc's last apply is known, only what changed is loaded, in the same order (incremental.ts).
 */
import { createHash } from 'node:crypto';
import { LbcError } from '../../diagnostics/diagnostic.js';
import type { ApplyContext, OutputFile } from '../target.js';
import { dropState, fullMarker, readTextState, stageTextState, STATE_VERSION, stateFilePath } from '../applied-state.js';
import { ENTRY_POINTS, type Flavor } from './emit.js';
import { iptChanges, iptPlan, markerChain, MARKER_PREFIX, tableSection, tableStart } from './incremental.js';
import { appendAll } from '../arrays.js';
import { forgetDepartedAssociations, resizeAssociationSets } from './association-sets.js';

/** Names of the sets an emitted ipset file creates. */
const parseSetNames = (text: string): string[] => [...text.matchAll(/^create (\S+) /gm)].map((m) => m[1]);

function fail(message: string): never {
  throw new LbcError([{ code: 'LBC5001', severity: 'error', message }]);
}

/** table -> lbc chains declared in an iptables-save / iptables-restore text. */
export function lbcChains(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  let table = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      if (!out.has(table)) out.set(table, new Set());
    } else if (line.startsWith(':LBC-') && table) {
      out.get(table)!.add(line.slice(1).split(' ')[0]);
    }
  }
  return out;
}

/**
 * The entry chains (ENTRY_POINTS) an emitted rules file declares, by table: what ensureJumps needs,
 * found in each table's declaration lines without reading the megabytes of rules after them.
 */
function entryChains(rules: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const declarations = new Map<string, string | undefined>();
  for (const [table, , chain] of ENTRY_POINTS) {
    if (!declarations.has(table)) declarations.set(table, tableSection(rules, table)?.declarations);
    if (declarations.get(table)?.includes(`\n:${chain} - [0:0]\n`)) out.set(table, (out.get(table) ?? new Set()).add(chain));
  }
  return out;
}

/** Jumps "-A BUILTIN -j LBC-..." present in an iptables-save text, as "table BUILTIN CHAIN". */
function entryJumps(save: string): Set<string> {
  const out = new Set<string>();
  let table = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    const m = /^-A (PREROUTING|OUTPUT) -j (LBC-\S+)$/.exec(line);
    if (m) out.add(`${table} ${m[1]} ${m[2]}`);
  }
  return out;
}

/**
 * The restore transaction: the emitted file plus, per table, the stale lbc chains declared
 * (which flushes them), the built-in jumps to them deleted, and the chains deleted before COMMIT.
 */
export function restoreText(rules: string, stale: Map<string, string[]>, staleJumps: Array<[string, string, string]>): string {
  const lines = rules.replace(/\n$/, '').split('\n');
  const decl = (t: string) => (stale.get(t) ?? []).map((c) => `:${c} - [0:0]`);
  const del = (t: string) => staleJumps.filter(([jt]) => jt === t).map(([, builtin, chain]) => `-D ${builtin} -j ${chain}`);
  const drop = (t: string) => (stale.get(t) ?? []).map((c) => `-X ${c}`);
  const done = new Set<string>();
  const out: string[] = [];
  let table = '';
  for (const line of lines) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      // Declaring an existing chain in a --noflush load flushes it, so nothing refers to anything stale by -X.
      out.push(line);
      appendAll(out, decl(table));
    } else if (line === 'COMMIT') {
      appendAll(out, del(table));
      appendAll(out, drop(table));
      out.push(line);
      done.add(table);
    } else {
      out.push(line);
    }
  }
  const rest = [...new Set([...stale.keys(), ...staleJumps.map(([jt]) => jt)])].filter((t) => !done.has(t)).sort();
  for (const t of rest) out.push(`*${t}`, ...decl(t), ...del(t), ...drop(t), 'COMMIT');
  return out.join('\n') + '\n';
}

interface SetHeader {
  family: string;
  timeout: string;
}

/** `ipset list -t` (headers only) -> name -> family/timeout, for lbc's sets of this flavor. */
function parseSetHeaders(text: string, prefix: string): Map<string, SetHeader> {
  const out = new Map<string, SetHeader>();
  let name = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('Name: ')) name = line.slice(6).trim();
    else if (line.startsWith('Header: ') && name.startsWith(prefix)) {
      out.set(name, { family: /family (\S+)/.exec(line)?.[1] ?? '', timeout: /timeout (\d+)/.exec(line)?.[1] ?? '' });
    }
  }
  return out;
}

/**
 * Load the files: only what changed since lbc's last apply when that is known (incremental.ts), else
 * everything (the fallback that is always right).
 */
export async function applyIptables(flavor: Flavor, files: OutputFile[], ctx: ApplyContext): Promise<void> {
  const rules = files.find((f) => f.name === flavor.rulesFile);
  if (!rules) fail(`${flavor.target}: nothing to apply (no ${flavor.rulesFile} among the files)`);
  const setsFile = files.find((f) => f.name === flavor.ipsetFile);
  const texts = [rules.content, setsFile?.content ?? ''];
  const stateFile = stateFilePath(ctx, flavor.target);
  const state = stateFile && !ctx.fullApply ? readTextState(stateFile, flavor.target) : null;
  const natTable = tableStart(rules.content, 'nat') >= 0;
  const changes = state && state.texts.length === 2 && natTable ? iptChanges(state.texts[0], state.texts[1] || null, texts[0], texts[1] || null) : null;
  const jumps = entryChains(rules.content);
  const plan = changes ? iptPlan(changes.old, changes.next, state!.marker, ENTRY_POINTS.filter(([t, , c]) => jumps.get(t)?.has(c))) : null;
  if (state && !plan) ctx.log(`${flavor.target}: this change needs the whole ruleset loaded`);
  const record = (marker: string) => ({ version: STATE_VERSION, target: flavor.target, marker, texts, meta: ctx.meta });

  if (plan?.empty) {
    // Nothing to load: only check that the kernel still holds what lbc loaded (one chain, cheap).
    let present = true;
    try {
      await ctx.query([flavor.tool, '-t', 'nat', '-S', markerChain(plan.marker)]);
    } catch {
      present = false;
    }
    if (present) {
      ctx.log(`${flavor.target}: the LBC- chains already hold this ruleset; nothing to load`);
      await ensureJumps(flavor, jumps, ctx);
      // The texts may differ in comments: record the new ones.
      if (!ctx.dryRun && state!.texts.some((t, i) => t !== texts[i])) await stageTextState(stateFile, record(plan.marker), ctx.log).commit();
      return;
    }
  }

  // In a dry run nothing changes, so the state file stays as it is.
  const mayRecord = ctx.dryRun || (await dropState(stateFile));
  if (plan && mayRecord && !plan.empty) {
    // An allow list's block creates its set and a copy, and swaps them: count the sets, not the lines.
    const count = (re: RegExp) => plan.createSets?.match(re)?.length ?? 0;
    const sets = count(/^create /gm) - count(/^swap /gm);
    ctx.log(`${flavor.target}: loading only what changed: ${plan.chains.length} chain(s), ${sets} set(s) created or refilled, ${plan.destroySets.length} set(s) to remove`);
    // The next state is written while the kernel loads, and put in place only if the load succeeds.
    const staged = stageTextState(ctx.dryRun ? null : stateFile, record(plan.marker), ctx.log);
    let loaded = false;
    try {
      if (plan.createSets) await ctx.run(['ipset', 'restore', '-exist'], plan.createSets);
      await ctx.run([`${flavor.tool}-restore`, '--noflush'], plan.restore);
      loaded = true;
    } catch (e) {
      await staged.discard();
      const why = (e as Error).message.split('\n').find((l) => l.trim()) ?? '';
      ctx.log(`${flavor.target}: the LBC- chains are not what lbc loaded last, or the partial load failed (${why}); loading the whole ruleset`);
    }
    if (loaded) {
      // The restore itself checked the jumps from the built-in chains (-C).
      await forgetDepartedAssociations(plan.destroySets, new Set(parseSetNames(texts[1])), ctx);
      for (const name of plan.destroySets) await ctx.run(['ipset', 'destroy', name]);
      await staged.commit();
      return;
    }
  }

  // A marker only for files a later partial load could follow (a nat table to hold it).
  const marker = stateFile && natTable ? fullMarker(texts) : null;
  await fullApply(flavor, marker ? withMarker(rules.content, markerChain(marker)) : rules.content, setsFile, ctx);
  if (marker && mayRecord && !ctx.dryRun) await stageTextState(stateFile, record(marker), ctx.log).commit();
}

/** The rules with the (empty) marker chain declared in the nat table, where apply looks for it. */
export function withMarker(rules: string, marker: string): string {
  return rules.replace(/^\*nat\n/m, `*nat\n:${marker} - [0:0]\n`);
}

/** The jumps from the built-in chains: checked with -C, inserted with -I only when missing. */
async function ensureJumps(flavor: Flavor, want: Map<string, Set<string>>, ctx: ApplyContext): Promise<void> {
  for (const [table, builtin, chain] of ENTRY_POINTS) {
    if (!want.get(table)?.has(chain)) continue;
    let present = true;
    try {
      await ctx.query([flavor.tool, '-t', table, '-C', builtin, '-j', chain]);
    } catch {
      present = false;
    }
    if (!present) await ctx.run([flavor.tool, '-t', table, '-I', builtin, '-j', chain]);
  }
}

/** Load everything: the sets, then one restore that also removes the chains lbc no longer emits. */
async function fullApply(flavor: Flavor, rulesText: string, setsFile: OutputFile | undefined, ctx: ApplyContext): Promise<void> {
  let currentSets = new Map<string, SetHeader>();
  try {
    currentSets = parseSetHeaders(await ctx.query(['ipset', 'list', '-t']), flavor.setPrefix);
  } catch (e) {
    // Without ipset there can be no lbc sets to clean up; only a file that needs sets makes it an error.
    if (setsFile) throw e;
  }
  const wantedSets = new Map<string, (SetHeader & { line: string }) | null>();
  /** Every set the file leaves behind: sticky sets, allow lists (whose fill copies it destroys itself), associations. */
  const keptSets = new Set<string>();
  for (const line of (setsFile?.content ?? '').split('\n')) {
    const c = /^create (\S+) /.exec(line);
    if (c) keptSets.add(c[1]);
    const d = /^destroy (\S+)$/.exec(line);
    if (d) keptSets.delete(d[1]);
    const m = /^create (\S+) hash:ip family (\S+) timeout (\d+)/.exec(line);
    if (m) wantedSets.set(m[1], { family: m[2], timeout: m[3], line });
    // Other sets (UDP associations) are lbc's too, and keep their members across loads (associations.ts).
    else if (/^create \S+ /.test(line)) wantedSets.set(line.split(' ')[1], null);
  }

  if (setsFile) {
    // `ipset restore -exist` refuses a set that exists with other parameters (a changed sticky timeout),
    // and a set the rules refer to cannot be destroyed: build the new one aside and swap it in.
    for (const [name, want] of wantedSets) {
      const have = currentSets.get(name);
      if (!want || !have || (have.family === want.family && have.timeout === want.timeout)) continue;
      const tmp = `LBC-tmp-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
      ctx.log(`${flavor.target}: set ${name}: timeout ${have.timeout}s -> ${want.timeout}s (its clients are forgotten)`);
      await ctx.run(['ipset', 'create', tmp, 'hash:ip', 'family', want.family, 'timeout', want.timeout]);
      await ctx.run(['ipset', 'swap', name, tmp]);
      await ctx.run(['ipset', 'destroy', tmp]);
    }
    await resizeAssociationSets(setsFile.content, ctx);
    await ctx.run(['ipset', 'restore', '-exist'], setsFile.content);
  }

  const save = await ctx.query([`${flavor.tool}-save`]);
  const have = lbcChains(save);
  const want = lbcChains(rulesText);
  const jumps = entryJumps(save);
  const stale = new Map<string, string[]>();
  for (const [table, chains] of have) {
    const gone = [...chains].filter((c) => !want.get(table)?.has(c)).sort();
    if (gone.length) stale.set(table, gone);
  }
  const staleJumps = ENTRY_POINTS.filter(([t, b, c]) => stale.get(t)?.includes(c) && jumps.has(`${t} ${b} ${c}`)).map(
    ([t, b, c]) => [t, b, c] as [string, string, string],
  );
  for (const [t, chains] of stale) {
    const gone = chains.filter((c) => !c.startsWith(MARKER_PREFIX)).length;
    if (gone) ctx.log(`${flavor.target}: removing ${gone} chain(s) no longer in the spec from table ${t}`);
  }
  await ctx.run([`${flavor.tool}-restore`, '--noflush'], restoreText(rulesText, stale, staleJumps));
  await ensureJumps(flavor, want, ctx);

  const gone = [...currentSets.keys()].filter((name) => !keptSets.has(name)).sort();
  await forgetDepartedAssociations(gone, keptSets, ctx);
  for (const name of gone) await ctx.run(['ipset', 'destroy', name]);
}
