/**
 * The lock that `lbc apply` and keepalived's events script take around bucket ownership: both read
 * the per-bucket state files and rewrite the kernel's copy (an nft set, or the iptables partition
 * chain), and without the lock an apply that read the files just before a failover could load the
 * old ownership after the script loaded the new one.
 *
 * flock(1) on a file under the run directory, the same lock the script takes (`flock -w … 9`): the
 * kernel releases it when its holder exits, so a crashed apply or script never leaves it taken.
 * Node has no flock(2), so a small flock(1) child holds it for us: it says "locked" once it has it and
 * keeps it until we close its standard input (or die, which closes it too).
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { LbcError } from '../../diagnostics/diagnostic.js';

/** Long enough for a script that is loading a few nft lines on a busy machine; a hung holder is a fault. */
export const LOCK_WAIT_S = 30;

function fail(message: string): LbcError {
  return new LbcError([{ code: 'LBC5010', severity: 'error', message }]);
}

/** Takes the lock; resolves with the function that gives it back. */
export function holdLock(path: string): Promise<() => Promise<void>> {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  } catch (e) {
    return Promise.reject(fail(`cannot create ${dirname(path)}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`));
  }
  return new Promise((resolve, reject) => {
    const child = spawn('flock', ['-w', String(LOCK_WAIT_S), path, 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let held = false;
    const exited = new Promise<void>((done) => child.on('close', () => done()));
    child.on('error', (e) => reject(fail(`cannot run flock(1) to lock ${path}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (!held && out.includes('locked\n')) {
        held = true;
        resolve(async () => {
          child.stdin.end();
          await exited;
        });
      }
    });
    child.on('close', (code) => {
      if (!held) reject(fail(`could not lock ${path} within ${LOCK_WAIT_S} s (flock exit ${code}${err.trim() ? `: ${err.trim()}` : ''})`));
    });
    child.stdin.on('error', () => {});
  });
}
