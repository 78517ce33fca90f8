/**
 * Golden (baseline) tests: fixtures/NAME/spec.{yaml,json} compiled for every
 * registered target must equal fixtures/NAME/expected.TARGET (the output as
 * `lbc compile` prints it) and fixtures/NAME/expected.TARGET.err (diagnostics,
 * present only when there are some, e.g. a refusal). A missing or different
 * baseline fails; `npm run golden:accept` rewrites them, and every rewritten
 * file must be reviewed against the target's manual before it is committed.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSpec, formatDiagnostic, LbcError, TARGETS } from '../../src/index.js';
import { compileForTarget } from '../../src/targets/target.js';
import { joinForStdout } from '../../src/cli/io.js';

/** LBC_ACCEPT_GOLDEN=1 rewrites every baseline; LBC_ACCEPT_GOLDEN=pf,nftables only those targets'. */
const acceptList = (process.env.LBC_ACCEPT_GOLDEN ?? '').split(',').filter(Boolean);
const accepts = (target: string) => acceptList.includes('1') || acceptList.includes(target);
const root = join(import.meta.dirname, '..', '..', 'fixtures');

const fixtures = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

function specOf(dir: string): string {
  for (const n of ['spec.yaml', 'spec.json']) if (existsSync(join(root, dir, n))) return n;
  throw new Error(`fixture ${dir} has no spec.yaml or spec.json`);
}

function check(path: string, actual: string | null, accept: boolean): void {
  if (accept) {
    if (actual === null) rmSync(path, { force: true });
    else writeFileSync(path, actual);
    return;
  }
  if (actual === null) {
    expect(existsSync(path), `${path} should not exist`).toBe(false);
    return;
  }
  expect(existsSync(path), `missing baseline ${path}: review the output, then run npm run golden:accept`).toBe(true);
  expect(actual).toBe(readFileSync(path, 'utf8'));
}

describe('golden outputs', () => {
  it('has fixtures and targets', () => {
    expect(fixtures.length).toBeGreaterThan(5);
    expect(TARGETS.size).toBeGreaterThan(0);
  });
  for (const fx of fixtures) {
    describe(fx, () => {
      const specName = specOf(fx);
      const rel = `fixtures/${fx}/${specName}`;
      const { ir, diagnostics } = checkSpec(readFileSync(join(root, fx, specName), 'utf8'), rel);
      it('is a valid spec', () => {
        expect(diagnostics.map(formatDiagnostic)).toEqual([]);
        expect(ir).not.toBeNull();
      });
      for (const target of [...TARGETS.values()]) {
        it(`compiles for ${target.name} as the baseline says`, () => {
          let out: string | null = null;
          let diags;
          try {
            // An absolute path stands in for where the spec would live on a host (the systemd unit needs one).
            // options.json: further emit options of the fixture (a tier's --node).
            const extra = existsSync(join(root, fx, 'options.json')) ? (JSON.parse(readFileSync(join(root, fx, 'options.json'), 'utf8')) as object) : {};
            const r = compileForTarget(target, ir!, { specPath: `/etc/lbc/${fx}/${specName}`, ...extra });
            diags = r.diagnostics;
            // No files at all (a target with nothing to write for this spec): no baseline, only the notes.
            if (!r.diagnostics.some((d) => d.severity === 'error') && r.files.length > 0) out = joinForStdout(r.files);
          } catch (e) {
            if (!(e instanceof LbcError)) throw e;
            diags = e.diagnostics;
          }
          const err = diags.length ? diags.map(formatDiagnostic).join('\n') + '\n' : null;
          check(join(root, fx, `expected.${target.name}`), out, accepts(target.name));
          check(join(root, fx, `expected.${target.name}.err`), err, accepts(target.name));
        });
      }
    });
  }
});
