/**
 * Incremental apply for iptables / ip6tables: one `iptables-restore --noflush` input that declares
 * only the LBC- chains whose rules changed (declaring a chain in a --noflush load flushes it,
 * iptables-restore(8)) with their new rules, and deletes the chains lbc no longer emits; ipset sets
 * of new sticky backends are created first and those no longer emitted destroyed afterwards.
 * Chains not mentioned keep their rules, and with them the `statistic --mode nth` counters
 * (xt_statistic keeps one per rule) of every unchanged service.
 *
 * What is loaded now is known the same way as for nftables (../nftables/incremental.ts): the state
 * file holds the emitted text lbc loaded last (../applied-state.ts), and the kernel holds a marker:
 * an empty nat chain named LBC-L-<the state's marker, cut to fit the 28-character chain name limit>.
 * A partial load deletes (-X) the recorded marker and declares the next one; if the recorded marker
 * is not there, iptables-restore refuses the load and apply falls back to the full one.
 * The new text is compared with the recorded one as strings: only the lines between their equal
 * start and end are read, and the chains those lines belong to are found in the text by search, so
 * one changed service among 10,000 (13 MB of rules) costs milliseconds. A change spread over many
 * chains is read in full instead.
 * iptables-restore (nf_tables backend, 1.8.9) commits table by table — a failure in the second table
 * leaves the first one loaded (measured) — so the nat table, which holds the marker, comes first:
 * when the marker is missing nothing is changed at all; when a later table fails, the state file is
 * already gone and the fallback full apply rewrites everything.
 */
import type { Flavor } from './emit.js';
import { ENTRY_POINTS } from './emit.js';
import { nextMarker } from '../applied-state.js';
import { differingLines } from '../text-diff.js';

export const MARKER_PREFIX = 'LBC-L-';
/** iptables chain names are at most 28 characters (XT_EXTENSION_MAXNAMELEN - 1). */
export const markerChain = (hash: string): string => `${MARKER_PREFIX}${hash.slice(0, 28 - MARKER_PREFIX.length)}`;

export interface IptChain {
  rules: string[];
}

export interface IptModel {
  /** table -> chain -> rules ("-A CHAIN ..." lines), chains in declaration order. */
  tables: Map<string, Map<string, IptChain>>;
  /** set name -> its `create` line. */
  sets: Map<string, string>;
}

/**
 * Read an emitted rules file (templates/iptables/rules.hbs) and its ipset file. Returns null for
 * anything unexpected (a chain not named LBC-*, a rule before its chain's declaration), which
 * makes apply load the files whole.
 */
export function parseIptables(rules: string, setsText: string | null): IptModel | null {
  const model: IptModel = { tables: new Map(), sets: new Map() };
  let table: Map<string, { rules: string[] }> | null = null;
  const raw = new Map<string, Map<string, { rules: string[] }>>();
  for (const line of rules.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      const name = line.slice(1);
      if (raw.has(name) || table) return null;
      table = new Map();
      raw.set(name, table);
    } else if (line === 'COMMIT') {
      if (!table) return null;
      table = null;
    } else if (line.startsWith(':')) {
      const m = /^:(LBC-\S+) - \[0:0\]$/.exec(line);
      if (!table || !m || m[1].startsWith(MARKER_PREFIX) || table.has(m[1])) return null;
      table.set(m[1], { rules: [] });
    } else if (line.startsWith('-A ')) {
      const chain = line.slice(3, line.indexOf(' ', 3));
      const c = table?.get(chain);
      if (!c) return null;
      c.rules.push(line);
    } else {
      return null;
    }
  }
  if (table) return null;
  for (const [name, chains] of raw) model.tables.set(name, chains);
  const sets = parseSets(setsText);
  return sets && { ...model, sets };
}

/**
 * The `create` line of every set in an emitted ipset file, by name — or for an allow list the whole
 * fill-and-swap block (create, create the copy, flush it, add…, swap, destroy the copy: iptables/access.ts),
 * which loads the same whichever list the kernel held before; null for anything else.
 */
