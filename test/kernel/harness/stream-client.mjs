// A long-lived TCP connection for failover tests: sends "N\n" every everyMs and records when each echo
// ("<id> N") arrives. Prints CONNECTED once connected, and one JSON record when stdin closes, the
// connection ends, or maxMs passed: { replies: [{ t, n, id }], sent, error }.
// argv[2]: JSON { host, port, source?, sport, everyMs, maxMs }
import net from 'node:net';

const a = JSON.parse(process.argv[2]);
const replies = [];
let sent = 0;
let error = null;
let finished = false;

function finish() {
  if (finished) return;
  finished = true;
  process.stdout.write(`${JSON.stringify({ replies, sent, error })}\n`);
  process.exit(0);
}

const opts = { host: a.host, port: a.port, localPort: a.sport };
if (a.source) opts.localAddress = a.source;
const sock = net.connect(opts);
sock.setNoDelay(true);
sock.setEncoding('utf8');
let buf = '';
let timer = null;
sock.on('connect', () => {
  process.stdout.write('CONNECTED\n');
  timer = setInterval(() => {
    sock.write(`${sent}\n`);
    sent++;
  }, a.everyMs);
});
sock.on('data', (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const [id, n] = buf.slice(0, nl).split(' ');
    buf = buf.slice(nl + 1);
    replies.push({ t: Date.now(), n: Number(n), id });
    process.stdout.write(`ECHO ${n}\n`);
  }
});
sock.on('error', (e) => {
  error = e.code ?? e.message;
  finish();
});
sock.on('close', () => finish());
setTimeout(() => {
  error = error ?? 'maxMs';
  finish();
}, a.maxMs);
process.stdin.on('data', () => {});
process.stdin.on('end', () => {
  if (timer) clearInterval(timer);
  finish();
});
