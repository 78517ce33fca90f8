/**
 * Weight arithmetic every target shares: the same shares over the shortest
 * cycle (weights divided by their gcd), and a deterministic interleaved order
 * of turns (smooth weighted round-robin), so repeated backends alternate
 * instead of coming in bursts.
 */

export function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Weights divided by their greatest common divisor: [2, 4, 6] -> [1, 2, 3]. */
export function reduceWeights(weights: readonly number[]): number[] {
  const g = weights.reduce((acc, w) => gcd(acc, w), 0) || 1;
  return weights.map((w) => w / g);
}

/**
 * Σw turns as indices into `weights`: at each step every candidate gains its
 * weight, the largest running credit wins (ties to the lower index) and pays
 * the total. Candidate i appears exactly w_i times: [5, 1, 1] -> 0 0 1 0 2 0 0.
 */
export function smoothOrder(weights: readonly number[]): number[] {
  const total = weights.reduce((s, w) => s + w, 0);
  const credit = weights.map(() => 0);
  const order: number[] = [];
  for (let step = 0; step < total; step++) {
    let best = 0;
    for (let i = 0; i < weights.length; i++) {
      credit[i] += weights[i];
      if (credit[i] > credit[best]) best = i;
    }
    credit[best] -= total;
    order.push(best);
  }
  return order;
}