function parseSets(text: string | null): Map<string, string> | null {
  const sets = new Map<string, string>();
  const lines = (text ?? '').split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  for (let i = 0; i < lines.length; i++) {
    const m = /^create (\S+) /.exec(lines[i]);
    if (!m || sets.has(m[1])) return null;
    const fresh = /^create (\S+) /.exec(lines[i + 1] ?? '')?.[1];
    if (fresh && lines[i + 2] === `flush ${fresh}`) {
      const end = lines.indexOf(`destroy ${fresh}`, i + 3);
      if (end < 0 || lines[end - 1] !== `swap ${fresh} ${m[1]}`) return null;
      sets.set(m[1], lines.slice(i, end + 1).join('\n'));
      i = end;
      continue;
    }
    sets.set(m[1], lines[i]);
  }
  return sets;
}

/** An allow list's block (its elements are loaded in place by swapping); other sets are one create line. */
const isFillBlock = (set: string) => set.includes('\nswap ');

/** More chains than this in the differing lines: read both texts whole instead of searching chain by chain. */
const MAX_SEARCHED_CHAINS = 64;

/**
 * What differs between two emitted rules files (and their ipset files), as two models holding only
 * the chains whose declaration or rules differ, and every set. Null when a text is not in the
 * emitter's layout.
 */
export function iptChanges(beforeRules: string, beforeSets: string | null, afterRules: string, afterSets: string | null): { old: IptModel; next: IptModel } | null {
  const oldSets = parseSets(beforeSets);
  const nextSets = parseSets(afterSets);
  if (!oldSets || !nextSets) return null;
  const old: IptModel = { tables: new Map(), sets: oldSets };
  const next: IptModel = { tables: new Map(), sets: nextSets };
  if (beforeRules === afterRules) return { old, next };
  // The header comment names the spec file: a spec compiled from another path must not make every
  // line "differ". Both texts are read from their first table on (slices: nothing is copied).
  beforeRules = beforeRules.slice(afterComments(beforeRules));
  afterRules = afterRules.slice(afterComments(afterRules));
  const found = changedChains(beforeRules, afterRules);
  if (!found) return wholeChanges(beforeRules, beforeSets, afterRules, afterSets);
  const { table, chains, head } = found;
  for (const [text, model] of [[beforeRules, old], [afterRules, next]] as const) {
    const section = tableSection(text, table, head);
    if (!section) return null;
    const found: Array<[string, IptChain & { at: number }]> = [];
    for (const chain of chains) {
      const c = findChain(text, section, chain);
      if (c === undefined) return null;
      if (c) found.push([chain, c]);
    }
    // In declaration order, as a reading of the whole text has them.
    found.sort((x, y) => x[1].at - y[1].at);
    model.tables.set(table, new Map(found.map(([chain, c]) => [chain, { rules: c.rules }])));
  }
  return { old, next };
}

/** Where the first line that is not a comment begins. */
function afterComments(text: string): number {
  let pos = 0;
  while (text.startsWith('#', pos)) {
    const eol = text.indexOf('\n', pos);
    if (eol < 0) return text.length;
    pos = eol + 1;
  }
  return pos;
}

function wholeChanges(beforeRules: string, beforeSets: string | null, afterRules: string, afterSets: string | null): { old: IptModel; next: IptModel } | null {
  const old = parseIptables(beforeRules, beforeSets);
  const next = parseIptables(afterRules, afterSets);
  return old && next ? { old, next } : null;
}

/**
 * The chains named by the lines that differ, and the table those lines are in; null when they are
 * more than a search per chain is worth, or include anything but rules, declarations and comments
 * (a table boundary, say).
 */
function changedChains(before: string, after: string): { table: string; chains: string[]; head: number } | null {
  const { head, tail } = differingLines(before, after);
  const chains = new Set<string>();
  for (const text of [before, after]) {
    const part = text.slice(head, text.length - tail);
    if (part === '') continue;
    for (const line of part.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const m = /^(?:-A (\S+) |:(\S+) - \[0:0\]$)/.exec(line);
      if (!m) return null;
      chains.add(m[1] ?? m[2]);
      if (chains.size > MAX_SEARCHED_CHAINS) return null;
    }
  }
  // The table the differing lines are in: the last "*table" line before them (equal in both texts).
  const star = before.lastIndexOf('\n*', head - 1);
  const table = star < 0 ? (before.startsWith('*') ? before.slice(1, before.indexOf('\n')) : null) : before.slice(star + 2, before.indexOf('\n', star + 1));
  if (chains.size > 0 && !table) return null;
  return { table: table ?? '', chains: [...chains], head };
}

