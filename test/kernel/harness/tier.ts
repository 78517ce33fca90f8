/**
 * Kernel test harness for balancer tiers: several balancer nodes on switched networks, with the
 * switches as Linux bridges inside a namespace of their own.
 *
 *                  ┌──────────── namespace sw ────────────┐
 *   client (cl) ───┤ br-front ── n1 … nN eth0              │   10.212.1.0/24, vip 10.212.1.100
 *                  │ br-back  ── n1 … nN eth1 ── be eth0   │   10.212.2.0/24, gateway 10.212.2.1 (backends' default route)
 *                  │ br-sync  ── n1 … nN eth2              │   10.212.3.0/24 (conntrackd)
 *                  └───────────────────────────────────────┘
 *
 * API
 * - createTierTopology({ nodes, back?, sync?, clientSources? }): namespaces lbct-<pid>-<rand>-{sw,cl,be,n1…}
 *   (unique), veth pairs created inside them, addresses from TIER_ADDR, forwarding on in the nodes,
 *   rp_filter off, the bridges up. `back` adds br-back and the backend namespace `be` (default route via
 *   the gateway address); `sync` adds br-sync. Extra client source addresses (TIER_ADDR.extraClient(i))
 *   live on cl's eth0 and the nodes route them back through cl.
 * - topo.exec(ns, argv, stdin?, timeoutMs?): run in a namespace ('sw', 'cl', 'be', or a node name 'n1'…).
 * - topo.applyContext(ns): an ApplyContext running there.
 * - topo.runDir(node): a fresh directory for that node's runtime files (under a root-only base, because
 *   keepalived's enable_script_security refuses scripts in a directory others may write).
 * - topo.spawn(ns, argv, name): a long-running process (keepalived, conntrackd), tracked; its output is
 *   kept for failure messages (topo.output(name)).
 * - topo.startServers(ns, listeners) / topo.connect(opts): the identity servers and the client of
 *   ./server.mjs and ./client.mjs; topo.stream(opts): a long-lived TCP connection (./stream-client.mjs)
 *   to the echo servers of topo.startEcho(ns, …), reporting when each reply arrived.
 * - topo.crash(node): put the node's links down (one batch), then SIGKILL every process in its namespace:
 *   what a power cut looks like to the others. Resolves with the time the links went down.
 * - topo.destroy(): kills every process in the topology's namespaces (by pid, from `ip netns pids`),
 *   deletes the namespaces and the run directories; idempotent. A process-exit hook does the same for
 *   whatever a failed run left behind.
 * Every command, wait and connection is bounded in time.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApplyContext } from '../../../src/targets/target.js';
import { run, type ConnectOptions, type ConnResult, type ExecResult, type Listener } from './index.js';

const HERE = dirname(fileURLToPath(import.meta.url));

/** Private test addressing, only ever configured inside the namespaces a topology creates. */
export const TIER_ADDR = {
  client: '10.212.1.2',
  vip: '10.212.1.100',
  vip2: '10.212.1.101',
  node: (i: number) => `10.212.1.${11 + i}`,
  nodeBack: (i: number) => `10.212.2.${11 + i}`,
  nodeSync: (i: number) => `10.212.3.${11 + i}`,
  gateway: '10.212.2.1',
  backends: ['10.212.2.50', '10.212.2.51', '10.212.2.52'],
  /** Extra client sources: 10.212.64.1 … , routed back through the client. */
  extraClient: (i: number) => `10.212.${64 + Math.floor(i / 250)}.${(i % 250) + 1}`,
  extraClientNet: '10.212.64.0/18',
} as const;

export interface TierTopologyOptions {
  nodes: number;
  back?: boolean;
  sync?: boolean;
  clientSources?: number;
}

const live = new Set<TierTopology>();
let hooked = false;
function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const t of live) t.destroySync();
  });
}

