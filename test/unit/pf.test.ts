/** Capability tables of the pf targets: each cell emits the construct or refuses with why and what instead. */
import { describe, expect, it } from 'vitest';
import { compileForTarget } from '../../src/targets/target.js';
import { pfTarget } from '../../src/targets/pf/index.js';
import { pfOpenbsdTarget } from '../../src/targets/pf-openbsd/index.js';
import { pfFreebsd15Target } from '../../src/targets/pf-freebsd15/index.js';
import { TARGETS } from '../../src/targets/registry.js';
import { ir, seed000, service } from '../roundtrip/pf-ir.js';

const errors = (t: typeof pfTarget, svc: ReturnType<typeof service>) =>
  compileForTarget(t, ir(svc)).diagnostics.filter((d) => d.severity === 'error');

describe('pf capability table', () => {
  it('is registered under every name', () => {
    expect(TARGETS.get('pf')).toBe(pfTarget);
    expect(TARGETS.get('pf-openbsd')).toBe(pfOpenbsdTarget);
    expect(TARGETS.get('pf-freebsd15')).toBe(pfFreebsd15Target);
  });

  it('random over one CIDR block is flagged as the rotation FreeBSD rdr makes of it', () => {
    const svc = service({ name: 'r', vip: '192.0.2.1', mode: 'random', backends: [{ address: '10.0.0.4' }, { address: '10.0.0.5' }] });
    const res = compileForTarget(pfTarget, ir(svc));
    expect(res.diagnostics.map((d) => [d.code, d.severity])).toEqual([['LBC3002', 'warning']]);
    expect(res.diagnostics[0].message).toMatch(/steps through the block in turn/);
    expect(res.files[0].content).toMatch(/^# approximation: a classic rdr "random" pool steps through the block/m);
  });

  it('seed 000 is refused with the reason and the alternatives', () => {
    const res = compileForTarget(pfTarget, ir(seed000));
    expect(res.files).toEqual([]);
    const [e] = res.diagnostics.filter((d) => d.severity === 'error');
    expect(e.message).toMatch(/one redirection port for its whole pool/);
    expect(e.message).toMatch(/offset/);
    expect(e.notes?.[0]).toMatch(/pf-openbsd/);
    expect(e.notes?.[0]).toMatch(/ipnat/);
    expect(e.notes?.[0]).toMatch(/own address/);
  });

  it('random over addresses that are not one CIDR block is refused', () => {
    const svc = service({ name: 'r', vip: '192.0.2.1', mode: 'random', backends: [{ address: '10.0.0.1' }, { address: '10.0.0.5' }] });
    const [e] = errors(pfTarget, svc);
    expect(e.message).toMatch(/single CIDR block/);
    expect(e.notes?.[0]).toMatch(/pf-openbsd/);
    expect(errors(pfOpenbsdTarget, svc)).toEqual([]);
  });

  it('source-hash over a block is accepted with a fixed key', () => {
    const svc = service({ name: 'h', vip: '192.0.2.1', mode: 'hash', backends: [{ address: '10.0.0.4' }, { address: '10.0.0.5' }] });
    const text = compileForTarget(pfTarget, ir(svc)).files[0].content;
    expect(text).toMatch(/-> 10\.0\.0\.4\/31 port 80 source-hash 0x[0-9a-f]{32}\n/);
  });

  it('refuses hashing on other fields, local balancing and a missing vip without interface, on both targets', () => {
    for (const t of [pfTarget, pfOpenbsdTarget]) {
      expect(errors(t, service({ name: 'a', vip: '192.0.2.1', mode: 'hash', hashFields: ['saddr', 'dport'], backends: [{ address: '10.0.0.1' }] }))[0].message).toMatch(/source address only/);
      expect(errors(t, service({ name: 'b', vip: '192.0.2.1', local: true, backends: [{ address: '10.0.0.1' }] }))[0].notes?.[0]).toMatch(/directly/);
      expect(errors(t, service({ name: 'c', vip: null, backends: [{ address: '10.0.0.1' }] }))[0].message).toMatch(/needs a destination/);
    }
  });

  it('sticky across a probability cascade is refused on pf-openbsd', () => {
    const svc = service({ name: 's', vip: '192.0.2.1', sticky: { timeoutSeconds: 60 }, backends: [{ address: '10.0.0.1', port: 81 }, { address: '10.0.0.2', port: 82 }] });
    const [e] = errors(pfOpenbsdTarget, svc);
    expect(e.message).toMatch(/sticky-address only pins a source within one pool/);
  });

  it('weights too large to repeat are refused on pf', () => {
    const svc = service({ name: 'w', vip: '192.0.2.1', backends: [{ address: '10.0.0.1', weight: 100 }, { address: '10.0.0.2', weight: 1 }] });
    expect(errors(pfTarget, svc)[0].message).toMatch(/101 entries/);
  });

  it('interface names pf.conf cannot take are refused', () => {
    const svc = service({ name: 'i', vip: '192.0.2.1', interface: 'eth0:1', backends: [{ address: '10.0.0.1' }] });
    expect(errors(pfTarget, svc)[0].message).toMatch(/BSD interface name/);
  });

  it('every service gets its own sticky timeout on its own rule, not a global set timeout', () => {
    const a = service({ name: 'a', vip: '192.0.2.1', sticky: { timeoutSeconds: 60 }, backends: [{ address: '10.0.0.1' }, { address: '10.0.0.2' }] });
    const b = service({ name: 'b', vip: '192.0.2.2', sticky: { timeoutSeconds: 3600 }, backends: [{ address: '10.0.1.1' }, { address: '10.0.1.2' }] });
    for (const t of [pfTarget, pfOpenbsdTarget]) {
      const text = compileForTarget(t, ir(a, b)).files[0].content;
      expect(text).not.toMatch(/^set timeout/m);
      expect(text).toContain('keep state (src.track 60)');
      expect(text).toContain('keep state (src.track 3600)');
    }
  });
});
