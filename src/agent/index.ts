/**
 * `lbc agent`: health-check the backends from the balancer and keep the
 * target's ruleset in step with which of them are alive.
 *
 * Entry point:
 *
 *   runAgent(ir, target, opts): Promise<number>   // the process exit status
 *
 *   ir      the validated IR of the whole spec (health checks filled in)
 *   target  a TargetDefinition with an agentDriver (pf, pf-openbsd, ipnat: pools changed
 *           in place) or with apply() (iptables, ip6tables, nftables: the whole live ruleset
 *           is loaded again); a target with neither makes runAgent return 2
 *   opts.log            one line to stderr (required)
 *   opts.dryRun         print the commands instead of running them (checks still run)
 *   opts.signal         aborting it stops the agent like SIGTERM does
 *   opts.handleSignals  default true: SIGTERM and SIGINT stop the agent
 *   opts.context        an ApplyContext to use instead of running commands on this host
 *   opts.emitOptions    passed to the target's emitter
 *   opts.flushConntrack 'udp' (default) | 'all' | 'none': whose flows to a dead backend are deleted
 *   opts.retryMs        delay before retrying a failed ruleset load (default 5000)
 *   opts.checker, opts.notify, opts.onApplied: for tests
 *
 * Exit status: 0 after SIGTERM/SIGINT/abort (an apply in progress is finished
 * first); 1 when the spec cannot be expressed by the target or the first
 * ruleset load fails; 2 when the target cannot be applied on this host.
 *
 * Life cycle:
 * 1. Check every backend that has a health check once, all at the same time.
 *    The first result decides (see health/state.ts); unchecked backends are up.
 * 2. Load the live ruleset (health/live.ts) with the target's agentDriver, or
 *    else with target.apply(): one atomic load (one `nft -f` transaction, or
 *    iptables-restore of lbc's own chains; pfctl into lbc's anchor; ipnat see
 *    agent-bsd/ipnat.ts), then tell systemd READY=1 when started with Type=notify.
 *    Later loads give the driver the previous live ruleset too, so it can change
 *    only what changed (pf: `pfctl -T replace` of lbc's tables).
 * 3. From then on each backend is checked every `interval`, one check at a
 *    time (a check is bounded by `timeout`, which the spec keeps <= interval).
 *    A state change is logged as one line and triggers a reload; changes that
 *    happen in the same event-loop turn are loaded together, and changes that
 *    arrive during a load are loaded right after it. A reload only replaces
 *    lbc's own rules, and established flows keep their NAT binding in
 *    conntrack, so connections to live backends are never disturbed.
 * 4. After a load that removed a dead backend, its conntrack entries are
 *    deleted (agent/conntrack.ts; a driver may bring its own way, or none:
 *    the BSD drivers never flush pf states or ipnat translations): UDP "flows" would otherwise stay on the dead
 *    backend as long as the client keeps talking. TCP entries are left alone
 *    by default: a TCP flow to a dead server ends by itself (reset or
 *    timeout), while a server that merely fails its HTTP check may still be
 *    finishing requests (HAProxy's default and IPVS's expire_nodest_conn=0
 *    make the same choice); flushConntrack 'all' deletes them too.
 * 5. On stop: STOPPING=1, no new checks or loads, wait for a load in progress,
 *    return 0. The last ruleset stays loaded, so a restart (or a crash) does not
 *    interrupt traffic.
 */
import { execFile } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { formatDiagnostic, LbcError } from '../diagnostics/diagnostic.js';
import type { Backend, IR, Service } from '../ir/types.js';
import { endpointText, runCheck, type Checker, type CheckTarget } from '../health/check.js';
import { backendKey, extremeIRs, liveIR, selectLive, type Selection } from '../health/live.js';
import { INITIAL_STATE, step, type BackendState, type Health } from '../health/state.js';
import {
  compileForTarget, type AgentDriver, type ApplyContext, type EmitOptions, type OutputFile, type TargetDefinition,
} from '../targets/target.js';
import { flushBackendFlows } from './conntrack.js';
import { summarize } from '../targets/lifecycle.js';
import { notifierFromEnv, type Notifier } from './notify.js';
import { hostContext as sharedHostContext, shellWord } from '../host/exec.js';

