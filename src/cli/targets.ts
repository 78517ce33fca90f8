/** Target names on the command line: the registry's, with "did you mean" for near misses and prefixes. */
import { didYouMean } from '../diagnostics/diagnostic.js';
import { TARGETS, targetNames } from '../targets/registry.js';
import type { TargetDefinition } from '../targets/target.js';
import { UsageError } from './command.js';

export function suggestTarget(word: string): string | undefined {
  const names = targetNames();
  const near = didYouMean(word, names);
  if (near) return near;
  // "nft" for nftables, "ipf" for ipnat's IPFilter: a unique prefix or a well-known short name.
  const lower = word.toLowerCase();
  const byPrefix = names.filter((n) => n.startsWith(lower));
  if (lower.length >= 2 && byPrefix.length === 1) return byPrefix[0];
  const nick: Record<string, string> = { nft: 'nftables', ipf: 'ipnat', ipfilter: 'ipnat', openbsd: 'pf-openbsd', ip6: 'ip6tables', condition: 'iptables-condition' };
  return nick[lower];
}

export function resolveTarget(name: unknown): TargetDefinition {
  if (Array.isArray(name)) throw new UsageError(`--target is given ${name.length} times (${name.join(', ')}); name one target`);
  const word = String(name ?? '');
  const def = TARGETS.get(word);
  if (def) return def;
  const guess = suggestTarget(word);
  throw new UsageError(`unknown target "${word}"`, [...(guess ? [`did you mean "${guess}"?`] : []), `targets: ${targetNames().join(', ')}`]);
}