/**
 * The section of `table`: where its "*table" line starts, where its declarations end (the emitter
 * writes every ":chain" line before the first rule), and where its COMMIT line is; with `at`, null
 * unless the section holds that position (searching for COMMIT from there, not from the start).
 * Table names are unique in a file, so the first "*table" line is the one.
 */
export function tableSection(text: string, table: string, at?: number): Section | null {
  const start = tableStart(text, table);
  if (start < 0) return null;
  at ??= start;
  // "\nCOMM" rather than "\nCOMMIT\n": a search pattern ending in a frequent character (a newline)
  // skips ahead slowly; this one is several times faster over megabytes.
  let end = text.indexOf('\nCOMM', Math.max(start, at - 1));
  while (end >= 0 && !text.startsWith('\nCOMMIT\n', end)) end = text.indexOf('\nCOMM', end + 1);
  const firstRule = text.indexOf('\n-A ', start);
  const declEnd = firstRule < 0 || firstRule > end ? end : firstRule;
  return end < 0 || start > at ? null : { start, declEnd, end, declarations: text.slice(start, declEnd + 1) };
}

/**
 * Where the "*table" line of `table` begins, or -1. Searched as "\n*" (a pattern ending in a rare
 * character is skipped through quickly) and checked: a file has a few tables and megabytes of rules.
 */
export function tableStart(text: string, table: string): number {
  const line = `*${table}\n`;
  if (text.startsWith(line)) return 0;
  for (let i = text.indexOf('\n*'); i >= 0; i = text.indexOf('\n*', i + 1)) if (text.startsWith(line, i + 1)) return i + 1;
  return -1;
}

export interface Section {
  start: number;
  declEnd: number;
  end: number;
  /** The text of the declaration lines (searched instead of the whole text). */
  declarations: string;
}

/**
 * A chain's rules within a table section: null when it is not declared there, undefined when the
 * text is not in the emitter's layout (declared twice, rules without a declaration, or rules that
 * are not one run of lines, comments aside).
 */
function findChain(text: string, section: Section, chain: string): (IptChain & { at: number }) | null | undefined {
  const within = (i: number, end = section.end) => i >= 0 && i < end;
  const decl = `\n:${chain} - [0:0]\n`;
  const d = section.declarations.indexOf(decl);
  const declared = d >= 0;
  if (declared && section.declarations.indexOf(decl, d + 1) >= 0) return undefined;
  const prefix = `-A ${chain} `;
  const first = text.indexOf(`\n${prefix}`, section.declEnd);
  if (!within(first)) return declared ? { rules: [], at: d } : null;
  if (!declared) return undefined;
  const rules: string[] = [];
  let pos = first + 1;
  for (;;) {
    const eol = text.indexOf('\n', pos);
    const line = text.slice(pos, eol < 0 ? text.length : eol);
    if (line.startsWith(prefix)) rules.push(line);
    else if (!line.startsWith('#')) break;
    if (eol < 0) break;
    pos = eol + 1;
  }
  // No rule of this chain after its run.
  return within(text.indexOf(`\n${prefix}`, pos - 1)) ? undefined : { rules, at: d };
}

export interface IptPlan {
  /** The iptables-restore --noflush input. */
  restore: string;
  /** `ipset restore -exist` input creating new sets, or null. */
  createSets: string | null;
  /** Sets to destroy after the restore, when no rule refers to them any more. */
  destroySets: string[];
  /** "table chain" of every chain declared (changed, new or removed). */
  chains: string[];
  /** Nothing but the marker changes. */
  empty: boolean;
  /** The marker the kernel holds once this is loaded. */
  marker: string;
}

