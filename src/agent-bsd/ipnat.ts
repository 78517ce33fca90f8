/**
 * Loading the ipnat output on the host, and keeping it in step from `lbc agent`,
 * with IPFilter's own add and remove commands and never a flush: `-F`/`-C`
 * (ipnat) and `-F` (ipf) are not used, so live translations, states and every
 * rule lbc did not write stay as they are.
 *
 * Facts this rests on (FreeBSD sbin/ipf: ipnat(8), ipf(8), ipnat_y.y; sys/netpfil/ipfilter ip_nat.c):
 * - `ipnat -f -` / `ipf -f -` add the rules read from standard input; `-r`
 *   removes the rules read instead. A rule is found by comparing all of it, so
 *   a rule is removed by giving its exact text again.
 * - Adding a rule identical to a loaded one fails with EEXIST (ipnat_addrule
 *   reports "File exists"), so loading the same file twice is not idempotent by
 *   itself. apply() therefore first removes each rule of the file one at a time
 *   (a rule that is not loaded makes that one command fail, which is expected
 *   and ignored), then adds the file.
 * - Removing an rdr rule without `-p` leaves the translations it made in place:
 *   established connections keep their backend. With `-p` (`ipnat -p -r`:
 *   OPT_PURGE, ipnat_addrule sends SIOCPURGENAT instead of SIOCRMNAT) the
 *   kernel marks the rule IPN_PURGE and deletes the rule's NAT sessions with
 *   it (ip_nat.c ipf_nat_ioctl, ipf_nat_delrule).
 * - `sticky` keeps a client on its backend through a host map entry that
 *   remembers the rule (ip_nat.c ipf_nat_hostmap: hm_ipnat, holding a
 *   reference on the rule), found for a new connection by source, destination
 *   and port across all rules (ipf_nat_newrdr calls it with np = NULL) and
 *   used as is: `np = hm->hm_ipnat`, with no check that the rule was removed.
 *   The entry lives while a NAT session refers to it (hm_ref, dropped in
 *   ipf_nat_delete) and every such session was made by that rule. So a sticky
 *   client with a live session to a dead backend would keep being sent there;
 *   purging the dead rule's sessions frees its host map entries too.
 *
 * What is NOT atomic or idempotent here, honestly:
 * - apply() removes, then adds: for the few milliseconds in between, new
 *   connections to the vip are not redirected (IPFilter has no transaction for
 *   NAT rules). Established ones are not affected.
 * - apply() removes the rules of the file it is given, and the rules of lbc's
 *   last apply on this host that the new file no longer has (its record, in
 *   $LBC_STATE_DIR or /var/run/lbc). Without a record (a reboot cleared it),
 *   rules of an older, different compile stay loaded; remove them with
 *   `ipnat -r -f OLD` and `ipf -r -f OLD`.
 * - ipf.rules is added after the rules already loaded: a `block … quick`
 *   earlier in the list wins. Put the pass rules in your own ipf.conf instead
 *   when that matters (they never change while the agent runs).
 *
 * What the agent does:
 * - Pass rules: loaded once at start, for every backend that may ever receive
 *   traffic (primaries, and backups as they would be when promoted); a pass
 *   rule for an idle backend only lets in what is addressed to it.
 * - Rdr rules: per service, the rules of the compiled spec whose destination is
 *   a backend of the live selection (the live primaries; the live backups,
 *   from the compile with backups promoted, when every primary is down; every
 *   primary when nothing is up), exactly as ipnatStateChangeCommands picks
 *   them. A service written as one port-range rule (several local ports) cannot
 *   lose one backend that way; its rules come from compiling the live service.
 *   A change adds the new rules first (`ipnat -f -`), then removes the old ones
 *   (`ipnat -r -f -`), so the vip always has a rule.
 * - At start, rules an earlier run may have left (any rule the agent could have
 *   loaded) are removed one at a time before the first load, as in apply().
 * - A dead backend's rules are removed with `-p` when the service is sticky
 *   (the host map, above) or UDP (a client that keeps sending would stay on the
 *   dead backend as long as it keeps its session alive, as the Linux agent's
 *   conntrack deletion says): those sessions end at once, and the clients are
 *   balanced again. TCP services without sticky keep `-r` alone: their
 *   connections end by themselves. apply() never purges: it removes and
 *   re-adds the same rules, whose sessions must survive.
 */
import type { Backend, IR, Service } from '../ir/types.js';
import { backendKey, liveService } from '../health/live.js';
import { LbcError } from '../diagnostics/diagnostic.js';
import type { AgentDriver, AgentLoad, ApplyContext, OutputFile } from '../targets/target.js';
import { ipnatRulesFor, purgesSessions, runCommands, type Command } from './index.js';
import { ipnatRemovals, recordBsdLoad, recordedIpnatRules } from './lifecycle.js';

