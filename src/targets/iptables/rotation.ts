/**
 * The exact weighted rotation (mode nth) as `statistic --mode nth` rules, for any weight sum.
 *
 * The plain cascade (slots.ts nthEvery) spends one rule per slot: W rules for a weight sum W, and a new
 * connection may walk all of them. Past PLAIN_MAX slots this module composes the rotation from smaller
 * cascades in up to MAX_DEPTH chains, whose rotations compose exactly.
 *
 * The rule semantics everything rests on (net/netfilter/xt_statistic.c, extensions/libxt_statistic.c):
 * a rule `-m statistic --mode nth --every N --packet 0` has a counter of its own; the counter moves once
 * for every packet that reaches that match, and the rule matches the packets numbered 0, N, 2N, … of
 * those. In the nat table only the first packet of a connection is seen, so "packet" means "new
 * connection" below. A rule without the match takes everything that reaches it. A packet that jumps to
 * a chain below is translated there (every such chain ends in an unconditional rule), so it never comes
 * back to the rules after the jump.
 *
 * Proof of exactness. Number the new connections of the service 0, 1, 2, … and cut them into windows of
 * W. Say a rule "sees A per window" when the connections reaching it are, in every window, the same
 * positions of the window and A of them.
 *   Lemma. If a rule with --every N sees A per window and N divides A, it takes exactly A/N per window
 *   and lets A − A/N per window through, again the same positions in every window.
 *   Proof: window w brings the rule its arrivals w·A … w·A + A − 1 (counted by its own counter). It
 *   matches the arrivals ≡ 0 (mod N); as N | A, w·A ≡ 0, so in every window it matches the arrivals
 *   0, N, 2N, … < A of that window: A/N of them, at the same positions every time. □
 * A chain of this plan is built for a demand: it sees A per window and must give backend i exactly d_i
 * of them (Σ d_i = A). It holds, in order:
 *   1. p "peel" rules with --every A, A − 1, …, A − p + 1: rule j sees A − j per window (by the lemma,
 *      applied to the rules before it) and N = A − j divides that, so it takes exactly one;
 *   2. a rotation over K = (A − p) / x entries, x a divisor of A − p chosen below: --every K, K − 1, …, 2
 *      and a last rule without the match. Entry t sees (K − t)·x per window and takes x (the lemma with
 *      N = K − t; the last entry takes the x left). An entry either translates to a backend or jumps to
 *      the one child chain of this chain;
 *   3. nothing else.
 * With r_i = ⌊d_i / x⌋ entries for backend i, c entries for the child and p_i peel rules for backend i,
 * backend i gets p_i + x·r_i + (what the child gives it) per window. The child sees c·x per window
 * (the union of its entries' takes, the same positions every window) and is built, by the same
 * construction, for the demand s_i = d_i − p_i − x·r_i, with Σ s_i = c·x. So every chain gives every
 * backend exactly its demand per window, and the root (demand = the reduced weights, A = W) gives
 * backend i exactly w_i of every W consecutive new connections, from the first after the rules are
 * loaded. The plain cascade is the case p = 0, x = 1. test/unit/iptables-rotation.test.ts checks this
 * by simulating the emitted rules' counters, and test/kernel/iptables.test.ts with real connections.
 *
 * Choosing p and x: a chain costs p + K rules plus its child's, and each child is a chain the
 * `--noflush` loader pays for (README Performance), counted as CHAIN_COST rules. The search tries
 * p ≤ MAX_PEEL and every divisor x of A − p, keeps the BEAM most promising per level (estimate: the
 * child as a two-level plan of its own, ≈ 2·√(backends · size)) and takes the cheapest; the plain
 * cascade is always a candidate, so the result is never worse than it. Deterministic: same weights,
 * same rules.
 */
import { reduceWeights, smoothOrder } from '../weights.js';

/** Weight sums up to this stay a plain cascade: at most this many rules, walked in the smooth order. */
export const PLAIN_MAX = 32;
/** Levels of chains below the root at most. */
export const MAX_DEPTH = 3;
/** Peel rules per chain at most. */
export const MAX_PEEL = 8;
/** What a chain costs in the search, in rules (each is an object the --noflush loader must create). */
export const CHAIN_COST = 16;
/** Candidates followed further per level (root, first child); the last level is searched in full. */
const BEAM = [4, 4];
/**
 * Most rules one service's rotation may have. Not an exactness limit (every weight sum has an exact
 * plan) but a cost one: only hundreds of backends with weights that share no structure come near it.
 */
export const MAX_ROTATION_RULES = 4096;

/** Where a rule sends what it takes: a backend (index into the weights) or the chain with that index. */
export type RotationTarget = { backend: number } | { chain: number };

export interface RotationRule {
  /** `--every N --packet 0`; null: the rule takes everything that reaches it. */
  every: number | null;
  target: RotationTarget;
}

/** chains[0] is the service's own rules; chains[k] for k > 0 are reached only by jumps from chains[k - 1]. */
export interface RotationPlan {
  chains: RotationRule[][];
  /** The reduced weight sum: the plan repeats every `period` new connections. */
  period: number;
}

