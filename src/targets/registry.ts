/** Every target lbc knows, by the name used on the command line. */
import type { TargetDefinition } from './target.js';
import { pfTarget } from './pf/index.js';
import { pfOpenbsdTarget } from './pf-openbsd/index.js';
import { nftablesTarget } from './nftables/index.js';
import { ipnatTarget } from './ipnat/index.js';

const targets: TargetDefinition[] = [
  // targets are registered here, one import each
  pfTarget,
  pfOpenbsdTarget,
  nftablesTarget,
  ipnatTarget,
];

export const TARGETS: ReadonlyMap<string, TargetDefinition> = new Map(targets.map((t) => [t.name, t]));

export function targetNames(): string[] {
  return [...TARGETS.keys()];
}
