import { describe, expect, it, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { parseSpec } from '../../src/index.js';
import type { Backend, IR, Service } from '../../src/ir/types.js';
import { compileForTarget } from '../../src/targets/target.js';
import { iptablesConditionTarget } from '../../src/targets/iptables-condition/index.js';
import { printfFormat, shellQuote } from '../../src/targets/iptables-condition/checker.js';
import { distribution, newConnection, parseRestore, type Tables } from './condition-sim.js';

function compile(yaml: string) {
  const ir = parseSpec(`version: 1\n${yaml}`, 'spec.yaml');
  return { ir, result: compileForTarget(iptablesConditionTarget, ir) };
}

function rules(yaml: string): { ir: IR; text: string } {
  const { ir, result } = compile(yaml);
  expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const f = result.files.find((x) => x.name === 'iptables-condition.rules');
  expect(f).toBeDefined();
  return { ir, text: f!.content };
}

const dest = (b: Backend) => (b.address === null ? `local:${b.port}` : `${b.address}:${b.port}`);
const condName = (svc: Service, b: Backend) => `lbc-${svc.name}-${b.index}-down`;
const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);

/** Every assignment of up/down to the checked backends, with the set that should receive connections. */
function subsets(svc: Service): { up: Set<string>; expected: Backend[] }[] {
  const checked = svc.backends.filter((b) => b.health);
  const out: { up: Set<string>; expected: Backend[] }[] = [];
  for (let mask = 0; mask < 1 << checked.length; mask++) {
    const up = new Set(checked.filter((_, i) => mask & (1 << i)).map((b) => condName(svc, b)));
    const alive = (b: Backend) => !b.health || up.has(condName(svc, b));
    const prim = svc.backends.filter((b) => !b.backup && alive(b));
    const expected = prim.length > 0 ? prim : svc.backends.filter((b) => b.backup && alive(b));
    out.push({ up, expected });
  }
  return out;
}

function condFn(svc: Service, up: Set<string>) {
  const names = new Set(svc.backends.filter((b) => b.health).map((b) => condName(svc, b)));
  return (name: string) => {
    if (!names.has(name)) throw new Error(`unknown condition ${name}`);
    return !up.has(name); // the condition is "down"
  };
}

const noRandom = () => {
  throw new Error('random rule in an nth ruleset');
};

function checkNthExact(yaml: string) {
  const { ir, text } = rules(yaml);
  for (const svc of ir.services) {
    for (const { up, expected } of subsets(svc)) {
      const t = parseRestore(text); // fresh counters, as after a load
      const g = expected.reduce((a, b) => gcd(a, b.weight), 0);
      const W = expected.reduce((s, b) => s + b.weight / (g || 1), 0);
      const counts = new Map<string | null, number>();
      const cycles = 3;
      for (let c = 0; c < Math.max(W, 1) * cycles; c++) {
        const d = newConnection(t, svc.name, condFn(svc, up), noRandom);
        counts.set(d, (counts.get(d) ?? 0) + 1);
      }
      if (expected.length === 0) {
        expect([...counts.keys()]).toEqual([null]);
        continue;
      }
      const want = new Map(expected.map((b) => [dest(b), (cycles * b.weight) / g]));
      expect(Object.fromEntries(counts)).toEqual(Object.fromEntries(want));
    }
  }
}

function checkRandomExact(yaml: string) {
  const { ir, text } = rules(yaml);
  const t = parseRestore(text);
  for (const svc of ir.services) {
    for (const { up, expected } of subsets(svc)) {
      const dist = distribution(t, svc.name, condFn(svc, up));
      if (expected.length === 0) {
        expect([...dist.keys()]).toEqual([null]);
        continue;
      }
      const W = expected.reduce((s, b) => s + b.weight, 0);
      const got = new Map(dist);
      for (const b of expected) {
        expect(got.get(dest(b)) ?? 0).toBeCloseTo(b.weight / W, 8);
        got.delete(dest(b));
      }
      // Nothing else (no down backend, no drop) has any probability.
      for (const [k, p] of got) expect({ k, p }).toEqual({ k, p: 0 });
    }
  }
}

