// Takeover probe for kernel tests and the bench: from each given source address, connect to host:port
// again and again (each attempt bounded by timeoutMs, a round every everyMs) until a connection is
// answered, and report when that was and who answered. Prints one JSON object when every source has
// been answered or deadlineMs passed: { start, answered: { [source]: { t, id } } }.
// argv[2]: JSON { host, port, sources: string[], timeoutMs, everyMs, deadlineMs }
import net from 'node:net';

const a = JSON.parse(process.argv[2]);
const start = Date.now();
const answered = {};

function once(source) {
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
    const sock = net.connect({ host: a.host, port: a.port, localAddress: source });
    const timer = setTimeout(() => finish(null), a.timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d) => (data += d));
    sock.on('end', () => finish(data.trim() || null));
    sock.on('error', () => finish(null));
  });
}

while (Date.now() - start < a.deadlineMs) {
  const pending = a.sources.filter((s) => !answered[s]);
  if (pending.length === 0) break;
  await Promise.all(
    pending.map(async (s) => {
      const id = await once(s);
      if (id) answered[s] = { t: Date.now(), id };
    }),
  );
  await new Promise((r) => setTimeout(r, a.everyMs));
}
process.stdout.write(`${JSON.stringify({ start, answered })}\n`);
