/**
 * Round trip without a BSD kernel: every ruleset the pf targets emit is parsed
 * back with the pf.conf grammar into its meaning (pool, shares, stickiness,
 * family, ports) and compared with the IR service it came from.
 */
import { describe, expect, it } from 'vitest';
import { compileForTarget } from '../../src/targets/target.js';
import { pfTarget } from '../../src/targets/pf/index.js';
import { pfOpenbsdTarget } from '../../src/targets/pf-openbsd/index.js';
import { pfFreebsd15Target } from '../../src/targets/pf-freebsd15/index.js';
import { compareToService, parsePf, pfMeaning, type PfDialect } from '../../grammars/pf/index.js';
import type { IR } from '../../src/ir/types.js';
import { ir, seed000, seed002, service } from './pf-ir.js';

// FreeBSD 15 reads OpenBSD's rdr-to syntax; what it lacks (table weights) is checked on the text below.
const targets = [
  { target: pfTarget, dialect: 'freebsd' as PfDialect },
  { target: pfOpenbsdTarget, dialect: 'openbsd' as PfDialect },
  { target: pfFreebsd15Target, dialect: 'openbsd' as PfDialect },
];

function roundTrip(target: typeof pfTarget, dialect: PfDialect, spec: IR) {
  const res = compileForTarget(target, spec);
  const errors = res.diagnostics.filter((d) => d.severity === 'error');
  expect(errors, errors.map((e) => e.message).join('\n')).toEqual([]);
  expect(res.files).toHaveLength(1);
  const text = res.files[0].content;
  if (target === pfFreebsd15Target) expect(text.replace(/^#.*\n/gm, ''), 'FreeBSD parse.y has no WEIGHT token').not.toMatch(/ weight \d/);
  const meanings = pfMeaning(parsePf(text, dialect));
  expect(meanings.map((m) => m.port)).toEqual(spec.services.map((s) => s.port));
  spec.services.forEach((svc, i) => {
    expect(compareToService(svc, meanings[i]), `${svc.name}\n${text}`).toEqual([]);
  });
  return { text, diagnostics: res.diagnostics };
}

const both = [
  service({ name: 'web', vip: '192.0.2.10', interface: 'em0', backends: [{ address: '10.0.0.1' }, { address: '10.0.0.2' }, { address: '10.0.0.3' }] }),
  service({ name: 'one', vip: '192.0.2.11', port: 443, backends: [{ address: '10.0.0.9', port: 8443 }] }),
  service({ name: 'dns', vip: '192.0.2.12', port: 53, protocol: 'udp', mode: 'hash', backends: [{ address: '10.0.1.0' }, { address: '10.0.1.1' }, { address: '10.0.1.2' }, { address: '10.0.1.3' }] }),
  service({ name: 'rnd', vip: '192.0.2.13', mode: 'random', sticky: { timeoutSeconds: 120 }, backends: [{ address: '10.0.2.4' }, { address: '10.0.2.5' }] }),
  service({ name: 'v6', vip: '2001:db8::10', port: 8080, backends: [{ address: '2001:db8:1::1', port: 80 }, { address: '2001:db8:1::2', port: 80 }], sticky: { timeoutSeconds: 60 } }),
  service({ name: 'local4', vip: '192.0.2.14', port: 25, backends: [{ address: null, port: 2525 }] }),
  service({ name: 'ifaddr', vip: null, interface: 'vtnet0', port: 22, backends: [{ address: '10.0.3.1' }, { address: '10.0.3.2' }] }),
  service({ name: 'net', vip: '203.0.113.0/24', port: 80, backends: [{ address: '10.0.4.1' }, { address: '10.0.4.2' }, { address: '10.0.4.3', backup: true }] }),
];

describe.each(targets)('round trip for $target.name', ({ target, dialect }) => {
  it('refuses IPv6 local backends, which ::1 could never receive', () => {
    const six = ir(service({ name: 'local6', vip: '2001:db8::11', port: 25, backends: [{ address: null, port: 2525 }] }));
    const r = compileForTarget(target, six, {});
    expect(r.files).toEqual([]);
    expect(r.diagnostics.map((d) => d.message).join('\n')).toMatch(/::1/);
  });

  it.each(both)('service $name means what the IR says', (svc) => {
    roundTrip(target, dialect, ir(svc));
  });

  it('several services in one file keep their order and meaning', () => {
    roundTrip(target, dialect, ir(...both));
  });

  it('seed 002: ten web servers, round-robin, sticky, in a persistent table', () => {
    const { text } = roundTrip(target, dialect, ir(seed002));
    expect(text).toContain('table <lbc-www> persist { 192.168.10.20, 192.168.10.21');
    expect(text).toMatch(/<lbc-www> port 80 round-robin sticky-address/);
    expect(text).toContain('keep state (src.track 300)');
  });

  it('weighted rotation round-trips with the right shares (exact on OpenBSD, an approximation elsewhere)', () => {
    const svc = service({ name: 'w', vip: '192.0.2.20', backends: [{ address: '10.0.5.1', weight: 3 }, { address: '10.0.5.2', weight: 1 }] });
    const { diagnostics, text } = roundTrip(target, dialect, ir(svc));
    if (target === pfOpenbsdTarget) {
      expect(diagnostics).toEqual([]);
      expect(text).toContain('table <lbc-w> persist { 10.0.5.1 weight 3, 10.0.5.2 weight 1 }');
      expect(text).toMatch(/ rdr-to <lbc-w> port 80 round-robin keep state\n/);
    } else {
      expect(diagnostics.some((d) => d.code === 'LBC3002')).toBe(true);
      expect(text).toContain('approximation:');
    }
  });

  it('random is never a pool over a CIDR block, where pf steps a counter instead of drawing', () => {
    const svc = service({ name: 'rb', vip: '192.0.2.21', mode: 'random', backends: [{ address: '10.0.7.0' }, { address: '10.0.7.1' }] });
    const { text, diagnostics } = roundTrip(target, dialect, ir(svc));
    if (target === pfTarget) {
      // Classic rdr takes random only over a block: it stays, flagged as the rotation it is.
      expect(text).toMatch(/-> 10\.0\.7\.0\/31 port 80 random\n/);
      expect(diagnostics.map((d) => d.message).join(' ')).toMatch(/fixed rotation, not an independent random draw/);
    } else {
      expect(text).not.toMatch(/10\.0\.7\.0\/31/);
      if (target === pfOpenbsdTarget) {
        expect(text).toMatch(/rdr-to <lbc-rb> port 80 random keep state\n/);
        expect(diagnostics).toEqual([]);
      }
    }
  });

  it('output is deterministic', () => {
    const a = compileForTarget(target, ir(...both)).files[0].content;
    const b = compileForTarget(target, ir(...both)).files[0].content;
    expect(a).toBe(b);
  });
});

describe('pf-openbsd and pf-freebsd15', () => {
  it('sticky weighted rotation on OpenBSD is one weighted table with sticky-address; FreeBSD 15 refuses it', () => {
    const svc = service({ name: 'sw', vip: '192.0.2.40', sticky: { timeoutSeconds: 90 }, backends: [{ address: '10.0.8.1', weight: 5 }, { address: '10.0.8.2', weight: 2 }, { address: '10.0.8.3' }] });
    const { text } = roundTrip(pfOpenbsdTarget, 'openbsd', ir(svc));
    expect(text).toContain('table <lbc-sw> persist { 10.0.8.1 weight 5, 10.0.8.2 weight 2, 10.0.8.3 weight 1 }');
    expect(text).toContain('rdr-to <lbc-sw> port 80 round-robin sticky-address keep state (src.track 90)');
    const fb = compileForTarget(pfFreebsd15Target, ir(svc));
    expect(fb.files).toEqual([]);
    expect(fb.diagnostics.find((d) => d.severity === 'error')!.message).toMatch(/sticky-address only pins a source within one pool/);
  });
});

describe('pf-openbsd only', () => {
  it('seed 000: eight local instances on ports 4001-4008 by a probability cascade', () => {
    const { text, diagnostics } = roundTrip(pfOpenbsdTarget, 'openbsd', ir(seed000));
    expect(text).toContain('pass in quick on lagg0 inet proto tcp from any to 198.51.240.0/20 port 4000 probability 12.5% rdr-to 127.0.0.1 port 4001 keep state');
    expect(text).toContain('probability 50% rdr-to 127.0.0.1 port 4007');
    expect(text).toMatch(/port 4000 rdr-to 127\.0\.0\.1 port 4008 keep state\n/);
    // mode nth is approximated by a random choice, and says so.
    expect(diagnostics.filter((d) => d.code === 'LBC3002').map((d) => d.message).join(' ')).toMatch(/random, not a strict rotation/);
  });

  it('weighted random across different ports is exact', () => {
    const svc = service({ name: 'wr', vip: '192.0.2.30', mode: 'random', backends: [{ address: '10.0.6.1', port: 81, weight: 1 }, { address: '10.0.6.2', port: 82, weight: 2 }, { address: '10.0.6.3', port: 83, weight: 5 }] });
    const { diagnostics } = roundTrip(pfOpenbsdTarget, 'openbsd', ir(svc));
    expect(diagnostics).toEqual([]);
  });
});
