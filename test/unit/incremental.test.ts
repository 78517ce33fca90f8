// The diffing behind incremental apply: emitted files read back into objects, and the partial
// transactions (nft -f batch, iptables-restore --noflush input) computed from a recorded state.
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { IR } from '../../src/ir/types.js';
import { compileForTarget, type TargetDefinition } from '../../src/targets/target.js';
import { nftablesTarget } from '../../src/targets/nftables/index.js';
import { iptablesTarget } from '../../src/targets/iptables/index.js';
import { markerChain as nftMarker, nftChanges, nftPlan, parseNftRuleset, planFromState } from '../../src/targets/nftables/incremental.js';
import { fullMarker, readTextState, stageTextState, STATE_VERSION } from '../../src/targets/applied-state.js';
import { differingLines } from '../../src/targets/text-diff.js';
import { iptChanges, iptPlan, markerChain as iptMarker, parseIptables } from '../../src/targets/iptables/incremental.js';
import { withMarker } from '../../src/targets/iptables/apply.js';
import { ir, type SvcInput } from './iptables-ir.js';

const web = (name: string, i: number, first = '10.1.0.10'): SvcInput => ({
  name,
  vip: `10.0.0.${i}`,
  port: 80,
  backends: [{ address: first, port: 8080 }, { address: '10.1.0.11', port: 8080 }, { address: '10.1.0.12', port: 8080 }],
});
const sticky = (name: string, i: number, timeout: number): SvcInput => ({ ...web(name, i), mode: 'random', sticky: timeout });

function files(target: TargetDefinition, spec: IR): Map<string, string> {
  const r = compileForTarget(target, spec);
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return new Map(r.files.map((f) => [f.name, f.content]));
}

const nftText = (spec: IR) => files(nftablesTarget, spec).get('nftables.nft')!;

/** Plan of going from spec a to spec b, as apply would compute it. */
function nftDiff(a: IR, b: IR) {
  const ta = nftText(a);
  const tb = nftText(b);
  const oldHash = fullMarker([ta]);
  const plan = planFromState({ version: STATE_VERSION, target: 'nftables', marker: oldHash, texts: [ta] }, tb);
  // The same plan from the complete models of both texts: reading only what differs loses nothing.
  const whole = nftPlan(parseNftRuleset(ta)!, parseNftRuleset(tb)!, oldHash);
  expect(plan).toEqual(whole);
  return { plan, oldHash, newHash: plan?.marker, old: parseNftRuleset(ta)!, next: parseNftRuleset(tb)!, ta, tb };
}

/** Object names a batch statement touches ("flush chain inet lbc X" -> "flush chain X"). */
const statements = (script: string) =>
  script
    .trim()
    .split('\n')
    .map((l) => l.replace(/^((?:add|delete|flush) (?:chain|rule|set|map|element)) inet lbc (\S+).*$/, '$1 $2'));

describe('the differing lines of two texts', () => {
  it('leave nothing between the equal start and end of equal texts', () => {
    for (const t of ['', 'abc', 'abc\n', 'a\nb', 'a\nb\n', '\n\n']) {
      const { head, tail } = differingLines(t, t);
      expect(head + tail, JSON.stringify(t)).toBe(t.length);
    }
  });

  it('are whole lines, with equal text before and after them, for any pair of texts', () => {
    // A fresh seed each run, printed so that a failure can be replayed with LBC_PROPERTY_SEED.
    const seed = Number(process.env.LBC_PROPERTY_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`differingLines property: seed ${seed} (LBC_PROPERTY_SEED=${seed} replays it)`);
    const line = fc.constantFrom('a', 'b', 'ab', '', 'x'.repeat(5000), 'a\u00e9');
    const text = fc.tuple(fc.array(line, { maxLength: 30 }), fc.boolean()).map(([ls, nl]) => ls.join('\n') + (nl ? '\n' : ''));
    fc.assert(
      fc.property(text, text, (a, b) => {
        const { head, tail } = differingLines(a, b);
        expect(a.slice(0, head)).toBe(b.slice(0, head));
        expect(a.slice(a.length - tail)).toBe(b.slice(b.length - tail));
        expect(head + tail).toBeLessThanOrEqual(Math.min(a.length, b.length));
        for (const s of [a, b]) {
          expect(head === 0 || s[head - 1] === '\n').toBe(true);
          expect(tail === 0 || tail === s.length || s[s.length - tail - 1] === '\n').toBe(true);
        }
        // Equal texts: nothing is left between the equal start and end.
        if (a === b) expect(head + tail).toBe(a.length);
      }),
      { numRuns: 1000, seed },
    );
  });
});

