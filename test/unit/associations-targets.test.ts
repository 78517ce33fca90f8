/**
 * UDP associations in the Linux emitters and in what apply sends the kernel, without a kernel: the
 * layout's invariants (what the kernel tests rely on), and the apply scripts against a recorded kernel
 * listing (a fake ApplyContext that answers queries and records commands).
 */
import { describe, expect, it } from 'vitest';
import { compile, parseSpec } from '../../src/index.js';
import type { ApplyContext } from '../../src/targets/target.js';
import { associationsApplyScript, splitAssociations, ASSOC_TABLE } from '../../src/targets/nftables/associations.js';
import { inLayout } from '../../src/targets/nftables/incremental.js';
import { backendSetNames, hashSize, zonesOf } from '../../src/targets/iptables/associations.js';
import { forgetDepartedAssociations, resizeAssociationSets } from '../../src/targets/iptables/association-sets.js';
import { IPV4 } from '../../src/targets/iptables/emit.js';
import { compileForTarget } from '../../src/targets/target.js';
import { pfTarget } from '../../src/targets/pf/index.js';
import { ipnatTarget } from '../../src/targets/ipnat/index.js';

const spec = (o: { backends?: string[]; idle?: string; bi?: boolean; iface?: boolean; extra?: string } = {}) => `version: 1
services:
  - name: coap
    vip: 192.0.2.1
    port: 5683
    protocol: udp
${o.iface ? '    interface: eth1\n' : ''}    associations: { max: 100${o.idle ? `, idle: ${o.idle}` : ''}, backend-initiated: ${o.bi ?? false} }
    backends: [${(o.backends ?? ['10.0.0.1', '10.0.0.2']).join(', ')}]
${o.extra ?? ''}`;

const nft = (text: string) => compile(text, 'nftables', { file: 's.yaml' }).files[0].content;
/** A chain's rules as the second (filling) table block of the associations section has them. */
const chain = (text: string, name: string) => [...text.matchAll(new RegExp(`\tchain ${name} \\{\n([\\s\\S]*?)\n\t\\}`, 'g'))].pop()![1];

function fakeCtx(answers: Record<string, string>): ApplyContext & { ran: string[] } {
  const ran: string[] = [];
  return {
    dryRun: false,
    ran,
    log: () => {},
    run: async (argv, stdin) => void ran.push(`${argv.join(' ')}${stdin ? `\n${stdin}` : ''}`),
    query: async (argv) => {
      const k = argv.join(' ');
      if (!(k in answers)) throw new Error(`unexpected query ${k}`);
      return answers[k];
    },
  };
}

