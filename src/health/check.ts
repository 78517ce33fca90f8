/**
 * Health checks the agent runs from the balancer: a TCP connect, an HTTP
 * request, a banner read, an ICMP echo (icmp.ts) or a UDP datagram that must
 * be answered (udp.ts). Each check is one bounded attempt: it settles
 * within `timeoutMs` (or when the caller aborts), always closes its socket,
 * and reports a short human reason on failure.
 *
 * HTTP is spoken over a plain socket instead of node:http so that the only
 * thing that matters is the status line: no keep-alive agent, no body read,
 * no redirects followed. HTTP/1.0 with "Connection: close" keeps servers from
 * holding the socket (RFC 9112 section 9.3), and a Host header is always sent
 * because HTTP/1.1 virtual hosts answer 400 without one.
 */
import net from 'node:net';
import type { Family, HealthCheck } from '../ir/types.js';
import { icmpCheck } from './icmp.js';
import { udpCheck } from './udp.js';

export interface CheckTarget {
  /** The address to probe; null (a port on the balancer itself) probes loopback. */
  address: string | null;
  /** The port to probe (the check's port, else the backend's). */
  port: number;
  family: Family;
}

export type CheckResult = { ok: true } | { ok: false; reason: string };

/** Runs one check; never rejects. */
export type Checker = (target: CheckTarget, hc: HealthCheck, signal?: AbortSignal) => Promise<CheckResult>;

/** The longest first line (status line or banner) read before giving up; a health answer is short. */
const MAX_LINE = 4096;

export function probeAddress(t: CheckTarget): string {
  if (t.address !== null) return t.address;
  return t.family === 'ipv6' ? '::1' : '127.0.0.1';
}

/** "10.0.0.1:80", "[2001:db8::1]:80", or "local:80" for a port on the balancer. */
export function endpointText(address: string | null, port: number): string {
  if (address === null) return `local:${port}`;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export const runCheck: Checker = (target, hc, signal) => {
  switch (hc.check) {
    case 'tcp':
      return exchange(target, hc.timeoutMs, signal, null, null);
    case 'http': {
      const h = hc.http ?? { path: '/', status: 200, host: null, method: 'GET' as const };
      const host = h.host ?? defaultHost(target);
      const request = `${h.method} ${h.path} HTTP/1.0\r\nHost: ${host}\r\nUser-Agent: lbc-agent\r\nAccept: */*\r\nConnection: close\r\n\r\n`;
      return exchange(target, hc.timeoutMs, signal, request, (line) => httpVerdict(line, h.status));
    }
    case 'banner': {
      const b = hc.banner ?? { send: null, expect: '' };
      return exchange(target, hc.timeoutMs, signal, b.send, (line) =>
        line.startsWith(b.expect) ? null : `first line ${quote(line)} does not start with ${quote(b.expect)}`,
      );
    }
    case 'icmp':
      return icmpCheck(probeAddress(target), target.family, hc.timeoutMs, signal);
    case 'udp': {
      const u = hc.udp ?? { send: '', expect: null };
      return udpCheck(probeAddress(target), target.port, target.family, u.send, u.expect, hc.timeoutMs, signal);
    }
  }
};

/** RFC 9110 section 7.2: Host is uri-host [":" port]; the port is left out when it is the scheme default. */
function defaultHost(t: CheckTarget): string {
  const a = probeAddress(t);
  const h = a.includes(':') ? `[${a}]` : a;
  return t.port === 80 ? h : `${h}:${t.port}`;
}

function httpVerdict(line: string, expected: number): string | null {
  const m = /^HTTP\/\d(?:\.\d)? (\d{3})(?: |$)/.exec(line);
  if (!m) return `not an HTTP status line: ${quote(line)}`;
  const status = Number(m[1]);
  return status === expected ? null : `status ${status} (expected ${expected})`;
}

function quote(s: string): string {
  const shown = s.length > 60 ? `${s.slice(0, 60)}...` : s;
  return JSON.stringify(shown);
}

function errorReason(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'EADDRNOTAVAIL':
      return 'address not available';
    case 'EPIPE':
      return 'connection closed while sending';
    default:
      return err.code ? `${err.code.toLowerCase()}` : err.message;
  }
}

/**
 * Connect; optionally write `send`; when `judge` is given, read the first line
 * and let it decide (null = healthy). Without a judge a completed connect is
 * success.
 */
function exchange(
  target: CheckTarget,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  send: string | null,
  judge: ((firstLine: string) => string | null) | null,
): Promise<CheckResult> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve({ ok: false, reason: 'aborted' });
      return;
    }
    let settled = false;
    let connected = false;
    let buf = '';
    const sock = net.connect({ host: probeAddress(target), port: target.port, family: target.family === 'ipv6' ? 6 : 4 });
    const finish = (r: CheckResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // destroy(): a check never waits for the peer's FIN, so it cannot outlive its timeout.
      sock.destroy();
      resolve(r);
    };
    const onAbort = () => finish({ ok: false, reason: 'aborted' });
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(
      () => finish({ ok: false, reason: `${connected ? 'no answer' : 'no connection'} within ${timeoutMs}ms` }),
      timeoutMs,
    );
    sock.setNoDelay(true);
    sock.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, reason: errorReason(err) }));
    sock.on('connect', () => {
      connected = true;
      if (!judge) {
        finish({ ok: true });
        return;
      }
      if (send !== null && send.length > 0) sock.write(send, 'latin1');
    });
    sock.setEncoding('latin1');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl >= 0) judgeLine(buf.slice(0, nl));
      else if (buf.length > MAX_LINE) finish({ ok: false, reason: `first line longer than ${MAX_LINE} bytes` });
    });
    sock.on('end', () => {
      // A peer that sends one line and closes without a newline still answered.
      if (buf.length > 0) judgeLine(buf);
      else finish({ ok: false, reason: 'connection closed without an answer' });
    });
    const judgeLine = (raw: string) => {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      const why = judge!(line);
      finish(why === null ? { ok: true } : { ok: false, reason: why });
    };
  });
}
