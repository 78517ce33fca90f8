/**
 * What `lbc status`, `lbc plan` and `lbc remove` share across targets: the summary of a load kept in its
 * record, the report types, the count of tracked connections per backend, and a scratch network
 * namespace in which a plan loads the new ruleset to read it back in the kernel's own words.
 */
import { randomBytes } from 'node:crypto';
import { createTwoFilesPatch } from 'diff';
import type { IR } from '../ir/types.js';
import type { LoadMeta, ServiceSummary } from './applied-state.js';
import type { ApplyContext } from './target.js';
import { hostContext } from '../host/exec.js';

export function endpointText(family: 'ipv4' | 'ipv6', address: string | null, port: number): string {
  if (address === null) return `:${port}`;
  return family === 'ipv6' ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The services of a load as its record keeps them: the backends that get new connections. */
export function summarize(ir: IR, spec: string | null, now: Date = new Date()): LoadMeta {
  const services: ServiceSummary[] = ir.services.map((s) => ({
    name: s.name,
    protocol: s.protocol,
    vip: s.vip ? (s.vip.isHost ? s.vip.address : `${s.vip.address}/${s.vip.prefixLength}`) : null,
    port: s.port,
    backends: s.backends.filter((b) => !b.backup).map((b) => endpointText(s.family, b.address, b.port)),
  }));
  return { loadedAt: now.toISOString(), spec, services };
}

export type KernelVerdict =
  /** The kernel holds exactly what the record says was loaded (lbc's marker is there). */
  | 'holds'
  /** lbc's objects are there, but not the load the record names: changed behind lbc's back, or another lbc loaded them. */
  | 'differs'
  /** Nothing of lbc's is loaded. */
  | 'absent'
  /** The target cannot tell from here. */
  | 'unknown';

export interface BackendStatus {
  backend: string;
  /** New connections sent to it since its rule was loaded (iptables: the DNAT rules' packet counters). */
  newConnections?: number;
  /** Connections the kernel tracks to it now (conntrack). */
  tracked?: number;
}

export interface TargetStatus {
  target: string;
  /** The record of lbc's last load on this host, or null. */
  recorded: (LoadMeta & { marker: string }) | null;
  kernel: KernelVerdict;
  /** One sentence on how the verdict was reached. */
  detail: string;
  services: { name: string; protocol: string; vip: string | null; port: number; backends: BackendStatus[] }[];
  /** What the counters mean, or why there are none. */
  countersNote: string;
}

export interface PlanReport {
  target: string;
  /** True when applying would change nothing lbc owns. */
  unchanged: boolean;
  /** How apply would load: only what changed, or the whole ruleset, and why. */
  method: string;
  /** A unified diff of lbc's objects as the kernel lists them, live → after apply ('' when unchanged). */
  diff: string;
  /** What the comparison rests on. */
  basis: string;
}

export function unifiedDiff(name: string, before: string, after: string): string {
  if (before === after) return '';
  return createTwoFilesPatch(`${name} (live)`, `${name} (after apply)`, before, after, undefined, undefined, { context: 3 });
}

/**
 * Connections conntrack tracks now, by the reply source they were translated to ("ADDR:PORT"), from one
 * `conntrack -L` listing. null when conntrack is not available.
 */
export async function trackedByDestination(ctx: ApplyContext): Promise<Map<string, number> | null> {
  let text: string;
  try {
    text = await ctx.query(['conntrack', '-L']);
  } catch {
    return null;
  }
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    // "tcp 6 431999 ESTABLISHED src=C dst=VIP sport=.. dport=.. src=BACKEND dst=C sport=BPORT dport=.." — the reply tuple is the second src=.
    const srcs = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1]);
    const sports = [...line.matchAll(/\bsport=(\d+)/g)].map((m) => m[1]);
    if (srcs.length < 2 || sports.length < 2) continue;
    const key = srcs[1].includes(':') ? `[${srcs[1]}]:${sports[1]}` : `${srcs[1]}:${sports[1]}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

/**
 * Run `fn` with an ApplyContext whose commands run inside a new, empty network namespace, removed
 * afterwards whatever happens. A plan loads the new ruleset there and lists it with the same tool as
 * the live one, so both sides of its diff are the kernel's own rendering.
 */
export async function inScratchNamespace<T>(ctx: ApplyContext, fn: (scratch: ApplyContext) => Promise<T>): Promise<T> {
  const name = `lbc-plan-${process.pid}-${randomBytes(3).toString('hex')}`;
  const quiet = hostContext({ dryRun: false, log: () => {}, stateDir: null });
  await quiet.run(['ip', 'netns', 'add', name]);
  try {
    const scratch = hostContext({ dryRun: false, log: () => {}, prefix: ['ip', 'netns', 'exec', name], stateDir: null });
    return await fn({ ...scratch, log: ctx.log });
  } finally {
    await quiet.run(['ip', 'netns', 'del', name]).catch(() => {});
  }
}
