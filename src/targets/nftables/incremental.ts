/**
 * Incremental apply for nftables: load only what changed since lbc's last apply, as one `nft -f`
 * batch (one transaction, nft(8) "-f"), with the full replace of `table inet lbc` as the fallback.
 *
 * How apply knows what is loaded now — a state file plus a marker in the kernel:
 * - After every successful apply lbc writes a state file (on a host /run/lbc/nftables.json: /run is a
 *   tmpfs, so after a reboot there is none and the first apply is a full one; see IncrementalContext) holding a fingerprint of
 *   every set, map definition and chain it loaded, every dispatch map element, and the sha256 of the
 *   emitted file.
 * - The batch that loads the rules also creates an empty chain `loaded_<that sha256>`. A partial batch
 *   begins by deleting the chain named after the hash the state file recorded and ends by adding the
 *   one named after the new hash. Deleting a chain that does not exist fails, and a failed batch
 *   changes nothing, so the partial load applies only if the kernel holds exactly the table lbc last
 *   loaded — checked by the kernel inside the same transaction, with no extra query and no window
 *   between a check and the load. A missing table (deleted, a reboot, another network namespace), a
 *   table loaded by hand or by another lbc, or a state file from elsewhere all make the partial batch
 *   fail, and apply then loads the whole file. The state file is removed before anything is changed
 *   and written only after the load succeeded, so a failed or interrupted apply leads to a full one.
 * Why not read the ruleset back from the kernel (`nft -j list table`) and diff that: listing costs
 * about as much as loading (seconds at 10,000 services), and the kernel prints rules in its own
 * canonical form, not the text lbc emitted, so the comparison would be fragile. What the marker cannot
 * see is an edit *inside* lbc's table by someone else (a flushed service chain, say): lbc owns
 * `table inet lbc`, and such an edit lasts until the next full apply (remove the state file, or
 * set fullApply in the ApplyContext).
 *
 * The marker chain's comment needs Linux 5.10 (NFTA_CHAIN_USERDATA); the emitted ruleset already
 * needs 5.6 (concatenated interval maps), so this raises the floor slightly.
 */
import { hash as digest } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ApplyContext } from '../target.js';

// ---------------------------------------------------------------------------------------------
// State files (shared with the iptables targets)

/** The ApplyContext fields incremental apply reads (stateDir, fullApply) are declared on ApplyContext itself. */
export type IncrementalContext = ApplyContext;
export const STATE_VERSION = 1;

/** Where the state file of a target lives, or null when no state is kept. */
export function stateFilePath(ctx: ApplyContext, target: string): string | null {
  const dir = ctx.stateDir ?? null;
  return dir ? join(dir, `${target}.json`) : null;
}

export const sha256 = (text: string): string => digest('sha256', text, 'hex');

/**
 * Fingerprint of an object's text, compared only with the fingerprint of the same object's previous
 * text (change detection of lbc's own output, not an integrity check): sha1, the fastest one-shot
 * digest here, matters at 10,000 chains.
 */
export const fingerprint = (text: string): string => digest('sha1', text, 'hex');

/** The state file's content, or null when there is none or it is not one this version wrote. */
export async function readState<T extends { version: number; target: string }>(file: string | null, target: string): Promise<T | null> {
  if (!file) return null;
  try {
    const data = JSON.parse(await readFile(file, 'utf8')) as T;
    return data && data.version === STATE_VERSION && data.target === target ? data : null;
  } catch {
    return null;
  }
}

/**
 * Remove the state file before changing anything: if the change then fails half-way (iptables-restore
 * of several tables, an ipset command after the rules), the next apply is a full one.
 * Returns false when the file exists and cannot be removed; then no state may be recorded.
 */
export async function dropState(file: string | null): Promise<boolean> {
  if (!file) return true;
  try {
    await rm(file, { force: true });
    return true;
  } catch {
    return false;
  }
}

