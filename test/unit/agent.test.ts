// The agent loop with a fake target, a fake checker and short real intervals.
// Every wait is bounded: waitFor() polls for a condition with a deadline, and
// every agent is aborted in afterEach.
import { afterEach, describe, expect, it } from 'vitest';
import { hostContext, runAgent, type AgentOptions } from '../../src/agent/index.js';
import type { Notifier } from '../../src/agent/notify.js';
import type { CheckResult, CheckTarget, Checker } from '../../src/health/check.js';
import type { Backend, HealthCheck, IR, Service } from '../../src/ir/types.js';
import type { ApplyContext, OutputFile, TargetDefinition } from '../../src/targets/target.js';

const loc = { file: 't.yaml', line: 1, column: 1 };
const HC: HealthCheck = { check: 'tcp', intervalMs: 15, timeoutMs: 10, rise: 2, fall: 2, port: null, http: null, banner: null, udp: null };

function be(index: number, address: string, backup = false, health: HealthCheck | null = HC): Backend {
  return { index, address, port: 80, keepsPort: false, weight: 1, backup, health, loc };
}
function svc(name: string, backends: Backend[], protocol: 'tcp' | 'udp' = 'tcp'): Service {
  return {
    name, family: 'ipv4', vip: { address: '192.0.2.1', prefixLength: 32, isHost: true }, port: 80, ports: [{ from: 80, to: 80 }], allow: null, protocol,
    interface: null, mode: 'nth', hashFields: [], sticky: null, local: false, backends, health: HC,
    loc: { service: loc, name: loc, backends: loc },
  };
}

/** Records what it was asked to load: "web=10.0.0.1,10.0.0.3" per service. */
class FakeTarget implements TargetDefinition {
  name = 'fake';
  title = 'fake';
  families = ['ipv4'] as const;
  capabilities = {};
  loads: string[] = [];
  events: string[];
  failNext = 0;
  gate: Promise<void> | null = null;
  constructor(events: string[]) {
    this.events = events;
  }
  emit(ir: IR): OutputFile[] {
    return [{ name: 'rules', content: ir.services.map((s) => `${s.name}=${s.backends.map((b) => b.address + (b.backup ? '(backup)' : '')).join(',')}`).join(' ') }];
  }
  apply = async (files: OutputFile[], _ctx: ApplyContext) => {
    this.events.push('apply-start');
    if (this.gate) await this.gate;
    if (this.failNext > 0) {
      this.failNext--;
      this.events.push('apply-failed');
      throw new Error('iptables-restore: line 3 failed');
    }
    // compileForTarget ends every file with a newline; the fake's record is the line itself.
    this.loads.push(files[0].content.trimEnd());
    this.events.push(`apply ${files[0].content.trimEnd()}`);
  };
}

/** A checker whose answers the test sets per address; counts checks in flight per address. */
class FakeChecks {
  up = new Map<string, boolean>();
  inFlight = new Map<string, number>();
  maxInFlight = 0;
  count = 0;
  /** While gated, checks wait until release(): every check released together resumes in one turn. */
  gated = false;
  waiting = 0;
  private gate = deferred();
  release(): void {
    const g = this.gate;
    this.gate = deferred();
    this.waiting = 0;
    g.resolve();
  }
  checker: Checker = async (t: CheckTarget) => {
    const k = t.address!;
    this.count++;
    this.inFlight.set(k, (this.inFlight.get(k) ?? 0) + 1);
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight.get(k)!);
    try {
      if (this.gated) {
        this.waiting++;
        await this.gate.promise;
      } else await new Promise((r) => setTimeout(r, 1));
      return (this.up.get(k) ?? true) ? { ok: true } : ({ ok: false, reason: 'connection refused' } as CheckResult);
    } finally {
      this.inFlight.set(k, this.inFlight.get(k)! - 1);
    }
  };
}

