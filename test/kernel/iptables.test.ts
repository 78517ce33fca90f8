// Kernel tests of the iptables and ip6tables targets: the emitted files are loaded with the real tools
// through the target's own apply(), inside throw-away namespaces, and real connections are counted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IR } from '../../src/ir/types.js';
import { compileForTarget, type TargetDefinition } from '../../src/targets/target.js';
import { iptablesTarget, ip6tablesTarget } from '../../src/targets/iptables/index.js';
import { ADDR, createTopology, kernelSuite, tally, type ConnResult, type Topology, normalizeSave } from './harness/index.js';
import { ir, type SvcInput } from '../unit/iptables-ir.js';
import { rotationPlan, type RotationPlan } from '../../src/targets/iptables/rotation.js';
import { markBlocks } from '../../src/targets/iptables/slots.js';
import { MARK_BASE } from '../../src/targets/iptables/emit.js';

const PORT = 8080;
const LOCAL_PORT = 7100;
const B4 = ADDR.v4.backends;
const B6 = ADDR.v6.backends;


/** The backends a plan gives the first `n` new connections (its rules' counters, as xt_statistic keeps them). */
function planOrder(plan: RotationPlan, n: number): number[] {
  const counters = plan.rules.map(() => 0);
  return Array.from({ length: n }, () => plan.rules[plan.rules.findIndex((r, i) => r.every === null || counters[i]++ % r.every === 0)].backend);
}

function perSource(results: ConnResult[]): Map<string, Set<string | null>> {
  const m = new Map<string, Set<string | null>>();
  for (const r of results) {
    const k = r.source ?? '';
    if (!m.has(k)) m.set(k, new Set());
    m.get(k)!.add(r.backend);
  }
  return m;
}

