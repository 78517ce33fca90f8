/**
 * `lbc plan SPEC --target T`: what `lbc apply` would change on this host, without changing it — the diff of
 * lbc's objects as the kernel lists them now and as they would be, and how apply would load them.
 * Exit 0; with --exit-code, 1 when applying would change something (as `git diff --exit-code`).
 */
import { LbcError } from '../../diagnostics/diagnostic.js';
import { hostContext } from '../../host/exec.js';
import { type CliCommand, specArg, specPathOf, withSpec } from '../command.js';
import { resolveTarget } from '../targets.js';
import { compileReported, loadIR } from './common.js';

export const planCommand: CliCommand = {
  usage: 'plan <spec>',
  describe: 'show what apply would change on this host (a diff against the live ruleset), without changing anything',
  options: (y) =>
    withSpec(y)
      .option('target', { alias: 't', type: 'string', demandOption: true, describe: 'the target apply would load' })
      .option('full', { type: 'boolean', default: false, describe: 'plan a full load, as apply --full' })
      .option('exit-code', { type: 'boolean', default: false, describe: 'exit 1 when applying would change something' }),
  async run(args, out) {
    const def = resolveTarget(args.target);
    if (!def.plan) throw new LbcError([{ code: 'LBC4004', severity: 'error', message: `target ${def.name} cannot be applied on this host, so there is nothing to plan` }]);
    const ir = loadIR(args, out);
    const { files } = compileReported(ir, def, { specPath: specPathOf(specArg(args)) }, out);
    const report = await def.plan(files, { ...hostContext({ dryRun: true, log: (l) => out.log(l) }), fullApply: Boolean(args.full) });
    const head = report.unchanged
      ? `${report.target}: no changes: applying this spec leaves lbc's rules as they are.\n`
      : `${report.target}: applying this spec changes lbc's rules (diff below).\n`;
    await out.stdout(`${head}  load: ${report.method}\n  compared: ${report.basis}\n${report.diff ? `\n${report.diff}` : ''}`);
    return args['exit-code'] && !report.unchanged ? 1 : 0;
  },
};
