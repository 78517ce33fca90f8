/**
 * keepalived's events script (lbc-vrrp-events), run for real with stand-ins for the commands it calls:
 * fed VRRP events through a FIFO as keepalived writes them, it must record each bucket's state, load
 * exactly the owned buckets into whichever partition is loaded (nft set, iptables chain), and drive
 * conntrackd in primary-backup.sh's order. shellcheck reads every generated script.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile, parseSpec } from '../../src/index.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const ACTIVE = `version: 1
balancers:
  mode: active-active
  id: 60
  interface: eth0
  nodes:
    - { name: n1, address: 10.0.0.11 }
    - { name: n2, address: 10.0.0.12 }
    - { name: n3, address: 10.0.0.13 }
services:
  - { name: web, vip: 10.0.0.100, port: 80, backends: [":8080"] }
`;

const FAILOVER = `version: 1
balancers:
  mode: failover
  id: 51
  interface: eth0
  sync: { interface: eth2 }
  nodes:
    - { name: lb1, address: 10.0.0.11, sync-address: 10.0.3.11 }
    - { name: lb2, address: 10.0.0.12, sync-address: 10.0.3.12 }
services:
  - { name: web, vip: 10.0.0.100, port: 80, backends: [10.0.2.50:8080] }
`;

/** A run directory holding the node's files, and a bin directory of stand-ins that log their calls. */
function setup(spec: string, node: string, loaded: { nft: boolean; iptables: boolean }): { run: string; bin: string; log: string } {
  const base = mkdtempSync(join(tmpdir(), 'lbc-events-'));
  dirs.push(base);
  const run = join(base, 'run');
  const bin = join(base, 'bin');
  execFileSync('mkdir', ['-p', run, bin]);
  const log = join(base, 'calls.log');
  const { files } = compile(parseSpec(spec, 'spec.yaml'), 'keepalived', { emit: { node, runDir: run } });
  for (const f of files) writeFileSync(join(run, f.name), f.content, { mode: f.executable ? 0o755 : 0o644 });
  // Each stand-in logs "name args" and, when given input, the input; `list` (nft) and `-L` (iptables) answer
  // as if the partition were loaded or not.
  const stub = (name: string, listing: boolean) => {
    const p = join(bin, name);
    writeFileSync(
      p,
      `#!/bin/sh\nprintf '%s %s\\n' "${name}" "$*" >>"${log}"\ncase " $* " in *' list '*|*' -L '*) exit ${listing ? 0 : 1} ;; esac\nif [ ! -t 0 ]; then sed 's/^/  | /' >>"${log}"; fi\nexit 0\n`,
    );
    chmodSync(p, 0o755);
  };
  stub('nft', loaded.nft);
  stub('iptables', loaded.iptables);
  stub('iptables-restore', true);
  stub('conntrackd', true);
  return { run, bin, log };
}

/** Feed events through the FIFO and wait for the script to finish reading them (bounded). */
async function feed(run: string, bin: string, lines: string[]): Promise<void> {
  const fifo = join(run, 'vrrp.fifo');
  execFileSync('mkfifo', [fifo]);
  const child = spawn('sh', [join(run, 'lbc-vrrp-events'), fifo], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  writeFileSync(fifo, lines.map((l) => `${l}\n`).join(''));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`events script did not finish in 20 s: ${err}`));
    }, 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`events script exited ${code}: ${err}`));
    });
  });
}