kernelSuite('iptables / ip6tables targets in the kernel', ['iptables', 'ip6tables', 'iptables-restore', 'ip6tables-restore', 'iptables-save', 'ip6tables-save', 'ipset'], () => {
  let topo: Topology;
  const apply = async (target: TargetDefinition, spec: IR) => {
    const res = compileForTarget(target, spec);
    expect(res.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    await target.apply!(res.files, topo.applyContext('lb'));
    return res.files;
  };
  const save = async (tool: 'iptables' | 'ip6tables') => normalizeSave((await topo.exec('lb', [`${tool}-save`])).stdout);

  beforeAll(async () => {
    topo = await createTopology({ clientSources: 120, backendAddresses: 4 });
    const listeners = [];
    for (let i = 0; i < 4; i++) {
      for (const protocol of ['tcp', 'udp'] as const) {
        listeners.push({ protocol, address: B4[i], port: PORT, id: `b${i}` }, { protocol, address: B6[i], port: PORT, id: `b${i}` });
      }
    }
    await topo.startServers('be', listeners);
    await topo.startServers('lb', [
      { protocol: 'tcp', address: '0.0.0.0', port: LOCAL_PORT, id: 'local' },
      { protocol: 'udp', address: '0.0.0.0', port: LOCAL_PORT, id: 'local' },
      { protocol: 'tcp', address: '::', port: LOCAL_PORT, id: 'local' },
      { protocol: 'udp', address: '::', port: LOCAL_PORT, id: 'local' },
    ]);
    // Rules lbc does not own, present before lbc's first apply: they must survive every apply.
    await topo.exec('lb', ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-s', '10.99.0.0/16', '-j', 'RETURN']);
    await topo.exec('lb', ['iptables', '-A', 'FORWARD', '-s', '10.98.0.0/16', '-j', 'DROP']);
    await topo.exec('lb', ['ip6tables', '-t', 'nat', '-A', 'PREROUTING', '-s', 'fd00:99::/64', '-j', 'RETURN']);
  }, 120_000);
  afterAll(async () => {
    await topo?.destroy();
  });

  describe('iptables', () => {
    it('nth: exact weighted rotation (weights 3,1,2 -> over 6k connections exactly 3k,k,2k)', async () => {
      await apply(iptablesTarget, ir({ name: 'web', vip: ADDR.v4.vip(1), port: 80, backends: [{ address: B4[0], port: PORT, weight: 3 }, { address: B4[1], port: PORT, weight: 1 }, { address: B4[2], port: PORT, weight: 2 }] }));
      const r = await topo.connect({ host: ADDR.v4.vip(1), port: 80, protocol: 'tcp', count: 120 });
      expect(tally(r)).toEqual({ b0: 60, b1: 20, b2: 40 });
      // Exact in every window of 6, not just in total.
      for (let w = 0; w < 120; w += 6) expect(tally(r.slice(w, w + 6))).toEqual({ b0: 3, b1: 1, b2: 2 });
    }, 120_000);

    it('nth past 256 slots: the composed rotation (three nested blocks) is exact in every window of W', async () => {
      const weights = [29, 211, 392, 263];
      const plan = rotationPlan(weights);
      expect(plan.depth).toBe(3);
      expect(plan.rules.length).toBeLessThan(30);
      await apply(iptablesTarget, ir({ name: 'big', vip: ADDR.v4.vip(8), port: 80, backends: weights.map((weight, i) => ({ address: B4[i], port: PORT, weight })) }));
      const W = plan.period;
      const r = await topo.connect({ host: ADDR.v4.vip(8), port: 80, protocol: 'tcp', count: 2 * W });
      for (let w = 0; w < 2 * W; w += W) expect(tally(r.slice(w, w + W))).toEqual({ b0: 29, b1: 211, b2: 392, b3: 263 });
      // And the order is the plan's, connection for connection.
      expect(r.map((x) => x.backend)).toEqual(planOrder(plan, 2 * W).map((i) => `b${i}`));
    }, 240_000);

    it('sticky over a composed rotation: fresh clients take the rotation in order, then stay', async () => {
      const weights = [300, 7, 3];
      await apply(iptablesTarget, ir({ name: 'bigs', vip: ADDR.v4.vip(9), port: 80, sticky: 600, backends: weights.map((weight, i) => ({ address: B4[i], port: PORT, weight })) }));
      const sources = Array.from({ length: 120 }, (_, i) => ADDR.v4.extraClient(i));
      const r = await topo.connect({ host: ADDR.v4.vip(9), port: 80, protocol: 'tcp', count: 240, sources });
      expect(r.slice(0, 120).map((x) => x.backend)).toEqual(planOrder(rotationPlan(weights), 120).map((i) => `b${i}`));
      expect(r.slice(120).map((x) => x.backend)).toEqual(r.slice(0, 120).map((x) => x.backend));
    }, 180_000);

    it('hash past 256 values: every mark block reaches its backend (marks forced after HMARK), real hashing stays per source', async () => {
      const weights = [200, 57, 3];
      await apply(iptablesTarget, ir({ name: 'bigh', vip: ADDR.v4.vip(10), port: 80, mode: 'hash', backends: weights.map((weight, i) => ({ address: B4[i], port: PORT, weight })) }));
      const src = ADDR.v4.extraClient(119);
      // A rule after lbc's mangle jump overwrites the HMARK value for one client, so each value's nat rule is tried.
      for (const block of markBlocks(weights)) {
        for (const v of new Set([block.offset, block.offset + block.size - 1])) {
          const rule = ['-t', 'mangle', 'PREROUTING', '-s', src, '-j', 'MARK', '--set-mark', `0x${(MARK_BASE + v).toString(16)}`];
          await topo.exec('lb', ['iptables', rule[0], rule[1], '-A', ...rule.slice(2)]);
          try {
            const got = await topo.connect({ host: ADDR.v4.vip(10), port: 80, protocol: 'tcp', count: 1, sources: [src] });
            expect(got[0].backend, `mark value ${v}`).toBe(`b${block.backend}`);
          } finally {
            await topo.exec('lb', ['iptables', rule[0], rule[1], '-D', ...rule.slice(2)]);
          }
        }
      }
      const sources = Array.from({ length: 60 }, (_, i) => ADDR.v4.extraClient(i));
      const r = await topo.connect({ host: ADDR.v4.vip(10), port: 80, protocol: 'tcp', count: 120, sources });
      expect(r.every((x) => x.backend !== null)).toBe(true);
      for (const [, backends] of perSource(r)) expect(backends.size).toBe(1);
    }, 180_000);

    it('nth over UDP: each request from a new source port is a new connection', async () => {
      await apply(iptablesTarget, ir({ name: 'dns', vip: ADDR.v4.vip(2), port: 53, protocol: 'udp', backends: [{ address: B4[0], port: PORT }, { address: B4[1], port: PORT }] }));
      const r = await topo.connect({ host: ADDR.v4.vip(2), port: 53, protocol: 'udp', count: 20 });
      expect(tally(r)).toEqual({ b0: 10, b1: 10 });
    }, 120_000);

    it('random: weighted shares within a chi-square bound', async () => {
      await apply(iptablesTarget, ir({ name: 'rnd', vip: ADDR.v4.vip(3), port: 80, mode: 'random', backends: [{ address: B4[0], port: PORT, weight: 1 }, { address: B4[1], port: PORT, weight: 2 }, { address: B4[2], port: PORT, weight: 1 }] }));
      const N = 2000;
      const r = await topo.connect({ host: ADDR.v4.vip(3), port: 80, protocol: 'tcp', count: N });
      const t = tally(r);
      expect(t['(none)']).toBeUndefined();
      const expected = { b0: N / 4, b1: N / 2, b2: N / 4 };
      const chi2 = Object.entries(expected).reduce((s, [k, e]) => s + ((t[k] ?? 0) - e) ** 2 / e, 0);
      // 2 degrees of freedom: P(chi2 > x) = exp(-x/2), so x = 41.4 fails a correct ruleset with probability 1e-9.
      // Equal shares instead of 1:2:1 would give chi2 ≈ 220 at N = 2000, so the bound still catches wrong weights.
      expect(chi2).toBeLessThan(41.4);
    }, 180_000);

    it('hash on the source address: every client always reaches the same backend', async () => {
      await apply(iptablesTarget, ir({ name: 'hsh', vip: ADDR.v4.vip(4), port: 80, mode: 'hash', hash: ['saddr'], backends: [0, 1, 2].map((i) => ({ address: B4[i], port: PORT })) }));
      const sources = Array.from({ length: 30 }, (_, i) => ADDR.v4.extraClient(i));
      const r = await topo.connect({ host: ADDR.v4.vip(4), port: 80, protocol: 'tcp', count: 150, sources });
      expect(r.every((x) => x.backend !== null)).toBe(true);
      for (const [, backends] of perSource(r)) expect(backends.size).toBe(1);
      // 30 sources all on one of 3 backends: probability 3^-29 with a working hash.
      expect(Object.keys(tally(r)).length).toBeGreaterThan(1);
    }, 120_000);

    it('sticky: more than 100 clients each stay on their backend (no xt_recent limit)', async () => {
      const files = await apply(iptablesTarget, ir({ name: 'stk', vip: ADDR.v4.vip(5), port: 80, mode: 'random', sticky: 600, backends: [0, 1].map((i) => ({ address: B4[i], port: PORT })) }));
      expect(files.map((f) => f.name)).toEqual(['iptables.rules', 'ipset.rules']);
      const sources = Array.from({ length: 120 }, (_, i) => ADDR.v4.extraClient(i));
      const r = await topo.connect({ host: ADDR.v4.vip(5), port: 80, protocol: 'tcp', count: 360, sources });
      expect(r.every((x) => x.backend !== null)).toBe(true);
      const m = perSource(r);
      expect(m.size).toBe(120);
      for (const [, backends] of m) expect(backends.size).toBe(1);
      let remembered = 0;
      for (const set of ['LBC4-stk-0', 'LBC4-stk-1']) {
        const out = (await topo.exec('lb', ['ipset', 'list', set])).stdout;
        remembered += Number(/Number of entries: (\d+)/.exec(out)![1]);
      }
      expect(remembered).toBe(120);
    }, 180_000);

    it('backend on the balancer itself (REDIRECT) and a service without vip', async () => {
      await apply(iptablesTarget, ir({ name: 'loc', vip: null, port: 81, backends: [{ address: B4[0], port: PORT }, { address: null, port: LOCAL_PORT }] }));
      const r = await topo.connect({ host: ADDR.v4.balancerClientSide, port: 81, protocol: 'tcp', count: 10 });
      expect(tally(r)).toEqual({ b0: 5, local: 5 });
    }, 120_000);

    it('local: true balances connections made on the balancer (nat and mangle OUTPUT), CIDR vip', async () => {
      await apply(iptablesTarget, ir(
        { name: 'out', vip: ADDR.v4.vip(6), port: 80, local: true, backends: [0, 1].map((i) => ({ address: B4[i], port: PORT })) },
        { name: 'outh', vip: '10.201.100.64/26', port: 80, mode: 'hash', local: true, backends: [0, 1, 2].map((i) => ({ address: B4[i], port: PORT })) },
      ));
      expect(tally(await topo.connect({ from: 'lb', host: ADDR.v4.vip(6), port: 80, protocol: 'tcp', count: 10 }))).toEqual({ b0: 5, b1: 5 });
      const h = await topo.connect({ from: 'lb', host: ADDR.v4.vip(70), port: 80, protocol: 'tcp', count: 6 });
      expect(h.every((x) => x.backend !== null)).toBe(true);
      expect(new Set(h.map((x) => x.backend)).size).toBe(1);
      // And from outside through the CIDR vip as well.
      expect(tally(await topo.connect({ host: ADDR.v4.vip(100), port: 80, protocol: 'tcp', count: 3 }))['(none)']).toBeUndefined();
    }, 120_000);

    it('applying twice changes nothing; unrelated rules survive; chains and sets no longer in the spec go', async () => {
      const spec = ir(
        { name: 'web', vip: ADDR.v4.vip(1), port: 80, backends: [0, 1].map((i) => ({ address: B4[i], port: PORT })) },
        { name: 'stk', vip: ADDR.v4.vip(5), port: 80, sticky: 60, mode: 'hash', backends: [0, 1].map((i) => ({ address: B4[i], port: PORT })) },
      );
      await apply(iptablesTarget, spec);
      const first = await save('iptables');
      const sets1 = (await topo.exec('lb', ['ipset', 'list', '-n'])).stdout;
      await apply(iptablesTarget, spec);
      expect(await save('iptables')).toBe(first);
      expect((await topo.exec('lb', ['ipset', 'list', '-n'])).stdout).toBe(sets1);
      expect(first.match(/-A PREROUTING -j LBC-PREROUTING/g)?.length).toBe(2); // nat and mangle, once each
      expect(first).toContain('-A PREROUTING -s 10.99.0.0/16 -j RETURN');
      expect(first).toContain('-A FORWARD -s 10.98.0.0/16 -j DROP');
      expect(tally(await topo.connect({ host: ADDR.v4.vip(1), port: 80, protocol: 'tcp', count: 4 }))).toEqual({ b0: 2, b1: 2 });

      // Drop the sticky hash service: its chains, the mangle chain and its jump, and its sets go away.
      await apply(iptablesTarget, ir({ name: 'web', vip: ADDR.v4.vip(1), port: 80, backends: [0, 1].map((i) => ({ address: B4[i], port: PORT })) }));
      const after = await save('iptables');
      expect(after).not.toMatch(/LBC-S-stk|LBC-B-stk|HMARK/);
      const mangle = /\*mangle\n[\s\S]*?COMMIT/.exec(after)![0];
      expect(mangle).not.toContain('LBC-');
      expect(after.match(/-j LBC-PREROUTING/g)?.length).toBe(1);
      expect(after).toContain('-A PREROUTING -s 10.99.0.0/16 -j RETURN');
      expect((await topo.exec('lb', ['ipset', 'list', '-n'])).stdout).not.toContain('LBC4-stk');
      expect(tally(await topo.connect({ host: ADDR.v4.vip(1), port: 80, protocol: 'tcp', count: 4 }))).toEqual({ b0: 2, b1: 2 });
    }, 120_000);

    it('a changed sticky timeout is applied to the existing set', async () => {
      const mk = (t: number) => ir({ name: 'stt', vip: ADDR.v4.vip(7), port: 80, sticky: t, backends: [{ address: B4[0], port: PORT }] });
      await apply(iptablesTarget, mk(60));
      await apply(iptablesTarget, mk(90));
      expect((await topo.exec('lb', ['ipset', 'list', '-t', 'LBC4-stt-0'])).stdout).toMatch(/timeout 90\b/);
      expect(tally(await topo.connect({ host: ADDR.v4.vip(7), port: 80, protocol: 'tcp', count: 2 }))).toEqual({ b0: 2 });
    }, 120_000);
  });

  describe('ip6tables', () => {
    it('nth with weights, TCP and UDP, a local-port backend, idempotent apply', async () => {
      const spec = ir(
        { name: 'web6', vip: ADDR.v6.vip(1), port: 80, backends: [{ address: B6[0], port: PORT, weight: 2 }, { address: B6[1], port: PORT }, { address: null, port: LOCAL_PORT }] },
        { name: 'dns6', vip: ADDR.v6.vip(2), port: 53, protocol: 'udp', backends: [{ address: B6[2], port: PORT }, { address: B6[3], port: PORT }] },
      );
      await apply(ip6tablesTarget, spec);
      const first = await save('ip6tables');
      await apply(ip6tablesTarget, spec);
      expect(await save('ip6tables')).toBe(first);
      expect(first).toContain('-A PREROUTING -s fd00:99::/64 -j RETURN');
      const r = await topo.connect({ host: ADDR.v6.vip(1), port: 80, protocol: 'tcp', count: 40 });
      expect(tally(r)).toEqual({ b0: 20, b1: 10, local: 10 });
      expect(tally(await topo.connect({ host: ADDR.v6.vip(2), port: 53, protocol: 'udp', count: 10 }))).toEqual({ b2: 5, b3: 5 });
    }, 120_000);

    it('random, hash and sticky over IPv6', async () => {
      await apply(ip6tablesTarget, ir(
        { name: 'rnd6', vip: ADDR.v6.vip(3), port: 80, mode: 'random', backends: [0, 1].map((i) => ({ address: B6[i], port: PORT })) },
        { name: 'hsh6', vip: ADDR.v6.vip(4), port: 80, mode: 'hash', backends: [0, 1, 2].map((i) => ({ address: B6[i], port: PORT })) },
        { name: 'stk6', vip: ADDR.v6.vip(5), port: 80, mode: 'random', sticky: 300, backends: [0, 1].map((i) => ({ address: B6[i], port: PORT })) },
      ));
      const rnd = tally(await topo.connect({ host: ADDR.v6.vip(3), port: 80, protocol: 'tcp', count: 400 }));
      // Binomial(400, 1/2): |x - 200| > 60 is a 6-sigma event.
      expect(Math.abs((rnd.b0 ?? 0) - 200)).toBeLessThan(60);
      expect((rnd.b0 ?? 0) + (rnd.b1 ?? 0)).toBe(400);
      const sources = Array.from({ length: 110 }, (_, i) => ADDR.v6.extraClient(i));
      for (const vip of [4, 5]) {
        const r = await topo.connect({ host: ADDR.v6.vip(vip), port: 80, protocol: 'tcp', count: 330, sources });
        expect(r.every((x) => x.backend !== null)).toBe(true);
        for (const [, b] of perSource(r)) expect(b.size).toBe(1);
        expect(Object.keys(tally(r)).length).toBeGreaterThan(1);
      }
    }, 180_000);
  });
});
