/**
 * Reading a spec from a file or standard input ("-"), as bytes and never more than lbc reads: a
 * file's size is checked before it is read, standard input is read in chunks up to the limit.
 * The bytes must be UTF-8 (the first that is not is reported with its line and column).
 */
import { systemMessage } from '../diagnostics/system-error.js';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { DiagnosticBag, LbcError } from '../diagnostics/diagnostic.js';
import { MAX_JSON_BYTES, MAX_YAML_BYTES } from './limits.js';
import { decodeSpec } from './utf8.js';

export const STDIN_NAME = '<stdin>';
const MIB = 1024 * 1024;
const CHUNK = 1024 * 1024;

export interface SpecText {
  text: string;
  /** The name diagnostics use: the path, or "<stdin>". */
  file: string;
}

/**
 * The spec at `path` ("-" or "" for standard input), decoded. Throws LbcError: LBC4001 when it
 * cannot be read (with the system's message), LBC4005 when it is larger than lbc reads, LBC1011
 * when it is not UTF-8.
 */
export function readSpecFile(path: string): SpecText {
  const stdin = path === '-' || path === '';
  const file = stdin ? STDIN_NAME : path;
  const bytes = stdin ? readCapped(0, file, path, null) : readFile(path);
  const bag = new DiagnosticBag();
  const text = decodeSpec(bytes, file, bag);
  if (text === null) throw new LbcError(bag.items);
  return { text, file };
}

/**
 * The most bytes the spec may have: a .json name, or text that opens with "{", may be JSON
 * (parse.ts reads such text as JSON first); anything else is YAML.
 */
function capFor(path: string, head: Uint8Array | null): { max: number; format: 'YAML' | 'JSON' } {
  if (/\.json$/i.test(path)) return { max: MAX_JSON_BYTES, format: 'JSON' };
  if (head === null) return { max: Math.max(MAX_JSON_BYTES, MAX_YAML_BYTES), format: 'JSON' };
  let i = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x09 || head[i] === 0x0a || head[i] === 0x0d)) i++;
  return head[i] === 0x7b /* { */ ? { max: MAX_JSON_BYTES, format: 'JSON' } : { max: MAX_YAML_BYTES, format: 'YAML' };
}

function readFile(path: string): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw ioError(path, e);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw ioError(path, Object.assign(new Error('is a directory'), { code: 'EISDIR' }));
    // A regular file larger than any spec is refused before a byte of it is read.
    if (st.isFile() && st.size > Math.max(MAX_JSON_BYTES, MAX_YAML_BYTES)) throw tooLarge(path, capFor(path, null), st.size);
    return readCapped(fd, path, path, st.isFile() ? st.size : null);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads until the end, refusing as soon as more bytes arrived than the spec may have (the cap is
 * known after the first chunk: see capFor). `size`: the file's size when it is a regular file.
 */
function readCapped(fd: number, file: string, path: string, size: number | null): Uint8Array {
  const chunks: Buffer[] = [];
  let total = 0;
  let cap: { max: number; format: 'YAML' | 'JSON' } | null = null;
  for (;;) {
    const buf = Buffer.allocUnsafe(CHUNK);
    let n: number;
    try {
      n = readSync(fd, buf, 0, CHUNK, null);
    } catch (e) {
      // A non-blocking standard input with nothing to read yet: wait a little and try again.
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        continue;
      }
      throw ioError(file, e);
    }
    if (n === 0) break;
    chunks.push(n === CHUNK ? buf : buf.subarray(0, n));
    total += n;
    cap ??= capFor(path, chunks[0]);
    if (size !== null && size > cap.max) throw tooLarge(file, cap, size);
    if (total > cap.max) throw tooLarge(file, cap, null);
  }
  return Buffer.concat(chunks, total);
}

function ioError(file: string, e: unknown): LbcError {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'EISDIR' && err.errno === undefined ? 'it is a directory' : systemMessage(err);
  const what = file === STDIN_NAME ? 'from standard input' : `"${file}"`;
  return new LbcError([{ code: 'LBC4001', severity: 'error', message: `cannot read spec ${what}: ${why}` }]);
}

/** `size` null: a stream, of which more than the cap arrived. */
function tooLarge(file: string, cap: { max: number; format: string }, size: number | null): LbcError {
  const what = file === STDIN_NAME ? 'standard input' : `"${file}"`;
  const has = size === null ? `holds more than ${cap.max / MIB} MiB of ${cap.format}` : `is ${(size / MIB).toFixed(1)} MiB`;
  return new LbcError([
    {
      code: 'LBC4005',
      severity: 'error',
      message: `the spec ${what} ${has}; lbc reads specs of up to ${MAX_YAML_BYTES / MIB} MiB of YAML or ${MAX_JSON_BYTES / MIB} MiB of JSON`,
      notes: ['see "Limits" in the README'],
    },
  ]);
}
