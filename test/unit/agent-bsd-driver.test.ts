// `lbc agent` on the BSD targets, with a fake checker and an ApplyContext that
// records every command (nothing BSD runs here). Every wait is bounded
// (waitFor has a deadline) and every agent is aborted in afterEach.
import { afterEach, describe, expect, it } from 'vitest';
import { runAgent } from '../../src/agent/index.js';
import { ipnatStateChangeCommands } from '../../src/agent-bsd/index.js';
import { ipnatApplyPlan } from '../../src/agent-bsd/ipnat.js';
import type { CheckResult, CheckTarget, Checker } from '../../src/health/check.js';
import { liveIR } from '../../src/health/live.js';
import { parseSpec } from '../../src/index.js';
import type { IR } from '../../src/ir/types.js';
import { ipnatTarget } from '../../src/targets/ipnat/index.js';
import { natTag } from '../../src/targets/ipnat/emit.js';
import { pfOpenbsdTarget } from '../../src/targets/pf-openbsd/index.js';
import { pfTarget } from '../../src/targets/pf/index.js';
import { compileForTarget, type ApplyContext, type TargetDefinition } from '../../src/targets/target.js';

interface Call {
  argv: string[];
  stdin?: string;
}

/** The spec with checks every 15 ms that decide on one result, so each test step is one check away. */
function spec(text: string): IR {
  const ir = parseSpec(`version: 1\nservices:\n${text}`, 'spec.yaml');
  for (const s of ir.services) {
    for (const b of s.backends) if (b.health) b.health = { ...b.health, intervalMs: 15, timeoutMs: 10, rise: 1, fall: 1 };
  }
  return ir;
}

class Checks {
  up = new Map<string, boolean>();
  checker: Checker = async (t: CheckTarget) => {
    await new Promise((r) => setTimeout(r, 1));
    return (this.up.get(`${t.address ?? 'local'}:${t.port}`) ?? true) ? { ok: true } : ({ ok: false, reason: 'connection refused' } as CheckResult);
  };
}

/** Records every command; `fail` decides which ones fail (as a real command exiting non-zero would). */
function recorder(calls: Call[], fail: (c: Call) => boolean = () => false): ApplyContext {
  return {
    dryRun: false,
    log: () => {},
    run: async (argv, stdin) => {
      const c = stdin === undefined ? { argv } : { argv, stdin };
      calls.push(c);
      if (fail(c)) throw new Error(`${argv.join(' ')} failed`);
    },
    query: async () => {
      throw new Error('the BSD drivers read nothing from the host');
    },
  };
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const stops: AbortController[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) s.abort();
});

function start(ir: IR, target: TargetDefinition, checks: Checks, calls: Call[], fail?: (c: Call) => boolean) {
  const stop = new AbortController();
  stops.push(stop);
  const logs: string[] = [];
  const done = runAgent(ir, target, {
    log: (l) => logs.push(l),
    checker: checks.checker,
    context: recorder(calls, fail),
    notify: null,
    handleSignals: false,
    retryMs: 20,
    signal: stop.signal,
  });
  return { stop, logs, done };
}

/** Waits until `n` more commands than `from` were run, then a little longer to catch any extra one. */
async function next(calls: Call[], from: number, n: number): Promise<Call[]> {
  await waitFor(`${n} commands after #${from}`, () => calls.length >= from + n);
  await new Promise((r) => setTimeout(r, 60));
  return calls.slice(from);
}

/** Nothing lbc runs may flush rules, states, translations or source nodes wholesale. */
function expectNoFlush(calls: Call[]): void {
  for (const c of calls) {
    for (const a of c.argv.slice(1)) expect(a, c.argv.join(' ')).not.toMatch(/^-(F|C|Fa|Fs|CF|FC)$|^-[A-Za-z]*[FC]/);
    expect(c.argv).not.toContain('flush');
  }
}

/** One sticky, health-checked service with two primaries and a backup: what both drivers are driven with. */
const WEB = spec(`  - name: web
    vip: 203.0.113.10
    port: 80
    interface: em0
    sticky: 10m
    health: { check: tcp }
    backends:
      - { address: 10.0.0.1, port: 8080 }
      - { address: 10.0.0.2, port: 8080 }
      - { address: 10.0.0.9, port: 8080, backup: true }
`);

const conf = (target: TargetDefinition, ir: IR) => compileForTarget(target, ir).files[0].content;

