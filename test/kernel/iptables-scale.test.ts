// Kernel test of the iptables target's tree layout (more than FLAT_MAX services): services without a
// chain of their own have their nth cascades inline in shared leaf chains, each rule starting with the
// service's whole match. Real connections to three services of one leaf, interleaved, must each follow
// their own rotation exactly, as with a chain per service.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { IR } from '../../src/ir/types.js';
import { compileForTarget, type OutputFile } from '../../src/targets/target.js';
import { iptablesTarget } from '../../src/targets/iptables/index.js';
import { FLAT_MAX } from '../../src/targets/iptables/tree.js';
import { expandSlots } from '../../src/targets/iptables/slots.js';
import { ADDR, createTopology, kernelSuite, type Topology, normalizeSave } from './harness/index.js';
import { ir, type SvcInput } from '../unit/iptables-ir.js';

const N = 200;
const PORT = 8080;
const B = ADDR.v4.backends;
/**
 * Three services on one vip with ports 80, 81, 82, so in one leaf (checked below), with different
 * cascades. Sharing the address makes the port match (an -m match like statistic, evaluated in rule
 * order, unlike -d and -p) the one that must keep the other services' connections off each counter.
 */
const WATCHED: Record<number, { ids: number[]; weights: number[]; cycle: string[] }> = {
  17: { ids: [0, 1, 2], weights: [1, 1, 1], cycle: ['b0', 'b1', 'b2'] },
  18: { ids: [1, 3], weights: [1, 1], cycle: ['b1', 'b3'] },
  // Weights 2,1,1 expand to slots 0 1 2 0 (smooth weighted round robin, slots.ts; checked below).
  19: { ids: [2, 0, 3], weights: [2, 1, 1], cycle: ['b2', 'b0', 'b3', 'b2'] },
};

function spec(n: number): IR {
  const services: SvcInput[] = [];
  for (let i = 1; i <= n; i++) {
    const w = WATCHED[i];
    const s: SvcInput = w
      ? { name: `s${i}`, vip: ADDR.v4.vip(17), port: 80 + i - 17, backends: w.ids.map((b, k) => ({ address: B[b], port: PORT, weight: w.weights[k] })) }
      : { name: `s${i}`, vip: ADDR.v4.vip(i), port: 80, backends: [B[i % 4], B[(i + 1) % 4]].map((address) => ({ address, port: PORT })) };
    // A sticky and a hash service among them: the first keeps its chains, the second is inline too.
    if (i === 150) Object.assign(s, { mode: 'random', sticky: 300 });
    if (i === 151) Object.assign(s, { mode: 'hash' });
    services.push(s);
  }
  return ir(...services);
}


kernelSuite('iptables target, tree layout with inline services', ['iptables', 'iptables-restore', 'iptables-save', 'ipset'], () => {
  let topo: Topology | undefined;
  const compiled = (n: number): OutputFile[] => {
    const r = compileForTarget(iptablesTarget, spec(n));
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    return r.files;
  };
  const save = async () => normalizeSave((await topo!.exec('lb', ['iptables-save'])).stdout);

  beforeAll(async () => {
    topo = await createTopology({ backendAddresses: 4 });
    await topo.startServers('be', B.slice(0, 4).map((address, i) => ({ protocol: 'tcp' as const, address, port: PORT, id: `b${i}` })));
  }, 120_000);
  afterAll(async () => {
    await topo?.destroy();
  });

  it('replaces a chain-per-service layout, and interleaved connections to one leaf rotate exactly per service', async () => {
    const t = topo!;
    // First a flat layout with a chain per service, so the switch must remove those chains.
    expect(FLAT_MAX).toBeLessThan(N);
    await iptablesTarget.apply!(compiled(FLAT_MAX), t.applyContext('lb'));
    expect(await save()).toContain(':LBC-S-s17 ');

    const files = compiled(N);
    await iptablesTarget.apply!(files, t.applyContext('lb'));
    const loaded = await save();
    expect(loaded).not.toMatch(/^:LBC-S-s(?!150 )/m);
    expect(loaded).toMatch(/^:LBC-S-s150 /m);
    expect(loaded).not.toMatch(/^:LBC-S-s(1|2|3|64) /m);
    // The three watched services share one leaf chain (what this test is about).
    const leaves = Object.keys(WATCHED).map((i) => new RegExp(`^-A (\\S+) -d ${ADDR.v4.vip(17).replace(/\./g, '\\.')}/32 -p tcp -m tcp --dport ${80 + Number(i) - 17} `, 'm').exec(loaded)?.[1]);
    expect(leaves[0]).toMatch(/^LBC-T-/);
    expect(new Set(leaves).size).toBe(1);

    // Interleaved, unevenly: 17 17 18 19 18 17 19 19 ... ; each service must follow its own cycle from the start.
    const order = [17, 17, 18, 19, 18, 17, 19, 19, 18, 17, 19, 18, 18, 17, 19, 17, 19, 18, 19, 17, 18, 17, 19, 19, 18, 17];
    const got: Record<number, string[]> = { 17: [], 18: [], 19: [] };
    for (const i of order) {
      const [r] = await t.connect({ host: ADDR.v4.vip(17), port: 80 + i - 17, protocol: 'tcp', count: 1 });
      got[i].push(r.backend ?? '(none)');
    }
    for (const [i, w] of Object.entries(WATCHED)) {
      expect(expandSlots(w.weights).map((k) => `b${w.ids[k]}`)).toEqual(w.cycle);
      const seen = got[Number(i)];
      expect(seen.length).toBeGreaterThan(w.cycle.length);
      expect(seen).toEqual(seen.map((_, k) => w.cycle[k % w.cycle.length]));
    }
    // The inline hash service and the sticky one still reach their backends.
    for (const i of [150, 151]) {
      const r = await t.connect({ host: ADDR.v4.vip(i), port: 80, protocol: 'tcp', count: 3 });
      expect(r.every((x) => x.backend !== null)).toBe(true);
    }
  }, 180_000);

  it('applying the same files twice changes nothing', async () => {
    const t = topo!;
    const files = compiled(N);
    await iptablesTarget.apply!(files, t.applyContext('lb'));
    const first = await save();
    await iptablesTarget.apply!(files, t.applyContext('lb'));
    expect(await save()).toBe(first);
    expect(first.match(/-A PREROUTING -j LBC-PREROUTING/g)?.length).toBe(2); // nat and mangle, once each
    // And back to the flat layout: the tree chains go, the chains per service come back.
    await iptablesTarget.apply!(compiled(FLAT_MAX), t.applyContext('lb'));
    const flat = await save();
    expect(flat).not.toContain('LBC-T-');
    expect(flat).toMatch(/^:LBC-S-s17 /m);
    const r = await t.connect({ host: ADDR.v4.vip(17), port: 80, protocol: 'tcp', count: 3 });
    expect(r.map((x) => x.backend)).toEqual(WATCHED[17].cycle);
    expect(flat).toMatch(/^:LBC-S-s18 /m);
  }, 180_000);
});
