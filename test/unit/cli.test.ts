/** The command line as users and CI steps call it: exit codes, stdout/stderr discipline, atomic -o, stdin. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stageTextState, STATE_VERSION } from '../../src/targets/applied-state.js';

const repo = join(import.meta.dirname, '..', '..');
const lbc = (args: string[], input?: string) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'src/cli/main.ts'), ...args], { cwd: repo, input, encoding: 'utf8', timeout: 30_000 });
const tmp = mkdtempSync(join(tmpdir(), 'lbc-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const GOOD = 'version: 1\nservices:\n  - name: web\n    vip: 192.0.2.10\n    port: 80\n    backends: ["10.0.0.1:8080", "10.0.0.2:8080"]\n';

describe('lbc CLI', () => {
  it('compiles a spec to stdout, byte-identical on every run', () => {
    const a = lbc(['compile', 'fixtures/weighted-nth/spec.yaml', '--target', 'nftables']);
    const b = lbc(['compile', 'fixtures/weighted-nth/spec.yaml', '--target', 'nftables']);
    expect(a.status).toBe(0);
    expect(a.stdout).toContain('table inet lbc');
    expect(a.stdout).toBe(b.stdout);
  });

  it('reads the spec from stdin with "-"', () => {
    const r = lbc(['compile', '-', '-t', 'nftables'], GOOD);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('192.0.2.10');
  });

  it('reports bad specs as file:line:col on stderr, exit 1, nothing on stdout, no stack trace', () => {
    const r = lbc(['compile', '-', '-t', 'nftables'], GOOD.replace('port: 80', 'port: 80\n    colour: blue').replace('10.0.0.2:8080', '10.0.0.300:8080'));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^<stdin>:6:5: error: unknown field "colour"/m);
    expect(r.stderr).toMatch(/^<stdin>:7:33: error: backend address/m);
    expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it('writes -o atomically and leaves no temporary files', () => {
    const out = join(tmp, 'rules.nft');
    const r = lbc(['compile', 'fixtures/weighted-nth/spec.yaml', '-t', 'nftables', '-o', out]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    expect(readFileSync(out, 'utf8')).toBe(lbc(['compile', 'fixtures/weighted-nth/spec.yaml', '-t', 'nftables']).stdout);
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('does not touch -o when the spec is invalid', () => {
    const out = join(tmp, 'keep.nft');
    writeFileSync(out, 'previous\n');
    const r = lbc(['compile', '-', '-t', 'nftables', '-o', out], 'version: 1\nservices: 7\n');
    expect(r.status).toBe(1);
    expect(readFileSync(out, 'utf8')).toBe('previous\n');
  });

  it('check reports validity and a verdict per target', () => {
    const r = lbc(['check', 'fixtures/seed-002-web-sticky/spec.yaml']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/valid, 1 service/);
    expect(r.stdout).toMatch(/^ {2}nftables +compiles/m);
  });

  it('usage errors exit 2 with a message', () => {
    const r = lbc(['compile', 'fixtures/weighted-nth/spec.yaml', '-t', 'nosuch']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown target "nosuch"/);
    expect(lbc([]).status).toBe(2);
  });

  it('apply --dry-run prints the commands without running them', () => {
    const r = lbc(['apply', 'fixtures/weighted-nth/spec.yaml', '-t', 'nftables', '--dry-run']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/nft -f/);
  });

  it('apply loads only what changed when its record of the last load matches, and everything with --full', async () => {
    const stateDir = join(tmp, 'state');
    const spec = 'fixtures/weighted-nth/spec.yaml';
    const text = lbc(['compile', spec, '-t', 'nftables']).stdout;
    // The record a previous apply of the same spec would have left.
    await stageTextState(join(stateDir, 'nftables.state'), { version: STATE_VERSION, target: 'nftables', marker: 'ab'.repeat(32), texts: [text] }, () => {}).commit();
    const apply = (...extra: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'src/cli/main.ts'), 'apply', spec, '-t', 'nftables', '--dry-run', ...extra], {
        cwd: repo,
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, LBC_STATE_DIR: stateDir },
      });
    const same = apply();
    expect(same.status).toBe(0);
    expect(same.stderr).toMatch(/nothing changed/);
    expect(same.stdout).toContain(`delete chain inet lbc loaded_${'ab'.repeat(32)}`);
    expect(same.stdout).not.toContain('delete table');
    const full = apply('--full');
    expect(full.status).toBe(0);
    expect(full.stdout).toContain('delete table inet lbc');
  });
});
