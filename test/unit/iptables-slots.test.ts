import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { expandSlots, gcd, markBlocks, nthEvery, randomProbabilities, reduceWeights, slotCount } from '../../src/targets/iptables/slots.js';

/** What the kernel does with the nth cascade (xt_statistic: one counter per rule, --packet 0 matches first). */
function simulateNth(slots: number, connections: number): number[] {
  const every = nthEvery(slots);
  const counters = every.map(() => 0); // packets seen by each rule
  const chosen: number[] = [];
  for (let c = 0; c < connections; c++) {
    let slot = every.length; // the unconditional last rule
    for (let k = 0; k < every.length; k++) {
      const seen = counters[k]++;
      if (seen % every[k] === 0) {
        slot = k;
        break;
      }
    }
    chosen.push(slot);
  }
  return chosen;
}

describe('weights to slots', () => {
  it('reduces by the gcd', () => {
    expect(gcd(12, 18)).toBe(6);
    expect(reduceWeights([2, 4, 6])).toEqual([1, 2, 3]);
    expect(reduceWeights([5])).toEqual([1]);
    expect(slotCount([100, 200, 300])).toBe(6);
    expect(slotCount([3, 1, 2])).toBe(6);
  });

  it('interleaves smoothly (smooth weighted round robin)', () => {
    expect(expandSlots([5, 1, 1])).toEqual([0, 0, 1, 0, 2, 0, 0]);
    expect(expandSlots([1, 1, 1])).toEqual([0, 1, 2]);
    expect(expandSlots([2, 1])).toEqual([0, 1, 0]);
    expect(expandSlots([4, 2])).toEqual([0, 1, 0]);
  });

  it('gives backend i exactly w_i of the W slots (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 10 }), (weights) => {
        const reduced = reduceWeights(weights);
        const slots = expandSlots(weights);
        expect(slots.length).toBe(slotCount(weights));
        reduced.forEach((w, i) => expect(slots.filter((s) => s === i).length).toBe(w));
      }),
    );
  });

  it('the nth cascade fills every slot exactly once per window of W connections (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 5 }), (w, k) => {
        const chosen = simulateNth(w, w * k);
        for (let win = 0; win < k; win++) {
          expect([...chosen.slice(win * w, win * w + w)].sort((a, b) => a - b)).toEqual(Array.from({ length: w }, (_, i) => i));
        }
      }),
    );
    expect(nthEvery(1)).toEqual([]);
    expect(nthEvery(4)).toEqual([4, 3, 2]);
  });

  it('random probabilities multiply out to w_i / W', () => {
    expect(randomProbabilities([1, 1, 1])).toEqual(['0.3333333333', '0.5000000000']);
    expect(randomProbabilities([3, 1, 2])).toEqual(['0.5000000000', '0.3333333333']);
    expect(randomProbabilities([7])).toEqual([]);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 30 }), (weights) => {
        const p = randomProbabilities(weights).map(Number);
        const total = weights.reduce((s, w) => s + w, 0);
        let reach = 1;
        weights.forEach((w, i) => {
          const take = i < p.length ? p[i] : 1;
          expect(Math.abs(reach * take - w / total)).toBeLessThan(1e-8);
          reach *= 1 - take;
        });
      }),
    );
  });

  it('mark blocks: aligned powers of two, backend i owning exactly w_i of the W values (property)', () => {
    expect(markBlocks([2, 1])).toEqual([{ offset: 0, size: 2, backend: 0 }, { offset: 2, size: 1, backend: 1 }]);
    expect(markBlocks([300, 7, 3]).map((b) => b.size)).toEqual([256, 32, 8, 4, 4, 2, 2, 1, 1]);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 12 }), (weights) => {
        const reduced = reduceWeights(weights);
        const blocks = markBlocks(weights);
        let next = 0;
        const owned = reduced.map(() => 0);
        for (const b of blocks) {
          expect(b.offset).toBe(next); // contiguous from 0: every value 0 … W−1 has one owner
          expect(b.size & (b.size - 1)).toBe(0);
          expect(b.offset % b.size).toBe(0);
          next += b.size;
          owned[b.backend] += b.size;
        }
        expect(next).toBe(slotCount(weights));
        expect(owned).toEqual(reduced);
        // One block per 1-bit of each reduced weight.
        expect(blocks.length).toBe(reduced.reduce((s, w) => s + w.toString(2).replace(/0/g, '').length, 0));
      }),
    );
  });
});
