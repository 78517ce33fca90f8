/**
 * Kernel test harness: a three-namespace topology with real TCP/UDP traffic.
 *
 *   client ns (cl) ──veth── balancer ns (lb) ──veth── backend ns (be)
 *
 * Usage (vitest):
 *
 *   import { kernelSuite, createTopology, ADDR } from './harness/index.js';
 *   kernelSuite('iptables', ['iptables', 'iptables-restore'], () => {
 *     let topo: Topology;
 *     beforeAll(async () => { topo = await createTopology({ clientSources: 120 }); }, 60_000);
 *     afterAll(async () => { await topo?.destroy(); });
 *     it('...', async () => {
 *       await topo.startServers('be', [{ protocol: 'tcp', address: ADDR.v4.backends[0], port: 8080, id: 'b0' }]);
 *       await topo.exec('lb', ['iptables-restore', '--noflush'], rulesText);   // or target.apply(files, topo.applyContext('lb'))
 *       const r = await topo.connect({ host: '10.201.100.1', port: 80, protocol: 'tcp', count: 30 });
 *       // r: [{ source, sport, backend: 'b0' | null }, ...] in connection order
 *     });
 *   });
 *
 * API
 * - kernelSuite(name, tools, fn): describe() that runs only as root with every tool in `tools` (plus `ip`)
 *   on PATH; otherwise it is skipped with a visible notice, or — when CI=true — fails.
 * - createTopology(opts): builds the namespaces (unique names lbc-<pid>-<rand>-{cl,lb,be}), veth pairs,
 *   addresses from ADDR (IPv4 and IPv6, DAD off), routes, forwarding on in lb, rp_filter off.
 *   opts.clientSources: extra client source addresses per family (ADDR.v4.extraClient(i) / v6), for
 *   affinity tests; opts.backendAddresses: how many backend addresses live in `be` (default 4).
 * - topo.ns.{cl,lb,be}: the namespace names; topo.exec(nsKey, argv, stdin?) runs a command in one
 *   (rejects on a non-zero exit, 60 s limit); topo.applyContext(nsKey) is an ApplyContext for a target's apply().
 * - topo.startServers(nsKey, listeners): identity servers ({protocol, address, port, id}); resolves when all
 *   are bound. Use 'lb' for local-port backends (REDIRECT), 'be' for remote backends.
 * - topo.startUdpPeer(nsKey, sockets): UDP sockets on chosen addresses and ports, driven from the test
 *   (udp-peer.ts): send from any of them, wait for what each receives; echo sockets answer with their id.
 * - topo.connect({host, port, protocol, count, sources?, from?, timeoutMs?}): `count` sequential connections
 *   (TCP: connect and read the identity; UDP: one request/response) from `from` (default 'cl'), cycling
 *   through `sources` (default: the namespace's primary address), each from a source port never used before
 *   in this topology, so every connection is a new conntrack entry. Resolves with one result per connection.
 * - topo.destroy(): kills every process the topology started and deletes its namespaces; idempotent.
 *   A process-exit hook deletes leftover namespaces too, and servers exit when the test runner's pipe closes.
 * - tally(results): backend id -> count.
 * Routes: cl sends everything via lb; lb routes the VIP ranges (ADDR.*.vip) towards cl, so a connection made on
 * lb to a VIP has a route before nat OUTPUT rewrites it (local: true tests); be routes everything via lb.
 * Limits: every command and connection is bounded in time; connect() in count (≤ 20,000 per topology).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';
import type { ApplyContext } from '../../../src/targets/target.js';
import { UdpPeer, type UdpSocketSpec } from './udp-peer.js';

const HERE = dirname(fileURLToPath(import.meta.url));

/** Private test addressing; only ever configured inside the namespaces a topology creates. */
export const ADDR = {
  v4: {
    client: '10.201.1.2',
    balancerClientSide: '10.201.1.1',
    balancerBackendSide: '10.201.2.1',
    backends: [10, 11, 12, 13, 14, 15, 16, 17].map((i) => `10.201.2.${i}`),
    /** VIPs are not configured anywhere: the client routes everything via the balancer, which DNATs before routing. */
    vip: (i: number) => `10.201.100.${i}`,
    extraClient: (i: number) => `10.201.${128 + Math.floor(i / 250)}.${(i % 250) + 1}`,
  },
  v6: {
    client: 'fd00:201:1::2',
    balancerClientSide: 'fd00:201:1::1',
    balancerBackendSide: 'fd00:201:2::1',
    backends: [10, 11, 12, 13, 14, 15, 16, 17].map((i) => `fd00:201:2::${i.toString(16)}`),
    vip: (i: number) => `fd00:201:100::${i.toString(16)}`,
    extraClient: (i: number) => `fd00:201:80::${(i + 1).toString(16)}`,
  },
} as const;

