/**
 * The BSD side of the balancer tier, read back with the grammars: seed 002's FreeBSD CARP pair with
 * pfsync (pf, relayd and ipnat targets), the same pair on OpenBSD, and an OpenBSD active-active cluster
 * (carp balancing ip). What must hold across the nodes' files: the same groups (vhids, addresses,
 * interfaces) on every node, one preferred master per group, the key read from the spec's file, pfsync
 * towards the other node, and the pass rules CARP and pfsync need in the node's ruleset.
 */
import { describe, expect, it } from 'vitest';
import { compile, LbcError, parseSpec } from '../../src/index.js';
import type { OutputFile } from '../../src/targets/target.js';
import { parsePf, pfMeaning, type FilterStmt } from '../../grammars/pf/index.js';
import { freebsdTier, parseAssignments, parseHostnameIf, parseSysctlConf, HostConfError } from '../../grammars/hostconf/index.js';
import { parseIpf, parseIpnat, ipfMeaning, ipnatMeaning, filterCoverage } from '../../grammars/ipnat/index.js';
import { buckets, partitionSeed } from '../../src/targets/tier/plan.js';

/** Seed 002: two FreeBSD firewalls, carp0 on em0 for the web vip, carp1 on em1 as the servers' gateway, pfsync on vr0. */
const SEED_002 = `version: 1
balancers:
  mode: failover
  id: 1
  interface: em0
  gateway: { interface: em1, address: 192.168.10.100/24 }
  sync: { interface: vr0 }
  secret-file: /etc/lbc/carp.key
  nodes:
    - { name: master, address: 192.168.1.52, sync-address: 10.10.10.250 }
    - { name: slave, address: 192.168.1.53, sync-address: 10.10.10.251 }
services:
  - name: www
    vip: 192.168.1.51
    port: 80
    interface: em0
    sticky: 5m
    health: { check: tcp, interval: 10s }
    backends: [192.168.10.20, 192.168.10.21, 192.168.10.22, 192.168.10.23, 192.168.10.24]
`;

const ACTIVE = `version: 1
balancers:
  mode: active-active
  id: 20
  interface: em0
  nodes:
    - { name: fw1, address: 192.0.2.2 }
    - { name: fw2, address: 192.0.2.3 }
    - { name: fw3, address: 192.0.2.4 }
services:
  - { name: web, vip: 192.0.2.10, port: 80, interface: em0, backends: [":8080"] }
`;

const file = (files: OutputFile[], name: string) => {
  const f = files.find((x) => x.name === name);
  if (!f) throw new Error(`no ${name} among ${files.map((x) => x.name).join(', ')}`);
  return f.content;
};

/** The tier's pass rules of a pf ruleset, parsed: proto carp / pfsync filter statements. */
function tierRules(text: string, dialect: 'freebsd' | 'openbsd'): FilterStmt[] {
  return parsePf(text, dialect).statements.filter((s): s is FilterStmt => s.kind === 'filter' && (s.proto === 'carp' || s.proto === 'pfsync'));
}

