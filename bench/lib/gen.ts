/**
 * Synthetic specs for the benchmark: N services × 8 backends, as YAML text and as JSON text carrying
 * the same services (parsing is part of compile; JSON is what a program generating the spec writes).
 *
 * Address plan (private ranges only; the kernel parts use them inside their own namespaces):
 *   VIPs      10.96.0.0/14   service i -> 10.96.0.0 + 1 + i          (up to 262,142 services)
 *   backends  10.64.0.0/12   service i, backend j -> 10.64.0.0 + 1 + 8i + j
 *   IPv6      fd00:96::/64 VIPs, fd00:64::/48 backends (unique local addresses, RFC 4193)
 */
export const BACKENDS_PER_SERVICE = 8;
export const SERVICE_PORT = 80;
export const BACKEND_PORT = 8080;
export const VIP_BASE = ipv4ToInt('10.96.0.0') + 1;
export const BACKEND_BASE = ipv4ToInt('10.64.0.0') + 1;
export const BACKEND_NET = '10.64.0.0/12';
export const VIP_NET = '10.96.0.0/14';

export type SpecStyle =
  /** IPv4, mode random, backends on port 8080: what iptables / nftables / kube-proxy all express. */
  | 'linux4'
  /** IPv6 variant of linux4 for ip6tables. */
  | 'linux6'
  /** IPv4, round-robin, backends on the service's own port, equal weights: within pf, pf-openbsd and ipnat. */
  | 'bsd';

export function ipv4ToInt(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}
export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function serviceName(i: number): string {
  return `svc-${i}`;
}

export interface GenService {
  name: string;
  vip: string;
  port: number;
  backends: Array<{ address: string; port: number }>;
}

export function vip4(i: number): string {
  return intToIpv4(VIP_BASE + i);
}
export function backend4(i: number, j: number): string {
  return intToIpv4(BACKEND_BASE + i * BACKENDS_PER_SERVICE + j);
}

/** The services of a style as data (the reference layouts are generated from the same data). */
export function genServices(n: number, style: SpecStyle): GenService[] {
  const out: GenService[] = [];
  const bport = style === 'bsd' ? SERVICE_PORT : BACKEND_PORT;
  for (let i = 0; i < n; i++) {
    const backends: GenService['backends'] = [];
    for (let j = 0; j < BACKENDS_PER_SERVICE; j++) {
      const address =
        style === 'linux6' ? `fd00:64:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::${(j + 1).toString(16)}` : backend4(i, j);
      backends.push({ address, port: bport });
    }
    const vip = style === 'linux6' ? `fd00:96::${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}:1` : vip4(i);
    out.push({ name: serviceName(i), vip, port: SERVICE_PORT, backends });
  }
  return out;
}

/**
 * YAML spec text; `change` swaps backend 0 of one service for a new address (the incremental-change case).
 * `layout`: 'block' writes everything in block style (each backend a mapping of address and port);
 * 'flow' writes backends as the README does, one flow mapping per line (`- { address: …, port: …, weight: 1 }`).
 */
export function genSpecText(n: number, style: SpecStyle, change?: { service: number }, layout: 'block' | 'flow' = 'block'): string {
  const mode = style === 'bsd' ? 'round-robin' : 'random';
  const lines: string[] = ['version: 1', 'services:'];
  const services = genServices(n, style);
  if (change) services[change.service].backends[0] = { ...services[change.service].backends[0], address: changedBackend(style, change.service) };
  for (const s of services) {
    lines.push(`  - name: ${s.name}`, ...(style === 'bsd' ? ['    interface: em0'] : []), `    vip: ${s.vip}`, `    port: ${s.port}`, `    mode: ${mode}`, '    backends:');
    for (const b of s.backends) {
      if (layout === 'flow') lines.push(`      - { address: ${b.address}, port: ${b.port}, weight: 1 }`);
      else lines.push(`      - address: ${b.address}`, `        port: ${b.port}`);
    }
  }
  return lines.join('\n') + '\n';
}

/**
 * The same spec as genSpecText() as JSON, one service per line (as a generator writing thousands of
 * services would, without pretty-printing each backend).
 */
export function genSpecJson(n: number, style: SpecStyle, change?: { service: number }): string {
  const mode = style === 'bsd' ? 'round-robin' : 'random';
  const services = genServices(n, style);
  if (change) services[change.service].backends[0] = { ...services[change.service].backends[0], address: changedBackend(style, change.service) };
  const lines = services.map((s) =>
    JSON.stringify({
      name: s.name,
      ...(style === 'bsd' ? { interface: 'em0' } : {}),
      vip: s.vip,
      port: s.port,
      mode,
      backends: s.backends.map((x) => (style === 'linux6' ? `[${x.address}]:${x.port}` : `${x.address}:${x.port}`)),
    }),
  );
  return `{"version": 1, "services": [\n${lines.join(',\n')}\n]}\n`;
}

/** Block YAML, flow-style YAML (backends as the README writes them) and JSON: the same services. */
export type SpecFormat = 'yaml' | 'yaml-flow' | 'json';

/** The spec text of a set in one format. */
export function genSpec(n: number, style: SpecStyle, format: SpecFormat, change?: { service: number }): string {
  if (format === 'json') return genSpecJson(n, style, change);
  return genSpecText(n, style, change, format === 'yaml-flow' ? 'flow' : 'block');
}

/** A replacement backend address outside every generated one (10.79.255.x / fd00:65::). */
export function changedBackend(style: SpecStyle, service: number): string {
  if (style === 'linux6') return `fd00:65::${(service & 0xffff).toString(16)}`;
  return intToIpv4(ipv4ToInt('10.79.0.0') + (service % 65000) + 1);
}

/**
 * The linux4 services in mode nth with unequal weights, as JSON: each service's 8 weights drawn from
 * 1–1000 by a fixed generator, so nearly every service has weights of its own (the costly case for
 * the composed rotation, src/targets/iptables/rotation.ts: its plans are cached by weights).
 */
export function genWeightedSpecJson(n: number): string {
  let seed = 20240601;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 1000 + 1;
  const lines = genServices(n, 'linux4').map((s) =>
    JSON.stringify({ name: s.name, vip: s.vip, port: s.port, mode: 'nth', backends: s.backends.map((x) => ({ address: x.address, port: x.port, weight: next() })) }),
  );
  return `{"version": 1, "services": [\n${lines.join(',\n')}\n]}\n`;
}