describe('pf agent driver', () => {
  const ir = WEB;

  it('loads the anchor, then rewrites only the table and kills the source nodes of backends that left it', async () => {
    const checks = new Checks();
    const calls: Call[] = [];
    const a = start(ir, pfTarget, checks, calls);
    const first = await next(calls, 0, 2);
    const full = conf(pfTarget, liveIR(ir, new Map()));
    expect(full).toContain('table <lbc-web> persist { 10.0.0.1, 10.0.0.2 }');
    expect(first).toEqual([
      { argv: ['pfctl', '-a', 'lbc', '-nf', '-'], stdin: full },
      { argv: ['pfctl', '-a', 'lbc', '-f', '-'], stdin: full },
    ]);

    checks.up.set('10.0.0.1:8080', false);
    expect(await next(calls, 2, 2)).toEqual([
      { argv: ['pfctl', '-a', 'lbc', '-t', 'lbc-web', '-T', 'replace', '10.0.0.2'] },
      { argv: ['pfctl', '-K', '0.0.0.0/0', '-K', '10.0.0.1'] },
    ]);

    // Every primary down: the backup is promoted into the table.
    checks.up.set('10.0.0.2:8080', false);
    expect(await next(calls, 4, 2)).toEqual([
      { argv: ['pfctl', '-a', 'lbc', '-t', 'lbc-web', '-T', 'replace', '10.0.0.9'] },
      { argv: ['pfctl', '-K', '0.0.0.0/0', '-K', '10.0.0.2'] },
    ]);

    // A primary is back: the backup leaves the table, and so do the clients pinned to it.
    checks.up.set('10.0.0.1:8080', true);
    expect(await next(calls, 6, 2)).toEqual([
      { argv: ['pfctl', '-a', 'lbc', '-t', 'lbc-web', '-T', 'replace', '10.0.0.1'] },
      { argv: ['pfctl', '-K', '0.0.0.0/0', '-K', '10.0.0.9'] },
    ]);
    expect(calls).toHaveLength(8);
    expectNoFlush(calls);
    expect(a.logs.join('\n')).toMatch(/web: every primary is down; sending new connections to backups 10\.0\.0\.9:8080/);
    a.stop.abort();
    expect(await a.done).toBe(0);
  });

  it('reloads the anchor with the live ruleset when a pool is not a table (pf-openbsd probability cascade)', async () => {
    const cascade = spec(`  - name: api
    vip: 203.0.113.20
    port: 443
    mode: random
    health: { check: tcp }
    backends:
      - { address: 10.0.1.1, port: 8443, weight: 1 }
      - { address: 10.0.1.2, port: 8443, weight: 2 }
      - { address: 10.0.1.3, port: 9443, weight: 3 }
`);
    const checks = new Checks();
    const calls: Call[] = [];
    const a = start(cascade, pfOpenbsdTarget, checks, calls);
    await next(calls, 0, 2);
    expect(calls[1].stdin).toMatch(/probability .*rdr-to 10\.0\.1\.1 port 8443/);

    checks.up.set('10.0.1.2:8443', false);
    const live = conf(pfOpenbsdTarget, liveIR(cascade, new Map([['api#1', 'down']])));
    expect(live).not.toContain('10.0.1.2');
    expect(await next(calls, 2, 2)).toEqual([
      { argv: ['pfctl', '-a', 'lbc', '-nf', '-'], stdin: live },
      { argv: ['pfctl', '-a', 'lbc', '-f', '-'], stdin: live },
    ]);
    expect(calls).toHaveLength(4);
    expectNoFlush(calls);
    a.stop.abort();
    expect(await a.done).toBe(0);
  });

  it('pf-openbsd: a table pool is rewritten in place while it stays a table, reloaded when it becomes one address', async () => {
    const three = spec(`  - name: web
    vip: 203.0.113.10
    port: 80
    health: { check: tcp }
    backends: [10.0.0.1:8080, 10.0.0.2:8080, 10.0.0.3:8080]
`);
    const checks = new Checks();
    const calls: Call[] = [];
    const a = start(three, pfOpenbsdTarget, checks, calls);
    await next(calls, 0, 2);
    checks.up.set('10.0.0.2:8080', false);
    // Not sticky: no source nodes to kill.
    expect(await next(calls, 2, 1)).toEqual([{ argv: ['pfctl', '-a', 'lbc', '-t', 'lbc-web', '-T', 'replace', '10.0.0.1', '10.0.0.3'] }]);
    checks.up.set('10.0.0.3:8080', false);
    const one = await next(calls, 3, 2);
    expect(one.map((c) => c.argv)).toEqual([
      ['pfctl', '-a', 'lbc', '-nf', '-'],
      ['pfctl', '-a', 'lbc', '-f', '-'],
    ]);
    expect(one[1].stdin).toMatch(/rdr-to 10\.0\.0\.1 port 8080 keep state/);
    expectNoFlush(calls);
    a.stop.abort();
    expect(await a.done).toBe(0);
  });

  it('pf-openbsd: a weighted table is reloaded with its live weights, never replaced by bare addresses', async () => {
    const weighted = spec(`  - name: web
    vip: 203.0.113.10
    port: 80
    sticky: 5m
    health: { check: tcp }
    backends:
      - { address: 10.0.0.1, port: 8080, weight: 3 }
      - { address: 10.0.0.2, port: 8080, weight: 2 }
      - { address: 10.0.0.3, port: 8080, weight: 1 }
`);
    const checks = new Checks();
    const calls: Call[] = [];
    const a = start(weighted, pfOpenbsdTarget, checks, calls);
    const first = await next(calls, 0, 2);
    expect(first[1].stdin).toContain('table <lbc-web> persist { 10.0.0.1 weight 3, 10.0.0.2 weight 2, 10.0.0.3 weight 1 }');
    checks.up.set('10.0.0.2:8080', false);
    const live = conf(pfOpenbsdTarget, liveIR(weighted, new Map([['web#1', 'down']])));
    expect(live).toContain('table <lbc-web> persist { 10.0.0.1 weight 3, 10.0.0.3 weight 1 }');
    expect(await next(calls, 2, 3)).toEqual([
      { argv: ['pfctl', '-a', 'lbc', '-nf', '-'], stdin: live },
      { argv: ['pfctl', '-a', 'lbc', '-f', '-'], stdin: live },
      { argv: ['pfctl', '-K', '0.0.0.0/0', '-K', '10.0.0.2'] },
    ]);
    expect(calls.some((c) => c.argv.includes('replace'))).toBe(false);
    expectNoFlush(calls);
    a.stop.abort();
    expect(await a.done).toBe(0);
  });

  it('exits 1 when the first load fails, and says flows are left alone', async () => {
    const calls: Call[] = [];
    const a = start(ir, pfTarget, new Checks(), calls, (c) => c.argv.includes('-nf'));
    expect(await a.done).toBe(1);
    // The check failed, so the anchor was never loaded.
    expect(calls.map((c) => c.argv.join(' '))).toEqual(['pfctl -a lbc -nf -']);
    expect(a.logs.join('\n')).toMatch(/left to end by themselves/);
    expect(a.logs.join('\n')).toMatch(/the first ruleset load failed/);
  });

  it('apply() checks, then loads, the file into the anchor only', async () => {
    const calls: Call[] = [];
    const files = compileForTarget(pfTarget, ir).files;
    await pfTarget.apply!(files, recorder(calls));
    expect(calls).toEqual([
      { argv: ['pfctl', '-a', 'lbc', '-nf', '-'], stdin: files[0].content },
      { argv: ['pfctl', '-a', 'lbc', '-f', '-'], stdin: files[0].content },
    ]);
    await expect(pfTarget.apply!([], recorder([]))).rejects.toThrow(/nothing to apply/);
    await expect(pfOpenbsdTarget.apply!(files, recorder([]))).rejects.toThrow(/no lbc\.pf-openbsd\.conf/);
  });
});

