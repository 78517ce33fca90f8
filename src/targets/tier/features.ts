/**
 * The balancer tier in the capability model: the tier features a spec's `balancers` block asks for,
 * each target's support for them (TargetDefinition.tier), and the hooks a target gives to write and
 * load a node's files. A feature a target has no rule for is refused: a tier needs files written for
 * it, unlike a service feature, which an emitter handles unless its table says otherwise.
 */
import type { Diagnostic, SourceLocation } from '../../diagnostics/diagnostic.js';
import type { BalancerNode, Balancers } from '../../ir/balancers.js';
import type { IR } from '../../ir/types.js';
import type { ApplyContext, EmitOptions, OutputFile, Support } from '../target.js';

export const TIER_FEATURES = {
  'tier.failover': 'a failover group of nodes (VRRP / CARP)',
  'tier.sync': 'connection-state sync between the nodes (conntrackd / pfsync)',
  'tier.active-active': 'an active-active cluster of nodes (source-address hash)',
  'tier.advert-fine': 'advertisement intervals that are not whole seconds',
} as const;

export type TierFeature = keyof typeof TIER_FEATURES;

export type TierRule = Support | ((tier: Balancers, ir: IR) => Support);

export interface TierEmitContext {
  ir: IR;
  tier: Balancers;
  node: BalancerNode;
  /** Where the node's daemons and scripts keep their runtime files (EmitOptions.runDir, default /run/lbc). */
  runDir: string;
  options: EmitOptions;
}

export interface TierHooks {
  /** The target writes nothing but a tier's files (keepalived): a spec without `balancers` gives it nothing to do. */
  only?: boolean;
  capabilities: Partial<Record<TierFeature, TierRule>>;
  /** The node's files: the target's own (a hook may add rules to them) and what the node needs beside them. */
  files(files: OutputFile[], ctx: TierEmitContext): OutputFile[];
  /** Load what files() added, after the target's own apply loaded its part (the same context files() had). */
  apply?(files: OutputFile[], ctx: ApplyContext, tier: TierEmitContext): Promise<void>;
  /** `lbc remove`: take out what apply() loaded (and the addresses it added, recorded in the run directory). */
  remove?(ctx: ApplyContext, runDir: string): Promise<void>;
}

export interface TierFeatureUse {
  feature: TierFeature;
  location: SourceLocation;
}

export function tierFeaturesOf(tier: Balancers): TierFeatureUse[] {
  const uses: TierFeatureUse[] = [{ feature: tier.mode === 'failover' ? 'tier.failover' : 'tier.active-active', location: tier.loc.mode }];
  if (tier.sync) uses.push({ feature: 'tier.sync', location: tier.loc.sync ?? tier.loc.block });
  if (tier.advertMs % 1000 !== 0) uses.push({ feature: 'tier.advert-fine', location: tier.loc.advert ?? tier.loc.block });
  return uses;
}

const NO_TIER: Support = {
  level: 'no',
  why: 'this target writes no files for a balancer tier',
  instead: 'use a target that does (lbc matrix lists them)',
};

export function tierSupport(hooks: TierHooks | undefined, feature: TierFeature, tier: Balancers, ir: IR): Support {
  const rule = hooks?.capabilities[feature];
  if (rule === undefined) return NO_TIER;
  return typeof rule === 'function' ? rule(tier, ir) : rule;
}

/** Capability diagnostics of a spec's tier on one target: errors for refusals, warnings for approximations. */
export function checkTier(targetName: string, hooks: TierHooks | undefined, ir: IR): Diagnostic[] {
  const tier = ir.balancers;
  if (!tier) {
    if (!hooks?.only) return [];
    return [{ code: 'LBC3013', severity: 'note', message: `target ${targetName} configures the nodes of a balancer tier, and this spec has no "balancers" block: nothing to write`, notes: ['add a balancers block (mode, id, interface, nodes), or compile for a firewall target'] }];
  }
  const out: Diagnostic[] = [];
  for (const use of tierFeaturesOf(tier)) {
    const s = tierSupport(hooks, use.feature, tier, ir);
    if (s.level === 'no') {
      out.push({ code: 'LBC3010', severity: 'error', message: `target ${targetName} cannot set up ${TIER_FEATURES[use.feature]}: ${s.why}`, location: use.location, notes: [s.instead] });
    } else if (s.level === 'approx') {
      out.push({ code: 'LBC3011', severity: 'warning', message: `target ${targetName} approximates ${TIER_FEATURES[use.feature]}: ${s.note}`, location: use.location });
    }
  }
  return out;
}
