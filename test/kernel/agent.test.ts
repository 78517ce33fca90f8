// End to end: `lbc agent` inside the balancer namespace keeps the ruleset in step with
// three backends while one of them dies and comes back, for the nftables and the
// iptables target. Only inside the namespaces the harness creates; every process
// started here is killed in finally/afterAll; every wait has a deadline.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import type { Backend, HealthCheck, IR, Service } from '../../src/ir/types.js';
import { ADDR, createTopology, kernelSuite, tally, type Topology } from './harness/index.js';
import { Proc } from './harness/proc.js';

// The agents below apply incrementally; their record of what is loaded belongs to the test, not the host's /run/lbc.
const stateDir = mkdtempSync(join(tmpdir(), 'lbc-agent-state-'));
process.env.LBC_STATE_DIR = stateDir;

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const INTERVAL = 400;
const FALL = 2;
const RISE = 2;
/** The agent's promise: a dead backend gets no new connection after interval x fall (plus 1 s slack for loading). */
const DETECT_BOUND_MS = INTERVAL * FALL + 1000;

const loc = { file: 'agent-test.yaml', line: 1, column: 1 };
const HC: HealthCheck = { check: 'tcp', intervalMs: INTERVAL, timeoutMs: 300, rise: RISE, fall: FALL, port: 8080, http: null, banner: null, udp: null };
const IDS = ['b0', 'b1', 'b2'];
const VIP = ADDR.v4.vip(1);

function service(name: string, port: number, protocol: 'tcp' | 'udp', bePort: number): Service {
  const backends: Backend[] = IDS.map((_, i) => ({ index: i, address: ADDR.v4.backends[i], port: bePort, keepsPort: false, weight: 1, backup: false, health: HC, loc }));
  return {
    name, family: 'ipv4', vip: { address: VIP, prefixLength: 32, isHost: true }, port, ports: [{ from: port, to: port }], allow: null, protocol, interface: null,
    mode: 'nth', hashFields: [], sticky: null, local: false, backends, health: HC,
    loc: { service: loc, name: loc, backends: loc },
  };
}

// web: short TCP connections (identity then close); hold: long TCP connections that echo;
// dns: UDP request/response. All three are checked by a TCP connect to port 8080.
const IR_SPEC: IR = {
  file: 'agent-test.yaml',
  services: [service('web', 80, 'tcp', 8080), service('hold', 81, 'tcp', 8081), service('dns', 53, 'udp', 5353)],
};

/** One backend: TCP 8080 says its id and closes; TCP 8081 says its id and echoes lines; UDP 5353 answers its id. */
const BACKEND_JS = `
const net = require('net'), dgram = require('dgram');
const [id, addr] = process.argv.slice(1);
setTimeout(() => process.exit(0), 240000);
process.stdin.on('data', () => {}); process.stdin.on('end', () => process.exit(0));
let bound = 0; const ready = () => { if (++bound === 3) process.stdout.write('READY\\n'); };
net.createServer((s) => { s.on('error', () => {}); s.end(id + '\\n'); }).listen(8080, addr, ready);
net.createServer((s) => {
  s.on('error', () => {}); s.setEncoding('utf8'); s.write(id + '\\n'); let buf = '';
  s.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { s.write(id + ':' + buf.slice(0, i) + '\\n'); buf = buf.slice(i + 1); } });
}).listen(8081, addr, ready);
const u = dgram.createSocket('udp4'); u.on('message', (m, r) => u.send(id + '\\n', r.port, r.address)); u.bind(5353, addr, ready);
`;

/**
 * Client side flows that outlive a reload: three long TCP connections to hold and three UDP
 * sockets (fixed source ports) to dns, opened one after the other. Each stdin line "probe"
 * sends through all of them and prints {tcp: [...], udp: [...]} (null = no answer in time).
 */
