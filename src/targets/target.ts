/**
 * What a target is: a name, the address families it serves, a capability
 * table, and an emitter. compileForTarget() refuses what the table says the
 * target cannot do — with the spec position, the reason and the alternative —
 * before the emitter ever runs, so emitters never meet a service they cannot
 * express (the Capirca/Aerleon generator model).
 */
import type { Diagnostic } from '../diagnostics/diagnostic.js';
import type { Backend, Family, IR, Service } from '../ir/types.js';
import type { TargetName } from './registry.js';
import { FEATURES, featuresOf, REFINES, type Feature } from './features.js';
import { checkTier, type TierHooks } from './tier/features.js';
import { nodeOfCompile, runDir } from './tier/plan.js';
import type { LoadMeta } from './applied-state.js';
import type { PlanReport, TargetStatus } from './lifecycle.js';

export interface OutputFile {
  /** Suggested file name when writing a directory (e.g. "iptables.rules"). */
  name: string;
  content: string;
  /** Mark executable when written (generated checker scripts). */
  executable?: boolean;
}

export type Support =
  | { level: 'yes'; note?: string }
  /** Emitted, but only approximates the spec; the emitter says so in a comment too. */
  | { level: 'approx'; note: string }
  | { level: 'no'; why: string; instead: string };

export type SupportRule = Support | ((svc: Service) => Support);

export type CapabilityTable = Partial<Record<Feature, SupportRule>>;

export interface EmitOptions {
  /** Extra knobs a target understands (documented per target). */
  [key: string]: unknown;
}

export interface TargetDefinition {
  /** The name on the command line; one of TARGET_NAMES (registry.ts). */
  name: TargetName;
  /** One line for `lbc check` and --help. */
  title: string;
  /** Services of other families are left out with a note. */
  families: readonly Family[];
  /** Missing features are supported. */
  capabilities: CapabilityTable;
  /** Set when the target's tool refuses a configuration without any service: why, and what to do instead. */
  refusesEmpty?: { why: string; instead: string };
  /** Only called with services that passed the capability check. Must be deterministic. */
  emit(ir: IR, options: EmitOptions): OutputFile[];
  /**
   * Load emitted files on this host atomically and idempotently, touching nothing lbc does not own.
   * Absent for targets whose files are only copied to the host that runs them.
   */
  apply?(files: OutputFile[], ctx: ApplyContext): Promise<void>;
  /**
   * How `lbc agent` moves the host from the live ruleset it loaded last to the next one. Optional: without it
   * the agent loads the whole live output with apply() and deletes dead backends' conntrack flows (the Linux
   * targets); a target that can change its pools in place (pf tables, single ipnat rules) supplies its own.
   */
  agentDriver?: AgentDriver;
  /** What the target writes and loads for the nodes of a `balancers` tier (tier/features.ts); absent: it refuses one. */
  tier?: TierHooks;
  /** `lbc remove`: take out everything lbc loaded for this target (and its record), nothing else. */
  remove?(ctx: ApplyContext): Promise<void>;
  /** `lbc status`: what lbc loaded last (its record) and whether the kernel still holds it. */
  status?(ctx: ApplyContext): Promise<TargetStatus>;
  /** `lbc plan`: what apply() of these files would change on this host, without changing it. */
  plan?(files: OutputFile[], ctx: ApplyContext): Promise<PlanReport>;
}

/** One load the agent asks of an AgentDriver. */
export interface AgentLoad {
  /** The services the agent keeps, as the spec has them (backups and health checks included). */
  spec: IR;
  /** The live IR (health/live.ts: the backends that should get new connections now) and its compiled files. */
  live: IR;
  files: OutputFile[];
  /** What this run loaded last (a successful load); null for the first load, when rules of an earlier run may be loaded. */
  previous: { live: IR; files: OutputFile[] } | null;
  /** Compiles another shape of the spec for this target (throws LbcError when the target refuses it). */
  compile(ir: IR): OutputFile[];
}

export interface AgentDriver {
  /** Makes the host carry `change.live`; rejects (with nothing worse than a partial change) when a command fails. */
  load(change: AgentLoad, ctx: ApplyContext): Promise<void>;
  /** Deletes the established flows to a backend that left the ruleset and returns how many; absent: flows are left to end by themselves. */
  flushFlows?(svc: Service, be: Backend, ctx: ApplyContext): Promise<number>;
}

