/**
 * A service's client allow list, normalized: sorted by address, every block that lies inside another
 * (or repeats it) left out, so targets can load the list into any set or table type — nft interval
 * sets refuse overlapping elements, pf and ipset do not care — and the same clients are let in.
 */
import type { SourceLocation } from '../diagnostics/diagnostic.js';
import { v4ToInt, v6ToBigInt } from './address.js';
import type { Family, Prefix } from './types.js';

export interface AllowEntry {
  prefix: Prefix;
  loc: SourceLocation;
}

export interface NormalizedAllow {
  /** The blocks that matter, sorted by address. */
  kept: Prefix[];
  /** Entries that change nothing: each is inside (or equal to) `by`. */
  covered: Array<{ entry: AllowEntry; by: AllowEntry }>;
  /** An entry that is the whole address space (0.0.0.0/0, ::/0), if any. */
  everything: AllowEntry | null;
}

function start(p: Prefix, family: Family): bigint {
  return family === 'ipv4' ? BigInt(v4ToInt(p.address)) : v6ToBigInt(p.address);
}

/** Sorted by start, shorter prefixes first; prefixes nest or are disjoint, so one pass finds the covered ones. */
export function normalizeAllow(entries: readonly AllowEntry[], family: Family): NormalizedAllow {
  const bits = family === 'ipv4' ? 32n : 128n;
  const ranged = entries.map((entry, order) => {
    const s = start(entry.prefix, family);
    return { entry, order, s, e: s + (1n << (bits - BigInt(entry.prefix.prefixLength))) - 1n };
  });
  ranged.sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : a.entry.prefix.prefixLength - b.entry.prefix.prefixLength || a.order - b.order));
  const kept: typeof ranged = [];
  const covered: NormalizedAllow['covered'] = [];
  for (const r of ranged) {
    const last = kept[kept.length - 1];
    if (last && r.s <= last.e) covered.push({ entry: r.entry, by: last.entry });
    else kept.push(r);
  }
  const everything = entries.find((e) => e.prefix.prefixLength === 0) ?? null;
  return { kept: kept.map((r) => r.entry.prefix), covered, everything };
}
