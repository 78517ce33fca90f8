/** One-line human summaries of services for `lbc check`. */
import { hasSeveralPorts, type Service } from '../ir/types.js';
import { portsText } from '../ir/ports.js';

export function describeService(s: Service): string {
  const vip = s.vip ? (s.vip.isHost ? s.vip.address : `${s.vip.address}/${s.vip.prefixLength}`) : 'any address';
  const where = hasSeveralPorts(s) ? `${vip} ports ${portsText(s.ports)}` : s.family === 'ipv6' && s.vip?.isHost ? `[${vip}]:${s.port}` : `${vip} port ${s.port}`;
  const bits = [`${s.name}: ${s.protocol} ${where}${s.interface ? ` on ${s.interface}` : ''}`, `mode ${s.mode}${s.mode === 'hash' ? ` (${s.hashFields.join(',')})` : ''}`];
  const backups = s.backends.filter((b) => b.backup).length;
  bits.push(`${s.backends.length - backups} backend${s.backends.length - backups === 1 ? '' : 's'}${backups ? ` + ${backups} backup` : ''}`);
  if (s.sticky) bits.push(`sticky ${s.sticky.timeoutSeconds}s`);
  if (s.local) bits.push('local');
  if (s.allow) bits.push(`only from ${s.allow.length} client block${s.allow.length === 1 ? '' : 's'}`);
  if (s.backends.some((b) => b.health)) bits.push('health-checked');
  return bits.join(', ');
}