/** Where run directories go: root-owned and not world-writable (keepalived's script security checks every component). */
function runBase(): string {
  for (const base of ['/run', tmpdir()]) {
    try {
      mkdirSync(join(base, 'lbc-test'), { recursive: true, mode: 0o700 });
      return mkdtempSync(join(base, 'lbc-test', `${process.pid}-`));
    } catch {
      // next candidate
    }
  }
  throw new Error('no directory for run directories');
}

export class TierTopology {
  readonly ns: Record<string, string> = {};
  readonly nodes: string[];
  private procs = new Map<string, { child: ChildProcess; out: string[] }>();
  private nextPort = 10_000;
  private destroyed = false;
  private base: string | null = null;

  constructor(readonly prefix: string, readonly opts: TierTopologyOptions) {
    this.nodes = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
    for (const k of ['sw', 'cl', ...(opts.back ? ['be'] : []), ...this.nodes]) this.ns[k] = `${prefix}-${k}`;
  }

  exec(ns: string, argv: string[], stdin?: string, timeoutMs = 60_000): Promise<ExecResult> {
    const name = this.ns[ns];
    if (!name) throw new Error(`no namespace ${ns}`);
    return run(['ip', 'netns', 'exec', name, ...argv], stdin, timeoutMs);
  }

  applyContext(ns: string, log: (line: string) => void = () => {}): ApplyContext {
    return {
      dryRun: false,
      run: async (argv, stdin) => {
        await this.exec(ns, argv, stdin);
      },
      query: async (argv) => (await this.exec(ns, argv)).stdout,
      log,
    };
  }

  runDir(node: string): string {
    this.base ??= runBase();
    const dir = join(this.base, node);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    return dir;
  }

  spawn(ns: string, argv: string[], name: string): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns[ns], ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: string[] = [];
    const keep = (d: Buffer) => {
      out.push(d.toString());
      if (out.length > 400) out.splice(0, out.length - 400);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.stdin!.on('error', () => {});
    child.on('error', (e) => out.push(`spawn error: ${e.message}`));
    this.procs.set(name, { child, out });
    return child;
  }

  output(name: string): string {
    return this.procs.get(name)?.out.join('') ?? '';
  }

  async startServers(ns: string, listeners: Listener[]): Promise<void> {
    await this.startScript(ns, 'server.mjs', JSON.stringify(listeners), `servers-${ns}-${this.procs.size}`);
  }

  /** Echo servers: every line a client sends comes back prefixed by the listener's id. */
  async startEcho(ns: string, listeners: Listener[]): Promise<void> {
    await this.startScript(ns, 'echo-server.mjs', JSON.stringify(listeners), `echo-${ns}-${this.procs.size}`);
  }

