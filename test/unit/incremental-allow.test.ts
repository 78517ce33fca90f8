// Incremental apply of allow lists (nftables, iptables): a changed list is loaded as element changes of its
// set, in the batch that checks lbc's marker, without touching any chain (so rotations and sticky
// clients stay); a new service's set arrives with its elements.
import { describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/index.js';
import { compileForTarget } from '../../src/targets/target.js';
import { nftablesTarget } from '../../src/targets/nftables/index.js';
import { nftChanges, nftPlan, parseNftRuleset } from '../../src/targets/nftables/incremental.js';
import { iptablesTarget } from '../../src/targets/iptables/index.js';
import { iptChanges, iptPlan } from '../../src/targets/iptables/incremental.js';

const spec = (allow: string, extra = '') =>
  parseSpec(`version: 1\nservices:\n  - { name: web, vip: 10.0.0.1, port: 80, sticky: 10m, allow: [${allow}], backends: [10.1.0.1, 10.1.0.2] }\n${extra}`, 's.yaml');
const text = (s: ReturnType<typeof spec>) => compileForTarget(nftablesTarget, s).files[0].content;

describe('nftables incremental apply with allow lists', () => {
  it('reads the allow set with its elements', () => {
    const m = parseNftRuleset(text(spec('10.9.0.0/16, 192.0.2.7')))!;
    expect(m.sets.get('allow_web')).toMatchObject({ def: ['type ipv4_addr', 'flags interval'], elements: ['10.9.0.0/16', '192.0.2.7'] });
  });

  it('a changed list is element deletes and adds of its set, and nothing else', () => {
    const before = text(spec('10.9.0.0/16, 192.0.2.7, 198.51.100.0/24'));
    const after = text(spec('10.9.0.0/16, 192.0.2.8, 198.51.100.0/24, 203.0.113.0/24'));
    const c = nftChanges(before, after)!;
    const plan = nftPlan(c.old, c.next, 'a'.repeat(64))!;
    const body = plan.script.trim().split('\n').slice(1, -1);
    expect(body).toEqual(['delete element inet lbc allow_web { 192.0.2.7 }', 'add element inet lbc allow_web { 192.0.2.8, 203.0.113.0/24 }']);
    expect(plan.chains).toEqual([]);
    expect(plan.sets).toEqual([]);
  });

  it('a new service brings its set with its elements, before the chain that names it', () => {
    const before = text(spec('10.9.0.0/16'));
    const after = text(spec('10.9.0.0/16', '  - { name: api, vip: 10.0.0.2, port: 443, allow: [198.51.100.0/24], backends: [10.1.0.3] }\n'));
    const c = nftChanges(before, after)!;
    const lines = nftPlan(c.old, c.next, 'a'.repeat(64))!.script.split('\n');
    const set = lines.indexOf('add set inet lbc allow_api { type ipv4_addr; flags interval; }');
    expect(set).toBeGreaterThan(0);
    expect(lines[set + 1]).toBe('add element inet lbc allow_api { 198.51.100.0/24 }');
    expect(lines.findIndex((l) => l.startsWith('add rule inet lbc svc_api ip saddr != @allow_api drop'))).toBeGreaterThan(set);
  });
});

describe('iptables incremental apply with allow lists', () => {
  const files = (s: ReturnType<typeof spec>) => Object.fromEntries(compileForTarget(iptablesTarget, s).files.map((f) => [f.name, f.content]));

  it('a changed list is its fill-and-swap block alone: no chain changes', () => {
    const a = files(spec('10.9.0.0/16, 192.0.2.7'));
    const b = files(spec('10.9.0.0/16, 192.0.2.8'));
    const c = iptChanges(a['iptables.rules'], a['ipset.rules'], b['iptables.rules'], b['ipset.rules'])!;
    const plan = iptPlan(c.old, c.next, 'a'.repeat(64))!;
    expect(plan.chains).toEqual([]);
    expect(plan.destroySets).toEqual([]);
    expect(plan.createSets!.trim().split('\n')).toEqual([
      'create LBC4-A-web hash:net family inet maxelem 65536',
      'create LBC4-N-web hash:net family inet maxelem 65536',
      'flush LBC4-N-web',
      'add LBC4-N-web 10.9.0.0/16',
      'add LBC4-N-web 192.0.2.8/32',
      'swap LBC4-N-web LBC4-A-web',
      'destroy LBC4-N-web',
    ]);
    expect(plan.empty).toBe(false);
  });

  it('the same list is no change at all; a service leaving takes its allow set with it', () => {
    const a = files(spec('10.9.0.0/16', '  - { name: api, vip: 10.0.0.2, port: 443, allow: [198.51.100.0/24], backends: [10.1.0.3] }\n'));
    const same = iptChanges(a['iptables.rules'], a['ipset.rules'], a['iptables.rules'], a['ipset.rules'])!;
    expect(iptPlan(same.old, same.next, 'a'.repeat(64))!.empty).toBe(true);
    const b = files(spec('10.9.0.0/16'));
    const c = iptChanges(a['iptables.rules'], a['ipset.rules'], b['iptables.rules'], b['ipset.rules'])!;
    const plan = iptPlan(c.old, c.next, 'a'.repeat(64))!;
    expect(plan.destroySets).toEqual(['LBC4-A-api']);
    expect(plan.chains).toEqual(expect.arrayContaining(['mangle LBC-A-api', 'nat LBC-S-api']));
  });
});
