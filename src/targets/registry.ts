/** Every target lbc knows, by the name used on the command line. */
import type { TargetDefinition } from './target.js';
import { pfTarget } from './pf/index.js';
import { pfOpenbsdTarget } from './pf-openbsd/index.js';
import { pfFreebsd15Target } from './pf-freebsd15/index.js';
import { iptablesTarget, ip6tablesTarget } from './iptables/index.js';
import { nftablesTarget } from './nftables/index.js';
import { iptablesConditionTarget } from './iptables-condition/index.js';
import { relaydFreebsdTarget, relaydTarget } from './relayd/index.js';
import { ipnatTarget } from './ipnat/index.js';
import { makeSystemdTarget } from './systemd/index.js';
import { keepalivedTarget } from './keepalived/index.js';

const targets: TargetDefinition[] = [
  // targets are registered here, one import each
  pfTarget,
  pfOpenbsdTarget,
  pfFreebsd15Target,
  iptablesTarget,
  ip6tablesTarget,
  nftablesTarget,
  iptablesConditionTarget,
  relaydTarget,
  relaydFreebsdTarget,
  ipnatTarget,
  keepalivedTarget,
  makeSystemdTarget((name) => TARGETS.get(name)),
];

/** The names of the targets, for the types of callers (a test keeps it equal to the registry). */
export const TARGET_NAMES = ['pf', 'pf-openbsd', 'pf-freebsd15', 'iptables', 'ip6tables', 'nftables', 'iptables-condition', 'relayd', 'relayd-freebsd', 'ipnat', 'keepalived', 'systemd'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export const TARGETS: ReadonlyMap<string, TargetDefinition> = new Map(targets.map((t) => [t.name, t]));

export function targetNames(): string[] {
  return [...TARGETS.keys()];
}
