/** Build the C client and server into a temporary directory, and run the server inside a namespace. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { must, run } from './proc.js';
import { inNs, trackPid, untrackPid } from './netns.js';

const SRC = fileURLToPath(new URL('../native/', import.meta.url));

export interface NativeTools {
  client: string;
  server: string;
}

export async function buildNative(dir: string): Promise<NativeTools> {
  const client = join(dir, 'lbc-bench-client');
  const server = join(dir, 'lbc-bench-server');
  await must(['cc', '-O2', '-Wall', '-o', client, join(SRC, 'client.c')]);
  await must(['cc', '-O2', '-Wall', '-o', server, join(SRC, 'server.c')]);
  return { client, server };
}

export interface RunningServer {
  stop(): Promise<void>;
}

/** Start the accept loop in `ns` and wait for it to listen. */
export function startServer(tools: NativeTools, ns: string, port: number, maxSeconds: number): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const argv = inNs(ns, [tools.server, String(port), String(maxSeconds)]);
    // `ip netns exec` enters the namespace and execs the server, so this pid is the server's own.
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid) trackPid(child.pid);
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('server did not start within 10 s'));
    }, 10_000);
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.stdout.on('data', (b: Buffer) => {
      if (!b.toString().includes('ready')) return;
      clearTimeout(timer);
      resolve({
        stop: () =>
          new Promise<void>((res) => {
            if (child.exitCode !== null || child.signalCode !== null) {
              if (child.pid) untrackPid(child.pid);
              return res();
            }
            child.once('close', () => {
              if (child.pid) untrackPid(child.pid);
              res();
            });
            child.kill('SIGKILL');
          }),
      });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (child.pid) untrackPid(child.pid);
      reject(new Error(`server exited (${code}): ${err}`));
    });
  });
}

export interface ClientResult {
  ok: number;
  fail: number;
  seconds: number;
  rate: number;
  /** strerror() of the first failed connect, or "none". */
  firstError: string;
}

export async function runClient(tools: NativeTools, ns: string, addr: string, port: number, count: number, maxSeconds: number): Promise<ClientResult> {
  const r = await run(inNs(ns, [tools.client, addr, String(port), String(count), String(maxSeconds)]), { timeoutMs: (maxSeconds + 15) * 1000 });
  const m = /ok=(\d+) fail=(\d+) seconds=([\d.]+) stalled=[\d.]+ rate=([\d.]+) first_error=(.*)/.exec(r.stdout);
  if (r.code !== 0 || !m) throw new Error(`client failed (exit ${r.code}): ${r.stderr || r.stdout}`);
  return { ok: Number(m[1]), fail: Number(m[2]), seconds: Number(m[3]), rate: Number(m[4]), firstError: m[5].trim() };
}
