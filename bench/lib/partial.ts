/**
 * Partial transactions the benchmark derives from two emitted rulesets (before → after), to measure
 * what an incremental apply *could* cost. The targets do not produce these themselves; the figures
 * made from them are labelled as such in the output.
 *
 * iptables: an `iptables-restore --noflush` input declaring only the chains whose rules differ
 *   (declaring a chain under --noflush flushes it; netfilter-facts.md), their new rules, and -X for
 *   chains that disappeared.
 * nftables: `flush chain` + re-add for each chain whose body differs, and `delete element` /
 *   `add element` for map or set elements that differ, in one `nft -f` batch.
 * Returns null when the difference is of a kind these cannot express (then nothing is measured).
 */

type ChainRules = Map<string, string[]>;

function iptablesTables(text: string): Map<string, ChainRules> {
  const tables = new Map<string, ChainRules>();
  let cur: ChainRules | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      cur = new Map();
      tables.set(line.slice(1).trim(), cur);
    } else if (!cur || line.startsWith('#') || line === 'COMMIT') {
      continue;
    } else if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0];
      if (!cur.has(name)) cur.set(name, []);
    } else if (line.startsWith('-A ')) {
      const name = line.split(' ')[1];
      if (!cur.has(name)) cur.set(name, []);
      cur.get(name)!.push(line);
    }
  }
  return tables;
}

export interface Partial {
  text: string;
  /** Chains (and maps) the partial transaction touches. */
  touched: string[];
}

export function iptablesPartial(before: string, after: string): Partial | null {
  const a = iptablesTables(before);
  const b = iptablesTables(after);
  const out: string[] = [];
  const touched: string[] = [];
  for (const [table, chains] of b) {
    const old = a.get(table) ?? new Map<string, string[]>();
    const decl: string[] = [];
    const rules: string[] = [];
    const drop: string[] = [];
    for (const [chain, lines] of chains) {
      const prev = old.get(chain);
      if (prev && prev.length === lines.length && prev.every((l, i) => l === lines[i])) continue;
      // A built-in chain's rules are not all lbc's; replacing them is beyond a partial load.
      if (/^[A-Z]+$/.test(chain) && !chain.includes('-')) return null;
      decl.push(`:${chain} - [0:0]`);
      rules.push(...lines);
      touched.push(chain);
    }
    for (const chain of old.keys()) {
      if (chains.has(chain)) continue;
      decl.push(`:${chain} - [0:0]`);
      drop.push(`-X ${chain}`);
      touched.push(chain);
    }
    if (decl.length) out.push(`*${table}`, ...decl, ...rules, ...drop, 'COMMIT');
  }
  for (const table of a.keys()) if (!b.has(table)) return null;
  return { text: out.join('\n') + '\n', touched };
}

interface NftBlock {
  kind: 'chain' | 'map' | 'set';
  name: string;
  /** Body lines without comments, trimmed. */
  body: string[];
  /** For maps and sets: the elements (text of each, without the trailing comma). */
  elements: string[] | null;
}

interface NftTable {
  header: string;
  family: string;
  name: string;
  blocks: Map<string, NftBlock>;
}

/** Reads the layout lbc's emitter (and the reference) print: one statement per line, blocks by braces. */
function nftTables(text: string): NftTable[] | null {
  const tables: NftTable[] = [];
  let table: NftTable | null = null;
  let block: NftBlock | null = null;
  let inElements = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (!table) {
      const m = /^table (\S+) (\S+) \{$/.exec(line);
      if (m) {
        table = { header: line, family: m[1], name: m[2], blocks: new Map() };
        tables.push(table);
      }
      continue;
    }
    if (!block) {
      if (line === '}') {
        table = null;
        continue;
      }
      const m = /^(chain|map|set) (\S+) \{$/.exec(line);
      if (!m) return null;
      block = { kind: m[1] as NftBlock['kind'], name: m[2], body: [], elements: m[1] === 'chain' ? null : [] };
      continue;
    }
    if (inElements) {
      if (line === '}') {
        inElements = false;
        continue;
      }
      for (const e of line.split(/,\s*/)) if (e.trim()) block.elements!.push(e.trim());
      continue;
    }
    if (line === '}') {
      table.blocks.set(`${block.kind} ${block.name}`, block);
      block = null;
      continue;
    }
    if (block.kind !== 'chain' && /^elements = \{/.test(line)) {
      const rest = line.replace(/^elements = \{/, '').trim();
      if (rest.endsWith('}')) {
        for (const e of rest.slice(0, -1).split(/,\s*/)) if (e.trim()) block.elements!.push(e.trim());
      } else {
        inElements = true;
        for (const e of rest.split(/,\s*/)) if (e.trim()) block.elements!.push(e.trim());
      }
      continue;
    }
    block.body.push(line);
  }
  return tables;
}

const elementKey = (e: string) => e.split(' : ')[0];

export function nftPartial(before: string, after: string): Partial | null {
  const a = nftTables(before);
  const b = nftTables(after);
  if (!a || !b || a.length !== b.length) return null;
  const out: string[] = [];
  const touched: string[] = [];
  for (let t = 0; t < b.length; t++) {
    const [ta, tb] = [a[t], b[t]];
    if (ta.header !== tb.header) return null;
    const id = `${tb.family} ${tb.name}`;
    for (const [key, blk] of tb.blocks) {
      const old = ta.blocks.get(key);
      if (!old) return null;
      const same = (x: string[], y: string[]) => x.length === y.length && x.every((l, i) => l === y[i]);
      if (blk.kind === 'chain') {
        if (same(old.body, blk.body)) continue;
        touched.push(key);
        out.push(`flush chain ${id} ${blk.name}`, `table ${id} {`, `\tchain ${blk.name} {`, ...blk.body.map((l) => `\t\t${l}`), '\t}', '}');
      } else {
        if (!same(old.body, blk.body)) return null;
        const oldSet = new Set(old.elements);
        const newSet = new Set(blk.elements);
        const gone = old.elements!.filter((e) => !newSet.has(e));
        const added = blk.elements!.filter((e) => !oldSet.has(e));
        if (!gone.length && !added.length) continue;
        touched.push(key);
        if (gone.length) out.push(`delete element ${id} ${blk.name} { ${gone.map(elementKey).join(', ')} }`);
        if (added.length) out.push(`add element ${id} ${blk.name} { ${added.join(', ')} }`);
      }
    }
    for (const key of ta.blocks.keys()) if (!tb.blocks.has(key)) return null;
  }
  return { text: out.join('\n') + '\n', touched };
}
