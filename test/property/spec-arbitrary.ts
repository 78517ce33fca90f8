/**
 * fast-check generators of valid lbc specs (as JSON text, so every property
 * also exercises the parser and validator). Addresses come from documentation
 * and private ranges; each service gets its own port so services never
 * collide, which keeps every generated spec valid by construction.
 */
import fc from 'fast-check';

const octet = fc.integer({ min: 1, max: 254 });
const v4 = fc.tuple(octet, octet, octet).map(([a, b, c]) => `10.${a}.${b}.${c}`);
const v6 = fc.tuple(fc.integer({ min: 1, max: 0xffff }), fc.integer({ min: 1, max: 0xffff })).map(([a, b]) => `2001:db8:${a.toString(16)}::${b.toString(16)}`);
const port = fc.integer({ min: 1, max: 65535 });

export interface GenOptions {
  maxServices?: number;
  maxBackends?: number;
}

export function specArbitrary(opts: GenOptions = {}): fc.Arbitrary<string> {
  const maxBackends = opts.maxBackends ?? 6;
  const backend = (family: 'ipv4' | 'ipv6') =>
    fc.record(
      {
        address: fc.option(family === 'ipv4' ? v4 : v6, { nil: undefined, freq: 5 }),
        port: fc.option(port, { nil: undefined }),
        weight: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
        backup: fc.option(fc.boolean(), { nil: undefined, freq: 4 }),
      },
      { requiredKeys: [] },
    );
  const service = fc
    .record({
      family: fc.constantFrom('ipv4' as const, 'ipv6' as const),
      vipKind: fc.constantFrom('host', 'cidr', 'none'),
      protocol: fc.constantFrom('tcp', 'udp'),
      mode: fc.constantFrom('nth', 'random', 'hash'),
      hash: fc.subarray(['saddr', 'sport', 'daddr', 'dport'], { minLength: 1 }),
      sticky: fc.option(fc.constantFrom('30s', '10m', '1h'), { nil: undefined }),
      local: fc.boolean(),
      iface: fc.option(fc.constantFrom('eth0', 'lagg0', 'bond0.204', 'em1'), { nil: undefined }),
      cidrLen: fc.integer({ min: 8, max: 30 }),
      seed: fc.integer({ min: 1, max: 200 }),
      ports: fc.constantFrom('one', 'one', 'list', 'range'),
      allow: fc.option(fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 3 }), { nil: undefined, freq: 3 }),
    })
    .chain((s) =>
      fc.record({
        s: fc.constant(s),
        backends: fc.array(backend(s.family), { minLength: 1, maxLength: maxBackends }),
      }),
    );
  return fc.array(service, { minLength: 1, maxLength: opts.maxServices ?? 4 }).map((list) => {
    const services = list.map(({ s, backends }, i) => {
      const svcPort = 1000 + i;
      const seen = new Set<string>();
      const bes = backends
        .map((b) => {
          const out: Record<string, unknown> = {};
          if (b.address !== undefined) out.address = b.address;
          out.port = b.port ?? (b.address === undefined ? 20000 + i : undefined);
          if (out.port === undefined) delete out.port;
          if (b.weight !== undefined) out.weight = b.weight;
          if (b.backup) out.backup = true;
          return out;
        })
        .filter((b) => {
          const k = `${b.address ?? 'local'}|${b.port ?? svcPort}`;
          if (seen.has(k)) return false;
          seen.add(k);
          return true;
        });
      if (!bes.some((b) => !b.backup)) delete bes[0].backup;
      const svc: Record<string, unknown> = { name: `svc-${i}`, port: svcPort, protocol: s.protocol, mode: s.mode, family: s.family, backends: bes };
      // Several ports, each service in ports of its own: 1000+i and 2000+i, or 3000+20i to 3000+20i+5.
      if (s.ports !== 'one') {
        delete svc.port;
        svc.ports = s.ports === 'list' ? [svcPort, 2000 + i] : [`${3000 + 20 * i}-${3000 + 20 * i + 5}`];
      }
      if (s.allow) svc.allow = s.allow.map((a) => (s.family === 'ipv4' ? (a % 2 ? `198.51.${a}.0/24` : `192.0.2.${a}`) : a % 2 ? `2001:db8:f${a.toString(16)}::/48` : `2001:db8:e::${a.toString(16)}`));
      if (s.mode === 'hash') svc.hash = s.hash;
      if (s.vipKind === 'host') svc.vip = s.family === 'ipv4' ? `198.51.100.${s.seed}` : `2001:db8::${s.seed.toString(16)}`;
      if (s.vipKind === 'cidr') svc.vip = s.family === 'ipv4' ? cidr4(s.seed, s.cidrLen) : `2001:db8:${s.seed.toString(16)}::/48`;
      if (s.sticky) svc.sticky = s.sticky;
      if (s.local) svc.local = true;
      if (s.iface) svc.interface = s.iface;
      return svc;
    });
    return JSON.stringify({ version: 1, services }, null, 1);
  });
}

function cidr4(seed: number, len: number): string {
  const n = ((172 * 256 + 16) * 256 + seed) * 256;
  const size = 2 ** (32 - len);
  const net = n - (n % size);
  return `${[24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256).join('.')}/${len}`;
}
