/**
 * Turning backend weights into netfilter rule parameters: the slot sequence
 * for `statistic --mode nth` and HMARK, and the probabilities for
 * `statistic --mode random`. Pure functions, unit-tested on their own.
 */

/**
 * Most slots (rules walked by a new connection, in the worst case) a service may
 * expand to in mode nth or hash. Beyond this the per-connection cost and the
 * ruleset size stop being reasonable; mode random gives the same long-run shares
 * with one rule per backend.
 */
export const MAX_SLOTS = 256;

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
