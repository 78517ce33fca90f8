/**
 * The capability entries of a target that cannot keep UDP associations (the BSD targets, relayd,
 * iptables-condition): the feature itself refused with the target's own reason, and its two
 * refinements refused with a pointer to it, so `lbc check` names the reason once per service.
 */
import type { CapabilityTable, Support } from './target.js';

export const ASSOCIATIONS_INSTEAD =
  'use --target nftables (or iptables / ip6tables), which keep associations per client address and port; on this target, sticky gives address-only affinity';

export function associationsRefused(why: string, instead = ASSOCIATIONS_INSTEAD): CapabilityTable {
  const see: Support = { level: 'no', why: 'this target keeps no associations (see the refusal of associations)', instead };
  return {
    associations: { level: 'no', why, instead },
    'associations.full': see,
    'associations.backend-initiated': see,
  };
}