const hasChain = (model: IptModel, table: string, chain: string) => !!model.tables.get(table)?.has(chain);
const sameRules = (a: IptChain, b: IptChain) => a.rules.length === b.rules.length && a.rules.every((r, i) => r === b.rules[i]);

/**
 * The partial load turning `old` into `next` (models of what differs, from iptChanges, or of the
 * whole texts), or null when only a full apply can make the change: a set's parameters changed (it
 * must be swapped, see apply.ts), or an entry chain (LBC-PREROUTING / LBC-OUTPUT of nat or mangle)
 * appears or disappears, which means adding or removing the jumps from the built-in chains.
 * `marker` is the one the kernel holds now; the plan names the next. `jumps` are the entry jumps
 * (table, built-in chain, LBC chain) the new rules need: the restore checks each with -C, which fails
 * the load — and so sends apply to the full one, which restores them — when one is missing. This
 * makes the check part of the load instead of a separate command.
 */
export function iptPlan(old: IptModel, next: IptModel, marker: string, jumps: ReadonlyArray<readonly [string, string, string]> = []): IptPlan | null {
  for (const [t, , c] of ENTRY_POINTS) if (hasChain(next, t, c) !== hasChain(old, t, c)) return null;
  const creates: string[] = [];
  for (const [name, line] of next.sets) {
    const had = old.sets.get(name);
    if (had === undefined) creates.push(line);
    // A changed allow list loads by its own block: filled aside and swapped in, no chain touched.
    else if (had !== line && isFillBlock(line) && isFillBlock(had) && had.split('\n')[0] === line.split('\n')[0]) creates.push(line);
    else if (had !== line) return null;
  }
  const destroySets = [...old.sets.keys()].filter((n) => !next.sets.has(n)).sort();

  const plan: IptPlan = { restore: '', createSets: creates.length ? creates.join('\n') + '\n' : null, destroySets, chains: [], empty: false, marker };
  const sections: Array<{ table: string; lines: string[] }> = [];
  // nat first: it holds the marker, and iptables-restore commits table by table.
  const names = [...new Set(['nat', ...next.tables.keys(), ...old.tables.keys(), ...jumps.map(([t]) => t)])].sort((a, b) => (a === 'nat' ? -1 : b === 'nat' ? 1 : a < b ? -1 : 1));
  for (const t of names) {
    const now = next.tables.get(t) ?? new Map<string, IptChain>();
    const was = old.tables.get(t) ?? new Map<string, IptChain>();
    const decl: string[] = [];
    const rules: string[] = [];
    const drop: string[] = [];
    for (const [chain, c] of now) {
      const had = was.get(chain);
      if (had && sameRules(had, c)) continue;
      decl.push(`:${chain} - [0:0]`);
      rules.push(...c.rules);
      plan.chains.push(`${t} ${chain}`);
    }
    for (const chain of was.keys()) {
      if (now.has(chain)) continue;
      // Declared (so flushed) first; deleted once no chain of this load jumps to it.
      decl.push(`:${chain} - [0:0]`);
      drop.push(`-X ${chain}`);
      plan.chains.push(`${t} ${chain}`);
    }
    const checks = jumps.filter(([table]) => table === t).map(([, builtin, chain]) => `-C ${builtin} -j ${chain}`);
    if (t === 'nat' || decl.length || checks.length) sections.push({ table: t, lines: [...decl, ...rules, ...drop, ...checks] });
  }
  plan.empty = plan.chains.length === 0 && !plan.createSets && destroySets.length === 0;
  if (!plan.empty) plan.marker = nextMarker(marker, [plan.createSets ?? '', ...destroySets, ...sections.flatMap((x) => [x.table, ...x.lines])].join('\n'));
  // -X of a chain that does not exist fails the load: the kernel must hold exactly the recorded ruleset.
  plan.restore =
    sections
      .flatMap(({ table, lines }) =>
        table === 'nat' ? [`*nat`, `:${markerChain(plan.marker)} - [0:0]`, ...lines, `-X ${markerChain(marker)}`, 'COMMIT'] : [`*${table}`, ...lines, 'COMMIT'],
      )
      .join('\n') + '\n';
  return plan;
}
