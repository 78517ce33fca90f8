/**
 * Loading the pf, pf-openbsd and pf-freebsd15 output on the host, and keeping it in step
 * from `lbc agent`.
 *
 * Where the rules go: lbc's own anchor "lbc", never the main ruleset.
 * `pfctl -a lbc -f -` replaces the rules and tables of that anchor only, in
 * one transaction, and leaves every other rule, table, state and source node
 * alone (pfctl(8) -a: -f, -F, -s and -T apply to the named anchor). An anchor
 * is only evaluated where the main ruleset names it (pf.conf(5) ANCHORS), so
 * the main pf.conf must contain
 *   FreeBSD classic rdr (--target pf):   rdr-anchor "lbc"   (translation section)
 *                                        anchor "lbc"       (filter section)
 *   pass … rdr-to (--target pf-openbsd, pf-freebsd15): anchor "lbc"
 * The emitted file's header says the same. Loading is idempotent: the anchor
 * ends up holding exactly the file, however often it is loaded. Live states
 * keep their translation across a reload (pf keeps states when rules change).
 *
 * What the agent does after a state change:
 * - When the next live ruleset differs from the loaded one only in the
 *   contents of lbc's tables without weights (round-robin pools, the rdr-to
 *   targets' source-hash and random pools over a table), it rewrites those tables with
 *   `pfctl -a lbc -t lbc-NAME -T replace ADDR…` (pfStateChangeCommands): no
 *   rule is reloaded.
 * - Otherwise (inline weighted lists, weighted tables, probability cascades,
 *   a pool that changes form, e.g. from a table to one address) it reloads
 *   the anchor with the live ruleset.
 * - Either way, for sticky services, the source-tracking nodes that still pin
 *   clients to an address that left the pool (a dead backend, or a backup
 *   demoted when a primary came back) are killed with `pfctl -K any -K ADDR`,
 *   so those clients are balanced again on their next connection. Source
 *   nodes are global in pf, so this also frees sticky clients of another
 *   service that uses the same backend address; their next connection is
 *   balanced again, nothing breaks. States are never killed: established
 *   connections to a dead backend end by themselves.
 */
import type { IR, Service } from '../ir/types.js';
import type { AgentDriver, AgentLoad, ApplyContext, OutputFile } from '../targets/target.js';
import { LbcError } from '../diagnostics/diagnostic.js';
import { pfStateChangeCommands, runCommands, type Command } from './index.js';
import { recordBsdLoad } from './lifecycle.js';

export const PF_ANCHOR = 'lbc';

function confOf(files: readonly OutputFile[], name: string): string {
  const f = files.find((x) => x.name === name);
  if (!f) throw new LbcError([{ code: 'LBC5001', severity: 'error', message: `nothing to apply: the compiled output has no ${name}` }]);
  return f.content;
}

/** Check, then load, the whole file into the anchor. */
function anchorLoad(conf: string): Command[] {
  return [
    // -n parses without loading, so a ruleset pfctl rejects never replaces a working one.
    { argv: ['pfctl', '-a', PF_ANCHOR, '-nf', '-'], stdin: conf },
    { argv: ['pfctl', '-a', PF_ANCHOR, '-f', '-'], stdin: conf },
  ];
}

/** apply() of both pf targets: `name` is the file their emitter writes; the load is recorded for status and remove. */
export function pfAnchorApply(name: string, target: string): (files: OutputFile[], ctx: ApplyContext) => Promise<void> {
  return async (files, ctx) => {
    await runCommands(anchorLoad(confOf(files, name)), ctx);
    await recordBsdLoad(target, files, ctx);
  };
}

/**
 * The ruleset with comments dropped and table contents blanked: equal shapes differ only in what the tables
 * hold. Tables with weights (pf-openbsd) keep their contents: the weights are written in the table's
 * definition, and lbc reloads the anchor rather than rely on `pfctl -T replace` carrying them.
 */
export function shapeOf(conf: string): string {
  return conf
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => (/ weight \d+/.test(l) ? l : l.replace(/^(table <[^>]+> persist) \{.*\}$/, '$1 {}')))
    .join('\n');
}

function tableLine(conf: string, svc: Service): string | null {
  const head = `table <lbc-${svc.name}> persist {`;
  return conf.split('\n').find((l) => l.startsWith(head)) ?? null;
}

/** Indexes of the spec backends in the live service (health/live.ts keeps indexes). */
function selected(live: IR, svc: Service): Set<number> {
  const s = live.services.find((x) => x.name === svc.name);
  return new Set(s ? s.backends.map((b) => b.index) : []);
}

function addressOf(svc: Service, index: number): string {
  const b = svc.backends.find((x) => x.index === index)!;
  return b.address ?? (svc.family === 'ipv6' ? '::1' : '127.0.0.1');
}

/** The commands that take the host from `change.previous` to `change.live`; `name` is the emitted file. */
export function pfLoadPlan(change: AgentLoad, name: string): Command[] {
  const conf = confOf(change.files, name);
  if (!change.previous) return anchorLoad(conf);
  const before = confOf(change.previous.files, name);
  const reload = shapeOf(before) !== shapeOf(conf);
  const commands: Command[] = reload ? anchorLoad(conf) : [];
  for (const svc of change.spec.services) {
    const was = selected(change.previous.live, svc);
    const now = selected(change.live, svc);
    const left = [...was].filter((i) => !now.has(i));
    if (!reload && tableLine(before, svc) !== tableLine(conf, svc)) {
      const plan = pfStateChangeCommands({ svc, up: now, wentDown: left, pfConf: conf, anchor: PF_ANCHOR });
      // The shapes are equal, so a changed table line means the table exists in both.
      if (!plan.ok) throw new LbcError([{ code: 'LBC5001', severity: 'error', message: plan.why }]);
      commands.push(...plan.commands);
    } else if (reload && svc.sticky) {
      const stay = new Set([...now].map((i) => addressOf(svc, i)));
      const any = svc.family === 'ipv6' ? '::/0' : '0.0.0.0/0';
      for (const a of new Set(left.map((i) => addressOf(svc, i)))) if (!stay.has(a)) commands.push({ argv: ['pfctl', '-K', any, '-K', a] });
    }
  }
  return commands;
}

/** The agent driver of both pf targets. */
export function pfAgentDriver(name: string): AgentDriver {
  return { load: async (change, ctx) => runCommands(pfLoadPlan(change, name), ctx) };
}