export { systemdUnit, type SystemdUnitOptions } from './systemd.js';

export interface AgentOptions {
  log: (line: string) => void;
  dryRun?: boolean;
  signal?: AbortSignal;
  handleSignals?: boolean;
  context?: ApplyContext;
  emitOptions?: EmitOptions;
  flushConntrack?: 'udp' | 'all' | 'none';
  retryMs?: number;
  /** Replaces the real checks (tests). */
  checker?: Checker;
  /** null: never notify; undefined: systemd-notify when NOTIFY_SOCKET is set. */
  notify?: Notifier | null;
  /** The spec's path, for the record each load leaves (lbc status). */
  specPath?: string | null;
  /** Called after each successful load with the live IR that was loaded. */
  onApplied?: (live: IR) => void;
}

const PREFIX = 'lbc-agent:';

interface Monitor {
  svc: Service;
  be: Backend;
  key: string;
  name: string;
  check: CheckTarget;
  state: BackendState;
}

export async function runAgent(ir: IR, target: TargetDefinition, opts: AgentOptions): Promise<number> {
  const log = (msg: string) => opts.log(`${PREFIX} ${msg}`);
  const driver = driverOf(target);
  if (!driver) {
    log(`target ${target.name} cannot be loaded on this host; copy its compiled rules to the host that runs it`);
    return 2;
  }
  const ctx = opts.context ?? hostContext(!!opts.dryRun, opts.log);
  const checker = opts.checker ?? runCheck;
  const notifier = opts.notify === undefined ? notifierFromEnv(process.env, opts.log) : opts.notify;
  const flushMode = opts.flushConntrack ?? 'udp';
  const retryMs = opts.retryMs ?? 5000;
  const emitOptions = opts.emitOptions ?? {};

  const services = ir.services.filter((s) => target.families.includes(s.family));
  if (services.length === 0) {
    log(`no service of the spec is for target ${target.name} (${target.families.join(', ')})`);
    return 1;
  }
  if (!driver.flushFlows && flushMode !== 'none') {
    log(`target ${target.name}: flows established to a backend that goes down are left to end by themselves (lbc never flushes its states or translations)`);
  }
  // Refuse up front what the target could not load later, when backups get promoted at 3 a.m.
  for (const shape of extremeIRs({ ...ir, services })) {
    const r = compileForTarget(target, shape, emitOptions);
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    if (errors.length) {
      for (const d of errors) opts.log(formatDiagnostic(d));
      return 1;
    }
  }

  const monitors: Monitor[] = [];
  for (const svc of services) {
    for (const be of svc.backends) {
      if (!be.health) continue;
      monitors.push({
        svc,
        be,
        key: backendKey(svc, be),
        name: `${svc.name} ${endpointText(be.address, be.port)}`,
        check: { address: be.address, port: be.health.port ?? be.port, family: svc.family },
        state: INITIAL_STATE,
      });
    }
  }
  const byKey = new Map(monitors.map((m) => [m.key, m]));

  // --- stopping ---------------------------------------------------------------
  const stop = new AbortController();
  // Every checked backend waits on this signal (a sleep or a check at a time); that is not a leak.
  setMaxListeners(2 * monitors.length + 10, stop.signal);
  const onSignal = (sig: NodeJS.Signals) => {
    if (!stop.signal.aborted) log(`${sig}: stopping`);
    stop.abort();
  };
  const handleSignals = opts.handleSignals ?? true;
  if (handleSignals) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  const onOuterAbort = () => stop.abort();
  if (opts.signal?.aborted) stop.abort();
  else opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const stopped = new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
  let stoppingSent: Promise<void> = Promise.resolve();
  stop.signal.addEventListener('abort', () => {
    if (notifier) stoppingSent = notifier.send(['STOPPING=1']);
  }, { once: true });

  // --- state and loads ----------------------------------------------------------
  const health = new Map<string, Health>();
  /** Backends that went down since their flows were last flushed. */
  const needsFlush = new Set<string>();
  let lastLoaded: string | null = null;
  let previous: { live: IR; files: OutputFile[] } | null = null;
  const compileShape = (shape: IR): OutputFile[] => {
    const r = compileForTarget(target, shape, emitOptions);
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    if (errors.length) throw new LbcError(errors);
    return r.files;
  };
  let selections = new Map<string, Selection>();
  const warned = new Set<string>();

  const record = (m: Monitor, result: Awaited<ReturnType<Checker>>): boolean => {
    const { state, transition } = step(m.state, result, m.be.health!);
    m.state = state;
    health.set(m.key, state.health);
    if (!transition) return false;
    if (transition.to === 'down') needsFlush.add(m.key);
    else needsFlush.delete(m.key);
    // A first check that passes is the expected case, not news.
    if (!(transition.from === 'unknown' && transition.to === 'up')) log(`${m.name} ${transition.why}`);
    return true;
  };

  /** One load of the current live IR; false when it failed. */
  const loadOnce = async (): Promise<boolean> => {
    const live = liveIR({ ...ir, services }, health);
    const shape = JSON.stringify(live.services.map((s) => s.backends.map((b) => b.index)));
    if (shape !== lastLoaded) {
      const result = compileForTarget(target, live, emitOptions);
      for (const d of result.diagnostics) {
        const text = formatDiagnostic(d);
        if (d.severity === 'error' || !warned.has(text)) opts.log(text);
        warned.add(text);
      }
      if (result.diagnostics.some((d) => d.severity === 'error')) return false;
      try {
        // The record of each load (lbc status) names what the agent loaded: the live backends.
        await driver.load({ spec: { ...ir, services }, live, files: result.files, previous, compile: compileShape }, { ...ctx, meta: summarize(live, opts.specPath ?? null) });
      } catch (e) {
        log(`loading the ruleset failed: ${errorText(e)}`);
        // A driver's load may be several commands (pfctl, ipnat) and may have stopped halfway: the next
        // attempt starts from nothing known, which every driver handles (apply() is idempotent).
        lastLoaded = null;
        previous = null;
        return false;
      }
      lastLoaded = shape;
      previous = { live, files: result.files };
      const down = monitors.filter((m) => m.state.health === 'down').length;
      log(`loaded the ruleset (${down} of ${monitors.length} checked backends down)`);
      logSelections(live);
      opts.onApplied?.(live);
    }
    await flushDead(live);
    return true;
  };

  const logSelections = (live: IR) => {
    const next = new Map<string, Selection>();
    for (const svc of services) {
      const sel = selectLive(svc, health);
      next.set(svc.name, sel.selection);
      const before = selections.get(svc.name) ?? 'primaries';
      if (sel.selection === before) continue;
      const list = sel.backends.map((b) => endpointText(b.address, b.port)).join(', ');
      if (sel.selection === 'backups') log(`${svc.name}: every primary is down; sending new connections to backups ${list}`);
      else if (sel.selection === 'fail-open') log(`${svc.name}: no backend is up; sending new connections to every primary (${list}) until one passes its check`);
      else log(`${svc.name}: primaries are back; sending new connections to ${list}`);
    }
    selections = next;
    void live;
  };

  const flushDead = async (live: IR) => {
    if (flushMode === 'none' || !driver.flushFlows) {
      needsFlush.clear();
      return;
    }
    for (const key of [...needsFlush]) {
      const m = byKey.get(key)!;
      const liveSvc = live.services.find((s) => s.name === m.svc.name)!;
      // Fail open keeps a dead backend in the ruleset; its flows are moved once it leaves the ruleset.
      if (m.state.health === 'down' && liveSvc.backends.some((b) => b.index === m.be.index)) continue;
      needsFlush.delete(key);
      if (m.state.health !== 'down') continue;
      if (m.svc.protocol === 'tcp' && flushMode !== 'all') continue;
      try {
        const n = await driver.flushFlows(m.svc, m.be, ctx);
        if (n > 0) log(`${m.name}: deleted ${n} conntrack ${n === 1 ? 'entry' : 'entries'}`);
      } catch (e) {
        log(`${m.name}: deleting conntrack entries failed: ${errorText(e)}`);
      }
    }
  };

  let pending = false;
  let scheduled = false;
  let loading: Promise<void> | null = null;
  let retryTimer: NodeJS.Timeout | null = null;
  const requestLoad = () => {
    pending = true;
    if (scheduled || loading || stop.signal.aborted) return;
    scheduled = true;
    // setImmediate: every state change of this event-loop turn goes into one load.
    setImmediate(() => {
      scheduled = false;
      if (loading || stop.signal.aborted) return;
      loading = (async () => {
        while (pending && !stop.signal.aborted) {
          pending = false;
          if (!(await loadOnce())) {
            if (!retryTimer && !stop.signal.aborted) {
              retryTimer = setTimeout(() => {
                retryTimer = null;
                requestLoad();
              }, retryMs);
            }
            break;
          }
        }
      })().finally(() => {
        loading = null;
        if (pending && !retryTimer && !stop.signal.aborted) requestLoad();
      });
    });
  };

  const cleanup = () => {
    if (handleSignals) {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
    opts.signal?.removeEventListener('abort', onOuterAbort);
    if (retryTimer) clearTimeout(retryTimer);
  };

  try {
    // 1. First round.
    const firstStart = Date.now();
    await Promise.all(monitors.map(async (m) => record(m, await checker(m.check, m.be.health!, stop.signal))));
    if (stop.signal.aborted) {
      await stoppingSent;
      return 0;
    }
    // 2. First load: it must work, or systemd should see the failure.
    if (!(await loadOnce())) {
      log('the first ruleset load failed; exiting');
      return 1;
    }
    const down = monitors.filter((m) => m.state.health === 'down').length;
    const status = `${down} of ${monitors.length} checked backends down`;
    log(`ready: ${services.length} ${services.length === 1 ? 'service' : 'services'}, ${status}`);
    if (notifier && !stop.signal.aborted) await notifier.send(['READY=1', `STATUS=${status}`]);

    // 3. Steady state: one loop per checked backend.
    const loops = monitors.map(async (m) => {
      let next = firstStart + m.be.health!.intervalMs;
      while (!stop.signal.aborted) {
        await sleep(next - Date.now(), stop.signal);
        if (stop.signal.aborted) break;
        next = Date.now() + m.be.health!.intervalMs;
        const result = await checker(m.check, m.be.health!, stop.signal);
        if (stop.signal.aborted) break;
        if (record(m, result)) requestLoad();
      }
    });
    await stopped;
    // 5. Stop: loops end at their next await; a load in progress is finished.
    await Promise.all(loops);
    while (loading) await loading;
    await stoppingSent;
    return 0;
  } finally {
    cleanup();
  }
}

/** The target's own driver, or loading the whole live output with apply() and flushing conntrack (the Linux targets). */
function driverOf(target: TargetDefinition): AgentDriver | null {
  if (target.agentDriver) return target.agentDriver;
  if (!target.apply) return null;
  const apply = target.apply.bind(target);
  return {
    load: (change, ctx) => apply(change.files, ctx),
    flushFlows: (svc, be, ctx) => flushBackendFlows(ctx, svc, be),
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function errorText(e: unknown): string {
  if (e instanceof LbcError) return e.diagnostics.map((d) => d.message).join('; ');
  return e instanceof Error ? e.message : String(e);
}

/** The host's ApplyContext: in a dry run, changing commands are printed (with their input) on the agent's log instead. */
export function hostContext(dryRun: boolean, log: (line: string) => void): ApplyContext {
  return sharedHostContext({
    dryRun,
    log,
    announce: (argv, stdin) => {
      log(`${PREFIX} would run: ${argv.map(shellWord).join(' ')}${stdin === undefined ? '' : ' <<EOF'}`);
      if (stdin !== undefined) {
        for (const line of stdin.replace(/\n$/, '').split('\n')) log(line);
        log('EOF');
      }
    },
  });
}
