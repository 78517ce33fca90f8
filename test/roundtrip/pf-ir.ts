/** Hand-built IR for the pf tests (the spec parser is not needed to exercise the targets). */
import type { Backend, IR, Service } from '../../src/ir/types.js';

export const loc = { file: 'spec.yaml', line: 1, column: 1 };

export interface BackendInput {
  address?: string | null;
  port?: number;
  weight?: number;
  backup?: boolean;
  keepsPort?: boolean;
}

export interface ServiceInput extends Partial<Omit<Service, 'backends' | 'vip' | 'loc'>> {
  name: string;
  vip?: string | null;
  backends: BackendInput[];
}

export function service(s: ServiceInput): Service {
  const family = s.family ?? ((s.vip ?? '').includes(':') || s.backends.some((b) => (b.address ?? '').includes(':')) ? 'ipv6' : 'ipv4');
  let vip: Service['vip'] = null;
  if (s.vip) {
    const [address, len] = s.vip.split('/');
    const full = family === 'ipv4' ? 32 : 128;
    const prefixLength = len ? Number(len) : full;
    vip = { address, prefixLength, isHost: prefixLength === full };
  }
  const port = s.port ?? 80;
  const backends: Backend[] = s.backends.map((b, index) => ({
    index,
    address: b.address === undefined ? null : b.address,
    port: b.port ?? port,
    keepsPort: b.keepsPort ?? false,
    weight: b.weight ?? 1,
    backup: b.backup ?? false,
    health: null,
    loc: { ...loc, line: 10 + index },
  }));
  return {
    name: s.name,
    family,
    vip,
    port,
    ports: s.ports ?? [{ from: port, to: port }],
    allow: s.allow ?? null,
    protocol: s.protocol ?? 'tcp',
    interface: s.interface ?? null,
    mode: s.mode ?? 'nth',
    hashFields: s.hashFields ?? (s.mode === 'hash' ? ['saddr'] : []),
    sticky: s.sticky ?? null,
    local: s.local ?? false,
    backends,
    health: null,
    loc: { service: loc, name: loc, backends: loc, vip: { ...loc, line: 2 }, mode: { ...loc, line: 3 }, sticky: { ...loc, line: 4 } },
  };
}

export function ir(...services: Service[]): IR {
  return { file: 'spec.yaml', services };
}

/** Seed 000: eight local instances on ports 4001-4008 behind port 4000 on a /20, rotated in turn (iptables statistic nth). */
export const seed000 = service({
  name: 'game',
  vip: '198.51.240.0/20',
  port: 4000,
  interface: 'lagg0',
  mode: 'nth',
  backends: [4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008].map((port) => ({ address: null, port })),
});

/** Seed 002: ten web servers behind a CARP address, round-robin, sticky source, port 80. */
export const seed002 = service({
  name: 'www',
  vip: '192.168.1.51',
  port: 80,
  interface: 'em0',
  mode: 'nth',
  sticky: { timeoutSeconds: 300 },
  backends: ['192.168.10.20', '192.168.10.21', '192.168.10.22', '192.168.10.23', '192.168.10.24',
    '192.168.10.30', '192.168.10.31', '192.168.10.32', '192.168.10.33', '192.168.10.34'].map((address) => ({ address })),
});
