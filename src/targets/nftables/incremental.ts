/**
 * Incremental apply for nftables: load only what changed since lbc's last apply, as one `nft -f`
 * batch (one transaction, nft(8) "-f"), with the full replace of `table inet lbc` as the fallback.
 *
 * How apply knows what is loaded now — a state file plus a marker in the kernel:
 * - After every successful apply lbc records the emitted text it loaded (../applied-state.ts). The
 *   next apply compares the new text with that one block by block (string comparisons: no digests),
 *   and reads line by line only the blocks that differ — of a changed map only the lines between its
 *   equal first and last lines — so one changed service among 10,000 costs milliseconds.
 * - The batch that loads the rules also creates an empty chain `loaded_<marker>`: after a full load
 *   the sha256 of the text, after a partial one the sha256 of the previous marker and the change. A
 *   partial batch begins by deleting the chain named after the marker the state file recorded and
 *   ends by adding the next one. Deleting a chain that does not exist fails, and a failed batch
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
import { nextMarker, type TextState } from '../applied-state.js';
import { differingLines } from '../text-diff.js';

// ---------------------------------------------------------------------------------------------
// The emitted ruleset as objects

export const TABLE_SPEC = 'inet lbc';
/** Name prefix of the marker chain: never jumped to, its name identifies lbc's last load. */
export const MARKER_PREFIX = 'loaded_';
export const markerChain = (marker: string): string => `${MARKER_PREFIX}${marker}`;

export interface NftChain {
  /** The base chain line ("type nat hook prerouting priority -100; policy accept;"), or null. */
  def: string | null;
  rules: string[];
  /** The chain's body text (its definition and rules), compared with the body of the same chain elsewhere. */
  body: string;
}

export interface NftSet {
  /** Definition lines ("type ipv4_addr", "timeout 600s", ...). */
  def: string[];
  body: string;
  /** Elements written in the file (an allow list), in file order; empty for a set the rules fill. */
  elements: string[];
}

export interface NftMap {
  /** Definition lines without the elements ("type ...", "flags interval"). */
  def: string[];
  /** key text -> verdict text, in file order. */
  elements: Map<string, string>;
}

export interface NftModel {
  sets: Map<string, NftSet>;
  maps: Map<string, NftMap>;
  chains: Map<string, NftChain>;
}

type BlockKind = 'set' | 'map' | 'chain';
interface Block {
  kind: BlockKind;
  /** Text between the header line and the closing "\t}" line: every line two tabs deep. */
  body: string;
}

