// Hand-built IR for the iptables tests (the spec parser is not needed to exercise the emitter).
import type { Backend, HashField, IR, Mode, Service } from '../../src/ir/types.js';

const loc = { file: 'test.yaml', line: 1, column: 1 };

export interface SvcInput {
  name: string;
  family?: 'ipv4' | 'ipv6';
  vip?: string | null;
  port?: number;
  protocol?: 'tcp' | 'udp';
  interface?: string | null;
  mode?: Mode;
  hash?: HashField[];
  sticky?: number | null;
  local?: boolean;
  backends: Array<{ address: string | null; port?: number; weight?: number; backup?: boolean }>;
}

export function svc(s: SvcInput): Service {
  const family = s.family ?? (s.vip && s.vip.includes(':') ? 'ipv6' : 'ipv4');
  const full = family === 'ipv4' ? 32 : 128;
  let vip: Service['vip'] = null;
  if (s.vip) {
    const [address, len] = s.vip.split('/');
    const prefixLength = len ? Number(len) : full;
    vip = { address, prefixLength, isHost: prefixLength === full };
  }
  const port = s.port ?? 80;
  const backends: Backend[] = s.backends.map((b, index) => ({
    index,
    address: b.address,
    port: b.port ?? port,
    keepsPort: false,
    weight: b.weight ?? 1,
    backup: b.backup ?? false,
    health: null,
    loc,
  }));
  const mode = s.mode ?? 'nth';
  return {
    name: s.name,
    family,
    vip,
    port,
    ports: [{ from: port, to: port }],
    allow: null,
    protocol: s.protocol ?? 'tcp',
    interface: s.interface ?? null,
    mode,
    hashFields: mode === 'hash' ? (s.hash ?? ['saddr']) : [],
    sticky: s.sticky ? { timeoutSeconds: s.sticky } : null,
    local: s.local ?? false,
    backends,
    health: null,
    loc: { service: loc, name: loc, backends: loc },
  };
}

export function ir(...services: SvcInput[]): IR {
  return { file: 'test.yaml', services: services.map(svc) };
}
