/**
 * Private network namespaces for the kernel parts of the benchmark.
 *
 * Topology (one per measured layout, created fresh and deleted after):
 *   client ns  c0 10.250.1.2/30 ── l0 10.250.1.1/30  balancer ns (rules loaded here, forwarding on)
 *                                  l1 10.250.2.1/30 ── b0 10.250.2.2/30  backend ns
 * The backend ns owns every backend address at once through one local route for the whole backend
 * prefix (`ip route add local PREFIX dev lo`), so a DNAT to any of 80,000 backends is accepted by the
 * one server listening on 0.0.0.0 there. The veth pairs are created directly inside the namespaces,
 * so nothing is ever added to the host's own namespace, and every address stays inside these three.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { must, run } from './proc.js';

const live = new Set<string>();
const liveProcs = new Set<number>();

/** Delete every namespace and kill every process this benchmark started; safe to call repeatedly. */
export function cleanupAllSync(): void {
  for (const pid of liveProcs) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  liveProcs.clear();
  for (const ns of live) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
  live.clear();
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      cleanupAllSync();
      process.exit(130);
    });
  }
}

/** A namespace created elsewhere in the benchmark, deleted by cleanupAllSync() if its owner cannot. */
export function trackNamespace(ns: string): void {
  hookExit();
  live.add(ns);
}
export function untrackNamespace(ns: string): void {
  live.delete(ns);
}

export function trackPid(pid: number): void {
  liveProcs.add(pid);
}
export function untrackPid(pid: number): void {
  liveProcs.delete(pid);
}

export interface Topology {
  client: string;
  balancer: string;
  backend: string;
  clientAddr: string;
  destroy(): Promise<void>;
}

export const BACKEND_PREFIX = '10.64.0.0/12';

export async function createTopology(tag: string): Promise<Topology> {
  hookExit();
  const base = `lbcb-${process.pid}-${randomBytes(3).toString('hex')}-${tag}`;
  const [client, balancer, backend] = [`${base}-cl`, `${base}-lb`, `${base}-be`];
  const topo: Topology = {
    client,
    balancer,
    backend,
    clientAddr: '10.250.1.2',
    destroy: async () => {
      for (const ns of [client, balancer, backend]) {
        if (!live.has(ns)) continue;
        await run(['ip', 'netns', 'del', ns]);
        live.delete(ns);
      }
    },
  };
  try {
    for (const ns of [client, balancer, backend]) {
      await must(['ip', 'netns', 'add', ns]);
      live.add(ns);
      await must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await must(['ip', '-n', client, 'link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 'l0', 'netns', balancer]);
    await must(['ip', '-n', balancer, 'link', 'add', 'l1', 'type', 'veth', 'peer', 'name', 'b0', 'netns', backend]);
    const batch = (ns: string, cmds: string[]) => must(['ip', '-n', ns, '-batch', '-'], { input: cmds.join('\n') + '\n' });
    await batch(client, ['addr add 10.250.1.2/30 dev c0', 'link set c0 up', 'route add default via 10.250.1.1']);
    await batch(balancer, [
      'addr add 10.250.1.1/30 dev l0',
      'addr add 10.250.2.1/30 dev l1',
      'link set l0 up',
      'link set l1 up',
      `route add ${BACKEND_PREFIX} via 10.250.2.2`,
    ]);
    await batch(backend, ['addr add 10.250.2.2/30 dev b0', 'link set b0 up', 'route add default via 10.250.2.1', `route add local ${BACKEND_PREFIX} dev lo`]);
    for (const [k, v] of [
      ['net.ipv4.ip_forward', '1'],
      ['net.ipv4.conf.all.rp_filter', '0'],
      ['net.ipv4.conf.default.rp_filter', '0'],
    ]) {
      await must(['ip', 'netns', 'exec', balancer, 'sysctl', '-q', '-w', `${k}=${v}`]);
    }
    await must(['ip', 'netns', 'exec', backend, 'sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=0']);
    // Sequential connections from one client reuse ports quickly; RST-closed sockets leave no TIME_WAIT,
    // and a wide port range keeps the client clear of conntrack entries still in CLOSE.
    await must(['ip', 'netns', 'exec', client, 'sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=10000 65000']);
  } catch (e) {
    await topo.destroy();
    throw e;
  }
  return topo;
}

export function inNs(ns: string, argv: string[]): string[] {
  return ['ip', 'netns', 'exec', ns, ...argv];
}
