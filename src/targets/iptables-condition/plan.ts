/**
 * The selection construction for --target iptables-condition: health-aware
 * balancing with no daemon in the data path, only the xtables-addons
 * `condition` match (one boolean per checked backend, flipped at run time by
 * the generated checker).
 *
 * The rules are fixed while the set of live backends changes, so the rules
 * must already hold the right choice for every set. The construction here is a
 * decision tree over the checked backends' conditions: each tree chain reads
 * one condition and goes to the child for "down" or "up", so a new connection
 * reads each condition once (a consistent snapshot even while the checker is
 * writing) and walks at most one rule per checked backend. Each leaf knows the
 * exact live set S and holds an ordinary cascade over S alone: an nth slot
 * cascade (its own counters, so the rotation over S is exact over every W(S)
 * connections that arrive while S is the live set) or a random cascade with
 * p_i = w_i / (w_i + ... ) over S (exact up to the kernel's 2^-31 step).
 *
 * This is exponential in the number of checked backends, so it is capped
 * (MAX_CHECKED_PRIMARIES, MAX_CHECKED_BACKUPS, MAX_RULES); past that the
 * capability table refuses and points at `lbc agent`, which rewrites rules
 * instead of encoding every outcome.
 *
 * Backups only matter when every primary is down, so the tree only branches on
 * backups below the single all-primaries-down path; with an unchecked primary
 * (always up) the backups are never used and not branched on at all.
 */
import { expandSlots, randomProbabilities } from '../iptables/slots.js';
import { primaries, type Backend, type Service } from '../../ir/types.js';

export const MAX_CHECKED_PRIMARIES = 8;
export const MAX_CHECKED_BACKUPS = 8;
/** Most mangle rules (tree + leaves) one service may expand to. */
export const MAX_RULES = 4096;
/** Backend choice is stored as index+1 in one byte of the packet and connection mark. */
export const MAX_BACKENDS = 255;
export const MARK_SHIFT = 16;
export const MARK_MASK = 0xff << MARK_SHIFT;
/** xt_condition.h: CONDITION_NAME_LEN = 31 including the terminating NUL. */
export const MAX_CONDITION_NAME = 30;
/** iptables: XT_EXTENSION_MAXNAMELEN 29 including the NUL. */
export const MAX_CHAIN_NAME = 28;

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

export function markValue(b: Backend): number {
  return (b.index + 1) << MARK_SHIFT;
}

export const MARK_FIELD = hex(MARK_MASK);

/** /proc/net/nf_condition/<name>: "1" means the backend is down, "0" (the value a new condition starts with) up. */
export function conditionName(svc: Service, b: Backend): string {
  const name = `lbc-${svc.name}-${b.index}-down`;
  if (name.length > MAX_CONDITION_NAME) throw new Error(`condition name too long: ${name}`);
  return name;
}

export function chainName(svc: Service, suffix: string): string {
  const name = suffix ? `LBC-${svc.name}-${suffix}` : `LBC-${svc.name}`;
  if (name.length > MAX_CHAIN_NAME) throw new Error(`chain name too long: ${name}`);
  return name;
}

export interface ServicePlan {
  /** Backends whose condition the tree reads, in decision order. */
  decisions: Backend[];
  /** Chains to declare (tree and leaves), in output order. */
  chains: string[];
  /** "-A CHAIN ..." lines of the tree and leaves, in output order; '#' lines are comments. */
  lines: string[];
  /** Number of -A lines. */
  ruleCount: number;
}

function setMark(b: Backend): string {
  return `-j MARK --set-xmark ${hex(markValue(b))}/${MARK_FIELD}`;
}

const UNMARKED = `-m mark --mark 0x0/${MARK_FIELD}`;

function describe(b: Backend): string {
  const addr = b.address === null ? 'local' : b.address.includes(':') ? `[${b.address}]` : b.address;
  return `${addr}:${b.port}`;
}

