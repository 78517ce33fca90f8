/**
 * YAML spec text → positioned syntax tree, from js-yaml's event stream (parseEvents: every scalar
 * and collection with its offset in the text, one fast pass for any YAML style). What is ours is
 * only the tree: values resolved by the YAML 1.2 core schema (js-yaml's own tags), positions as
 * line and column, merge keys, and the refusals a spec needs — more than one document, duplicate
 * keys, aliases that multiply the document, unknown tags.
 */
import {
  boolCoreTag,
  COLLECTION_STYLE,
  EVENT_ID,
  floatCoreTag,
  getScalarValue,
  intCoreTag,
  NOT_RESOLVED,
  nullCoreTag,
  parseEvents,
  SCALAR_STYLE,
  YAMLException,
  type Event,
  type MappingEvent,
  type ScalarEvent,
  type SequenceEvent,
  type ScalarTagDefinition,
} from 'js-yaml';
import type { DiagnosticBag, SourceLocation } from '../diagnostics/diagnostic.js';
import { StopReading, type ItemSink, type SMap, type SMapEntry, type SNode, type SScalar, type SSeq } from './ast.js';
import { MAX_ALIAS_NODES, MAX_DEPTH, MAX_NODES } from './limits.js';
import { Positions } from './positions.js';

/** The core schema's implicit tags, in its resolution order (YAML 1.2.2 §10.3.2). */
const IMPLICIT: readonly ScalarTagDefinition[] = [nullCoreTag, boolCoreTag, intCoreTag, floatCoreTag];
/** The implicit tags that can match a plain scalar, by its first character, in resolution order (most scalars of a spec match none). */
const ANY_FIRST = IMPLICIT.filter((t) => t.implicitFirstChars === null);
const IMPLICIT_BY_FIRST = new Map<string, readonly ScalarTagDefinition[]>(
  [...new Set(IMPLICIT.flatMap((t) => t.implicitFirstChars ?? []))].map((c) => [c, IMPLICIT.filter((t) => t.implicitFirstChars === null || t.implicitFirstChars.includes(c))]),
);
const YAML_TAG = 'tag:yaml.org,2002:';
const EXPLICIT: Readonly<Record<string, ScalarTagDefinition | 'str' | 'map' | 'seq'>> = {
  [`${YAML_TAG}str`]: 'str',
  [`${YAML_TAG}map`]: 'map',
  [`${YAML_TAG}seq`]: 'seq',
  [`${YAML_TAG}null`]: nullCoreTag,
  [`${YAML_TAG}bool`]: boolCoreTag,
  [`${YAML_TAG}int`]: intCoreTag,
  [`${YAML_TAG}float`]: floatCoreTag,
};
const NO_RANGE = -1;

/** Abandons the walk with one diagnostic (the tree is refused as a whole). */
class Stop extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly loc: SourceLocation,
  ) {
    super(message);
  }
}

interface MapFrame {
  kind: 'map';
  node: SMap;
  anchor: string | null;
  /** The key waiting for its value. */
  key: { text: string; loc: SourceLocation; merge: boolean } | null;
  /** Keys written so far, once the mapping is long enough that scanning its entries would cost. */
  seen: Set<string> | null;
  /** Sources of `<<` entries, in the order written (the first one wins a key). */
  merges: SNode[] | null;
  size: number;
}

interface SeqFrame {
  kind: 'seq';
  node: SSeq;
  anchor: string | null;
  size: number;
  /** The spec's "services" list: its items go to the sink instead of into the tree. */
  stream: boolean;
}

type Frame = MapFrame | SeqFrame;

/** `sink`, if given, receives each item of the top-level "services" list as soon as it is read. */
export function parseYamlSpec(text: string, file: string, bag: DiagnosticBag, sink?: ItemSink): SNode | null {
  const pos = new Positions(text, file);
  let events: Event[];
  try {
    events = parseEvents(text, { maxDepth: MAX_DEPTH });
  } catch (e) {
    if (!(e instanceof YAMLException)) throw e;
    const at = pos.at(Math.min(e.mark?.position ?? 0, text.length));
    if (/nesting exceeded maxDepth/.test(e.reason)) bag.error('LBC1007', `the spec is nested more than ${MAX_DEPTH} levels deep; no spec needs that`, at);
    else bag.error('LBC1003', `YAML syntax: ${e.reason}`, at);
    return null;
  }
  try {
    return new TreeBuilder(text, pos, events, sink ?? null).build();
  } catch (e) {
    if (e instanceof StopReading) return null;
    if (!(e instanceof Stop)) throw e;
    bag.error(e.code, e.message, e.loc);
    return null;
  }
}

