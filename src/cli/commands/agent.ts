/** `lbc agent SPEC --target T`: health-check the backends and keep the live ruleset in step. */
import { type CliCommand, specArg, specPathOf, withSpec } from '../command.js';
import { resolveTarget } from '../targets.js';
import { hostContext } from '../../agent/index.js';
import { compile } from '../../index.js';
import { applyTier, tierOptions } from '../../targets/tier/apply.js';
import { loadIR, tierArgs } from './common.js';

export const agentCommand: CliCommand = {
  usage: 'agent <spec>',
  describe: 'health-check the backends and keep the live ruleset in step (runs in the foreground until SIGTERM)',
  options: (y) =>
    tierArgs(withSpec(y))
      .option('target', { alias: 't', type: 'string', demandOption: true, describe: 'the target the agent keeps loaded' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'run the checks but print the commands instead of running them' }),
  async run(args, out) {
    const def = resolveTarget(args.target);
    const ir = loadIR(args, out);
    const { runAgent } = await import('../../agent/index.js');
    const log = (l: string) => out.errLine(l);
    const specPath = specPathOf(specArg(args));
    const emitOptions = tierOptions(args);
    if (!ir.balancers) return runAgent(ir, def, { log, dryRun: Boolean(args['dry-run']), specPath });
    // A node of a tier: its tier rules once (the agent reloads only the services), then the agent.
    const context = { ...hostContext(Boolean(args['dry-run']), log), ...(emitOptions.runDir ? { stateDir: emitOptions.runDir } : {}) };
    await applyTier(def, ir, compile(ir, def.name, { emit: emitOptions }).files, context, emitOptions);
    return runAgent(ir, def, { log, dryRun: Boolean(args['dry-run']), specPath, emitOptions, context });
  },
};
