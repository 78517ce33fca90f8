// UDP peer for kernel tests: a set of UDP sockets, each bound to an address and port the test
// chose, driven over stdin/stdout with one JSON object per line. Runs inside a test network
// namespace (started by udp-peer.ts through `ip netns exec`).
// argv[2]: JSON array of { id, address, port, echo? }. A socket with `echo` answers every datagram
// from its own address and port with "<echo> <sender address> <sender port> <datagram>", so a test
// sees which backend answered and which client address and port that backend saw.
// stdin:  {"send": id, "to": address, "port": n, "data": text}
// stdout: {"ready": true} once every socket is bound; {"id", "from", "port", "data"} per datagram
//         received; {"error": text} on a failure.
// Exits when stdin closes (the test went away) or after a hard lifetime limit, so it can never outlive a run.
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';

const specs = JSON.parse(process.argv[2]);
const LIFETIME_MS = Number(process.argv[3] ?? 600000);
setTimeout(() => process.exit(0), LIFETIME_MS).unref();

const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const isV6 = (a) => a.includes(':');
const sockets = new Map();

async function open(s) {
  const sock = dgram.createSocket({ type: isV6(s.address) ? 'udp6' : 'udp4', ipv6Only: isV6(s.address) });
  // An ICMP error for an earlier datagram surfaces as a socket error on Linux; it is not fatal here.
  sock.on('error', (e) => out({ error: `${s.id}: ${e.message}` }));
  sock.on('message', (msg, rinfo) => {
    const data = msg.toString('utf8');
    out({ id: s.id, from: rinfo.address, port: rinfo.port, data });
    if (s.echo) sock.send(`${s.echo} ${rinfo.address} ${rinfo.port} ${data}`, rinfo.port, rinfo.address);
  });
  await new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ address: s.address, port: s.port, exclusive: true }, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  sockets.set(s.id, sock);
}

Promise.all(specs.map(open)).then(
  () => out({ ready: true }),
  (e) => {
    out({ error: `bind: ${e.message}` });
    process.exit(1);
  },
);

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch {
    out({ error: `bad command: ${line.slice(0, 80)}` });
    return;
  }
  const sock = sockets.get(cmd.send);
  if (!sock) return out({ error: `no socket ${cmd.send}` });
  sock.send(String(cmd.data), cmd.port, cmd.to, (e) => {
    if (e) out({ error: `${cmd.send}: send: ${e.message}` });
  });
});
rl.on('close', () => process.exit(0));
