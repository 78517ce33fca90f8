/**
 * `lbc status --target T [--json]`: what lbc loaded last on this host (its record), whether the kernel
 * still holds it, and per service its backends with the counters the kernel has.
 * Exit 0 when the kernel holds lbc's last load (or cannot tell), 1 when it holds something else or nothing.
 */
import { LbcError } from '../../diagnostics/diagnostic.js';
import { hostContext } from '../../host/exec.js';
import type { TargetStatus } from '../../targets/lifecycle.js';
import type { CliCommand } from '../command.js';
import { resolveTarget } from '../targets.js';

const VERDICT: Record<TargetStatus['kernel'], string> = {
  holds: "the kernel holds lbc's last load",
  differs: "the kernel does NOT hold lbc's last load",
  absent: 'nothing of lbc is loaded',
  unknown: 'cannot tell whether the kernel holds it',
};

export function statusText(s: TargetStatus): string {
  const lines = [`${s.target}: ${VERDICT[s.kernel]} — ${s.detail}`];
  if (!s.recorded) lines.push('  no record of an lbc apply on this host');
  else {
    const n = s.recorded.services.length;
    lines.push(`  last load: ${s.recorded.loadedAt} from ${s.recorded.spec ?? 'standard input'}, ${n} service${n === 1 ? '' : 's'}`);
  }
  const width = Math.max(0, ...s.services.flatMap((v) => v.backends.map((b) => b.backend.length)));
  for (const v of s.services) {
    lines.push(`  ${v.name}: ${v.protocol} ${v.vip ?? 'any address'} port ${v.port}`);
    for (const b of v.backends) {
      const figures = [b.newConnections !== undefined ? `new ${b.newConnections}` : '', b.tracked !== undefined ? `tracked ${b.tracked}` : ''].filter(Boolean).join(', ');
      lines.push(`    ${b.backend.padEnd(width)}${figures ? `  ${figures}` : ''}`);
    }
  }
  if (s.services.length) lines.push(`  (${s.countersNote})`);
  return `${lines.join('\n')}\n`;
}

export const statusCommand: CliCommand = {
  usage: 'status',
  describe: "what lbc loaded last on this host for a target, whether the kernel still holds it, and per-backend counters",
  options: (y) =>
    y
      .option('target', { alias: 't', type: 'string', demandOption: true, describe: 'the target to report on' })
      .option('json', { type: 'boolean', default: false, describe: 'print the report as one JSON document' }),
  async run(args, out) {
    const def = resolveTarget(args.target);
    if (!def.status) throw new LbcError([{ code: 'LBC4004', severity: 'error', message: `target ${def.name} is not loaded on a host by lbc, so there is no status to show` }]);
    const s = await def.status(hostContext({ dryRun: false, log: (l) => out.log(l) }));
    await out.stdout(args.json ? `${JSON.stringify(s, null, 2)}\n` : statusText(s));
    return s.kernel === 'holds' || s.kernel === 'unknown' ? 0 : 1;
  },
};
