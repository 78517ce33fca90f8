/**
 * What a CLI command is: its yargs shape and a handler that returns the exit status. main.ts registers
 * every command in commands/index.ts the same way, so a command is one module and one line there.
 *
 * Exit status: 0 done; 1 the spec is invalid, the target cannot express it, or a check found a
 * difference; 2 usage or I/O errors; 3 an internal error.
 */
import type { Argv } from 'yargs';
import type { Reporter } from './report.js';

export interface CliCommand {
  /** yargs command string, e.g. "compile <spec>". */
  usage: string;
  describe: string;
  /** Declares the command's positionals and options (every option the command reads must be declared). */
  options(y: Argv): Argv;
  /** Runs after yargs validated the arguments strictly; nothing here runs on a usage error. */
  run(args: Record<string, unknown>, out: Reporter): Promise<number>;
}

/** A mistake in how lbc was called: exit 2, nothing on stdout, nothing changed. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly notes: string[] = [],
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The SPEC positional every spec-reading command takes. */
export function withSpec(y: Argv): Argv {
  return y.positional('spec', { type: 'string', describe: 'the spec file (YAML or JSON), or - for standard input' });
}

/** The command line names a spec file; yargs hands a lone "-" over as an empty string. */
export function specArg(args: Record<string, unknown>): string {
  const v = args.spec;
  if (v === undefined || v === null) throw new UsageError('missing SPEC: a spec file, or - for standard input');
  const s = String(v);
  return s === '' ? '-' : s;
}

/** The spec's path for targets that name it (systemd units), or null when it comes from standard input. */
export function specPathOf(spec: string): string | null {
  return spec === '-' ? null : spec;
}
