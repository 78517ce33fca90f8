/** The ApplyContext the CLI gives targets: real commands, or printed ones in a dry run. */
import { spawn } from 'node:child_process';
import { LbcError } from '../diagnostics/diagnostic.js';
import type { ApplyContext } from '../targets/target.js';

export function execCommand(argv: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (e) => resolve({ code: 127, stdout, stderr: stderr + String((e as NodeJS.ErrnoException).code ?? e.message) }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.on('error', () => {
      /* reported through the exit status */
    });
    child.stdin.end(stdin ?? '');
  });
}

function failure(argv: string[], r: { code: number; stderr: string }): LbcError {
  return new LbcError([
    { code: 'LBC5001', severity: 'error', message: `${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(0, 5).join(' | ')}` },
  ]);
}

/** `prefix` lets tests run everything inside a namespace (e.g. ['ip', 'netns', 'exec', 'ns']). */
export function hostContext(opts: { dryRun: boolean; log: (line: string) => void; prefix?: string[]; print?: (text: string) => void }): ApplyContext {
  const prefix = opts.prefix ?? [];
  const print = opts.print ?? ((t: string) => process.stdout.write(t));
  return {
    dryRun: opts.dryRun,
    log: opts.log,
    async run(argv, stdin) {
      if (opts.dryRun) {
        print(`${[...prefix, ...argv].join(' ')}${stdin !== undefined ? ' <<EOF\n' + stdin + (stdin.endsWith('\n') ? '' : '\n') + 'EOF' : ''}\n`);
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
