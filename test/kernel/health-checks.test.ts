// check: icmp and check: udp against real hosts in namespaces, probed from the balancer namespace:
// a CoAP responder (UDP), ICMP-answering backends, and hosts that stop answering. Then `lbc agent`
// with seed 004's UDP check and seed 002's checks per group (tcp for the pool, icmp for the fallback),
// measuring how long taking a backend out and back in takes against interval × fall (rise).
// Only inside the namespaces the harness creates; every process is killed in finally/afterAll.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { parseSpec } from '../../src/index.js';
import { ADDR, createTopology, kernelSuite, tally, type Topology } from './harness/index.js';
import { Proc } from './harness/proc.js';

const stateDir = mkdtempSync(join(tmpdir(), 'lbc-health-state-'));
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const B = ADDR.v4.backends;
const INTERVAL = 400;
const TIMEOUT = 300;
const FALL = 2;
const RISE = 2;
/**
 * The agent's promise, from the semantics: a backend that stops answering is out after `fall` failed
 * checks one interval apart, each failing at the latest after its timeout (ping also needs a process
 * started), plus a generous second for a loaded 2-core machine and the ruleset load.
 */
const DOWN_BOUND_MS = INTERVAL * FALL + TIMEOUT + 1500;
const UP_BOUND_MS = INTERVAL * RISE + TIMEOUT + 1500;

/**
 * A CoAP-ish UDP server on ADDR, ports 5683 and 5684: a ping (40 00 MID) is answered with a reset
 * (70 00 MID), anything else with "ID:PORT". stdin "mute" makes it stop answering, "unmute" answer again.
 */
const COAP_JS = `
const dgram = require('dgram');
const [id, addr] = process.argv.slice(1);
setTimeout(() => process.exit(0), 240000);
let muted = false, bound = 0, buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); muted = l === 'mute'; process.stdout.write((muted ? 'MUTED' : 'UNMUTED') + '\\n'); } });
process.stdin.on('end', () => process.exit(0));
for (const port of [5683, 5684]) {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => {
    if (muted) return;
    if (m.length === 4 && m[0] === 0x40 && m[1] === 0) s.send(Buffer.from([0x70, 0, m[2], m[3]]), r.port, r.address);
    else s.send(id + ':' + port + '\\n', r.port, r.address);
  });
  s.bind(port, addr, () => { if (++bound === 2) process.stdout.write('READY\\n'); });
}
`;

/** Runs checks from the balancer namespace: argv JSON [[target, hc], ...] -> one line of [{ ok, reason, ms }]. */
const PROBE_JS = `
const root = ${JSON.stringify(ROOT)};
const { runCheck } = await import(root + '/src/health/check.ts');
const out = [];
for (const [t, hc] of JSON.parse(process.argv[1])) { const t0 = Date.now(); const r = await runCheck(t, hc); out.push({ ...r, ms: Date.now() - t0 }); }
process.stdout.write(JSON.stringify(out) + '\\n');
`;

const AGENT_JS = `
const root = ${JSON.stringify(ROOT)};
setTimeout(() => { process.stderr.write('agent test lifetime exceeded\\n'); process.exit(3); }, 240000).unref();
process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM')); process.stdin.resume();
const { runAgent } = await import(root + '/src/agent/index.ts');
const { nftablesTarget } = await import(root + '/src/targets/nftables/index.ts');
process.exit(await runAgent(JSON.parse(process.argv[1]), nftablesTarget, { log: (l) => process.stderr.write(l + '\\n'), notify: null }));
`;

const procs: Proc[] = [];
const topos: Topology[] = [];
afterAll(async () => {
  for (const p of procs) p.kill();
  for (const t of topos) await t.destroy();
  rmSync(stateDir, { recursive: true, force: true });
});

function inNs(topo: Topology, ns: 'cl' | 'lb' | 'be', argv: string[]): Proc {
  const p = new Proc(['ip', 'netns', 'exec', topo.ns[ns], ...argv]);
  procs.push(p);
  return p;
}

async function startCoap(topo: Topology, i: number): Promise<Proc> {
  const p = inNs(topo, 'be', [process.execPath, '-e', COAP_JS, `b${i}`, B[i]]);
  await p.waitLine('out', /^READY$/, 0, 10_000);
  return p;
}

async function say(p: Proc, line: 'mute' | 'unmute'): Promise<void> {
  const from = p.out.length;
  p.child.stdin!.write(`${line}\n`);
  await p.waitLine('out', line === 'mute' ? /^MUTED$/ : /^UNMUTED$/, from, 5_000);
}

const hc = (check: 'icmp' | 'udp', udp: { send: string; expect: string | null } | null = null) => ({
  check, intervalMs: INTERVAL, timeoutMs: TIMEOUT, rise: RISE, fall: FALL, port: null, http: null, banner: null, udp,
});
const COAP_PING = { send: '40000000', expect: '70000000' };