const HOLDER_JS = `
const net = require('net'), dgram = require('dgram');
const vip = process.argv[1];
setTimeout(() => process.exit(0), 240000);
const lines = (sock) => { let buf = ''; const waiters = []; sock.setEncoding('utf8');
  sock.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); const w = waiters.shift(); if (w) w(l); } });
  const fail = () => { while (waiters.length) waiters.shift()(null); }; sock.on('close', fail); sock.on('error', fail);
  return () => new Promise((res) => { const t = setTimeout(() => res(null), 1500); waiters.push((l) => { clearTimeout(t); res(l); }); }); };
const udpAsk = (s) => new Promise((res) => { const t = setTimeout(() => { s.removeAllListeners('message'); res(null); }, 1500);
  s.once('message', (m) => { clearTimeout(t); res(m.toString().trim()); }); s.send('who', 53, vip); });
(async () => {
  const tcp = [], udp = [], first = { tcp: [], udp: [] };
  for (let i = 0; i < 3; i++) {
    const s = net.connect(81, vip); s.on('error', () => {}); const next = lines(s); tcp.push({ s, next }); first.tcp.push(await next());
  }
  for (let i = 0; i < 3; i++) {
    const s = dgram.createSocket('udp4'); s.on('error', () => {}); await new Promise((r) => s.bind(0, r)); udp.push(s); first.udp.push(await udpAsk(s));
  }
  process.stdout.write(JSON.stringify(first) + '\\n');
  let n = 0; let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('data', async (d) => { buf += d; while (buf.includes('\\n')) { buf = buf.slice(buf.indexOf('\\n') + 1); n++;
    const out = { tcp: [], udp: [] };
    for (const c of tcp) { if (c.s.destroyed) { out.tcp.push(null); continue; } const p = c.next(); c.s.write('ping' + n + '\\n'); out.tcp.push(await p); }
    for (const s of udp) out.udp.push(await udpAsk(s));
    process.stdout.write(JSON.stringify(out) + '\\n'); } });
})();
`;

const AGENT_JS = `
const [irJson, targetName] = process.argv.slice(1);
const root = ${JSON.stringify(ROOT)};
setTimeout(() => { process.stderr.write('agent test lifetime exceeded\\n'); process.exit(3); }, 240000).unref();
process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM')); process.stdin.resume();
const { runAgent } = await import(root + '/src/agent/index.ts');
const target = targetName === 'nftables'
  ? (await import(root + '/src/targets/nftables/index.ts')).nftablesTarget
  : (await import(root + '/src/targets/iptables/index.ts')).iptablesTarget;
const code = await runAgent(JSON.parse(irJson), target, { log: (l) => process.stderr.write(l + '\\n'), notify: null });
process.exit(code);
`;

const procs: Proc[] = [];
const topos: Topology[] = [];
afterAll(async () => {
  rmSync(stateDir, { recursive: true, force: true });
  for (const p of procs) p.kill();
  for (const t of topos) await t.destroy();
});

function inNs(topo: Topology, ns: 'cl' | 'lb' | 'be', argv: string[]): Proc {
  const p = new Proc(['ip', 'netns', 'exec', topo.ns[ns], ...argv]);
  procs.push(p);
  return p;
}

async function startBackend(topo: Topology, i: number): Promise<Proc> {
  const p = inNs(topo, 'be', [process.execPath, '-e', BACKEND_JS, IDS[i], ADDR.v4.backends[i]]);
  await p.waitLine('out', /^READY$/, 0, 10_000);
  return p;
}

