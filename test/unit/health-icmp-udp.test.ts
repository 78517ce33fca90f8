// check: udp against real UDP servers on 127.0.0.1, check: icmp against loopback with the system
// ping, and the ping command line per platform. (The namespace tests in test/kernel/health-checks.test.ts
// cover backends on other hosts, hosts that stop answering, and the agent's rise/fall timing.)
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { runCheck, type CheckTarget } from '../../src/health/check.js';
import { pingArgv } from '../../src/health/icmp.js';
import type { HealthCheck } from '../../src/ir/types.js';
import { kernelSkipReason } from '../kernel/harness/index.js';

const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

/** A UDP server on loopback; `answer` maps a datagram to the reply (null: stay silent). */
async function udpServer(answer: (msg: Buffer) => Buffer | null): Promise<number> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  s.on('message', (m, r) => {
    const a = answer(m);
    if (a) s.send(a, r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return s.address().port;
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** A CoAP server as far as pings go (RFC 7252 section 4.3): an empty confirmable message is answered by a reset with its message ID. */
const coap = (m: Buffer): Buffer | null => (m.length === 4 && m[0] === 0x40 && m[1] === 0 ? Buffer.from([0x70, 0, m[2], m[3]]) : null);

const at = (port: number): CheckTarget => ({ address: '127.0.0.1', port, family: 'ipv4' });
const udp = (send: string, expect: string | null, timeoutMs = 400): HealthCheck => ({
  check: 'udp', intervalMs: 1000, timeoutMs, rise: 2, fall: 2, port: null, http: null, banner: null, udp: { send, expect },
});

describe('check: udp', () => {
  it('passes when the answer starts with the expected bytes (a CoAP ping answered by a reset)', async () => {
    const seen: string[] = [];
    const port = await udpServer((m) => {
      seen.push(m.toString('hex'));
      return coap(m);
    });
    expect(await runCheck(at(port), udp('40000000', '70000000'))).toEqual({ ok: true });
    expect(seen).toEqual(['40000000']);
  });

  it('without expect, any answer is healthy', async () => {
    const port = await udpServer(() => Buffer.from('whatever'));
    expect(await runCheck(at(port), udp('00', null))).toEqual({ ok: true });
  });

  it('fails on another answer, saying what came back', async () => {
    const port = await udpServer(() => Buffer.from([0x60, 0x44, 0x12, 0x34, 0xff]));
    expect(await runCheck(at(port), udp('40000000', '70000000'))).toEqual({ ok: false, reason: 'answer 60 44 12 34 ff does not start with 70 00 00 00' });
  });

  it('fails at once with "port unreachable" when nothing listens (ICMP port unreachable on the connected socket)', async () => {
    const port = await closedPort();
    const t0 = Date.now();
    expect(await runCheck(at(port), udp('40000000', '70000000', 2000))).toEqual({ ok: false, reason: 'port unreachable' });
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('fails after the timeout when the server stays silent, and closes its socket', async () => {
    const port = await udpServer(() => null);
    const t0 = Date.now();
    expect(await runCheck(at(port), udp('40000000', '70000000', 300))).toEqual({ ok: false, reason: 'no answer within 300ms' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
  });

  it('stops when aborted', async () => {
    const port = await udpServer(() => null);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    expect(await runCheck(at(port), udp('00', null, 5000), ac.signal)).toEqual({ ok: false, reason: 'aborted' });
  });
});

describe('check: icmp', () => {
  it('runs one echo with a numeric address and the timeout, as each platform\'s ping takes it', () => {
    expect(pingArgv('linux', 'ipv4', '10.0.0.1', 300)).toEqual(['ping', '-4', '-n', '-q', '-c', '1', '-W', '0.3', '10.0.0.1']);
    expect(pingArgv('linux', 'ipv6', '2001:db8::1', 2000)).toEqual(['ping', '-6', '-n', '-q', '-c', '1', '-W', '2', '2001:db8::1']);
    expect(pingArgv('linux', 'ipv4', '10.0.0.1', 1250)).toEqual(['ping', '-4', '-n', '-q', '-c', '1', '-W', '1.25', '10.0.0.1']);
    // FreeBSD ping(8): -W waittime in milliseconds; elsewhere lbc's own timer ends the probe.
    expect(pingArgv('freebsd', 'ipv4', '10.0.0.1', 300)).toEqual(['ping', '-n', '-q', '-c', '1', '-W', '300', '10.0.0.1']);
    expect(pingArgv('openbsd', 'ipv4', '10.0.0.1', 300)).toEqual(['ping', '-n', '-q', '-c', '1', '10.0.0.1']);
    expect(pingArgv('freebsd', 'ipv6', '2001:db8::1', 300)).toEqual(['ping6', '-n', '-q', '-c', '1', '2001:db8::1']);
  });

  const noPing = process.platform !== 'linux' || kernelSkipReason(['ping']) !== null;
  it.skipIf(noPing && process.env.CI !== 'true')('pings loopback (the local fallback of seed 002) with the system ping', async () => {
    const hc: HealthCheck = { ...udp('00', null, 1000), check: 'icmp', udp: null };
    expect(await runCheck({ address: null, port: 80, family: 'ipv4' }, hc)).toEqual({ ok: true });
  });
});
