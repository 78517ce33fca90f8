/**
 * lbc as a library:
 *
 *   import { parseSpec, compile } from 'lbc';
 *   const ir = parseSpec(readFileSync('spec.yaml', 'utf8'), 'spec.yaml');
 *   const { files, diagnostics } = compile(ir, 'nftables');
 *
 * Invalid specs and targets that cannot express a spec throw LbcError, whose
 * `diagnostics` lists every problem with file, line and column. An IR handed to
 * compile() — or to the emit() and agent driver of a target in TARGETS — is
 * checked first, with the spec validator's diagnostics (ir/check.ts): one a
 * script built or edited cannot put text into a ruleset.
 */
import { DiagnosticBag, LbcError, sortDiagnostics, type Diagnostic } from './diagnostics/diagnostic.js';
import { remember, trustedIR } from './ir/check.js';
import type { IR } from './ir/types.js';
import { SpecValidator } from './ir/validate.js';
import { parseSpecBytes, parseSpecText } from './spec/parse.js';
import { TARGETS as REGISTRY, targetNames, type TargetName } from './targets/registry.js';
import { compileForTarget, type AgentDriver, type EmitOptions, type TargetDefinition, type TargetResult } from './targets/target.js';

export type { Diagnostic, SourceLocation, Severity } from './diagnostics/diagnostic.js';
export { LbcError, formatDiagnostic } from './diagnostics/diagnostic.js';
export type * from './ir/types.js';
export type { OutputFile, TargetDefinition, TargetResult, EmitOptions, Support, ApplyContext } from './targets/target.js';
export { targetNames, TARGET_NAMES, type TargetName } from './targets/registry.js';
export { checkIR } from './ir/check.js';
export { specJsonSchema, type JsonSchema } from './spec/json-schema.js';
export { readSpecFile, type SpecText } from './spec/read.js';
export * as limits from './spec/limits.js';

/**
 * Validate a spec given as text or as bytes (which must be UTF-8: the first byte that is not is
 * reported with its position); never throws on bad input. `ir` is null when there are errors.
 */
export function checkSpec(text: string | Uint8Array, file = '<spec>'): { ir: IR | null; diagnostics: Diagnostic[] } {
  const bag = new DiagnosticBag();
  // Services are validated as the parser reads them; their diagnostics count only if the text parsed.
  const validator = new SpecValidator(file);
  const { root } = typeof text === 'string' ? parseSpecText(text, file, bag, validator.add) : parseSpecBytes(text, file, bag, validator.add);
  if (bag.hasErrors) return { ir: null, diagnostics: sortDiagnostics(bag.items) };
  const ir = root ? validator.finish(root) : null;
  bag.items.push(...validator.bag.items);
  if (!ir && !bag.hasErrors) bag.error('LBC1004', 'the spec is empty; it needs at least `version: 1` and `services:`', { file, line: 1, column: 1 });
  return { ir: bag.hasErrors || !ir ? null : remember(ir), diagnostics: sortDiagnostics(bag.items) };
}

/** Parse and validate a spec (YAML or JSON text, or its UTF-8 bytes). Throws LbcError listing every problem. */
export function parseSpec(text: string | Uint8Array, file = '<spec>'): IR {
  const { ir, diagnostics } = checkSpec(text, file);
  if (!ir) throw new LbcError(diagnostics);
  return ir;
}

export interface CompileOptions {
  /** File name used in messages when `input` is spec text. */
  file?: string;
  /** Target-specific knobs. */
  emit?: EmitOptions;
}

const trusted = trustedIR;

/**
 * Compile spec text or an IR for one target. Throws LbcError when the spec or IR is
 * invalid or the target cannot express it; warnings and notes come back in
 * `diagnostics` beside the files.
 */
export function compile(input: string | Uint8Array | IR, target: TargetName, options: CompileOptions = {}): TargetResult {
  const def = REGISTRY.get(target);
  if (!def) {
    throw new LbcError([{ code: 'LBC4002', severity: 'error', message: `unknown target "${String(target)}"`, notes: [`targets: ${targetNames().join(', ')}`] }]);
  }
  const ir = typeof input === 'string' || input instanceof Uint8Array ? parseSpec(input, options.file) : trusted(input);
  const result = compileForTarget(def, ir, options.emit ?? {});
  if (result.diagnostics.some((d) => d.severity === 'error')) throw new LbcError(sortDiagnostics(result.diagnostics));
  return { files: result.files, diagnostics: sortDiagnostics(result.diagnostics) };
}

/** A target whose entry points that take an IR check it first. */
function guarded(t: TargetDefinition): TargetDefinition {
  const driver = t.agentDriver;
  const agentDriver: AgentDriver | undefined = driver && {
    ...driver,
    load: async (change, ctx) =>
      driver.load({ ...change, spec: trusted(change.spec), live: trusted(change.live), previous: change.previous && { ...change.previous, live: trusted(change.previous.live) } }, ctx),
  };
  return Object.freeze({ ...t, emit: (ir: IR, options: EmitOptions) => t.emit(trusted(ir), options), ...(agentDriver ? { agentDriver } : {}) });
}

/** Every target by name. Their emit() and agent driver check the IR they are given (the CLI uses the registry itself). */
export const TARGETS: ReadonlyMap<string, TargetDefinition> = new Map([...REGISTRY].map(([name, t]) => [name, guarded(t)]));