const NAT = 'ipnat.rules';
const FILTER = 'ipf.rules';

function textOf(files: readonly OutputFile[], name: string): string {
  const f = files.find((x) => x.name === name);
  if (!f) throw new LbcError([{ code: 'LBC5001', severity: 'error', message: `nothing to apply: the compiled output has no ${name}` }]);
  return f.content;
}

function ruleLines(text: string, keyword: 'rdr' | 'pass' | 'map'): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l.startsWith(`${keyword} `));
}

/** The NAT rules of a compile: rdr, and the map rules of source-nat (static: one per backend, whatever is up). */
const natLines = (text: string) => [...ruleLines(text, 'rdr'), ...ruleLines(text, 'map')];

const body = (lines: readonly string[]) => `${lines.join('\n')}\n`;

/** Remove each rule on its own (it may not be loaded: that failure is expected), then add them all. */
function reload(tool: 'ipf' | 'ipnat', lines: readonly string[], removeFirst: readonly string[] = lines): Command[] {
  const out: Command[] = removeFirst.map((l) => ({ argv: [tool, '-r', '-f', '-'], stdin: body([l]), mayFail: true }));
  if (lines.length) out.push({ argv: [tool, '-f', '-'], stdin: body(lines) });
  return out;
}

/** apply(): ipf.rules first, so the redirected connections are let in as soon as they start. */
export function ipnatApplyPlan(files: readonly OutputFile[]): Command[] {
  return [...reload('ipf', ruleLines(textOf(files, FILTER), 'pass')), ...reload('ipnat', natLines(textOf(files, NAT)))];
}

export async function ipnatApply(files: OutputFile[], ctx: ApplyContext): Promise<void> {
  // Rules an earlier apply loaded that this compile no longer has: lbc's record names them.
  const previous = recordedIpnatRules('ipnat', ctx);
  const nat = new Set(natLines(textOf(files, NAT)));
  const filter = new Set(ruleLines(textOf(files, FILTER), 'pass'));
  const gone = previous ? { nat: previous.nat.filter((l) => !nat.has(l)), filter: previous.filter.filter((l) => !filter.has(l)) } : null;
  await runCommands(ipnatApplyPlan(files), ctx);
  if (gone && gone.nat.length + gone.filter.length > 0) {
    ctx.log(`ipnat: removing ${gone.nat.length} rdr and ${gone.filter.length} pass rule(s) of the last apply that this spec no longer has`);
    await runCommands(ipnatRemovals(gone), ctx);
  }
  await recordBsdLoad('ipnat', files, ctx);
}

// --- the agent ------------------------------------------------------------------

/** The address ipnat.rules writes for a backend (ipnat/emit.ts destinationOf). */
function rhsAddress(svc: Service, b: Backend): string {
  return b.address ?? (svc.family === 'ipv6' ? '::0/0' : '127.0.0.1');
}

/** A right side `port LO-HI`: one rule carries several backends. */
const isRangeRule = (l: string) => /-> \S+ port \d+-\d+( |$)/.test(l);

interface Reference {
  /** The service as compiled with these backends all up (backups promoted for the backup reference). */
  svc: Service;
  nat: string[];
  filter: string[];
  maps: string[];
}

interface ServicePlan {
  primaries: Reference;
  backups: Reference | null;
}

function compileOne(change: AgentLoad, svc: Service): { nat: string[]; filter: string[]; maps: string[] } {
  const files = change.compile({ ...change.spec, services: [svc] });
  return { nat: ruleLines(textOf(files, NAT), 'rdr'), filter: ruleLines(textOf(files, FILTER), 'pass'), maps: ruleLines(textOf(files, NAT), 'map') };
}

function servicePlan(change: AgentLoad, svc: Service): ServicePlan {
  const prim = liveService(svc, new Map());
  const down = new Map(svc.backends.filter((b) => !b.backup).map((b) => [backendKey(svc, b), 'down' as const]));
  const hasBackups = svc.backends.some((b) => b.backup);
  const back = hasBackups ? liveService(svc, down) : null;
  return {
    primaries: { svc: prim, ...compileOne(change, prim) },
    backups: back ? { svc: back, ...compileOne(change, back) } : null,
  };
}

