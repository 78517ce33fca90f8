/**
 * `lbc status`, `lbc plan` and `lbc remove` on the BSDs, and the record `lbc apply` keeps there.
 *
 * pf: lbc's rules and tables live in the anchor "lbc"; `pfctl -a lbc -F all` flushes exactly that
 * anchor's rules, translation rules and tables. pfctl.c, the -F handler: with an anchor name, 'a'
 * clears rules, nat and tables of the anchor only; states, source nodes and statistics are cleared
 * only when no anchor is named, so established connections are not cut.
 * ipnat: IPFilter has no anchor, so lbc removes exactly the rules its record says it loaded, each with
 * `ipnat -r` / `ipf -r`, never a flush (-F/-C), as apply does (ipnat.ts).
 *
 * Neither pfctl nor ipnat lists rules in the words they were loaded with, so status and plan on the BSDs
 * compare with lbc's record of its last apply, and say so; the kernel is only asked whether anything
 * of lbc's is loaded.
 */
import type { ApplyContext, OutputFile } from '../targets/target.js';
import { dropState, fullMarker, readTextState, stageTextState, STATE_VERSION, stateFilePath } from '../targets/applied-state.js';
import { unifiedDiff, type PlanReport, type TargetStatus } from '../targets/lifecycle.js';
import { runCommands, type Command } from './index.js';
import { PF_ANCHOR } from './pf.js';

/** Files in a fixed order, so a record is compared text for text. */
const textsOf = (files: readonly OutputFile[]) => [...files].sort((a, b) => (a.name < b.name ? -1 : 1)).map((f) => `# ==> ${f.name} <==\n${f.content}`);

/** After a successful load: what was loaded, for status, plan, remove and the next apply. */
export async function recordBsdLoad(target: string, files: readonly OutputFile[], ctx: ApplyContext): Promise<void> {
  if (ctx.dryRun) return;
  const texts = textsOf(files);
  await stageTextState(stateFilePath(ctx, target), { version: STATE_VERSION, target, marker: fullMarker(texts), texts, meta: ctx.meta }, ctx.log).commit();
}

export function bsdRecord(target: string, ctx: ApplyContext) {
  return readTextState(stateFilePath(ctx, target), target);
}

function recordedStatus(target: string, ctx: ApplyContext, kernel: TargetStatus['kernel'], detail: string): TargetStatus {
  const state = bsdRecord(target, ctx);
  return {
    target,
    recorded: state?.meta ? { ...state.meta, marker: state.marker } : null,
    kernel,
    detail,
    services: (state?.meta?.services ?? []).map((s) => ({ ...s, backends: s.backends.map((b) => ({ backend: b })) })),
    countersNote: `no counters: ${target === 'ipnat' ? 'ipnat -l' : 'pfctl'} output is not read for per-backend figures`,
  };
}

export async function bsdPlan(target: string, files: OutputFile[], ctx: ApplyContext): Promise<PlanReport> {
  const state = bsdRecord(target, ctx);
  const before = state ? state.texts.join('') : '';
  const after = textsOf(files).join('');
  const diff = unifiedDiff(`${target} files`, before, after);
  return {
    target,
    unchanged: diff === '',
    method: target === 'ipnat' ? 'the changed rules are removed and added one at a time (ipnat -r / -f, never a flush)' : `the whole anchor "${PF_ANCHOR}" is loaded in one transaction (pfctl -a ${PF_ANCHOR} -f)`,
    diff,
    basis: state
      ? "lbc's record of its last apply on this host (the kernel is not read: pfctl and ipnat do not list rules as they were loaded)"
      : 'no record of an earlier lbc apply on this host: everything is new as far as lbc knows (the kernel is not read)',
  };
}

// --- pf ------------------------------------------------------------------------------------

export async function pfRemove(target: string, ctx: ApplyContext): Promise<void> {
  ctx.log(`${target}: flushing anchor "${PF_ANCHOR}" (its rules, translation rules and tables; no states)`);
  await ctx.run(['pfctl', '-a', PF_ANCHOR, '-F', 'all']);
  if (!ctx.dryRun) await dropState(stateFilePath(ctx, target));
}

const ruleCount = (text: string) => text.split('\n').filter((l) => l.trim() && !l.startsWith('No ALTQ')).length;