/** What apply() may do on the host. In a dry run, run() only prints; query() always runs (read-only). */
export interface ApplyContext {
  dryRun: boolean;
  /** Run a command that changes the host (printed instead in a dry run). Rejects with LbcError on failure. */
  run(argv: string[], stdin?: string): Promise<void>;
  /** Run a read-only command and return its stdout (e.g. iptables-save); runs in a dry run too. */
  query(argv: string[]): Promise<string>;
  /** One line to stderr. */
  log(line: string): void;
  /**
   * Directory where a target records what it loaded, so the next apply can load only what changed.
   * null or absent: no record, every apply is a full one (tests in namespaces, fake contexts).
   */
  stateDir?: string | null;
  /** Load everything even when a record allows an incremental load. */
  fullApply?: boolean;
  /** What the record of this load says of it (lbc status): the spec and the services loaded. */
  meta?: LoadMeta;
}

export interface TargetResult {
  files: OutputFile[];
  /** Errors (nothing emitted), or warnings/notes to show beside the output. */
  diagnostics: Diagnostic[];
}

export function supportFor(target: TargetDefinition, feature: Feature, svc: Service): Support {
  const rule = target.capabilities[feature];
  if (rule === undefined) return { level: 'yes' };
  return typeof rule === 'function' ? rule(svc) : rule;
}

/** Capability diagnostics of one service on one target (errors for refusals, notes for approximations). */
export function checkService(target: TargetDefinition, svc: Service): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const use of featuresOf(svc)) {
    const parent = REFINES[use.feature];
    if (parent && supportFor(target, parent, svc).level === 'no') continue;
    const s = supportFor(target, use.feature, svc);
    if (s.level === 'no') {
      out.push({
        code: 'LBC3001',
        severity: 'error',
        message: `service "${svc.name}": target ${target.name} cannot express ${FEATURES[use.feature]}: ${s.why}`,
        location: use.location,
        notes: [s.instead],
      });
    } else if (s.level === 'approx') {
      out.push({
        code: 'LBC3002',
        severity: 'warning',
        message: `service "${svc.name}": target ${target.name} approximates ${FEATURES[use.feature]}: ${s.note}`,
        location: use.location,
      });
    }
  }
  return out;
}

export function compileForTarget(target: TargetDefinition, ir: IR, options: EmitOptions = {}): TargetResult {
  const diagnostics: Diagnostic[] = [];
  const kept: Service[] = [];
  for (const svc of ir.services) {
    if (!target.families.includes(svc.family)) {
      diagnostics.push({
        code: 'LBC3003',
        severity: 'note',
        message: `service "${svc.name}" is ${svc.family === 'ipv4' ? 'IPv4' : 'IPv6'}; target ${target.name} serves ${target.families.join(' and ')} only, so it is left out`,
        location: svc.loc.service,
        notes: [svc.family === 'ipv6' && target.name === 'iptables' ? 'compile it with --target ip6tables' : svc.family === 'ipv4' && target.name === 'ip6tables' ? 'compile it with --target iptables' : 'use a target that serves this family'],
      });
      continue;
    }
    diagnostics.push(...checkService(target, svc));
    kept.push(svc);
  }
  diagnostics.push(...checkTier(target.name, target.tier, ir));
  if (kept.length === 0 && target.refusesEmpty) {
    diagnostics.push({ code: 'LBC3005', severity: 'error', message: `target ${target.name} cannot compile a spec without services: ${target.refusesEmpty.why}`, notes: [target.refusesEmpty.instead] });
  }
  if (diagnostics.some((d) => d.severity === 'error')) return { files: [], diagnostics };
  const node = nodeOfCompile(ir.balancers, options);
  const shown = { ...ir, services: kept };
  let emitted = target.emit(shown, options);
  if (ir.balancers && node) emitted = target.tier!.files(emitted, { ir: shown, tier: ir.balancers, node, runDir: runDir(options), options });
  // Every file ends with exactly one newline, whatever its template did: tools and diffs expect it.
  const files = emitted.map((f) => ({ ...f, content: oneFinalNewline(f.content) }));
  return { files, diagnostics };
}

/**
 * The text ending in exactly one newline. Not `replace(/\n*$/, ...)`: that pattern is tried at every
 * position of the text, a fifth of a second for the megabytes of 10,000 services.
 */
function oneFinalNewline(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 10) end--;
  return end === text.length - 1 ? text : `${text.slice(0, end)}\n`;
}