/** The cascade that picks one of `set` (non-empty) for a new connection, as rule bodies without "-A CHAIN". */
export function leafRules(svc: Service, set: readonly Backend[]): string[] {
  if (set.length === 1) return [`${UNMARKED} ${setMark(set[0])}`];
  const out: string[] = [];
  if (svc.mode === 'nth') {
    // Slot k of W takes the first of every W-k connections the earlier slots let through
    // (xt_statistic.c: --packet 0 matches the first packet the rule sees).
    const slots = expandSlots(set.map((b) => b.weight));
    slots.forEach((i, k) => {
      const every = slots.length - k;
      const stat = every >= 2 ? ` -m statistic --mode nth --every ${every} --packet 0` : '';
      out.push(`${UNMARKED}${stat} ${setMark(set[i])}`);
    });
  } else {
    const probs = randomProbabilities(set.map((b) => b.weight));
    set.forEach((b, i) => {
      const stat = i < probs.length ? ` -m statistic --mode random --probability ${probs[i]}` : '';
      out.push(`${UNMARKED}${stat} ${setMark(b)}`);
    });
  }
  return out;
}

/** Number of rules leafRules() gives, without building them. */
function leafSize(svc: Service, set: readonly Backend[]): number {
  if (set.length <= 1) return 1;
  return svc.mode === 'nth' ? expandSlots(set.map((b) => b.weight)).length : set.length;
}

interface Shape {
  checkedPrimaries: Backend[];
  uncheckedPrimaries: Backend[];
  checkedBackups: Backend[];
  uncheckedBackups: Backend[];
  /** Backups can be reached: every primary has a health check. */
  backupsReachable: boolean;
}

function shape(svc: Service): Shape {
  const prim = primaries(svc);
  const backups = svc.backends.filter((b) => b.backup);
  const uncheckedPrimaries = prim.filter((b) => !b.health);
  return {
    checkedPrimaries: prim.filter((b) => b.health),
    uncheckedPrimaries,
    checkedBackups: backups.filter((b) => b.health),
    uncheckedBackups: backups.filter((b) => !b.health),
    backupsReachable: uncheckedPrimaries.length === 0,
  };
}

/** Why this service cannot be built, or null. Used by the capability table before emit runs. */
export function planLimit(svc: Service): string | null {
  if (svc.backends.length > MAX_BACKENDS) return `it has ${svc.backends.length} backends; the mark field holds at most ${MAX_BACKENDS}`;
  const s = shape(svc);
  if (s.checkedPrimaries.length > MAX_CHECKED_PRIMARIES) {
    return `it has ${s.checkedPrimaries.length} health-checked primary backends; the rules must encode the choice for every subset of live backends (2^n leaves), so at most ${MAX_CHECKED_PRIMARIES} are accepted`;
  }
  if (s.backupsReachable && s.checkedBackups.length > MAX_CHECKED_BACKUPS) {
    return `it has ${s.checkedBackups.length} health-checked backup backends; at most ${MAX_CHECKED_BACKUPS} are accepted`;
  }
  const n = countRules(svc, s);
  if (n > MAX_RULES) return `its selection tree would need ${n} rules (more than ${MAX_RULES}); lower the weights or the number of checked backends`;
  return null;
}

function countRules(svc: Service, s: Shape): number {
  let total = 0;
  const walk = (depth: number, up: Backend[], decisions: Backend[], fallback: () => void) => {
    if (depth === decisions.length) {
      const set = [...up];
      if (set.length === 0) fallback();
      else total += leafSize(svc, set);
      return;
    }
    total += 2;
    walk(depth + 1, up, decisions, fallback);
    walk(depth + 1, [...up, decisions[depth]], decisions, fallback);
  };
  const backupWalk = () => {
    if (!s.backupsReachable) return;
    walk(0, [...s.uncheckedBackups], s.checkedBackups, () => undefined);
  };
  walk(0, [...s.uncheckedPrimaries], s.checkedPrimaries, backupWalk);
  return total;
}