describe('the state file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lbc-state-'));
  it('gives back the texts it was given, ASCII or not, and nothing for a file it did not write', async () => {
    try {
      const file = join(dir, 'x.state');
      for (const texts of [['rules\n', ''], ['caf\u00e9 \u2603\n', 'sets\n'], ['']]) {
        await stageTextState(file, { version: STATE_VERSION, target: 'x', marker: 'c'.repeat(64), texts }, () => {}).commit();
        expect(readTextState(file, 'x')).toEqual({ version: STATE_VERSION, target: 'x', marker: 'c'.repeat(64), texts });
        expect(readTextState(file, 'y')).toBeNull();
      }
      writeFileSync(file, '{"version":2,"target":"x","marker":"' + 'c'.repeat(64) + '","lengths":[5],"ascii":true}\nabc');
      expect(readTextState(file, 'x')).toBeNull();
      writeFileSync(file, 'garbage');
      expect(readTextState(file, 'x')).toBeNull();
      expect(readTextState(join(dir, 'none.state'), 'x')).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('nftables: reading the emitted ruleset', () => {
  it('finds every set, map (with its elements) and chain the emitter writes', () => {
    const m = parseNftRuleset(
      nftText(ir(web('a', 1), sticky('b', 2, 60), { ...web('c', 3), vip: '10.9.0.0/24' }, { ...web('d', 4), local: true })),
    )!;
    expect([...m.sets.keys()]).toEqual(['aff_b_0', 'aff_b_1', 'aff_b_2']);
    expect(m.sets.get('aff_b_0')!.def).toContain('timeout 60s');
    expect([...m.maps.keys()]).toEqual(['pre4_host', 'pre4_cidr', 'out4_host']);
    expect(m.maps.get('pre4_cidr')!.def).toEqual(['type ipv4_addr . inet_proto . inet_service : verdict', 'flags interval']);
    expect([...m.maps.get('pre4_host')!.elements]).toEqual([
      ['10.0.0.1 . tcp . 80', 'goto svc_a'],
      ['10.0.0.2 . tcp . 80', 'goto svc_b'],
      ['10.0.0.4 . tcp . 80', 'goto svc_d'],
    ]);
    expect([...m.chains.keys()]).toEqual(['svc_a', 'svc_b', 'svc_c', 'svc_d', 'prerouting', 'output']);
    expect(m.chains.get('prerouting')!.def).toBe('type nat hook prerouting priority -100; policy accept;');
    expect(m.chains.get('svc_a')!.def).toBeNull();
    expect(m.chains.get('svc_a')!.rules).toHaveLength(3);
  });

  it('refuses text it does not know, so apply loads such a file whole', () => {
    const good = nftText(ir(web('a', 1)));
    expect(parseNftRuleset(good)).not.toBeNull();
    expect(parseNftRuleset('flush ruleset\n')).toBeNull();
    expect(parseNftRuleset(`${good}table ip other {\n}\n`)).toBeNull();
    expect(parseNftRuleset(good.replace('\tchain svc_a {', '\tflowtable svc_a {'))).toBeNull();
    expect(parseNftRuleset(good.replace('\tchain svc_a {', '\tchain loaded_x {'))).toBeNull();
  });
});

describe('nftables: the partial transaction', () => {
  it('one changed backend: the old marker is deleted first, one chain is refilled, the new marker added', () => {
    const { plan, oldHash, newHash } = nftDiff(ir(web('a', 1), web('b', 2), web('c', 3)), ir(web('a', 1), web('b', 2, '10.1.0.99'), web('c', 3)));
    expect(plan).not.toBeNull();
    const lines = plan!.script.trim().split('\n');
    expect(lines[0]).toBe(`delete chain inet lbc ${nftMarker(oldHash)}`);
    expect(lines.at(-1)).toMatch(new RegExp(`^add chain inet lbc ${nftMarker(newHash)} \\{ comment ".*"; \\}$`));
    expect(lines.slice(1, -1)).toEqual([
      'flush chain inet lbc svc_b',
      'add rule inet lbc svc_b numgen inc mod 3 0 meta l4proto tcp dnat ip to 10.1.0.99:8080',
      'add rule inet lbc svc_b numgen inc mod 2 0 meta l4proto tcp dnat ip to 10.1.0.11:8080',
      'add rule inet lbc svc_b meta l4proto tcp dnat ip to 10.1.0.12:8080',
    ]);
    expect(plan!.chains).toEqual(['svc_b']);
    expect(plan!.elements).toEqual([]);
    expect(plan!.empty).toBe(false);
  });

  it('nothing changed: only the marker is checked (deleted and added again)', () => {
    const spec = ir(web('a', 1), web('b', 2));
    const { plan, oldHash } = nftDiff(spec, spec);
    expect(plan!.empty).toBe(true);
    expect(statements(plan!.script)).toEqual([`delete chain ${nftMarker(oldHash)}`, `add chain ${nftMarker(oldHash)}`]);
  });

  it('a new service: its chain is created before the map element that leads to it', () => {
    const { plan } = nftDiff(ir(web('a', 1)), ir(web('a', 1), web('b', 2)));
    const s = statements(plan!.script).slice(1, -1);
    expect(s).toEqual(['add chain svc_b', 'add rule svc_b', 'add rule svc_b', 'add rule svc_b', 'add element pre4_host']);
    expect(plan!.script).toContain('add element inet lbc pre4_host { 10.0.0.2 . tcp . 80 : goto svc_b }');
    expect(plan!.elements).toEqual([{ map: 'pre4_host', key: '10.0.0.2 . tcp . 80', op: 'add' }]);
  });

  it('a removed sticky service: element deleted, chain flushed, its sets deleted, then the chain', () => {
    const { plan } = nftDiff(ir(web('a', 1), sticky('b', 2, 60)), ir(web('a', 1)));
    const s = statements(plan!.script).slice(1, -1);
    expect(s).toEqual([
      'flush chain svc_b',
      'delete element pre4_host',
      'delete set aff_b_0',
      'delete set aff_b_1',
      'delete set aff_b_2',
      'delete chain svc_b',
    ]);
    expect(plan!.script).toContain('delete element inet lbc pre4_host { 10.0.0.2 . tcp . 80 }');
  });

  it('a changed vip: the old element is deleted and the new one added', () => {
    const { plan } = nftDiff(ir(web('a', 1), web('b', 2)), ir(web('a', 1), web('b', 7)));
    expect(plan!.script).toContain('delete element inet lbc pre4_host { 10.0.0.2 . tcp . 80 }');
    expect(plan!.script).toContain('add element inet lbc pre4_host { 10.0.0.7 . tcp . 80 : goto svc_b }');
    expect(plan!.chains).toEqual([]);
  });

  it('a changed sticky timeout: the sets are recreated, so the chain naming them is flushed first and refilled after', () => {
    const { plan } = nftDiff(ir(sticky('b', 2, 60)), ir(sticky('b', 2, 90)));
    const s = statements(plan!.script).slice(1, -1);
    // The chain's rules are the same text; it is refilled only because a set in use cannot be deleted.
    expect(s.indexOf('flush chain svc_b')).toBeLessThan(s.indexOf('delete set aff_b_0'));
    expect(s.indexOf('add set aff_b_0')).toBeLessThan(s.indexOf('add rule svc_b'));
    expect(plan!.script).toContain('add set inet lbc aff_b_0 { type ipv4_addr; flags dynamic,timeout; timeout 90s; size 65536; }');
    expect(plan!.sets).toEqual(['aff_b_0', 'aff_b_1', 'aff_b_2']);
  });

  it('a first CIDR service: a new map, and the base chain that looks it up is refilled', () => {
    const { plan } = nftDiff(ir(web('a', 1)), ir(web('a', 1), { ...web('c', 3), vip: '10.9.0.0/24' }));
    const s = statements(plan!.script).slice(1, -1);
    expect(s[0]).toBe('add map pre4_cidr');
    expect(plan!.script).toContain('add map inet lbc pre4_cidr { type ipv4_addr . inet_proto . inet_service : verdict; flags interval; }');
    expect(s).toContain('flush chain prerouting');
    expect(s.indexOf('add element pre4_cidr')).toBeGreaterThan(s.indexOf('add chain svc_c'));
  });

  it('a first local service: a new base chain with its hook', () => {
    const { plan } = nftDiff(ir(web('a', 1)), ir({ ...web('a', 1), local: true }));
    expect(plan!.script).toContain('add chain inet lbc output { type nat hook output priority -100; policy accept; }');
    expect(plan!.script).toContain('add rule inet lbc output ip daddr . meta l4proto . th dport vmap @out4_host');
  });

  it('shared selection maps: a backend change replaces only that service\'s elements, new weights move it to another map', () => {
    const rnd = (name: string, i: number, first = '10.1.0.10', weights = [1, 1, 1]): SvcInput => ({
      ...web(name, i, first),
      mode: 'random',
      backends: web(name, i, first).backends.map((b, k) => ({ ...b, weight: weights[k] })),
    });
    const moved = nftDiff(ir(rnd('a', 1), rnd('b', 2)), ir(rnd('a', 1), rnd('b', 2, '10.1.0.99')));
    expect(moved.plan!.chains).toEqual([]);
    expect(moved.plan!.elements).toEqual([{ map: 'pre4_rnd_3', key: '10.0.0.2 . tcp . 80 . 0', op: 'replace' }]);
    expect(statements(moved.plan!.script).slice(1, -1)).toEqual(['delete element pre4_rnd_3', 'add element pre4_rnd_3']);
    expect(moved.plan!.script).toContain('delete element inet lbc pre4_rnd_3 { 10.0.0.2 . tcp . 80 . 0 }');
    expect(moved.plan!.script).toContain('add element inet lbc pre4_rnd_3 { 10.0.0.2 . tcp . 80 . 0 : 10.1.0.99 . 8080 }');

    // 1:1:1 -> 1:1:2: service b leaves the W = 3 map for a new W = 4 map (and its rule).
    const reweighted = nftDiff(ir(rnd('a', 1), rnd('b', 2)), ir(rnd('a', 1), rnd('b', 2, '10.1.0.10', [1, 1, 2])));
    const ops = reweighted.plan!.elements.map((e) => `${e.op} ${e.map} ${e.key.split(' . ').at(-1)}`);
    expect(ops.sort()).toEqual(['add pre4_rnd_4 0', 'add pre4_rnd_4 1', 'add pre4_rnd_4 2', 'add pre4_rnd_4 3', 'delete pre4_rnd_3 0', 'delete pre4_rnd_3 1', 'delete pre4_rnd_3 2']);
    expect(statements(reweighted.plan!.script).slice(1, -1)).toEqual([
      'add map pre4_rnd_4',
      'flush chain prerouting',
      'delete element pre4_rnd_3',
      'add rule prerouting',
      'add rule prerouting',
      'add element pre4_rnd_4',
    ]);
  });

  it('a service moving from its chain into a shared map: dispatch element deleted, elements added, chain deleted last', () => {
    // 1:16 (W = 17) is over the slot cap, 1:15 is not.
    const odd: SvcInput = { ...web('b', 2), mode: 'random', backends: [{ address: '10.1.0.10', weight: 1 }, { address: '10.1.0.11', weight: 16 }] };
    const even: SvcInput = { ...odd, backends: [{ address: '10.1.0.10', weight: 1 }, { address: '10.1.0.11', weight: 15 }] };
    const { plan } = nftDiff(ir(web('a', 1), odd), ir(web('a', 1), even));
    expect(statements(plan!.script).slice(1, -1)).toEqual([
      'add map pre4_rnd_16',
      'flush chain prerouting',
      'flush chain svc_b',
      'delete element pre4_host',
      'add rule prerouting',
      'add rule prerouting',
      'add element pre4_rnd_16',
      'delete chain svc_b',
    ]);
  });

  it('differences only a full load makes give no plan', () => {
    const { old, next } = nftDiff(ir(web('a', 1)), ir(web('a', 1)));
    const { ta } = nftDiff(ir(web('a', 1)), ir(web('a', 1)));
    const hooked = (hook: string) => ta.replace('type nat hook prerouting priority', `type nat hook ${hook} priority`);
    expect(planFromState({ version: STATE_VERSION, target: 'nftables', marker: 'x', texts: [ta] }, hooked('output'))).toBeNull();
    expect(nftPlan(old, { ...next, maps: new Map([['pre4_host', { ...next.maps.get('pre4_host')!, def: ['type other'] }]]) }, 'x')).toBeNull();
    // A block that became another kind of block, and text in another layout.
    expect(nftChanges(ta, ta.replace('\tchain svc_a {', '\tset svc_a {'))).toBeNull();
    expect(nftChanges(ta, 'flush ruleset\n')).toBeNull();
  });
});

describe('nftables: only the changed lines of a large map are read', () => {
  /** A ruleset in the emitter's layout with one map (and a chain after it), elements in the given order. */
  const rulesetText = (els: Array<[string, string]>) =>
    [
      '# header',
      'table inet lbc {',
      '\t# a comment before the map',
      '\tmap m {',
      '\t\ttypeof ip daddr . th dport . numgen random mod 4 : ip daddr . th dport',
      '\t\telements = {',
      ...els.map(([k, v]) => `\t\t\t${k} : ${v},`),
      '\t\t}',
      '\t}',
      '',
      '\tchain prerouting {',
      '\t\ttype nat hook prerouting priority -100; policy accept;',
      '\t}',
      '}',
      '',
    ].join('\n');
  const key = (i: number) => `10.96.${i >> 8}.${i & 255} . 80 . ${i % 4}`;
  const verdict = (v: number) => `10.64.0.${v} . 8080`;

  it('the elements the plan deletes, replaces and adds turn the old map into the new one, with no add of a present key', () => {
    const edits = fc.array(
      fc.oneof(
        fc.record({ op: fc.constant('set' as const), i: fc.nat(299), v: fc.nat(9) }),
        fc.record({ op: fc.constant('del' as const), i: fc.nat(299), v: fc.constant(0) }),
      ),
      { maxLength: 12 },
    );
    fc.assert(
      fc.property(fc.uniqueArray(fc.nat(299), { minLength: 0, maxLength: 200 }), fc.nat(9), edits, (keys, v0, changes) => {
        const before = new Map(keys.sort((a, b) => a - b).map((i) => [key(i), verdict(v0)]));
        const after = new Map(before);
        for (const c of changes) {
          if (c.op === 'del') after.delete(key(c.i));
          else after.set(key(c.i), verdict(c.v));
        }
        const ordered = (m: Map<string, string>) => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        const [ta, tb] = [rulesetText(ordered(before)), rulesetText(ordered(after))];
        const plan = planFromState({ version: STATE_VERSION, target: 'nftables', marker: 'm0', texts: [ta] }, tb)!;
        expect(plan).not.toBeNull();
        const kernel = new Map(before);
        for (const e of plan.elements) {
          expect(e.map).toBe('m');
          // nft refuses to add a key that exists (EEXIST) and to delete one that does not (ENOENT).
          if (e.op === 'add') expect(kernel.has(e.key)).toBe(false);
          else expect(kernel.has(e.key)).toBe(true);
          if (e.op === 'delete') kernel.delete(e.key);
          else kernel.set(e.key, after.get(e.key)!);
        }
        expect(ordered(kernel)).toEqual(ordered(after));
        expect(plan.empty).toBe(ta === tb);
        expect(plan.chains).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });

  it('one changed element among 80,000 gives a plan of that element alone', () => {
    const els: Array<[string, string]> = Array.from({ length: 80_000 }, (_, i) => [key(i), verdict(i % 8)]);
    const changed = els.map(([k, v], i): [string, string] => [k, i === 41_234 ? verdict(99) : v]);
    const plan = planFromState({ version: STATE_VERSION, target: 'nftables', marker: 'm0', texts: [rulesetText(els)] }, rulesetText(changed))!;
    expect(plan.elements).toEqual([{ map: 'm', key: key(41_234), op: 'replace' }]);
    expect(plan.script).toContain(`add element inet lbc m { ${key(41_234)} : ${verdict(99)} }`);
  });
});

describe('iptables: the partial restore', () => {
  const ipt = (spec: IR) => {
    const f = files(iptablesTarget, spec);
    const rules = f.get('iptables.rules')!;
    const sets = f.get('ipset.rules') ?? null;
    return { rules, sets, hash: fullMarker([rules, sets ?? '']), model: parseIptables(rules, sets)! };
  };
  const diff = (a: IR, b: IR) => {
    const x = ipt(a);
    const y = ipt(b);
    // What apply computes (only the chains the differing lines name), and the same from the whole texts.
    const changes = iptChanges(x.rules, x.sets, y.rules, y.sets);
    const plan = changes && iptPlan(changes.old, changes.next, x.hash);
    expect(plan).toEqual(iptPlan(x.model, y.model, x.hash));
    return { plan, x, y };
  };

  it('reading only the chains the differing lines name gives the plan the whole texts give (dispatch tree, random edits)', () => {
    const edit = fc.record({ svc: fc.nat(99), kind: fc.constantFrom('backend', 'remove', 'add', 'sticky') });
    fc.assert(
      fc.property(fc.array(edit, { maxLength: 4 }), (edits) => {
        // 100 services: past 64 the dispatch tree with services inline in its leaves.
        const base = Array.from({ length: 100 }, (_, i) => web(`s${i}`, i + 1));
        let next = [...base];
        for (const e of edits) {
          if (e.kind === 'backend') next = next.map((x) => (x.name === `s${e.svc}` ? web(x.name, e.svc + 1, `10.1.9.${e.svc}`) : x));
          if (e.kind === 'remove') next = next.filter((x) => x.name !== `s${e.svc}`);
          if (e.kind === 'add' && !next.some((x) => x.name === `n${e.svc}`)) next.push(web(`n${e.svc}`, 150 + e.svc));
          if (e.kind === 'sticky') next = next.map((x) => (x.name === `s${e.svc}` ? sticky(x.name, e.svc + 1, 60) : x));
        }
        const { plan } = diff(ir(...base), ir(...next));
        expect(plan).not.toBeNull();
        expect(plan!.empty).toBe(edits.length === 0);
      }),
      { numRuns: 40 },
    );
  });

  it('reads the emitted chains, their rules and the sets', () => {
    const { model } = ipt(ir(web('a', 1), sticky('b', 2, 60)));
    expect([...model.tables.keys()]).toEqual(['nat']);
    expect([...model.tables.get('nat')!.keys()]).toEqual(['LBC-PREROUTING', 'LBC-S-a', 'LBC-S-b', 'LBC-B-b-0', 'LBC-B-b-1', 'LBC-B-b-2']);
    expect(model.tables.get('nat')!.get('LBC-S-a')!.rules).toHaveLength(3);
    expect([...model.sets.keys()]).toEqual(['LBC4-b-0', 'LBC4-b-1', 'LBC4-b-2']);
    expect(parseIptables('*nat\n:FOREIGN - [0:0]\nCOMMIT\n', null)).toBeNull();
    expect(parseIptables('*nat\n-A LBC-X -j ACCEPT\nCOMMIT\n', null)).toBeNull();
  });

  it('one changed backend: only that service chain is declared; nat first with the marker swap', () => {
    const { plan, x, y } = diff(ir(web('a', 1), web('b', 2), web('c', 3)), ir(web('a', 1), web('b', 2, '10.1.0.99'), web('c', 3)));
    expect(plan!.chains).toEqual(['nat LBC-S-b']);
    const lines = plan!.restore.trim().split('\n');
    expect(lines[0]).toBe('*nat');
    // The next marker follows from the recorded one and the change (no digest of the whole text).
    expect(plan!.marker).not.toBe(x.hash);
    expect(lines[1]).toBe(`:${iptMarker(plan!.marker)} - [0:0]`);
    expect(lines[2]).toBe(':LBC-S-b - [0:0]');
    expect(lines.filter((l) => l.startsWith('-A '))).toEqual(y.model.tables.get('nat')!.get('LBC-S-b')!.rules);
    expect(lines.at(-2)).toBe(`-X ${iptMarker(x.hash)}`);
    expect(lines.at(-1)).toBe('COMMIT');
    expect(plan!.createSets).toBeNull();
    expect(plan!.destroySets).toEqual([]);
    expect(iptMarker(x.hash)).toHaveLength(28);
  });

  it('a removed sticky service: its chains are flushed and deleted, its sets destroyed afterwards', () => {
    const { plan } = diff(ir(web('a', 1), sticky('b', 2, 60)), ir(web('a', 1)));
    expect(plan!.chains).toEqual(['nat LBC-PREROUTING', 'nat LBC-S-b', 'nat LBC-B-b-0', 'nat LBC-B-b-1', 'nat LBC-B-b-2']);
    expect(plan!.restore).toMatch(/:LBC-S-b - \[0:0\][\s\S]*-X LBC-S-b\n/);
    expect(plan!.destroySets).toEqual(['LBC4-b-0', 'LBC4-b-1', 'LBC4-b-2']);
  });

  it('a new sticky service: its sets are created (ipset restore -exist input)', () => {
    const { plan } = diff(ir(web('a', 1)), ir(web('a', 1), sticky('b', 2, 60)));
    expect(plan!.createSets).toBe(['create LBC4-b-0 hash:ip family inet timeout 60', 'create LBC4-b-1 hash:ip family inet timeout 60', 'create LBC4-b-2 hash:ip family inet timeout 60'].join('\n') + '\n');
    expect(plan!.chains).toContain('nat LBC-PREROUTING');
    expect(plan!.chains).toContain('nat LBC-B-b-0');
  });

  it('changes that add or remove an entry chain, or change a set, give no plan', () => {
    expect(diff(ir(web('a', 1)), ir({ ...web('a', 1), local: true })).plan).toBeNull();
    expect(diff(ir(web('a', 1)), ir({ ...web('a', 1), mode: 'hash' })).plan).toBeNull();
    expect(diff(ir(sticky('b', 2, 60)), ir(sticky('b', 2, 90))).plan).toBeNull();
  });

  it('the restore checks the entry jumps with -C, in their tables, so a missing one fails the partial load', () => {
    const x = ipt(ir(web('a', 1), web('b', 2)));
    const y = ipt(ir(web('a', 1), web('b', 2, '10.1.0.99')));
    const changes = iptChanges(x.rules, x.sets, y.rules, y.sets)!;
    const plan = iptPlan(changes.old, changes.next, x.hash, [
      ['nat', 'PREROUTING', 'LBC-PREROUTING'],
      ['mangle', 'PREROUTING', 'LBC-PREROUTING'],
    ])!;
    const sections = plan.restore.trim().split('COMMIT\n').map((t) => t.split('\n').filter(Boolean));
    expect(sections[0][0]).toBe('*nat');
    expect(sections[0]).toContain('-C PREROUTING -j LBC-PREROUTING');
    expect(sections[0].indexOf('-C PREROUTING -j LBC-PREROUTING')).toBeGreaterThan(sections[0].findIndex((l) => l.startsWith('-A LBC-')));
    // A table with nothing but the check still gets its section.
    expect(sections[1]).toEqual(['*mangle', '-C PREROUTING -j LBC-PREROUTING', 'COMMIT']);
  });

  it('a mangle change goes after nat, where the marker is', () => {
    const h = (first: string): SvcInput => ({ ...web('h', 5, first), mode: 'hash' });
    const { plan } = diff(ir(h('10.1.0.10'), { ...h('10.1.0.10'), name: 'g', vip: '10.0.0.6', backends: [{ address: '10.1.0.1', port: 8080 }, { address: '10.1.0.2', port: 8080 }] }), ir(h('10.1.0.10'), { ...h('10.1.0.10'), name: 'g', vip: '10.0.0.6', backends: [{ address: '10.1.0.1', port: 8080 }, { address: '10.1.0.2', port: 8080 }, { address: '10.1.0.3', port: 8080 }] }));
    expect(plan).not.toBeNull();
    expect(plan!.restore.indexOf('*nat')).toBe(0);
    expect(plan!.restore.indexOf('*mangle')).toBeGreaterThan(plan!.restore.indexOf('COMMIT'));
    expect(plan!.chains).toEqual(['nat LBC-S-g', 'mangle LBC-PREROUTING']);
  });

  it('the full load declares the marker in the nat table', () => {
    const { rules } = ipt(ir(web('a', 1)));
    const marked = withMarker(rules, 'LBC-L-0123');
    expect(marked).toContain('*nat\n:LBC-L-0123 - [0:0]\n:LBC-PREROUTING - [0:0]\n');
    expect(marked.replace(':LBC-L-0123 - [0:0]\n', '')).toBe(rules);
  });
});