  private async startScript(ns: string, script: string, arg: string, name: string): Promise<void> {
    const child = this.spawn(ns, [process.execPath, join(HERE, script), arg], name);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`${script} in ${ns} not ready after 10 s: ${out}`)), 10_000);
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('READY')) {
          clearTimeout(timer);
          resolve();
        } else if (out.includes('ERROR')) {
          clearTimeout(timer);
          reject(new Error(`${script} in ${ns}: ${out}`));
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${script} in ${ns} exited (${code}): ${out}`));
      });
    });
  }

  async connect(o: ConnectOptions & { from?: string }): Promise<ConnResult[]> {
    if (!Number.isInteger(o.count) || o.count < 1 || o.count > 20_000) throw new Error(`connect: count ${o.count} out of range`);
    if (this.nextPort + o.count > 60_000) throw new Error('connect: out of unused source ports');
    const ports = Array.from({ length: o.count }, (_, i) => this.nextPort + i);
    this.nextPort += o.count;
    const timeoutMs = o.timeoutMs ?? 2_000;
    const deadlineMs = Math.min(600_000, timeoutMs * o.count + 10_000);
    const args = { host: o.host, port: o.port, protocol: o.protocol, sources: o.sources ?? [], ports, timeoutMs, deadlineMs };
    const { stdout } = await this.exec(o.from ?? 'cl', [process.execPath, join(HERE, 'client.mjs'), JSON.stringify(args)], undefined, deadlineMs + 30_000);
    return JSON.parse(stdout) as ConnResult[];
  }

  /**
   * A long-lived TCP connection that sends a numbered line every `everyMs` and records the arrival time
   * of every echo, for at most `maxMs`. stop() ends it and resolves with the record.
   */
  stream(o: { host: string; port: number; source?: string; everyMs: number; maxMs: number }): { ready: Promise<void>; echoes: () => number; stop: () => Promise<StreamRecord> } {
    const sport = this.nextPort++;
    const arg = JSON.stringify({ ...o, sport });
    const name = `stream-${sport}`;
    const child = this.spawn('cl', [process.execPath, join(HERE, 'stream-client.mjs'), arg], name);
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const done = new Promise<StreamRecord>((resolve, reject) => {
      child.on('exit', () => {
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) resolve(JSON.parse(line) as StreamRecord);
        else reject(new Error(`stream client ended without a record: ${this.output(name)}`));
      });
    });
    // Nobody waits for the record when a test fails before stop(); its rejection is not news then.
    done.catch(() => {});
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stream not connected after 10 s: ${this.output(name)}`)), 10_000);
      child.stdout!.on('data', () => {
        if (out.includes('CONNECTED')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', () => {
        clearTimeout(timer);
        reject(new Error(`stream client exited before connecting: ${this.output(name)}`));
      });
    });
    return {
      ready,
      echoes: () => out.split('\n').filter((l) => l.startsWith('ECHO ')).length,
      stop: async () => {
        child.stdin!.end();
        return done;
      },
    };
  }

  /**
   * From each source, connect until answered (attempts bounded by timeoutMs, a round every everyMs, all
   * within deadlineMs): when each source was answered first, and by whom (./probe-client.mjs).
   */
  async probe(o: { host: string; port: number; sources: string[]; timeoutMs: number; everyMs: number; deadlineMs: number }): Promise<Map<string, { t: number; id: string }>> {
    const { stdout } = await this.exec('cl', [process.execPath, join(HERE, 'probe-client.mjs'), JSON.stringify(o)], undefined, o.deadlineMs + 30_000);
    const doc = JSON.parse(stdout) as { answered: Record<string, { t: number; id: string }> };
    return new Map(Object.entries(doc.answered));
  }

  /** Every process in a namespace, by pid. */
  async pids(ns: string): Promise<number[]> {
    const { stdout } = await run(['ip', 'netns', 'pids', this.ns[ns]], undefined, 10_000);
    return stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number);
  }

  /**
   * A node dies: its links go down at once (one batch: from then on it neither sends nor receives),
   * then every process in it is SIGKILLed. Resolves with the time the links went down.
   */
  async crash(node: string): Promise<number> {
    const t = Date.now();
    const devs = ['eth0', ...(this.opts.back ? ['eth1'] : []), ...(this.opts.sync ? ['eth2'] : [])];
    await run(['ip', '-n', this.ns[node], '-batch', '-'], devs.map((d) => `link set ${d} down`).join('\n') + '\n', 10_000);
    for (const pid of await this.pids(node)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    return t;
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (const ns of Object.values(this.ns)) {
      try {
        const out = execFileSync('ip', ['netns', 'pids', ns], { timeout: 10_000 }).toString();
        for (const l of out.split('\n')) if (/^\d+$/.test(l.trim())) {
          try {
            process.kill(Number(l), 'SIGKILL');
          } catch {
            // gone
          }
        }
      } catch {
        // namespace never created
      }
    }
    for (const { child } of this.procs.values()) if (child.exitCode === null && child.pid) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const ns of Object.values(this.ns)) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 });
      } catch {
        // gone
      }
    }
    if (this.base) rmSync(this.base, { recursive: true, force: true });
  }

  async destroy(): Promise<void> {
    this.destroySync();
  }
}

