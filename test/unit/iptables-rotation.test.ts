import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_DEPTH, PLAIN_MAX, rotationPlan, type RotationPlan } from '../../src/targets/iptables/rotation.js';
import { expandSlots, nthEvery, reduceWeights } from '../../src/targets/iptables/slots.js';
import { compileForTarget } from '../../src/targets/target.js';
import { iptablesTarget } from '../../src/targets/iptables/index.js';
import { FLAT_MAX } from '../../src/targets/iptables/tree.js';
import { ir, type SvcInput } from './iptables-ir.js';
import { NatSim } from './iptables-sim.js';

/** The plan's rules run as xt_statistic runs them: a counter per rule, moved by every packet that reaches it. */
function simulatePlan(plan: RotationPlan, connections: number): number[] {
  const counters = plan.rules.map(() => 0);
  const out: number[] = [];
  for (let n = 0; n < connections; n++) {
    const k = plan.rules.findIndex((r, i) => r.every === null || counters[i]++ % r.every === 0);
    if (k < 0) throw new Error(`connection ${n} fell off the end`);
    out.push(plan.rules[k].backend);
  }
  return out;
}

/** Every window of W = Σ reduced weights consecutive connections gives backend i exactly w_i. */
function expectExactWindows(weights: number[], chosen: (number | string | null)[], key: (i: number) => number | string = (i) => i) {
  const reduced = reduceWeights(weights);
  const W = reduced.reduce((s, w) => s + w, 0);
  expect(chosen.length % W).toBe(0);
  for (let start = 0; start < chosen.length; start += W) {
    const win = chosen.slice(start, start + W);
    reduced.forEach((w, i) => expect(win.filter((c) => c === key(i)).length).toBe(w));
  }
}

describe('composed nth rotation (rotation.ts)', () => {
  it('is exact for any weights: every window of W new connections gives backend i exactly w_i (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 10 }), (weights) => {
        const plan = rotationPlan(weights);
        expect(plan.period).toBe(reduceWeights(weights).reduce((s, w) => s + w, 0));
        expectExactWindows(weights, simulatePlan(plan, 2 * plan.period));
      }),
      { numRuns: 150 },
    );
  });

  it('keeps the plain cascade up to PLAIN_MAX slots, rule for rule as before', () => {
    for (const weights of [[1], [3, 1, 2], [5, 1, 1], [7, 9, 16]]) {
      const plan = rotationPlan(weights);
      const slots = expandSlots(weights);
      expect(slots.length).toBeLessThanOrEqual(PLAIN_MAX);
      const every = nthEvery(slots.length);
      expect(plan.rules).toEqual(slots.map((b, k) => ({ every: k < every.length ? every[k] : null, backend: b })));
    }
  });

  it('needs far fewer rules than slots past PLAIN_MAX, all in the service chain', () => {
    const cases: [number[], number][] = [
      [[100, 7, 3], 12],
      [[300, 7, 3], 16],
      [[999, 1], 3],
      [[598, 300, 543, 988, 673, 530, 870, 916], 90],
      [[1000, 999, 998, 997, 13, 11, 7, 5, 3, 2], 150],
    ];
    for (const [weights, bound] of cases) {
      const plan = rotationPlan(weights);
      expect(plan.depth).toBeLessThanOrEqual(MAX_DEPTH);
      expect(plan.rules.length).toBeLessThan(bound);
      expect(plan.rules.length).toBeLessThan(plan.period);
      expectExactWindows(weights, simulatePlan(plan, 2 * plan.period));
      // Every --every value is one the kernel takes (libxt_statistic: --packet 0 < --every), and only the last rule has none.
      plan.rules.forEach((r, i) => expect(r.every === null ? i === plan.rules.length - 1 : r.every >= 2).toBe(true));
    }
    // [999, 1]: the one connection for the small backend is peeled off, the rest needs one rule.
    expect(rotationPlan([999, 1]).rules).toEqual([{ every: 1000, backend: 1 }, { every: null, backend: 0 }]);
  });

  it('is deterministic and depends only on the weights divided by their gcd', () => {
    expect(rotationPlan([600, 14, 6])).toEqual(rotationPlan([300, 7, 3]));
    expect(JSON.stringify(rotationPlan([271, 5, 3]))).toBe(JSON.stringify(rotationPlan([271, 5, 3])));
  });

  it('the emitted rules are exact in a simulation of their counters', () => {
    const weights = [598, 300, 543, 988];
    const backends = weights.map((weight, i) => ({ address: `10.0.0.${i + 1}`, port: 8080, weight }));
    const out = compileForTarget(iptablesTarget, ir({ name: 'big', vip: '192.0.2.1', port: 80, backends })).files[0].content;
    const W = rotationPlan(weights).period;
    expect(out).toContain(`exact rotation over ${W} connections in ${rotationPlan(weights).rules.length} rules`);
    // No chain besides the dispatch and the service's own.
    expect([...out.matchAll(/^:(\S+)/gm)].map((m) => m[1])).toEqual(['LBC-PREROUTING', 'LBC-S-big']);
    const sim = new NatSim(out);
    const chosen = Array.from({ length: 2 * W }, () => sim.connect('192.0.2.1', 'tcp', 80));
    expectExactWindows(weights, chosen, (i) => `10.0.0.${i + 1}:8080`);
  });

  it('inline services of a dispatch tree keep exact composed rotations, connections interleaved', () => {
    const vip = (i: number) => `10.96.${(i >> 8) & 255}.${i & 255}`;
    const specs: SvcInput[] = Array.from({ length: FLAT_MAX + 40 }, (_, i) => ({
      name: `s${i}`,
      vip: vip(i + 1),
      port: 80,
      backends: [0, 1, 2].map((j) => ({ address: `10.64.${i}.${j + 1}`, port: 8080, weight: i % 3 === 0 ? [700, 255, 33][j] : 1 + j })),
    }));
    const out = compileForTarget(iptablesTarget, ir(...specs)).files[0].content;
    // The big-weight services have no chain of their own: their composed rotation sits in their leaf.
    expect(out).not.toMatch(/^:LBC-S-/m);
    expect(out).toMatch(/^# service s0: .*exact rotation over 988 connections/m);
    const sim = new NatSim(out);
    const picked = [0, 3, 6, 7, 9, 10];
    const seen = new Map<number, (string | null)[]>(picked.map((i) => [i, []]));
    const W = (i: number) => rotationPlan(specs[i].backends.map((b) => b.weight!)).period;
    const target = (i: number) => 2 * W(i);
    const done = () => picked.every((i) => seen.get(i)!.length === target(i));
    for (let k = 0; !done() && k < 40_000; k++) {
      const i = picked[(k * 5 + ((k * k) % 7)) % picked.length];
      const got = seen.get(i)!;
      if (got.length < target(i)) got.push(sim.connect(vip(i + 1), 'tcp', 80));
    }
    for (const i of picked) {
      expect(seen.get(i)!.length).toBe(target(i));
      expectExactWindows(specs[i].backends.map((b) => b.weight!), seen.get(i)!, (b) => `10.64.${i}.${b + 1}:8080`);
    }
  });
});
