/**
 * Incremental apply for iptables / ip6tables: one `iptables-restore --noflush` input that declares
 * only the LBC- chains whose rules changed (declaring a chain in a --noflush load flushes it,
 * iptables-restore(8)) with their new rules, and deletes the chains lbc no longer emits; ipset sets
 * of new sticky backends are created first and those no longer emitted destroyed afterwards.
 * Chains not mentioned keep their rules, and with them the `statistic --mode nth` counters
 * (xt_statistic keeps one per rule) of every unchanged service.
 *
 * What is loaded now is known the same way as for nftables (../nftables/incremental.ts): a state
 * file with a fingerprint per chain and the create line of every set, written after each successful
 * apply and removed before each change, plus a marker in the kernel: an empty nat chain named
 * LBC-L-<sha256 of the emitted files, cut to fit the 28-character chain name limit>. A partial load
 * deletes (-X) the marker of the recorded hash and declares the new one; if the recorded marker is
 * not there, iptables-restore refuses the load and apply falls back to the full one.
 * iptables-restore (nf_tables backend, 1.8.9) commits table by table — a failure in the second table
 * leaves the first one loaded (measured) — so the nat table, which holds the marker, comes first:
 * when the marker is missing nothing is changed at all; when a later table fails, the state file is
 * already gone and the fallback full apply rewrites everything.
 */
import type { Flavor } from './emit.js';
import { ENTRY_POINTS } from './emit.js';
import { fingerprint, STATE_VERSION } from '../nftables/incremental.js';

export const MARKER_PREFIX = 'LBC-L-';
/** iptables chain names are at most 28 characters (XT_EXTENSION_MAXNAMELEN - 1). */
export const markerChain = (hash: string): string => `${MARKER_PREFIX}${hash.slice(0, 28 - MARKER_PREFIX.length)}`;

export interface IptChain {
  rules: string[];
  fp: string;
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
export function parseIptables(rules: string, sets: string | null): IptModel | null {
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
  for (const [name, chains] of raw) {
    const t = new Map<string, IptChain>();
    for (const [chain, c] of chains) t.set(chain, { rules: c.rules, fp: fingerprint(c.rules.join('\n')) });
    model.tables.set(name, t);
  }
  for (const line of (sets ?? '').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^create (\S+) /.exec(line);
    if (!m || model.sets.has(m[1])) return null;
    model.sets.set(m[1], line);
  }
  return model;
}

export interface IptState {
  version: number;
  target: Flavor['target'];
  /** sha256 of the emitted rules and sets files; the marker chain is named after it. */
  hash: string;
  /** table -> chain -> fingerprint of its rules. */
  tables: Record<string, Record<string, string>>;
  sets: Record<string, string>;
}

export function iptState(model: IptModel, target: Flavor['target'], hash: string): IptState {
  const state: IptState = { version: STATE_VERSION, target, hash, tables: {}, sets: Object.fromEntries(model.sets) };
  for (const [t, chains] of model.tables) state.tables[t] = Object.fromEntries([...chains].map(([c, x]) => [c, x.fp]));
  return state;
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
}

const entryChains = (tables: Map<string, Map<string, unknown>> | Record<string, Record<string, unknown>>, table: string, chain: string) =>
  tables instanceof Map ? !!tables.get(table)?.has(chain) : !!tables[table] && chain in tables[table];

/**
 * The partial load turning what `old` recorded into `next`, or null when only a full apply can make
 * the change: a set's parameters changed (it must be swapped, see apply.ts), or an entry chain
 * (LBC-PREROUTING / LBC-OUTPUT of nat or mangle) appears or disappears, which means adding or
 * removing the jumps from the built-in chains.
 */
export function iptPlan(old: IptState, next: IptModel, hash: string): IptPlan | null {
  for (const [t, , c] of ENTRY_POINTS) if (entryChains(next.tables, t, c) !== entryChains(old.tables, t, c)) return null;
  const creates: string[] = [];
  for (const [name, line] of next.sets) {
    const had = old.sets[name];
    if (had === undefined) creates.push(line);
    else if (had !== line) return null;
  }
  const destroySets = Object.keys(old.sets).filter((n) => !next.sets.has(n)).sort();

  const plan: IptPlan = { restore: '', createSets: creates.length ? creates.join('\n') + '\n' : null, destroySets, chains: [], empty: false };
  const sections: string[][] = [];
  // nat first: it holds the marker, and iptables-restore commits table by table.
  const names = [...new Set([...next.tables.keys(), ...Object.keys(old.tables)])].sort((a, b) => (a === 'nat' ? -1 : b === 'nat' ? 1 : a < b ? -1 : 1));
  for (const t of names) {
    const now = next.tables.get(t) ?? new Map<string, IptChain>();
    const was = old.tables[t] ?? {};
    const decl: string[] = [];
    const rules: string[] = [];
    const drop: string[] = [];
    for (const [chain, c] of now) {
      if (was[chain] === c.fp) continue;
      decl.push(`:${chain} - [0:0]`);
      rules.push(...c.rules);
      plan.chains.push(`${t} ${chain}`);
    }
    for (const chain of Object.keys(was)) {
      if (now.has(chain)) continue;
      // Declared (so flushed) first; deleted once no chain of this load jumps to it.
      decl.push(`:${chain} - [0:0]`);
      drop.push(`-X ${chain}`);
      plan.chains.push(`${t} ${chain}`);
    }
    if (t === 'nat') {
      // -X of a chain that does not exist fails the load: the kernel must hold exactly the recorded ruleset.
      sections.push([`*${t}`, `:${markerChain(hash)} - [0:0]`, ...decl, ...rules, ...drop, `-X ${markerChain(old.hash)}`, 'COMMIT']);
    } else if (decl.length) {
      sections.push([`*${t}`, ...decl, ...rules, ...drop, 'COMMIT']);
    }
  }
  if (!names.includes('nat')) return null;
  plan.empty = plan.chains.length === 0 && !plan.createSets && destroySets.length === 0;
  plan.restore = sections.flat().join('\n') + '\n';
  return plan;
}