export type NsKey = 'cl' | 'lb' | 'be';

export interface Listener {
  protocol: 'tcp' | 'udp';
  address: string;
  port: number;
  id: string;
}

export interface ConnectOptions {
  host: string;
  port: number;
  protocol: 'tcp' | 'udp';
  count: number;
  sources?: string[];
  from?: NsKey;
  timeoutMs?: number;
}

export interface ConnResult {
  source: string | null;
  sport: number;
  backend: string | null;
}

export interface TopologyOptions {
  clientSources?: number;
  backendAddresses?: number;
}

/** Why kernel tests cannot run here, or null when they can. */
export function kernelSkipReason(tools: readonly string[]): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not running as root';
  const missing = ['ip', ...tools].filter((t) => !onPath(t));
  if (missing.length) return `missing tools: ${missing.join(', ')}`;
  return null;
}

function onPath(tool: string): boolean {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin']);
  return dirs.some((d) => d && existsSync(join(d, tool)));
}

/** describe() for kernel tests: skipped with a notice when prerequisites are missing, failing instead when CI=true. */
export function kernelSuite(name: string, tools: readonly string[], fn: () => void): void {
  const reason = kernelSkipReason(tools);
  if (!reason) {
    describe(name, fn);
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('has its prerequisites (CI=true)', () => {
        throw new Error(`kernel tests "${name}" cannot run: ${reason}`);
      });
    });
    return;
  }
  process.stderr.write(`\n*** NOTICE: kernel tests "${name}" SKIPPED: ${reason} ***\n\n`);
  describe.skip(name, fn);
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export function run(argv: string[], stdin?: string, timeoutMs = 60_000): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0], argv.slice(1), { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${argv.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
    // A command that does not read its input may exit first; its closed pipe is not our error.
    child.stdin?.on('error', () => {});
    child.stdin?.end(stdin ?? '');
  });
}

const liveNamespaces = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const ns of liveNamespaces) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 });
      } catch {
        // already gone
      }
    }
  });
}

export class Topology {
  readonly ns: Record<NsKey, string>;
  private procs: ChildProcess[] = [];
  private nextPort = 10_000;
  private destroyed = false;

  constructor(prefix: string) {
    this.ns = { cl: `${prefix}-cl`, lb: `${prefix}-lb`, be: `${prefix}-be` };
  }

  exec(ns: NsKey, argv: string[], stdin?: string, timeoutMs = 60_000): Promise<ExecResult> {
    return run(['ip', 'netns', 'exec', this.ns[ns], ...argv], stdin, timeoutMs);
  }

  /** An ApplyContext whose commands run inside the namespace. */
  applyContext(ns: NsKey, log: (line: string) => void = () => {}): ApplyContext {
    return {
      dryRun: false,
      run: async (argv, stdin) => {
        await this.exec(ns, argv, stdin);
      },
      query: async (argv) => (await this.exec(ns, argv)).stdout,
      log,
    };
  }

  async startServers(ns: NsKey, listeners: Listener[]): Promise<void> {
    const child = spawn('ip', ['netns', 'exec', this.ns[ns], process.execPath, join(HERE, 'server.mjs'), JSON.stringify(listeners)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.procs.push(child);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`servers in ${ns} not ready after 10 s: ${out}${err}`)), 10_000);
      child.stderr!.on('data', (d) => (err += d));
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('READY')) {
          clearTimeout(timer);
          resolve();
        } else if (out.includes('ERROR')) {
          clearTimeout(timer);
          reject(new Error(`servers in ${ns}: ${out}${err}`));
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`servers in ${ns} exited (${code}): ${out}${err}`));
      });
    });
  }

  /** UDP sockets bound to chosen addresses and ports in one namespace (udp-peer.ts); stopped by destroy(). */
  startUdpPeer(ns: NsKey, sockets: UdpSocketSpec[]): Promise<UdpPeer> {
    return UdpPeer.start(this.ns[ns], sockets, (c) => this.procs.push(c));
  }

  async connect(o: ConnectOptions): Promise<ConnResult[]> {
    if (!Number.isInteger(o.count) || o.count < 1 || o.count > 20_000) throw new Error(`connect: count ${o.count} out of range`);
    if (this.nextPort + o.count > 32_000) throw new Error('connect: this topology ran out of unused source ports');
    const ports = Array.from({ length: o.count }, (_, i) => this.nextPort + i);
    this.nextPort += o.count;
    const timeoutMs = o.timeoutMs ?? 2_000;
    // Per-connection timeouts bound the whole run; the deadline is a second fence.
    const deadlineMs = Math.min(600_000, timeoutMs * o.count + 10_000);
    const args = { host: o.host, port: o.port, protocol: o.protocol, sources: o.sources ?? [], ports, timeoutMs, deadlineMs };
    const { stdout } = await this.exec(o.from ?? 'cl', [process.execPath, join(HERE, 'client.mjs'), JSON.stringify(args)], undefined, deadlineMs + 30_000);
    return JSON.parse(stdout) as ConnResult[];
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.procs) {
      if (p.exitCode === null && p.pid) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // already exited
        }
      }
    }
    for (const ns of Object.values(this.ns)) {
      try {
        await run(['ip', 'netns', 'del', ns], undefined, 10_000);
      } catch {
        // never created or already gone
      }
      liveNamespaces.delete(ns);
    }
  }
}

