// Structure of the nftables emitter's output, read back by a small parser of the subset it writes,
// and the selection rules interpreted by a model of numgen/jhash cascades.
import { describe, expect, it } from 'vitest';
import type { Backend, HashField, IR, Mode, Service } from '../../src/ir/types.js';
import { compileForTarget } from '../../src/targets/target.js';
import { TARGETS } from '../../src/targets/registry.js';
import { nftablesTarget } from '../../src/targets/nftables/index.js';
import { hashSeed, reducedWeights, SHARED_MAX_SLOTS, slotOwners, sharedHashSeed } from '../../src/targets/nftables/layout.js';

const loc = { file: 'unit.yaml', line: 1, column: 1 };

interface SvcInput {
  name: string;
  vip?: string | null;
  port?: number;
  protocol?: 'tcp' | 'udp';
  interface?: string;
  mode?: Mode;
  hash?: HashField[];
  sticky?: number;
  local?: boolean;
  backends: Array<{ address: string | null; port?: number; weight?: number; backup?: boolean }>;
}

function svc(s: SvcInput): Service {
  const family = s.vip?.includes(':') || s.backends.some((b) => b.address?.includes(':')) ? 'ipv6' : 'ipv4';
  const full = family === 'ipv4' ? 32 : 128;
  const [address, len] = (s.vip ?? '').split('/');
  const prefixLength = len ? Number(len) : full;
  const port = s.port ?? 80;
  const backends: Backend[] = s.backends.map((b, index) => ({
    index, address: b.address, port: b.port ?? port, keepsPort: false, weight: b.weight ?? 1, backup: b.backup ?? false, health: null, loc,
  }));
  const mode = s.mode ?? 'nth';
  return {
    name: s.name, family, vip: s.vip ? { address, prefixLength, isHost: prefixLength === full } : null, port, ports: [{ from: port, to: port }], allow: null,
    protocol: s.protocol ?? 'tcp', interface: s.interface ?? null, mode, hashFields: mode === 'hash' ? (s.hash ?? ['saddr']) : [],
    sticky: s.sticky ? { timeoutSeconds: s.sticky } : null, local: s.local ?? false, backends, health: null,
    loc: { service: loc, name: loc, backends: loc },
  };
}

const ir = (...ss: SvcInput[]): IR => ({ file: 'unit.yaml', services: ss.map(svc) });
const emit = (x: IR): string => {
  const r = compileForTarget(nftablesTarget, x);
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  expect(r.files.map((f) => f.name)).toEqual(['nftables.nft']);
  return r.files[0].content;
};

// ---- a parser for the subset of nft syntax the emitter writes

interface Parsed {
  preamble: string[];
  sets: Map<string, Record<string, string>>;
  maps: Map<string, { type: string; flags: string | null; elements: Array<[string, string]> }>;
  chains: Map<string, { base: string | null; rules: string[] }>;
  comments: string[];
}

