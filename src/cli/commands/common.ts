/** Steps several commands share: reading and validating the spec, compiling it for a target. */
import { LbcError } from '../../diagnostics/diagnostic.js';
import { checkSpec, compile } from '../../index.js';
import type { Argv } from 'yargs';
import type { IR } from '../../ir/types.js';
import type { EmitOptions, TargetDefinition, TargetResult } from '../../targets/target.js';
import { specArg } from '../command.js';
import { readSpec } from '../io.js';
import type { Reporter } from '../report.js';

/** The validated IR of the spec the command line names; warnings are reported, errors thrown. */
export function loadIR(args: Record<string, unknown>, out: Reporter): IR {
  const { text, file } = readSpec(specArg(args));
  const { ir, diagnostics } = checkSpec(text, file);
  if (!ir) throw new LbcError(diagnostics);
  out.diagnostics(diagnostics);
  return ir;
}

/** Compile for a target, reporting its warnings; throws LbcError when it refuses. */
export function compileReported(ir: IR, def: TargetDefinition, emit: EmitOptions, out: Reporter): TargetResult {
  const result = compile(ir, def.name, { emit });
  out.diagnostics(result.diagnostics);
  return result;
}

/** --node and --run-dir, which compile, apply and agent take for a spec with a `balancers` tier. */
export function tierArgs(y: Argv): Argv {
  return y
    .option('node', { type: 'string', describe: 'with a balancers block: the node to compile, load or run for (one of the spec\'s nodes)' })
    .option('run-dir', { type: 'string', describe: 'with --node: where the node\'s daemons and scripts keep their runtime files, and apply its record (default /run/lbc)' });
}
