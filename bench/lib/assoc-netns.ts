/**
 * The namespaces of the associations benchmark: client ── balancer ── backend, IPv4 and IPv6, private
 * addresses only inside them. The client sends from any address of the key prefixes (raw sockets);
 * the balancer routes those prefixes back to it; the backend namespace holds the backend addresses and
 * drops every datagram to the service port before anything answers it (no replies, no ICMP).
 */
import { randomBytes } from 'node:crypto';
import { must, run } from './proc.js';
import { trackNamespace, untrackNamespace } from './netns.js';

export interface FamilyAddresses {
  vip: string;
  vip2: string;
  backends: string[];
  /** First client address of the sender (it adds 1 per 50,000 clients). */
  keyBase: string;
}

export interface AssocTopology {
  cl: string;
  lb: string;
  be: string;
  addr: { ipv4: FamilyAddresses; ipv6: FamilyAddresses };
  destroy(): Promise<void>;
}

/** Datagrams that reached the backend namespace so far (its sink counter). */
export async function arrived(topo: AssocTopology): Promise<number> {
  const out = (await must(['ip', 'netns', 'exec', topo.be, 'nft', 'list', 'counter', 'inet', 'sink', 'arrived'])).stdout;
  return Number(/packets (\d+)/.exec(out)?.[1] ?? NaN);
}

export async function createAssocTopology(): Promise<AssocTopology> {
  const base = `lbca-${process.pid}-${randomBytes(3).toString('hex')}`;
  const [cl, lb, be] = ['cl', 'lb', 'be'].map((s) => `${base}-${s}`);
  const topo: AssocTopology = {
    cl,
    lb,
    be,
    addr: {
      ipv4: { vip: '10.252.100.1', vip2: '10.252.100.2', backends: [10, 11, 12, 13, 14, 15, 16, 17].map((i) => `10.252.2.${i}`), keyBase: '10.252.128.1' },
      ipv6: { vip: 'fd00:252:100::1', vip2: 'fd00:252:100::2', backends: [10, 11, 12, 13, 14, 15, 16, 17].map((i) => `fd00:252:2::${i.toString(16)}`), keyBase: 'fd00:252:80::1' },
    },
    destroy: async () => {
      for (const ns of [cl, lb, be]) {
        await run(['ip', 'netns', 'del', ns]);
        untrackNamespace(ns);
      }
    },
  };
  try {
    for (const ns of [cl, lb, be]) {
      await must(['ip', 'netns', 'add', ns]);
      trackNamespace(ns);
      await must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      await must(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    }
    await must(['ip', 'netns', 'exec', lb, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    await must(['ip', '-n', cl, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'cl0', 'netns', lb]);
    await must(['ip', '-n', lb, 'link', 'add', 'be0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', be]);
    const batch = (ns: string, cmds: string[]) => must(['ip', '-n', ns, '-batch', '-'], { input: `${cmds.join('\n')}\n` });
    await batch(cl, ['addr add 10.252.1.2/24 dev eth0', 'addr add fd00:252:1::2/64 dev eth0 nodad', 'link set eth0 up', 'route add default via 10.252.1.1', 'route add default via fd00:252:1::1']);
    await batch(lb, [
      'addr add 10.252.1.1/24 dev cl0', 'addr add fd00:252:1::1/64 dev cl0 nodad', 'addr add 10.252.2.1/24 dev be0', 'addr add fd00:252:2::1/64 dev be0 nodad',
      'link set cl0 up', 'link set be0 up', 'route add 10.252.128.0/17 via 10.252.1.2', 'route add fd00:252:80::/64 via fd00:252:1::2',
    ]);
    await batch(be, [
      ...topo.addr.ipv4.backends.map((b) => `addr add ${b}/24 dev eth0`),
      ...topo.addr.ipv6.backends.map((b) => `addr add ${b}/64 dev eth0 nodad`),
      'link set eth0 up', 'route add default via 10.252.2.1', 'route add default via fd00:252:2::1',
    ]);
    await must(['ip', 'netns', 'exec', be, 'nft', '-f', '-'], {
      input: 'table inet sink {\n\tcounter arrived {\n\t}\n\tchain pre {\n\t\ttype filter hook prerouting priority -300; policy accept;\n\t\tudp dport 5683 counter name arrived drop\n\t}\n}\n',
    });
  } catch (e) {
    await topo.destroy();
    throw e;
  }
  return topo;
}
