/** `lbc agent SPEC --target T`: health-check the backends and keep the live ruleset in step. */
import { type CliCommand, specArg, specPathOf, withSpec } from '../command.js';
import { resolveTarget } from '../targets.js';
import { loadIR } from './common.js';

export const agentCommand: CliCommand = {
  usage: 'agent <spec>',
  describe: 'health-check the backends and keep the live ruleset in step (runs in the foreground until SIGTERM)',
  options: (y) =>
    withSpec(y)
      .option('target', { alias: 't', type: 'string', demandOption: true, describe: 'the target the agent keeps loaded' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'run the checks but print the commands instead of running them' }),
  async run(args, out) {
    const def = resolveTarget(args.target);
    const ir = loadIR(args, out);
    const { runAgent } = await import('../../agent/index.js');
    return runAgent(ir, def, { log: (l) => out.errLine(l), dryRun: Boolean(args['dry-run']), specPath: specPathOf(specArg(args)) });
  },
};
