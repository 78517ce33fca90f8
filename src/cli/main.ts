#!/usr/bin/env node
/**
 * lbc command line. Parsing is strict and finishes before any command runs: an unknown option, command
 * or extra argument is a usage error (exit 2, nothing on stdout, nothing changed), with "did you mean".
 * Exit status: 0 done; 1 the spec is invalid, the target cannot express it, or a check found a
 * difference; 2 usage or I/O errors; 3 an internal error; 141 standard output was a closed pipe.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { didYouMean, LbcError } from '../diagnostics/diagnostic.js';
import { UsageError, type CliCommand } from './command.js';
import { COMMANDS } from './commands/index.js';
import { ClosedPipe, EXIT_PIPE, OUTPUT_FORMATS, Reporter, type OutputFormat } from './report.js';

/** The version in lbc's package.json, wherever this file runs from (src/ under tsx, dist/src/ when built). */
function lbcVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = dirname(dir)) {
    const p = join(dir, 'package.json');
    if (!existsSync(p)) continue;
    const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'lbc' && pkg.version) return pkg.version;
  }
  return 'unknown';
}

function commandName(c: CliCommand): string {
  return c.usage.split(' ')[0];
}

interface Parsed {
  command: CliCommand;
  args: Record<string, unknown>;
}

interface Declared {
  command: CliCommand | null;
  /** Every option name and alias the matched command (or the top level) declares. */
  names: string[];
  arrays: Set<string>;
}

/** yargs' terse messages, turned into what a user can act on. */
function usageError(msg: string, argv: readonly string[], declared: Declared): UsageError {
  const cmd = declared.command ? commandName(declared.command) : null;
  const longNames = declared.names.filter((n) => n.length > 1 && n !== 'spec' && !/[A-Z]/.test(n));
  const listed = longNames.filter((n) => !['help', 'version', 'output-format'].includes(n));
  const unknown = /^Unknown arguments?: (.+)$/.exec(msg);
  if (unknown) {
    const words = unknown[1].split(', ');
    const w = words[0];
    const asOption = argv.some((a) => a === `--${w}` || a.startsWith(`--${w}=`) || (w.length === 1 && /^-[A-Za-z]+$/.test(a) && a.includes(w)));
    if (!asOption && !cmd) {
      const guess = didYouMean(w, COMMANDS.map(commandName));
      return new UsageError(`unknown command "${w}"`, [guess ? `did you mean "lbc ${guess}"?` : `commands: ${COMMANDS.map(commandName).join(', ')}`]);
    }
    if (!asOption) return new UsageError(`lbc ${cmd} takes one SPEC; "${w}" is one argument too many`, ['quote a path with spaces; options start with --']);
    // -n is "dry run" in make, rsync and pfctl; say so where the command has one.
    const prefixed = longNames.filter((n) => w.length >= 2 && n.startsWith(w));
    const guess = w === 'n' && longNames.includes('dry-run') ? 'dry-run' : prefixed.length === 1 ? prefixed[0] : didYouMean(w, longNames);
    const shown = w.length === 1 ? `-${w}` : `--${w}`;
    return new UsageError(`unknown option ${shown}${words.length > 1 ? ` (and ${words.slice(1).map((x) => (x.length === 1 ? `-${x}` : `--${x}`)).join(', ')})` : ''}${cmd ? ` for lbc ${cmd}` : ''}`, [
      guess ? `did you mean --${guess}?` : `options: ${listed.map((n) => `--${n}`).join(', ')}`,
    ]);
  }
  if (/^Not enough non-option arguments/.test(msg)) {
    if (!cmd) return new UsageError('name a command', [`commands: ${COMMANDS.map(commandName).join(', ')}`, "lbc help COMMAND shows a command's options"]);
    return new UsageError(`lbc ${cmd} needs SPEC: a spec file, or - for standard input`);
  }
  const missing = /^Missing required arguments?: (.+)$/.exec(msg);
  if (missing) return new UsageError(`lbc ${cmd ?? ''} needs ${missing[1].split(', ').map((m) => `--${m}`).join(' and ')}`.replace('lbc  ', 'lbc '));
  const invalid = /Argument: ([\w-]+), Given: ("[^"]*"|\S+), Choices: (.+)$/m.exec(msg);
  if (invalid) return new UsageError(`--${invalid[1]} must be one of ${invalid[3].replace(/"/g, '')}, not ${invalid[2]}`);
  return new UsageError(msg.charAt(0).toLowerCase() + msg.slice(1));
}

