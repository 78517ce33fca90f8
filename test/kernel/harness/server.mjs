// Small backend server for kernel tests: every listener answers with its identity.
// Runs inside a test network namespace (started by index.ts through `ip netns exec`).
// argv[2]: JSON array of { protocol: 'tcp'|'udp', address, port, id }.
// Prints READY once every listener is bound. Exits when stdin closes (the test
// runner went away) or after a hard lifetime limit, so it can never outlive a test run.
import net from 'node:net';
import dgram from 'node:dgram';

const listeners = JSON.parse(process.argv[2]);
const LIFETIME_MS = Number(process.argv[3] ?? 600000);

setTimeout(() => process.exit(0), LIFETIME_MS);
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));

function fail(err) {
  process.stdout.write(`ERROR ${err && err.message ? err.message : String(err)}\n`);
  process.exit(1);
}

const isV6 = (a) => a.includes(':');

async function start(l) {
  if (l.protocol === 'tcp') {
    const srv = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.end(`${l.id}\n`);
    });
    srv.on('error', fail);
    await new Promise((resolve) => srv.listen({ host: l.address, port: l.port, ipv6Only: isV6(l.address) }, resolve));
  } else {
    const sock = dgram.createSocket({ type: isV6(l.address) ? 'udp6' : 'udp4', ipv6Only: isV6(l.address) });
    sock.on('error', fail);
    sock.on('message', (_msg, rinfo) => {
      sock.send(`${l.id}\n`, rinfo.port, rinfo.address);
    });
    await new Promise((resolve) => sock.bind({ address: l.address, port: l.port }, resolve));
  }
}

Promise.all(listeners.map(start)).then(() => process.stdout.write('READY\n'), fail);