describe('ipnat agent driver', () => {
  const ir = WEB;
  const T = natTag(ir.services[0], 1);
  const R1 = `rdr em0 203.0.113.10/32 port 80 -> 10.0.0.1 port 8080 tcp round-robin sticky tag ${T}`;
  const R2 = `rdr em0 203.0.113.10/32 port 80 -> 10.0.0.2 port 8080 tcp round-robin sticky tag ${T}`;
  const R9 = `rdr em0 203.0.113.10/32 port 80 -> 10.0.0.9 port 8080 tcp round-robin sticky tag ${T}`;
  const pass = (a: string) => `pass in quick on em0 proto tcp from any to ${a}/32 port = 8080 flags S/SA keep state match-tag(nat=${T})`;
  /** The service is sticky: a rule that goes takes its sessions (and so the host map entries) with it. */
  const PURGE = ['ipnat', '-p', '-r', '-f', '-'];

  it('removes and restores single rdr rules, promotes the backup, and never flushes', async () => {
    const checks = new Checks();
    const calls: Call[] = [];
    const a = start(ir, ipnatTarget, checks, calls);
    // Start: pass rules for every backend that may get traffic, then rdr rules; each first removed on its own.
    const first = await next(calls, 0, 8);
    expect(first).toEqual([
      { argv: ['ipf', '-r', '-f', '-'], stdin: `${pass('10.0.0.1')}\n` },
      { argv: ['ipf', '-r', '-f', '-'], stdin: `${pass('10.0.0.2')}\n` },
      { argv: ['ipf', '-r', '-f', '-'], stdin: `${pass('10.0.0.9')}\n` },
      { argv: ['ipf', '-f', '-'], stdin: `${pass('10.0.0.1')}\n${pass('10.0.0.2')}\n${pass('10.0.0.9')}\n` },
      // Rules that stay are removed and added again with their sessions; the backup's, which an earlier
      // run may have left, goes with its sessions.
      { argv: ['ipnat', '-r', '-f', '-'], stdin: `${R1}\n` },
      { argv: ['ipnat', '-r', '-f', '-'], stdin: `${R2}\n` },
      { argv: PURGE, stdin: `${R9}\n` },
      { argv: ['ipnat', '-f', '-'], stdin: `${R1}\n${R2}\n` },
    ]);
    expect(calls).toHaveLength(8);

    checks.up.set('10.0.0.1:8080', false);
    const down = await next(calls, 8, 1);
    expect(down).toEqual([{ argv: PURGE, stdin: `${R1}\n` }]);
    // The same command ipnatStateChangeCommands plans for one backend going down.
    const single = ipnatStateChangeCommands({ svc: ir.services[0], backendIndex: 0, up: false, ipnatRules: `${R1}\n${R2}\n` });
    expect(single).toEqual({ ok: true, commands: down });

    checks.up.set('10.0.0.2:8080', false);
    expect(await next(calls, 9, 2)).toEqual([
      { argv: ['ipnat', '-f', '-'], stdin: `${R9}\n` },
      { argv: PURGE, stdin: `${R2}\n` },
    ]);

    // A primary is back: the backup's rule goes, and its sticky clients are balanced again.
    checks.up.set('10.0.0.1:8080', true);
    expect(await next(calls, 11, 2)).toEqual([
      { argv: ['ipnat', '-f', '-'], stdin: `${R1}\n` },
      { argv: PURGE, stdin: `${R9}\n` },
    ]);
    expect(calls).toHaveLength(13);
    expectNoFlush(calls);
    a.stop.abort();
    expect(await a.done).toBe(0);
  });

  it('UDP: a dead backend\'s rule goes with its sessions, so clients that keep sending are balanced again', async () => {
    const dns = spec(`  - name: dns
    vip: 203.0.113.53
    port: 53
    protocol: udp
    interface: em0
    health: { check: tcp }
    backends: [10.0.5.1, 10.0.5.2]
`);
    const D = natTag(dns.services[0], 1);
    const rule = (a: string) => `rdr em0 203.0.113.53/32 port 53 -> ${a} port 53 udp round-robin tag ${D}`;
    const checks = new Checks();
    const calls: Call[] = [];
    const a = start(dns, ipnatTarget, checks, calls);
    await waitFor('first load', () => calls.some((c) => c.argv.join(' ') === 'ipnat -f -'));
    const from = calls.length;
    checks.up.set('10.0.5.2:53', false);
    expect(await next(calls, from, 1)).toEqual([{ argv: PURGE, stdin: `${rule('10.0.5.2')}\n` }]);
    expectNoFlush(calls);
    a.stop.abort();
    expect(await a.done).toBe(0);
  });

  it('after a load that failed halfway, starts again from a clean load', async () => {
    const checks = new Checks();
    const calls: Call[] = [];
    let failures = 0;
    // The first change's removal fails once, as if ipnat had stopped halfway.
    const a = start(ir, ipnatTarget, checks, calls, (c) => calls.length === 9 && failures++ === 0);
    await next(calls, 0, 8);
    checks.up.set('10.0.0.1:8080', false);
    await waitFor('the retry', () => calls.length >= 9 + 8);
    await new Promise((r) => setTimeout(r, 60));
    expect(calls[8]).toEqual({ argv: PURGE, stdin: `${R1}\n` });
    const retry = calls.slice(9);
    // Starting again: R1 is dead now, so it goes with its sessions; R2 stays.
    expect(retry.filter((c) => c.argv[0] === 'ipnat' && c.argv.includes('-r')).map((c) => [c.argv.join(' '), c.stdin])).toEqual([
      ['ipnat -p -r -f -', `${R1}\n`],
      ['ipnat -r -f -', `${R2}\n`],
      ['ipnat -p -r -f -', `${R9}\n`],
    ]);
    expect(retry.at(-1)).toEqual({ argv: ['ipnat', '-f', '-'], stdin: `${R2}\n` });
    expect(calls).toHaveLength(17);
    expect(a.logs.join('\n')).toMatch(/loading the ruleset failed/);
    a.stop.abort();
    expect(await a.done).toBe(0);
  });

  it('fails open: with nothing up, every primary keeps its rule', async () => {
    const checks = new Checks();
    const calls: Call[] = [];
    const a = start(ir, ipnatTarget, checks, calls);
    await next(calls, 0, 8);
    checks.up.set('10.0.0.1:8080', false);
    await next(calls, 8, 1);
    checks.up.set('10.0.0.9:8080', false);
    checks.up.set('10.0.0.2:8080', false);
    // Whatever order the two changes land in, the end state has R1 and R2 loaded and R9 not.
    await waitFor('fail open', () => a.logs.some((l) => /no backend is up/.test(l)));
    await new Promise((r) => setTimeout(r, 60));
    const loaded = new Set([R1, R2]);
    for (const c of calls.slice(8)) {
      for (const l of c.stdin!.trimEnd().split('\n')) {
        if (c.argv.includes('-r')) loaded.delete(l);
        else loaded.add(l);
      }
    }
    expect([...loaded].sort()).toEqual([R1, R2]);
    expectNoFlush(calls);
    a.stop.abort();
    expect(await a.done).toBe(0);
  });

  it('a port-range rule is replaced by the rules of the live service, and is cleaned up at start', async () => {
    const range = spec(`  - name: game
    vip: 198.18.240.1
    port: 4000
    interface: lagg0
    health: { check: tcp }
    backends: [":4001", ":4002", ":4003"]
`);
    const G = natTag(range.services[0], 1);
    const RANGE = `rdr lagg0 198.18.240.1/32 port 4000 -> 127.0.0.1 port 4001-4003 tcp tag ${G}`;
    const rr = (p: number) => `rdr lagg0 198.18.240.1/32 port 4000 -> 127.0.0.1 port ${p} tcp round-robin tag ${G}`;
    const checks = new Checks();
    const calls: Call[] = [];
    const a = start(range, ipnatTarget, checks, calls);
    await waitFor('first load', () => calls.some((c) => c.argv.join(' ') === 'ipnat -f -'));
    const firstEnd = calls.findIndex((c) => c.argv.join(' ') === 'ipnat -f -') + 1;
    const cleaned = calls.filter((c) => c.argv.join(' ') === 'ipnat -r -f -').map((c) => c.stdin!.trimEnd());
    // Every form an earlier run could have left: the range, shorter ranges, single and round-robin rules.
    expect(cleaned).toEqual(expect.arrayContaining([RANGE, rr(4001), rr(4003), `rdr lagg0 198.18.240.1/32 port 4000 -> 127.0.0.1 port 4001-4002 tcp tag ${G}`]));
    expect(calls[firstEnd - 1].stdin).toBe(`${RANGE}\n`);

    checks.up.set('local:4002', false);
    expect(await next(calls, firstEnd, 2)).toEqual([
      { argv: ['ipnat', '-f', '-'], stdin: `${rr(4001)}\n${rr(4003)}\n` },
      { argv: ['ipnat', '-r', '-f', '-'], stdin: `${RANGE}\n` },
    ]);
    expectNoFlush(calls);
    a.stop.abort();
    expect(await a.done).toBe(0);
  });

  it('apply(): each rule removed on its own (a failure there is expected), then the files added; a failed add rejects', async () => {
    const files = compileForTarget(ipnatTarget, ir).files;
    const plan = ipnatApplyPlan(files);
    expect(plan.map((c) => `${c.argv.join(' ')}${c.mayFail ? ' (may fail)' : ''}`)).toEqual([
      'ipf -r -f - (may fail)',
      'ipf -r -f - (may fail)',
      'ipf -f -',
      'ipnat -r -f - (may fail)',
      'ipnat -r -f - (may fail)',
      'ipnat -f -',
    ]);
    const calls: Call[] = [];
    // Nothing loaded yet: every removal fails, and apply() still loads both files.
    await ipnatTarget.apply!(files, recorder(calls, (c) => c.argv.includes('-r')));
    expect(calls.map((c) => c.argv.join(' ')).slice(-1)).toEqual(['ipnat -f -']);
    expect(calls.at(-1)!.stdin).toBe(`${R1}\n${R2}\n`);
    expectNoFlush(calls);
    await expect(ipnatTarget.apply!(files, recorder([], (c) => c.argv.join(' ') === 'ipnat -f -'))).rejects.toThrow(/ipnat -f - failed/);
  });
});