/** Build the client → balancer → backend topology. On failure everything created so far is removed. */
export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  installExitHook();
  const prefix = `lbc-${process.pid}-${randomBytes(3).toString('hex')}`;
  const topo = new Topology(prefix);
  const nBackends = opts.backendAddresses ?? 4;
  if (nBackends < 1 || nBackends > ADDR.v4.backends.length) throw new Error('backendAddresses: 1..8');
  const extra = opts.clientSources ?? 0;
  if (extra < 0 || extra > 1000) throw new Error('clientSources: 0..1000');
  try {
    for (const ns of Object.values(topo.ns)) {
      await run(['ip', 'netns', 'add', ns]);
      liveNamespaces.add(ns);
    }
    const { cl, lb, be } = topo.ns;
    // Sysctls first, so interfaces created afterwards inherit "no DAD" (IPv6 addresses usable at once).
    for (const key of ['cl', 'lb', 'be'] as NsKey[]) {
      await topo.exec(key, [
        'sysctl', '-q', '-w',
        'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0',
        'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0',
      ]);
      await topo.exec(key, ['ip', 'link', 'set', 'lo', 'up']);
    }
    await topo.exec('lb', ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    // veth pairs created directly inside the namespaces: no interface ever appears on the host.
    await run(['ip', '-n', cl, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'cl0', 'netns', lb]);
    await run(['ip', '-n', lb, 'link', 'add', 'be0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', be]);

    const batch = (ns: string, lines: string[]) => run(['ip', '-n', ns, '-batch', '-'], lines.join('\n') + '\n');
    const clLines = [
      `addr add ${ADDR.v4.client}/24 dev eth0`,
      `addr add ${ADDR.v6.client}/64 dev eth0 nodad`,
    ];
    for (let i = 0; i < extra; i++) {
      clLines.push(`addr add ${ADDR.v4.extraClient(i)}/32 dev eth0`);
      clLines.push(`addr add ${ADDR.v6.extraClient(i)}/128 dev eth0 nodad`);
    }
    clLines.push('link set eth0 up', `route add default via ${ADDR.v4.balancerClientSide}`, `route add default via ${ADDR.v6.balancerClientSide}`);
    await batch(cl, clLines);
    await batch(lb, [
      `addr add ${ADDR.v4.balancerClientSide}/24 dev cl0`,
      `addr add ${ADDR.v6.balancerClientSide}/64 dev cl0 nodad`,
      `addr add ${ADDR.v4.balancerBackendSide}/24 dev be0`,
      `addr add ${ADDR.v6.balancerBackendSide}/64 dev be0 nodad`,
      'link set cl0 up',
      'link set be0 up',
      `route add 10.201.128.0/17 via ${ADDR.v4.client}`,
      `route add fd00:201:80::/64 via ${ADDR.v6.client}`,
      // Connections made on the balancer to a VIP need a route to exist before nat OUTPUT rewrites them.
      `route add 10.201.100.0/24 via ${ADDR.v4.client}`,
      `route add fd00:201:100::/64 via ${ADDR.v6.client}`,
    ]);
    const beLines: string[] = [];
    for (let i = 0; i < nBackends; i++) {
      beLines.push(`addr add ${ADDR.v4.backends[i]}/24 dev eth0`, `addr add ${ADDR.v6.backends[i]}/64 dev eth0 nodad`);
    }
    beLines.push('link set eth0 up', `route add default via ${ADDR.v4.balancerBackendSide}`, `route add default via ${ADDR.v6.balancerBackendSide}`);
    await batch(be, beLines);
    return topo;
  } catch (e) {
    await topo.destroy();
    throw e;
  }
}

/** backend id -> number of connections it answered ('(none)' for failures). */
/**
 * A ruleset dump with what differs between two dumps of the same rules removed: comment lines
 * (iptables-save prints a date) and packet counters. Harmless for `nft list ruleset` output.
 */
export function normalizeSave(s: string): string {
  return s
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n');
}

export function tally(results: readonly ConnResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    const k = r.backend ?? '(none)';
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