describe('FreeBSD CARP pair (seed 002)', () => {
  const ir = parseSpec(SEED_002, 'seed-002.yaml');
  const nodes = ['master', 'slave'];
  const out = Object.fromEntries(nodes.map((n) => [n, compile(ir, 'pf', { emit: { node: n } }).files]));

  it('writes rc.conf aliases with a vhid per group, the key from the secret file, and pfsync to the peer', () => {
    const tiers = nodes.map((n) => freebsdTier(file(out[n], 'rc.conf')));
    for (const [i, t] of tiers.entries()) {
      expect(t.carp.map((c) => [c.interface, c.alias, c.family, c.vhid, c.address, c.prefixLength])).toEqual([
        ['em0', 0, 'ipv4', 1, '192.168.1.51', 32],
        ['em1', 0, 'ipv4', 2, '192.168.10.100', 32],
      ]);
      for (const c of t.carp) expect(c.pass).toEqual({ kind: 'file', path: '/etc/lbc/carp.key' });
      expect(t.pfsync).toEqual({ enable: true, syncdev: 'vr0', syncpeer: i === 0 ? '10.10.10.251' : '10.10.10.250' });
      expect(t.other).toEqual([]);
    }
    // One preferred master per group: the first node, advskew 0; the other above it.
    expect(tiers.map((t) => t.carp.map((c) => c.advskew))).toEqual([
      [0, 0],
      [100, 100],
    ]);
  });

  it('loads carp with the loader and preempts', () => {
    for (const n of nodes) {
      expect(parseAssignments(file(out[n], 'loader.conf'), 'loader.conf').map((a) => [a.name, a.words])).toEqual([['carp_load', [{ kind: 'text', text: 'YES' }]]]);
      expect(parseSysctlConf(file(out[n], 'sysctl.conf')).map((s) => `${s.name}=${s.value}`)).toEqual(['net.inet.carp.preempt=1']);
    }
  });

  it('passes carp on both carp interfaces and pfsync on the sync link, quick and unsynced, beside the services', () => {
    for (const n of nodes) {
      const text = file(out[n], 'lbc.pf.conf');
      expect(tierRules(text, 'freebsd').map((r) => [r.action, r.quick, r.interface, r.proto, r.keepState])).toEqual([
        ['pass', true, 'em0', 'carp', { options: {}, noSync: true }],
        ['pass', true, 'em1', 'carp', { options: {}, noSync: true }],
        ['pass', true, 'vr0', 'pfsync', { options: {}, noSync: true }],
      ]);
      // The services read exactly as without the tier.
      const plain = compile(parseSpec(SEED_002.replace(/^balancers:[\s\S]*?(?=^services:)/m, ''), 's.yaml'), 'pf').files[0].content;
      expect(pfMeaning(parsePf(text, 'freebsd'))).toEqual(pfMeaning(parsePf(plain, 'freebsd')));
    }
  });

  it("gives each relayd flavour its system's host files and the pass rules in its pf.conf fragment", () => {
    const fb = compile(ir, 'relayd-freebsd', { emit: { node: 'slave' } }).files;
    expect(fb.map((f) => f.name)).toEqual(['relayd.conf', 'pf.conf.relayd', 'rc.conf', 'loader.conf', 'sysctl.conf']);
    expect(freebsdTier(file(fb, 'rc.conf')).carp.map((c) => c.advskew)).toEqual([100, 100]);
    const ob = compile(ir, 'relayd', { emit: { node: 'slave' } }).files;
    expect(ob.map((f) => f.name)).toEqual(['relayd.conf', 'pf.conf.relayd', 'hostname.carp0', 'hostname.carp1', 'hostname.pfsync0', 'sysctl.conf']);
    for (const [files, dialect] of [[ob, 'openbsd'], [fb, 'freebsd']] as const) {
      const block = file(files, 'pf.conf.relayd').split('\n').filter((l) => l.startsWith('pass quick on') && / proto (carp|pfsync) /.test(l)).join('\n');
      expect(tierRules(`${block}\n`, dialect).map((r) => `${r.interface} ${r.proto}`)).toEqual(['em0 carp', 'em1 carp', 'vr0 pfsync']);
    }
  });

  it('gives ipnat the CARP aliases and ipf rules passing carp both ways, and refuses pfsync for IPFilter', () => {
    const noSync = parseSpec(SEED_002.replace('  sync: { interface: vr0 }\n', '').replace(/, sync-address: [\d.]+/g, ''), 's.yaml');
    const files = compile(noSync, 'ipnat', { emit: { node: 'master' } }).files;
    const ipf = parseIpf(file(files, 'ipf.rules'));
    const carp = ipf.rules.filter((r) => r.protocol === 'carp');
    expect(carp.map((r) => `${r.action} ${r.direction} ${r.quick} ${r.interface}`)).toEqual(['pass in true em0', 'pass out true em0', 'pass in true em1', 'pass out true em1']);
    // The service rules still admit exactly what the rdr rules produce.
    const services = { rules: ipf.rules.filter((r) => r.protocol !== 'carp') };
    expect(filterCoverage(ipnatMeaning(parseIpnat(file(files, 'ipnat.rules'))), ipfMeaning(services))).toEqual([]);
    expect(freebsdTier(file(files, 'rc.conf')).carp).toHaveLength(2);
    expect(() => compile(ir, 'ipnat', { emit: { node: 'master' } })).toThrow(/ipnat cannot set up connection-state sync/);
  });
});

describe('OpenBSD CARP pair', () => {
  const ir = parseSpec(SEED_002, 'seed-002.yaml');
  it('writes hostname.carp0 (vips), hostname.carp1 (gateway) and hostname.pfsync0 as netstart reads them', () => {
    for (const [i, n] of ['master', 'slave'].entries()) {
      const files = compile(ir, 'pf-openbsd', { emit: { node: n } }).files;
      const c0 = parseHostnameIf(file(files, 'hostname.carp0'), 'carp0');
      const c1 = parseHostnameIf(file(files, 'hostname.carp1'), 'carp1');
      const ps = parseHostnameIf(file(files, 'hostname.pfsync0'), 'pfsync0');
      expect(c0.carp).toMatchObject({ carpdev: 'em0', nodes: [{ vhid: 1, advskew: i === 0 ? 0 : 100 }], addresses: [{ family: 'ipv4', address: '192.168.1.51', prefixLength: 32 }], pass: { kind: 'file', path: '/etc/lbc/carp.key' } });
      expect(c1.carp).toMatchObject({ carpdev: 'em1', nodes: [{ vhid: 2, advskew: i === 0 ? 0 : 100 }], addresses: [{ address: '192.168.10.100', prefixLength: 24 }] });
      expect(c0.commands[0]).toEqual(['ifconfig', 'carp0', 'inet', '192.168.1.51', 'netmask', '255.255.255.255', 'carpdev', 'em0', 'vhid', '1', 'advskew', String(i === 0 ? 0 : 100)]);
      expect(ps.pfsync).toEqual({ syncdev: 'vr0', syncpeer: i === 0 ? '10.10.10.251' : '10.10.10.250', up: true });
      expect(tierRules(file(files, 'lbc.pf-openbsd.conf'), 'openbsd')).toHaveLength(3);
    }
  });
});

