/**
 * UDP associations in the kernel, the behaviours of seed 004 as sbulb's own test suite checks them
 * (sbulb/tests/test_loadbalancer.py), for one Linux target and one address family: real UDP sockets
 * on client addresses and ports the test chooses, echo servers on the backends that answer from the
 * service port with their identity and the client address and port they saw, and backends that start
 * traffic themselves. Every case loads its own spec into a table the previous case's remove() emptied.
 *
 * "Dropped" is checked without sleeping on a guess: the packet that must not arrive is sent first,
 * then one from the client's own backend along the same path; once the second is in, the first had its
 * chance (plus a short grace period for reordering on a loaded machine).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/index.js';
import { runAgent } from '../../src/agent/index.js';
import type { Family, IR } from '../../src/ir/types.js';
import type { Checker } from '../../src/health/check.js';
import { compileForTarget, type ApplyContext, type TargetDefinition } from '../../src/targets/target.js';
import { ADDR, createTopology, type Topology } from './harness/index.js';
import type { Datagram, UdpPeer } from './harness/udp-peer.js';

export const PORT = 5683;
const CLIENTS = 6;
const PORTS_PER_CASE = 4;
const CASES = 20;

interface FamilyAddrs {
  vip: string;
  clients: string[];
  backends: string[];
}

function addrs(family: Family): FamilyAddrs {
  const a = family === 'ipv4' ? ADDR.v4 : ADDR.v6;
  return { vip: a.vip(1), clients: Array.from({ length: CLIENTS }, (_, i) => a.extraClient(i)), backends: a.backends.slice(0, 4) };
}

export interface SpecOptions {
  backends: number[];
  max?: number;
  idle?: string;
  backendInitiated?: boolean;
  mode?: string;
  /** Extra YAML for the service (indented as a service field). */
  health?: boolean;
  /** Another, unrelated service in the same spec. */
  unrelated?: boolean;
}

export function associationSpec(family: Family, o: SpecOptions): string {
  const a = addrs(family);
  const assoc = [`max: ${o.max ?? 1000}`, ...(o.idle ? [`idle: ${o.idle}`] : []), `backend-initiated: ${o.backendInitiated ?? false}`];
  const lines = [
    'version: 1',
    'services:',
    '  - name: coap',
    `    vip: ${a.vip}`,
    `    port: ${PORT}`,
    '    protocol: udp',
    `    mode: ${o.mode ?? 'nth'}`,
    `    associations: { ${assoc.join(', ')} }`,
    ...(o.health ? ['    health: { check: tcp, port: 7, interval: 1s, timeout: 500ms, rise: 1, fall: 1 }'] : []),
    `    backends: [${o.backends.map((i) => (family === 'ipv6' ? `"${a.backends[i]}"` : a.backends[i])).join(', ')}]`,
  ];
  if (o.unrelated) {
    const v = family === 'ipv4' ? ADDR.v4 : ADDR.v6;
    lines.push('  - name: web', `    vip: ${v.vip(2)}`, '    port: 80', `    backends: ["${family === 'ipv6' ? `[${v.backends[0]}]` : v.backends[0]}:8080"]`);
  }
  return `${lines.join('\n')}\n`;
}

export interface AssociationTarget {
  target: TargetDefinition;
  /** Tools the target needs (for kernelSuite). */
  tools: string[];
  /** How many associations the kernel holds for service coap now. */
  count(topo: Topology, family: Family): Promise<number>;
}

