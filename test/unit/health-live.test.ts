import { describe, expect, it } from 'vitest';
import { backendKey, extremeIRs, liveIR, selectLive } from '../../src/health/live.js';
import type { Health } from '../../src/health/state.js';
import type { Backend, HealthCheck, IR, Service } from '../../src/ir/types.js';

const loc = { file: 't.yaml', line: 1, column: 1 };
const HC: HealthCheck = { check: 'tcp', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, port: null, http: null, banner: null, udp: null };

function be(index: number, address: string, backup = false, weight = 1, health: HealthCheck | null = HC): Backend {
  return { index, address, port: 80, keepsPort: false, weight, backup, health, loc };
}

function svc(name: string, backends: Backend[]): Service {
  return {
    name,
    family: 'ipv4',
    vip: { address: '192.0.2.1', prefixLength: 32, isHost: true },
    port: 80,
    ports: [{ from: 80, to: 80 }],
    allow: null,
    protocol: 'tcp',
    interface: null,
    mode: 'nth',
    hashFields: [],
    sticky: null,
    local: false,
    backends,
    health: HC,
    loc: { service: loc, name: loc, backends: loc },
  };
}

// Three primaries (unequal weights) and two backups.
const WEB = svc('web', [be(0, '10.0.0.1', false, 1), be(1, '10.0.0.2', false, 2), be(2, '10.0.0.3', false, 3), be(3, '10.0.0.8', true), be(4, '10.0.0.9', true, 5)]);
const IR1: IR = { file: 't.yaml', services: [WEB] };

function healthOf(s: Service, upMask: number): Map<string, Health> {
  const m = new Map<string, Health>();
  s.backends.forEach((b, i) => m.set(backendKey(s, b), (upMask >> i) & 1 ? 'up' : 'down'));
  return m;
}

describe('liveIR', () => {
  it('follows the selection rule for every subset of live backends', () => {
    for (let mask = 0; mask < 32; mask++) {
      const live = liveIR(IR1, healthOf(WEB, mask)).services[0];
      const up = WEB.backends.filter((_, i) => (mask >> i) & 1);
      const upPrim = up.filter((b) => !b.backup);
      const upBackup = up.filter((b) => b.backup);
      const expected = upPrim.length ? upPrim : upBackup.length ? upBackup : WEB.backends.filter((b) => !b.backup);
      expect(live.backends.map((b) => b.index), `mask ${mask}`).toEqual(expected.map((b) => b.index));
      // What emitters rely on: at least one primary, no backups, no health checks, weights and ports kept.
      expect(live.backends.length).toBeGreaterThan(0);
      expect(live.backends.every((b) => !b.backup && b.health === null)).toBe(true);
      expect(live.backends.map((b) => [b.address, b.port, b.weight])).toEqual(expected.map((b) => [b.address, b.port, b.weight]));
      expect(live.health).toBeNull();
      expect(selectLive(WEB, healthOf(WEB, mask)).selection).toBe(upPrim.length ? 'primaries' : upBackup.length ? 'backups' : 'fail-open');
      // Everything else about the service is untouched.
      expect({ ...live, backends: [], health: null }).toEqual({ ...WEB, backends: [], health: null });
    }
  });

  it('counts backends without a check, or not checked yet, as up', () => {
    const s = svc('dns', [be(0, '10.0.0.1'), be(1, '10.0.0.2', false, 1, null), be(2, '10.0.0.9', true)]);
    const health = new Map<string, Health>([[backendKey(s, s.backends[0]), 'down']]);
    expect(liveIR({ file: 'x', services: [s] }, health).services[0].backends.map((b) => b.index)).toEqual([1]);
    expect(liveIR({ file: 'x', services: [s] }, new Map()).services[0].backends.map((b) => b.index)).toEqual([0, 1]);
    const unknown = new Map<string, Health>([[backendKey(s, s.backends[0]), 'unknown']]);
    expect(liveIR({ file: 'x', services: [s] }, unknown).services[0].backends.map((b) => b.index)).toEqual([0, 1]);
  });

  it('keys backends per service, so the same address in two services is independent', () => {
    const a = svc('a', [be(0, '10.0.0.1'), be(1, '10.0.0.2')]);
    const b = svc('b', [be(0, '10.0.0.1'), be(1, '10.0.0.2')]);
    const health = new Map<string, Health>([[backendKey(a, a.backends[0]), 'down']]);
    const live = liveIR({ file: 'x', services: [a, b] }, health);
    expect(live.services.map((s) => s.backends.map((x) => x.index))).toEqual([[1], [0, 1]]);
  });

  it('does not modify its input', () => {
    const before = JSON.stringify(IR1);
    liveIR(IR1, healthOf(WEB, 0b11000));
    expect(JSON.stringify(IR1)).toBe(before);
  });

  it('extremeIRs: every primary, and every backup promoted', () => {
    const shapes = extremeIRs(IR1);
    expect(shapes.map((ir) => ir.services[0].backends.map((b) => b.index))).toEqual([[0, 1, 2], [3, 4]]);
    expect(extremeIRs({ file: 'x', services: [svc('n', [be(0, '10.0.0.1')])] })).toHaveLength(1);
  });
});
