/**
 * check: udp — one datagram to the backend, healthy when an answer comes back within the timeout
 * (and starts with the expected bytes, when the check names some).
 *
 * The socket is connected to the backend (dgram connect(2)), so the kernel hands it only datagrams
 * from that address and port, and an ICMP port unreachable comes back as ECONNREFUSED on the socket:
 * a host that is up but has no server on the port fails at once instead of at the timeout. UDP has
 * no other way to say "alive": silence and a lost datagram look the same, so a probe without an
 * answer in time fails, and rise/fall decide what one lost datagram means.
 */
import dgram from 'node:dgram';
import type { Family } from '../ir/types.js';
import type { CheckResult } from './check.js';

/** An answer's first bytes shown in a failure reason. */
const SHOWN = 16;

export function hexBytes(buf: Uint8Array): string {
  const shown = [...buf.subarray(0, SHOWN)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return buf.length > SHOWN ? `${shown} …` : shown;
}

export function udpCheck(
  address: string,
  port: number,
  family: Family,
  sendHex: string,
  expectHex: string | null,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<CheckResult> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve({ ok: false, reason: 'aborted' });
      return;
    }
    const payload = Buffer.from(sendHex, 'hex');
    const expect = expectHex === null ? null : Buffer.from(expectHex, 'hex');
    const sock = dgram.createSocket(family === 'ipv6' ? 'udp6' : 'udp4');
    let settled = false;
    const finish = (r: CheckResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      try {
        sock.close();
      } catch {
        // not bound yet, or closed already
      }
      resolve(r);
    };
    const onAbort = () => finish({ ok: false, reason: 'aborted' });
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => finish({ ok: false, reason: `no answer within ${timeoutMs}ms` }), timeoutMs);
    sock.on('error', (e: NodeJS.ErrnoException) =>
      finish({ ok: false, reason: e.code === 'ECONNREFUSED' ? 'port unreachable' : e.code === 'EHOSTUNREACH' ? 'host unreachable' : (e.code?.toLowerCase() ?? e.message) }),
    );
    sock.on('message', (msg: Buffer) => {
      if (expect === null || (msg.length >= expect.length && msg.subarray(0, expect.length).equals(expect))) finish({ ok: true });
      else finish({ ok: false, reason: `answer ${hexBytes(msg)} does not start with ${hexBytes(expect)}` });
    });
    sock.connect(port, address, () => sock.send(payload, (err) => err && finish({ ok: false, reason: `cannot send: ${err.message}` })));
  });
}
