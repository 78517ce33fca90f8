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
  /** The items went to an ItemSink as they were read and are not kept here (the spec's "services"). */
  streamed?: boolean;
}

/** Receives each item of the spec's top-level "services" list as soon as it is read. */
export type ItemSink = (item: SNode) => void;

/** Thrown by an ItemSink that has reported why reading must stop (a limit); parsers end quietly. */
export class StopReading extends Error {
  constructor() {
    super('stop reading the spec');
  }
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
  if (n.kind === 'seq') return n.items.length === 0 && !n.streamed ? 'an empty list' : 'a list';
  if (n.value === null) return 'nothing (null)';
  if (typeof n.value === 'string') return `the string "${n.value.length > 40 ? n.value.slice(0, 40) + '…' : n.value}"`;
  return `the ${typeof n.value} ${String(n.value)}`;
}