/**
 * Builds the tree. Chains are named by heap position (root 1, children 2h for
 * "down" and 2h+1 for "up"), so a name is short and stable whatever the service.
 * A branch in which nothing is up has no chain: its tree rule RETURNs unmarked
 * and the service chain drops the connection.
 */
export function planService(svc: Service): ServicePlan {
  const s = shape(svc);
  const chains: string[] = [];
  const lines: string[] = [];
  let ruleCount = 0;
  const decisions = [...s.checkedPrimaries, ...(s.backupsReachable ? s.checkedBackups : [])];
  const order = (b: Backend) => svc.backends.indexOf(b);
  const sorted = (xs: Backend[]) => [...xs].sort((a, b) => order(a) - order(b));

  // Returns the chain to enter for this node, or null when nothing can be up below it.
  const node = (heap: number, depth: number, upPrimaries: Backend[], upBackups: Backend[]): string | null => {
    const primaryPhase = depth < s.checkedPrimaries.length;
    const inBackups = !primaryPhase && upPrimaries.length === 0;
    if (!primaryPhase && !inBackups) return leaf(heap, sorted(upPrimaries), false);
    const backupDepth = depth - s.checkedPrimaries.length;
    if (inBackups && (!s.backupsReachable || backupDepth === s.checkedBackups.length)) {
      return upBackups.length === 0 || !s.backupsReachable ? null : leaf(heap, sorted(upBackups), true);
    }
    const b = primaryPhase ? s.checkedPrimaries[depth] : s.checkedBackups[backupDepth];
    const name = chainName(svc, `n${heap}`);
    chains.push(name);
    const at = lines.length;
    const down = node(2 * heap, depth + 1, upPrimaries, upBackups);
    const up = primaryPhase
      ? node(2 * heap + 1, depth + 1, [...upPrimaries, b], upBackups)
      : node(2 * heap + 1, depth + 1, upPrimaries, [...upBackups, b]);
    const cond = conditionName(svc, b);
    const own = [
      `# ${primaryPhase ? 'primary' : 'backup'} ${describe(b)}: condition ${cond} is 1 while it is down`,
      down ? `-A ${name} -m condition --condition ${cond} -g ${down}` : `-A ${name} -m condition --condition ${cond} -j RETURN`,
      up ? `-A ${name} -g ${up}` : `-A ${name} -j RETURN`,
    ];
    lines.splice(at, 0, ...own);
    ruleCount += 2;
    return name;
  };
  const leaf = (heap: number, set: Backend[], backup: boolean): string => {
    const name = chainName(svc, `n${heap}`);
    chains.push(name);
    lines.push(`# ${backup ? 'every primary down; live backups' : 'live'}: ${set.map(describe).join(', ')}`);
    for (const r of leafRules(svc, set)) {
      lines.push(`-A ${name} ${r}`);
      ruleCount++;
    }
    return name;
  };
  node(1, 0, [...s.uncheckedPrimaries], [...s.uncheckedBackups]);
  // Output order: by heap number, so a reader finds a chain's children after it.
  return { decisions, chains: sortChains(chains), lines: sortLines(lines), ruleCount };
}

function heapOf(chain: string): number {
  const m = /-n(\d+)$/.exec(chain);
  return m ? Number(m[1]) : 0;
}

function sortChains(chains: string[]): string[] {
  return [...chains].sort((a, b) => heapOf(a) - heapOf(b));
}

/** Groups each chain's comment and rules together, chains in heap order. */
function sortLines(lines: string[]): string[] {
  const groups = new Map<number, string[]>();
  let pending: string[] = [];
  for (const l of lines) {
    if (l.startsWith('#')) {
      pending.push(l);
      continue;
    }
    const chain = l.split(' ')[1];
    const h = heapOf(chain);
    const g = groups.get(h) ?? [];
    g.push(...pending, l);
    pending = [];
    groups.set(h, g);
  }
  return [...groups.keys()].sort((a, b) => a - b).flatMap((h) => groups.get(h)!);
}
