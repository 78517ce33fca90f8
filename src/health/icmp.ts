/**
 * check: icmp — one ICMP (ICMPv6) echo request from the balancer, answered within the timeout.
 *
 * Node has no ICMP socket: dgram opens only udp4/udp6 sockets and net only TCP, and neither raw
 * sockets nor Linux's unprivileged ping sockets (SOCK_DGRAM, IPPROTO_ICMP) are reachable without a
 * native addon. So each probe runs the system's ping once, directly (execFile, no shell), with one
 * echo (-c 1), numeric output (-n) and a numeric address (no name lookup):
 * - Linux (iputils ping): -W takes the timeout in seconds, fractions allowed;
 * - FreeBSD and macOS: -W is the wait in milliseconds (ping(8), "-W waittime");
 * - elsewhere (OpenBSD, IPv6 on the BSDs, whose flags differ between releases) no wait flag is
 *   given and lbc's own timer below ends the probe.
 * The exit status decides: 0 means a reply came (every ping above exits 0 when at least one reply
 * arrived). lbc kills a ping that outlives timeout + START_SLACK_MS, the time a loaded host may take
 * to start the process, so a probe never lasts much longer than its timeout.
 */
import { spawn } from 'node:child_process';
import type { Family } from '../ir/types.js';
import type { CheckResult } from './check.js';

/** How much longer than its timeout a probe may run: starting a process on a busy host. */
export const START_SLACK_MS = 500;

/** The ping command line for one echo with the given timeout on this platform. */
export function pingArgv(platform: NodeJS.Platform, family: Family, address: string, timeoutMs: number): string[] {
  const v6 = family === 'ipv6';
  if (platform === 'linux') return ['ping', v6 ? '-6' : '-4', '-n', '-q', '-c', '1', '-W', seconds(timeoutMs), address];
  if ((platform === 'freebsd' || platform === 'darwin') && !v6) return ['ping', '-n', '-q', '-c', '1', '-W', String(timeoutMs), address];
  return v6 ? ['ping6', '-n', '-q', '-c', '1', address] : ['ping', '-n', '-q', '-c', '1', address];
}

/** "0.3", "2": iputils reads the -W value with a dot whatever the locale. */
function seconds(ms: number): string {
  return (ms / 1000).toFixed(3).replace(/\.?0+$/, '');
}

export function icmpCheck(address: string, family: Family, timeoutMs: number, signal?: AbortSignal, platform: NodeJS.Platform = process.platform): Promise<CheckResult> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve({ ok: false, reason: 'aborted' });
      return;
    }
    const argv = pingArgv(platform, family, address, timeoutMs);
    let settled = false;
    let stderr = '';
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const finish = (r: CheckResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      resolve(r);
    };
    const onAbort = () => finish({ ok: false, reason: 'aborted' });
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => finish({ ok: false, reason: `no echo reply within ${timeoutMs}ms` }), timeoutMs + START_SLACK_MS);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      if (stderr.length < 512) stderr += d;
    });
    child.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, reason: e.code === 'ENOENT' ? `${argv[0]} not found (check: icmp runs the system's ping)` : `${argv[0]}: ${e.message}` }));
    child.on('close', (code) => {
      if (code === 0) finish({ ok: true });
      else {
        const line = stderr.split('\n').map((l) => l.trim()).find((l) => l.length > 0);
        finish({ ok: false, reason: line ? line.replace(/^ping6?: /, '') : `no echo reply within ${timeoutMs}ms` });
      }
    });
  });
}