export interface StreamRecord {
  /** Milliseconds since the epoch of each echo received, with the id of the server that sent it. */
  replies: Array<{ t: number; n: number; id: string }>;
  sent: number;
  error: string | null;
}

export async function createTierTopology(opts: TierTopologyOptions): Promise<TierTopology> {
  installExitHook();
  if (opts.nodes < 2 || opts.nodes > 6) throw new Error('nodes: 2..6');
  const extra = opts.clientSources ?? 0;
  if (extra < 0 || extra > 2000) throw new Error('clientSources: 0..2000');
  const topo = new TierTopology(`lbct-${process.pid}-${randomBytes(3).toString('hex')}`, opts);
  live.add(topo);
  try {
    for (const ns of Object.values(topo.ns)) await run(['ip', 'netns', 'add', ns]);
    for (const k of Object.keys(topo.ns)) {
      await topo.exec(k, ['sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      await topo.exec(k, ['ip', 'link', 'set', 'lo', 'up']);
    }
    const sw = topo.ns.sw;
    const lans = ['front', ...(opts.back ? ['back'] : []), ...(opts.sync ? ['sync'] : [])];
    const batch = (ns: string, lines: string[]) => run(['ip', '-n', ns, '-batch', '-'], lines.join('\n') + '\n');
    await batch(sw, lans.flatMap((l) => [`link add br-${l} type bridge`, `link set br-${l} up`]));
    // One veth per (namespace, LAN): the namespace's end is eth<k>, the switch's end joins the bridge.
    const plug = async (key: string, lan: string, dev: string, port: string) => {
      await run(['ip', '-n', topo.ns[key], 'link', 'add', dev, 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
      await batch(sw, [`link set ${port} master br-${lan}`, `link set ${port} up`]);
    };
    await plug('cl', 'front', 'eth0', 'cl-f');
    const clLines = [`addr add ${TIER_ADDR.client}/24 dev eth0`];
    for (let i = 0; i < extra; i++) clLines.push(`addr add ${TIER_ADDR.extraClient(i)}/32 dev eth0`);
    clLines.push('link set eth0 up');
    await batch(topo.ns.cl, clLines);
    if (opts.back) {
      await plug('be', 'back', 'eth0', 'be-b');
      await batch(topo.ns.be, [...TIER_ADDR.backends.map((a) => `addr add ${a}/24 dev eth0`), 'link set eth0 up', `route add default via ${TIER_ADDR.gateway}`]);
    }
    for (const [i, n] of topo.nodes.entries()) {
      await topo.exec(n, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
      await plug(n, 'front', 'eth0', `${n}-f`);
      const lines = [`addr add ${TIER_ADDR.node(i)}/24 dev eth0`, 'link set eth0 up', `route add ${TIER_ADDR.extraClientNet} via ${TIER_ADDR.client}`];
      if (opts.back) {
        await plug(n, 'back', 'eth1', `${n}-b`);
        lines.push(`addr add ${TIER_ADDR.nodeBack(i)}/24 dev eth1`, 'link set eth1 up');
      }
      if (opts.sync) {
        await plug(n, 'sync', 'eth2', `${n}-s`);
        lines.push(`addr add ${TIER_ADDR.nodeSync(i)}/24 dev eth2`, 'link set eth2 up');
      }
      await batch(topo.ns[n], lines);
    }
    return topo;
  } catch (e) {
    topo.destroySync();
    throw e;
  }
}

/** Poll `probe` every `everyMs` until it returns true or `withinMs` passed; resolves with the time it took, or null. */
export async function waitFor(probe: () => Promise<boolean>, withinMs: number, everyMs = 50): Promise<number | null> {
  const start = Date.now();
  for (let i = 0; i < Math.ceil(withinMs / everyMs) + 1; i++) {
    if (await probe().catch(() => false)) return Date.now() - start;
    if (Date.now() - start > withinMs) return null;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return null;
}
