/**
 * Target `nftables`: one `nft -f` file with lbc's own `table inet lbc` (IPv4 and IPv6 together),
 * replaced atomically on every apply. Layout: layout.ts; text: emit.ts.
 */
import { LbcError } from '../../diagnostics/diagnostic.js';
import type { ApplyContext, CapabilityTable, OutputFile, TargetDefinition } from '../target.js';
import { emitNftables, RULES_FILE } from './emit.js';

const capabilities: CapabilityTable = {
  health: { level: 'yes', note: 'checks are done by `lbc agent`, which recompiles without the backends that are down' },
  backup: { level: 'yes', note: 'backup backends get no rules; `lbc agent` recompiles with them when every primary is down' },
};

/**
 * `nft -f` runs the whole file as one netlink batch (one transaction): either all of it applies
 * or none does (nft(8), "-f"). The file itself deletes and recreates only `table inet lbc`, so
 * applying it twice leaves the same ruleset and other tables are never touched.
 * Reapplying resets the per-service rotation counters and forgets sticky clients, because the
 * table they live in is recreated.
 */
export async function applyNftables(files: OutputFile[], ctx: ApplyContext): Promise<void> {
  const rules = files.find((f) => f.name === RULES_FILE);
  if (!rules) throw new LbcError([{ code: 'LBC5001', severity: 'error', message: `nftables: nothing to apply (no ${RULES_FILE} among the files)` }]);
  ctx.log(`nftables: loading ${RULES_FILE} (replaces table inet lbc)`);
  await ctx.run(['nft', '-f', '-'], rules.content);
}

export const nftablesTarget: TargetDefinition = {
  name: 'nftables',
  title: 'Linux nftables: one `nft -f` file, table inet lbc for IPv4 and IPv6',
  families: ['ipv4', 'ipv6'],
  capabilities,
  emit: (ir) => emitNftables(ir),
  apply: applyNftables,
};
