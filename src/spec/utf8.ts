/**
 * Spec bytes → text, refusing bytes that are not UTF-8 with the position of the first bad one
 * (a lossy decode would turn them into U+FFFD and the spec into something the user never wrote).
 */
import { isUtf8 } from 'node:buffer';
import type { DiagnosticBag } from '../diagnostics/diagnostic.js';

const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export function decodeSpec(bytes: Uint8Array, file: string, bag: DiagnosticBag): string | null {
  if (isUtf8(bytes)) return decoder.decode(bytes);
  const bad = firstInvalidByte(bytes);
  let lineStart = 0;
  let line = 1;
  for (let i = 0; i < bad; i++) if (bytes[i] === 10) (line++, (lineStart = i + 1));
  // The column counts characters as the rest of lbc does (UTF-16 code units): decode the line's valid start.
  const column = decoder.decode(bytes.subarray(lineStart, bad)).length + 1;
  const c = bytes[bad];
  const hex = `0x${c.toString(16).padStart(2, '0')}`;
  const why = c < 0xc2 || c > 0xf4 ? `byte ${hex} cannot start a character` : `the character starting with byte ${hex} is cut short or malformed`;
  bag.error('LBC1011', `the spec is not UTF-8 text: ${why}`, { file, line, column }, [
    'save the file as UTF-8 (lbc reads specs as UTF-8 only)',
  ]);
  return null;
}

/**
 * Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629 §4: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or -1.
 */
export function firstInvalidByte(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      const d = b[i + k];
      if (d === undefined || d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return i;
    }
    i += need + 1;
  }
  return -1;
}
