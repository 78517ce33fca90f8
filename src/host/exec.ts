/**
 * The ApplyContext that runs commands on this host: used by `lbc apply` and by
 * the agent. In a dry run, commands that change the host are announced instead
 * of run; read-only queries still run.
 */
import { spawn } from 'node:child_process';
import { LbcError } from '../diagnostics/diagnostic.js';
import type { ApplyContext } from '../targets/target.js';

/**
 * Where apply records what it loaded on a real host: a tmpfs (Linux /run, the BSDs' /var/run), so after
 * a reboot, when the kernel holds nothing of lbc's, there is no record either and the first apply is full.
 */
export const DEFAULT_STATE_DIR = process.platform === 'linux' ? '/run/lbc' : '/var/run/lbc';
export const STATE_DIR_ENV = 'LBC_STATE_DIR';
/** A ruleset load for 10,000 services takes seconds; anything near this is stuck. */
const COMMAND_TIMEOUT_MS = 300_000;

export function execCommand(argv: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], timeout: COMMAND_TIMEOUT_MS });
    const out: Buffer[] = [];
    const errs: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => errs.push(d));
    child.on('error', (e) => resolve({ code: 127, stdout: Buffer.concat(out).toString(), stderr: String((e as NodeJS.ErrnoException).code ?? e.message) }));
    child.on('close', (code, signal) =>
      resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(errs).toString() + (signal ? ` (killed by ${signal})` : '') }),
    );
    // A command that exits without reading its input (iptables -C, ipset list) must not fail with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(stdin ?? '');
  });
}

function failure(argv: string[], r: { code: number; stderr: string }): LbcError {
  return new LbcError([
    { code: 'LBC5001', severity: 'error', message: `${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(0, 5).join(' | ')}` },
  ]);
}

export function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,.\/-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The default announcement of a dry run: the command as a shell line, its input as a here-document, on stdout. */
function printToStdout(argv: string[], stdin?: string): void {
  const input = stdin === undefined ? '' : ` <<EOF\n${stdin}${stdin.endsWith('\n') ? '' : '\n'}EOF`;
  process.stdout.write(`${argv.map(shellWord).join(' ')}${input}\n`);
}

export interface HostContextOptions {
  dryRun: boolean;
  log: (line: string) => void;
  /** Run every command through this prefix (tests: ['ip', 'netns', 'exec', NS]). */
  prefix?: string[];
  /** How a dry run shows a command (default: a shell line on stdout). */
  announce?: (argv: string[], stdin?: string) => void;
  /**
   * Incremental-apply state directory. Default: $LBC_STATE_DIR or /run/lbc on the real host; none
   * (every apply full) when commands run through a prefix, whose state is not this host's.
   */
  stateDir?: string | null;
}

export function hostContext(opts: HostContextOptions): ApplyContext {
  const prefix = opts.prefix ?? [];
  const announce = opts.announce ?? printToStdout;
  const stateDir = opts.stateDir !== undefined ? opts.stateDir : prefix.length ? null : process.env[STATE_DIR_ENV] || DEFAULT_STATE_DIR;
  return {
    dryRun: opts.dryRun,
    log: opts.log,
    stateDir,
    async run(argv, stdin) {
      if (opts.dryRun) {
        announce([...prefix, ...argv], stdin);
        return;
      }
      const r = await execCommand([...prefix, ...argv], stdin);
      if (r.code !== 0) throw failure(argv, r);
    },
    async query(argv) {
      const r = await execCommand([...prefix, ...argv]);
      if (r.code !== 0) throw failure(argv, r);
      return r.stdout;
    },
  };
}
