/**
 * Typed reads from the positioned syntax tree through the spec definition (spec/definition.ts): a
 * block's reader knows its fields, so unknown fields, wrong types, ranges, enums and patterns are
 * checked here, once, each reported into the DiagnosticBag with the position of the value at fault.
 */
import { didYouMean, type DiagnosticBag, type SourceLocation } from '../diagnostics/diagnostic.js';
import { describeNode, type SMap, type SNode, type SScalar } from '../spec/ast.js';
import { BLOCKS, fieldOf, printable, type BlockDef, type BlockName, type FieldType } from '../spec/definition.js';
import { parseDuration } from './duration.js';
import { parseAddress } from './address.js';
import type { Family } from './types.js';

type Kind<K extends FieldType['kind']> = Extract<FieldType, { kind: K }>;

export interface Read<T> {
  value: T;
  loc: SourceLocation;
}

export class MapReader {
  private readonly byKey = new Map<string, { node: SNode; keyLoc: SourceLocation }>();
  readonly block: BlockDef;
  readonly what: string;

  constructor(readonly map: SMap, private readonly bag: DiagnosticBag, blockName: BlockName) {
    this.block = BLOCKS[blockName];
    this.what = this.block.what;
    const allowed = Object.keys(this.block.fields);
    for (const e of map.entries) {
      if (!Object.hasOwn(this.block.fields, e.key)) {
        const guess = didYouMean(e.key, allowed);
        bag.error('LBC2001', `unknown field "${printable(e.key)}" in ${this.what}`, e.keyLoc, [
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

  /** The field's type, which must be of the kind the caller reads (else the definition and the code disagree). */
  private type<K extends FieldType['kind']>(key: string, kind: K): Kind<K> {
    const t = fieldOf(this.block, key).type;
    if (t.kind !== kind) throw new Error(`${this.what}: field "${key}" is defined as ${t.kind}, read as ${kind}`);
    return t as Kind<K>;
  }

  private label(key: string): string {
    return `"${key}" in ${this.what}`;
  }

  scalar(key: string): SScalar | undefined {
    const n = this.node(key);
    if (!n) return undefined;
    if (n.kind !== 'scalar') {
      this.bag.error('LBC2002', `${this.label(key)} must be a single value, not ${describeNode(n)}`, n.loc);
      return undefined;
    }
    return n;
  }

  /** A string field without a pattern of its own (addresses, the backend shorthand). */
  string(key: string): Read<string> | undefined {
    const n = this.scalar(key);
    if (!n) return undefined;
    if (typeof n.value !== 'string') {
      this.bag.error('LBC2002', `${this.label(key)} must be a string, not ${describeNode(n)}`, n.loc);
      return undefined;
    }
    return { value: n.value, loc: n.loc };
  }

  integer(key: string): Read<number> | undefined {
    const t = this.type(key, 'integer');
    const n = this.scalar(key);
    if (!n) return undefined;
    return readInteger(n, this.label(key), t.min, t.max, this.bag);
  }

  boolean(key: string): Read<boolean> | undefined {
    this.type(key, 'boolean');
    const n = this.scalar(key);
    if (!n) return undefined;
    if (typeof n.value !== 'boolean') {
      this.bag.error('LBC2002', `${this.label(key)} must be true or false, not ${describeNode(n)}`, n.loc);
      return undefined;
    }
    return { value: n.value, loc: n.loc };
  }

  /** An enum field; aliases read as the value they stand for. */
  oneOf<T extends string>(key: string): Read<T> | undefined {
    const t = this.type(key, 'enum');
    const s = this.string(key);
    if (!s) return undefined;
    const v = enumValue(t, s.value);
    if (v === undefined) {
      const all = [...t.values, ...Object.keys(t.aliases ?? {})];
      const guess = didYouMean(s.value, all);
      const message = t.message ? t.message(s.value) : `${this.label(key)} must be one of ${t.values.join(', ')}, not "${printable(s.value)}"`;
      this.bag.error('LBC2003', message, s.loc, guess ? [`did you mean "${guess}"?`] : undefined);
      return undefined;
    }
    return { value: v as T, loc: s.loc };
  }

  /** A text field checked against its pattern. */
  text(key: string): Read<string> | undefined {
    const t = this.type(key, 'text');
    const n = this.scalar(key);
    if (!n) return undefined;
    const v = typeof n.value === 'string' ? n.value : t.numbers && typeof n.value === 'number' ? String(n.value) : undefined;
    if (v === undefined) {
      this.bag.error('LBC2002', `${this.label(key)} must be ${t.numbers ? 'text' : 'a string'}, not ${describeNode(n)}`, n.loc);
      return undefined;
    }
    if (!t.pattern.test(v)) {
      this.bag.error(t.invalid.code, t.invalid.message(v), n.loc, t.invalid.notes ? [...t.invalid.notes] : undefined);
      return undefined;
    }
    return { value: v, loc: n.loc };
  }

  /**
   * One of the field's words, or an address (not a block), parsed by ir/address.ts: { word } or
   * { address, family }. An address that is not canonical gets the address reader's message.
   */
  addressOrWord(key: string): Read<{ word: string } | { address: string; family: Family }> | undefined {
    const t = this.type(key, 'address-or-word');
    const s = this.string(key);
    if (!s) return undefined;
    if (t.words.includes(s.value)) return { value: { word: s.value }, loc: s.loc };
    const res = parseAddress(s.value, false);
    if (!res.ok) {
      const looksLikeWord = /^[a-z-]+$/i.test(s.value);
      const guess = looksLikeWord ? didYouMean(s.value, [...t.words]) : undefined;
      this.bag.error(
        'LBC2150',
        looksLikeWord ? `${this.label(key)} must be ${t.words.join(', ')} or an IP address, not "${printable(s.value)}"` : `${key}: ${res.message}`,
        s.loc,
        guess ? [`did you mean "${guess}"?`] : res.hint ? [res.hint] : undefined,
      );
      return undefined;
    }
    return { value: { address: res.prefix.address, family: res.family }, loc: s.loc };
  }

  /** A duration field in milliseconds; `what` names it in messages ("health interval", "sticky"). */
  duration(key: string, what: string): Read<number> | undefined {
    const t = this.type(key, 'duration');
    const n = this.scalar(key);
    if (!n) return undefined;
    const ms = readDuration(n, what, t, this.bag);
    return ms === undefined ? undefined : { value: ms, loc: n.loc };
  }
}

/** The canonical value of an enum spelling, or undefined. */
export function enumValue(t: Kind<'enum'>, v: string): string | undefined {
  if (t.values.includes(v)) return v;
  return t.aliases && Object.hasOwn(t.aliases, v) ? t.aliases[v] : undefined;
}

export function readInteger(n: SScalar, what: string, min: number, max: number, bag: DiagnosticBag): Read<number> | undefined {
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

/** Human form of a millisecond bound: 10ms, 1s, 1h. */
function bound(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/**
 * Durations need a unit. A bare number is refused rather than guessed: tools disagree on it
 * (HAProxy reads milliseconds, systemd and keepalived seconds), and a wrong guess is off by 1000.
 */
function readDuration(n: SScalar, what: string, t: Kind<'duration'>, bag: DiagnosticBag): number | undefined {
  const range = `between ${bound(t.minMs)} and ${bound(t.maxMs)}${t.about ? ` (${t.about})` : ''}`;
  if (typeof n.value === 'number') {
    const notes = Number.isInteger(n.value) && n.value >= 0 ? [`write ${n.value}s for seconds or ${n.value}ms for milliseconds`] : undefined;
    bag.error(t.code, `${what} needs a unit (ms, s, m, h${t.maxMs >= 86_400_000 ? ', d' : ''}): a bare number such as ${describeNode(n).replace(/^the number /, '')} is ambiguous`, n.loc, notes);
    return undefined;
  }
  const ms = typeof n.value === 'string' ? parseDuration(n.value) : null;
  if (ms === null) {
    bag.error(t.code, `${what} must be ${t.noun ?? 'a duration'} ${range} such as ${t.example}, not ${describeNode(n)}`, n.loc);
    return undefined;
  }
  if (ms < t.minMs || ms > t.maxMs) {
    bag.error(t.code, `${what} must be ${range}, not ${n.value}`, n.loc);
    return undefined;
  }
  if (t.wholeSeconds && ms % 1000 !== 0) {
    bag.error(t.code, `${what} must be a whole number of seconds, not ${n.value}`, n.loc);
    return undefined;
  }
  return ms;
}

export { printable as printableKey };
