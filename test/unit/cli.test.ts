/** The command line as users and CI steps call it: exit codes, stdout/stderr discipline, safe -o, stdin. */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stageTextState, STATE_VERSION } from '../../src/targets/applied-state.js';

const repo = join(import.meta.dirname, '..', '..');
const main = join(repo, 'src/cli/main.ts');
const tmp = mkdtempSync(join(tmpdir(), 'lbc-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * A PATH whose nft, iptables-restore, ipset and conntrack only record that they were called: a test can
 * tell whether a command line changed anything without touching this host's firewall.
 */
const fakeBin = join(tmp, 'bin');
const calls = join(tmp, 'calls.log');
mkdirSync(fakeBin);
for (const tool of ['nft', 'iptables-restore', 'ip6tables-restore', 'iptables', 'ipset', 'conntrack', 'iptables-save']) {
  writeFileSync(join(fakeBin, tool), `#!/bin/sh\necho "${tool} $*" >> '${calls}'\ncat > /dev/null\nexit 0\n`);
  chmodSync(join(fakeBin, tool), 0o755);
}
const env = { ...process.env, PATH: `${fakeBin}:${process.env.PATH}`, LBC_STATE_DIR: join(tmp, 'state') };

const lbc = (args: string[], input?: string, extraEnv: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', main, ...args], { cwd: repo, input, encoding: 'utf8', timeout: 30_000, env: { ...env, ...extraEnv } });
const sh = (script: string) => spawnSync('bash', ['-c', script], { cwd: repo, encoding: 'utf8', timeout: 60_000, env });
const lbcLine = `'${process.execPath}' --import tsx '${main}'`;
const toolCalls = () => (existsSync(calls) ? readFileSync(calls, 'utf8') : '');

const GOOD = 'version: 1\nservices:\n  - name: web\n    vip: 192.0.2.10\n    port: 80\n    backends: ["10.0.0.1:8080", "10.0.0.2:8080"]\n';
const SPEC = 'fixtures/weighted-nth/spec.yaml';
const nftOut = () => lbc(['compile', SPEC, '--target', 'nftables']).stdout;

describe('lbc CLI: output and exit status', () => {
  it('compiles a spec to stdout, byte-identical on every run', () => {
    const a = lbc(['compile', SPEC, '--target', 'nftables']);
    const b = lbc(['compile', SPEC, '--target', 'nftables']);
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

  it('names the system error when the spec cannot be read', () => {
    const r = lbc(['compile', join(tmp, 'no-such.yaml'), '-t', 'nftables']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/cannot read spec ".*no-such\.yaml": no such file or directory \(ENOENT\)/);
  });

  it('prints its version, and help for one command', () => {
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
    const v = lbc(['--version']);
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toBe(pkg.version);
    for (const args of [['help', 'compile'], ['compile', '--help'], ['compile', '-h']]) {
      const h = lbc(args);
      expect(h.status).toBe(0);
      expect(h.stdout).toMatch(/lbc compile <spec>/);
      expect(h.stdout).toMatch(/--output/);
    }
  });
});

describe('lbc CLI: strict parsing, nothing runs on a usage error', () => {
  const usage = (args: string[]) => {
    rmSync(calls, { force: true });
    const r = lbc(args);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    expect(toolCalls()).toBe('');
    return r.stderr;
  };

  it('the fake tools do record a real apply (so the checks below can fail)', () => {
    rmSync(calls, { force: true });
    const r = lbc(['apply', SPEC, '-t', 'nftables']);
    expect(r.status, r.stderr).toBe(0);
    expect(toolCalls()).toMatch(/^nft -f/m);
  });

  it('refuses a mistyped apply option instead of loading the rules', () => {
    expect(usage(['apply', SPEC, '--target', 'nftables', '--dryrun'])).toMatch(/unknown option --dryrun for lbc apply[\s\S]*did you mean --dry-run\?/);
    expect(usage(['apply', SPEC, '--target', 'nftables', '--dry'])).toMatch(/unknown option --dry\b[\s\S]*did you mean --dry-run\?/);
    expect(usage(['apply', SPEC, '--target', 'nftables', '-n'])).toMatch(/unknown option -n[\s\S]*did you mean --dry-run\?/);
    expect(usage(['apply', SPEC, '--target', 'nftables', '--bogus'])).toMatch(/unknown option --bogus/);
  });

  it('refuses unknown options of compile and agent', () => {
    expect(usage(['compile', SPEC, '--target', 'nftables', '--bogus'])).toMatch(/unknown option --bogus for lbc compile/);
    expect(usage(['compile', SPEC, '--target', 'nftables', '--outptu', 'x'])).toMatch(/did you mean --output\?/);
    expect(usage(['agent', SPEC, '--target', 'nftables', '--bogus'])).toMatch(/unknown option --bogus for lbc agent/);
  });

  it('refuses unknown commands, extra arguments, missing SPEC and repeated options', () => {
    expect(usage(['comple', SPEC])).toMatch(/unknown command "comple"[\s\S]*did you mean "lbc compile"\?/);
    expect(usage(['compile', SPEC, 'extra', '-t', 'nftables'])).toMatch(/"extra" is one argument too many/);
    expect(usage(['compile'])).toMatch(/lbc compile needs SPEC/);
    expect(usage(['compile', SPEC])).toMatch(/needs --target/);
    expect(usage(['compile', SPEC, '-t', 'nftables', '-o', 'a', '-o', 'b'])).toMatch(/--output is given 2 times/);
    expect(usage(['apply', SPEC, '-t', 'nftables', '-t', 'iptables'])).toMatch(/--target is given 2 times/);
    expect(usage([])).toMatch(/name a command/);
  });

  it('suggests the target meant', () => {
    expect(usage(['compile', SPEC, '-t', 'nft'])).toMatch(/unknown target "nft"[\s\S]*did you mean "nftables"\?/);
    expect(usage(['apply', SPEC, '-t', 'iptable'])).toMatch(/did you mean "iptables"\?/);
    expect(usage(['compile', SPEC, '-t', 'nosuch'])).toMatch(/unknown target "nosuch"[\s\S]*targets: pf,/);
  });
});

describe('lbc CLI: -o never destroys what is at the path', () => {
  it('writes a regular file atomically, keeps its mode, and leaves no temporary files', () => {
    const out = join(tmp, 'rules.nft');
    writeFileSync(out, 'old\n');
    chmodSync(out, 0o640);
    const r = lbc(['compile', SPEC, '-t', 'nftables', '-o', out]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    expect(readFileSync(out, 'utf8')).toBe(nftOut());
    expect(statSync(out).mode & 0o777).toBe(0o640);
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('writes through a symlink: the link stays, the file it names changes', () => {
    const dir = join(tmp, 'links');
    mkdirSync(dir);
    writeFileSync(join(dir, 'real.nft'), 'old\n');
    chmodSync(join(dir, 'real.nft'), 0o600);
    symlinkSync('real.nft', join(dir, 'current.nft'));
    expect(lbc(['compile', SPEC, '-t', 'nftables', '-o', join(dir, 'current.nft')]).status).toBe(0);
    expect(lstatSync(join(dir, 'current.nft')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'real.nft'), 'utf8')).toBe(nftOut());
    expect(statSync(join(dir, 'real.nft')).mode & 0o777).toBe(0o600);
  });

  it('writes special files directly instead of renaming over them', () => {
    const r = sh(`${lbcLine} compile ${SPEC} -t nftables -o /dev/stdout | cat`);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(nftOut());
    expect(lstatSync('/dev/stdout').isSymbolicLink()).toBe(true);
    if (process.getuid?.() === 0) {
      // A device node of the test's own (the null device), where a rename would leave a regular file.
      const dev = join(tmp, 'null-device');
      expect(spawnSync('mknod', [dev, 'c', '1', '3']).status).toBe(0);
      expect(lbc(['compile', SPEC, '-t', 'nftables', '-o', dev]).status).toBe(0);
      expect(statSync(dev).isCharacterDevice()).toBe(true);
    }
  });

  it('"-o -" is standard output, not a file named "-"', () => {
    const r = lbc(['compile', SPEC, '-t', 'nftables', '-o', '-']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(nftOut());
    expect(existsSync(join(repo, '-'))).toBe(false);
  });

  it('creates a missing directory and says so, for one file and for several', () => {
    const one = join(tmp, 'new1', 'deeper', 'rules.nft');
    const r1 = lbc(['compile', SPEC, '-t', 'nftables', '-o', one]);
    expect(r1.status).toBe(0);
    expect(r1.stderr).toContain(`created directory ${join(tmp, 'new1', 'deeper')}`);
    expect(r1.stderr).toContain(`wrote ${one}`);
    const many = join(tmp, 'new2', 'out');
    const r2 = lbc(['compile', 'fixtures/seed-002-web-sticky/spec.yaml', '-t', 'iptables', '-o', many]);
    expect(r2.status).toBe(0);
    expect(r2.stderr).toContain(`created directory ${many}`);
    expect(readdirSync(many).sort()).toEqual(['ipset.rules', 'iptables.rules']);
  });

  it('refuses a file name for a target that writes several files, and changes nothing', () => {
    const f = join(tmp, 'single.rules');
    writeFileSync(f, 'keep\n');
    const r = lbc(['compile', 'fixtures/seed-002-web-sticky/spec.yaml', '-t', 'iptables', '-o', f]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/writes 2 files \(iptables\.rules, ipset\.rules\), so -o needs a directory/);
    expect(readFileSync(f, 'utf8')).toBe('keep\n');
  });

  it('does not touch -o when the spec is invalid', () => {
    const out = join(tmp, 'keep.nft');
    writeFileSync(out, 'previous\n');
    const r = lbc(['compile', '-', '-t', 'nftables', '-o', out], 'version: 1\nservices: [ { name: x } ]\n');
    expect(r.status).toBe(1);
    expect(readFileSync(out, 'utf8')).toBe('previous\n');
  });
});

describe('lbc CLI: I/O errors are one line, a closed pipe ends quietly', () => {
  const big = join(tmp, 'big.yaml');
  writeFileSync(
    big,
    `version: 1\nservices:\n${Array.from({ length: 3000 }, (_, i) => `  - name: s${i}\n    vip: 10.1.${Math.floor(i / 250)}.${(i % 250) + 1}\n    port: 80\n    backends: [10.0.0.1, 10.0.0.2]\n`).join('')}`,
  );

  it('exits 141 without a word when stdout is closed early', () => {
    const r = sh(`${lbcLine} compile '${big}' -t iptables | head -c 10 > /dev/null; echo "status \${PIPESTATUS[0]}" >&2`);
    expect(r.stderr.trim()).toBe('status 141');
  });

  it('reports a full disk in one line with the system message', () => {
    const r = sh(`${lbcLine} compile ${SPEC} -t nftables > /dev/full`);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot write standard output: no space left on device \(ENOSPC\)/);
  });
});

describe('lbc CLI: check', () => {
  it('exits 1 when any target it judges refuses, says which, reasons on stderr', () => {
    const r = lbc(['check', SPEC]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/valid, 1 service/);
    expect(r.stdout).toMatch(/^ {2}nftables +compiles$/m);
    expect(r.stdout).toMatch(/^ {2}pf +refused \(1 error\)$/m);
    expect(r.stdout).toMatch(/^refused by: pf, relayd, relayd-freebsd, ipnat$/m);
    expect(r.stdout).not.toMatch(/error:/);
    expect(r.stderr).toMatch(/^pf:$/m);
    expect(r.stderr).toMatch(/error: service "app": target pf cannot express/);
  });

  it('exits 0 when every named target compiles', () => {
    const r = lbc(['check', SPEC, '-t', 'nftables', '-t', 'iptables']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['fixtures/weighted-nth/spec.yaml: valid, 1 service', '  nftables            compiles', '  iptables            compiles']);
  });

  it('prints nothing on stdout for an unknown target, even after valid ones', () => {
    const r = lbc(['check', SPEC, '-t', 'nftables', '-t', 'foo']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/unknown target "foo"/);
  });

  it('writes one JSON document with --output-format json', () => {
    const r = lbc(['check', SPEC, '-t', 'pf', '-t', 'nftables', '--output-format', 'json']);
    expect(r.status).toBe(1);
    const doc = JSON.parse(r.stdout) as { valid: boolean; targets: { target: string; verdict: string; diagnostics: { code: string; line: number }[] }[]; refusedBy: string[] };
    expect(doc.valid).toBe(true);
    expect(doc.refusedBy).toEqual(['pf']);
    expect(doc.targets.map((t) => [t.target, t.verdict])).toEqual([['pf', 'refused'], ['nftables', 'compiles']]);
    expect(doc.targets[0].diagnostics.some((d) => d.code === 'LBC3001' && d.line === 10)).toBe(true);
  });
});

describe('lbc CLI: formats for CI', () => {
  const BAD = GOOD.replace('port: 80', 'port: 80\n    colour: blue');

  it('json: every diagnostic with code, severity, message, file, line, column and notes, in one document', () => {
    const r = lbc(['compile', '-', '-t', 'nftables', '--output-format', 'json'], BAD);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const doc = JSON.parse(r.stderr) as { diagnostics: unknown[] };
    expect(doc.diagnostics).toEqual([
      { code: 'LBC2001', severity: 'error', message: 'unknown field "colour" in a service', file: '<stdin>', line: 6, column: 5, notes: [expect.stringMatching(/allowed fields|did you mean/)] },
    ]);
  });

  it('github: workflow-command annotations with file, line and column', () => {
    const r = lbc(['compile', '-', '-t', 'nftables', '--output-format', 'github'], BAD);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^::error file=<stdin>,line=6,col=5,title=LBC2001::unknown field "colour" in a service%0Anote: /m);
  });

  it('compile --check: exit 0 when -o holds exactly the output, 1 with a unified diff when not, never writing', () => {
    const out = join(tmp, 'checked.nft');
    const missing = lbc(['compile', SPEC, '-t', 'nftables', '-o', out, '--check']);
    expect(missing.status).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(missing.stdout).toMatch(/^\+\+\+ .*checked\.nft/m);
    writeFileSync(out, nftOut());
    expect(lbc(['compile', SPEC, '-t', 'nftables', '-o', out, '--check']).status).toBe(0);
    expect(nftOut()).toContain('10.2.0.1:8080');
    writeFileSync(out, nftOut().replace('10.2.0.1:8080', '10.2.0.99:8080'));
    const before = statSync(out).mtimeMs;
    const diff = lbc(['compile', SPEC, '-t', 'nftables', '-o', out, '--check']);
    expect(diff.status).toBe(1);
    expect(diff.stdout).toMatch(/^-.*10\.2\.0\.99:8080/m);
    expect(diff.stdout).toMatch(/^\+.*10\.2\.0\.1:8080/m);
    expect(statSync(out).mtimeMs).toBe(before);
    expect(lbc(['compile', SPEC, '-t', 'nftables', '--check']).status).toBe(2);
  });

  it('compile --check compares every file of a directory output', () => {
    const dir = join(tmp, 'checked-dir');
    expect(lbc(['compile', 'fixtures/seed-002-web-sticky/spec.yaml', '-t', 'iptables', '-o', dir]).status).toBe(0);
    expect(lbc(['compile', 'fixtures/seed-002-web-sticky/spec.yaml', '-t', 'iptables', '-o', dir, '--check']).status).toBe(0);
    writeFileSync(join(dir, 'ipset.rules'), 'changed\n');
    const r = lbc(['compile', 'fixtures/seed-002-web-sticky/spec.yaml', '-t', 'iptables', '-o', dir, '--check']);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^--- .*ipset\.rules/m);
    expect(r.stdout).not.toMatch(/^--- .*iptables\.rules/m);
  });
});

describe('lbc CLI: schema', () => {
  it('prints the shipped JSON Schema', () => {
    const r = lbc(['schema']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(readFileSync(join(repo, 'schema/lbc-spec.schema.json'), 'utf8'));
    expect(JSON.parse(r.stdout).$schema).toBe('https://json-schema.org/draft/2020-12/schema');
  });
});

describe('lbc CLI: apply', () => {
  it('apply --dry-run prints the commands without running them', () => {
    rmSync(calls, { force: true });
    const r = lbc(['apply', SPEC, '-t', 'nftables', '--dry-run']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/nft -f/);
    expect(toolCalls()).not.toMatch(/^nft -f/m);
  });

  it('apply loads only what changed when its record of the last load matches, and everything with --full', async () => {
    const stateDir = join(tmp, 'state-incremental');
    const text = nftOut();
    // The record a previous apply of the same spec would have left.
    await stageTextState(join(stateDir, 'nftables.state'), { version: STATE_VERSION, target: 'nftables', marker: 'ab'.repeat(32), texts: [text] }, () => {}).commit();
    const apply = (...extra: string[]) => lbc(['apply', SPEC, '-t', 'nftables', '--dry-run', ...extra], undefined, { LBC_STATE_DIR: stateDir });
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
