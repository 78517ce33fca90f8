/**
 * Command plans for hosts without relayd: what the agent runs on a pf or
 * IPFilter host when a backend changes state. Pure functions returning argv
 * lists (and stdin); the agent runs them in order and stops at the first failure.
 *
 * The drivers the agent and `lbc apply` use are in pf.ts and ipnat.ts; they
 * build on these plans.
 *
 * pf (pfctl(8)): the pf and pf-openbsd targets keep table-based pools in
 * `table <lbc-NAME> persist`, which lbc loads into its anchor "lbc"
 * (`pfctl -a lbc -f -`; pf.ts says what the main pf.conf needs).
 * - `pfctl [-a ANCHOR] -t lbc-NAME -T replace ADDR...` swaps the table's
 *   contents atomically; live states keep their translation.
 * - Sticky pools remember a client's backend in a source-tracking node;
 *   `-K host|network -K host|network` kills "the source tracking entries from
 *   the first host/network to the second", so `-K 0.0.0.0/0 -K DEAD` (or ::/0)
 *   frees every client stuck to a dead backend.
 * Pools the targets write inline (weighted lists, probability rules) have no
 * table to rewrite; those need a reload of the whole ruleset.
 *
 * IPFilter (ipnat(8)): `-r` removes the rules read from the file instead of
 * adding them, and without `-F`/`-C` live translations stay; `-f -` reads
 * stdin. So a dead backend's rdr rules (exactly as ipnat.rules has them: the
 * kernel finds a rule by comparing all of it) are removed with
 * `ipnat -r -f -` (`-p -r` for sticky and UDP services, which purges the
 * rule's sessions with it: ipnat.ts says why), and put back with
 * `ipnat -f -` when the backend is up.
 */
import type { Family, Service } from '../ir/types.js';
import type { ApplyContext } from '../targets/target.js';

export { pfAgentDriver, pfAnchorApply, pfLoadPlan, PF_ANCHOR } from './pf.js';
export { ipnatAgentDriver, ipnatApply, ipnatApplyPlan, ipnatLoadPlan } from './ipnat.js';

export interface Command {
  argv: string[];
  stdin?: string;
  /** A clean-up step whose failure is expected (removing a rule that may not be loaded); the runner goes on. */
  mayFail?: boolean;
}

/** Runs a plan in order; the first failure of a command that may not fail rejects and ends it. */
export async function runCommands(commands: readonly Command[], ctx: ApplyContext): Promise<void> {
  for (const c of commands) {
    try {
      await ctx.run(c.argv, c.stdin);
    } catch (e) {
      if (!c.mayFail) throw e;
    }
  }
}

export type Plan = { ok: true; commands: Command[] } | { ok: false; why: string };

function loopback(family: Family): string {
  return family === 'ipv6' ? '::1' : '127.0.0.1';
}

/** The addresses the pool should hold: the live primaries, or the live backups when every primary is down. */
export function liveAddresses(svc: Service, up: ReadonlySet<number>): string[] {
  const alive = svc.backends.filter((b) => up.has(b.index));
  const prim = alive.filter((b) => !b.backup);
  const set = prim.length > 0 ? prim : alive.filter((b) => b.backup);
  return [...new Set(set.map((b) => b.address ?? loopback(svc.family)))];
}

/**
 * pfctl commands after a state change of `svc`'s backends. `up` holds the
 * indexes of backends now up, `wentDown` those that just went down.
 * `pfConf` is the emitted ruleset, read to find out whether the service's pool
 * is the table <lbc-NAME> (only then can it be changed without a reload).
 */
export function pfStateChangeCommands(opts: {
  svc: Service;
  up: ReadonlySet<number>;
  wentDown: readonly number[];
  pfConf: string;
  anchor?: string | null;
}): Plan {
  const { svc, up, wentDown, pfConf, anchor } = opts;
  const table = `lbc-${svc.name}`;
  if (!pfConf.includes(`table <${table}> persist`)) {
    return { ok: false, why: `service ${svc.name} has no table <${table}> in the pf ruleset (its pool is written inline); reload the ruleset instead` };
  }
  if (new RegExp(`^table <${table}> persist \\{.* weight \\d+`, 'm').test(pfConf)) {
    return { ok: false, why: `table <${table}> carries weights, which are written in its definition; reload the ruleset instead` };
  }
  const base = ['pfctl', ...(anchor ? ['-a', anchor] : []), '-t', table, '-T'];
  const addrs = liveAddresses(svc, up);
  // `-T replace` with no address would need a file; `-T flush` says the same plainly.
  const commands: Command[] = [{ argv: addrs.length ? [...base, 'replace', ...addrs] : [...base, 'flush'] }];
  const any = svc.family === 'ipv6' ? '::/0' : '0.0.0.0/0';
  const dead = new Set(
    svc.backends.filter((b) => wentDown.includes(b.index)).map((b) => b.address ?? loopback(svc.family)).filter((a) => !addrs.includes(a)),
  );
  if (svc.sticky) for (const a of dead) commands.push({ argv: ['pfctl', '-K', any, '-K', a] });
  return { ok: true, commands };
}

/** Whether a removed rdr rule's sessions go with it (ipnat.ts says why: sticky host maps, UDP flows). */
export function purgesSessions(svc: Service): boolean {
  return svc.sticky !== null || svc.protocol === 'udp';
}

/** The rdr lines of ipnat.rules (one service's block) that send traffic to `address` port `port`. */
export function ipnatRulesFor(ipnatRules: string, address: string, port: number): string[] {
  return ipnatRules
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('rdr ') && new RegExp(`-> ${address.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} port ${port}( |$)`).test(l));
}

/**
 * ipnat commands for one backend of `svc` changing state. `ipnatRules` is the
 * emitted ipnat.rules. Refused when the backend shares its rule with others
 * (the port-range form), where removing it would remove them too.
 */
export function ipnatStateChangeCommands(opts: { svc: Service; backendIndex: number; up: boolean; ipnatRules: string }): Plan {
  const { svc, backendIndex, up, ipnatRules } = opts;
  const b = svc.backends.find((x) => x.index === backendIndex);
  if (!b) return { ok: false, why: `service ${svc.name} has no backend ${backendIndex}` };
  if (b.backup) return { ok: false, why: 'backups are not in ipnat.rules; the ipnat target leaves them out' };
  const address = b.address ?? (svc.family === 'ipv6' ? '::0/0' : '127.0.0.1');
  const rules = ipnatRulesFor(ipnatRules, address, b.port);
  if (rules.length === 0) {
    const shared = ipnatRules.split('\n').some((l) => l.startsWith('rdr ') && l.includes(`-> ${address} port `) && /port \d+-\d+/.test(l.split('->')[1] ?? ''));
    return {
      ok: false,
      why: shared
        ? `backend ${address}:${b.port} shares one port-range rdr rule with the other backends; reload ipnat.rules without it instead`
        : `no rdr rule for ${address} port ${b.port} in ipnat.rules`,
    };
  }
  const stdin = `${rules.join('\n')}\n`;
  const remove = purgesSessions(svc) ? ['ipnat', '-p', '-r', '-f', '-'] : ['ipnat', '-r', '-f', '-'];
  return { ok: true, commands: [{ argv: up ? ['ipnat', '-f', '-'] : remove, stdin }] };
}
