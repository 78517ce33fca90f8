import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../src/health/check.js';
import { INITIAL_STATE, step, type BackendState, type Health } from '../../src/health/state.js';

const OK: CheckResult = { ok: true };
const BAD = (reason = 'connection refused'): CheckResult => ({ ok: false, reason });

/** Feed results; return the health after each one and the transition lines. */
function run(results: CheckResult[], rise = 2, fall = 3, from: BackendState = INITIAL_STATE) {
  let s = from;
  const health: Health[] = [];
  const lines: string[] = [];
  for (const r of results) {
    const out = step(s, r, { rise, fall });
    s = out.state;
    health.push(s.health);
    if (out.transition) lines.push(out.transition.why);
  }
  return { health, lines, state: s };
}

describe('health state machine', () => {
  it('decides on the first check: up when it passes, down at once when it fails', () => {
    expect(run([OK]).health).toEqual(['up']);
    expect(run([OK]).lines).toEqual(['up (first check passed)']);
    expect(run([BAD()]).health).toEqual(['down']);
    expect(run([BAD('status 503 (expected 200)')]).lines).toEqual(['down (first check failed: status 503 (expected 200))']);
  });

  it('goes down after exactly `fall` consecutive failures', () => {
    const r = run([OK, BAD(), BAD(), BAD()], 2, 3);
    expect(r.health).toEqual(['up', 'up', 'up', 'down']);
    expect(r.lines[1]).toBe('down (3 failures: connection refused)');
  });

  it('comes up after exactly `rise` consecutive successes', () => {
    const r = run([BAD(), OK, OK], 2, 3);
    expect(r.health).toEqual(['down', 'down', 'up']);
    expect(r.lines[1]).toBe('up (2 successes)');
    expect(run([BAD(), OK], 1, 1).lines[1]).toBe('up (1 success)');
  });

  it('fall 1 / rise 1 follow every result', () => {
    expect(run([OK, BAD(), OK, BAD()], 1, 1).health).toEqual(['up', 'down', 'up', 'down']);
    expect(run([OK, BAD()], 1, 1).lines[1]).toBe('down (1 failure: connection refused)');
  });

  it('a flapping backend keeps its state: a result of the other kind resets the streak', () => {
    const flap = [OK, BAD(), BAD(), OK, BAD(), BAD(), OK, BAD(), BAD(), OK];
    expect(run(flap, 2, 3).health.every((h) => h === 'up')).toBe(true);
    const downFlap = [BAD(), OK, BAD(), OK, BAD(), OK, BAD()];
    expect(run(downFlap, 2, 3).health.every((h) => h === 'down')).toBe(true);
    expect(run(downFlap, 2, 3).lines).toHaveLength(1);
  });

  it('reports the latest failure reason', () => {
    const r = run([OK, BAD('timeout'), BAD('connection reset')], 2, 2);
    expect(r.lines[1]).toBe('down (2 failures: connection reset)');
  });

  it('matches a reference model on every sequence of 8 results', () => {
    for (let bits = 0; bits < 256; bits++) {
      const seq = Array.from({ length: 8 }, (_, i) => ((bits >> i) & 1 ? OK : BAD()));
      for (const [rise, fall] of [[1, 1], [2, 3], [3, 2]]) {
        // Reference: count the trailing run of results that disagree with the state.
        let h: Health = 'unknown';
        let run2 = 0;
        const expected: Health[] = [];
        for (const r of seq) {
          if (h === 'unknown') {
            h = r.ok ? 'up' : 'down';
            run2 = 0;
          } else if ((h === 'up') === r.ok) run2 = 0;
          else if (++run2 >= (h === 'up' ? fall : rise)) {
            h = h === 'up' ? 'down' : 'up';
            run2 = 0;
          }
          expected.push(h);
        }
        expect(run(seq, rise, fall).health).toEqual(expected);
      }
    }
  });
});