interface Plain {
  kind: 'plain';
  cost: number;
  demand: number[];
}
interface Composite {
  kind: 'composite';
  cost: number;
  peel: number[];
  entries: number[];
  /** x: what each rotation entry takes per window. */
  take: number;
  /** Rotation entries that jump to the child. */
  childEntries: number;
  child: Node | null;
}
interface Single {
  kind: 'single';
  cost: number;
  backend: number;
}
type Node = Plain | Composite | Single;

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
  childEntries: number;
  childDemand: number[];
  /** Rules of this chain (peel + rotation). */
  own: number;
  lowerBound: number;
  estimate: number;
}

/** The way to split demand `d` (sum `total`) with `p` peel rules and entries of `x` each, or null. */
function candidate(total: number, d: readonly number[], p: number, x: number): Candidate | null {
  const rotation = d.map((v) => Math.floor(v / x));
  const rest = d.map((v) => v % x);
  // Peel from the smallest remainders first: each one zeroed is a backend the child need not carry.
  const peel = d.map(() => 0);
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
  let childEntries = sum(rest) / x;
  const childDemand = rest;
  // A child that would serve one backend is that backend's rotation entries.
  if (nonZero(childDemand) === 1) {
    const only = childDemand.findIndex((v) => v > 0);
    rotation[only] += childEntries;
    childDemand[only] = 0;
    childEntries = 0;
  }
  const entries = sum(rotation) + childEntries;
  if (entries !== (total - p) / x) throw new Error('lbc: rotation arithmetic is off; please report this');
  const single = childEntries === 0 && nonZero(rotation) === 1;
  if (!single && entries < 2) return null;
  const own = p + (single ? 1 : entries);
  const kids = nonZero(childDemand);
  const childSize = childEntries * x;
  return {
    peel,
    rotation,
    take: x,
    childEntries,
    childDemand,
    own,
    lowerBound: own + (childEntries > 0 ? kids + CHAIN_COST : 0),
    estimate: own + (childEntries > 0 ? 2 * Math.sqrt(kids * childSize) + CHAIN_COST : 0),
  };
}

function plan(d: readonly number[], depth: number): Node {
  const total = sum(d);
  if (nonZero(d) === 1) return { kind: 'single', cost: 1, backend: d.findIndex((v) => v > 0) };
  let best: Node = { kind: 'plain', cost: total, demand: [...d] };
  // The deepest level is a plain cascade; small sums are cheapest plain anyway.
  if ((total <= PLAIN_MAX && depth === 0) || depth === MAX_DEPTH || total <= 8) return best;
  const candidates: Candidate[] = [];
  for (let p = 0; p <= MAX_PEEL && p < total - 1; p++) {
    for (const x of divisors(total - p)) {
      const c = candidate(total, d, p, x);
      if (c) candidates.push(c);
    }
  }
  candidates.sort((a, b) => a.estimate - b.estimate || a.own - b.own || b.take - a.take);
  const beam = BEAM[depth] ?? Infinity;
  let followed = 0;
  for (const c of candidates) {
    if (c.lowerBound >= best.cost) continue;
    if (followed++ >= beam) break;
    const child = c.childEntries > 0 ? plan(c.childDemand, depth + 1) : null;
    const cost = c.own + (child ? child.cost + CHAIN_COST : 0);
    if (cost < best.cost) {
      best = { kind: 'composite', cost, peel: c.peel, entries: c.rotation, take: c.take, childEntries: c.childEntries, child };
    }
  }
  return best;
}

/** Rules of one chain and the chains below it, appended to `chains` from index `at`. */
function build(node: Node, chains: RotationRule[][], at: number): void {
  const rules: RotationRule[] = [];
  chains[at] = rules;
  if (node.kind === 'single') {
    rules.push({ every: null, target: { backend: node.backend } });
    return;
  }
  if (node.kind === 'plain') {
    const order = smoothOrder(node.demand);
    order.forEach((b, k) => rules.push({ every: k < order.length - 1 ? order.length - k : null, target: { backend: b } }));
    return;
  }
  const total = sum(node.peel) + node.take * (sum(node.entries) + node.childEntries);
  smoothOrder(node.peel).forEach((b, j) => rules.push({ every: total - j, target: { backend: b } }));
  const counts = [...node.entries, node.childEntries];
  const child = node.entries.length;
  if (node.childEntries === 0 && nonZero(node.entries) === 1) {
    rules.push({ every: null, target: { backend: node.entries.findIndex((v) => v > 0) } });
    return;
  }
  const order = smoothOrder(counts);
  order.forEach((e, t) => {
    const target: RotationTarget = e === child ? { chain: at + 1 } : { backend: e };
    rules.push({ every: t < order.length - 1 ? order.length - t : null, target });
  });
  if (node.child) build(node.child, chains, at + 1);
}

const memo = new Map<string, RotationPlan>();

/** The exact rotation for these weights (divided by their gcd), as chains of nth rules. */
export function rotationPlan(weights: readonly number[]): RotationPlan {
  const d = reduceWeights(weights);
  const key = d.join(',');
  const known = memo.get(key);
  if (known) return known;
  const chains: RotationRule[][] = [];
  build(plan(d, 0), chains, 0);
  const result = { chains, period: sum(d) };
  // Specs repeat weight patterns across thousands of services; the search is the costly part.
  if (memo.size > 4096) memo.clear();
  memo.set(key, result);
  return result;
}

export function rotationRuleCount(p: RotationPlan): number {
  return p.chains.reduce((s, c) => s + c.length, 0);
}
