/**
 * `lbc apply --node` and `lbc agent --node`: after a target's own apply loaded the services, load what
 * the node of the balancer tier needs beside them (the target's tier hooks). Targets whose tier files
 * are host configuration for another system (the BSDs' rc.conf, hostname.if) have nothing to load here.
 */
import type { IR } from '../../ir/types.js';
import type { ApplyContext, EmitOptions, OutputFile, TargetDefinition } from '../target.js';
import { runDir, tierNode } from './plan.js';

export async function applyTier(def: TargetDefinition, ir: IR, files: OutputFile[], ctx: ApplyContext, options: EmitOptions): Promise<void> {
  const tier = ir.balancers;
  if (!tier) return;
  const node = tierNode(tier, options);
  if (!def.tier?.apply) {
    ctx.log(`tier: target ${def.name} loads nothing for node ${node.name} beside its rules; install the node's other files (lbc compile --node ${node.name} -o DIR) on it`);
    return;
  }
  await def.tier.apply(files, ctx, { ir, tier, node, runDir: runDir(options), options });
}

/** The emit options of --node and --run-dir, as the CLI passes them on (absent when not given). */
export function tierOptions(args: Record<string, unknown>): { node?: string; runDir?: string } {
  const out: { node?: string; runDir?: string } = {};
  if (args.node !== undefined) out.node = String(args.node);
  if (args['run-dir'] !== undefined) out.runDir = String(args['run-dir']);
  return out;
}
