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

const AGENT_TARGETS = ['nftables', 'iptables', 'ip6tables'];
export const UNIT_KINDS = ['agent', 'apply'] as const;

/** Built by the registry, which hands in the lookup of the agent's target (no import cycle). */
export function makeSystemdTarget(lookup: (name: string) => TargetDefinition | undefined): TargetDefinition {
  return {
    name: 'systemd',
    title: 'systemd unit (Type=notify) running `lbc agent` for this spec',
    families: ['ipv4', 'ipv6'],
    capabilities: {},
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
      const check = compileForTarget(agent, ir, {});
      if (check.diagnostics.some((d) => d.severity === 'error')) throw new LbcError(check.diagnostics);
      const lbcPath = typeof options.lbcPath === 'string' ? options.lbcPath : undefined;
      if (unit === 'apply') return [{ name: `lbc-apply-${agentTarget}.service`, content: systemdApplyUnit(resolve(specPath), agentTarget, { lbcPath }) }];
      return [{ name: 'lbc-agent.service', content: systemdUnit(resolve(specPath), agentTarget, { lbcPath }) }];
    },
  };
}