async function parse(argv: string[]): Promise<Parsed | null> {
  let parsed: Parsed | null = null;
  const declared: Declared = { command: null, names: [], arrays: new Set() };
  const record = (y: Argv, command: CliCommand | null): Argv => {
    const o = (y as unknown as { getOptions(): { key: Record<string, unknown>; array: string[] } }).getOptions();
    declared.command = command;
    declared.names = Object.keys(o.key).filter((k) => k !== '$0');
    declared.arrays = new Set(o.array);
    return y;
  };
  let y = yargs(argv)
    .scriptName('lbc')
    .usage('$0 <command> SPEC [options]\n\nCompile a load-balancer spec to firewall rules.')
    .option('output-format', { type: 'string', choices: OUTPUT_FORMATS as unknown as string[], default: 'text', global: true, describe: 'how diagnostics are written to stderr: text, json (one document) or github (workflow commands)' });
  for (const c of COMMANDS) {
    y = y.command(
      c.usage,
      c.describe,
      (b) => record(c.options(b), c),
      (a) => {
        parsed = { command: c, args: a as Record<string, unknown> };
      },
    );
  }
  await y
    .demandCommand(1, 'Not enough non-option arguments')
    .strict()
    .help()
    .alias('h', 'help')
    .version('version', 'show the version of lbc', lbcVersion())
    .exitProcess(false)
    .wrap(Math.min(120, process.stdout.columns || 100))
    .fail((msg, e) => {
      if (e) throw e;
      if (!declared.command) record(y, null);
      throw usageError(msg, argv, declared);
    })
    .parseAsync();
  const p = parsed as Parsed | null;
  if (!p) return null;
  // A single-valued option given twice is a mistake yargs would quietly turn into a list.
  for (const [k, v] of Object.entries(p.args)) {
    if (Array.isArray(v) && k !== '_' && !declared.arrays.has(k) && declared.names.includes(k) && k.length > 1) {
      throw new UsageError(`--${k} is given ${v.length} times (${v.join(', ')}); give it once`);
    }
  }
  return p;
}

async function main(argv: string[]): Promise<number> {
  // "lbc help [COMMAND]" is "lbc [COMMAND] --help".
  if (argv[0] === 'help') argv = [...argv.slice(1), '--help'];
  let out = new Reporter('text');
  try {
    const p = await parse(argv);
    if (!p) return 0; // --help or --version
    out = new Reporter((p.args['output-format'] as OutputFormat | undefined) ?? 'text');
    const code = await p.command.run(p.args, out);
    out.finish();
    return code;
  } catch (e) {
    if (e instanceof ClosedPipe) return EXIT_PIPE;
    if (e instanceof UsageError) {
      out.errLine(`lbc: error: ${e.message}`);
      for (const n of e.notes) out.errLine(`  note: ${n}`);
      out.errLine("run 'lbc --help' (or 'lbc help COMMAND') for usage");
      return 2;
    }
    if (e instanceof LbcError) {
      out.diagnostics(e.diagnostics);
      out.finish();
      return e.diagnostics.some((d) => d.code.startsWith('LBC4')) && !e.diagnostics.some((d) => d.location) ? 2 : 1;
    }
    out.errLine(`lbc: internal error: ${e instanceof Error ? e.message : String(e)}`);
    if (process.env.LBC_DEBUG && e instanceof Error && e.stack) out.errLine(e.stack);
    return 3;
  }
}

// A closed stdout surfaces as an 'error' event besides the write callback; the callback decides.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

main(hideBin(process.argv)).then((code) => {
  process.exitCode = code;
});