export async function pfStatus(target: string, ctx: ApplyContext): Promise<TargetStatus> {
  let n = 0;
  for (const what of target === 'pf' ? ['nat', 'rules'] : ['rules']) {
    try {
      n += ruleCount(await ctx.query(['pfctl', '-a', PF_ANCHOR, '-s', what]));
    } catch {
      return recordedStatus(target, ctx, 'unknown', `pfctl -a ${PF_ANCHOR} -s ${what} failed: pf may not be enabled here`);
    }
  }
  if (n === 0) return recordedStatus(target, ctx, 'absent', `anchor "${PF_ANCHOR}" holds no rules`);
  return recordedStatus(target, ctx, 'unknown', `anchor "${PF_ANCHOR}" holds ${n} rule(s); pfctl does not list them as loaded, so they are not compared with the record`);
}

// --- ipnat ---------------------------------------------------------------------------------

function recordedLines(text: string, file: string, keyword: string): string[] {
  const at = text.indexOf(`# ==> ${file} <==\n`);
  if (at < 0) return [];
  const body = text.slice(at).split('\n').slice(1);
  const end = body.findIndex((l) => l.startsWith('# ==> '));
  return (end < 0 ? body : body.slice(0, end)).map((l) => l.trim()).filter((l) => l.startsWith(`${keyword} `));
}

/** The rdr and pass rules lbc's record says it loaded. */
export function recordedIpnatRules(target: string, ctx: ApplyContext): { nat: string[]; filter: string[] } | null {
  const state = bsdRecord(target, ctx);
  if (!state) return null;
  const all = state.texts.join('');
  // map: the source NAT rules of services with source-nat.
  return { nat: [...recordedLines(all, 'ipnat.rules', 'rdr'), ...recordedLines(all, 'ipnat.rules', 'map')], filter: recordedLines(all, 'ipf.rules', 'pass') };
}

/** One rule at a time: a rule that is not loaded any more makes only its own removal fail. */
export function ipnatRemovals(rules: { nat: string[]; filter: string[] }): Command[] {
  return [
    ...rules.nat.map((l) => ({ argv: ['ipnat', '-r', '-f', '-'], stdin: `${l}\n`, mayFail: true })),
    ...rules.filter.map((l) => ({ argv: ['ipf', '-r', '-f', '-'], stdin: `${l}\n`, mayFail: true })),
  ];
}

export async function ipnatRemove(ctx: ApplyContext): Promise<void> {
  const rules = recordedIpnatRules('ipnat', ctx);
  if (!rules) {
    ctx.log('ipnat: no record of what lbc loaded on this host (IPFilter has no anchor to flush); remove the rules with `ipnat -r -f ipnat.rules` and `ipf -r -f ipf.rules` of the compile you loaded');
    return;
  }
  ctx.log(`ipnat: removing the ${rules.nat.length} rdr and ${rules.filter.length} pass rule(s) lbc loaded (translations in place are left to expire)`);
  await runCommands(ipnatRemovals(rules), ctx);
  if (!ctx.dryRun) await dropState(stateFilePath(ctx, 'ipnat'));
}

export async function ipnatStatus(ctx: ApplyContext): Promise<TargetStatus> {
  const rules = recordedIpnatRules('ipnat', ctx);
  let listed: string;
  try {
    listed = await ctx.query(['ipnat', '-l']);
  } catch {
    return recordedStatus('ipnat', ctx, 'unknown', 'ipnat -l failed: IPFilter may not be loaded here');
  }
  if (!rules) return recordedStatus('ipnat', ctx, 'unknown', 'no record of lbc loading rules on this host');
  const norm = (l: string) => l.replace(/\s+/g, ' ').trim();
  const have = new Set(listed.split('\n').map(norm));
  const present = rules.nat.filter((l) => have.has(norm(l))).length;
  if (present === 0) return recordedStatus('ipnat', ctx, 'absent', `none of the ${rules.nat.length} rdr rule(s) lbc recorded is listed by ipnat -l`);
  return recordedStatus('ipnat', ctx, 'unknown', `${present} of the ${rules.nat.length} recorded rdr rule(s) are listed by ipnat -l in the same words; ipnat may print others differently`);
}
