/**
 * The positioned syntax tree of a spec: just maps, sequences and scalars,
 * each carrying where it was written. YAML and JSON specs both become this
 * tree; everything after it (ir/validate.ts) is format-agnostic.
 */
import type { SourceLocation } from '../diagnostics/diagnostic.js';

export type SNode = SMap | SSeq | SScalar;

export interface SMapEntry {
  key: string;
  keyLoc: SourceLocation;
  value: SNode;
}

export interface SMap {
  kind: 'map';
  entries: SMapEntry[];
  loc: SourceLocation;
}

export interface SSeq {
  kind: 'seq';
  items: SNode[];
  loc: SourceLocation;
}

export interface SScalar {
  kind: 'scalar';
  value: string | number | boolean | null;
  /** The scalar was quoted in the source ("80" is a string, 80 a number). */
  quoted: boolean;
  loc: SourceLocation;
}

export function describeNode(n: SNode): string {
  if (n.kind === 'map') return 'a mapping';
  if (n.kind === 'seq') return n.items.length === 0 ? 'an empty list' : 'a list';
  if (n.value === null) return 'nothing (null)';
  if (typeof n.value === 'string') return `the string "${n.value.length > 40 ? n.value.slice(0, 40) + '…' : n.value}"`;
  return `the ${typeof n.value} ${String(n.value)}`;
}