describe('nftables associations layout', () => {
  it('keeps services with associations out of lbc\'s own table, which stays in the incremental layout', () => {
    const text = nft(spec({ extra: '  - { name: web, vip: 192.0.2.2, port: 80, backends: [10.0.0.9] }\n' }));
    const { main, section } = splitAssociations(text);
    expect(inLayout(main)).toBe(true);
    expect(main).toContain('svc_web');
    expect(main).not.toContain('coap');
    expect(section).toContain(`table ${ASSOC_TABLE} {`);
  });

  it('names sets by the backend address, times them by idle (never: ten years), and sizes them by max', () => {
    const never = nft(spec());
    expect(never).toMatch(/set a_coap_0a000001 \{\n\t\ttypeof ip saddr \. udp sport\n\t\tsize 100\n\t\tflags dynamic,timeout\n\t\ttimeout 3650d\n/);
    expect(never).toContain('set all_coap {');
    // Removing the first backend leaves the second's set name as it was.
    expect(nft(spec({ backends: ['10.0.0.2'] }))).toContain('set a_coap_0a000002 {');
    expect(nft(spec({ idle: '90s' }))).toContain('timeout 90s');
  });

  it('drops a backend\'s packets to another backend\'s client, and creates associations from a backend only with backend-initiated', () => {
    const off = nft(spec());
    const out = chain(off, 'out_coap_0a000001');
    expect(out).toContain('ip daddr . udp dport @a_coap_0a000002 drop');
    expect(out).not.toMatch(/update @all_coap \{ ip daddr \. udp dport \} update @a_coap/);
    const on = chain(nft(spec({ bi: true })), 'out_coap_0a000001');
    expect(on).toContain('update @all_coap { ip daddr . udp dport } update @a_coap_0a000001 { ip daddr . udp dport } notrack accept');
    // Full table: only the backend the hash picks may go on (to conntrack); the others are dropped.
    expect(on).toMatch(/jhash ip daddr \. udp dport mod 2 seed 0x[0-9a-f]{8} 0 return\n\t\tdrop$/);
  });

  it('restricts to the interface in both the stateless and the full-table path', () => {
    const text = nft(spec({ iface: true }));
    expect(/chain in_coap \{\n\t\t(.*)/.exec(text)![1]).toBe('iifname != "eth1" return');
    expect(/chain full_coap \{\n\t\t(.*)/.exec(text)![1]).toBe('iifname != "eth1" return');
  });

  it('rotates new associations by weight, exactly (numgen inc over the weight not yet assigned)', () => {
    const text = nft(spec({ backends: ['{ address: 10.0.0.1, weight: 1 }', '{ address: 10.0.0.2, weight: 3 }'] }));
    expect(chain(text, 'new_coap').split('\n').map((l) => l.trim())).toEqual([
      'numgen inc mod 4 0 update @a_coap_0a000001 { ip saddr . udp sport } ip daddr set 10.0.0.1 notrack accept',
      'update @a_coap_0a000002 { ip saddr . udp sport } ip daddr set 10.0.0.2 notrack accept',
    ]);
  });
});

describe('nftables associations apply script', () => {
  const terse = (objects: string[]) => `table inet lbc {\n}\ntable ${ASSOC_TABLE} {\n${objects.map((o) => `\t${o} {\n\t}`).join('\n')}\n}\n`;

  it('on a host without the table: declares everything and fills every chain and map', async () => {
    const ctx = fakeCtx({ 'nft -t list ruleset': 'table inet lbc {\n}\n' });
    const script = await associationsApplyScript(ctx, null, nft(spec()));
    expect(script).toContain(`add set ${ASSOC_TABLE} all_coap { typeof ip saddr . udp sport; size 100; flags dynamic,timeout; timeout 3650d; }`);
    expect(script).toContain(`flush chain ${ASSOC_TABLE} new_coap`);
    expect(script).toContain(`flush map ${ASSOC_TABLE} to4`);
    expect(script).not.toMatch(/^delete /m);
  });

  it('when nothing changed: only declarations, no flush (the rotation keeps counting)', async () => {
    const text = nft(spec());
    const objs = [...text.matchAll(/^\t(set|map|chain) (\S+) \{$/gm)].map((m) => `${m[1]} ${m[2]}`);
    const ctx = fakeCtx({ 'nft -t list ruleset': terse([...new Set(objs)]) });
    const script = await associationsApplyScript(ctx, text, text);
    expect(script).not.toContain('flush');
    expect(script).not.toMatch(/^delete /m);
  });

  it('a departing backend: its clients leave the service\'s set, then its set goes, in the same script', async () => {
    const before = nft(spec());
    const after = nft(spec({ backends: ['10.0.0.2'] }));
    const objs = [...before.matchAll(/^\t(set|map|chain) (\S+) \{$/gm)].map((m) => `${m[1]} ${m[2]}`);
    const elems = { nftables: [{ metainfo: {} }, { set: { name: 'a_coap_0a000001', elem: [{ elem: { val: { concat: ['198.51.100.7', 4000] }, expires: 10 } }, { concat: ['198.51.100.8', 4001] }] } }] };
    const ctx = fakeCtx({ 'nft -t list ruleset': terse([...new Set(objs)]), [`nft -j list set ${ASSOC_TABLE} a_coap_0a000001`]: JSON.stringify(elems) });
    const lines = (await associationsApplyScript(ctx, before, after)).trim().split('\n');
    const del = lines.indexOf(`delete element ${ASSOC_TABLE} all_coap { 198.51.100.7 . 4000, 198.51.100.8 . 4001 }`);
    const drop = lines.indexOf(`delete set ${ASSOC_TABLE} a_coap_0a000001`);
    const refill = lines.indexOf(`flush chain ${ASSOC_TABLE} in_coap`);
    expect(del).toBeGreaterThan(refill);
    expect(drop).toBeGreaterThan(del);
    expect(lines).toContain(`delete chain ${ASSOC_TABLE} out_coap_0a000001`);
    expect(lines).not.toContain(`delete set ${ASSOC_TABLE} a_coap_0a000002`);
  });

  it('a departing service: its sets go without listing them', async () => {
    const before = nft(spec());
    const after = nft('version: 1\nservices:\n  - { name: web, vip: 192.0.2.2, port: 80, backends: [10.0.0.9] }\n');
    const objs = [...before.matchAll(/^\t(set|map|chain) (\S+) \{$/gm)].map((m) => `${m[1]} ${m[2]}`);
    const ctx = fakeCtx({ 'nft -t list ruleset': terse([...new Set(objs)]) });
    const script = await associationsApplyScript(ctx, before, after);
    expect(script).toContain(`delete set ${ASSOC_TABLE} all_coap`);
    expect(script).toContain(`delete set ${ASSOC_TABLE} a_coap_0a000001`);
    expect(script).not.toContain('delete element');
  });
});

describe('iptables associations', () => {
  const svc = (text: string) => parseSpec(text, 's.yaml').services[0];

  it('creates sets that can reach max from the packet path (hashsize max/2, at least 1024)', () => {
    expect([hashSize(4), hashSize(20_000), hashSize(1_048_576)]).toEqual([1024, 16384, 524288]);
    const sets = compile(spec(), 'iptables').files.find((f) => f.name === 'ipset.rules')!.content;
    expect(sets).toContain('create LBC4-coap-all hash:ip,port family inet hashsize 1024 maxelem 100 timeout 0');
  });

  it('gives each backend a zone of its own, stable whatever the list order, and names that fit ipset and iptables', () => {
    const addrs = Array.from({ length: 40 }, (_, i) => `"2001:db8::${(i + 1).toString(16)}"`);
    const v6 = (list: string[]) => svc(`version: 1\nservices:\n  - { name: abcdefghijklmnop, vip: "2001:db8:1::1", port: 5683, protocol: udp, associations: {}, backends: [${list.join(', ')}] }\n`);
    const a = v6(addrs);
    const b = v6([...addrs].reverse());
    const zones = zonesOf(a);
    expect(new Set([...zones.backend.values(), zones.full]).size).toBe(41);
    const byAddr = (s: typeof a, z: ReturnType<typeof zonesOf>) => new Map([...z.backend].map(([k, v]) => [k.address, v]));
    expect(byAddr(b, zonesOf(b))).toEqual(byAddr(a, zones));
    for (const name of backendSetNames(IPV4, a).values()) expect(name.length).toBeLessThanOrEqual(31);
    const rules = compile(`version: 1\nservices:\n  - { name: abcdefghijklmnop, vip: "2001:db8:1::1", port: 5683, protocol: udp, associations: {}, backends: [${addrs.join(', ')}] }\n`, 'ip6tables').files[0].content;
    for (const m of rules.matchAll(/^:(\S+) /gm)) expect(m[1].length, m[1]).toBeLessThanOrEqual(28);
  });

  it('copies a set\'s members into a bigger one when max grows, and takes a departed backend\'s clients out of -all', async () => {
    const ctx = fakeCtx({
      'ipset list -t LBC4-coap-all': 'Name: LBC4-coap-all\nType: hash:ip,port\nHeader: family inet hashsize 1024 maxelem 4 timeout 0\n',
      'ipset save LBC4-coap-all': 'create LBC4-coap-all hash:ip,port family inet hashsize 1024 maxelem 4 timeout 0\nadd LBC4-coap-all 198.51.100.7,udp:4000 timeout 0\n',
      'ipset save LBC4-coap-0a000001': 'create x\nadd LBC4-coap-0a000001 198.51.100.7,udp:4000 timeout 30\n',
    });
    await resizeAssociationSets('create LBC4-coap-all hash:ip,port family inet hashsize 1024 maxelem 8 timeout 0\n', ctx);
    expect(ctx.ran[0]).toMatch(/^ipset create LBC-tmp-[0-9a-f]{12} hash:ip,port family inet hashsize 1024 maxelem 8 timeout 0$/);
    expect(ctx.ran[1]).toMatch(/^ipset restore -exist\nadd LBC-tmp-[0-9a-f]{12} 198\.51\.100\.7,udp:4000 timeout 0\n$/);
    expect(ctx.ran[2]).toMatch(/^ipset swap LBC4-coap-all LBC-tmp-/);
    ctx.ran.length = 0;
    await forgetDepartedAssociations(['LBC4-coap-0a000001', 'LBC4-web-0'], new Set(['LBC4-coap-all']), ctx);
    expect(ctx.ran).toEqual(['ipset restore -exist\ndel LBC4-coap-all 198.51.100.7,udp:4000\n']);
  });
});

describe('source-nat refusals on the BSD targets', () => {
  it('pf needs an interface to masquerade; ipnat masquerades IPv4 only', () => {
    const ir = parseSpec('version: 1\nsource-nat: masquerade\nservices:\n  - { name: a, vip: 192.0.2.1, port: 80, backends: [10.0.0.1] }\n  - { name: b, vip: "2001:db8::1", port: 80, interface: em0, backends: ["2001:db8::2"] }\n', 's.yaml');
    const pf = compileForTarget(pfTarget, ir).diagnostics.filter((d) => d.severity === 'error');
    expect(pf.map((d) => d.message)).toEqual([expect.stringMatching(/service "a": target pf cannot express source NAT .* only when told which interface/)]);
    expect(pf[0].location).toMatchObject({ line: 2 });
    const ipnat = compileForTarget(ipnatTarget, ir).diagnostics.filter((d) => d.severity === 'error' && /source NAT/.test(d.message));
    expect(ipnat.map((d) => d.message)).toEqual([expect.stringMatching(/service "b": .*0\/32/)]);
  });
});

describe('lbc check says, per target, what a full association table does', () => {
  it('nftables and iptables approximate (the newcomer is hashed, not remembered); the BSD targets refuse once per service', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'check', 'fixtures/seed-004-associations/spec.yaml'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/nftables\s+compiles, with 2 approximations/);
    expect(r.stdout).toMatch(/iptables\s+compiles, with 2 approximations/);
    expect(r.stdout).toMatch(/refused by: pf, pf-openbsd, pf-freebsd15, iptables-condition, relayd, relayd-freebsd, ipnat/);
    expect(r.stderr).toContain('when the table is full a newcomer goes to the backend a hash of its address and port picks, without being remembered');
    expect(r.stderr.match(/target pf cannot express/g)).toHaveLength(2);
  });
});

describe('ipnat apply loads the source NAT map rules too', () => {
  it('removes and adds every map rule with the rdr rules', async () => {
    const { ipnatApplyPlan } = await import('../../src/agent-bsd/ipnat.js');
    const files = compile('version: 1\nservices:\n  - { name: a, vip: 192.0.2.1, port: 80, interface: em0, source-nat: 10.0.0.254, backends: [10.0.0.1, 10.0.0.2] }\n', 'ipnat').files;
    const adds = ipnatApplyPlan(files).filter((c) => c.argv.join(' ') === 'ipnat -f -').map((c) => c.stdin);
    expect(adds).toHaveLength(1);
    expect(adds[0]).toContain('map em0 from any to 10.0.0.1/32 port = 80 -> 10.0.0.254/32 tcp\n');
    expect(adds[0]).toContain('map em0 from any to 10.0.0.2/32 port = 80 -> 10.0.0.254/32 tcp\n');
  });
});

describe('source-nat beside associations', () => {
  it('is refused on nftables and iptables, at the source-nat line, with the alternative', async () => {
    const ir = parseSpec('version: 1\nservices:\n  - name: coap\n    vip: 192.0.2.1\n    port: 5683\n    protocol: udp\n    source-nat: masquerade\n    associations: {}\n    backends: [10.0.0.1]\n', 's.yaml');
    for (const t of ['nftables', 'iptables']) {
      const errs = compileForTarget((await import('../../src/targets/registry.js')).TARGETS.get(t)!, ir).diagnostics.filter((d) => d.severity === 'error');
      expect(errs.map((d) => [d.location?.line, d.code])).toEqual([[7, 'LBC3001']]);
      expect(errs[0].notes?.[0]).toMatch(/route the backends' replies through the balancer/);
    }
  });
});
