/**
 * The exact weighted rotation (mode nth) as `statistic --mode nth` rules in one chain, for any weight sum.
 *
 * The plain cascade (slots.ts nthEvery) spends one rule per slot: W rules for a weight sum W, and a new
 * connection may walk all of them. Past PLAIN_MAX slots this module composes the rotation from smaller
 * cascades that follow each other in the same chain, with far fewer rules and no chain of their own
 * (every chain costs the `iptables-restore --noflush` loader far more than a rule: README Performance).
 *
 * The rule semantics everything rests on (net/netfilter/xt_statistic.c, extensions/libxt_statistic.c):
 * a rule `-m statistic --mode nth --every N --packet 0` has a counter of its own; the counter moves once
 * for every packet that reaches that match, and the rule matches the packets numbered 0, N, 2N, … of
 * those. In the nat table only the first packet of a connection is seen, so "packet" means "new
 * connection" below. A rule without the match takes everything that reaches it.
 *
 * Proof of exactness. Number the new connections of the service 0, 1, 2, … and cut them into windows of
 * W. Say a rule "sees A per window" when the connections reaching it are, in every window, the same
 * positions of the window and A of them.
 *   Lemma. If a rule with --every N sees A per window and N divides A, it takes exactly A/N per window
 *   and lets A − A/N per window through, again the same positions in every window.
 *   Proof: window w brings the rule its arrivals w·A … w·A + A − 1 (counted by its own counter). It
 *   matches the arrivals ≡ 0 (mod N); as N | A, w·A ≡ 0, so in every window it matches the arrivals
 *   0, N, 2N, … < A of that window: A/N of them, at the same positions every time. □
 * A block of rules is built for a demand: it sees A per window and must give backend i exactly d_i of
 * them (Σ d_i = A). It is, in order:
 *   1. p "peel" rules with --every A, A − 1, …, A − p + 1: rule j sees A − j per window (by the lemma,
 *      applied to the rules before it) and N = A − j divides that, so it takes exactly one;
 *   2. B rotation rules with --every K, K − 1, …, K − B + 1, where x divides A − p, K = (A − p) / x and
 *      backend i has r_i = ⌊d_i / x⌋ of them (B = Σ r_i): rule t sees (K − t)·x per window and takes x
 *      (the lemma with N = K − t);
 *   3. what gets through, (K − B)·x = c·x per window, the same positions every window: the block for
 *      the remaining demand s_i = d_i − p_i − x·r_i (Σ s_i = c·x, each s_i < x), built the same way;
 *      or, when c = 0, nothing (rule B − 1 has --every 1, so it is written without the match).
 * So every block gives every backend exactly its demand per window, and the block for the reduced
 * weights (A = W) gives backend i exactly w_i of every W consecutive new connections, from the first
 * after the rules are loaded. The plain cascade is the case p = 0, x = 1. A block with one backend left
 * is one rule without the match. test/unit/iptables-rotation.test.ts checks this by simulating the
 * emitted rules' counters, test/kernel/iptables.test.ts with real connections.
 *
 * Choosing p and x: a block costs p + B rules plus the inner block's. The search tries p ≤ MAX_PEEL and
 * every divisor x of A − p, follows the BEAM most promising per level (estimate: the inner block as a
 * two-level plan of its own, ≈ 2·√(backends · size)), and takes the cheapest; the plain cascade is
 * always a candidate, so the result is never longer than it. Deterministic: same weights, same rules.
 */
import { reduceWeights, smoothOrder } from '../weights.js';

/** Weight sums up to this stay a plain cascade: at most this many rules, walked in the smooth order. */
export const PLAIN_MAX = 32;
/** Blocks nested in each other at most; the innermost is a plain cascade. */
export const MAX_DEPTH = 4;
/** Peel rules per block at most. */
export const MAX_PEEL = 8;
/** Candidates followed further per level; deeper levels are searched in full. */
const BEAM = [4, 4, 4];
/**
 * Most rules one service's rotation may have. Not an exactness limit (every weight sum has an exact
 * plan) but a cost one: only thousands of backends come near it.
 */
export const MAX_ROTATION_RULES = 4096;

export interface RotationRule {
  /** `--every N --packet 0`; null: the rule takes everything that reaches it. */
  every: number | null;
  /** Index into the weights. */
  backend: number;
}

export interface RotationPlan {
  /** In chain order; the last one takes everything that reaches it. */
  rules: RotationRule[];
  /** The reduced weight sum: the plan repeats every `period` new connections. */
  period: number;
  /** Blocks nested in each other (1: a plain cascade). */
  depth: number;
}

/** `size`: what the block sees per window (the sum of its demand); `cost`: its rules. */
type Block =
  | { kind: 'plain'; size: number; cost: number; demand: number[] }
  | { kind: 'single'; size: number; cost: number; backend: number }
  | { kind: 'composite'; size: number; cost: number; peel: number[]; rotation: number[]; take: number; inner: Block | null };

function divisors(n: number): number[] {
  const small: number[] = [];
  const large: number[] = [];
  for (let x = 2; x * x <= n; x++) {
    if (n % x !== 0) continue;
    small.push(x);
    if (x * x !== n) large.push(n / x);
  }
  return [...small, ...large.reverse()];
}

const sum = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0);
const nonZero = (xs: readonly number[]) => xs.reduce((n, x) => n + (x > 0 ? 1 : 0), 0);

