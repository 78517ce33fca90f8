// Incremental apply against the real kernel, for nftables and iptables: 200 services are loaded, one
// backend of one service changes, and the partial load must (1) leave exactly the ruleset a full load
// of the new spec leaves in a fresh namespace, (2) really be partial, (3) move the changed service's
// traffic while an unchanged service's nth rotation carries on where it was, and (4) fall back to a
// full load when lbc's objects were removed behind its back.
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { IR } from '../../src/ir/types.js';
import { compileForTarget, type ApplyContext, type OutputFile, type TargetDefinition } from '../../src/targets/target.js';
import { nftablesTarget } from '../../src/targets/nftables/index.js';
import { iptablesTarget } from '../../src/targets/iptables/index.js';
import { ADDR, createTopology, kernelSuite, type ConnResult, type Topology } from './harness/index.js';
import { ir, type SvcInput } from '../unit/iptables-ir.js';

const N = 200;
const CHANGED = 100;
const WATCHED = 7;
const PORT = 8080;
const B = ADDR.v4.backends;

/** Service i (1..N): vip 10.201.100.i:80, nth over b0, b1, b2; `changed` moves backend 0 of service CHANGED to b3. */
function spec(changed: boolean): IR {
  const services: SvcInput[] = [];
  for (let i = 1; i <= N; i++) {
    const first = changed && i === CHANGED ? B[3] : B[0];
    const s: SvcInput = { name: `s${i}`, vip: ADDR.v4.vip(i), port: 80, backends: [first, B[1], B[2]].map((address) => ({ address, port: PORT })) };
    // A few sticky services, so sets are part of what must stay equal.
    if (i > 190) Object.assign(s, { mode: 'random', sticky: 300 });
    services.push(s);
  }
  return ir(...services);
}

interface Sent {
  argv: string[];
  stdin?: string;
}

interface Flavor {
  target: TargetDefinition;
  tools: string[];
  /** The ruleset lbc owns, normalized for comparison between namespaces. */
  listing(topo: Topology): Promise<string>;
  /** The command that loads rules, and a check that its input touches only the changed service. */
  loader: string;
  partialOnly(stdin: string): void;
  /** Remove lbc's objects behind its back. */
  sabotage(topo: Topology): Promise<void>;
}

/** iptables-save of the LBC chains and the jumps to them: chains sorted, rules in order within a chain, counters zeroed. */
async function iptablesListing(topo: Topology): Promise<string> {
  const out: string[] = [];
  let table = '';
  const chains = new Map<string, string[]>();
  const flush = () => {
    for (const c of [...chains.keys()].sort()) out.push(`${table} ${c}`, ...chains.get(c)!);
    chains.clear();
  };
  for (const line of (await topo.exec('lb', ['iptables-save'])).stdout.split('\n')) {
    if (line.startsWith('*')) {
      flush();
      table = line.slice(1);
    } else if (line.startsWith(':LBC-')) {
      chains.set(line.slice(1).split(' ')[0], []);
    } else if (line.startsWith('-A LBC-')) {
      chains.get(line.split(' ')[1])!.push(line);
    } else if (/^-A \S+ -j LBC-/.test(line)) {
      out.push(`${table} ${line}`);
    }
  }
  flush();
  // One marker chain, whatever its name (it depends on the history of loads, as for nftables).
  expect(out.filter((l) => /^nat LBC-L-[0-9a-f]{22}$/.test(l))).toHaveLength(1);
  return out.map((l) => l.replace(/^nat LBC-L-[0-9a-f]{22}$/, 'nat LBC-L-MARKER')).join('\n');
}

