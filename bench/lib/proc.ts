/** Running commands with a time limit, timing them, and reading a child's peak memory. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, in milliseconds. */
  ms: number;
  timedOut: boolean;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    // Its own process group, so a time limit ends wrappers (time, ip netns exec) and what they run alike.
    const child = spawn(argv[0], argv.slice(1), { cwd: opts.cwd, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          try {
            if (child.pid) process.kill(-child.pid, 'SIGKILL');
          } catch {
            child.kill('SIGKILL');
          }
        }, opts.timeoutMs)
      : undefined;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - t0, timedOut });
    });
    child.stdin.on('error', () => {
      /* the child may exit before reading all of its input; its exit code tells */
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Like run(), but fails loudly: setup steps must not half-succeed silently. */
export async function must(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(argv, { timeoutMs: 60_000, ...opts });
  if (r.code !== 0) throw new Error(`command failed (${r.timedOut ? 'timed out' : `exit ${r.code}`}): ${argv.join(' ')}\n${r.stderr.slice(0, 2000)}`);
  return r;
}

export function haveCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

export const TIME_BIN = '/usr/bin/time';

/**
 * Run under GNU time for the peak resident set size of the command (kB), when /usr/bin/time exists.
 * The wall time is still measured here, around the whole process.
 */
export async function runMeasured(argv: string[], tmpFile: string, opts: RunOptions = {}): Promise<RunResult & { maxRssKb: number | null }> {
  if (!existsSync(TIME_BIN)) return { ...(await run(argv, opts)), maxRssKb: null };
  const r = await run([TIME_BIN, '-f', '%M', '-o', tmpFile, ...argv], opts);
  let maxRssKb: number | null = null;
  try {
    const lines = readFileSync(tmpFile, 'utf8').trim().split('\n');
    const n = Number(lines[lines.length - 1]);
    maxRssKb = Number.isFinite(n) ? n : null;
    rmSync(tmpFile, { force: true });
  } catch {
    maxRssKb = null;
  }
  return { ...r, maxRssKb };
}

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
