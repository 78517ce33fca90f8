/** Steps several commands share: reading and validating the spec, compiling it for a target. */
import { LbcError } from '../../diagnostics/diagnostic.js';
import { checkSpec, compile } from '../../index.js';
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
