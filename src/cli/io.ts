/** Reading specs and writing outputs for the CLI: stdin as "-", atomic writes. */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync, chmodSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { LbcError } from '../diagnostics/diagnostic.js';
import type { OutputFile } from '../targets/target.js';

export function readSpec(path: string): { text: string; file: string } {
  // yargs hands a lone "-" positional over as an empty string.
  if (path === '') path = '-';
  try {
    if (path === '-') return { text: readFileSync(0, 'utf8'), file: '<stdin>' };
    return { text: readFileSync(path, 'utf8'), file: path };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new LbcError([{ code: 'LBC4001', severity: 'error', message: `cannot read spec ${path === '-' ? 'from standard input' : `"${path}"`}: ${err.code ?? err.message}` }]);
  }
}

/** Write via a temporary file in the same directory and rename, so readers never see half a ruleset. */
export function writeAtomic(path: string, content: string, executable = false): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w', executable ? 0o755 : 0o644);
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (executable) chmodSync(tmp, 0o755);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* nothing to clean */
    }
    const err = e as NodeJS.ErrnoException;
    throw new LbcError([{ code: 'LBC4003', severity: 'error', message: `cannot write "${path}": ${err.code ?? err.message}` }]);
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * One file: written to `out` (or into it, if `out` is a directory).
 * Several files: `out` is a directory (created if needed) and each file keeps its name.
 */
export function writeOutputs(files: OutputFile[], out: string): string[] {
  if (files.length === 1 && !isDirectory(out) && !out.endsWith('/')) {
    writeAtomic(out, files[0].content, files[0].executable);
    return [out];
  }
  try {
    mkdirSync(out, { recursive: true });
  } catch (e) {
    throw new LbcError([{ code: 'LBC4003', severity: 'error', message: `cannot create directory "${out}": ${(e as NodeJS.ErrnoException).code}` }]);
  }
  return files.map((f) => {
    const p = join(out, f.name);
    writeAtomic(p, f.content, f.executable);
    return p;
  });
}

/** Several files on stdout: each after a "# ==> name <==" line (a comment in every format lbc emits). */
export function joinForStdout(files: OutputFile[]): string {
  if (files.length === 1) return files[0].content;
  return files.map((f) => `# ==> ${f.name} <==\n${f.content}${f.content.endsWith('\n') ? '' : '\n'}`).join('\n');
}
