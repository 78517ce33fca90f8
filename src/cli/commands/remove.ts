/** `lbc remove --target T`: take out everything lbc loaded for the target on this host, and nothing else. */
import { LbcError } from '../../diagnostics/diagnostic.js';
import { hostContext } from '../../host/exec.js';
import type { CliCommand } from '../command.js';
import { resolveTarget } from '../targets.js';

export const removeCommand: CliCommand = {
  usage: 'remove',
  describe: "take out everything lbc loaded for a target on this host (its table or chains, jumps, sets or anchor, and its record), nothing else",
  options: (y) =>
    y
      .option('target', { alias: 't', type: 'string', demandOption: true, describe: 'the target whose rules to remove' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'print the commands instead of running them' }),
  async run(args, out) {
    const def = resolveTarget(args.target);
    if (!def.remove) {
      throw new LbcError([{ code: 'LBC4004', severity: 'error', message: `target ${def.name} is not loaded on a host by lbc, so there is nothing of lbc's to remove` }]);
    }
    await def.remove(hostContext({ dryRun: Boolean(args['dry-run']), log: (l) => out.log(l) }));
    return 0;
  },
};