describe('keepalived events script', () => {
  it('records every bucket and loads exactly the owned ones into the nft set, in the order the events came', async () => {
    const { run, bin, log } = setup(ACTIVE, 'n1', { nft: true, iptables: false });
    await feed(run, bin, [
      'INSTANCE "lbc_60_b0" BACKUP 250',
      'INSTANCE "lbc_60_b1" BACKUP 250',
      'INSTANCE "lbc_60_b3" BACKUP 200',
      'INSTANCE "lbc_60_b0" MASTER 250',
      'INSTANCE "lbc_60_b3" MASTER 200',
      'INSTANCE "lbc_60_b1" MASTER 250',
      'INSTANCE "lbc_60_b3" BACKUP 200',
      'INSTANCE "other_instance" MASTER 100',
      'GROUP "g" MASTER 0',
    ]);
    expect(readFileSync(join(run, 'bucket.0'), 'utf8')).toBe('MASTER\n');
    expect(readFileSync(join(run, 'bucket.1'), 'utf8')).toBe('MASTER\n');
    expect(readFileSync(join(run, 'bucket.3'), 'utf8')).toBe('BACKUP\n');
    const calls = readFileSync(log, 'utf8');
    const loads = calls.split('nft -f -\n').slice(1).map((b) => b.split('\n').filter((l) => l.startsWith('  | ')).map((l) => l.slice(4)));
    // One load per bucket event, each the whole ownership at that moment.
    expect(loads).toEqual([
      ['flush set inet lbc_tier owned'],
      ['flush set inet lbc_tier owned'],
      ['flush set inet lbc_tier owned'],
      ['flush set inet lbc_tier owned', 'add element inet lbc_tier owned { 0 }'],
      ['flush set inet lbc_tier owned', 'add element inet lbc_tier owned { 0, 3 }'],
      ['flush set inet lbc_tier owned', 'add element inet lbc_tier owned { 0, 1, 3 }'],
      ['flush set inet lbc_tier owned', 'add element inet lbc_tier owned { 0, 1 }'],
    ]);
    expect(calls).not.toContain('iptables-restore');
    expect(existsSync(join(run, 'bucket.other_instance'))).toBe(false);
  });

  it('writes the iptables partition with one xt_cluster rule per owned bucket (node number = bucket + 1)', async () => {
    const { run, bin, log } = setup(ACTIVE, 'n2', { nft: false, iptables: true });
    await feed(run, bin, ['INSTANCE "lbc_60_b2" MASTER 250', 'INSTANCE "lbc_60_b5" MASTER 200']);
    const calls = readFileSync(log, 'utf8');
    const last = calls.split('iptables-restore --noflush\n').at(-1)!.split('\n').filter((l) => l.startsWith('  | ')).map((l) => l.slice(4));
    expect(last[0]).toBe('*mangle');
    expect(last[1]).toBe(':LBCT-PART - [0:0]');
    expect(last.filter((l) => / --cluster-local-node (\d+) /.test(l) && !l.includes('total-nodes 1 ')).map((l) => / --cluster-local-node (\d+) /.exec(l)![1])).toEqual(['3', '6']);
    expect(last.at(-1)).toBe('COMMIT');
    expect(calls).not.toContain('nft -f');
  });

  it('drives conntrackd as primary-backup.sh does: commit, flush, resync, bulk send on master; shorten timers and resync request on backup', async () => {
    const { run, bin, log } = setup(FAILOVER, 'lb2', { nft: false, iptables: false });
    await feed(run, bin, ['INSTANCE "lbc_51" BACKUP 240', 'INSTANCE "lbc_51" MASTER 240', 'INSTANCE "lbc_51" FAULT 240']);
    const conf = join(run, 'conntrackd.conf');
    const calls = readFileSync(log, 'utf8').split('\n').filter((l) => l.startsWith('conntrackd '));
    expect(calls).toEqual([`-C ${conf} -t`, `-C ${conf} -n`, `-C ${conf} -c`, `-C ${conf} -f`, `-C ${conf} -R`, `-C ${conf} -B`, `-C ${conf} -t`].map((a) => `conntrackd ${a}`));
    expect(readFileSync(join(run, 'state.lbc_51'), 'utf8')).toBe('FAULT\n');
  });

  it('passes shellcheck', () => {
    for (const [spec, node] of [
      [ACTIVE, 'n3'],
      [FAILOVER, 'lb1'],
    ] as const) {
      const ir = parseSpec(spec, 'spec.yaml');
      const scripts = [...compile(ir, 'keepalived', { emit: { node } }).files, ...compile(ir, 'iptables', { emit: { node } }).files].filter((f) => f.executable);
      for (const f of scripts) {
        const base = mkdtempSync(join(tmpdir(), 'lbc-sc-'));
        dirs.push(base);
        writeFileSync(join(base, f.name), f.content);
        expect(() => execFileSync('shellcheck', ['-s', 'sh', join(base, f.name)], { stdio: 'pipe' }), f.name).not.toThrow();
      }
    }
  });
});
