/**
 * The per-backend health state machine, as a pure function so it can be
 * tested without sockets or clocks.
 *
 * - Before its first check a backend is "unknown"; the first result decides at
 *   once (a backend that fails its first check is down immediately, one that
 *   passes is up immediately), so the agent's first ruleset already leaves out
 *   what is dead when it starts.
 * - After that, an up backend goes down after `fall` consecutive failures, and
 *   a down backend comes up after `rise` consecutive successes; a result of the
 *   other kind resets the streak (so a flapping backend keeps its state).
 */
import type { HealthCheck } from '../ir/types.js';
import type { CheckResult } from './check.js';

export type Health = 'unknown' | 'up' | 'down';

export interface BackendState {
  health: Health;
  /** Consecutive results that disagree with the current state (failures while up, successes while down). */
  streak: number;
  /** The most recent failure reason, for messages. */
  lastReason: string | null;
}

export const INITIAL_STATE: BackendState = { health: 'unknown', streak: 0, lastReason: null };

export interface Transition {
  from: Health;
  to: Health;
  /** One line for the log, without the backend's name: "down (3 failures: connection refused)". */
  why: string;
}

export function step(
  state: BackendState,
  result: CheckResult,
  hc: Pick<HealthCheck, 'rise' | 'fall'>,
): { state: BackendState; transition: Transition | null } {
  const reason = result.ok ? state.lastReason : result.reason;
  if (state.health === 'unknown') {
    const to: Health = result.ok ? 'up' : 'down';
    return {
      state: { health: to, streak: 0, lastReason: reason },
      transition: { from: 'unknown', to, why: result.ok ? 'up (first check passed)' : `down (first check failed: ${result.reason})` },
    };
  }
  const against = state.health === 'up' ? !result.ok : result.ok;
  if (!against) return { state: { health: state.health, streak: 0, lastReason: reason }, transition: null };
  const streak = state.streak + 1;
  const needed = state.health === 'up' ? hc.fall : hc.rise;
  if (streak < needed) return { state: { health: state.health, streak, lastReason: reason }, transition: null };
  if (state.health === 'up') {
    return {
      state: { health: 'down', streak: 0, lastReason: reason },
      transition: { from: 'up', to: 'down', why: `down (${plural(streak, 'failure')}: ${reason})` },
    };
  }
  return {
    state: { health: 'up', streak: 0, lastReason: reason },
    transition: { from: 'down', to: 'up', why: `up (${plural(streak, 'success', 'successes')})` },
  };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