class TreeBuilder {
  private readonly stack: Frame[] = [];
  private readonly anchors = new Map<string, { node: SNode; size: number }>();
  private root: SNode | null = null;
  private documents = 0;
  /** Where the text was last read up to: empty values sit after it. */
  private lastEnd = 0;
  private nodes = 0;
  private aliased = 0;

  constructor(
    private readonly text: string,
    private readonly pos: Positions,
    private readonly events: Event[],
    private readonly sink: ItemSink | null,
  ) {}

  build(): SNode | null {
    const events = this.events;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i];
      // Consumed events are dropped as the tree grows: the two together would double the peak.
      (events as unknown[])[i] = undefined;
      switch (ev.type) {
        case EVENT_ID.DOCUMENT:
          if (++this.documents > 1) this.secondDocument();
          break;
        case EVENT_ID.MAPPING: {
          const loc = this.opened(ev, 'map');
          this.stack.push({ kind: 'map', node: { kind: 'map', entries: [], loc }, anchor: this.anchorOf(ev), key: null, seen: null, merges: null, size: 1 });
          break;
        }
        case EVENT_ID.SEQUENCE: {
          const loc = this.opened(ev, 'seq');
          const top = this.stack[0];
          const stream = this.sink !== null && this.stack.length === 1 && top.kind === 'map' && top.key?.text === 'services' && !top.key.merge;
          const node: SSeq = stream ? { kind: 'seq', items: [], loc, streamed: true } : { kind: 'seq', items: [], loc };
          this.stack.push({ kind: 'seq', node, anchor: this.anchorOf(ev), size: 1, stream });
          break;
        }
        case EVENT_ID.SCALAR: {
          this.count(1, this.lastEnd);
          const node = this.scalar(ev);
          const anchor = this.anchorOf(ev);
          if (anchor !== null) this.anchors.set(anchor, { node, size: 1 });
          this.add(node, 1, ev);
          break;
        }
        case EVENT_ID.ALIAS: {
          const name = this.text.slice(ev.anchorStart, ev.anchorEnd);
          const loc = this.pos.at(ev.anchorStart - 1);
          this.lastEnd = ev.anchorEnd;
          const target = this.anchors.get(name);
          if (!target) throw new Stop('LBC1003', `YAML syntax: the alias *${name} names no anchor (&${name}) written before it`, loc);
          this.aliased += target.size;
          if (this.aliased > MAX_ALIAS_NODES) {
            throw new Stop('LBC1007', `aliases expand the spec beyond ${MAX_ALIAS_NODES.toLocaleString('en-US')} values, more than any spec needs`, loc);
          }
          this.count(target.size, ev.anchorStart);
          this.add(target.node, target.size, null);
          break;
        }
        case EVENT_ID.POP: {
          const frame = this.stack.pop();
          if (!frame) break; // the end of a document
          if (frame.kind === 'map') this.finishMap(frame);
          if (frame.anchor !== null) this.anchors.set(frame.anchor, { node: frame.node, size: frame.size });
          this.add(frame.node, frame.size, null);
          break;
        }
      }
    }
    return this.root;
  }

  private secondDocument(): never {
    // The document event carries no offset: the second document starts at the next "---" line.
    const re = /^---(?=[ \t\r\n]|$)/gm;
    re.lastIndex = this.lastEnd;
    const m = re.exec(this.text);
    throw new Stop(
      'LBC1009',
      'the spec holds more than one YAML document ("---" starts another); lbc reads one: put every service in the one "services" list',
      this.pos.at(m ? m.index : this.lastEnd),
    );
  }

  private anchorOf(ev: { anchorStart: number; anchorEnd: number }): string | null {
    return ev.anchorStart === NO_RANGE ? null : this.text.slice(ev.anchorStart, ev.anchorEnd);
  }

  private tagName(ev: { tagStart: number; tagEnd: number }): string | null {
    if (ev.tagStart === NO_RANGE) return null;
    const raw = this.text.slice(ev.tagStart, ev.tagEnd);
    if (raw === '!') return '!';
    if (raw.startsWith('!!')) return YAML_TAG + raw.slice(2);
    if (raw.startsWith('!<') && raw.endsWith('>')) return raw.slice(2, -1);
    return raw;
  }

  private unsupportedTag(tag: string, loc: SourceLocation): never {
    throw new Stop('LBC1006', `unsupported YAML tag ${tag.startsWith(YAML_TAG) ? `!!${tag.slice(YAML_TAG.length)}` : tag}; a spec holds plain numbers, strings, booleans, lists and mappings`, loc);
  }

  /** A mapping or sequence starts: counted, placed, its tag checked (only !!map / !!seq, or none). */
  private opened(ev: MappingEvent | SequenceEvent, kind: 'map' | 'seq'): SourceLocation {
    this.count(1, ev.start);
    const loc = this.pos.at(ev.start);
    this.lastEnd = ev.style === COLLECTION_STYLE.FLOW ? ev.start + 1 : ev.start;
    const tag = this.tagName(ev);
    if (tag !== null && tag !== '!' && EXPLICIT[tag] !== kind) this.unsupportedTag(tag, loc);
    return loc;
  }

  private scalar(ev: ScalarEvent): SScalar {
    const quoted = ev.style === SCALAR_STYLE.SINGLE_QUOTED || ev.style === SCALAR_STYLE.DOUBLE_QUOTED;
    let start: number;
    if (ev.valueStart === NO_RANGE) {
      // An empty value: after its anchor or tag if it has one, else after the indicator announcing it.
      const props = Math.max(ev.anchorEnd, ev.tagEnd);
      const top = this.stack[this.stack.length - 1];
      if (props !== NO_RANGE) {
        this.lastEnd = props;
        start = this.afterSpaces();
      } else if (top?.kind === 'map' && top.key !== null) start = this.afterColon();
      else start = this.afterIndicator();
      this.lastEnd = start;
    } else if (ev.style === SCALAR_STYLE.LITERAL_BLOCK || ev.style === SCALAR_STYLE.FOLDED_BLOCK) {
      start = this.blockIndicator(ev.valueStart);
      this.lastEnd = ev.valueEnd;
    } else {
      start = quoted ? ev.valueStart - 1 : ev.valueStart;
      this.lastEnd = quoted ? ev.valueEnd + 1 : ev.valueEnd;
    }
    const loc = this.pos.at(start);
    const source = getScalarValue(this.text, ev);
    const tag = this.tagName(ev);
    if (tag === null) {
      if (ev.style !== SCALAR_STYLE.PLAIN) return { kind: 'scalar', value: source, quoted, loc };
      for (const t of IMPLICIT_BY_FIRST.get(source.charAt(0)) ?? ANY_FIRST) {
        const v = t.resolve(source, false, t.tagName);
        if (v !== NOT_RESOLVED) return { kind: 'scalar', value: v as SScalar['value'], quoted, loc };
      }
      return { kind: 'scalar', value: source, quoted, loc };
    }
    const def = EXPLICIT[tag];
    if (tag === '!' || def === 'str') return { kind: 'scalar', value: source, quoted, loc };
    if (def === undefined || def === 'map' || def === 'seq') this.unsupportedTag(tag, loc);
    const v = def.resolve(source, true, def.tagName);
    if (v === NOT_RESOLVED) throw new Stop('LBC1006', `"${source.slice(0, 40)}" is not a valid !!${tag.slice(YAML_TAG.length)}`, loc);
    return { kind: 'scalar', value: v as SScalar['value'], quoted, loc };
  }

  /** An empty mapping value: after its key's ":" and the spaces after it, on the key's line (or at the key's end without one). */
  private afterColon(): number {
    const keyEnd = this.lastEnd;
    this.lastEnd = this.afterSpaces();
    if (this.text.charCodeAt(this.lastEnd) !== 58 /* : */) return keyEnd; // a flow key without ":" ({ a, b })
    this.lastEnd++;
    return this.afterSpaces();
  }

  private afterSpaces(): number {
    let i = this.lastEnd;
    while (this.text.charCodeAt(i) === 32 || this.text.charCodeAt(i) === 9) i++;
    return i;
  }

  /** A block scalar is where its "|" or ">" is, at the end of the line before its content. */
  private blockIndicator(contentStart: number): number {
    const t = this.text;
    let end = contentStart - 1;
    if (t.charCodeAt(end) === 10 && t.charCodeAt(end - 1) === 13) end--;
    const lineStart = Math.max(t.lastIndexOf('\n', end - 1), t.lastIndexOf('\r', end - 1)) + 1;
    const header = t.slice(lineStart, end).replace(/[ \t]+#.*$/, '').trimEnd();
    const m = /[|>][0-9+-]*$/.exec(header);
    return m ? lineStart + m.index : contentStart;
  }

  /**
   * Where an empty list item is: past the "-" that announced it, on that line. Events of empty
   * values carry no offset, so the text after the last value read is searched.
   */
  private afterIndicator(): number {
    const t = this.text;
    let i = this.lastEnd;
    for (;;) {
      const c = t.charCodeAt(i);
      // Spaces, line breaks, and the ends of flow collections closed since the last value.
      if (c === 32 || c === 9 || c === 10 || c === 13 || c === 93 /* ] */ || c === 125 /* } */ || c === 44 /* , */) i++;
      else if (c === 35 /* # */) while (i < t.length && t.charCodeAt(i) !== 10) i++;
      else break;
    }
    const c = t.charCodeAt(i);
    if (c === 58 /* : */ || c === 45 /* - */ || c === 63 /* ? */) {
      i++;
      while (t.charCodeAt(i) === 32 || t.charCodeAt(i) === 9) i++;
    }
    return Math.min(i, t.length);
  }

  /** Counts values held in memory (aliases expanded), against MAX_NODES. */
  private count(n: number, at: number): void {
    this.nodes += n;
    if (this.nodes > MAX_NODES) {
      throw new Stop('LBC1007', `the spec holds more than ${MAX_NODES.toLocaleString('en-US')} values, beyond lbc's limits (see "Limits" in the README)`, this.pos.at(at));
    }
  }

  /** Places a finished node in its parent (or as the document's root). */
  private add(node: SNode, size: number, ev: ScalarEvent | null): void {
    const parent = this.stack[this.stack.length - 1];
    if (!parent) {
      this.root = node;
      return;
    }
    if (parent.kind === 'seq') {
      if (parent.stream) {
        // Handed over and forgotten here: only what the sink keeps of it stays in memory.
        this.nodes -= size;
        this.sink!(node);
        return;
      }
      parent.size += size;
      parent.node.items.push(node);
      return;
    }
    parent.size += size;
    if (parent.key === null) {
      if (node.kind !== 'scalar' || (typeof node.value !== 'string' && typeof node.value !== 'number')) {
        throw new Stop('LBC1005', 'a key must be a plain word', node.loc);
      }
      const text = String(node.value);
      // "<<" written plain (not quoted) is YAML's merge key.
      const merge = text === '<<' && !node.quoted && ev !== null && ev.tagStart === NO_RANGE;
      if (!merge) {
        if (hasKey(parent, text)) throw new Stop('LBC1003', 'this key appears twice in the same mapping', node.loc);
        if (parent.seen) parent.seen.add(text);
        else if (parent.node.entries.length >= 16) parent.seen = new Set([...parent.node.entries.map((e) => e.key), text]);
      }
      parent.key = { text, loc: node.loc, merge };
      return;
    }
    const key = parent.key;
    parent.key = null;
    if (key.merge) {
      const merges = (parent.merges ??= []);
      if (node.kind === 'map') merges.push(node);
      else if (node.kind === 'seq' && node.items.every((it) => it.kind === 'map')) merges.push(...node.items);
      else throw new Stop('LBC1010', 'a merge key "<<" takes a mapping or a list of mappings, such as <<: *defaults', node.loc);
      return;
    }
    parent.node.entries.push({ key: key.text, keyLoc: key.loc, value: node });
  }

  /** Merged entries (YAML merge key): keys written in the mapping win, then the first source that has the key. */
  private finishMap(frame: MapFrame): void {
    if (frame.key !== null) {
      // A key without a value cannot come out of the parser; treat it as null, as YAML does.
      frame.node.entries.push({ key: frame.key.text, keyLoc: frame.key.loc, value: { kind: 'scalar', value: null, quoted: false, loc: frame.key.loc } });
    }
    if (frame.merges === null) return;
    const seen = new Set(frame.node.entries.map((e) => e.key));
    const merged: SMapEntry[] = [];
    for (const src of frame.merges) {
      for (const e of (src as SMap).entries) {
        if (seen.has(e.key)) continue;
        seen.add(e.key);
        merged.push(e);
      }
    }
    frame.node.entries.push(...merged);
  }
}

function hasKey(frame: MapFrame, key: string): boolean {
  if (frame.seen) return frame.seen.has(key);
  for (const e of frame.node.entries) if (e.key === key) return true;
  return false;
}
