/**
 * What apply does to the ipset sets of UDP associations (associations.ts) beyond `ipset restore -exist`,
 * which creates missing sets and leaves existing ones (and their members) alone:
 * - a set whose parameters changed (a new `max`) cannot be changed in place: a new set is filled with
 *   the old one's members (`ipset save`, which keeps each member's remaining timeout) and swapped in;
 * - a departing backend's clients leave its service's `-all` set before its own set is destroyed,
 *   or they would fill it for good (`ipset restore -exist` ignores members gone in the meantime).
 */
import { createHash } from 'node:crypto';
import type { ApplyContext } from '../target.js';

const CREATE = /^create (\S+) hash:ip,port family (\S+) hashsize (\d+) maxelem (\d+) timeout (\d+)$/;

/** Members of a set as `ipset save` prints them ("10.0.0.1,udp:4000 timeout 100"), or [] when it does not exist. */
async function members(name: string, ctx: ApplyContext): Promise<string[]> {
  let save: string;
  try {
    save = await ctx.query(['ipset', 'save', name]);
  } catch {
    return [];
  }
  const prefix = `add ${name} `;
  return save.split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
}

export async function resizeAssociationSets(setsFile: string, ctx: ApplyContext): Promise<void> {
  for (const line of setsFile.split('\n')) {
    const m = CREATE.exec(line);
    if (!m) continue;
    const [, name, family, hashsize, maxelem] = m;
    let header: string;
    try {
      header = await ctx.query(['ipset', 'list', '-t', name]);
    } catch {
      continue; // not there yet: restore creates it
    }
    const have = /maxelem (\d+)/.exec(header)?.[1];
    const fam = /family (\S+)/.exec(header)?.[1];
    // The hash size of a set grows with user-space adds, so only a smaller one than wanted counts.
    const size = Number(/hashsize (\d+)/.exec(header)?.[1] ?? 0);
    if (have === maxelem && fam === family && size >= Number(hashsize) && /Type: hash:ip,port/.test(header)) continue;
    const tmp = `LBC-tmp-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
    const kept = await members(name, ctx);
    const room = Number(maxelem);
    ctx.log(`ipset ${name}: maxelem ${have} -> ${maxelem}: copying its ${kept.length} association(s) into a new set${kept.length > room ? ` (the ${kept.length - room} beyond the new max are forgotten)` : ''}`);
    await ctx.run(['ipset', 'create', tmp, 'hash:ip,port', 'family', family, 'hashsize', hashsize, 'maxelem', maxelem, 'timeout', '0']);
    if (kept.length) await ctx.run(['ipset', 'restore', '-exist'], kept.slice(0, room).map((x) => `add ${tmp} ${x}`).join('\n') + '\n');
    await ctx.run(['ipset', 'swap', name, tmp]);
    await ctx.run(['ipset', 'destroy', tmp]);
  }
}

/** Before `gone` sets are destroyed: the members of each departing backend set leave its service's -all set, when that stays. */
export async function forgetDepartedAssociations(gone: readonly string[], wanted: ReadonlySet<string>, ctx: ApplyContext): Promise<void> {
  for (const name of gone) {
    const m = /^(LBC[46]-.+)-[0-9a-f]{8}$/.exec(name);
    const all = m ? `${m[1]}-all` : null;
    if (!all || !wanted.has(all)) continue;
    const list = await members(name, ctx);
    if (list.length === 0) continue;
    ctx.log(`ipset ${name}: ${list.length} association(s) of a departed backend are forgotten`);
    await ctx.run(['ipset', 'restore', '-exist'], list.map((x) => `del ${all} ${x.split(' ')[0]}`).join('\n') + '\n');
  }
}
