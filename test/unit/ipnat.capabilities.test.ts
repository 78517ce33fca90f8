/** The ipnat capability table: refusals carry a spec position, a reason and an alternative. */
import { describe, expect, it } from 'vitest';
import { compileForTarget } from '../../src/targets/target.js';
import { ipnatTarget } from '../../src/targets/ipnat/index.js';
import { interfaceProblem, reducedWeights } from '../../src/targets/ipnat/capabilities.js';
import { makeIR, makeService } from '../roundtrip/ipnat-support.js';

const two = [{ address: '10.0.0.1', port: 80 }, { address: '10.0.0.2', port: 80 }];

function refusal(svc: ReturnType<typeof makeService>) {
  const r = compileForTarget(ipnatTarget, makeIR([svc]));
  expect(r.files).toEqual([]);
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  expect(errors.length).toBeGreaterThan(0);
  for (const e of errors) {
    expect(e.code).toBe('LBC3001');
    expect(e.location).toBeDefined();
    expect(e.notes?.[0]).toBeTruthy();
  }
  return errors;
}

describe('ipnat capabilities', () => {
  it('refuses a service without an interface and says how to fix it', () => {
    const svc = makeService({ interface: null, backends: two });
    // mode not written in the spec: the refusal points at the service.
    delete svc.loc.mode;
    const [e] = refusal(svc);
    expect(e.message).toMatch(/interface/);
    expect(e.notes![0]).toMatch(/interface: /);
    expect(e.location).toEqual({ file: 'spec.yaml', line: 1, column: 3 });
  });

  it('refuses mode random and mode hash at the mode line', () => {
    const [r] = refusal(makeService({ mode: 'random', backends: two }));
    expect(r.message).toMatch(/random/);
    expect(r.location?.line).toBe(6);
    const errs = refusal(makeService({ mode: 'hash', hashFields: ['saddr', 'sport'], backends: two }));
    expect(errs.some((e) => /hash/.test(e.message))).toBe(true);
  });

  it('refuses a service without a vip and local: true', () => {
    expect(refusal(makeService({ vip: null, backends: two }))[0].notes![0]).toMatch(/vip/);
    expect(refusal(makeService({ local: true, backends: two }))[0].location?.line).toBe(8);
  });

  it('refuses interface names the ipf lexer would split or read as keywords', () => {
    expect(interfaceProblem('em0')).toBeNull();
    expect(interfaceProblem('vlan100')).toBeNull();
    expect(interfaceProblem('em0.100')).toBeNull();
    expect(interfaceProblem('em0:1')).toMatch(/split/);
    expect(interfaceProblem('0em')).toMatch(/split/);
    expect(interfaceProblem('port')).toMatch(/keyword/);
    expect(interfaceProblem('Tag')).toMatch(/keyword/);
    expect(refusal(makeService({ interface: 'wan-1', backends: two }))[0].location?.line).toBe(5);
  });

  it('refuses weights that need too many rules, accepts reducible ones', () => {
    expect(reducedWeights([100, 300])).toEqual([1, 3]);
    const ok = compileForTarget(ipnatTarget, makeIR([makeService({ backends: [{ address: '10.0.0.1', port: 80, weight: 100 }, { address: '10.0.0.2', port: 80, weight: 300 }] })]));
    expect(ok.diagnostics).toEqual([]);
    expect(ok.files[0].content.match(/^rdr /gm)).toHaveLength(4);
    const many = makeService({ backends: [{ address: '10.0.0.1', port: 80, weight: 1000 }, { address: '10.0.0.2', port: 80, weight: 999 }] });
    expect(refusal(many)[0].message).toMatch(/1999 rules/);
  });

  it('approximates sticky with a warning and a comment in the output', () => {
    const r = compileForTarget(ipnatTarget, makeIR([makeService({ sticky: { timeoutSeconds: 600 }, backends: two })]));
    expect(r.diagnostics.map((d) => d.severity)).toEqual(['warning']);
    expect(r.files[0].content).toContain('600 s idle timeout cannot be set');
  });

  it('accepts udp, IPv6, CIDR vips, local backends, health and backups without diagnostics', () => {
    const svc = makeService({
      family: 'ipv6',
      protocol: 'udp',
      vip: { address: '2001:db8:1::', prefixLength: 64, isHost: false },
      backends: [{ address: null, port: 5300 }, { address: '2001:db8::5', port: 53 }, { address: '2001:db8::6', port: 53, backup: true }],
    });
    const r = compileForTarget(ipnatTarget, makeIR([svc]));
    expect(r.diagnostics).toEqual([]);
    expect(r.files).toHaveLength(2);
  });

  it('nothing from the spec reaches the output except through comments', () => {
    const r = compileForTarget(ipnatTarget, { file: 'evil\nrdr em0 0/0 -> 6.6.6.6.yaml', services: [makeService({ backends: two })] });
    for (const f of r.files) for (const line of f.content.split('\n')) expect(line === '' || line.startsWith('#') || /^(rdr|pass) /.test(line)).toBe(true);
    expect(r.files[0].content).not.toContain('6.6.6.6 port');
  });
});