const SEED_001 = `
services:
  - name: mail
    vip: 10.0.0.1
    port: 25
    interface: bond0.204
    mode: nth
    health: { check: banner, send: "QUIT\\r\\n", expect: "220", interval: 5s, timeout: 5s, rise: 1, fall: 1 }
    backends:
      - { address: 192.168.0.1 }
      - { address: 192.168.0.2 }
`;

const WEIGHTED = (mode: string) => `
services:
  - name: web
    vip: 203.0.113.10
    port: 80
    mode: ${mode}
    health: { check: tcp, interval: 2s }
    backends:
      - { address: 10.0.0.1, weight: 1 }
      - { address: 10.0.0.2, weight: 2, port: 8080 }
      - { address: 10.0.0.3, weight: 3 }
      - { address: 10.0.0.9, backup: true, weight: 2 }
      - { address: 10.0.0.8, backup: true }
`;

const MIXED = (mode: string) => `
services:
  - name: api
    vip: 203.0.113.11
    port: 443
    mode: ${mode}
    backends:
      - { address: 10.0.1.1, weight: 2, health: { check: tcp } }
      - { address: 10.0.1.2, weight: 1 }
      - { address: 10.0.1.3, weight: 5, health: { check: tcp } }
      - { address: 10.0.1.4, backup: true, health: { check: tcp } }
  - name: dns
    vip: 203.0.113.12
    port: 53
    protocol: udp
    mode: ${mode}
    backends:
      - { address: 10.0.2.1, health: { check: tcp } }
      - { address: 10.0.2.2, health: { check: tcp } }
      - { address: 10.0.2.3, health: { check: tcp } }
      - { address: 10.0.2.7, backup: true, weight: 3, health: { check: tcp } }
      - { address: 10.0.2.8, backup: true }
`;

