/**
 * A child process of a kernel test whose output lines the test can wait for, with deadlines.
 * The test kills it (kill()) in its finally/afterAll; lines are kept for the failure message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export class Proc {
  readonly out: string[] = [];
  readonly err: string[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  private bufs = { out: '', err: '' };
  constructor(argv: string[]) {
    this.child = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    for (const k of ['out', 'err'] as const) {
      const stream = k === 'out' ? this.child.stdout! : this.child.stderr!;
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => {
        this.bufs[k] += d;
        let i;
        while ((i = this.bufs[k].indexOf('\n')) >= 0) {
          this[k].push(this.bufs[k].slice(0, i));
          this.bufs[k] = this.bufs[k].slice(i + 1);
        }
      });
    }
    this.exited = new Promise((r) => this.child.on('exit', (code) => r(code)));
  }
  /** Index of the first line at or after `from` matching `re`; rejects after `ms`. */
  async waitLine(stream: 'out' | 'err', re: RegExp, from = 0, ms = 15_000): Promise<number> {
    const end = Date.now() + ms;
    for (;;) {
      const lines = this[stream];
      for (let i = from; i < lines.length; i++) if (re.test(lines[i])) return i;
      if (this.child.exitCode !== null || Date.now() > end) {
        throw new Error(`no line matching ${re} (${this.child.exitCode !== null ? 'process exited' : 'timeout'}); stderr:\n${this.err.join('\n')}\nstdout:\n${this.out.join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  kill(): void {
    if (this.child.exitCode === null && this.child.pid) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

