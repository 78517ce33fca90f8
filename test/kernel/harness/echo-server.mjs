// Echo servers for kernel tests: every line a client sends comes back as "<id> <line>".
// Runs inside a test network namespace. argv[2]: JSON array of { protocol: 'tcp', address, port, id }.
// Prints READY once every listener is bound; exits when stdin closes or after a hard lifetime limit.
import net from 'node:net';

const listeners = JSON.parse(process.argv[2]);
setTimeout(() => process.exit(0), 600000);
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));

function start(l) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.setEncoding('utf8');
      let buf = '';
      sock.on('data', (d) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          sock.write(`${l.id} ${line}\n`);
        }
      });
    });
    srv.on('error', reject);
    srv.listen({ host: l.address, port: l.port }, resolve);
  });
}

Promise.all(listeners.map(start)).then(
  () => process.stdout.write('READY\n'),
  (e) => {
    process.stdout.write(`ERROR ${e.message}\n`);
    process.exit(1);
  },
);
