/**
 * Turning backend weights into netfilter rule parameters: the slot sequence of
 * the plain `statistic --mode nth` cascade (rotation.ts composes larger ones),
 * the aligned blocks of HMARK values for mode hash, and the probabilities for
 * `statistic --mode random`. Pure functions, unit-tested on their own.
 */

import { reduceWeights, smoothOrder } from '../weights.js';

export { gcd, reduceWeights } from '../weights.js';

/** Number of slots (W = sum of the reduced weights). */
export function slotCount(weights: readonly number[]): number {
  return reduceWeights(weights).reduce((s, w) => s + w, 0);
}

/**
 * The W slots as indices into `weights`, interleaved by smooth weighted round
 * robin: at each step every candidate gains its weight, the largest total wins
 * (ties to the lower index) and pays W. Over W slots candidate i appears exactly
 * w_i times, and no candidate gets long runs: [5, 1, 1] -> 0 0 1 0 2 0 0.
 */
export function expandSlots(weights: readonly number[]): number[] {
  return smoothOrder(reduceWeights(weights));
}

/**
 * `--every` values of the nth cascade for W slots: W, W-1, ..., 2 (the last
 * slot is the unconditional rule). Rule k sees only the connections rules
 * 0..k-1 let through, so with `--packet 0` it takes the first of every W-k of
 * them, and each window of W new connections fills each slot exactly once.
 * (net/netfilter/xt_statistic.c: one counter per rule, reset when the rule is
 * created.)
 */
export function nthEvery(slots: number): number[] {
  const out: number[] = [];
  for (let every = slots; every >= 2; every--) out.push(every);
  return out;
}

/** One `-m mark --mark VALUE/MASK` match of a hash service: the HMARK values offset … offset + size − 1. */
export interface MarkBlock {
  /** First value of the block (0-based, before the mark base is added). */
  offset: number;
  /** A power of two; the block is aligned to it, so one value/mask match covers it. */
  size: number;
  /** Index into the weights. */
  backend: number;
}

/**
 * The HMARK values 0 … W−1 (W the reduced weight sum, HMARK's --hmark-mod) shared out as aligned
 * power-of-two blocks: backend i owns one block per 1-bit of its reduced weight w_i, so exactly w_i of
 * the W values, in popcount(w_i) blocks. Blocks are laid out largest first; every block then starts at a
 * multiple of its size (the sizes before it are larger powers of two, so their sum is one), which is what
 * a value/mask match needs. So a hash service needs Σ popcount(w_i) mark rules (at most 10 per backend
 * for weights up to 1000) instead of one per value, with exactly the same shares.
 */
export function markBlocks(weights: readonly number[]): MarkBlock[] {
  const pieces: { size: number; backend: number }[] = [];
  reduceWeights(weights).forEach((w, backend) => {
    for (let bit = 30; bit >= 0; bit--) if (w & (2 ** bit)) pieces.push({ size: 2 ** bit, backend });
  });
  pieces.sort((a, b) => b.size - a.size || a.backend - b.backend);
  let offset = 0;
  return pieces.map((p) => {
    const block = { offset, size: p.size, backend: p.backend };
    offset += p.size;
    return block;
  });
}

/**
 * `--probability` values of the random cascade, printed with 10 decimals:
 * p_i = w_i / (w_i + ... + w_{n-1}) for every backend but the last, whose rule
 * is unconditional. Each rule sees only what the earlier ones passed on, so
 * backend i is chosen with probability w_i / W overall. The kernel stores
 * p * 2^31 (xt_statistic), far finer than 10 decimals.
 */
export function randomProbabilities(weights: readonly number[]): string[] {
  const out: string[] = [];
  let rest = weights.reduce((s, w) => s + w, 0);
  for (let i = 0; i < weights.length - 1; i++) {
    out.push((weights[i] / rest).toFixed(10));
    rest -= weights[i];
  }
  return out;
}
