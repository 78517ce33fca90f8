/**
 * `lbc apply --node` on a Linux node, against a recording ApplyContext: the tier's rules loaded with
 * exactly the buckets keepalived recorded, under the lock; the sysctl; the vips and the cluster MAC
 * added once (a second apply changes nothing) and what an earlier spec added removed; a dry run that
 * changes nothing.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile, parseSpec } from '../../src/index.js';
import { TARGETS } from '../../src/targets/registry.js';
import type { ApplyContext } from '../../src/targets/target.js';
import { applyTier } from '../../src/targets/tier/apply.js';
import { readOwned } from '../../src/targets/tier/linux.js';

const base = mkdtempSync(join(tmpdir(), 'lbc-tier-apply-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const spec = (vips: string[]) => `version: 1
balancers:
  mode: active-active
  id: 60
  interface: eth0
  nodes:
    - { name: n1, address: 10.0.0.11 }
    - { name: n2, address: 10.0.0.12 }
    - { name: n3, address: 10.0.0.13 }
services:
${vips.map((v, i) => `  - { name: s${i}, vip: ${v}, port: 80, backends: [":8080"] }`).join('\n')}
`;

/** A host whose `ip` answers from what earlier commands did, and which records every command. */
function fakeHost(dryRun = false): { ctx: ApplyContext; runs: Array<{ argv: string[]; stdin?: string }>; addrs: Set<string>; maddrs: Set<string> } {
  const runs: Array<{ argv: string[]; stdin?: string }> = [];
  const addrs = new Set<string>();
  const maddrs = new Set<string>();
  const ctx: ApplyContext = {
    dryRun,
    log: () => {},
    async run(argv, stdin) {
      runs.push({ argv, stdin });
      if (dryRun) return;
      if (argv[0] === 'ip' && argv[1] === 'addr' && argv[2] === 'add') addrs.add(argv[3]);
      if (argv[0] === 'ip' && argv[1] === 'addr' && argv[2] === 'del') addrs.delete(argv[3]);
      if (argv[0] === 'ip' && argv[1] === 'maddr' && argv[2] === 'add') maddrs.add(argv[3]);
      if (argv[0] === 'ip' && argv[1] === 'maddr' && argv[2] === 'del') maddrs.delete(argv[3]);
    },
    async query(argv) {
      if (argv.join(' ') === 'ip -o -4 addr show dev eth0') return [...addrs].map((a) => `2: eth0    inet ${a} scope global eth0\n`).join('');
      if (argv.join(' ') === 'ip maddr show dev eth0') return `2:\teth0\n${[...maddrs].map((m) => `\tlink  ${m} static\n`).join('')}`;
      throw new Error(`unexpected query ${argv.join(' ')}`);
    },
  };
  return { ctx, runs, addrs, maddrs };
}

async function applyAs(text: string, host: ReturnType<typeof fakeHost>, runDir: string): Promise<void> {
  const ir = parseSpec(text, 'aa.yaml');
  const def = TARGETS.get('nftables')!;
  const emit = { node: 'n2', runDir };
  await applyTier(def, ir, compile(ir, 'nftables', { emit }).files, host.ctx, emit);
}

describe('lbc apply --node (active-active, nftables)', () => {
  it('loads the tier with the buckets recorded as MASTER, then the sysctl, the vips and the MAC, once', async () => {
    const run = join(base, 'n2');
    mkdirSync(run, { recursive: true });
    writeFileSync(join(run, 'bucket.2'), 'MASTER\n');
    writeFileSync(join(run, 'bucket.3'), 'MASTER\n');
    writeFileSync(join(run, 'bucket.0'), 'BACKUP\n');
    writeFileSync(join(run, 'bucket.9'), 'MASTER\n'); // past the 6 buckets: a leftover of a larger cluster
    writeFileSync(join(run, 'bucket.4.tmp'), 'MASTER\n'); // a write in progress, not a state
    expect(readOwned(run, 6)).toEqual([2, 3]);
    const host = fakeHost();
    await applyAs(spec(['10.0.0.100', '10.0.0.101']), host, run);
    const [load, ...rest] = host.runs;
    expect(load.argv).toEqual(['nft', '-f', '-']);
    expect(load.stdin).toContain('delete table inet lbc_tier\n');
    expect(load.stdin!.trimEnd().split('\n').at(-1)).toBe('add element inet lbc_tier owned { 2, 3 }');
    expect(rest.map((r) => r.argv.join(' '))).toEqual([
      'sysctl -q -w net.netfilter.nf_conntrack_tcp_loose=0',
      'ip addr add 10.0.0.100/32 dev eth0',
      'ip addr add 10.0.0.101/32 dev eth0',
      'ip maddr add 03:4c:42:00:00:3c dev eth0',
    ]);
    // Again: the rules are reloaded (with the same ownership), nothing else is added.
    host.runs.length = 0;
    await applyAs(spec(['10.0.0.100', '10.0.0.101']), host, run);
    expect(host.runs.map((r) => r.argv[0])).toEqual(['nft', 'sysctl']);
    // A spec without the second vip: it goes.
    host.runs.length = 0;
    await applyAs(spec(['10.0.0.100']), host, run);
    expect(host.runs.slice(2).map((r) => r.argv.join(' '))).toEqual(['ip addr del 10.0.0.101/32 dev eth0']);
    expect([...host.addrs]).toEqual(['10.0.0.100/32']);
    expect(readFileSync(join(run, 'tier-vips'), 'utf8')).toBe('vip 10.0.0.100 eth0\nmac 03:4c:42:00:00:3c eth0\n');
  });

  it('changes nothing in a dry run and takes no lock', async () => {
    const run = join(base, 'dry');
    const host = fakeHost(true);
    await applyAs(spec(['10.0.0.100']), host, run);
    expect(host.runs.map((r) => r.argv.join(' '))).toEqual([
      'nft -f -',
      'sysctl -q -w net.netfilter.nf_conntrack_tcp_loose=0',
      'ip addr add 10.0.0.100/32 dev eth0',
      'ip maddr add 03:4c:42:00:00:3c dev eth0',
    ]);
    expect(() => readFileSync(join(run, 'tier-vips'))).toThrow();
  });

  it('waits for the events script\'s lock before reading the bucket states', async () => {
    const run = join(base, 'locked');
    mkdirSync(run, { recursive: true });
    const { holdLock } = await import('../../src/targets/tier/lock.js');
    const release = await holdLock(join(run, 'tier.lock'));
    const host = fakeHost();
    let done = false;
    const applying = applyAs(spec(['10.0.0.100']), host, run).then(() => (done = true));
    // While the script holds the lock, it records bucket 1; apply must see it.
    await new Promise((r) => setTimeout(r, 300));
    expect(done).toBe(false);
    writeFileSync(join(run, 'bucket.1'), 'MASTER\n');
    await release();
    await applying;
    expect(host.runs[0].stdin!.trimEnd().split('\n').at(-1)).toBe('add element inet lbc_tier owned { 1 }');
  });
});
