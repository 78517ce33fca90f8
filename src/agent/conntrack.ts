/**
 * Removing the connection-tracking entries that still point at a backend the
 * agent took out of the ruleset.
 *
 * A DNATed flow's conntrack entry holds the client's original tuple
 * (src=client dst=vip dport=service port) and the reply tuple as the backend
 * will answer (src=backend sport=backend port dst=client). NAT decisions are
 * made only for a flow's first packet, so once the entry exists every later
 * packet follows it whatever the ruleset says now; for UDP, which has no end
 * of connection, a steady client refreshes the entry's timeout forever and
 * never reaches a live backend. The reply source is therefore the field that
 * names the backend (conntrack(8): --reply-src, --reply-port-src); the
 * original destination (--orig-dst, --orig-port-dst) narrows it to this
 * service's flows, since one backend may serve several services.
 *
 * For a REDIRECT backend (a port on the balancer) the reply source address is
 * whichever local address the kernel picked (net/netfilter/nf_nat_redirect.c),
 * so only the ports are matched.
 */
import type { ApplyContext } from '../targets/target.js';
import type { Backend, Service } from '../ir/types.js';

export function conntrackFilter(svc: Service, be: Backend): string[] {
  const f: string[] = [];
  if (svc.family === 'ipv6') f.push('-f', 'ipv6');
  // -p comes first: conntrack(8) only accepts the port options after the protocol is known.
  f.push('-p', svc.protocol);
  if (svc.vip?.isHost) f.push('--orig-dst', svc.vip.address);
  f.push('--orig-port-dst', String(svc.port));
  if (be.address !== null) f.push('--reply-src', be.address);
  f.push('--reply-port-src', String(be.port));
  return f;
}

/**
 * Delete the entries of one backend; returns how many there were.
 * Lists first because `conntrack -D` exits with status 1 when nothing matched,
 * which is indistinguishable from a real failure through ApplyContext.run().
 */
export async function flushBackendFlows(ctx: ApplyContext, svc: Service, be: Backend): Promise<number> {
  const filter = conntrackFilter(svc, be);
  const listed = await ctx.query(['conntrack', '-L', ...filter]);
  const count = listed.split('\n').filter((l) => l.trim().length > 0).length;
  if (count === 0) return 0;
  try {
    await ctx.run(['conntrack', '-D', ...filter]);
  } catch {
    // The entries may have expired between listing and deleting; what matters is that none is left.
    const again = await ctx.query(['conntrack', '-L', ...filter]);
    if (again.trim().length > 0) throw new Error(`conntrack -D ${filter.join(' ')} left entries behind`);
  }
  return count;
}
