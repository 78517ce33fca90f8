/**
 * Target `nftables`: one `nft -f` file with lbc's own `table inet lbc` (IPv4 and IPv6 together),
 * replaced atomically, or changed in place by one partial transaction when only part of it changed.
 * Layout: layout.ts; text: emit.ts; incremental apply: incremental.ts.
 */
import { LbcError } from '../../diagnostics/diagnostic.js';
import { sourceNatBesideAssociations } from '../associations.js';
import type { ApplyContext, CapabilityTable, OutputFile, TargetDefinition } from '../target.js';
import { emitNftables, RULES_FILE } from './emit.js';
import { dropState, fullMarker, readTextState, stageTextState, STATE_VERSION, stateFilePath, type TextState } from '../applied-state.js';
import { associationsApplyScript, splitAssociations } from './associations.js';
import { addMarker, inLayout, planFromState, type NftPlan } from './incremental.js';
import { nftablesTier } from './partition.js';
import { nftablesStatus, planNftables, removeNftables } from './lifecycle.js';

const capabilities: CapabilityTable = {
  health: { level: 'yes', note: 'checks are done by `lbc agent`, which recompiles without the backends that are down' },
  backup: { level: 'yes', note: 'backup backends get no rules; `lbc agent` recompiles with them when every primary is down' },
  associations: { level: 'yes', note: 'dynamic sets per backend in table inet lbc_assoc, packets rewritten without connection tracking (associations.ts)' },
  'associations.full': {
    level: 'approx',
    note: 'nftables sets cannot evict the least recently used element (a full set refuses the add): when the table is full a newcomer goes to the backend a hash of its address and port picks, without being remembered; the same backend on every packet, and after conntrack -F, while the backends stay the same',
  },
  'source-nat': sourceNatBesideAssociations('sets and rewrite packets without connection tracking'),
  'associations.backend-initiated': { level: 'yes', note: "a backend's first packet to a client makes the association and leaves from the vip" },
};

/**
 * `nft -f` runs the whole file as one netlink batch (one transaction): either all of it applies
 * or none does (nft(8), "-f"). The file itself deletes and recreates only `table inet lbc`, so
 * applying it twice leaves the same ruleset and other tables are never touched.
 *
 * When lbc's last apply on this host is known (state file and marker chain, incremental.ts), only
 * what changed is loaded, as one batch as well: changed service chains are flushed and refilled,
 * elements of the dispatch and shared selection maps deleted and added, sets created or deleted.
 * Services whose chain did not change keep their rotation counters and sticky clients; a changed
 * service's rotation restarts.
 * Otherwise (first apply, reboot, table gone or loaded by someone else, a change only a full load
 * can make, or a failed partial load) the file is loaded whole, which resets every rotation counter
 * and forgets sticky clients, because the table they live in is recreated.
 */
export async function applyNftables(files: OutputFile[], ctx: ApplyContext): Promise<void> {
  const rules = files.find((f) => f.name === RULES_FILE);
  if (!rules) throw new LbcError([{ code: 'LBC5001', severity: 'error', message: `nftables: nothing to apply (no ${RULES_FILE} among the files)` }]);
  const stateFile = stateFilePath(ctx, 'nftables');
  const text = rules.content;
  // lbc's own table is planned from its text alone; the associations table (associations.ts) is
  // brought up to date by commands of its own in the same batch, which keep its sets.
  const { main } = splitAssociations(text);
  const state = stateFile && !ctx.fullApply ? readTextState(stateFile, 'nftables') : null;
  const plan = state ? partialPlan(ctx, state, main) : null;
  // In a dry run nothing changes, so the state file stays as it is.
  const mayRecord = ctx.dryRun || (await dropState(stateFile));
  if (plan && mayRecord) {
    ctx.log(
      plan.empty
        ? 'nftables: checking that table inet lbc still holds this ruleset (nothing changed)'
        : `nftables: loading only what changed: ${plan.chains.length} chain(s), ${plan.elements.length} map element(s), ${plan.sets.length} set(s), ${plan.maps.length} map(s)`,
    );
    // The next state is written while the kernel loads, and put in place only if the load succeeds.
    const staged = stageTextState(ctx.dryRun ? null : stateFile, { version: STATE_VERSION, target: 'nftables', marker: plan.marker, texts: [text], meta: ctx.meta }, ctx.log);
    try {
      await ctx.run(['nft', '-f', '-'], plan.script + (await associationsApplyScript(ctx, state!.texts[0], text)));
      await staged.commit();
      return;
    } catch (e) {
      await staged.discard();
      // The batch is one transaction, so a refused partial load changed nothing.
      const why = (e as Error).message.split('\n').find((l) => l.trim()) ?? '';
      ctx.log(`nftables: table inet lbc is not what lbc loaded last, or the partial load failed (${why}); loading the whole ruleset`);
    }
  }

  ctx.log(`nftables: loading ${RULES_FILE} (replaces table inet lbc)`);
  // Without a state file there is nothing to compare with later: load exactly the file, as always.
  // Otherwise the marker goes in the same batch as the table, so it names exactly what this load put there.
  const marker = stateFile && inLayout(main) ? fullMarker([text]) : null;
  const staged = stageTextState(marker && mayRecord && !ctx.dryRun ? stateFile : null, { version: STATE_VERSION, target: 'nftables', marker: marker ?? '', texts: [text], meta: ctx.meta }, ctx.log);
  try {
    // An association that expires between listing a departing backend's clients and the load makes
    // the batch fail (nft 1.0.6 has no `destroy element`): list again, a few times.
    for (let attempt = 1; ; attempt++) {
      const assoc = await associationsApplyScript(ctx, null, text);
      try {
        await ctx.run(['nft', '-f', '-'], `${marker ? `${main}${addMarker(marker)}\n` : main}${assoc}`);
        break;
      } catch (e) {
        if (attempt >= 3 || !/No such file or directory/.test((e as Error).message) || !assoc.includes('delete element')) throw e;
      }
    }
  } catch (e) {
    await staged.discard();
    throw e;
  }
  await staged.commit();
}

function partialPlan(ctx: ApplyContext, state: TextState, main: string): NftPlan | null {
  const plan = planFromState({ ...state, texts: state.texts.map((t) => splitAssociations(t).main) }, main);
  if (!plan) ctx.log('nftables: this change needs the whole ruleset loaded (or the file is not in the layout lbc emits)');
  return plan;
}

export const nftablesTarget: TargetDefinition = {
  name: 'nftables',
  title: 'Linux nftables: one `nft -f` file, table inet lbc for IPv4 and IPv6',
  families: ['ipv4', 'ipv6'],
  capabilities,
  emit: (ir) => emitNftables(ir),
  apply: applyNftables,
  tier: nftablesTier,
  remove: removeNftables,
  status: nftablesStatus,
  plan: planNftables,
};