function parse(text: string): Parsed {
  const lines = text.split('\n');
  const out: Parsed = { preamble: [], sets: new Map(), maps: new Map(), chains: new Map(), comments: [] };
  let i = 0;
  while (lines[i] !== 'table inet lbc {') {
    if (i >= lines.length) throw new Error('no table block');
    out.preamble.push(lines[i++]);
  }
  i++;
  for (; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    if (line === '}') {
      expect(lines.slice(i + 1).join('')).toBe('');
      return out;
    }
    if (line.startsWith('#')) {
      out.comments.push(line);
      continue;
    }
    const head = /^(set|map|chain) ([a-z0-9_-]+) \{$/.exec(line);
    if (!head) throw new Error(`unexpected line ${i + 1}: ${line}`);
    const body: string[] = [];
    for (i++; lines[i] !== '\t}'; i++) body.push(lines[i].trim());
    if (head[1] === 'set') {
      out.sets.set(head[2], Object.fromEntries(body.map((b) => [b.split(' ')[0], b.split(' ').slice(1).join(' ')])));
    } else if (head[1] === 'map') {
      // "type T" gives T; a "typeof E" line is kept whole.
      const typeLine = body.find((b) => b.startsWith('type ') || b.startsWith('typeof '))!;
      const type = typeLine.startsWith('type ') ? typeLine.slice(5) : typeLine;
      const flags = body.find((b) => b.startsWith('flags '))?.slice(6) ?? null;
      const start = body.indexOf('elements = {');
      const elements = body.slice(start + 1, body.lastIndexOf('}')).map((e) => {
        const m = /^(.+) : (.+),$/.exec(e);
        if (!m) throw new Error(`bad element ${e}`);
        return [m[1], m[2]] as [string, string];
      });
      out.maps.set(head[2], { type, flags, elements });
    } else {
      const base = body[0]?.startsWith('type ') ? body.shift()! : null;
      out.chains.set(head[2], { base, rules: body });
    }
  }
  throw new Error('table block not closed');
}

// ---- a model of the selection cascade: each rule owns its counter (numgen inc) or computes the shared hash

interface Sel {
  kind: 'inc' | 'random' | 'hash' | 'always';
  mod: number;
  lo: number;
  hi: number;
  target: string;
}

function selectionOf(rule: string): Sel {
  const target = /(dnat ip6? to \S+|redirect(?: to :\d+)?)$/.exec(rule)?.[1];
  if (!target) throw new Error(`no nat in ${rule}`);
  const m = /^(?:numgen (inc|random)|jhash .+?) mod (\d+)(?: seed 0x[0-9a-f]+)? (\d+)(?:-(\d+))? /.exec(rule);
  if (!m) return { kind: 'always', mod: 1, lo: 0, hi: 0, target };
  return { kind: (m[1] as 'inc' | 'random' | undefined) ?? 'hash', mod: +m[2], lo: +m[3], hi: +(m[4] ?? m[3]), target };
}

/** Run n new connections through an nth cascade, the way the kernel evaluates it. */
function runNth(rules: Sel[], n: number): Record<string, number> {
  const counters = rules.map(() => 0);
  const out: Record<string, number> = {};
  for (let c = 0; c < n; c++) {
    for (let r = 0; r < rules.length; r++) {
      const s = rules[r];
      let hit = true;
      if (s.kind === 'inc') {
        const v = counters[r]++ % s.mod;
        hit = v >= s.lo && v <= s.hi;
      }
      if (hit) {
        out[s.target] = (out[s.target] ?? 0) + 1;
        break;
      }
    }
  }
  return out;
}

describe('nftables emitter: file frame', () => {
  const text = emit(ir({ name: 'web', vip: '10.0.0.1', backends: [{ address: '10.1.0.1' }] }));

  it('is registered under its name', () => {
    expect(TARGETS.get('nftables')).toBe(nftablesTarget);
    expect(nftablesTarget.families).toEqual(['ipv4', 'ipv6']);
  });

  it('starts with the header and replaces only table inet lbc, in one file', () => {
    const p = parse(text);
    expect(p.preamble[0]).toBe('# Generated by lbc for target nftables from unit.yaml.');
    const commands = p.preamble.filter((l) => !l.startsWith('#'));
    expect(commands).toEqual(['table inet lbc {}', 'delete table inet lbc']);
    expect(text.match(/^table /gm)).toHaveLength(2);
    expect(text).not.toMatch(/flush ruleset|^delete table (?!inet lbc$)/m);
  });

  it('hooks prerouting at the numeric dstnat priority and only when needed', () => {
    const p = parse(text);
    expect(p.chains.get('prerouting')!.base).toBe('type nat hook prerouting priority -100; policy accept;');
    expect(p.chains.has('output')).toBe(false);
  });

  it('is deterministic and ends with a newline', () => {
    const x = ir({ name: 'a', vip: '10.0.0.0/24', mode: 'hash', sticky: 60, backends: [{ address: '10.1.0.1' }, { address: null, port: 81 }] });
    expect(emit(x)).toBe(emit(x));
    expect(emit(x).endsWith('}\n')).toBe(true);
  });

  it('keeps control characters of the file name out of the output', () => {
    const x = { ...ir({ name: 'a', vip: '10.0.0.1', backends: [{ address: '10.1.0.1' }] }), file: 'evil\ntable ip x {}.yaml' };
    const t = emit(x);
    expect(t).not.toMatch(/^table ip x/m);
    expect(t.split('\n')[0]).toBe('# Generated by lbc for target nftables from evil?table ip x {}.yaml.');
  });
});

describe('nftables emitter: dispatch', () => {
  const text = emit(
    ir(
      { name: 'host', vip: '10.0.0.1', backends: [{ address: '10.1.0.1' }] },
      { name: 'wide', vip: '10.0.0.0/16', backends: [{ address: '10.1.0.2' }] },
      { name: 'narrow', vip: '10.0.0.0/24', backends: [{ address: '10.1.0.3' }] },
      { name: 'other', vip: '10.9.0.0/16', backends: [{ address: '10.1.0.3' }] },
      { name: 'dns', vip: null, port: 53, protocol: 'udp', interface: 'eth0', local: true, backends: [{ address: '10.1.0.4' }] },
      { name: 'dns2', vip: null, port: 53, protocol: 'udp', interface: 'eth1', backends: [{ address: '10.1.0.5' }] },
      { name: 'six', vip: '2001:db8::1', port: 443, local: true, backends: [{ address: '2001:db8:1::1' }] },
    ),
  );
  const p = parse(text);

  it('looks services up by one verdict map per vip kind, host before CIDR before none', () => {
    expect(p.chains.get('prerouting')!.rules).toEqual([
      'ip daddr . meta l4proto . th dport vmap @pre4_host',
      'ip daddr . meta l4proto . th dport vmap @pre4_cidr',
      'ip daddr . meta l4proto . th dport vmap @pre4_cidr2',
      'meta nfproto ipv4 fib daddr type local meta l4proto . th dport vmap @pre4_any',
      'ip6 daddr . meta l4proto . th dport vmap @pre6_host',
    ]);
    expect(p.maps.get('pre4_host')).toEqual({ type: 'ipv4_addr . inet_proto . inet_service : verdict', flags: null, elements: [['10.0.0.1 . tcp . 80', 'goto svc_host']] });
    expect(p.maps.get('pre6_host')!.elements).toEqual([['2001:db8::1 . tcp . 443', 'goto svc_six']]);
    expect(p.maps.get('pre4_any')!.type).toBe('inet_proto . inet_service : verdict');
  });

  it('puts nested CIDR vips in separate interval maps, the longer prefix first', () => {
    expect(p.maps.get('pre4_cidr')).toEqual({
      type: 'ipv4_addr . inet_proto . inet_service : verdict',
      flags: 'interval',
      elements: [['10.0.0.0/24 . tcp . 80', 'goto svc_narrow'], ['10.9.0.0/16 . tcp . 80', 'goto svc_other']],
    });
    expect(p.maps.get('pre4_cidr2')!.elements).toEqual([['10.0.0.0/16 . tcp . 80', 'goto svc_wide']]);
  });

  it('checks the interface in the prerouting path only, falling through when none matches', () => {
    expect(p.maps.get('pre4_any')!.elements).toEqual([['udp . 53', 'jump in_dns']]);
    expect(p.chains.get('in_dns')!.rules).toEqual(['iifname "eth0" goto svc_dns', 'iifname "eth1" goto svc_dns2']);
    expect(p.chains.get('output')!.base).toBe('type nat hook output priority -100; policy accept;');
    expect(p.maps.get('out4_any')!.elements).toEqual([['udp . 53', 'goto svc_dns']]);
    expect(p.maps.get('out6_host')!.elements).toEqual([['2001:db8::1 . tcp . 443', 'goto svc_six']]);
    expect([...p.maps.keys()].filter((k) => k.startsWith('out'))).toEqual(['out4_any', 'out6_host']);
  });

  it('every verdict leads to a chain that exists, and every service chain is reachable', () => {
    const targets = new Set<string>();
    for (const m of p.maps.values()) for (const [, v] of m.elements) targets.add(v.split(' ')[1]);
    for (const c of p.chains.values()) for (const r of c.rules) for (const m of r.matchAll(/(?:goto|jump) (\S+)/g)) targets.add(m[1]);
    for (const t of targets) expect(p.chains.has(t), t).toBe(true);
    for (const name of p.chains.keys()) if (name.startsWith('svc_')) expect(targets.has(name), name).toBe(true);
  });
});

describe('nftables emitter: selection', () => {
  it('nth with weights is an exact rotation over the gcd-reduced total', () => {
    const p = parse(emit(ir({ name: 'w', vip: '10.0.0.1', backends: [
      { address: '10.1.0.1', port: 8080, weight: 2 }, { address: '10.1.0.2', port: 8080, weight: 4 },
      { address: '10.1.0.9', backup: true }, { address: '10.1.0.3', port: 8080, weight: 6 }] })));
    const rules = p.chains.get('svc_w')!.rules;
    expect(rules).toEqual([
      'numgen inc mod 6 0 meta l4proto tcp dnat ip to 10.1.0.1:8080',
      'numgen inc mod 5 0-1 meta l4proto tcp dnat ip to 10.1.0.2:8080',
      'meta l4proto tcp dnat ip to 10.1.0.3:8080',
    ]);
    expect(runNth(rules.map(selectionOf), 6 * 7)).toEqual({ 'dnat ip to 10.1.0.1:8080': 7, 'dnat ip to 10.1.0.2:8080': 14, 'dnat ip to 10.1.0.3:8080': 21 });
  });

  it('nth cascades are exact for many weight vectors', () => {
    const cases = [[1], [1, 1], [3, 1, 2], [5, 5, 5, 5, 5], [7, 1, 1, 13], [1, 2, 3, 4, 5, 6, 7, 8]];
    for (const ws of cases) {
      const p = parse(emit(ir({ name: 'c', vip: '10.0.0.1', backends: ws.map((weight, i) => ({ address: `10.1.0.${i + 1}`, weight })) })));
      const reduced = reducedWeights(ws);
      const total = reduced.reduce((a, b) => a + b, 0);
      const got = runNth(p.chains.get('svc_c')!.rules.map(selectionOf), total * 3);
      expect(ws.map((_, i) => got[`dnat ip to 10.1.0.${i + 1}`] ?? 0)).toEqual(reduced.map((w) => w * 3));
    }
  });

  // A CIDR vip keeps a random or hash service in a chain of its own (host vips go to shared maps).
  it('random uses the conditional-probability cascade w_i / remaining', () => {
    const p = parse(emit(ir({ name: 'r', vip: '10.0.0.0/24', mode: 'random', backends: [{ address: '10.1.0.1', weight: 1 }, { address: '10.1.0.2', weight: 2 }, { address: '10.1.0.3', weight: 3 }] })));
    const sels = p.chains.get('svc_r')!.rules.map(selectionOf);
    expect(sels.map((s) => [s.kind, s.mod, s.lo, s.hi])).toEqual([['random', 6, 0, 0], ['random', 5, 0, 1], ['always', 1, 0, 0]]);
    // P(i) = prod_{j<i}(1 - p_j) * p_i
    let rest = 1;
    const probs = sels.map((s) => {
      const pi = s.kind === 'always' ? 1 : (s.hi - s.lo + 1) / s.mod;
      const v = rest * pi;
      rest *= 1 - pi;
      return v;
    });
    expect(probs.map((x) => x * 6)).toEqual([1, 2, 3].map((x) => expect.closeTo(x, 9)));
  });

  it('hash: every rule computes the same jhash with the service seed, ranges partition the modulus', () => {
    const p = parse(emit(ir({ name: 'h', vip: '10.0.0.0/24', mode: 'hash', hash: ['saddr', 'sport', 'daddr', 'dport'], backends: [{ address: '10.1.0.1', weight: 2 }, { address: '10.1.0.2' }, { address: '10.1.0.3' }] })));
    const rules = p.chains.get('svc_h')!.rules;
    const seed = `0x${hashSeed('h').toString(16).padStart(8, '0')}`;
    expect(rules.slice(0, 2).map((r) => r.split(' seed ')[0])).toEqual(Array(2).fill('jhash ip saddr . th sport . ip daddr . th dport mod 4'));
    expect(rules.slice(0, 2).every((r) => r.includes(`seed ${seed} `))).toBe(true);
    const sels = rules.map(selectionOf);
    expect(sels.map((s) => [s.lo, s.hi])).toEqual([[0, 1], [2, 2], [0, 0]]);
    // Each hash value in 0..3 lands on exactly one backend, shares as weighted.
    const owner = [0, 1, 2, 3].map((h) => sels.findIndex((s) => s.kind === 'always' || (h >= s.lo && h <= s.hi)));
    expect(owner).toEqual([0, 0, 1, 2]);
    expect(hashSeed('h')).not.toBe(hashSeed('g'));
  });

  it('IPv6 dnat brackets the address; same-port backends keep the port without an l4proto match', () => {
    const p = parse(emit(ir({ name: 'v', vip: '2001:db8::1', port: 443, backends: [{ address: '2001:db8:1::1', port: 8443 }, { address: '2001:db8:1::2' }] })));
    expect(p.chains.get('svc_v')!.rules).toEqual(['numgen inc mod 2 0 meta l4proto tcp dnat ip6 to [2001:db8:1::1]:8443', 'dnat ip6 to 2001:db8:1::2']);
  });

  it('local backends become redirects, mixed freely with remote ones', () => {
    const p = parse(emit(ir({ name: 'l', vip: '10.0.0.1', protocol: 'udp', port: 53, backends: [{ address: null, port: 5353 }, { address: '10.1.0.1' }, { address: null }] })));
    expect(p.chains.get('svc_l')!.rules).toEqual([
      'numgen inc mod 3 0 meta l4proto udp redirect to :5353',
      'numgen inc mod 2 0 dnat ip to 10.1.0.1',
      'redirect',
    ]);
  });
});

describe('nftables emitter: shared selection maps', () => {
  it('slots: backend i owns exactly w_i consecutive slots of the reduced weight sum W', () => {
    const cases = [[1], [1, 1], [1, 2, 3], [2, 4, 6], [5, 5, 5], [1, 1, 1, 1, 1, 1, 1, 1], [7, 1, 1, 1], [9, 7], [3, 13], Array(16).fill(1), [1, 15]];
    for (const ws of cases) {
      const owners = slotOwners(ws)!;
      expect(owners, `${ws}`).not.toBeNull();
      const w = reducedWeights(ws);
      expect(owners).toHaveLength(w.reduce((a, b) => a + b, 0));
      // Consecutive and in backend order, each backend exactly its reduced weight.
      expect(owners).toEqual([...owners].sort((x, y) => x - y));
      expect(w.map((_, i) => owners.filter((o) => o === i).length)).toEqual(w);
    }
    expect(slotOwners([2, 4, 6])).toEqual([0, 1, 1, 2, 2, 2]);
  });

  it('refuses (null) when the reduced weight sum exceeds the cap, so the service keeps its chain', () => {
    expect(SHARED_MAX_SLOTS).toBe(16);
    expect(slotOwners([1, 16])).toBeNull(); // 17
    expect(slotOwners(Array(17).fill(1))).toBeNull();
    expect(slotOwners([2, 32])).toBeNull(); // reduces to 1:16, W = 17
    expect(slotOwners([10, 150])).toEqual([0, ...Array(15).fill(1)]); // reduces to 1:15
  });

  const text = emit(
    ir(
      { name: 'r1', vip: '10.0.0.1', mode: 'random', backends: [{ address: '10.1.0.1', port: 8080, weight: 1 }, { address: '10.1.0.2', weight: 2 }, { address: '10.1.0.9', backup: true }] },
      { name: 'r2', vip: '10.0.0.2', protocol: 'udp', port: 53, mode: 'random', local: true, backends: [{ address: '10.1.0.3' }] },
      { name: 'h1', vip: '10.0.0.3', mode: 'hash', hash: ['saddr', 'sport'], backends: [{ address: '10.1.0.1' }, { address: '10.1.0.2' }] },
      { name: 'h2', vip: '10.0.0.4', mode: 'hash', hash: ['saddr', 'sport'], backends: [{ address: '10.1.0.3' }, { address: '10.1.0.4' }] },
      { name: 'h3', vip: '10.0.0.5', mode: 'hash', hash: ['saddr'], backends: [{ address: '10.1.0.1' }] },
      { name: 'r3', vip: '10.0.0.12', mode: 'random', backends: [{ address: '10.1.0.4', weight: 2 }, { address: '10.1.0.5', weight: 1 }] },
      { name: 'r6', vip: '2001:db8::1', mode: 'random', backends: [{ address: '2001:db8:1::1', port: 8080 }, { address: '2001:db8:1::2' }] },
      // Not eligible: weight sum 17, a CIDR vip, an interface, sticky, a local backend, nth, a shared key.
      { name: 'odd', vip: '10.0.0.6', mode: 'random', backends: [{ address: '10.1.0.1', weight: 1 }, { address: '10.1.0.2', weight: 16 }] },
      { name: 'cidr', vip: '10.9.0.0/24', mode: 'random', backends: [{ address: '10.1.0.1' }] },
      { name: 'iface', vip: '10.0.0.7', mode: 'random', interface: 'eth0', backends: [{ address: '10.1.0.1' }] },
      { name: 'stk', vip: '10.0.0.8', mode: 'random', sticky: 60, backends: [{ address: '10.1.0.1' }] },
      { name: 'loc', vip: '10.0.0.9', mode: 'random', backends: [{ address: null, port: 81 }, { address: '10.1.0.1' }] },
      { name: 'nth', vip: '10.0.0.10', backends: [{ address: '10.1.0.1' }] },
      { name: 'twin-a', vip: '10.0.0.11', mode: 'random', interface: 'eth1', backends: [{ address: '10.1.0.1' }] },
      { name: 'twin-b', vip: '10.0.0.11', mode: 'random', backends: [{ address: '10.1.0.2' }] },
    ),
  );
  const p = parse(text);
  const seed = (f: Parameters<typeof sharedHashSeed>[0]) => `0x${sharedHashSeed(f).toString(16).padStart(8, '0')}`;

  it('only eligible services lose their chain', () => {
    const chains = [...p.chains.keys()].filter((c) => c.startsWith('svc_'));
    expect(chains).toEqual(['svc_odd', 'svc_cidr', 'svc_iface', 'svc_stk', 'svc_loc', 'svc_nth', 'svc_twin-a', 'svc_twin-b']);
    const dispatched = [...p.maps.get('pre4_host')!.elements].map(([k]) => k.split(' ')[0]);
    expect(dispatched).toEqual(['10.0.0.6', '10.0.0.7', '10.0.0.8', '10.0.0.9', '10.0.0.10', '10.0.0.11']);
  });

  it('random services: one plain map per hook, family and weight sum, one element per slot, port in the value', () => {
    expect(p.maps.get('pre4_rnd_3')).toEqual({
      type: 'typeof ip daddr . meta l4proto . th dport . numgen random mod 3 : ip daddr . th dport',
      flags: null,
      elements: [
        ['10.0.0.1 . tcp . 80 . 0', '10.1.0.1 . 8080'],
        ['10.0.0.1 . tcp . 80 . 1', '10.1.0.2 . 80'],
        ['10.0.0.1 . tcp . 80 . 2', '10.1.0.2 . 80'],
        ['10.0.0.12 . tcp . 80 . 0', '10.1.0.4 . 80'],
        ['10.0.0.12 . tcp . 80 . 1', '10.1.0.4 . 80'],
        ['10.0.0.12 . tcp . 80 . 2', '10.1.0.5 . 80'],
      ],
    });
    expect(p.maps.get('pre4_rnd_1')!.elements).toEqual([['10.0.0.2 . udp . 53 . 0', '10.1.0.3 . 53']]);
    expect(p.maps.get('out4_rnd_1')!.elements).toEqual([['10.0.0.2 . udp . 53 . 0', '10.1.0.3 . 53']]);
    expect([...p.maps.keys()].filter((k) => k.startsWith('out'))).toEqual(['out4_rnd_1']);
    expect(p.maps.get('pre6_rnd_2')!.elements).toEqual([
      ['2001:db8::1 . tcp . 80 . 0', '2001:db8:1::1 . 8080'],
      ['2001:db8::1 . tcp . 80 . 1', '2001:db8:1::2 . 80'],
    ]);
  });

  it('hash services: one map per field set and weight sum, one seed per field set', () => {
    expect(p.maps.get('pre4_hash_saddr_sport_2')!.type).toBe('typeof ip daddr . meta l4proto . th dport . symhash mod 2 : ip daddr . th dport');
    expect(p.maps.get('pre4_hash_saddr_sport_2')!.elements).toEqual([
      ['10.0.0.3 . tcp . 80 . 0', '10.1.0.1 . 80'],
      ['10.0.0.3 . tcp . 80 . 1', '10.1.0.2 . 80'],
      ['10.0.0.4 . tcp . 80 . 0', '10.1.0.3 . 80'],
      ['10.0.0.4 . tcp . 80 . 1', '10.1.0.4 . 80'],
    ]);
    expect(p.maps.get('pre4_hash_saddr_1')!.elements).toEqual([['10.0.0.5 . tcp . 80 . 0', '10.1.0.1 . 80']]);
    expect(sharedHashSeed(['saddr'])).not.toBe(sharedHashSeed(['saddr', 'sport']));
  });

  it('the shared lookups come first in each family, before the dispatch maps', () => {
    const dnat = `meta l4proto { tcp, udp } dnat ip to ip daddr . meta l4proto . th dport .`;
    expect(p.chains.get('prerouting')!.rules).toEqual([
      `${dnat} numgen random mod 3 map @pre4_rnd_3`,
      `${dnat} numgen random mod 1 map @pre4_rnd_1`,
      `${dnat} jhash ip saddr . th sport mod 2 seed ${seed(['saddr', 'sport'])} map @pre4_hash_saddr_sport_2`,
      `${dnat} jhash ip saddr mod 1 seed ${seed(['saddr'])} map @pre4_hash_saddr_1`,
      'ip daddr . meta l4proto . th dport vmap @pre4_host',
      'ip daddr . meta l4proto . th dport vmap @pre4_cidr',
      'meta l4proto { tcp, udp } dnat ip6 to ip6 daddr . meta l4proto . th dport . numgen random mod 2 map @pre6_rnd_2',
    ]);
    expect(p.chains.get('output')!.rules).toEqual([`${dnat} numgen random mod 1 map @out4_rnd_1`]);
  });

  it('describes each shared service in one comment line, with its slots per backend', () => {
    expect(text).toContain('\t# service r1: tcp 10.0.0.1:80, random over 2 backends, slots 1, 2 in backend order\n');
    // The element lines name the backends; no comment line per backend.
    expect(text).not.toContain('\t#   backend 0: 10.1.0.1:8080');
    expect(text).toContain(`\t# service h1: tcp 10.0.0.3:80, hash on saddr, sport (seed ${seed(['saddr', 'sport'])}) over 2 backends, one slot each\n`);
  });
});

describe('nftables emitter: sticky', () => {
  const p = parse(emit(ir({ name: 's', vip: '10.0.0.1', mode: 'random', sticky: 600, backends: [{ address: '10.1.0.1' }, { address: '10.1.0.2', backup: true }, { address: '10.1.0.3' }] })));

  it('declares one dynamic timeout set per primary backend, large enough for many clients', () => {
    expect([...p.sets.keys()]).toEqual(['aff_s_0', 'aff_s_2']);
    for (const s of p.sets.values()) expect(s).toEqual({ type: 'ipv4_addr', flags: 'dynamic,timeout', timeout: '600s', size: '65536' });
  });

  it('checks known clients before selection and remembers the chosen backend', () => {
    expect(p.chains.get('svc_s')!.rules).toEqual([
      'ip saddr @aff_s_0 update @aff_s_0 { ip saddr } dnat ip to 10.1.0.1',
      'ip saddr @aff_s_2 update @aff_s_2 { ip saddr } dnat ip to 10.1.0.3',
      'numgen random mod 2 0 update @aff_s_0 { ip saddr } dnat ip to 10.1.0.1',
      'update @aff_s_2 { ip saddr } dnat ip to 10.1.0.3',
    ]);
  });

  it('uses ip6 saddr and ipv6_addr sets for IPv6', () => {
    const q = parse(emit(ir({ name: 't', vip: '2001:db8::1', sticky: 30, backends: [{ address: '2001:db8:1::1' }] })));
    expect(q.sets.get('aff_t_0')!.type).toBe('ipv6_addr');
    expect(q.chains.get('svc_t')!.rules[0]).toBe('ip6 saddr @aff_t_0 update @aff_t_0 { ip6 saddr } dnat ip6 to 2001:db8:1::1');
  });
});

describe('nftables apply', () => {
  it('loads the file with one nft -f from stdin', async () => {
    const files = nftablesTarget.emit(ir({ name: 'a', vip: '10.0.0.1', backends: [{ address: '10.1.0.1' }] }), {});
    const calls: Array<[string[], string | undefined]> = [];
    await nftablesTarget.apply!(files, {
      dryRun: false,
      run: async (argv, stdin) => void calls.push([argv, stdin]),
      query: async () => '',
      log: () => {},
    });
    expect(calls).toEqual([[['nft', '-f', '-'], files[0].content]]);
  });

  it('refuses when the rules file is missing', async () => {
    await expect(nftablesTarget.apply!([], { dryRun: false, run: async () => {}, query: async () => '', log: () => {} })).rejects.toThrow(/nothing to apply/);
  });
});
