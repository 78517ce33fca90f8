/**
 * lbc as users install it: a packed tarball installs without dev dependencies and runs, as a command and as a
 * library; a production `npm ci --omit=dev` of a clone does not fail for want of the compiler.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'lbc-pkg-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const npm = (args: string[], cwd: string) =>
  spawnSync('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], { cwd, encoding: 'utf8', timeout: 240_000 });
const SPEC = join(repo, 'fixtures/weighted-nth/spec.yaml');

describe('the package', () => {
  it('packs, installs with --omit=dev, and runs as a command and a library', () => {
    const packed = npm(['pack', '--pack-destination', tmp], repo);
    expect(packed.status, packed.stderr).toBe(0);
    const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
    expect(tgz).toBeDefined();
    const app = join(tmp, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    const inst = npm(['install', '--omit=dev', join(tmp, tgz!)], app);
    expect(inst.status, inst.stderr).toBe(0);
    expect(existsSync(join(app, 'node_modules', 'typescript'))).toBe(false);
    const fromRepo = execFileSync(process.execPath, ['--import', 'tsx', join(repo, 'src/cli/main.ts'), 'compile', SPEC, '-t', 'nftables'], { cwd: repo, encoding: 'utf8' });
    const cmd = spawnSync(join(app, 'node_modules', '.bin', 'lbc'), ['compile', SPEC, '-t', 'nftables'], { cwd: repo, encoding: 'utf8', timeout: 30_000 });
    expect(cmd.status, cmd.stderr).toBe(0);
    expect(cmd.stdout).toBe(fromRepo);
    const lib = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `import { compile } from 'lbc'; import { readFileSync } from 'node:fs'; process.stdout.write(compile(readFileSync(${JSON.stringify(SPEC)}, 'utf8'), 'nftables', { file: ${JSON.stringify(SPEC)}, emit: { specPath: ${JSON.stringify(SPEC)} } }).files[0].content);`],
      { cwd: app, encoding: 'utf8', timeout: 30_000 },
    );
    expect(lib.status, lib.stderr).toBe(0);
    expect(lib.stdout).toBe(fromRepo);
  }, 300_000);

  it('a clone installs for production (npm ci --omit=dev) without the compiler', () => {
    const clone = join(tmp, 'clone');
    mkdirSync(join(clone, 'scripts'), { recursive: true });
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'scripts/prepare.mjs']) copyFileSync(join(repo, f), join(clone, f));
    const r = npm(['ci', '--omit=dev'], clone);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/TypeScript is not installed/);
  }, 300_000);
});
