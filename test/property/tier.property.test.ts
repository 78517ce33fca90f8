/**
 * Property: any valid balancer tier (either mode, 2-7 nodes, any id, advert, gateway, sync, secret)
 * compiled for any of its nodes on any target either is refused with a spec position (LBC3010) or
 * gives files that hold together across the nodes:
 * - keepalived: every VRRP instance is on every node with the same id and advert, distinct priorities,
 *   and the owner of each bucket is the one with the highest; the events script passes `sh -n`;
 * - BSD: the host files read back (grammars/hostconf) with one preferred master per group (failover)
 *   or exactly one owner per carpnode (OpenBSD active-active), the same groups on every node; the pf
 *   ruleset still reads back with the carp/pfsync rules.
 * The spec text is generated and goes through the validator, so what the tier accepts is what is tested.
 */
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkSpec, LbcError } from '../../src/index.js';
import type { IR } from '../../src/ir/types.js';
import { TARGETS } from '../../src/targets/registry.js';
import { compileForTarget } from '../../src/targets/target.js';
import { buckets, bucketCount } from '../../src/targets/tier/plan.js';
import { freebsdTier, parseHostnameIf } from '../../grammars/hostconf/index.js';
import { parsePf } from '../../grammars/pf/index.js';

const tierSpec = fc
  .record({
    mode: fc.constantFrom('failover', 'active-active'),
    nodes: fc.integer({ min: 2, max: 7 }),
    id: fc.integer({ min: 1, max: 200 }),
    advert: fc.constantFrom('1s', '2s', '100ms', '250ms'),
    gateway: fc.boolean(),
    sync: fc.boolean(),
    secret: fc.boolean(),
    services: fc.integer({ min: 1, max: 3 }),
  })
  .map((o) => {
    const active = o.mode === 'active-active';
    const sync = o.sync && !active;
    const lines = [
      'version: 1',
      'balancers:',
      `  mode: ${o.mode}`,
      `  id: ${o.id}`,
      `  advert: ${o.advert}`,
      '  interface: em0',
      ...(o.gateway && !active ? ['  gateway: { interface: em1, address: 198.51.100.1/24 }'] : []),
      ...(sync ? ['  sync: { interface: em2 }'] : []),
      ...(o.secret ? ['  secret-file: /etc/lbc/carp.key'] : []),
      '  nodes:',
      ...Array.from({ length: o.nodes }, (_, i) => `    - { name: n${i + 1}, address: 192.0.2.${i + 2}${sync ? `, sync-address: 203.0.113.${i + 2}` : ''} }`),
      'services:',
      ...Array.from({ length: o.services }, (_, i) =>
        active
          ? `  - { name: s${i}, vip: 192.0.2.${100 + i}, port: ${80 + i}, interface: em0, backends: [":${8080 + i}"] }`
          : `  - { name: s${i}, vip: 192.0.2.${100 + i}, port: ${80 + i}, backends: [198.51.100.${10 + i}:8080, 198.51.100.${20 + i}:8080] }`,
      ),
    ];
    return `${lines.join('\n')}\n`;
  });

function filesOf(ir: IR, target: string, node: string): Map<string, string> | null {
  try {
    const r = compileForTarget(TARGETS.get(target)!, ir, { node, specPath: '/etc/lbc/spec.yaml' });
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    if (errors.length) {
      for (const d of errors) {
        expect(d.code).toBe('LBC3010');
        expect(d.location?.file).toBe('t.yaml');
      }
      return null;
    }
    return new Map(r.files.map((f) => [f.name, f.content]));
  } catch (e) {
    if (e instanceof LbcError) throw new Error(`compile threw instead of refusing: ${e.message}`);
    throw e;
  }
}

describe('property: balancer tiers hold together across their nodes', () => {
  it('for every target and node', () => {
    fc.assert(
      fc.property(tierSpec, (text) => {
        const { ir, diagnostics } = checkSpec(text, 't.yaml');
        // The generator stays inside what the validator accepts, except an id too high for the buckets.
        if (!ir) {
          expect(diagnostics.map((d) => d.code)).toEqual(['LBC2123']);
          return;
        }
        const tier = ir.balancers!;
        const names = tier.nodes.map((n) => n.name);

        const ka = names.map((n) => filesOf(ir, 'keepalived', n)!);
        const instances = ka.map((f) => {
          const conf = f.get('keepalived.conf')!;
          return new Map([...conf.matchAll(/vrrp_instance (\S+) \{[\s\S]*?virtual_router_id (\d+)\n\tpriority (\d+)\n\tadvert_int (\S+)/g)].map((m) => [m[1], { vrid: Number(m[2]), prio: Number(m[3]), advert: m[4] }]));
        });
        const expected = tier.mode === 'failover' ? 1 : bucketCount(names.length);
        for (const inst of instances) expect(inst.size).toBe(expected);
        for (const name of instances[0].keys()) {
          const all = instances.map((i) => i.get(name)!);
          expect(new Set(all.map((x) => x.vrid)).size).toBe(1);
          expect(new Set(all.map((x) => x.advert))).toEqual(new Set([String(tier.advertMs / 1000)]));
          expect(new Set(all.map((x) => x.prio)).size).toBe(names.length);
        }
        if (tier.mode === 'active-active') {
          for (const b of buckets(tier)) {
            const prios = instances.map((i) => i.get(`lbc_${tier.id}_b${b.index}`)!.prio);
            expect(prios.indexOf(Math.max(...prios))).toBe(b.owner);
          }
        }
        execFileSync('sh', ['-n'], { input: ka[0].get('lbc-vrrp-events')! });

        const fb = names.map((n) => filesOf(ir, 'pf', n));
        if (fb[0]) {
          const carps = fb.map((f) => freebsdTier(f!.get('rc.conf')!).carp);
          for (const c of carps) expect(c.map((x) => [x.vhid, x.address, x.interface])).toEqual(carps[0].map((x) => [x.vhid, x.address, x.interface]));
          for (let g = 0; g < carps[0].length; g++) {
            const skews = carps.map((c) => c[g].advskew);
            expect(skews.filter((s) => s === Math.min(...skews))).toHaveLength(1);
            expect(skews[0]).toBe(0);
          }
          for (const f of fb) parsePf(f!.get('lbc.pf.conf')!, 'freebsd');
        }
        const ob = names.map((n) => filesOf(ir, 'pf-openbsd', n));
        if (ob[0]) {
          const c0 = ob.map((f) => parseHostnameIf(f!.get('hostname.carp0')!, 'carp0').carp!);
          for (const c of c0) expect(c.nodes.map((x) => x.vhid)).toEqual(c0[0].nodes.map((x) => x.vhid));
          for (let k = 0; k < c0[0].nodes.length; k++) {
            const skews = c0.map((c) => c.nodes[k].advskew);
            expect(skews.filter((s) => s === 0)).toHaveLength(1);
          }
          for (const f of ob) parsePf(f!.get('lbc.pf-openbsd.conf')!, 'openbsd');
        }
        // The Linux rulesets compile for every node (or refuse as their capability says).
        for (const t of ['nftables', 'iptables', 'ip6tables']) for (const n of names) filesOf(ir, t, n);
      }),
      { numRuns: 60, seed: 20261202 },
    );
  });
});
