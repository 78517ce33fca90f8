/** `lbc compile SPEC --target T [-o PATH] [--check]`: print or write a target's configuration. */
import { readFileSync } from 'node:fs';
import { createTwoFilesPatch } from 'diff';
import { type CliCommand, specArg, specPathOf, UsageError, withSpec } from '../command.js';
import { joinForStdout, plannedOutputs, writeOutputs } from '../io.js';
import { resolveTarget } from '../targets.js';
import { compileReported, loadIR } from './common.js';

function currentText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

export const compileCommand: CliCommand = {
  usage: 'compile <spec>',
  describe: 'print (or write with -o) the configuration for one target; SPEC "-" reads standard input',
  options: (y) =>
    withSpec(y)
      .option('target', { alias: 't', type: 'string', demandOption: true, describe: 'the target to compile for (lbc matrix lists them)' })
      .option('output', { alias: 'o', type: 'string', describe: 'write to PATH instead of standard output (a directory when the target emits several files; - is standard output)' })
      .option('check', { type: 'boolean', default: false, describe: 'with -o: write nothing; exit 0 when PATH holds exactly what would be written, else 1 with a unified diff' })
      .option('unit', { type: 'string', choices: ['agent', 'apply'], describe: 'with --target systemd: a unit running `lbc agent` (default), or one loading the rules at boot with `lbc apply`' })
      .option('agent-target', { alias: 'unit-target', type: 'string', describe: 'with --target systemd: the target the unit runs lbc with (default nftables)' })
      .option('lbc-path', { type: 'string', describe: 'with --target systemd: absolute path of lbc in ExecStart (default /usr/local/bin/lbc)' }),
  async run(args, out) {
    const def = resolveTarget(args.target);
    const output = args.output as string | undefined;
    if (args.check && (output === undefined || output === '-')) throw new UsageError('--check compares with the files at -o PATH; give -o PATH');
    const spec = specArg(args);
    const ir = loadIR(args, out);
    const emit = { specPath: specPathOf(spec), agentTarget: args['agent-target'], lbcPath: args['lbc-path'], unit: args.unit };
    const { files } = compileReported(ir, def, emit, out);
    if (files.length === 0) {
      out.log(`target ${def.name} has nothing to write for this spec`);
      return 0;
    }
    if (args.check) {
      let patch = '';
      for (const p of plannedOutputs(files, output!)) {
        const now = currentText(p.path);
        if (now === p.content) continue;
        patch += createTwoFilesPatch(p.path, p.path, now ?? '', p.content, now === null ? '(missing)' : 'current', 'lbc compile');
      }
      if (patch === '') return 0;
      await out.stdout(patch);
      return 1;
    }
    if (output === undefined || output === '-') {
      await out.stdout(joinForStdout(files));
      return 0;
    }
    for (const p of writeOutputs(files, output, def.name, (l) => out.log(l))) out.log(`wrote ${p}`);
    return 0;
  },
};