/** Write atomically (temporary file + rename), so a reader never sees half a state. Failure only costs the next apply a full load. */
export async function writeState(file: string | null, data: unknown, log: (line: string) => void): Promise<void> {
  if (!file) return;
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(tmp, JSON.stringify(data), { mode: 0o600 });
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    log(`could not record what was loaded in ${file} (${(e as Error).message}); the next apply will be a full one`);
  }
}

// ---------------------------------------------------------------------------------------------
// The emitted ruleset as objects

export const TABLE_SPEC = 'inet lbc';
/** Name prefix of the marker chain: never jumped to, its name is the sha256 of what was loaded. */
export const MARKER_PREFIX = 'loaded_';
export const markerChain = (hash: string): string => `${MARKER_PREFIX}${hash}`;

export interface NftChain {
  /** The base chain line ("type nat hook prerouting priority -100; policy accept;"), or null. */
  def: string | null;
  rules: string[];
  /** Fingerprint of the chain's body text (its definition and rules). */
  fp: string;
}

export interface NftSet {
  /** Definition lines ("type ipv4_addr", "timeout 600s", ...). */
  def: string[];
  fp: string;
}

export interface NftMap {
  /** Definition lines without the elements ("type ...", "flags interval"). */
  def: string[];
  fp: string;
  /** key text -> verdict text, in file order. */
  elements: Map<string, string>;
}

export interface NftModel {
  sets: Map<string, NftSet>;
  maps: Map<string, NftMap>;
  chains: Map<string, NftChain>;
}