interface Candidate {
  peel: number[];
  rotation: number[];
  take: number;
  inner: number[];
  /** Rules of this block before the inner one. */
  own: number;
  lowerBound: number;
}

/** Demand `d` (sum `total`) split with `p` peel rules and rotation rules of `x` each, or null. */
function candidate(d: readonly number[], p: number, x: number): Candidate | null {
  const rotation = d.map((v) => Math.floor(v / x));
  const rest = d.map((v) => v % x);
  // Peel from the smallest remainders first: each one zeroed is a backend the inner block need not carry.
  const peel = d.map(() => 0);
  if (p > 0) {
    let left = p;
    const bySize = rest.map((_, i) => i).filter((i) => rest[i] > 0).sort((a, b) => rest[a] - rest[b] || a - b);
    for (const i of bySize) {
      if (left === 0) break;
      const t = Math.min(left, rest[i]);
      peel[i] = t;
      rest[i] -= t;
      left -= t;
    }
    if (left > 0) return null;
  }
  const rotating = sum(rotation);
  // Nothing rotated: the same problem again, only smaller by the peel; a larger peel says it better.
  if (rotating === 0) return null;
  const kids = nonZero(rest);
  const own = p + rotating;
  return {
    peel,
    rotation,
    take: x,
    inner: rest,
    own,
    lowerBound: own + kids,
  };
}

function plan(d: readonly number[], depth: number): Block {
  const total = sum(d);
  if (nonZero(d) === 1) return { kind: 'single', size: total, cost: 1, backend: d.findIndex((v) => v > 0) };
  let best: Block = { kind: 'plain', size: total, cost: total, demand: [...d] };
  // The innermost level is a plain cascade; small sums are cheapest plain anyway.
  if ((total <= PLAIN_MAX && depth === 0) || depth === MAX_DEPTH - 1 || total <= 8) return best;
  // First a pass that allocates little: the rules of each (p, x) before the inner block, and an
  // estimate; only the candidates followed are worked out in full.
  const scan: { p: number; x: number; own: number; lowerBound: number; estimate: number }[] = [];
  for (let p = 0; p <= MAX_PEEL && p < total - 1; p++) {
    // x = total − p: one rotation rule takes all that is left, for the one backend whose demand it is.
    for (const x of [...divisors(total - p), total - p]) {
      let rotating = 0;
      let kids = 0;
      for (const v of d) {
        rotating += Math.floor(v / x);
        if (v % x > 0) kids++;
      }
      if (rotating === 0) continue;
      const own = p + rotating;
      const innerSize = total - p - x * rotating;
      // The peel zeroes at most p remainders.
      const lowerBound = own + Math.max(innerSize > 0 ? 1 : 0, kids - p);
      scan.push({ p, x, own, lowerBound, estimate: own + (kids > 1 ? 2 * Math.sqrt(kids * innerSize) : kids) });
    }
  }
  scan.sort((a, b) => a.estimate - b.estimate || a.own - b.own || b.x - a.x);
  const beam = BEAM[depth] ?? Infinity;
  let followed = 0;
  for (const k of scan) {
    if (k.lowerBound >= best.cost) continue;
    const c = candidate(d, k.p, k.x);
    if (!c || c.lowerBound >= best.cost) continue;
    if (followed++ >= beam) break;
    const inner = sum(c.inner) > 0 ? plan(c.inner, depth + 1) : null;
    const cost = c.own + (inner ? inner.cost : 0);
    if (cost < best.cost) best = { kind: 'composite', size: total, cost, peel: c.peel, rotation: c.rotation, take: c.take, inner };
  }
  return best;
}

/** The block's rules appended to `rules`; returns how many blocks deep it goes. */
function build(block: Block, rules: RotationRule[]): number {
  if (block.kind === 'single') {
    rules.push({ every: null, backend: block.backend });
    return 1;
  }
  if (block.kind === 'plain') {
    const order = smoothOrder(block.demand);
    order.forEach((b, k) => rules.push({ every: k < order.length - 1 ? order.length - k : null, backend: b }));
    return 1;
  }
  const peel = sum(block.peel);
  smoothOrder(block.peel).forEach((b, j) => rules.push({ every: block.size - j, backend: b }));
  const entries = (block.size - peel) / block.take;
  smoothOrder(block.rotation).forEach((b, t) => {
    const every = entries - t;
    rules.push({ every: every === 1 ? null : every, backend: b });
  });
  return block.inner ? 1 + build(block.inner, rules) : 1;
}

const MEMO_SIZE = 1 << 16;
const memo = new Map<string, RotationPlan>();

/** The exact rotation for these weights (divided by their gcd), as nth rules for one chain. */
export function rotationPlan(weights: readonly number[]): RotationPlan {
  const d = reduceWeights(weights);
  const key = d.join(',');
  const known = memo.get(key);
  if (known) return known;
  const rules: RotationRule[] = [];
  const depth = build(plan(d, 0), rules);
  const result = { rules, period: sum(d), depth };
  // Specs repeat weight patterns across thousands of services, and the capability check and the
  // emitter ask for the same plans one after the other: keep the last MEMO_SIZE (oldest out first).
  if (memo.size >= MEMO_SIZE) memo.delete(memo.keys().next().value!);
  memo.set(key, result);
  return result;
}
