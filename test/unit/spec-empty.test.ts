/** `services: []` is a valid spec: every target writes a ruleset that balances nothing (relayd, which refuses one, says so). */
import { describe, expect, it } from 'vitest';
import { parseIpf, parseIpnat } from '../../grammars/ipnat/index.js';
import { parsePf } from '../../grammars/pf/index.js';
import { checkSpec, compile, LbcError, TARGETS, type TargetName } from '../../src/index.js';

const EMPTY = 'version: 1\nservices: []\n';

describe('a spec without services', () => {
  it('is valid, in YAML and JSON', () => {
    for (const [text, file] of [[EMPTY, 'e.yaml'], ['{"version": 1, "services": []}', 'e.json']]) {
      const r = checkSpec(text, file);
      expect(r.diagnostics).toEqual([]);
      expect(r.ir).toEqual({ file, services: [] });
    }
  });

  const ir = checkSpec(EMPTY, 'e.yaml').ir!;
  const files = (target: TargetName) => compile(ir, target, { emit: { specPath: '/etc/lbc/e.yaml' } }).files;

  it('compiles for every target but relayd (both flavours), which refuses it with the reason', () => {
    for (const t of TARGETS.keys() as IterableIterator<TargetName>) {
      if (t.startsWith('relayd')) {
        const e = (() => {
          try {
            files(t);
          } catch (err) {
            return err as LbcError;
          }
          throw new Error(`${t} compiled an empty spec`);
        })();
        expect(e).toBeInstanceOf(LbcError);
        expect(e.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([expect.stringMatching(new RegExp(`^LBC3005 target ${t} cannot compile a spec without services: .*no actions, nothing to do`))]);
        continue;
      }
      if (t === 'keepalived') {
        // keepalived configures the nodes of a tier; without a balancers block it has nothing to write, and says so.
        const r = compile(ir, t, { emit: { specPath: '/etc/lbc/e.yaml' } });
        expect(r.files).toEqual([]);
        expect(r.diagnostics.map((d) => d.code)).toEqual(['LBC3013']);
        continue;
      }
      expect(files(t).length, t).toBeGreaterThan(0);
    }
  });

  it('gives BSD rulesets their grammars read back, with no rule in them', () => {
    expect(parsePf(files('pf')[0].content, 'freebsd').statements).toEqual([]);
    expect(parsePf(files('pf-openbsd')[0].content, 'openbsd').statements).toEqual([]);
    expect(parsePf(files('pf-freebsd15')[0].content, 'openbsd').statements).toEqual([]);
    const [ipnat, ipf] = files('ipnat');
    expect(ipnat.name).toBe('ipnat.rules');
    parseIpnat(ipnat.content);
    parseIpf(ipf.content);
    expect(`${ipnat.content}${ipf.content}`).not.toMatch(/^(rdr|pass)/m);
  });
});
