/**
 * A UDP peer in a test namespace (udp-peer.mjs): sockets bound to addresses and ports the test chooses,
 * datagrams sent from any of them on request, every datagram received recorded. Used for UDP
 * associations, where what matters is which address and port a packet came from and went to.
 *
 *   const cl = await topo.startUdpPeer('cl', [{ id: 'c0', address: C0, port: 40000 }]);
 *   const be = await topo.startUdpPeer('be', [{ id: 'rs0', address: B0, port: 5683, echo: 'rs0' }]);
 *   cl.send('c0', VIP, 5683, 'hello');
 *   const r = await cl.next('c0');                  // { id, from, port, data }, data "rs0 C0 40000 hello"
 *   await cl.nothing('c0', { after: ... })          // see nothingBefore()
 *
 * Waits are bounded (default 5 s): a missing datagram fails the test instead of hanging it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

export interface UdpSocketSpec {
  id: string;
  address: string;
  port: number;
  /** Answer every datagram with "<echo> <sender address> <sender port> <datagram>". */
  echo?: string;
}

export interface Datagram {
  /** The socket that received it. */
  id: string;
  from: string;
  port: number;
  data: string;
}

interface Waiter {
  match: (d: Datagram) => boolean;
  resolve: (d: Datagram) => void;
}

export class UdpPeer {
  private readonly inbox: Datagram[] = [];
  private readonly waiters: Waiter[] = [];
  readonly errors: string[] = [];

  private constructor(readonly child: ChildProcess) {}

  static async start(netns: string, sockets: UdpSocketSpec[], track: (c: ChildProcess) => void): Promise<UdpPeer> {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, join(HERE, 'udp-peer.mjs'), JSON.stringify(sockets)], { stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    const peer = new UdpPeer(child);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.stdin!.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`udp peer in ${netns} not ready after 10 s ${stderr}`)), 10_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`udp peer in ${netns} exited (${code}): ${peer.errors.join('; ')} ${stderr}`));
      });
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const o = JSON.parse(line) as { ready?: boolean; error?: string } & Partial<Datagram>;
        if (o.ready) {
          clearTimeout(timer);
          resolve();
        } else if (o.error) peer.errors.push(o.error);
        else peer.deliver(o as Datagram);
      });
    });
    return peer;
  }

  private deliver(d: Datagram): void {
    const i = this.waiters.findIndex((w) => w.match(d));
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve(d);
    else this.inbox.push(d);
  }

  send(id: string, to: string, port: number, data: string): void {
    this.child.stdin!.write(`${JSON.stringify({ send: id, to, port, data })}\n`);
  }

  /** The first datagram received on socket `id` (and matching `match`) not taken yet; rejects after timeoutMs. */
  next(id: string, match: (d: Datagram) => boolean = () => true, timeoutMs = 5_000): Promise<Datagram> {
    const m = (d: Datagram) => d.id === id && match(d);
    const i = this.inbox.findIndex(m);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        match: m,
        resolve: (d) => {
          clearTimeout(timer);
          resolve(d);
        },
      };
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(w);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(new Error(`no datagram on ${id} within ${timeoutMs} ms (received and not taken: ${JSON.stringify(this.inbox)})`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Datagrams received on `id` and not taken (taking them). */
  drain(id: string): Datagram[] {
    const out = this.inbox.filter((d) => d.id === id);
    for (const d of out) this.inbox.splice(this.inbox.indexOf(d), 1);
    return out;
  }
}
