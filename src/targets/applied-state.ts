/**
 * What lbc loaded last, for incremental apply (iptables, ip6tables, nftables): a state file per
 * target holding the emitted text exactly as it was loaded and the name of the marker that lbc put
 * in the kernel with it (see nftables/incremental.ts for how the marker makes a partial load safe).
 *
 * On a host the file lives in /run/lbc (a tmpfs: after a reboot there is none and the first apply
 * is a full one). It is removed before anything is changed and put back only after a load
 * succeeded, so a failed or interrupted apply leads to a full one.
 *
 * Format: one JSON line (version, target, marker, the length of each text, whether all of it is
 * ASCII), then the texts one after the other. Keeping the text rather than digests of its parts
 * makes the next comparison plain string comparison, and the file is read in one synchronous read
 * and, for ASCII (what lbc emits unless a spec name is not), decoded byte for byte: a few
 * milliseconds for the 5–13 MB of 10,000 services.
 */
import { hash as digest } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ApplyContext } from './target.js';

export const STATE_VERSION = 3;

/** What `lbc status` tells of a load: when, from which spec, which services with which backends. */
export interface LoadMeta {
  /** ISO 8601 time of the load. */
  loadedAt: string;
  /** The spec's path as given to lbc (null: standard input). */
  spec: string | null;
  services: ServiceSummary[];
}

export interface ServiceSummary {
  name: string;
  protocol: string;
  /** "203.0.113.10", "203.0.113.0/28", or null for any local address. */
  vip: string | null;
  port: number;
  /** The backends the load sent new connections to, as ADDR:PORT ([ADDR]:PORT for IPv6, :PORT for a local port). */
  backends: string[];
}

export interface TextState {
  version: number;
  target: string;
  /** Name of the marker object in the kernel (after its prefix): 64 hex digits. */
  marker: string;
  /** The emitted texts that were loaded (nftables: the ruleset; iptables: rules, then ipset lines). */
  texts: string[];
  meta?: LoadMeta;
}

/** Where the state file of a target lives, or null when no state is kept. */
export function stateFilePath(ctx: ApplyContext, target: string): string | null {
  return ctx.stateDir ? join(ctx.stateDir, `${target}.state`) : null;
}

export const sha256 = (text: string): string => digest('sha256', text, 'hex');

/**
 * Markers: a full load is named after its texts; a partial one after the marker it replaces and the
 * change it made. Either way the name is a function of what was loaded, and deterministic, but a
 * partial load needs no digest of the whole (megabytes) ruleset.
 */
export const fullMarker = (texts: readonly string[]): string => sha256(texts.join('\0'));
export const nextMarker = (previous: string, change: string): string => sha256(`${previous}\n${change}`);

/** The state file's content, or null when there is none or it is not one this version wrote for `target`. */
export function readTextState(file: string | null, target: string): TextState | null {
  if (!file) return null;
  try {
    const raw = readFileSync(file);
    const nl = raw.indexOf(10);
    if (nl < 0) return null;
    const head = JSON.parse(raw.toString('utf8', 0, nl)) as { version?: unknown; target?: unknown; marker?: unknown; lengths?: unknown; ascii?: unknown; meta?: LoadMeta };
    const lengths = head.lengths;
    if (head.version !== STATE_VERSION || head.target !== target || typeof head.marker !== 'string' || !/^[0-9a-f]{64}$/.test(head.marker)) return null;
    if (!Array.isArray(lengths) || !lengths.every((n) => Number.isSafeInteger(n) && n >= 0)) return null;
    const body = raw.toString(head.ascii === true ? 'latin1' : 'utf8', nl + 1);
    if ((lengths as number[]).reduce((a, b) => a + b, 0) !== body.length) return null;
    const texts: string[] = [];
    let at = 0;
    for (const n of lengths as number[]) texts.push(body.slice(at, (at += n)));
    return { version: STATE_VERSION, target, marker: head.marker, texts, ...(head.meta ? { meta: head.meta } : {}) };
  } catch {
    return null;
  }
}

/**
 * Remove the state file before changing anything: if the change then fails half-way, the next
 * apply is a full one. Returns false when the file exists and cannot be removed; then no state may
 * be recorded.
 */
export async function dropState(file: string | null): Promise<boolean> {
  if (!file) return true;
  try {
    await rm(file, { force: true });
    return true;
  } catch {
    return false;
  }
}

export interface StagedState {
  /** Put the state in place: the load it describes succeeded. */
  commit(): Promise<void>;
  /** Throw it away: the load failed. */
  discard(): Promise<void>;
}

/**
 * Start writing the state to a temporary file next to where it belongs, so that this runs while the
 * kernel loads; commit() renames it into place (atomically: a reader never sees half a state).
 * Failing to write only costs the next apply a full load. With `file` null nothing is written.
 */
export function stageTextState(file: string | null, state: TextState, log: (line: string) => void): StagedState {
  if (!file) return { commit: async () => {}, discard: async () => {} };
  const ascii = state.texts.every((t) => Buffer.byteLength(t) === t.length);
  const head = { version: state.version, target: state.target, marker: state.marker, lengths: state.texts.map((t) => t.length), ascii, ...(state.meta ? { meta: state.meta } : {}) };
  const tmp = `${file}.${process.pid}.tmp`;
  const failed = async (e: unknown) => {
    log(`could not record what was loaded in ${file} (${(e as Error).message}); the next apply will be a full one`);
    await rm(tmp, { force: true }).catch(() => {});
  };
  const written = (async () => {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.write(`${JSON.stringify(head)}\n`);
      for (const t of state.texts) if (t) await fh.write(t, null, ascii ? 'latin1' : 'utf8');
    } finally {
      await fh.close();
    }
  })().then(
    () => true,
    async (e) => (await failed(e), false),
  );
  return {
    async commit() {
      if (await written) await rename(tmp, file).catch(failed);
    },
    async discard() {
      if (await written) await rm(tmp, { force: true }).catch(() => {});
    },
  };
}
