/**
 * A service's ports as the IR holds them: sorted, disjoint inclusive ranges (a single port is a
 * range of one). Pure helpers shared by the validator and the targets.
 */
import type { PortRange } from './types.js';

/** "5683", "4000-4010", in the spec's own spelling. */
export function rangeText(r: PortRange): string {
  return r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`;
}

/** "5683, 5684, 4000-4010". */
export function portsText(ports: readonly PortRange[]): string {
  return ports.map(rangeText).join(', ');
}

/** How many ports the ranges cover. */
export function portCount(ports: readonly PortRange[]): number {
  return ports.reduce((n, r) => n + r.to - r.from + 1, 0);
}

/** The ranges with neighbours that touch joined: [5683, 5684] -> [5683-5684]. */
export function joinedRanges(ports: readonly PortRange[]): PortRange[] {
  const out: PortRange[] = [];
  for (const r of ports) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out;
}

/** The ports form one block without gaps (so one "LOW:HIGH" match holds them). */
export function isContiguous(ports: readonly PortRange[]): boolean {
  return joinedRanges(ports).length === 1;
}

/** Whether two sorted lists of disjoint ranges share a port: a merge walk, linear in both. */
export function rangesOverlap(a: readonly PortRange[], b: readonly PortRange[]): boolean {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i].to < b[j].from) i++;
    else if (b[j].to < a[i].from) j++;
    else return true;
  }
  return false;
}

/** The first port two sorted lists of disjoint ranges share, or null. */
export function firstSharedPort(a: readonly PortRange[], b: readonly PortRange[]): number | null {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i].to < b[j].from) i++;
    else if (b[j].to < a[i].from) j++;
    else return Math.max(a[i].from, b[j].from);
  }
  return null;
}

/** What a backend sends its connections to, as a comparable key: its port, or "the client's port". */
export function backendPortKey(b: { port: number; keepsPort: boolean }): string {
  return b.keepsPort ? 'kept' : String(b.port);
}