/** The cases for one target and family, inside the caller's kernelSuite. */
export function associationCases(t: AssociationTarget, family: Family): void {
  const a = addrs(family);
  const rs = a.backends.map((_, i) => `rs${i}`);
  let topo: Topology;
  let cl: UdpPeer;
  let be: UdpPeer;
  const ctx = (): ApplyContext => topo.applyContext('lb');
  /** Client source ports; every case uses its own, so no case meets another's associations. */
  let nextClientPort = 40000;

  const compileSpec = (text: string): IR => parseSpec(text, 'associations.yaml');
  const load = async (o: SpecOptions, c: ApplyContext = ctx()) => {
    const r = compileForTarget(t.target, compileSpec(associationSpec(family, o)));
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    await t.target.apply!(r.files, c);
  };
  /** A fresh table: what the previous case left is removed with lbc's own remove. */
  const fresh = async (o: SpecOptions) => {
    await t.target.remove!(ctx());
    await load(o);
  };

  /** Client sockets: client i, port p, named c<i>:<p>. */
  const sock = (i: number, port: number) => `c${i}:${port}`;
  const ports = () => {
    const first = nextClientPort;
    nextClientPort += PORTS_PER_CASE;
    return Array.from({ length: PORTS_PER_CASE }, (_, k) => first + k);
  };

  /** Client i (from port p) asks the vip; resolves with the backend that answered and what it saw. */
  const ask = async (i: number, port: number) => {
    cl.send(sock(i, port), a.vip, PORT, 'who');
    const d = await cl.next(sock(i, port), (x) => x.data.endsWith(' who'));
    const [backend, sawAddress, sawPort] = d.data.split(' ');
    return { backend, from: d.from, fromPort: d.port, sawAddress, sawPort: Number(sawPort) };
  };
  const askAll = async (list: Array<[number, number]>) => {
    const out: string[] = [];
    for (const [i, p] of list) out.push((await ask(i, p)).backend);
    return out;
  };
  /** Backend b sends `data` from the service port to client i's socket. */
  const push = (b: number, i: number, port: number, data: string) => be.send(rs[b], a.clients[i], port, data);
  /** The next datagram client i gets on `port` that is not an echo. */
  const pushed = (i: number, port: number): Promise<Datagram> => cl.next(sock(i, port), (x) => x.data.startsWith('push'));
  /** `bad` sends to the client, then `good` (the client's backend): only good's datagram may arrive, and from the vip. */
  const onlyFrom = async (bad: number, good: number, i: number, port: number) => {
    push(bad, i, port, `push from ${rs[bad]}`);
    push(good, i, port, `push from ${rs[good]}`);
    const d = await pushed(i, port);
    await new Promise((r) => setTimeout(r, 300));
    const rest = cl.drain(sock(i, port));
    expect([d, ...rest].map((x) => x.data)).toEqual([`push from ${rs[good]}`]);
    expect([d.from, d.port]).toEqual([a.vip, PORT]);
  };

  beforeAll(async () => {
    topo = await createTopology({ clientSources: CLIENTS, backendAddresses: 4 });
    const sockets = [];
    for (let i = 0; i < CLIENTS; i++) {
      for (let p = 40000; p < 40000 + PORTS_PER_CASE * CASES; p++) sockets.push({ id: sock(i, p), address: a.clients[i], port: p });
    }
    cl = await topo.startUdpPeer('cl', sockets);
    be = await topo.startUdpPeer('be', a.backends.map((address, i) => ({ id: rs[i], address, port: PORT, echo: rs[i] })));
  }, 120_000);
  afterAll(async () => {
    await topo?.destroy();
  });

  it('a client keeps its backend, which sees its real address and port and answers from the vip; another backend cannot reach it', async () => {
    const [p] = ports();
    await fresh({ backends: [0, 1] });
    const first = await ask(0, p);
    expect(first).toEqual({ backend: 'rs0', from: a.vip, fromPort: PORT, sawAddress: a.clients[0], sawPort: p });
    expect((await ask(0, p)).backend).toBe('rs0');
    await onlyFrom(1, 0, 0, p);
    expect(await t.count(topo, family)).toBe(1);
  });

  it('a backend starts an association (backend-initiated): it reaches the client from the vip, the client then reaches it, another backend is dropped', async () => {
    const [p] = ports();
    await fresh({ backends: [0, 1], backendInitiated: true });
    push(1, 0, p, 'push first');
    const d = await pushed(0, p);
    expect([d.from, d.port, d.data]).toEqual([a.vip, PORT, 'push first']);
    push(1, 0, p, 'push again');
    expect((await pushed(0, p)).data).toBe('push again');
    await onlyFrom(0, 1, 0, p);
    expect((await ask(0, p)).backend).toBe('rs1');
  });

  it('without backend-initiated, a backend cannot start an association', async () => {
    const [p] = ports();
    await fresh({ backends: [0, 1] });
    push(1, 0, p, 'push unasked');
    // Not rewritten: if it arrives at all, it comes from the backend's own address, never from the vip.
    await new Promise((r) => setTimeout(r, 500));
    expect(cl.drain(sock(0, p)).filter((x) => x.from === a.vip)).toEqual([]);
    expect((await ask(0, p)).backend).toBe('rs0');
  });

  it('new associations rotate over the backends (c0..c3: rs0, rs1, rs0, rs1) and keep them', async () => {
    const [p] = ports();
    await fresh({ backends: [0, 1] });
    const order: Array<[number, number]> = [0, 1, 2, 3].map((i) => [i, p]);
    expect(await askAll(order)).toEqual(['rs0', 'rs1', 'rs0', 'rs1']);
    expect(await askAll([...order].reverse())).toEqual(['rs1', 'rs0', 'rs1', 'rs0']);
  });

  it('one client address with different ports alternates backends', async () => {
    const ps = ports();
    await fresh({ backends: [0, 1] });
    expect(await askAll(ps.map((p) => [0, p]))).toEqual(['rs0', 'rs1', 'rs0', 'rs1']);
    expect(await askAll(ps.map((p) => [0, p]))).toEqual(['rs0', 'rs1', 'rs0', 'rs1']);
  });

  it('conntrack -F moves nobody', async () => {
    const [p] = ports();
    await fresh({ backends: [0, 1, 2], backendInitiated: true });
    const before = await askAll([0, 1, 2, 3].map((i) => [i, p]));
    expect(before).toEqual(['rs0', 'rs1', 'rs2', 'rs0']);
    await topo.exec('lb', ['conntrack', '-F']);
    expect(await askAll([3, 2, 1, 0].map((i) => [i, p]))).toEqual([...before].reverse());
    await topo.exec('lb', ['conntrack', '-F']);
    // A backend's own traffic after the flush still belongs to its association.
    await onlyFrom(0, 1, 1, p);
  });

  it('removing a backend re-makes only its associations; the departed backend cannot reach its old client', async () => {
    const [p] = ports();
    await fresh({ backends: [0, 1, 2], backendInitiated: true });
    expect(await askAll([0, 1, 2].map((i) => [i, p]))).toEqual(['rs0', 'rs1', 'rs2']);
    expect(await t.count(topo, family)).toBe(3);
    await load({ backends: [1, 2], backendInitiated: true });
    // rs0's client is forgotten with rs0 (and no longer counted); the others stay where they were.
    expect(await t.count(topo, family)).toBe(2);
    expect(await askAll([[1, p], [2, p]])).toEqual(['rs1', 'rs2']);
    // rs0 is no backend any more: its packet is not rewritten (whatever arrives is not from the vip).
    push(0, 0, p, 'push from a departed backend');
    await new Promise((r) => setTimeout(r, 500));
    expect(cl.drain(sock(0, p)).filter((x) => x.from === a.vip)).toEqual([]);
    // With its association gone, a remaining backend may start one (sbulb's test_remove_first_real_server).
    push(2, 0, p, 'push from rs2');
    expect((await pushed(0, p)).from).toBe(a.vip);
    expect((await ask(0, p)).backend).toBe('rs2');
  });

  it('adding a backend keeps every association; listed first, it gets the next new client', async () => {
    const [p] = ports();
    await fresh({ backends: [0, 1] });
    expect(await askAll([[0, p], [1, p]])).toEqual(['rs0', 'rs1']);
    await load({ backends: [2, 0, 1] });
    expect(await askAll([[2, p], [0, p], [1, p], [3, p]])).toEqual(['rs2', 'rs0', 'rs1', 'rs0']);
  });

  it('replacing the whole list remaps every client', async () => {
    const [p] = ports();
    await fresh({ backends: [0, 1] });
    expect(await askAll([[0, p], [1, p]])).toEqual(['rs0', 'rs1']);
    await load({ backends: [2, 3] });
    expect(await askAll([[0, p], [1, p]])).toEqual(['rs2', 'rs3']);
    expect(await t.count(topo, family)).toBe(2);
  });

  it('an unrelated service added and every later apply leave the associations in place', async () => {
    const [p] = ports();
    await fresh({ backends: [0, 1, 2] });
    const before = await askAll([0, 1, 2, 3].map((i) => [i, p]));
    await load({ backends: [0, 1, 2], unrelated: true });
    await load({ backends: [0, 1, 2], unrelated: true });
    await load({ backends: [0, 1, 2] });
    expect(await askAll([0, 1, 2, 3].map((i) => [i, p]))).toEqual(before);
  });

  it('incremental applies (a record of the last load) keep the associations too', async () => {
    const [p] = ports();
    const dir = await mkdtemp(join(tmpdir(), 'lbc-assoc-state-'));
    const logs: string[] = [];
    const c = { ...topo.applyContext('lb', (l) => logs.push(l)), stateDir: dir };
    try {
      await t.target.remove!(ctx());
      await load({ backends: [0, 1] }, c);
      const before = await askAll([0, 1, 2, 3].map((i) => [i, p]));
      await load({ backends: [0, 1], unrelated: true }, c);
      await load({ backends: [0, 1, 2], unrelated: true }, c);
      // One full load (the first), then partial ones: the second changes lbc's own table, the third only the associations.
      expect(logs.filter((l) => /replaces table inet lbc|loading the whole|needs the whole/.test(l)).length, logs.join('\n')).toBeLessThanOrEqual(1);
      expect(logs.filter((l) => /only what changed|nothing changed|nothing to load/.test(l)).length, logs.join('\n')).toBe(2);
      expect(await askAll([0, 1, 2, 3].map((i) => [i, p]))).toEqual(before);
      // --full loads everything again, and still keeps them.
      await load({ backends: [0, 1, 2], unrelated: true }, { ...c, fullApply: true });
      expect(await askAll([0, 1, 2, 3].map((i) => [i, p]))).toEqual(before);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a full table serves a newcomer without remembering it: the same backend each time, which alone may reach it', async () => {
    const [p, q] = ports();
    await fresh({ backends: [0, 1], max: 4, backendInitiated: true });
    expect(await askAll([0, 1, 2, 3].map((i) => [i, p]))).toEqual(['rs0', 'rs1', 'rs0', 'rs1']);
    // Four newcomers (two addresses, two ports each): whichever backend the hash gives each, it must keep it.
    const newcomers: Array<[number, number]> = [[4, p], [5, p], [4, q], [5, q]];
    const got: string[] = [];
    for (const [i, port] of newcomers) {
      const r = await ask(i, port);
      expect([r.from, r.fromPort, r.sawAddress, r.sawPort]).toEqual([a.vip, PORT, a.clients[i], port]);
      got.push(r.backend);
    }
    expect(await t.count(topo, family)).toBe(4);
    await topo.exec('lb', ['conntrack', '-F']);
    for (let k = 0; k < 2; k++) expect(await askAll(newcomers)).toEqual(got);
    expect(await t.count(topo, family)).toBe(4);
    // The remembered four are where they were.
    expect(await askAll([0, 1, 2, 3].map((i) => [i, p]))).toEqual(['rs0', 'rs1', 'rs0', 'rs1']);
    for (const [n, [i, port]] of newcomers.entries()) {
      const mine = rs.indexOf(got[n]);
      await onlyFrom(1 - mine, mine, i, port);
      // And after a flush, when the backends' packets come first: the hash decides on that side too.
      await topo.exec('lb', ['conntrack', '-F']);
      await onlyFrom(1 - mine, mine, i, port);
    }
    // Room again (a backend's clients leave with it): a newcomer is remembered.
    const mine = rs.indexOf(got[0]);
    await load({ backends: [mine], max: 4, backendInitiated: true });
    expect(await t.count(topo, family)).toBe(2);
    expect((await ask(4, p)).backend).toBe(got[0]);
    expect(await t.count(topo, family)).toBe(3);
  });

  it('idle: an association is forgotten after the idle time without traffic, and kept while either side talks', async () => {
    const [p, q] = ports();
    await fresh({ backends: [0, 1], idle: '2s', backendInitiated: true });
    expect(await askAll([[0, p], [1, q]])).toEqual(['rs0', 'rs1']);
    // Client 0 talks, client 1's backend talks: both stay. 8 × 400 ms spans more than the idle time.
    for (let k = 0; k < 8; k++) {
      expect((await ask(0, p)).backend).toBe('rs0');
      push(1, 1, q, `push keepalive ${k}`);
      expect((await pushed(1, q)).from).toBe(a.vip);
      await new Promise((r) => setTimeout(r, 400));
    }
    await onlyFrom(0, 1, 1, q);
    // Then silence for twice the idle time: both are gone, and another backend may start one.
    await new Promise((r) => setTimeout(r, 4200));
    expect(await t.count(topo, family)).toBe(0);
    push(1, 0, p, 'push after idle');
    expect((await pushed(0, p)).from).toBe(a.vip);
    expect((await ask(0, p)).backend).toBe('rs1');
  }, 60_000);

  it('lbc agent: re-applies when a backend goes down and comes back leave the others\' associations in place', async () => {
    const [p] = ports();
    await t.target.remove!(ctx());
    const ir = compileSpec(associationSpec(family, { backends: [0, 1, 2], health: true }));
    const down = new Set<string>();
    const checker: Checker = async (target) => (down.has(target.address ?? '') ? { ok: false, reason: 'marked down by the test' } : { ok: true });
    const loads: string[][] = [];
    const abort = new AbortController();
    const logs: string[] = [];
    const agent = runAgent(ir, t.target, {
      log: (l) => logs.push(l),
      context: ctx(),
      checker,
      notify: null,
      handleSignals: false,
      signal: abort.signal,
      onApplied: (live) => loads.push(live.services[0].backends.map((b) => b.address!)),
    });
    const until = async (n: number) => {
      for (let i = 0; i < 200 && loads.length < n; i++) await new Promise((r) => setTimeout(r, 50));
      expect(loads.length, logs.join('\n')).toBeGreaterThanOrEqual(n);
    };
    try {
      await until(1);
      expect(await askAll([0, 1, 2].map((i) => [i, p]))).toEqual(['rs0', 'rs1', 'rs2']);
      down.add(a.backends[2]);
      await until(2);
      expect(loads[1]).toEqual([a.backends[0], a.backends[1]]);
      expect(await askAll([[0, p], [1, p], [2, p]])).toEqual(['rs0', 'rs1', 'rs0']);
      down.delete(a.backends[2]);
      await until(3);
      expect(await askAll([[0, p], [1, p], [2, p], [3, p]])).toEqual(['rs0', 'rs1', 'rs0', 'rs0']);
    } finally {
      abort.abort();
      expect(await agent).toBe(0);
    }
  }, 60_000);
}

/** describe() per family for one target. */
export function associationSuites(t: AssociationTarget): void {
  for (const family of ['ipv4', 'ipv6'] as Family[]) describe(`${family === 'ipv4' ? 'IPv4' : 'IPv6'}`, () => associationCases(t, family));
}