describe('iptables-condition selection rules', () => {
  it('renders seed 001 (two checked SMTP backends, nth) as a condition tree', () => {
    const { text } = rules(SEED_001);
    expect(text).toContain('-A LBC-PREROUTING -i bond0.204 -d 10.0.0.1/32 -p tcp -m tcp --dport 25 -j LBC-mail');
    expect(text).toContain('-A LBC-mail-n1 -m condition --condition lbc-mail-0-down -g LBC-mail-n2');
    expect(text).toContain('-A LBC-mail-dnat -m mark --mark 0x20000/0xff0000 -j DNAT --to-destination 192.168.0.2:25');
    expect(text).toMatch(/xtables-addons/);
  });

  it('nth: exact rotation over every subset of live backends (seed 001)', () => checkNthExact(SEED_001));
  it('nth: exact weighted rotation over every subset, backups only when all primaries are down', () => checkNthExact(WEIGHTED('nth')));
  it('nth: unchecked backends are always in the set; backups of a service with one are never used', () => checkNthExact(MIXED('nth')));
  it('random: exact probabilities over every subset', () => checkRandomExact(WEIGHTED('random')));
  it('random: mixed checked/unchecked primaries and backups', () => checkRandomExact(MIXED('random')));

  it('nth: each live set keeps its own exact rotation while the set changes between connections', () => {
    const { ir, text } = rules(WEIGHTED('nth'));
    const svc = ir.services[0];
    const t = parseRestore(text);
    const all = subsets(svc);
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    // Subsets that differ only in backups nobody needs share one leaf, so group by the live set.
    const seen = new Map<string, { exp: Backend[]; ds: string[] }>();
    for (let i = 0; i < 4000; i++) {
      const k = Math.floor(rnd() * all.length);
      const d = newConnection(t, svc.name, condFn(svc, all[k].up), noRandom);
      if (d !== null) expect(all[k].expected.map(dest)).toContain(d);
      else expect(all[k].expected).toEqual([]);
      const key = all[k].expected.map(dest).join(',');
      const entry = seen.get(key) ?? { exp: all[k].expected, ds: [] };
      entry.ds.push(String(d));
      seen.set(key, entry);
    }
    expect(seen.size).toBeGreaterThan(4);
    for (const { exp, ds } of seen.values()) {
      if (exp.length === 0) continue;
      const g = exp.reduce((a, b) => gcd(a, b.weight), 0);
      const W = exp.reduce((s, b) => s + b.weight / g, 0);
      for (let start = 0; start + W <= ds.length; start += W) {
        const window = ds.slice(start, start + W);
        for (const b of exp) expect(window.filter((x) => x === dest(b)).length).toBe(b.weight / g);
      }
    }
  });

  it('never sends a connection to a down backend, and drops when nothing is up', () => {
    const { ir, text } = rules(WEIGHTED('random'));
    const svc = ir.services[0];
    const t = parseRestore(text);
    const none = new Set<string>();
    expect(newConnection(t, svc.name, condFn(svc, none), () => true)).toBeNull();
  });

  it('is deterministic and keeps chain and condition names within the kernel limits', () => {
    const a = compile(MIXED('nth')).result.files;
    const b = compile(MIXED('nth')).result.files;
    expect(a).toEqual(b);
    const text = a[0].content;
    for (const m of text.matchAll(/^:(\S+)/gm)) expect(m[1].length).toBeLessThanOrEqual(28);
    for (const m of text.matchAll(/--condition (\S+)/g)) expect(m[1].length).toBeLessThanOrEqual(30);
  });

  it('handles IPv6, local backends, a vip-less service and local: true', () => {
    const { result } = compile(`
services:
  - name: v6
    vip: 2001:db8::10
    port: 80
    family: ipv6
    local: true
    backends:
      - { address: 2001:db8::1, health: { check: tcp } }
      - { port: 8080 }
  - name: any
    port: 25
    interface: eth0
    backends:
      - { address: 10.0.0.1, health: { check: tcp } }
`);
    expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const v6 = result.files.find((f) => f.name === 'ip6tables-condition.rules')!.content;
    expect(v6).toContain('-j DNAT --to-destination [2001:db8::1]:80');
    expect(v6).toContain('-j REDIRECT --to-ports 8080');
    expect(v6).toContain('-A LBC-OUTPUT -d 2001:db8::10/128 -p tcp -m tcp --dport 80 -j LBC-v6');
    const v4 = result.files.find((f) => f.name === 'iptables-condition.rules')!.content;
    expect(v4).toContain('-A LBC-PREROUTING -i eth0 -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 25 -j LBC-any');
    parseRestore(v6);
    parseRestore(v4);
  });

  it('refuses too many checked backends, pointing at lbc agent', () => {
    const backends = Array.from({ length: 9 }, (_, i) => `      - { address: 10.0.0.${i + 1} }`).join('\n');
    const { result } = compile(`
services:
  - name: big
    vip: 10.1.0.1
    port: 80
    health: { check: tcp }
    backends:
${backends}
`);
    expect(result.files).toEqual([]);
    const err = result.diagnostics.find((d) => d.severity === 'error')!;
    expect(err.message).toMatch(/9 health-checked primary backends/);
    expect(err.notes?.join(' ')).toMatch(/lbc agent/);
  });

  it('refuses hash mode and sticky', () => {
    const { result } = compile(`
services:
  - name: h
    vip: 10.1.0.1
    port: 80
    mode: hash
    sticky: 10m
    backends:
      - { address: 10.0.0.1 }
      - { address: 10.0.0.2 }
`);
    const msgs = result.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message);
    expect(msgs.some((m) => /hashing/.test(m))).toBe(true);
    expect(msgs.some((m) => /affinity/.test(m))).toBe(true);
  });
});

