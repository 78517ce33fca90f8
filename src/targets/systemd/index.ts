/**
 * `--target systemd`: the service unit that runs `lbc agent` for this spec.
 * Not a firewall target: it renders how the agent is started. The agent's own
 * target (nftables by default) must be able to express the spec, so the unit
 * never starts an agent that would refuse to load.
 */
import { resolve } from 'node:path';
import { LbcError } from '../../diagnostics/diagnostic.js';
import type { IR } from '../../ir/types.js';
import { systemdApplyUnit, systemdUnit } from '../../agent/systemd.js';
import { compileForTarget, type EmitOptions, type OutputFile, type TargetDefinition } from '../target.js';
import { TIER_FEATURES, type TierFeature } from '../tier/features.js';

const AGENT_TARGETS = ['nftables', 'iptables', 'ip6tables'];
const ALL_TIER = Object.fromEntries(
  (Object.keys(TIER_FEATURES) as TierFeature[]).map((f) => [f, { level: 'yes', note: 'as the agent\'s target does' } as const]),
);
export const UNIT_KINDS = ['agent', 'apply'] as const;

/** Built by the registry, which hands in the lookup of the agent's target (no import cycle). */
export function makeSystemdTarget(lookup: (name: string) => TargetDefinition | undefined): TargetDefinition {
  return {
    name: 'systemd',
    title: 'systemd unit (Type=notify) running `lbc agent` for this spec',
    families: ['ipv4', 'ipv6'],
    capabilities: {},
    // The unit runs the agent as a tier's node; whether that node's target can do the tier is the agent's check below.
    tier: { capabilities: ALL_TIER, files: (files) => files },
    emit(ir: IR, options: EmitOptions): OutputFile[] {
      const agentTarget = typeof options.agentTarget === 'string' ? options.agentTarget : 'nftables';
      const unit = typeof options.unit === 'string' ? options.unit : 'agent';
      if (!(UNIT_KINDS as readonly string[]).includes(unit)) {
        throw new LbcError([{ code: 'LBC4102', severity: 'error', message: `--unit is ${UNIT_KINDS.join(' or ')}, not "${unit}"` }]);
      }
      if (!AGENT_TARGETS.includes(agentTarget)) {
        throw new LbcError([{ code: 'LBC4102', severity: 'error', message: `the unit runs lbc with --target ${AGENT_TARGETS.join(', ')}, not "${agentTarget}"` }]);
      }
      const specPath = typeof options.specPath === 'string' ? options.specPath : null;
      if (!specPath) {
        throw new LbcError([{ code: 'LBC4101', severity: 'error', message: 'the systemd unit names the spec file the agent reads; compile from a file, not standard input' }]);
      }
      const agent = lookup(agentTarget);
      if (!agent) throw new LbcError([{ code: 'LBC4002', severity: 'error', message: `target ${agentTarget} is not available` }]);
      // A tier's node: the agent compiles its ruleset (and loads its tier rules) as that node.
      const node: { node?: string; runDir?: string } =
        ir.balancers && typeof options.node === 'string' ? { node: options.node, ...(typeof options.runDir === 'string' ? { runDir: options.runDir } : {}) } : {};
      const check = compileForTarget(agent, ir, node);
      if (check.diagnostics.some((d) => d.severity === 'error')) throw new LbcError(check.diagnostics);
      const lbcPath = typeof options.lbcPath === 'string' ? options.lbcPath : undefined;
      const extraArgs = node.node ? ['--node', node.node, ...(node.runDir ? ['--run-dir', node.runDir] : [])] : [];
      if (unit === 'apply') return [{ name: `lbc-apply-${agentTarget}.service`, content: systemdApplyUnit(resolve(specPath), agentTarget, { lbcPath, extraArgs }) }];
      return [{ name: 'lbc-agent.service', content: systemdUnit(resolve(specPath), agentTarget, { lbcPath, extraArgs }) }];
    },
  };
}