const HEADER = /^\t(set|map|chain) ([A-Za-z_][A-Za-z0-9_.-]*) \{$/;
/** A newline that begins a line which is neither blank nor a comment of the table's top level. */
const SIGNIFICANT = /\n(?!\t#|\n)/g;
const ELEMENTS_OPEN = '\t\telements = {';

/**
 * The blocks of the `table inet lbc { ... }` of an emitted ruleset, in exactly the layout of
 * templates/nftables/ruleset.hbs (tab indentation, one statement per line, each block closed by a
 * line "\t}"), by name. Bodies are substrings, not copies, and are not split into lines here: at
 * 10,000 services only the few blocks that differ from the last load are ever read line by line.
 * Returns null for anything else, which makes apply load the file whole.
 */
function scanBlocks(text: string): Map<string, Block> | null {
  const opening = `\ntable ${TABLE_SPEC} {\n`;
  const start = text.indexOf(opening);
  if (start < 0) return null;
  const blocks = new Map<string, Block>();
  let pos = start + opening.length;
  for (;;) {
    // Comment lines are half the file's bytes: the regular expression engine skips them (and blank
    // lines) in one search instead of a step per line.
    SIGNIFICANT.lastIndex = pos - 1;
    if (!SIGNIFICANT.exec(text)) return null;
    pos = SIGNIFICANT.lastIndex;
    const eol = text.indexOf('\n', pos);
    if (eol < 0) return null;
    const line = text.slice(pos, eol);
    pos = eol + 1;
    if (line === '}') break;
    const m = HEADER.exec(line);
    if (!m || m[2].startsWith(MARKER_PREFIX) || blocks.has(m[2])) return null;
    // An empty body: the closing line follows the header at once.
    const close = text.startsWith('\t}\n', pos) ? pos - 1 : text.indexOf('\n\t}\n', pos);
    if (close < 0) return null;
    blocks.set(m[2], { kind: m[1] as BlockKind, body: close < pos ? '' : text.slice(pos, close) });
    pos = close + 4;
  }
  // Nothing but blank lines and comments may follow the table.
  if (text.slice(pos).split('\n').some((l) => l.trim() !== '' && !l.trim().startsWith('#'))) return null;
  return blocks;
}

/** Lines of a block body, each two tabs deep; null if one is not. */
function bodyLines(body: string): string[] | null {
  const lines = body === '' ? [] : body.split('\n');
  return lines.some((l) => !l.startsWith('\t\t') || l.length === 2) ? null : lines;
}

function parseChain(body: string): NftChain | null {
  const lines = bodyLines(body);
  if (!lines) return null;
  const rules = lines.map((l) => l.slice(2));
  const isBase = rules.length > 0 && rules[0].startsWith('type ');
  if (rules.some((r, i) => r.startsWith('\t') || r.startsWith('#') || (i > 0 && r.startsWith('type ')))) return null;
  return { def: isBase ? rules[0] : null, rules: isBase ? rules.slice(1) : rules, body };
}

function parseSet(body: string): NftSet | null {
  if (body.includes(`${ELEMENTS_OPEN}\n`)) {
    // A set with elements of its own (an allow list): split like a map.
    const parts = splitMap(body);
    const elements: string[] = [];
    return parts && readSetElements(parts.elements, elements) ? { def: parts.def, body, elements } : null;
  }
  const lines = bodyLines(body);
  const def = lines?.map((l) => l.slice(2));
  if (!def || def.some((d) => d.startsWith('\t') || d.includes('{'))) return null;
  return { def, body, elements: [] };
}

/** Set element lines ("\t\t\tELEMENT,") into `into`; false for anything else or a repeated element. */
function readSetElements(lines: string, into: string[]): boolean {
  if (lines === '') return true;
  const seen = new Set<string>();
  for (const l of lines.split('\n')) {
    if (!l.startsWith('\t\t\t') || l.startsWith('\t\t\t\t') || !l.endsWith(',') || l.includes(' : ')) return false;
    const e = l.slice(3, -1);
    if (seen.has(e)) return false;
    seen.add(e);
    into.push(e);
  }
  return true;
}

/** A set's definition text (its elements left out): what decides whether it must be created anew. */
function setDefinition(body: string): string | null {
  const at = body.indexOf(`${ELEMENTS_OPEN}\n`);
  return at < 0 ? body : body.slice(0, at);
}

/** A map body split where its elements begin: the definition lines, and the element lines' text. */
function splitMap(body: string): { def: string[]; elements: string } | null {
  const at = body.indexOf(`${ELEMENTS_OPEN}\n`);
  const head = at < 0 ? null : bodyLines(body.slice(0, Math.max(0, at - 1)));
  if (!head || !body.endsWith('\n\t\t}') || (at > 0 && body[at - 1] !== '\n')) return null;
  const def = head.map((l) => l.slice(2));
  if (def.some((d) => d.startsWith('\t') || d.includes('{'))) return null;
  const from = at + ELEMENTS_OPEN.length + 1;
  const to = body.length - '\n\t\t}'.length;
  return { def, elements: from > to ? '' : body.slice(from, to) };
}

/** Element lines ("\t\t\tKEY : VERDICT," — neither a key nor a verdict contains " : ") into `into`. */
function readElements(lines: string, into: Map<string, string>): boolean {
  if (lines === '') return true;
  for (const l of lines.split('\n')) {
    const sep = l.indexOf(' : ');
    if (!l.startsWith('\t\t\t') || l.startsWith('\t\t\t\t') || sep < 0 || !l.endsWith(',')) return false;
    const key = l.slice(3, sep);
    if (into.has(key)) return false;
    into.set(key, l.slice(sep + 3, -1));
  }
  return true;
}

function parseMap(body: string): NftMap | null {
  const parts = splitMap(body);
  if (!parts) return null;
  const elements = new Map<string, string>();
  return readElements(parts.elements, elements) ? { def: parts.def, elements } : null;
}

function addBlock(model: NftModel, name: string, b: Block): boolean {
  if (b.kind === 'chain') {
    const c = parseChain(b.body);
    if (c) model.chains.set(name, c);
    return c !== null;
  }
  if (b.kind === 'set') {
    const s = parseSet(b.body);
    if (s) model.sets.set(name, s);
    return s !== null;
  }
  const m = parseMap(b.body);
  if (m) model.maps.set(name, m);
  return m !== null;
}

const emptyModel = (): NftModel => ({ sets: new Map(), maps: new Map(), chains: new Map() });

/** Whether a partial load could ever follow a load of this text (it is in the emitter's layout). */
export const inLayout = (text: string): boolean => scanBlocks(text) !== null;

/** Every set, map (with its elements) and chain of an emitted ruleset, or null for text of another layout. */
export function parseNftRuleset(text: string): NftModel | null {
  const blocks = scanBlocks(text);
  if (!blocks) return null;
  const model = emptyModel();
  for (const [name, b] of blocks) if (!addBlock(model, name, b)) return null;
  return model;
}

/**
 * The elements of a map whose text changed, as two maps (before, after) holding only the element
 * lines between the longest common run of whole lines at the start and at the end. The lines outside
 * are the same text in both, and every key appears once per map, so they are loaded already and stay.
 * One changed service among 80,000 elements is then a handful of lines to read.
 */
function changedElements(before: string, after: string): { old: Map<string, string>; next: Map<string, string> } | null {
  const { head, tail } = differingLines(before, after);
  const middle = (s: string) => {
    const m = s.slice(head, s.length - tail);
    return m.endsWith('\n') ? m.slice(0, -1) : m;
  };
  const old = new Map<string, string>();
  const next = new Map<string, string>();
  return readElements(middle(before), old) && readElements(middle(after), next) ? { old, next } : null;
}

/**
 * What differs between two emitted rulesets, as two models holding only that: blocks present in one
 * of them, blocks whose text differs, and of a changed map only the elements between its equal
 * first and last lines. Blocks with the same text are left out of both. Null when either text is not
 * in the emitter's layout, or a changed block is not.
 *
 * When a set's definition changed (a new sticky timeout), the set is recreated, and every chain naming
 * it must be refilled, since a set in use cannot be deleted: then unchanged chains are included too,
 * and changed maps with all their elements (a rare change; simplicity over speed).
 */
export function nftChanges(before: string, after: string): { old: NftModel; next: NftModel } | null {
  const a = scanBlocks(before);
  const b = scanBlocks(after);
  if (!a || !b) return null;
  // Only a set's definition forces the refill; new elements of an allow list are loaded in place.
  const whole = [...b].some(([name, nb]) => nb.kind === 'set' && a.get(name)?.kind === 'set' && setDefinition(a.get(name)!.body) !== setDefinition(nb.body));
  const old = emptyModel();
  const next = emptyModel();
  for (const [name, nb] of b) {
    const ob = a.get(name);
    if (ob && ob.kind !== nb.kind) return null;
    if (ob && ob.body === nb.body && !(whole && nb.kind === 'chain')) continue;
    if (ob && nb.kind === 'set' && setDefinition(ob.body) === setDefinition(nb.body)) {
      const [x, y] = [splitMap(ob.body), splitMap(nb.body)];
      if (!x || !y) return null;
      const { head, tail } = differingLines(x.elements, y.elements);
      const middle = (t: string) => {
        const m = t.slice(head, t.length - tail);
        return m.endsWith('\n') ? m.slice(0, -1) : m;
      };
      const [eo, en]: [string[], string[]] = [[], []];
      if (!readSetElements(middle(x.elements), eo) || !readSetElements(middle(y.elements), en)) return null;
      old.sets.set(name, { def: x.def, body: ob.body, elements: eo });
      next.sets.set(name, { def: y.def, body: nb.body, elements: en });
      continue;
    }
    if (ob && nb.kind === 'map' && !whole) {
      const [x, y] = [splitMap(ob.body), splitMap(nb.body)];
      if (!x || !y) return null;
      const els = changedElements(x.elements, y.elements);
      if (!els) return null;
      old.maps.set(name, { def: x.def, elements: els.old });
      next.maps.set(name, { def: y.def, elements: els.next });
      continue;
    }
    if ((ob && !addBlock(old, name, ob)) || !addBlock(next, name, nb)) return null;
  }
  for (const [name, ob] of a) if (!b.has(name) && !addBlock(old, name, ob)) return null;
  return { old, next };
}

// ---------------------------------------------------------------------------------------------
// Recorded state and the plan of a partial transaction

const T = TABLE_SPEC;

/** Creates the marker chain; the full load appends it to the file, a partial load ends with it. */
export function addMarker(marker: string): string {
  return `add chain ${T} ${markerChain(marker)} { comment "names the ruleset lbc loaded last; lbc apply checks it"; }`;
}

/** Fails, and with it the whole batch, unless the kernel holds `marker`. */
export function deleteMarker(marker: string): string {
  return `delete chain ${T} ${markerChain(marker)}`;
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
  /** The marker the kernel holds once the script is loaded. */
  marker: string;
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
export function nftPlan(old: NftModel, next: NftModel, marker: string): NftPlan | null {
  const pre: string[] = []; // creations: sets, maps, chains
  const flush: string[] = [];
  const delElements: string[] = [];
  const drop: string[] = []; // maps and sets removed or recreated
  const addSets: string[] = [];
  const rules: string[] = [];
  const addElements: string[] = [];
  const delChains: string[] = [];
  const plan: NftPlan = { script: '', chains: [], elements: [], sets: [], maps: [], empty: false, marker };

  // Sets: new ones are created first; changed ones (a new timeout) are deleted and created again
  // once every rule naming them has been flushed, since a set in use cannot be deleted.
  const recreatedSets = new Set<string>();
  const setDef = (name: string, def: string[]) => `add set ${T} ${name} { ${def.map((l) => `${l};`).join(' ')} }`;
  for (const [name, set] of next.sets) {
    const had = old.sets.get(name);
    const fill = set.elements.length ? [`add element ${T} ${name} ${braces(set.elements)}`] : [];
    if (had === undefined) {
      pre.push(setDef(name, set.def), ...fill);
      plan.sets.push(name);
    } else if (setDefinition(had.body) !== setDefinition(set.body)) {
      recreatedSets.add(name);
      drop.push(`delete set ${T} ${name}`);
      addSets.push(setDef(name, set.def), ...fill);
      plan.sets.push(name);
    } else if (had.body !== set.body) {
      // The same set with other elements (an allow list changed): the elements differing are
      // deleted and added in this batch, so the set is never empty and no rule is touched.
      const keep = new Set(set.elements);
      const gone = had.elements.filter((e) => !keep.has(e));
      const was = new Set(had.elements);
      const added = set.elements.filter((e) => !was.has(e));
      if (gone.length) delElements.push(`delete element ${T} ${name} ${braces(gone)}`);
      if (added.length) addElements.push(`add element ${T} ${name} ${braces(added)}`);
      for (const e of gone) plan.elements.push({ map: name, key: e, op: 'delete' });
      for (const e of added) plan.elements.push({ map: name, key: e, op: 'add' });
    }
  }
  for (const name of old.sets.keys()) {
    if (!next.sets.has(name)) {
      drop.push(`delete set ${T} ${name}`);
      plan.sets.push(name);
    }
  }

  // Maps: a new map is created empty before the chains whose rules look it up are refilled.
  for (const [name, m] of next.maps) {
    const had = old.maps.get(name);
    if (had === undefined) {
      pre.push(`add map ${T} ${name} { ${m.def.map((l) => `${l};`).join(' ')} }`);
      if (m.elements.size) addElements.push(`add element ${T} ${name} ${braces([...m.elements].map(([k, v]) => `${k} : ${v}`))}`);
      plan.maps.push(name);
      for (const key of m.elements.keys()) plan.elements.push({ map: name, key, op: 'add' });
      continue;
    }
    if (had.def.join('\n') !== m.def.join('\n')) return null;
    const dels: string[] = [];
    const adds: string[] = [];
    for (const [key, verdict] of m.elements) {
      const was = had.elements.get(key);
      if (was === verdict) continue;
      // A verdict map has no "replace element": a key that exists with another verdict is refused
      // (EEXIST), so a changed element is deleted and added in the same batch.
      if (was !== undefined) dels.push(key);
      adds.push(`${key} : ${verdict}`);
      plan.elements.push({ map: name, key, op: was === undefined ? 'add' : 'replace' });
    }
    for (const key of had.elements.keys()) {
      if (!m.elements.has(key)) {
        dels.push(key);
        plan.elements.push({ map: name, key, op: 'delete' });
      }
    }
    if (dels.length) delElements.push(`delete element ${T} ${name} ${braces(dels)}`);
    if (adds.length) addElements.push(`add element ${T} ${name} ${braces(adds)}`);
  }
  for (const name of old.maps.keys()) {
    if (!next.maps.has(name)) {
      drop.push(`delete map ${T} ${name}`);
      plan.maps.push(name);
    }
  }

  // Chains: new ones are added empty first (map elements and gotos may name them), changed ones are
  // flushed and refilled, removed ones flushed and deleted at the end, when nothing names them.
  for (const [name, c] of next.chains) {
    const had = old.chains.get(name);
    if (had === undefined) {
      pre.push(c.def ? `add chain ${T} ${name} { ${c.def} }` : `add chain ${T} ${name}`);
      for (const r of c.rules) rules.push(`add rule ${T} ${name} ${r}`);
      plan.chains.push(name);
      continue;
    }
    if (had.def !== c.def) return null;
    if (had.body === c.body && !(recreatedSets.size && usesSet(c, recreatedSets))) continue;
    flush.push(`flush chain ${T} ${name}`);
    for (const r of c.rules) rules.push(`add rule ${T} ${name} ${r}`);
    plan.chains.push(name);
  }
  for (const name of old.chains.keys()) {
    if (next.chains.has(name)) continue;
    flush.push(`flush chain ${T} ${name}`);
    delChains.push(`delete chain ${T} ${name}`);
    plan.chains.push(name);
  }

  const body = [...pre, ...flush, ...delElements, ...drop, ...addSets, ...rules, ...addElements, ...delChains];
  plan.empty = body.length === 0;
  if (!plan.empty) plan.marker = nextMarker(marker, body.join('\n'));
  // The old marker first: if it is not there, the kernel refuses the batch before anything else.
  plan.script = [deleteMarker(marker), ...body, addMarker(plan.marker)].join('\n') + '\n';
  return plan;
}

/** The partial transaction from the recorded state to `text`, or null when only a full load will do. */
export function planFromState(state: TextState, text: string): NftPlan | null {
  if (state.texts.length !== 1) return null;
  const changes = nftChanges(state.texts[0], text);
  return changes && nftPlan(changes.old, changes.next, state.marker);
}
