/**
 * The live IR: the spec's IR cut down to the backends that should receive new
 * connections right now, which is what the agent hands to a target's emitter.
 *
 * Per service:
 * 1. the primaries that are up, if any;
 * 2. otherwise the backups that are up, promoted to primaries (backup: false),
 *    balanced by the service's own mode and weights;
 * 3. otherwise ("fail open") every primary, as if all were up.
 *
 * Why fail open in case 3: the IR (and so every emitter) requires at least
 * one primary per service, and leaving the service out would let new
 * connections fall through to whatever listens on the vip on the balancer
 * itself, or be routed onwards. Sending them to the dead primaries makes
 * clients see exactly what they would see from a dead server (a reset or a
 * timeout), keeps the ruleset shape the operator compiled, and is the safe
 * side when the checks themselves are what broke (a wrong health path, a
 * filtered check port): cloud balancers and Envoy's panic threshold make the
 * same choice. The agent logs the condition loudly.
 *
 * The live IR carries no health checks (the agent is the health checker, so
 * targets must not refuse or re-emit them) and no backup backends.
 */
import type { Backend, IR, Service } from '../ir/types.js';
import type { Health } from './state.js';

/** A stable key for one backend of one service (service names are unique). */
export function backendKey(svc: Pick<Service, 'name'>, be: Pick<Backend, 'index'>): string {
  return `${svc.name}#${be.index}`;
}

/** Health by backendKey(); a backend missing from the map (no check, or not checked yet) counts as up. */
export type HealthMap = ReadonlyMap<string, Health>;

export type Selection = 'primaries' | 'backups' | 'fail-open';

export function isUp(health: HealthMap, svc: Service, be: Backend): boolean {
  return health.get(backendKey(svc, be)) !== 'down';
}

export function selectLive(svc: Service, health: HealthMap): { backends: Backend[]; selection: Selection } {
  const up = svc.backends.filter((b) => isUp(health, svc, b));
  const prim = up.filter((b) => !b.backup);
  if (prim.length > 0) return { backends: prim, selection: 'primaries' };
  const backups = up.filter((b) => b.backup);
  if (backups.length > 0) return { backends: backups, selection: 'backups' };
  return { backends: svc.backends.filter((b) => !b.backup), selection: 'fail-open' };
}

export function liveService(svc: Service, health: HealthMap): Service {
  const { backends } = selectLive(svc, health);
  return {
    ...svc,
    health: null,
    // Indexes are kept: they name the backend in the spec, and targets derive stable names from them.
    backends: backends.map((b) => ({ ...b, backup: false, health: null })),
  };
}

export function liveIR(ir: IR, health: HealthMap): IR {
  return { ...ir, services: ir.services.map((s) => liveService(s, health)) };
}

/** The shapes a live IR can take that use the most features: every primary, and every backup promoted. */
export function extremeIRs(ir: IR): IR[] {
  const allUp: HealthMap = new Map();
  const onlyBackups = new Map<string, Health>();
  for (const s of ir.services) for (const b of s.backends) if (!b.backup) onlyBackups.set(backendKey(s, b), 'down');
  const out = [liveIR(ir, allUp)];
  if (ir.services.some((s) => s.backends.some((b) => b.backup))) out.push(liveIR(ir, onlyBackups));
  return out;
}
