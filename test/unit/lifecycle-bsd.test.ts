/**
 * remove, status, plan and the apply record on the BSD targets, against a recording context: the commands
 * must name only lbc's anchor or lbc's recorded rules, never a flush of the host's states or translations.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/index.js';
import { TARGETS } from '../../src/targets/registry.js';
import type { ApplyContext } from '../../src/targets/target.js';

const dir = mkdtempSync(join(tmpdir(), 'lbc-bsd-life-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function recorder(stateDir: string, answers: Record<string, string> = {}) {
  const ran: string[] = [];
  const ctx: ApplyContext = {
    dryRun: false,
    stateDir,
    log: () => {},
    run: async (argv, stdin) => {
      ran.push(`${argv.join(' ')}${stdin ? ` <<< ${stdin.trim()}` : ''}`);
    },
    query: async (argv) => answers[argv.join(' ')] ?? '',
  };
  return { ctx, ran };
}

const spec = (backends: string) => `version: 1\nservices:\n  - name: web\n    vip: 192.0.2.10\n    port: 80\n    interface: em0\n    backends: [${backends}]\n`;

describe('pf: remove, status, plan', () => {
  for (const name of ['pf', 'pf-openbsd']) {
    it(`${name}: apply records the load; remove flushes only anchor "lbc" and drops the record`, async () => {
      const stateDir = join(dir, name);
      const def = TARGETS.get(name)!;
      const { files } = compile(spec('10.0.0.1, 10.0.0.2'), name);
      const a = recorder(stateDir);
      await def.apply!(files, a.ctx);
      expect(a.ran.some((l) => l.startsWith('pfctl -a lbc -f -'))).toBe(true);
      expect(readFileSync(join(stateDir, `${name}.state`), 'utf8')).toContain('10.0.0.2');
      const plan = await def.plan!(compile(spec('10.0.0.1, 10.0.0.3'), name).files, recorder(stateDir).ctx);
      expect(plan.unchanged).toBe(false);
      expect(plan.diff).toMatch(/^-.*10\.0\.0\.2/m);
      expect(plan.diff).toMatch(/^\+.*10\.0\.0\.3/m);
      expect((await def.plan!(files, recorder(stateDir).ctx)).unchanged).toBe(true);
      const st = await def.status!(recorder(stateDir, { 'pfctl -a lbc -s rules': 'pass in quick ...\n', 'pfctl -a lbc -s nat': 'rdr ...\n' }).ctx);
      expect(st.kernel).toBe('unknown');
      const r = recorder(stateDir);
      await def.remove!(r.ctx);
      // pfctl.c: -F all with an anchor clears that anchor's rules, nat and tables; states only without one.
      expect(r.ran).toEqual(['pfctl -a lbc -F all']);
      expect((await def.status!(recorder(stateDir).ctx)).recorded).toBeNull();
    });
  }
});

describe('ipnat: remove and re-apply from the record', () => {
  const def = TARGETS.get('ipnat')!;
  const stateDir = join(dir, 'ipnat');

  it('apply removes the rules of the last apply that the new spec no longer has', async () => {
    await def.apply!(compile(spec('10.0.0.1, 10.0.0.2'), 'ipnat').files, recorder(stateDir).ctx);
    const r = recorder(stateDir);
    await def.apply!(compile(spec('10.0.0.1, 10.0.0.3'), 'ipnat').files, r.ctx);
    const removed = r.ran.filter((l) => l.startsWith('ipnat -r') || l.startsWith('ipf -r'));
    // The rules of the new file are removed first (apply's idempotence), then the stale ones: 10.0.0.2 is among them.
    expect(removed.some((l) => l.includes('10.0.0.2'))).toBe(true);
    const added = r.ran.filter((l) => /^ipnat -f -/.test(l)).join('\n');
    expect(added).toContain('10.0.0.3');
    expect(added).not.toContain('10.0.0.2');
  });

  it('remove takes out exactly the recorded rules, one at a time, never a flush', async () => {
    const r = recorder(stateDir);
    await def.remove!(r.ctx);
    expect(r.ran.length).toBeGreaterThan(0);
    for (const l of r.ran) expect(l).toMatch(/^(ipnat|ipf) -r -f - <<< (rdr|pass) /);
    expect(r.ran.join('\n')).toContain('10.0.0.3');
    expect(r.ran.join('\n')).not.toMatch(/ -F| -C/);
    const again = recorder(stateDir);
    await def.remove!(again.ctx);
    expect(again.ran).toEqual([]);
  });
});