describe('iptables-condition checker script', () => {
  it('quotes for the shell and for printf', () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(printfFormat('a%b\\c\r\n\t')).toBe('a%%b\\\\c\\r\\n\\t');
  });

  it('is valid POSIX sh (sh -n, and shellcheck when installed)', async () => {
    const { result } = compile(SEED_001);
    const f = result.files.find((x) => x.name === 'lbc-condition-check.sh')!;
    expect(f.executable).toBe(true);
    expect(f.content.startsWith('#!/bin/sh\n')).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'lbc-cond-'));
    try {
      const p = join(dir, 'check.sh');
      writeFileSync(p, f.content);
      await run('sh', ['-n', p]);
      if (await has('shellcheck')) await run('shellcheck', ['-s', 'sh', p]);
      else console.warn('shellcheck not installed: skipping the shellcheck pass');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const servers: net.Server[] = [];
  afterAll(() => {
    for (const s of servers) s.close();
  });

  it('runs one round against loopback servers and writes the condition files', async () => {
    if (!(await has('nc'))) {
      if (process.env.CI === 'true') throw new Error('nc (netcat-openbsd) is required for this test');
      console.warn('SKIPPED: nc (netcat-openbsd) is not installed');
      return;
    }
    const listen = async (onConn: (s: net.Socket) => void): Promise<number> => {
      // The checker's nc may reset a connection it is done with: a reset is not a failure of these servers.
      const srv = net.createServer((s) => {
        s.on('error', () => {});
        onConn(s);
      });
      servers.push(srv);
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      return (srv.address() as net.AddressInfo).port;
    };
    const open = await listen((s) => s.end());
    const http = (status: string) => (s: net.Socket) =>
      s.once('data', () => s.end(`HTTP/1.0 ${status}\r\nContent-Length: 0\r\n\r\n`));
    const ok200 = await listen(http('200 OK'));
    const bad503 = await listen(http('503 Service Unavailable'));
    const banner = await listen((s) => {
      s.write('220 mail ready\r\n');
      s.on('data', () => s.end('221 bye\r\n'));
    });
    const banner2 = await listen((s) => {
      s.write('220 mail ready\r\n');
      s.on('data', () => s.end('221 bye\r\n'));
    });
    const closed = await listen(() => undefined);
    await new Promise<void>((r) => servers.pop()!.close(() => r()));

    const { result } = compile(`
services:
  - name: t
    vip: 10.9.0.1
    port: 80
    health: { check: tcp, interval: 1s, timeout: 1s, rise: 3, fall: 3 }
    backends:
      - { port: ${open} }
      - { port: ${closed} }
      - { port: ${ok200}, health: { check: http, path: /health, status: 200 } }
      - { port: ${bad503}, health: { check: http, path: /health, status: 200 } }
      - { port: ${banner}, health: { check: banner, send: "QUIT\\r\\n", expect: "220" } }
      - { port: ${banner2}, health: { check: banner, send: "QUIT\\r\\n", expect: "250" }, backup: true }
`);
    expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const f = result.files.find((x) => x.name === 'lbc-condition-check.sh')!;
    const dir = mkdtempSync(join(tmpdir(), 'lbc-cond-'));
    try {
      const p = join(dir, 'check.sh');
      writeFileSync(p, f.content);
      const cond = join(dir, 'nf_condition');
      await run('mkdir', [cond]);
      const { stderr } = await run('sh', [p], { LBC_CONDITION_DIR: cond, LBC_ITERATIONS: '1' });
      const read = (i: number) => readFileSync(join(cond, `lbc-t-${i}-down`), 'utf8');
      // The first result decides at once, as in the agent: 0 = up, 1 = down.
      expect([0, 1, 2, 3, 4, 5].map(read)).toEqual(['0\n', '1\n', '0\n', '1\n', '0\n', '1\n']);
      expect(stderr).toMatch(/lbc-check: t 127\.0\.0\.1:\d+ is down/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30000);
});

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 20000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

async function has(tool: string): Promise<boolean> {
  for (const d of (process.env.PATH ?? '').split(':')) if (d && existsSync(join(d, tool))) return true;
  return false;
}
