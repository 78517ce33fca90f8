/**
 * Reading specs and writing outputs for the CLI.
 *
 * -o PATH never destroys what is at PATH:
 * - a regular file is replaced atomically (a temporary file in the same directory, renamed over it), keeping
 *   its mode and, as root, its owner;
 * - a symlink is followed and the file it names is replaced the same way (the link stays a link);
 * - a special file (a terminal, /dev/stdout, a FIFO) is written directly: renaming over it would replace a
 *   device node with a regular file;
 * - "-" is standard output;
 * - a missing parent directory is created, and said, whether the target writes one file or several.
 * A target with several files needs a directory: an existing file there is a usage error.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readlinkSync, realpathSync, renameSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { readSpecFile } from '../spec/read.js';
import { basename, dirname, join, resolve } from 'node:path';
import { LbcError } from '../diagnostics/diagnostic.js';
import type { OutputFile } from '../targets/target.js';
import { UsageError } from './command.js';
import { systemMessage } from '../diagnostics/system-error.js';

/**
 * The spec text the command line names: its size checked before it is read (standard input read in
 * pieces up to the limit), its bytes checked to be UTF-8, with positions (spec/read.ts).
 */
export function readSpec(path: string): { text: string; file: string } {
  return readSpecFile(path);
}

function ioError(what: string, path: string, e: unknown): LbcError {
  return new LbcError([{ code: 'LBC4003', severity: 'error', message: `cannot ${what} "${path}": ${systemMessage(e)}` }]);
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('inspect', path, e);
  }
}

/** mkdir -p, telling what it created. */
function ensureDirectory(dir: string, log: (line: string) => void): void {
  const st = lstatOrNull(dir);
  if (st) {
    let isDir = st.isDirectory();
    if (st.isSymbolicLink()) {
      try {
        isDir = statSync(dir).isDirectory();
      } catch {
        isDir = false;
      }
    }
    if (!isDir) throw new LbcError([{ code: 'LBC4003', severity: 'error', message: `cannot write into "${dir}": it is not a directory` }]);
    return;
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw ioError('create directory', dir, e);
  }
  log(`created directory ${dir}`);
}

/** Write content to path without ever replacing what path is (see the module comment). */
export function writeFileSafely(path: string, content: string, executable: boolean, log: (line: string) => void): void {
  const link = lstatOrNull(path);
  let st = link;
  let target = path;
  if (link?.isSymbolicLink()) {
    try {
      // stat follows the link; /dev/stdout and other /proc links to pipes stat fine but have no real path.
      st = statSync(path);
      if (st.isFile()) target = realpathSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('follow the symlink', path, e);
      // A dangling link: create the file it names, as cp and shell redirection do.
      target = resolve(dirname(path), readlinkSync(path));
      st = null;
    }
  }
  if (st && st.isDirectory()) throw new LbcError([{ code: 'LBC4003', severity: 'error', message: `cannot write "${path}": it is a directory` }]);
  if (st && !st.isFile()) {
    writeDirect(path, content);
    return;
  }
  ensureDirectory(dirname(target), log);
  writeAtomic(target, content, executable, st, path);
}

function writeDirect(path: string, content: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (e) {
    throw ioError('open', path, e);
  }
  try {
    writeAll(fd, content);
  } catch (e) {
    throw ioError('write', path, e);
  } finally {
    closeSync(fd);
  }
}

/** A temporary file beside the target, renamed over it: readers see the old file or the new one, never half. */
function writeAtomic(target: string, content: string, executable: boolean, existing: Stats | null, shown: string): void {
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fresh = executable ? 0o755 : 0o644;
  let mode = existing ? existing.mode & 0o7777 : fresh;
  // An executable script keeps being executable for whoever may read it.
  if (existing && executable) mode |= (mode & 0o444) >> 2;
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeAll(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (existing && typeof process.getuid === 'function' && process.getuid() === 0) chownSync(tmp, existing.uid, existing.gid);
    // chmod after open: the umask must not narrow a mode the file already had.
    if (existing) chmodSync(tmp, mode);
    else chmodSync(tmp, mode & ~process.umask());
    renameSync(tmp, target);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing to clean
    }
    throw ioError('write', shown, e);
  }
}

/** write(2) may take less than asked of a pipe or a full device; keep going until all is written. */
function writeAll(fd: number, content: string): void {
  const buf = Buffer.from(content, 'utf8');
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * One file: written to `out`, or into it when `out` is a directory or ends with "/".
 * Several files: `out` is a directory (created when missing) and each file keeps its name.
 * Returns the paths written.
 */
export function writeOutputs(files: readonly OutputFile[], out: string, targetName: string, log: (line: string) => void): string[] {
  const asDirectory = files.length > 1 || out.endsWith('/') || isDirectory(out);
  if (!asDirectory) {
    writeFileSafely(out, files[0].content, files[0].executable ?? false, log);
    return [out];
  }
  if (files.length > 1 && lstatOrNull(out) && !isDirectory(out)) {
    throw new UsageError(`-o ${out}: target ${targetName} writes ${files.length} files (${files.map((f) => f.name).join(', ')}), so -o needs a directory, and "${out}" is a file`, [
      'give a directory (it is created when missing), or leave out -o to see every file on standard output',
    ]);
  }
  ensureDirectory(out, log);
  return files.map((f) => {
    const p = join(out, f.name);
    writeFileSafely(p, f.content, f.executable ?? false, log);
    return p;
  });
}

/** What -o PATH would hold, per path, for `compile --check`: the same placement rules as writeOutputs. */
export function plannedOutputs(files: readonly OutputFile[], out: string): { path: string; content: string }[] {
  const asDirectory = files.length > 1 || out.endsWith('/') || isDirectory(out);
  if (!asDirectory) return [{ path: out, content: files[0].content }];
  return files.map((f) => ({ path: join(out, f.name), content: f.content }));
}

/** Several files on stdout: each after a "# ==> name <==" line (a comment in every format lbc emits). */
export function joinForStdout(files: readonly OutputFile[]): string {
  if (files.length === 1) return files[0].content;
  return files.map((f) => `# ==> ${f.name} <==\n${f.content}${f.content.endsWith('\n') ? '' : '\n'}`).join('\n');
}
