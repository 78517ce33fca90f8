// Test client: N sequential connections (TCP) or request/response exchanges (UDP),
// each from an explicitly chosen source address and source port, so every one is a new
// conntrack entry on the balancer. Prints one JSON array: [{ source, sport, backend }],
// backend null when no answer arrived within the per-connection timeout.
// argv[2]: JSON { host, port, protocol, sources: string[], ports: number[], timeoutMs, deadlineMs }
// The i-th connection uses sources[i % sources.length] and ports[i]; count = ports.length.
import net from 'node:net';
import dgram from 'node:dgram';

const a = JSON.parse(process.argv[2]);
const deadline = Date.now() + a.deadlineMs;
const isV6 = (x) => x.includes(':');

function tcpOnce(source, sport) {
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const opts = { host: a.host, port: a.port, localPort: sport };
    if (source) opts.localAddress = source;
    const sock = net.connect(opts);
    const timer = setTimeout(() => finish(null), a.timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d) => (data += d));
    sock.on('end', () => finish(data.trim() || null));
    sock.on('error', () => finish(data.trim() || null));
  });
}

function udpOnce(source, sport) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket({ type: isV6(a.host) ? 'udp6' : 'udp4' });
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        sock.close();
      } catch {}
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), a.timeoutMs);
    sock.on('error', () => finish(null));
    sock.on('message', (msg) => finish(msg.toString('utf8').trim() || null));
    const bind = { port: sport };
    if (source) bind.address = source;
    sock.bind(bind, () => sock.send('who\n', a.port, a.host));
  });
}

const out = [];
for (let i = 0; i < a.ports.length; i++) {
  const source = a.sources.length ? a.sources[i % a.sources.length] : null;
  const sport = a.ports[i];
  if (Date.now() > deadline) {
    out.push({ source, sport, backend: null, error: 'deadline' });
    continue;
  }
  const backend = a.protocol === 'udp' ? await udpOnce(source, sport) : await tcpOnce(source, sport);
  out.push({ source, sport, backend });
}
process.stdout.write(JSON.stringify(out) + '\n');
