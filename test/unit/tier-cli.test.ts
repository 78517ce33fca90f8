/** The command line of a balancer tier: --node and --run-dir on compile, apply and agent, and their errors. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '..', '..');
const main = join(repo, 'src/cli/main.ts');
const tmp = mkdtempSync(join(tmpdir(), 'lbc-tier-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const lbc = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', main, ...args], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
const SPEC = 'fixtures/seed-003-active-active/spec.yaml';

describe('lbc with a balancer tier', () => {
  it('refuses to compile a node-less ruleset, naming the nodes (usage error, nothing on stdout)', () => {
    const r = lbc(['compile', SPEC, '--target', 'nftables']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('name the one to compile for with --node');
    expect(r.stderr).toContain('nodes: node1, node2, node3');
  });

  it('compiles a node, and writes the keepalived files into -o with the scripts executable', () => {
    const out = join(tmp, 'run');
    const r = lbc(['compile', SPEC, '--target', 'keepalived', '--node', 'node1', '--run-dir', '/run/lbc-node1', '-o', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['keepalived.conf', 'lbc-vrrp-events']);
    expect(statSync(join(out, 'lbc-vrrp-events')).mode & 0o111).not.toBe(0);
    const n = lbc(['compile', SPEC, '--target', 'nftables', '--node', 'node1']);
    expect(n.status).toBe(0);
    expect(n.stdout).toContain('# ==> lbc-tier.nft <==');
  });

  it('refuses an unknown node and a run directory that is not a plain absolute path', () => {
    const r = lbc(['compile', SPEC, '--target', 'nftables', '--node', 'node4']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/no balancer node "node4".*\n.*did you mean "node1"/);
    const d = lbc(['compile', SPEC, '--target', 'keepalived', '--node', 'node1', '--run-dir', 'run/lbc']);
    expect(d.status).toBe(2);
    expect(d.stderr).toContain('--run-dir must be an absolute path');
  });

  it('shows what apply --node would do in a dry run, without touching the host', () => {
    const r = lbc(['apply', SPEC, '--target', 'nftables', '--node', 'node2', '--run-dir', join(tmp, 'dry'), '--dry-run']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('nft -f - <<EOF');
    expect(r.stdout).toContain('table inet lbc_tier {');
    expect(r.stdout).toContain('sysctl -q -w net.netfilter.nf_conntrack_tcp_loose=0');
    expect(r.stdout).toContain('ip maddr add 03:4c:42:00:00:0a dev eth0');
  });

  it('judges every target in check, the tier included', () => {
    const r = lbc(['check', SPEC]);
    expect(r.stdout).toMatch(/nftables\s+compiles/);
    expect(r.stdout).toMatch(/pf\s+refused/);
    expect(r.stdout).toMatch(/keepalived\s+compiles/);
    expect(r.stderr).toContain('cannot set up an active-active cluster of nodes');
  });
});
