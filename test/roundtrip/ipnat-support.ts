/**
 * Test support for the ipnat target: a small IR factory (the spec parser is
 * not needed to build services by hand) and the meaning an IR service should
 * have once translated, in the model of grammars/ipnat/meaning.ts. The
 * expectation is derived from the IR alone, never from the emitter.
 */
import type { SourceLocation } from '../../src/diagnostics/diagnostic.js';
import type { Backend, IR, Service } from '../../src/ir/types.js';
import type { IpnatMeaning, RedirectMeaning } from '../../grammars/ipnat/index.js';

export const at = (line: number, column = 1): SourceLocation => ({ file: 'spec.yaml', line, column });

export interface BackendInput {
  address: string | null;
  port: number;
  weight?: number;
  backup?: boolean;
}

export function makeService(over: Partial<Omit<Service, 'backends'>> & { backends: BackendInput[] }, line = 1): Service {
  const family = over.family ?? 'ipv4';
  const backends: Backend[] = over.backends.map((b, index) => ({
    index,
    address: b.address,
    port: b.port,
    keepsPort: false,
    weight: b.weight ?? 1,
    backup: b.backup ?? false,
    health: null,
    loc: at(line + 10 + index, 7),
  }));
  return {
    name: over.name ?? 'web',
    family,
    vip: over.vip === undefined ? { address: family === 'ipv4' ? '192.0.2.10' : '2001:db8::10', prefixLength: family === 'ipv4' ? 32 : 128, isHost: true } : over.vip,
    port: over.port ?? 80,
    ports: [{ from: over.port ?? 80, to: over.port ?? 80 }],
    allow: null,
    protocol: over.protocol ?? 'tcp',
    interface: over.interface === undefined ? 'em0' : over.interface,
    mode: over.mode ?? 'nth',
    hashFields: over.hashFields ?? [],
    sticky: over.sticky ?? null,
    local: over.local ?? false,
    backends,
    health: over.health ?? null,
    loc: {
      service: at(line, 3),
      name: at(line, 9),
      vip: at(line + 1, 10),
      port: at(line + 2, 11),
      protocol: at(line + 3, 15),
      interface: at(line + 4, 16),
      mode: at(line + 5, 11),
      sticky: at(line + 6, 13),
      local: at(line + 7, 12),
      family: at(line + 8, 13),
      backends: at(line + 9, 5),
    },
  };
}

export function makeIR(services: Service[]): IR {
  return { file: 'spec.yaml', services };
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** A comparable form of one redirect: members with turns divided by their common factor, sorted. */
export interface NormalRedirect {
  interface: string;
  family: string;
  protocol: string;
  match: string;
  ports: string;
  policy: 'single' | 'rotate';
  sticky: boolean;
  members: string[];
}

function normalMembers(members: { key: string; turns: number }[]): string[] {
  const g = members.reduce((acc, m) => gcd(acc, m.turns), 0) || 1;
  return members.map((m) => `${m.key} x${m.turns / g}`).sort();
}

export function normalizeRedirect(r: RedirectMeaning): NormalRedirect {
  return {
    interface: r.interface,
    family: r.family,
    protocol: r.protocol,
    match: `${r.match.address}/${r.match.prefixLength}`,
    ports: `${r.ports.lo}-${r.ports.hi}`,
    policy: r.policy,
    sticky: r.sticky,
    members: normalMembers(r.members.map((m) => ({ key: `${m.destination.kind === 'host' ? m.destination.address : 'local'}:${m.port}`, turns: m.turns }))),
  };
}

/** What a service accepted by the ipnat target must mean. */
export function expectedRedirect(svc: Service): NormalRedirect {
  const prim = svc.backends.filter((b) => !b.backup);
  const byKey = new Map<string, number>();
  for (const b of prim) {
    const key = `${b.address ?? 'local'}:${b.port}`;
    byKey.set(key, (byKey.get(key) ?? 0) + b.weight);
  }
  const total = prim.reduce((s, b) => s + b.weight, 0);
  return {
    interface: svc.interface!,
    family: svc.family,
    protocol: svc.protocol,
    match: `${svc.vip!.address}/${svc.vip!.prefixLength}`,
    ports: `${svc.port}-${svc.port}`,
    policy: byKey.size > 1 || (total > 1 && prim.length > 1) ? 'rotate' : 'single',
    sticky: svc.sticky !== null,
    members: normalMembers([...byKey].map(([key, turns]) => ({ key, turns }))),
  };
}

export function normalizeNat(m: IpnatMeaning): NormalRedirect[] {
  return m.redirects.map(normalizeRedirect).sort((a, b) => (a.match + a.ports + a.protocol + a.interface < b.match + b.ports + b.protocol + b.interface ? -1 : 1));
}

export function expectedNat(ir: IR): NormalRedirect[] {
  return ir.services.map(expectedRedirect).sort((a, b) => (a.match + a.ports + a.protocol + a.interface < b.match + b.ports + b.protocol + b.interface ? -1 : 1));
}