async function probe(holder: Proc): Promise<{ tcp: (string | null)[]; udp: (string | null)[] }> {
  const from = holder.out.length;
  holder.child.stdin!.write('probe\n');
  const i = await holder.waitLine('out', /^\{/, from, 15_000);
  return JSON.parse(holder.out[i]);
}

for (const targetName of ['nftables', 'iptables'] as const) {
  const tools = targetName === 'nftables' ? ['nft', 'conntrack'] : ['iptables-restore', 'iptables-save', 'iptables', 'ipset', 'conntrack'];
  kernelSuite(`lbc agent with target ${targetName}`, tools, () => {
    it('takes a dead backend out within interval x fall, keeps live flows, moves UDP flows, and takes it back after rise checks', async () => {
      const topo = await createTopology({ backendAddresses: 3 });
      topos.push(topo);
      const backends = [await startBackend(topo, 0), await startBackend(topo, 1), await startBackend(topo, 2)];
      const agent = inNs(topo, 'lb', [process.execPath, '--import', 'tsx', '--input-type=module', '-e', AGENT_JS, JSON.stringify(IR_SPEC), targetName]);
      try {
        await agent.waitLine('err', /^lbc-agent: ready: 3 services, 0 of 9 checked backends down$/, 0, 30_000);

        // Everything up: nth rotates over all three.
        expect(tally(await topo.connect({ host: VIP, port: 80, protocol: 'tcp', count: 30 }))).toEqual({ b0: 10, b1: 10, b2: 10 });

        // Long-lived flows, one per backend for each of hold (TCP) and dns (UDP).
        const holder = inNs(topo, 'cl', [process.execPath, '-e', HOLDER_JS, VIP]);
        const first = JSON.parse(holder.out[await holder.waitLine('out', /^\{/, 0, 20_000)]) as { tcp: string[]; udp: string[] };
        expect([...first.tcp].sort()).toEqual(IDS);
        expect([...first.udp].sort()).toEqual(IDS);

        // b1 dies.
        const killedAt = Date.now();
        backends[1].kill();
        await backends[1].exited;
        const mark = agent.err.length;
        const b1 = ADDR.v4.backends[1];
        const downLines = await Promise.all(
          [`web ${b1}:8080`, `hold ${b1}:8081`, `dns ${b1}:5353`].map((n) =>
            agent.waitLine('err', new RegExp(`^lbc-agent: ${n.replace(/\./g, '\\.')} down \\(${FALL} failures: connection refused\\)$`), mark, 10_000),
          ),
        );
        const loaded = await agent.waitLine('err', /^lbc-agent: loaded the ruleset \(3 of 9 checked backends down\)$/, Math.max(...downLines), 10_000);
        const elapsed = Date.now() - killedAt;
        expect(loaded).toBeGreaterThan(0);
        expect(elapsed, `dead backend removed after ${elapsed} ms`).toBeLessThanOrEqual(DETECT_BOUND_MS);
        // The UDP flow that was on b1 is deleted after the load that removed b1 (TCP flows are left alone).
        await agent.waitLine('err', /^lbc-agent: dns 10\.201\.2\.11:5353: deleted \d+ conntrack entr(y|ies)$/, mark, 10_000);

        // Flows to live backends still work after the reload; the UDP flow that was on b1 now reaches a live backend.
        const after = await probe(holder);
        first.tcp.forEach((id, i) => {
          if (id !== 'b1') expect(after.tcp[i]).toBe(`${id}:ping1`);
        });
        first.udp.forEach((id, i) => {
          if (id === 'b1') expect(['b0', 'b2']).toContain(after.udp[i]);
          else expect(after.udp[i]).toBe(id);
        });

        // New connections: exact rotation over the two live backends.
        expect(tally(await topo.connect({ host: VIP, port: 80, protocol: 'tcp', count: 30 }))).toEqual({ b0: 15, b2: 15 });
        expect(tally(await topo.connect({ host: VIP, port: 53, protocol: 'udp', count: 30 }))).toEqual({ b0: 15, b2: 15 });

        // b1 comes back: up after `rise` passing checks, then rotation over three again.
        const mark2 = agent.err.length;
        backends[1] = await startBackend(topo, 1);
        const upAt = await agent.waitLine('err', new RegExp(`^lbc-agent: web 10\\.201\\.2\\.11:8080 up \\(${RISE} successes\\)$`), mark2, 10_000);
        await agent.waitLine('err', /^lbc-agent: loaded the ruleset \(0 of 9 checked backends down\)$/, upAt, 10_000);
        expect(tally(await topo.connect({ host: VIP, port: 80, protocol: 'tcp', count: 30 }))).toEqual({ b0: 10, b1: 10, b2: 10 });
        expect(tally(await topo.connect({ host: VIP, port: 53, protocol: 'udp', count: 30 }))).toEqual({ b0: 10, b1: 10, b2: 10 });
        // The flows that survived the first reload survive this one too.
        const again = await probe(holder);
        first.tcp.forEach((id, i) => {
          if (id !== 'b1') expect(again.tcp[i]).toBe(`${id}:ping2`);
        });

        // SIGTERM: clean exit, status 0.
        agent.child.kill('SIGTERM');
        expect(await agent.exited).toBe(0);
        holder.child.stdin!.end();
      } finally {
        agent.kill();
        for (const b of backends) b.kill();
        await topo.destroy();
      }
    }, 120_000);
  });
}
