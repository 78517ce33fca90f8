/**
 * Spec text → positioned syntax tree: JSON by lbc's one-pass reader (spec/json.ts), YAML by
 * js-yaml's event stream (spec/yaml.ts). Problems become diagnostics with file:line:col; nothing
 * here throws on bad input.
 */
import { DiagnosticBag } from '../diagnostics/diagnostic.js';
import { StopReading, type ItemSink, type SNode } from './ast.js';
import { JsonSyntaxError, parseJsonSpec } from './json.js';
import { MAX_JSON_BYTES, MAX_YAML_BYTES } from './limits.js';
import { Positions } from './positions.js';
import { decodeSpec } from './utf8.js';
import { parseYamlSpec } from './yaml.js';

export interface ParsedSpec {
  root: SNode | null;
  file: string;
}

const BOM = '\ufeff';
const MIB = 1024 * 1024;

/** Spec bytes (checked to be UTF-8, with the position of the first byte that is not) → tree. */
export function parseSpecBytes(bytes: Uint8Array, file: string, bag: DiagnosticBag, sink?: ItemSink): ParsedSpec {
  const text = decodeSpec(bytes, file, bag);
  return text === null ? { root: null, file } : parseSpecText(text, file, bag, sink);
}

/**
 * `sink`, if given, receives each item of the top-level "services" list as soon as it is read, and
 * the tree keeps only the rest (SSeq.streamed); null root: see the diagnostics, or a sink that stopped.
 */
export function parseSpecText(input: string, file: string, bag: DiagnosticBag, sink?: ItemSink): ParsedSpec {
  // A byte order mark is no part of the spec, in YAML or JSON alike; positions are counted without it, as editors show it.
  const text = input.startsWith(BOM) ? input.slice(1) : input;
  const nul = text.indexOf('\u0000');
  if (nul >= 0) {
    bag.error('LBC1001', 'the spec contains a NUL byte; it must be UTF-8 text', new Positions(text, file).at(nul));
    return { root: null, file };
  }
  // JSON (a .json file, or text that opens with "{") takes the one-pass reader; a YAML file that merely
  // starts with a flow mapping is read as YAML when it is not valid JSON.
  const isJsonFile = /\.json$/i.test(file);
  if (isJsonFile || /^\s*\{/.test(text)) {
    if (!withinSize(text, MAX_JSON_BYTES, 'JSON', file, bag)) return { root: null, file };
    try {
      // Only a .json file streams: text that merely looks like JSON may be read again as YAML.
      return { root: parseJsonSpec(text, file, isJsonFile ? sink : undefined), file };
    } catch (e) {
      if (e instanceof StopReading) return { root: null, file };
      if (!(e instanceof JsonSyntaxError)) throw e;
      if (isJsonFile || e.code !== 'LBC1008') {
        bag.error(e.code, e.code === 'LBC1008' ? `JSON syntax: ${e.message}` : e.message, e.loc);
        return { root: null, file };
      }
    }
  }
  if (!withinSize(text, MAX_YAML_BYTES, 'YAML', file, bag)) return { root: null, file };
  const root = parseYamlSpec(text, file, bag, sink);
  if (root === null && !bag.hasErrors && !sink) {
    bag.error('LBC1004', 'the spec is empty; it needs at least `version: 1` and `services:`', { file, line: 1, column: 1 });
  }
  return { root, file };
}

function withinSize(text: string, max: number, format: string, file: string, bag: DiagnosticBag): boolean {
  // Characters never outnumber UTF-8 bytes; count the bytes only when it could matter.
  if (text.length * 3 <= max || Buffer.byteLength(text, 'utf8') <= max) return true;
  bag.error('LBC1012', `the spec is larger than lbc reads: at most ${max / MIB} MiB of ${format}`, { file, line: 1, column: 1 }, [
    format === 'YAML' ? `write a spec this large as JSON (up to ${MAX_JSON_BYTES / MIB} MiB), or split it` : 'split it into several specs',
  ]);
  return false;
}