describe('OpenBSD active-active (carp balancing ip)', () => {
  const ir = parseSpec(ACTIVE, 'aa.yaml');
  const tier = ir.balancers!;
  const carps = tier.nodes.map((n) => parseHostnameIf(file(compile(ir, 'pf-openbsd', { emit: { node: n.name } }).files, 'hostname.carp0'), 'carp0').carp!);

  it('gives every node the same carpnodes, one per bucket, each with exactly one owner', () => {
    const vhids = carps.map((c) => c.nodes.map((x) => x.vhid));
    for (const v of vhids) expect(v).toEqual(buckets(tier).map((b) => b.vrid));
    for (const b of buckets(tier)) {
      const skews = carps.map((c) => c.nodes.find((x) => x.vhid === b.vrid)!.advskew);
      expect(skews[b.owner], `owner of bucket ${b.index}`).toBe(0);
      expect(skews[b.fallback]).toBe(100);
      expect([...skews].sort((x, y) => x - y)).toEqual([0, 100, 200]);
    }
    for (const c of carps) expect(c).toMatchObject({ carpdev: 'em0', balancing: 'ip', addresses: [{ address: '192.0.2.10', prefixLength: 32 }], pass: null });
  });

  it('refuses active-active on FreeBSD (pf, pf-freebsd15, relayd-freebsd), with the alternative, and past 32 carpnodes', () => {
    for (const target of ['pf', 'pf-freebsd15', 'relayd-freebsd']) {
      try {
        compile(ir, target, { emit: { node: 'fw1' } });
        expect.unreachable();
      } catch (e) {
        const d = (e as LbcError).diagnostics[0];
        expect(d.message).toMatch(/cannot set up an active-active cluster of nodes.*FreeBSD's CARP has no load balancing since FreeBSD 10/);
        expect(d.notes).toEqual([expect.stringContaining('--target pf-openbsd')]);
        expect(d.location).toEqual({ file: 'aa.yaml', line: 3, column: 9 });
      }
    }
    const seven = parseSpec(ACTIVE.replace('    - { name: fw3, address: 192.0.2.4 }\n', [3, 4, 5, 6, 7].map((i) => `    - { name: fw${i}, address: 192.0.2.${i + 1} }\n`).join('')));
    expect(() => compile(seven, 'pf-openbsd', { emit: { node: 'fw1' } })).toThrow(/7 nodes need 42 carpnodes/);
    void partitionSeed;
  });
});

describe('CARP timing', () => {
  it('refuses advertisements finer than whole seconds on every BSD target, with keepalived as the alternative', () => {
    const fast = parseSpec(SEED_002.replace('  id: 1\n', '  id: 1\n  advert: 100ms\n'));
    for (const target of ['pf', 'pf-openbsd', 'relayd']) {
      expect(() => compile(fast, target, { emit: { node: 'master' } }), target).toThrow(/advertisement intervals that are not whole seconds: CARP advertises every advbase seconds/);
    }
    const slow = compile(parseSpec(SEED_002.replace('  id: 1\n', '  id: 1\n  advert: 3s\n')), 'pf', { emit: { node: 'slave' } }).files;
    expect(freebsdTier(file(slow, 'rc.conf')).carp.map((c) => c.advbase)).toEqual([3, 3]);
  });
});

describe('host file grammars', () => {
  it('reject what FreeBSD or OpenBSD would not read as meant', () => {
    expect(() => freebsdTier('ifconfig_em0_alias0="inet advskew 100 vhid 1 alias 192.0.2.1/32"\n')).toThrow(/advskew requires vhid/);
    expect(() => freebsdTier('ifconfig_em0_alias1="inet vhid 1 alias 192.0.2.1/32"\n')).toThrow(/without gaps/);
    expect(() => freebsdTier('ifconfig_em0_alias0="inet vhid 1 pass `id` alias 192.0.2.1/32"\n')).toThrow(HostConfError);
    expect(() => freebsdTier('ifconfig_em0_alias0="inet vhid 256 alias 192.0.2.1/32"\n')).toThrow(/vhid must be a number from 1 to 255/);
    expect(() => parseHostnameIf('inet 192.0.2.1 255.255.255.255 NONE vhid 1\n', 'carp0')).toThrow(/carpdev is mandatory/);
    expect(() => parseHostnameIf('inet 192.0.2.1 255.255.255.255 NONE carpdev em0 vhid 1 balancing ip\n', 'carp0')).toThrow(/balancing needs carpnodes/);
    expect(() => parseHostnameIf('inet 192.0.2.1 255.255.255.255 NONE carpdev em0 carpnodes 1:0,1:100\n', 'carp0')).toThrow(/vhid appears twice/);
    expect(() => parseHostnameIf('!rm -rf /\ninet 192.0.2.1 255.255.255.255 NONE carpdev em0 vhid 1\n', 'carp0')).toThrow(/not modelled/);
  });
});