function fakeContext(conntrack: Map<string, string>, ran: string[][]): ApplyContext {
  return {
    dryRun: false,
    log: () => {},
    run: async (argv) => {
      ran.push(argv);
    },
    query: async (argv) => (argv[0] === 'conntrack' ? conntrack.get(argv.join(' ')) ?? '' : ''),
  };
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

interface Harness {
  events: string[];
  logs: string[];
  target: FakeTarget;
  checks: FakeChecks;
  ran: string[][];
  conntrack: Map<string, string>;
  done: Promise<number>;
  stop: () => void;
}

const running: Harness[] = [];
afterEach(async () => {
  for (const h of running.splice(0)) {
    h.stop();
    await h.done;
  }
});

function start(ir: IR, setup: (h: Omit<Harness, 'done' | 'stop'>) => void = () => {}, extra: Partial<AgentOptions> = {}): Harness {
  const events: string[] = [];
  const logs: string[] = [];
  const target = new FakeTarget(events);
  const checks = new FakeChecks();
  const ran: string[][] = [];
  const conntrack = new Map<string, string>();
  setup({ events, logs, target, checks, ran, conntrack });
  const ac = new AbortController();
  const notify: Notifier = {
    send: async (fields) => {
      events.push(`notify ${fields.join(' ')}`);
    },
  };
  const done = runAgent(ir, target, {
    log: (l) => {
      logs.push(l);
      events.push(`log ${l}`);
    },
    signal: ac.signal,
    handleSignals: false,
    context: fakeContext(conntrack, ran),
    checker: checks.checker,
    notify,
    retryMs: 20,
    ...extra,
  });
  const h = { events, logs, target, checks, ran, conntrack, done, stop: () => ac.abort() };
  running.push(h);
  return h;
}

const WEB = svc('web', [be(0, '10.0.0.1'), be(1, '10.0.0.2'), be(2, '10.0.0.3')]);

describe('runAgent', () => {
  it('checks every backend once, loads, then reports READY=1; a backend failing its first check is left out', async () => {
    const h = start({ file: 't', services: [WEB] }, (x) => x.checks.up.set('10.0.0.2', false));
    await waitFor('ready', () => h.events.some((e) => e.startsWith('notify READY=1')));
    expect(h.target.loads[0]).toBe('web=10.0.0.1,10.0.0.3');
    const iApply = h.events.indexOf('apply web=10.0.0.1,10.0.0.3');
    const iReady = h.events.findIndex((e) => e.startsWith('notify READY=1'));
    expect(iApply).toBeGreaterThanOrEqual(0);
    expect(iReady).toBeGreaterThan(iApply);
    expect(h.logs).toContain('lbc-agent: web 10.0.0.2:80 down (first check failed: connection refused)');
    h.stop();
    expect(await h.done).toBe(0);
    expect(h.events.at(-1)).toBe('notify STOPPING=1');
  });

  it('takes a backend out after `fall` failures and back after `rise` successes, logging one line each', async () => {
    const h = start({ file: 't', services: [WEB] });
    await waitFor('first load', () => h.target.loads.length === 1);
    expect(h.target.loads[0]).toBe('web=10.0.0.1,10.0.0.2,10.0.0.3');
    h.checks.up.set('10.0.0.2', false);
    await waitFor('second load', () => h.target.loads.length === 2);
    expect(h.target.loads[1]).toBe('web=10.0.0.1,10.0.0.3');
    expect(h.logs.filter((l) => l.includes('10.0.0.2'))).toEqual(['lbc-agent: web 10.0.0.2:80 down (2 failures: connection refused)']);
    h.checks.up.set('10.0.0.2', true);
    await waitFor('third load', () => h.target.loads.length === 3);
    expect(h.target.loads[2]).toBe('web=10.0.0.1,10.0.0.2,10.0.0.3');
    expect(h.logs).toContain('lbc-agent: web 10.0.0.2:80 up (2 successes)');
    // Checks kept running all along, never two at once for one backend.
    expect(h.checks.maxInFlight).toBe(1);
  });

  it('loads changes that happen in the same turn once', async () => {
    const h = start({ file: 't', services: [WEB] });
    await waitFor('first load', () => h.target.loads.length === 1);
    h.checks.gated = true;
    await waitFor('a clean round at the gate', () => h.checks.waiting === 3);
    h.checks.up.set('10.0.0.1', false);
    h.checks.up.set('10.0.0.3', false);
    h.checks.release();
    // fall = 2: two rounds of failures, each released at once.
    for (let round = 0; round < 2; round++) {
      await waitFor('all three checks at the gate', () => h.checks.waiting === 3);
      h.checks.release();
    }
    await waitFor('second load', () => h.target.loads.length >= 2);
    await waitFor('next round at the gate', () => h.checks.waiting === 3);
    expect(h.target.loads).toEqual(['web=10.0.0.1,10.0.0.2,10.0.0.3', 'web=10.0.0.2']);
    h.checks.gated = false;
    h.checks.release();
  });

  it('finishes a load in progress before exiting on stop, and exits 0', async () => {
    const h = start({ file: 't', services: [WEB] });
    await waitFor('first load', () => h.target.loads.length === 1);
    const g = deferred();
    h.target.gate = g.promise;
    h.checks.up.set('10.0.0.3', false);
    await waitFor('second load started', () => h.events.filter((e) => e === 'apply-start').length === 2);
    h.stop();
    let exited = false;
    void h.done.then(() => (exited = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(exited).toBe(false);
    g.resolve();
    expect(await h.done).toBe(0);
    expect(h.target.loads.at(-1)).toBe('web=10.0.0.1,10.0.0.2');
    expect(h.events).toContain('notify STOPPING=1');
  });

  it('exits 1 when the first load fails, and retries later loads that fail', async () => {
    const bad = start({ file: 't', services: [WEB] }, (x) => (x.target.failNext = 1));
    expect(await bad.done).toBe(1);
    expect(bad.events.some((e) => e.startsWith('notify READY'))).toBe(false);
    expect(bad.logs).toContain('lbc-agent: loading the ruleset failed: iptables-restore: line 3 failed');

    const h = start({ file: 't', services: [WEB] });
    await waitFor('first load', () => h.target.loads.length === 1);
    h.target.failNext = 1;
    h.checks.up.set('10.0.0.1', false);
    await waitFor('retried load', () => h.target.loads.length === 2);
    expect(h.events.filter((e) => e === 'apply-failed')).toHaveLength(1);
    expect(h.target.loads[1]).toBe('web=10.0.0.2,10.0.0.3');
  });

  it('promotes backups only when every primary is down, and fails open when nothing is up', async () => {
    const s = svc('web', [be(0, '10.0.0.1'), be(1, '10.0.0.2'), be(2, '10.0.0.8', true), be(3, '10.0.0.9', true)]);
    const h = start({ file: 't', services: [s] });
    await waitFor('first load', () => h.target.loads.length === 1);
    expect(h.target.loads[0]).toBe('web=10.0.0.1,10.0.0.2');
    h.checks.up.set('10.0.0.1', false);
    h.checks.up.set('10.0.0.2', false);
    await waitFor('backups', () => h.target.loads.includes('web=10.0.0.8,10.0.0.9'));
    expect(h.logs).toContain('lbc-agent: web: every primary is down; sending new connections to backups 10.0.0.8:80, 10.0.0.9:80');
    h.checks.up.set('10.0.0.8', false);
    h.checks.up.set('10.0.0.9', false);
    await waitFor('fail open', () => h.target.loads.at(-1) === 'web=10.0.0.1,10.0.0.2');
    expect(h.logs.some((l) => l.startsWith('lbc-agent: web: no backend is up; sending new connections to every primary'))).toBe(true);
    h.checks.up.set('10.0.0.2', true);
    await waitFor('primary back', () => h.target.loads.at(-1) === 'web=10.0.0.2');
  });

  it('deletes conntrack entries of a dead UDP backend after the load, and leaves TCP flows alone by default', async () => {
    const dns = svc('dns', [be(0, '10.0.0.1'), be(1, '10.0.0.2')], 'udp');
    const web = svc('web', [be(0, '10.0.0.1'), be(1, '10.0.0.2')], 'tcp');
    const udpFilter = ['-p', 'udp', '--orig-dst', '192.0.2.1', '--orig-port-dst', '80', '--reply-src', '10.0.0.2', '--reply-port-src', '80'];
    const h = start({ file: 't', services: [dns, web] }, (x) => {
      x.conntrack.set(['conntrack', '-L', ...udpFilter].join(' '), 'udp 17 29 src=10.9.0.1 dst=192.0.2.1 ...\n');
      x.conntrack.set('conntrack -L -p tcp --orig-dst 192.0.2.1 --orig-port-dst 80 --reply-src 10.0.0.2 --reply-port-src 80', 'tcp 6 ...\n');
    });
    await waitFor('first load', () => h.target.loads.length === 1);
    h.checks.up.set('10.0.0.2', false);
    // The two services' checks may fail in different turns: wait for both.
    await waitFor('flush and final load', () => h.ran.length > 0 && h.target.loads.at(-1) === 'dns=10.0.0.1 web=10.0.0.1');
    expect(h.ran).toEqual([['conntrack', '-D', ...udpFilter]]);
    expect(h.logs).toContain('lbc-agent: dns 10.0.0.2:80: deleted 1 conntrack entry');
    // The flush came after the load that took the backend out.
    const firstLoadWithout = h.events.findIndex((e) => e.startsWith('apply dns=10.0.0.1 '));
    expect(firstLoadWithout).toBeGreaterThan(0);
    expect(firstLoadWithout).toBeLessThan(h.events.indexOf('log lbc-agent: dns 10.0.0.2:80: deleted 1 conntrack entry'));
  });

  it('returns 2 for a target that cannot be loaded here, and 1 for what the target cannot express', async () => {
    const noApply: TargetDefinition = { name: 'pf', title: 'pf', families: ['ipv4'], capabilities: {}, emit: () => [] };
    const logs: string[] = [];
    expect(await runAgent({ file: 't', services: [WEB] }, noApply, { log: (l) => logs.push(l), handleSignals: false, notify: null })).toBe(2);
    const noUdp: TargetDefinition = {
      ...noApply,
      apply: async () => {},
      capabilities: { 'protocol.udp': { level: 'no', why: 'no UDP', instead: 'use tcp' } },
    };
    const udp = svc('dns', [be(0, '10.0.0.1')], 'udp');
    expect(await runAgent({ file: 't', services: [udp] }, noUdp, { log: (l) => logs.push(l), handleSignals: false, notify: null })).toBe(1);
    expect(logs.some((l) => l.includes('cannot express UDP services') && l.includes('[LBC3001]'))).toBe(true);
  });

  it('exits 0 on SIGTERM (signal handlers on)', async () => {
    const events: string[] = [];
    const target = new FakeTarget(events);
    const checks = new FakeChecks();
    const done = runAgent({ file: 't', services: [WEB] }, target, { log: () => {}, checker: checks.checker, notify: null, context: fakeContext(new Map(), []) });
    await waitFor('first load', () => target.loads.length === 1);
    process.emit('SIGTERM', 'SIGTERM');
    expect(await done).toBe(0);
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });

  it('hostContext in a dry run prints changing commands with their input and runs nothing', async () => {
    const logs: string[] = [];
    const ctx = hostContext(true, (l) => logs.push(l));
    await ctx.run(['nft', '-f', '-'], 'table inet lbc {\n}\n');
    await ctx.run(['conntrack', '-D', '-p', 'udp', '--reply-src', '10.0.0.2']);
    expect(logs).toEqual([
      'lbc-agent: would run: nft -f - <<EOF',
      'table inet lbc {',
      '}',
      'EOF',
      'lbc-agent: would run: conntrack -D -p udp --reply-src 10.0.0.2',
    ]);
    // query() runs even in a dry run (read-only); a failing command rejects with the LBC5001 diagnostic.
    expect(await ctx.query([process.execPath, '-e', 'process.stdout.write("ok")'])).toBe('ok');
    await expect(ctx.query([process.execPath, '-e', 'process.exit(3)'])).rejects.toThrow(/LBC5001/);
  });
});