kernelSuite('check: icmp and udp against hosts in namespaces, and lbc agent with them', ['nft', 'ping', 'sysctl'], () => {
  it('probes from the balancer: answers pass, silence and closed ports fail within the timeout', async () => {
    const topo = await createTopology({ backendAddresses: 3 });
    topos.push(topo);
    const coap = await startCoap(topo, 0);
    try {
      const probe = async (list: unknown[]) => {
        const p = inNs(topo, 'lb', [process.execPath, '--import', 'tsx', '--input-type=module', '-e', PROBE_JS, JSON.stringify(list)]);
        const i = await p.waitLine('out', /^\[/, 0, 30_000);
        return JSON.parse(p.out[i]) as Array<{ ok: boolean; reason?: string; ms: number }>;
      };
      const t = (i: number, port = 5683) => ({ address: B[i], port, family: 'ipv4' });
      const nowhere = { address: '10.201.2.99', port: 5683, family: 'ipv4' }; // in the backend network, no host there
      const r = await probe([
        [t(0), hc('icmp')],
        [nowhere, hc('icmp')],
        [t(0), hc('udp', COAP_PING)],
        [t(0, 5684), hc('udp', COAP_PING)],
        [t(0), hc('udp', { send: '40000000', expect: '7000ffff' })],
        [t(1), hc('udp', COAP_PING)], // a host without the server: ICMP port unreachable
        [{ address: ADDR.v6.backends[0], port: 5683, family: 'ipv6' }, hc('icmp')], // ICMPv6 echo
      ]);
      expect(r.map(({ ok, reason }) => (ok ? 'ok' : reason))).toEqual([
        'ok',
        expect.stringMatching(/^(no echo reply within 300ms|.*unreachable.*)$/i),
        'ok',
        'ok',
        'answer 70 00 00 00 does not start with 70 00 ff ff',
        'port unreachable',
        'ok',
      ]);
      // Bounded: a failing probe ends within its timeout (ping: plus the time to start it).
      expect(r[1].ms).toBeLessThan(TIMEOUT + 1500);
      expect(r[5].ms).toBeLessThan(TIMEOUT + 500);

      // Hosts that stop answering: a muted server, and a namespace that ignores echo requests.
      await say(coap, 'mute');
      await topo.exec('be', ['sysctl', '-q', '-w', 'net.ipv4.icmp_echo_ignore_all=1']);
      const silent = await probe([
        [t(0), hc('udp', COAP_PING)],
        [t(0), hc('icmp')],
      ]);
      expect(silent.map((x) => x.reason)).toEqual([`no answer within ${TIMEOUT}ms`, `no echo reply within ${TIMEOUT}ms`]);
      for (const x of silent) expect(x.ms).toBeGreaterThanOrEqual(TIMEOUT - 10);
    } finally {
      coap.kill();
      await topo.destroy();
    }
  }, 90_000);

  it('lbc agent: a UDP check takes a silent CoAP server out and back; tcp for the pool, icmp for the fallback', async () => {
    const topo = await createTopology({ backendAddresses: 3 });
    topos.push(topo);
    const coap = [await startCoap(topo, 0), await startCoap(topo, 1)];
    await topo.startServers('be', [0, 1, 2].map((i) => ({ protocol: 'tcp' as const, address: B[i], port: 8080, id: `b${i}` })));
    // The pool's TCP servers live in their own process, so the test can stop them.
    const pool = inNs(topo, 'be', [process.execPath, join(ROOT, 'test/kernel/harness/server.mjs'), JSON.stringify([0, 1].map((i) => ({ protocol: 'tcp', address: B[i], port: 9090, id: `p${i}` })))]);
    await pool.waitLine('out', /READY/, 0, 10_000);
    const spec = `version: 1
services:
  - name: coap
    vip: ${ADDR.v4.vip(2)}
    ports: [5683, 5684]
    protocol: udp
    health: { check: udp, send: "40 00 00 00", expect: "70 00 00 00", interval: ${INTERVAL}ms, timeout: ${TIMEOUT}ms, rise: ${RISE}, fall: ${FALL} }
    backends: [${B[0]}, ${B[1]}]
  # Seed 002: check tcp for the pool, check icmp for the fallback.
  - name: www
    vip: ${ADDR.v4.vip(1)}
    port: 80
    health: { check: tcp, interval: ${INTERVAL}ms, timeout: ${TIMEOUT}ms, rise: ${RISE}, fall: ${FALL} }
    backends:
      - "${B[0]}:9090"
      - "${B[1]}:9090"
      - { address: ${B[2]}, port: 8080, backup: true, health: { check: icmp } }
`;
    const ir = parseSpec(spec, 'health.yaml');
    const agent = inNs(topo, 'lb', ['env', `LBC_STATE_DIR=${stateDir}`, process.execPath, '--import', 'tsx', '--input-type=module', '-e', AGENT_JS, JSON.stringify(ir)]);
    const measured: Record<string, number> = {};
    try {
      await agent.waitLine('err', /^lbc-agent: ready: 2 services, 0 of 5 checked backends down$/, 0, 30_000);
      const udpTo = (port: number) => topo.connect({ host: ADDR.v4.vip(2), port, protocol: 'udp', count: 4 });
      expect(tally(await udpTo(5683))).toEqual({ 'b0:5683': 2, 'b1:5683': 2 });
      expect(tally(await udpTo(5684))).toEqual({ 'b0:5684': 2, 'b1:5684': 2 });

      // b1's CoAP server goes silent: out after fall failed checks.
      let mark = agent.err.length;
      let t0 = Date.now();
      await say(coap[1], 'mute');
      const down = await agent.waitLine('err', new RegExp(`^lbc-agent: coap ${B[1].replace(/\./g, '\\.')}:5683 down \\(${FALL} failures: no answer within ${TIMEOUT}ms\\)$`), mark, 15_000);
      await agent.waitLine('err', /^lbc-agent: loaded the ruleset \(1 of 5 checked backends down\)$/, down, 10_000);
      measured.udpDown = Date.now() - t0;
      expect(tally(await udpTo(5683))).toEqual({ 'b0:5683': 4 });
      expect(tally(await udpTo(5684))).toEqual({ 'b0:5684': 4 });

      // It answers again: back after rise passing checks.
      mark = agent.err.length;
      t0 = Date.now();
      await say(coap[1], 'unmute');
      const up = await agent.waitLine('err', new RegExp(`^lbc-agent: coap ${B[1].replace(/\./g, '\\.')}:5683 up \\(${RISE} successes\\)$`), mark, 15_000);
      await agent.waitLine('err', /^lbc-agent: loaded the ruleset \(0 of 5 checked backends down\)$/, up, 10_000);
      measured.udpUp = Date.now() - t0;
      expect(tally(await udpTo(5684))).toEqual({ 'b0:5684': 2, 'b1:5684': 2 });

      // Seed 002: the pool dies, the ICMP-checked fallback takes over.
      mark = agent.err.length;
      pool.kill();
      await pool.exited;
      await agent.waitLine('err', new RegExp(`^lbc-agent: www: every primary is down; sending new connections to backups ${B[2].replace(/\./g, '\\.')}:8080$`), mark, 15_000);
      expect(tally(await topo.connect({ host: ADDR.v4.vip(1), port: 80, protocol: 'tcp', count: 3 }))).toEqual({ b2: 3 });

      // The fallback stops answering pings: down within its icmp check's fall, then fail open.
      mark = agent.err.length;
      t0 = Date.now();
      await topo.exec('be', ['sysctl', '-q', '-w', 'net.ipv4.icmp_echo_ignore_all=1']);
      const icmpDown = await agent.waitLine('err', new RegExp(`^lbc-agent: www ${B[2].replace(/\./g, '\\.')}:8080 down \\(${FALL} failures: no echo reply within ${TIMEOUT}ms\\)$`), mark, 15_000);
      await agent.waitLine('err', /^lbc-agent: www: no backend is up; sending new connections to every primary/, icmpDown, 10_000);
      measured.icmpDown = Date.now() - t0;

      // And answers again: the fallback is back after rise echoes.
      mark = agent.err.length;
      t0 = Date.now();
      await topo.exec('be', ['sysctl', '-q', '-w', 'net.ipv4.icmp_echo_ignore_all=0']);
      const icmpUp = await agent.waitLine('err', new RegExp(`^lbc-agent: www ${B[2].replace(/\./g, '\\.')}:8080 up \\(${RISE} successes\\)$`), mark, 15_000);
      await agent.waitLine('err', /^lbc-agent: loaded the ruleset \(2 of 5 checked backends down\)$/, icmpUp, 10_000);
      measured.icmpUp = Date.now() - t0;
      expect(tally(await topo.connect({ host: ADDR.v4.vip(1), port: 80, protocol: 'tcp', count: 2 }))).toEqual({ b2: 2 });

      process.stderr.write(`health timings (ms; bounds down ${DOWN_BOUND_MS}, up ${UP_BOUND_MS}): ${JSON.stringify(measured)}\n`);
      expect(measured.udpDown).toBeLessThanOrEqual(DOWN_BOUND_MS);
      expect(measured.icmpDown).toBeLessThanOrEqual(DOWN_BOUND_MS);
      expect(measured.udpUp).toBeLessThanOrEqual(UP_BOUND_MS);
      expect(measured.icmpUp).toBeLessThanOrEqual(UP_BOUND_MS);
      // Not faster than the semantics allow either: fall (rise) checks one interval apart.
      for (const k of ['udpDown', 'icmpDown', 'udpUp', 'icmpUp']) expect(measured[k], k).toBeGreaterThanOrEqual(INTERVAL * (FALL - 1));

      agent.child.kill('SIGTERM');
      expect(await agent.exited).toBe(0);
    } finally {
      agent.kill();
      pool.kill();
      for (const c of coap) c.kill();
      await topo.destroy();
    }
  }, 150_000);
});
