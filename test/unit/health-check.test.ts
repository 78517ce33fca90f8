// The health checkers against real servers on 127.0.0.1 (loopback only).
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { endpointText, runCheck, type CheckTarget } from '../../src/health/check.js';
import type { HealthCheck } from '../../src/ir/types.js';

const servers: net.Server[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

async function serve(onConn: (sock: net.Socket) => void): Promise<number> {
  const srv = net.createServer((sock) => {
    sock.on('error', () => {});
    onConn(sock);
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  return (srv.address() as net.AddressInfo).port;
}

/** A tiny HTTP/1.x server: answers per (method, path, host) with a status, or stays silent for path /silent. */
async function httpServer(seen: string[] = []): Promise<number> {
  return serve((sock) => {
    let buf = '';
    sock.setEncoding('latin1');
    sock.on('data', (d) => {
      buf += d;
      if (!buf.includes('\r\n\r\n')) return;
      const [reqLine, ...headers] = buf.split('\r\n');
      seen.push(buf);
      const [method, path] = reqLine.split(' ');
      const host = headers.find((h) => h.toLowerCase().startsWith('host:'))?.slice(5).trim() ?? '';
      if (path === '/silent') return;
      if (path === '/garbage') {
        sock.end('hello there\r\n');
        return;
      }
      let status = 404;
      if (path === '/') status = 200;
      if (path === '/health') status = host === 'app.example' ? 204 : 421;
      if (path === '/down') status = 503;
      sock.end(`HTTP/1.1 ${status} X\r\nContent-Length: 0\r\n\r\n${method === 'HEAD' ? '' : ''}`);
    });
  });
}

const at = (port: number): CheckTarget => ({ address: '127.0.0.1', port, family: 'ipv4' });

function hc(over: Partial<HealthCheck>): HealthCheck {
  return { check: 'tcp', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, port: null, http: null, banner: null, ...over };
}
const http = (path: string, status = 200, host: string | null = null, method: 'GET' | 'HEAD' = 'GET') =>
  hc({ check: 'http', http: { path, status, host, method } });
const banner = (expect: string, send: string | null = null) => hc({ check: 'banner', banner: { send, expect } });

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('tcp check', () => {
  it('passes when the port accepts', async () => {
    const port = await serve((s) => s.end());
    expect(await runCheck(at(port), hc({}))).toEqual({ ok: true });
  });

  it('fails with "connection refused" on a closed port', async () => {
    expect(await runCheck(at(await closedPort()), hc({}))).toEqual({ ok: false, reason: 'connection refused' });
  });

  it('fails after its timeout when SYNs go unanswered (full accept queue)', async () => {
    // A listener that never accepts: its event loop is blocked, so the kernel's accept
    // queue fills and further SYNs are dropped (tcp_conn_request: listen overflow).
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const net=require('net');const s=net.createServer();s.listen({host:'127.0.0.1',port:0,backlog:1},()=>{process.stdout.write(s.address().port+'\\n');setTimeout(()=>Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,15000),50);});`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    const port = await new Promise<number>((resolve) => child.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
    await new Promise((r) => setTimeout(r, 300));
    const fillers: net.Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('error', () => {});
      fillers.push(s);
    }
    await new Promise((r) => setTimeout(r, 200));
    try {
      expect(await runCheck(at(port), hc({ timeoutMs: 300 }))).toEqual({ ok: false, reason: 'no connection within 300ms' });
    } finally {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    }
  });

  it('probes the check port, and loopback for a local backend', async () => {
    const port = await serve((s) => s.end());
    expect(await runCheck({ address: null, port, family: 'ipv4' }, hc({}))).toEqual({ ok: true });
  });

  it('ends at once when aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    expect(await runCheck(at(1), hc({}), ac.signal)).toEqual({ ok: false, reason: 'aborted' });
  });
});

describe('http check', () => {
  it('passes on the expected status and sends a default Host of address:port', async () => {
    const seen: string[] = [];
    const port = await httpServer(seen);
    expect(await runCheck(at(port), http('/'))).toEqual({ ok: true });
    expect(seen[0]).toMatch(/^GET \/ HTTP\/1\.0\r\n/);
    expect(seen[0]).toContain(`\r\nHost: 127.0.0.1:${port}\r\n`);
  });

  it('fails on another status and says which', async () => {
    const port = await httpServer();
    expect(await runCheck(at(port), http('/down'))).toEqual({ ok: false, reason: 'status 503 (expected 200)' });
    expect(await runCheck(at(port), http('/nothing-here'))).toEqual({ ok: false, reason: 'status 404 (expected 200)' });
  });

  it('uses the path, the Host and the expected status from the spec', async () => {
    const port = await httpServer();
    expect(await runCheck(at(port), http('/health', 204, 'app.example'))).toEqual({ ok: true });
    expect(await runCheck(at(port), http('/health', 204, 'other.example'))).toEqual({ ok: false, reason: 'status 421 (expected 204)' });
    expect(await runCheck(at(port), http('/health', 204))).toEqual({ ok: false, reason: 'status 421 (expected 204)' });
  });

  it('sends HEAD when asked', async () => {
    const seen: string[] = [];
    const port = await httpServer(seen);
    expect(await runCheck(at(port), http('/', 200, null, 'HEAD'))).toEqual({ ok: true });
    expect(seen[0]).toMatch(/^HEAD \/ HTTP\/1\.0\r\n/);
  });

  it('fails on an answer that is not HTTP, and on silence within the timeout', async () => {
    const port = await httpServer();
    expect(await runCheck(at(port), http('/garbage'))).toEqual({ ok: false, reason: 'not an HTTP status line: "hello there"' });
    expect(await runCheck(at(port), { ...http('/silent'), timeoutMs: 200 })).toEqual({ ok: false, reason: 'no answer within 200ms' });
  });

  it('fails when the connection is refused', async () => {
    expect(await runCheck(at(await closedPort()), http('/'))).toEqual({ ok: false, reason: 'connection refused' });
  });
});

describe('banner check', () => {
  it('passes when the first line starts with the expected text (SMTP greeting)', async () => {
    const port = await serve((s) => s.write('220 mail.example ESMTP\r\n'));
    expect(await runCheck(at(port), banner('220'))).toEqual({ ok: true });
  });

  it('fails on another greeting and quotes it', async () => {
    const port = await serve((s) => s.end('554 go away\r\n'));
    expect(await runCheck(at(port), banner('220'))).toEqual({ ok: false, reason: 'first line "554 go away" does not start with "220"' });
  });

  it('sends the send string first, verbatim', async () => {
    const got: string[] = [];
    const port = await serve((s) => {
      let buf = '';
      s.setEncoding('latin1');
      s.on('data', (d) => {
        buf += d;
        if (buf.endsWith('\r\n')) {
          got.push(buf);
          s.end(buf === 'PING\r\n' ? '+PONG\r\n' : '-ERR\r\n');
        }
      });
    });
    expect(await runCheck(at(port), banner('+PONG', 'PING\r\n'))).toEqual({ ok: true });
    expect(got).toEqual(['PING\r\n']);
    expect(await runCheck(at(port), banner('+PONG', 'QUIT\r\n'))).toEqual({ ok: false, reason: 'first line "-ERR" does not start with "+PONG"' });
  });

  it('accepts a last line without a newline, and fails on a close without any answer', async () => {
    const a = await serve((s) => s.end('220 ready'));
    expect(await runCheck(at(a), banner('220'))).toEqual({ ok: true });
    const b = await serve((s) => s.end());
    expect(await runCheck(at(b), banner('220'))).toEqual({ ok: false, reason: 'connection closed without an answer' });
  });

  it('times out on a server that never speaks', async () => {
    const port = await serve(() => {});
    expect(await runCheck(at(port), { ...banner('220'), timeoutMs: 150 })).toEqual({ ok: false, reason: 'no answer within 150ms' });
  });
});

describe('endpointText', () => {
  it('brackets IPv6 and names local ports', () => {
    expect(endpointText('10.0.0.1', 80)).toBe('10.0.0.1:80');
    expect(endpointText('2001:db8::1', 80)).toBe('[2001:db8::1]:80');
    expect(endpointText(null, 8080)).toBe('local:8080');
  });
});