/** The rdr rules that carry service `svc` of the live IR `live`. */
function desiredLines(change: AgentLoad, plan: ServicePlan, live: IR, name: string): string[] {
  const liveSvc = live.services.find((s) => s.name === name)!;
  const chosen = new Set(liveSvc.backends.map((b) => b.index));
  const spec = change.spec.services.find((s) => s.name === name)!;
  const onBackups = spec.backends.some((b) => b.backup && chosen.has(b.index));
  const ref = onBackups ? plan.backups! : plan.primaries;
  if (ref.nat.some(isRangeRule)) {
    // The one rule cannot lose a backend: take the rules of the live service itself.
    return ref.svc.backends.every((b) => chosen.has(b.index)) ? ref.nat : compileOne(change, liveSvc).nat;
  }
  const refText = body(ref.nat);
  const keep = new Set(ref.svc.backends.filter((b) => chosen.has(b.index)).flatMap((b) => ipnatRulesFor(refText, rhsAddress(ref.svc, b), b.port)));
  return ref.nat.filter((l) => keep.has(l));
}

/**
 * Every rdr rule the agent could have loaded for a service: the references,
 * and for a port-range reference the rules of each run of consecutive
 * backends and of each pair one apart (between them they give every form the
 * emitter writes for a part of the range: one backend, a shorter range, and
 * single round-robin rules).
 */
function possibleLines(change: AgentLoad, plan: ServicePlan): string[] {
  const out = new Set<string>();
  for (const ref of [plan.primaries, plan.backups]) {
    if (!ref) continue;
    ref.nat.forEach((l) => out.add(l));
    if (!ref.nat.some(isRangeRule)) continue;
    const bs = ref.svc.backends;
    const subsets: Backend[][] = [];
    for (let i = 0; i < bs.length; i++) {
      for (let j = i; j < bs.length; j++) subsets.push(bs.slice(i, j + 1));
      if (i + 2 < bs.length) subsets.push([bs[i], bs[i + 2]]);
    }
    for (const backends of subsets) {
      try {
        compileOne(change, { ...ref.svc, backends }).nat.forEach((l) => out.add(l));
      } catch {
        // A part the target refuses was never loaded.
      }
    }
  }
  return [...out];
}

/** ipnat removing the rules of `lines`: `-p -r` for those of services whose sessions go with their rules. */
function removal(lines: readonly string[], purged: ReadonlySet<string>, mayFail = false): Command[] {
  const out: Command[] = [];
  const plain = lines.filter((l) => !purged.has(l));
  const purge = lines.filter((l) => purged.has(l));
  if (plain.length) out.push({ argv: ['ipnat', '-r', '-f', '-'], stdin: body(plain), ...(mayFail ? { mayFail } : {}) });
  if (purge.length) out.push({ argv: ['ipnat', '-p', '-r', '-f', '-'], stdin: body(purge), ...(mayFail ? { mayFail } : {}) });
  return out;
}

/** The commands that take the host from `change.previous` to `change.live`. */
export function ipnatLoadPlan(change: AgentLoad): Command[] {
  const plans = new Map(change.spec.services.map((s) => [s.name, servicePlan(change, s)]));
  const desired = (live: IR) => change.spec.services.flatMap((s) => desiredLines(change, plans.get(s.name)!, live, s.name));
  const next = desired(change.live);
  /** Every rule a purging service could have loaded. */
  const purged = new Set(change.spec.services.filter(purgesSessions).flatMap((s) => possibleLines(change, plans.get(s.name)!)));
  if (!change.previous) {
    const filter = [...new Set([...plans.values()].flatMap((p) => [...p.primaries.filter, ...(p.backups?.filter ?? [])]))];
    // Source NAT map rules, like the pass rules, are loaded once for every backend that may get traffic.
    const maps = [...new Set([...plans.values()].flatMap((p) => [...p.primaries.maps, ...(p.backups?.maps ?? [])]))];
    const possible = [...new Set([...plans.values()].flatMap((p) => possibleLines(change, p)))];
    // A rule that stays is removed and added again with its sessions; one that goes (a dead backend's,
    // left by an earlier run) goes with its sessions where the service purges. Map rules (source NAT)
    // are removed and added again like the rdr rules that stay.
    const cleanup: Command[] = [
      ...maps.flatMap((l) => reload('ipnat', [], [l])),
      ...possible.flatMap((l) => (next.includes(l) || !purged.has(l) ? reload('ipnat', [], [l]) : removal([l], purged, true))),
    ];
    const add = [...maps, ...next];
    return [...reload('ipf', filter), ...cleanup, ...(add.length ? [{ argv: ['ipnat', '-f', '-'], stdin: body(add) }] : [])];
  }
  const before = desired(change.previous.live);
  const add = next.filter((l) => !before.includes(l));
  const remove = before.filter((l) => !next.includes(l));
  const commands: Command[] = [];
  if (add.length) commands.push({ argv: ['ipnat', '-f', '-'], stdin: body(add) });
  commands.push(...removal(remove, purged));
  return commands;
}

export const ipnatAgentDriver: AgentDriver = {
  load: async (change, ctx) => runCommands(ipnatLoadPlan(change), ctx),
};
