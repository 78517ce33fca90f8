/**
 * Typed reads from the positioned syntax tree, each reporting into a
 * DiagnosticBag with the position of the offending value. Used by the
 * validator so every field check has one shape.
 */
import { didYouMean, type DiagnosticBag, type SourceLocation } from '../diagnostics/diagnostic.js';
import { describeNode, type SMap, type SNode, type SScalar } from '../spec/ast.js';

export class MapReader {
  private readonly byKey = new Map<string, { node: SNode; keyLoc: SourceLocation }>();

  constructor(readonly map: SMap, private readonly bag: DiagnosticBag, readonly what: string, allowed: readonly string[]) {
    for (const e of map.entries) {
      if (!allowed.includes(e.key)) {
        const guess = didYouMean(e.key, allowed);
        bag.error('LBC2001', `unknown field "${printableKey(e.key)}" in ${what}`, e.keyLoc, [
          guess ? `did you mean "${guess}"?` : `allowed fields: ${allowed.join(', ')}`,
        ]);
        continue;
      }
      this.byKey.set(e.key, { node: e.value, keyLoc: e.keyLoc });
    }
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  node(key: string): SNode | undefined {
    return this.byKey.get(key)?.node;
  }

  loc(key: string): SourceLocation | undefined {
    return this.byKey.get(key)?.node.loc;
  }

  keyLoc(key: string): SourceLocation | undefined {
    return this.byKey.get(key)?.keyLoc;
  }

  scalar(key: string): SScalar | undefined {
    const n = this.node(key);
    if (!n) return undefined;
    if (n.kind !== 'scalar') {
      this.bag.error('LBC2002', `"${key}" in ${this.what} must be a single value, not ${describeNode(n)}`, n.loc);
      return undefined;
    }
    return n;
  }

  string(key: string): { value: string; loc: SourceLocation } | undefined {
    const n = this.scalar(key);
    if (!n) return undefined;
    if (typeof n.value !== 'string') {
      this.bag.error('LBC2002', `"${key}" in ${this.what} must be a string, not ${describeNode(n)}`, n.loc);
      return undefined;
    }
    return { value: n.value, loc: n.loc };
  }

  integer(key: string, min: number, max: number): { value: number; loc: SourceLocation } | undefined {
    const n = this.scalar(key);
    if (!n) return undefined;
    return readInteger(n, `"${key}" in ${this.what}`, min, max, this.bag);
  }

  boolean(key: string): { value: boolean; loc: SourceLocation } | undefined {
    const n = this.scalar(key);
    if (!n) return undefined;
    if (typeof n.value !== 'boolean') {
      this.bag.error('LBC2002', `"${key}" in ${this.what} must be true or false, not ${describeNode(n)}`, n.loc);
      return undefined;
    }
    return { value: n.value, loc: n.loc };
  }

  oneOf<T extends string>(key: string, choices: readonly T[]): { value: T; loc: SourceLocation } | undefined {
    const s = this.string(key);
    if (!s) return undefined;
    if (!(choices as readonly string[]).includes(s.value)) {
      const guess = didYouMean(s.value, choices);
      this.bag.error('LBC2003', `"${key}" in ${this.what} must be one of ${choices.join(', ')}, not "${printableKey(s.value)}"`, s.loc, guess ? [`did you mean "${guess}"?`] : undefined);
      return undefined;
    }
    return { value: s.value as T, loc: s.loc };
  }
}

export function readInteger(n: SScalar, what: string, min: number, max: number, bag: DiagnosticBag): { value: number; loc: SourceLocation } | undefined {
  if (typeof n.value !== 'number' || !Number.isInteger(n.value)) {
    bag.error('LBC2002', `${what} must be a whole number, not ${describeNode(n)}`, n.loc);
    return undefined;
  }
  if (n.value < min || n.value > max) {
    bag.error('LBC2004', `${what} must be between ${min} and ${max}, not ${n.value}`, n.loc);
    return undefined;
  }
  return { value: n.value, loc: n.loc };
}

export function printableKey(s: string): string {
  const t = s.replace(/[^\x20-\x7e]/g, '?');
  return t.length > 40 ? `${t.slice(0, 40)}…` : t;
}
