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

/** Beyond this many ports a service's flows are found by address alone (one conntrack call per port otherwise). */
export const MAX_PORT_FILTERS = 64;

/**
 * The filters that find one backend's flows of one service: one per service port (conntrack(8) takes
 * one port per option), the backend's reply port being that same port when it keeps the client's.
 * A service with more ports than MAX_PORT_FILTERS is matched without ports: then flows of another
 * service sharing the vip and the backend go too, which only makes their clients reconnect.
 */
export function conntrackFilters(svc: Service, be: Backend): string[][] {
  const ports = svc.ports.flatMap((r) => Array.from({ length: Math.min(r.to - r.from + 1, MAX_PORT_FILTERS + 1) }, (_, i) => r.from + i));
  const head: string[] = [];
  if (svc.family === 'ipv6') head.push('-f', 'ipv6');
  // -p comes first: conntrack(8) only accepts the port options after the protocol is known.
  head.push('-p', svc.protocol);
  if (svc.vip?.isHost) head.push('--orig-dst', svc.vip.address);
  const reply = be.address !== null ? ['--reply-src', be.address] : [];
  if (ports.length > MAX_PORT_FILTERS) return [[...head, ...reply, ...(be.keepsPort ? [] : ['--reply-port-src', String(be.port)])]];
  return ports.map((p) => [...head, '--orig-port-dst', String(p), ...reply, '--reply-port-src', String(be.keepsPort ? p : be.port)]);
}

/**
 * Delete the entries of one backend; returns how many there were.
 * Lists first because `conntrack -D` exits with status 1 when nothing matched,
 * which is indistinguishable from a real failure through ApplyContext.run().
 */
export async function flushBackendFlows(ctx: ApplyContext, svc: Service, be: Backend): Promise<number> {
  let total = 0;
  for (const filter of conntrackFilters(svc, be)) {
    const listed = await ctx.query(['conntrack', '-L', ...filter]);
    const count = listed.split('\n').filter((l) => l.trim().length > 0).length;
    if (count === 0) continue;
    total += count;
    try {
      await ctx.run(['conntrack', '-D', ...filter]);
    } catch {
      // The entries may have expired between listing and deleting; what matters is that none is left.
      const again = await ctx.query(['conntrack', '-L', ...filter]);
      if (again.trim().length > 0) throw new Error(`conntrack -D ${filter.join(' ')} left entries behind`);
    }
  }
  return total;
}