const HEADER = /^\t(set|map|chain) ([A-Za-z_][A-Za-z0-9_.-]*) \{$/;

/**
 * Read the `table inet lbc { ... }` block of an emitted ruleset, in exactly the layout of
 * templates/nftables/ruleset.hbs (tab indentation, one statement per line, each block closed by a
 * line "\t}"). Scanning block by block with indexOf keeps this to a few tens of milliseconds for
 * 10,000 services. Returns null for anything else, which makes apply load the file whole.
 */
export function parseNftRuleset(text: string): NftModel | null {
  const opening = `\ntable ${TABLE_SPEC} {\n`;
  const start = text.indexOf(opening);
  if (start < 0) return null;
  const model: NftModel = { sets: new Map(), maps: new Map(), chains: new Map() };
  let pos = start + opening.length;
  for (;;) {
    const eol = text.indexOf('\n', pos);
    if (eol < 0) return null;
    // Comment lines are most of the file's lines: skip them without copying them out.
    if (eol === pos || text.startsWith('\t#', pos)) {
      pos = eol + 1;
      continue;
    }
    const line = text.slice(pos, eol);
    pos = eol + 1;
    if (line === '}') break;
    const m = HEADER.exec(line);
    if (!m || m[2].startsWith(MARKER_PREFIX)) return null;
    const [, kind, name] = m;
    if (model.sets.has(name) || model.maps.has(name) || model.chains.has(name)) return null;
    const close = text.indexOf('\n\t}\n', pos - 1);
    if (close < 0) return null;
    const body = text.slice(pos, close);
    pos = close + 4;
    // Every body line is indented by two tabs (three inside a map's elements).
    const lines = body === '' ? [] : body.split('\n');
    if (lines.some((l) => !l.startsWith('\t\t') || l.length === 2)) return null;
    const fp = fingerprint(body);
    if (kind === 'chain') {
      const rules = lines.map((l) => l.slice(2));
      const isBase = rules.length > 0 && rules[0].startsWith('type ');
      if (rules.some((r, i) => r.startsWith('\t') || r.startsWith('#') || (i > 0 && r.startsWith('type ')))) return null;
      model.chains.set(name, { def: isBase ? rules[0] : null, rules: isBase ? rules.slice(1) : rules, fp });
    } else if (kind === 'set') {
      const def = lines.map((l) => l.slice(2));
      if (def.some((d) => d.startsWith('\t') || d.includes('{'))) return null;
      model.sets.set(name, { def, fp });
    } else {
      const at = lines.indexOf('\t\telements = {');
      if (at < 0 || lines[lines.length - 1] !== '\t\t}') return null;
      const def = lines.slice(0, at).map((l) => l.slice(2));
      if (def.some((d) => d.startsWith('\t') || d.includes('{'))) return null;
      const elements = new Map<string, string>();
      for (const l of lines.slice(at + 1, -1)) {
        // "KEY : VERDICT," — neither a key nor a verdict contains " : ".
        const sep = l.indexOf(' : ');
        if (!l.startsWith('\t\t\t') || l.startsWith('\t\t\t\t') || sep < 0 || !l.endsWith(',')) return null;
        const key = l.slice(3, sep);
        if (elements.has(key)) return null;
        elements.set(key, l.slice(sep + 3, -1));
      }
      model.maps.set(name, { def, fp: fingerprint(def.join('\n')), elements });
    }
  }
  // Nothing but blank lines and comments may follow the table.
  if (text.slice(pos).split('\n').some((l) => l.trim() !== '' && !l.trim().startsWith('#'))) return null;
  return model;
}

// ---------------------------------------------------------------------------------------------
// Recorded state and the plan of a partial transaction

export interface NftState {
  version: number;
  target: 'nftables';
  /** sha256 of the emitted file: also the comment of the marker chain. */
  hash: string;
  sets: Record<string, string>;
  maps: Record<string, { def: string; elements: Record<string, string> }>;
  chains: Record<string, { def: string | null; rules: string }>;
}

export function nftState(model: NftModel, hash: string): NftState {
  const state: NftState = { version: STATE_VERSION, target: 'nftables', hash, sets: {}, maps: {}, chains: {} };
  for (const [name, set] of model.sets) state.sets[name] = set.fp;
  for (const [name, m] of model.maps) state.maps[name] = { def: m.fp, elements: Object.fromEntries(m.elements) };
  for (const [name, c] of model.chains) state.chains[name] = { def: c.def, rules: c.fp };
  return state;
}

const T = TABLE_SPEC;

/** Creates the marker chain; the full load appends it to the file, a partial load ends with it. */
export function addMarker(hash: string): string {
  return `add chain ${T} ${markerChain(hash)} { comment "sha256 of the ruleset lbc loaded last; lbc apply checks it"; }`;
}

/** Fails, and with it the whole batch, unless the kernel holds the marker of `hash`. */
export function deleteMarker(hash: string): string {
  return `delete chain ${T} ${markerChain(hash)}`;
}

export interface NftPlan {
  /** The `nft -f` input. */
  script: string;
  /** What it touches, for the log and for tests. */
  chains: string[];
  elements: Array<{ map: string; key: string; op: 'add' | 'delete' | 'replace' }>;
  sets: string[];
  maps: string[];
  /** Nothing but the marker changes. */
  empty: boolean;
}

const braces = (items: string[]) => `{ ${items.join(', ')} }`;

/** Whether a chain's rules name one of the sets (`@name`, then a space or the end of the rule). */
function usesSet(c: NftChain, sets: ReadonlySet<string>): boolean {
  return c.rules.some((r) => [...r.matchAll(/@([A-Za-z0-9_.-]+)/g)].some((m) => sets.has(m[1])));
}

/**
 * The partial transaction turning what `old` recorded into `next`, or null when the difference is
 * of a kind only a full load handles (a base chain's hook or type changed, a map's type changed, a
 * chain became a base chain). Unchanged chains, sets and elements are not mentioned, so a service
 * whose chain is untouched keeps its `numgen inc` counters and its affinity sets; a changed
 * service's chain is flushed and refilled, so its rotation restarts from its first backend.
 */
export function nftPlan(old: NftState, next: NftModel, hash: string): NftPlan | null {
  const pre: string[] = []; // creations: sets, maps, chains
  const flush: string[] = [];
  const delElements: string[] = [];
  const drop: string[] = []; // maps and sets removed or recreated
  const addSets: string[] = [];
  const rules: string[] = [];
  const addElements: string[] = [];
  const delChains: string[] = [];
  const plan: NftPlan = { script: '', chains: [], elements: [], sets: [], maps: [], empty: false };

  // Sets: new ones are created first; changed ones (a new timeout) are deleted and created again
  // once every rule naming them has been flushed, since a set in use cannot be deleted.
  const recreatedSets = new Set<string>();
  const setDef = (name: string, def: string[]) => `add set ${T} ${name} { ${def.map((l) => `${l};`).join(' ')} }`;
  for (const [name, set] of next.sets) {
    const had = old.sets[name];
    if (had === undefined) {
      pre.push(setDef(name, set.def));
      plan.sets.push(name);
    } else if (had !== set.fp) {
      recreatedSets.add(name);
      drop.push(`delete set ${T} ${name}`);
      addSets.push(setDef(name, set.def));
      plan.sets.push(name);
    }
  }
  for (const name of Object.keys(old.sets)) {
    if (!next.sets.has(name)) {
      drop.push(`delete set ${T} ${name}`);
      plan.sets.push(name);
    }
  }

  // Maps: a new map is created empty before the chains whose rules look it up are refilled.
  for (const [name, m] of next.maps) {
    const had = old.maps[name];
    if (had === undefined) {
      pre.push(`add map ${T} ${name} { ${m.def.map((l) => `${l};`).join(' ')} }`);
      if (m.elements.size) addElements.push(`add element ${T} ${name} ${braces([...m.elements].map(([k, v]) => `${k} : ${v}`))}`);
      plan.maps.push(name);
      for (const key of m.elements.keys()) plan.elements.push({ map: name, key, op: 'add' });
      continue;
    }
    if (had.def !== m.fp) return null;
    const dels: string[] = [];
    const adds: string[] = [];
    for (const [key, verdict] of m.elements) {
      const was = had.elements[key];
      if (was === verdict) continue;
      // A verdict map has no "replace element": a key that exists with another verdict is refused
      // (EEXIST), so a changed element is deleted and added in the same batch.
      if (was !== undefined) dels.push(key);
      adds.push(`${key} : ${verdict}`);
      plan.elements.push({ map: name, key, op: was === undefined ? 'add' : 'replace' });
    }
    for (const key of Object.keys(had.elements)) {
      if (!m.elements.has(key)) {
        dels.push(key);
        plan.elements.push({ map: name, key, op: 'delete' });
      }
    }
    if (dels.length) delElements.push(`delete element ${T} ${name} ${braces(dels)}`);
    if (adds.length) addElements.push(`add element ${T} ${name} ${braces(adds)}`);
  }
  for (const name of Object.keys(old.maps)) {
    if (!next.maps.has(name)) {
      drop.push(`delete map ${T} ${name}`);
      plan.maps.push(name);
    }
  }

  // Chains: new ones are added empty first (map elements and gotos may name them), changed ones are
  // flushed and refilled, removed ones flushed and deleted at the end, when nothing names them.
  for (const [name, c] of next.chains) {
    const had = old.chains[name];
    if (had === undefined) {
      pre.push(c.def ? `add chain ${T} ${name} { ${c.def} }` : `add chain ${T} ${name}`);
      for (const r of c.rules) rules.push(`add rule ${T} ${name} ${r}`);
      plan.chains.push(name);
      continue;
    }
    if (had.def !== c.def) return null;
    if (had.rules === c.fp && !(recreatedSets.size && usesSet(c, recreatedSets))) continue;
    flush.push(`flush chain ${T} ${name}`);
    for (const r of c.rules) rules.push(`add rule ${T} ${name} ${r}`);
    plan.chains.push(name);
  }
  for (const name of Object.keys(old.chains)) {
    if (next.chains.has(name)) continue;
    flush.push(`flush chain ${T} ${name}`);
    delChains.push(`delete chain ${T} ${name}`);
    plan.chains.push(name);
  }

  const body = [...pre, ...flush, ...delElements, ...drop, ...addSets, ...rules, ...addElements, ...delChains];
  plan.empty = body.length === 0;
  // The old marker first: if it is not there, the kernel refuses the batch before anything else.
  plan.script = [deleteMarker(old.hash), ...body, addMarker(hash)].join('\n') + '\n';
  return plan;
}
