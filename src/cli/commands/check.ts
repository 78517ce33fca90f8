/**
 * `lbc check SPEC [-t T ...]`: validate the spec and judge it per target. Exit 1 when the spec is invalid
 * or any target judged refuses it (every target lbc knows when -t is not given), as `compile` would.
 * The report on stdout is one line per target; the reasons go to stderr, a few per target unless --verbose.
 */
import { LbcError, type Diagnostic } from '../../diagnostics/diagnostic.js';
import { compileForTarget, type TargetDefinition } from '../../targets/target.js';
import { targetNames } from '../../targets/registry.js';
import { type CliCommand, specArg, specPathOf, withSpec } from '../command.js';
import { describeService } from '../describe.js';
import { diagnosticJson } from '../report.js';
import { resolveTarget } from '../targets.js';
import { loadIR } from './common.js';

/** Reasons shown per target without --verbose. */
const SHOWN_PER_TARGET = 3;

interface Verdict {
  target: string;
  verdict: 'compiles' | 'approximates' | 'refused' | 'nothing to compile';
  summary: string;
  diagnostics: Diagnostic[];
}

function judge(def: TargetDefinition, ir: Parameters<typeof compileForTarget>[1], specPath: string | null): Verdict {
  let ds: Diagnostic[];
  try {
    ds = compileForTarget(def, ir, { specPath }).diagnostics;
  } catch (e) {
    if (!(e instanceof LbcError)) throw e;
    ds = e.diagnostics;
  }
  const errors = ds.filter((d) => d.severity === 'error');
  const leftOut = ds.filter((d) => d.code === 'LBC3003').length;
  if (errors.length > 0) return { target: def.name, verdict: 'refused', summary: `refused (${errors.length} error${errors.length === 1 ? '' : 's'})`, diagnostics: ds };
  if (ir.services.length > 0 && leftOut === ir.services.length)
    return { target: def.name, verdict: 'nothing to compile', summary: `nothing to compile: no ${def.families.join('/')} service`, diagnostics: ds };
  const warnings = ds.filter((d) => d.severity === 'warning').length;
  if (warnings > 0) return { target: def.name, verdict: 'approximates', summary: `compiles, with ${warnings} approximation${warnings === 1 ? '' : 's'}`, diagnostics: ds };
  return { target: def.name, verdict: 'compiles', summary: 'compiles', diagnostics: ds };
}

export const checkCommand: CliCommand = {
  usage: 'check <spec>',
  describe: 'validate the spec and say, per target, whether it compiles there and why not (exit 1 if any judged target refuses)',
  options: (y) =>
    withSpec(y)
      .option('target', { alias: 't', type: 'string', array: true, describe: 'judge only these targets (default: every target)' })
      .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'describe every service and show every reason' }),
  async run(args, out) {
    // Every target name is checked before anything is read or printed: a typo is a usage error, not half a report.
    const named = (args.target as string[] | undefined) ?? [];
    const defs = (named.length > 0 ? named : targetNames()).map((n) => resolveTarget(n));
    const ir = loadIR(args, out);
    const specPath = specPathOf(specArg(args));
    const verdicts = defs.map((d) => judge(d, ir, specPath));
    const refused = verdicts.filter((v) => v.verdict === 'refused').map((v) => v.target);
    const verbose = Boolean(args.verbose);
    if (out.format === 'json') {
      const doc = {
        file: ir.file,
        valid: true,
        services: ir.services.length,
        targets: verdicts.map((v) => ({ target: v.target, verdict: v.verdict, diagnostics: v.diagnostics.map(diagnosticJson) })),
        refusedBy: refused,
      };
      await out.stdout(`${JSON.stringify(doc, null, 2)}\n`);
      return refused.length > 0 ? 1 : 0;
    }
    const n = ir.services.length;
    const lines = [`${ir.file}: valid, ${n} service${n === 1 ? '' : 's'}`];
    if (verbose) for (const s of ir.services) lines.push(`  ${describeService(s)}`);
    for (const v of verdicts) lines.push(`  ${v.target.padEnd(19)} ${v.summary}`);
    if (refused.length > 0) lines.push(`refused by: ${refused.join(', ')}`);
    for (const v of verdicts) {
      const worth = verbose ? v.diagnostics : v.diagnostics.filter((d) => d.severity !== 'note');
      const shown = verbose ? worth : worth.slice(0, SHOWN_PER_TARGET);
      if (shown.length === 0) continue;
      out.errLine(`${v.target}:`);
      out.diagnostics(shown);
      if (worth.length > shown.length) out.errLine(`  … and ${worth.length - shown.length} more (--verbose shows every reason)`);
    }
    await out.stdout(`${lines.join('\n')}\n`);
    return refused.length > 0 ? 1 : 0;
  },
};
