/** `lbc apply SPEC --target T`: load the configuration on this host, atomically and idempotently. */
import { LbcError } from '../../diagnostics/diagnostic.js';
import { hostContext } from '../../host/exec.js';
import { type CliCommand, specArg, specPathOf, withSpec } from '../command.js';
import { resolveTarget } from '../targets.js';
import { summarize } from '../../targets/lifecycle.js';
import { compileReported, loadIR } from './common.js';

export const applyCommand: CliCommand = {
  usage: 'apply <spec>',
  describe: 'load the configuration on this host, atomically and idempotently',
  options: (y) =>
    withSpec(y)
      .option('target', { alias: 't', type: 'string', demandOption: true, describe: 'the target to load (iptables, ip6tables, nftables, pf, pf-openbsd, ipnat)' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'print the commands instead of running them' })
      .option('full', { type: 'boolean', default: false, describe: 'load the whole ruleset even when lbc knows only part of it changed' }),
  async run(args, out) {
    const def = resolveTarget(args.target);
    if (!def.apply) {
      throw new LbcError([{ code: 'LBC4004', severity: 'error', message: `target ${def.name} cannot be applied on this host`, notes: ['compile it with -o and load the files on the host they are for'] }]);
    }
    const ir = loadIR(args, out);
    const spec = specPathOf(specArg(args));
    const { files } = compileReported(ir, def, { specPath: spec }, out);
    const meta = summarize({ ...ir, services: ir.services.filter((s) => def.families.includes(s.family)) }, spec);
    await def.apply(files, { ...hostContext({ dryRun: Boolean(args['dry-run']), log: (l) => out.log(l) }), fullApply: Boolean(args.full), meta });
    return 0;
  },
};