const FLAVORS: Flavor[] = [
  {
    target: nftablesTarget,
    tools: ['nft'],
    // The marker chain's name depends on the history of loads (a full load names it after the text, a
    // partial one after the previous marker and the change): one marker, whatever its name.
    listing: async (topo) => {
      const text = (await topo.exec('lb', ['nft', 'list', 'table', 'inet', 'lbc'])).stdout;
      expect(text.match(/\tchain loaded_[0-9a-f]{64} \{/g)).toHaveLength(1);
      return text.replace(/loaded_[0-9a-f]{64}/, 'loaded_MARKER');
    },
    loader: 'nft',
    partialOnly(stdin) {
      expect(stdin).not.toContain('delete table');
      const named = new Set([...stdin.matchAll(/^(?:flush|add|delete) (?:chain|rule|set|map|element) inet lbc (\S+)/gm)].map((m) => m[1]));
      named.forEach((n) => expect(n).toMatch(new RegExp(`^(svc_s${CHANGED}|loaded_[0-9a-f]{64})$`)));
      expect(named.has(`svc_s${CHANGED}`)).toBe(true);
      expect(stdin.match(/^add rule /gm)).toHaveLength(3);
    },
    sabotage: async (topo) => {
      await topo.exec('lb', ['nft', 'delete', 'table', 'inet', 'lbc']);
    },
  },
  {
    target: iptablesTarget,
    tools: ['iptables', 'iptables-restore', 'iptables-save', 'ipset'],
    listing: iptablesListing,
    loader: 'iptables-restore',
    partialOnly(stdin) {
      // 200 services use the dispatch tree: the changed service's rules sit in its leaf chain, which alone is reloaded.
      const declared = [...stdin.matchAll(/^:(\S+) /gm)].map((m) => m[1]).filter((c) => !c.startsWith('LBC-L-'));
      expect(declared).toHaveLength(1);
      expect(declared[0]).toMatch(/^LBC-T-[0-9a-f]{12}$/);
      const rules = stdin.match(/^-A .*$/gm) ?? [];
      expect(rules.every((r) => r.startsWith(`-A ${declared[0]} `))).toBe(true);
      expect(rules.filter((r) => r.includes(` -d ${ADDR.v4.vip(CHANGED)}/32 `))).toHaveLength(3);
      expect(rules.length).toBeLessThanOrEqual(16 * 3);
      expect(stdin).toMatch(/^-X LBC-L-[0-9a-f]{22}$/m);
    },
    sabotage: async (topo) => {
      // Everything of lbc's in the nat table: the jump, then every LBC- chain (flushed first, as -X wants).
      await topo.exec('lb', ['iptables', '-t', 'nat', '-D', 'PREROUTING', '-j', 'LBC-PREROUTING']);
      const chains = (await topo.exec('lb', ['iptables-save', '-t', 'nat'])).stdout.split('\n').filter((l) => l.startsWith(':LBC-')).map((l) => l.slice(1).split(' ')[0]);
      await topo.exec('lb', ['iptables-restore', '--noflush'], ['*nat', ...chains.map((c) => `:${c} - [0:0]`), ...chains.map((c) => `-X ${c}`), 'COMMIT', ''].join('\n'));
    },
  },
];

const ids = (rs: ConnResult[]) => rs.map((r) => r.backend);

for (const flavor of FLAVORS) {
  kernelSuite(`incremental apply: ${flavor.target.name}`, flavor.tools, () => {
    let topo: Topology | undefined;
    let fresh: Topology | undefined;
    const stateDirs: string[] = [];
    const compiled = (changed: boolean): OutputFile[] => {
      const r = compileForTarget(flavor.target, spec(changed));
      expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      return r.files;
    };

    /** An ApplyContext for one namespace whose state file lives in a directory of that namespace's own. */
    async function context(t: Topology, sent: Sent[], log: string[]): Promise<ApplyContext> {
      const dir = join(tmpdir(), `${t.ns.lb}-state`);
      await mkdir(dir, { recursive: true });
      stateDirs.push(dir);
      const base = t.applyContext('lb', (l) => log.push(l));
      return {
        ...base,
        stateDir: dir,
        run: async (argv, stdin) => {
          sent.push({ argv, stdin });
          await base.run(argv, stdin);
        },
      };
    }
    const loads = (sent: Sent[]) => sent.filter((s) => s.argv[0] === flavor.loader);

    beforeAll(async () => {
      topo = await createTopology({ backendAddresses: 4 });
      fresh = await createTopology({ backendAddresses: 4 });
      await topo.startServers('be', B.slice(0, 4).map((address, i) => ({ protocol: 'tcp' as const, address, port: PORT, id: `b${i}` })));
    }, 120_000);

    afterAll(async () => {
      await topo?.destroy();
      await fresh?.destroy();
      for (const d of stateDirs) await rm(d, { recursive: true, force: true });
    });

    it('changes one backend of one service among 200 with a partial load, equal to a full load, counters kept', async () => {
      const t = topo!;
      const sent: Sent[] = [];
      const log: string[] = [];
      const ctx = await context(t, sent, log);

      await flavor.target.apply!(compiled(false), ctx);
      expect(loads(sent)).toHaveLength(1);
      expect(log.join('\n')).not.toMatch(/only what changed/);

      // The watched service's rotation from a fresh start: three different backends, then the cycle again.
      const before = ids(await t.connect({ host: ADDR.v4.vip(WATCHED), port: 80, protocol: 'tcp', count: 4 }));
      expect(new Set(before.slice(0, 3))).toEqual(new Set(['b0', 'b1', 'b2']));
      expect(before[3]).toBe(before[0]);
      // The service that will change has seen traffic too, so a restart of its rotation shows.
      expect(ids(await t.connect({ host: ADDR.v4.vip(CHANGED), port: 80, protocol: 'tcp', count: 1 }))).toEqual([before[0]]);

      sent.length = 0;
      log.length = 0;
      await flavor.target.apply!(compiled(true), ctx);
      // (2) what was sent: one load, naming only the changed service's chain.
      expect(log.join('\n')).toMatch(/loading only what changed: 1 chain\(s\)/);
      const l = loads(sent);
      expect(l).toHaveLength(1);
      flavor.partialOnly(l[0].stdin!);

      // (3) The watched service goes on from position 5 of its cycle (a reset would start again at before[0]).
      const after = ids(await t.connect({ host: ADDR.v4.vip(WATCHED), port: 80, protocol: 'tcp', count: 2 }));
      expect(after).toEqual([before[1], before[2]]);
      // The changed service's chain was refilled: its rotation restarts, with b3 in place of b0.
      const moved = ids(await t.connect({ host: ADDR.v4.vip(CHANGED), port: 80, protocol: 'tcp', count: 6 }));
      const expected = before.slice(0, 3).map((b) => (b === 'b0' ? 'b3' : b));
      expect(moved).toEqual([...expected, ...expected]);

      // (1) The same ruleset as a full load of the new spec in a fresh namespace.
      const f = fresh!;
      const freshSent: Sent[] = [];
      await flavor.target.apply!(compiled(true), await context(f, freshSent, []));
      expect(loads(freshSent)[0].stdin).toMatch(flavor.loader === 'nft' ? /delete table inet lbc/ : /:LBC-PREROUTING/);
      expect(await flavor.listing(t)).toBe(await flavor.listing(f));
    }, 180_000);

    it('applying the same files again loads nothing but still checks the kernel', async () => {
      const t = topo!;
      const sent: Sent[] = [];
      const log: string[] = [];
      await flavor.target.apply!(compiled(true), await context(t, sent, log));
      const l = loads(sent);
      if (flavor.loader === 'nft') {
        // Only the marker, deleted and added again: the deletion fails if the table is not lbc's.
        expect(l).toHaveLength(1);
        expect(l[0].stdin!.trim().split('\n')).toHaveLength(2);
      } else {
        expect(l).toHaveLength(0);
      }
      expect(await flavor.listing(t)).toBe(await flavor.listing(fresh!));
    }, 120_000);

    it('falls back to a full load when lbc\'s objects were removed behind its back', async () => {
      const t = topo!;
      await flavor.sabotage(t);
      const sent: Sent[] = [];
      const log: string[] = [];
      // Back to the original spec: a partial load would be tried, and must be refused.
      await flavor.target.apply!(compiled(false), await context(t, sent, log));
      expect(log.join('\n')).toMatch(/loading the whole ruleset/);
      const l = loads(sent);
      expect(l.length).toBeGreaterThanOrEqual(1);
      if (flavor.loader === 'nft') expect(l.at(-1)!.stdin).toContain('delete table inet lbc');
      else expect(l.at(-1)!.stdin).toContain(':LBC-PREROUTING - [0:0]');

      // Equal to a full load of the original spec in a fresh namespace, and traffic goes to b0 again.
      await flavor.target.apply!(compiled(false), { ...(await context(fresh!, [], [])), fullApply: true });
      expect(await flavor.listing(t)).toBe(await flavor.listing(fresh!));
      const r = ids(await t.connect({ host: ADDR.v4.vip(CHANGED), port: 80, protocol: 'tcp', count: 3 }));
      expect([...r].sort()).toEqual(['b0', 'b1', 'b2']);
    }, 180_000);

    if (flavor.loader === 'iptables-restore') {
      it('a jump from PREROUTING removed behind lbc\'s back fails the partial load (its -C), and the full load puts it back', async () => {
        const t = topo!;
        await t.exec('lb', ['iptables', '-t', 'nat', '-D', 'PREROUTING', '-j', 'LBC-PREROUTING']);
        const sent: Sent[] = [];
        const log: string[] = [];
        await flavor.target.apply!(compiled(true), await context(t, sent, log));
        const l = loads(sent);
        // The partial load was tried, refused by its own check, and followed by the full one.
        expect(l[0].stdin).toMatch(/^-C PREROUTING -j LBC-PREROUTING$/m);
        expect(l[0].stdin).not.toContain(':LBC-PREROUTING - [0:0]');
        expect(log.join('\n')).toMatch(/loading the whole ruleset/);
        expect((await t.exec('lb', ['iptables', '-t', 'nat', '-S', 'PREROUTING'])).stdout).toMatch(/^-A PREROUTING -j LBC-PREROUTING$/m);
        const r = ids(await t.connect({ host: ADDR.v4.vip(CHANGED), port: 80, protocol: 'tcp', count: 3 }));
        expect([...r].sort()).toEqual(['b1', 'b2', 'b3']);
      }, 180_000);
    }
  });
}
