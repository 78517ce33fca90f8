/**
 * Positioned syntax tree → validated, normalized IR. Every problem is
 * reported (not just the first) with the position of the value at fault;
 * the IR is produced only when there are no errors. Field types, ranges,
 * enums and patterns come from the spec definition (spec/definition.ts,
 * through ir/reader.ts); what is checked here is what needs more than one
 * field: families, defaults that depend on other fields, duplicates, overlaps.
 */
import type { DiagnosticBag, SourceLocation } from '../diagnostics/diagnostic.js';
import type { SMap, SNode, SScalar } from '../spec/ast.js';
import { describeNode } from '../spec/ast.js';
import { BLOCKS, defaultOf, printable, type FieldType } from '../spec/definition.js';
import { bitsOf, parseAddress } from './address.js';
import { parseDuration } from './duration.js';
import { enumValue, MapReader, readInteger } from './reader.js';
import {
  HASH_FIELDS,
  type Associations,
  type Backend,
  type Family,
  type HashField,
  type HealthCheck,
  type IR,
  type Mode,
  type Prefix,
  type Service,
  type ServiceLocations,
  type SourceNat,
} from './types.js';

/** The spec's own source-nat: every service's default. */
interface SpecSourceNat {
  value: { word: string } | { address: string; family: Family };
  loc: SourceLocation;
}

export { MAX_BACKENDS, MAX_STICKY_SECONDS, MAX_WEIGHT } from '../spec/definition.js';

const BACKENDS_FIELD = BLOCKS.service.fields.backends.type as Extract<FieldType, { kind: 'list' }>;
const HASH_FIELD = BLOCKS.service.fields.hash.type as Extract<FieldType, { kind: 'list' }>;
const HASH_ENUM = HASH_FIELD.items[0] as Extract<FieldType, { kind: 'enum' }>;

export function validateSpec(root: SNode, file: string, bag: DiagnosticBag): IR | null {
  if (root.kind !== 'map') {
    bag.error('LBC2000', `the spec must be a mapping with "version" and "services", not ${describeNode(root)}`, root.loc);
    return null;
  }
  const top = new MapReader(root, bag, 'spec');
  const version = top.scalar('version');
  if (!version) {
    if (!top.has('version')) bag.error('LBC2005', 'the spec needs "version: 1" at the top', root.loc);
  } else if (version.value !== 1) {
    bag.error('LBC2006', `unsupported spec version ${describeNode(version)}; this lbc reads version 1`, version.loc);
  }
  const specNat: SpecSourceNat | null = top.addressOrWord('source-nat') ?? null;
  const servicesNode = top.node('services');
  const services: Service[] = [];
  if (!servicesNode) {
    bag.error('LBC2005', 'the spec needs a "services" list', root.loc);
  } else if (servicesNode.kind !== 'seq' || servicesNode.items.length === 0) {
    bag.error('LBC2007', `"services" must be a non-empty list, not ${describeNode(servicesNode)}`, servicesNode.loc);
  } else {
    for (const item of servicesNode.items) {
      const svc = validateService(item, bag, specNat);
      if (svc) services.push(svc);
    }
    checkAcrossServices(services, bag);
  }
  if (bag.hasErrors) return null;
  return { file, services };
}

function validateService(node: SNode, bag: DiagnosticBag, specNat: SpecSourceNat | null): Service | null {
  if (node.kind !== 'map') {
    bag.error('LBC2010', `each service must be a mapping, not ${describeNode(node)}`, node.loc);
    return null;
  }
  const before = bag.items.length;
  const r = new MapReader(node, bag, 'service');
  const label = (() => {
    const n = r.node('name');
    return n && n.kind === 'scalar' && typeof n.value === 'string' ? `service "${printable(n.value)}"` : 'this service';
  })();

  const name = r.text('name');
  if (!r.has('name')) bag.error('LBC2011', 'a service needs a "name"', node.loc);

  let family: Family | undefined;
  let familyLoc: SourceLocation | undefined;
  const famField = r.oneOf<Family>('family');
  if (famField) {
    family = famField.value;
    familyLoc = famField.loc;
  }
  const settleFamily = (f: Family, loc: SourceLocation): void => {
    if (family === undefined) {
      family = f;
      familyLoc = loc;
    } else if (family !== f) {
      bag.error('LBC2013', `${label} mixes address families: this address is ${f === 'ipv4' ? 'IPv4' : 'IPv6'} but the service is ${family === 'ipv4' ? 'IPv4' : 'IPv6'}${familyLoc ? ` (from line ${familyLoc.line})` : ''}`, loc, [
        'write one service per address family',
      ]);
    }
  };

  let vip: Prefix | null = null;
  const vipStr = r.string('vip');
  if (vipStr) {
    const res = parseAddress(vipStr.value, true);
    if (!res.ok) bag.error('LBC2014', `vip: ${res.message}`, vipStr.loc, res.hint ? [res.hint] : undefined);
    else {
      vip = res.prefix;
      settleFamily(res.family, vipStr.loc);
    }
  }

  const port = r.integer('port');
  if (!r.has('port')) bag.error('LBC2015', `${label} needs a "port" (1-65535)`, node.loc);
  const protocol = r.oneOf<Service['protocol']>('protocol');
  const iface = r.text('interface')?.value ?? null;
  const mode = r.oneOf<Mode>('mode')?.value ?? defaultOf<Mode>('service', 'mode');

  let hashFields: HashField[] = [];
  const hashNode = r.node('hash');
  if (hashNode) {
    if (mode !== 'hash') bag.error('LBC2017', '"hash" fields only apply to mode: hash', r.keyLoc('hash'), ['add "mode: hash" or remove "hash"']);
    const items = hashNode.kind === 'seq' ? hashNode.items : [hashNode];
    const seen = new Set<HashField>();
    for (const it of items) {
      if (it.kind !== 'scalar' || typeof it.value !== 'string' || enumValue(HASH_ENUM, it.value) === undefined) {
        bag.error('LBC2018', `hash field must be one of ${HASH_ENUM.values.join(', ')}, not ${describeNode(it)}`, it.loc);
        continue;
      }
      const f = it.value as HashField;
      if (seen.has(f)) bag.error('LBC2018', `hash field "${f}" is listed twice`, it.loc);
      seen.add(f);
    }
    if (items.length < HASH_FIELD.minItems) bag.error('LBC2018', 'hash needs at least one field', hashNode.loc);
    hashFields = HASH_FIELDS.filter((f) => seen.has(f));
  } else if (mode === 'hash') hashFields = [...defaultOf<HashField[]>('service', 'hash')];

  const stickyMs = r.duration('sticky', 'sticky');
  const sticky: Service['sticky'] = stickyMs ? { timeoutSeconds: stickyMs.value / 1000 } : null;

  const local = r.boolean('local');
  const health = r.node('health') ? readHealth(r.node('health')!, bag, null) : null;
  const associations = r.node('associations') ? readAssociations(r.node('associations')!, bag) : null;
  const ownNat = r.addressOrWord('source-nat');
  const nat = ownNat ?? specNat;

  const backends: Backend[] = [];
  const beNode = r.node('backends');
  if (!beNode) bag.error('LBC2020', `${label} needs a "backends" list`, node.loc);
  else if (beNode.kind !== 'seq' || beNode.items.length < BACKENDS_FIELD.minItems) bag.error('LBC2020', `"backends" must be a non-empty list, not ${describeNode(beNode)}`, beNode.loc);
  else if (beNode.items.length > BACKENDS_FIELD.maxItems!) bag.error('LBC2020', `a service may have at most ${BACKENDS_FIELD.maxItems} backends`, beNode.loc);
  else {
    const seen = new Map<string, SourceLocation>();
    beNode.items.forEach((item, index) => {
      const be = readBackend(item, index, port?.value ?? null, health, bag, settleFamily);
      if (!be) return;
      const key = `${be.address ?? 'local'}|${be.port}`;
      const prev = seen.get(key);
      if (prev) bag.error('LBC2021', `backend ${be.address ?? '(this host)'} port ${be.port} is listed twice (first at line ${prev.line})`, be.loc, ['give the backend a weight instead of listing it twice']);
      else seen.set(key, be.loc);
      backends.push(be);
    });
    if (backends.length === beNode.items.length && !backends.some((b) => !b.backup)) {
      bag.error('LBC2022', `${label} has only backup backends; at least one must be a primary`, beNode.loc);
    }
  }

  const serviceFamily = family ?? 'ipv4';
  let sourceNat: SourceNat | null = null;
  if (nat && 'address' in nat.value) {
    if (nat.value.family !== serviceFamily) {
      const fam = (f: Family) => (f === 'ipv4' ? 'IPv4' : 'IPv6');
      bag.error('LBC2071', `${label} is ${fam(serviceFamily)}, but its source-nat address ${nat.value.address} is ${fam(nat.value.family)}${ownNat ? '' : ` (the spec's source-nat, line ${nat.loc.line})`}`, ownNat ? nat.loc : node.loc, [
        ownNat ? 'give an address of the service\'s family, or masquerade' : 'give this service its own source-nat: masquerade, an address of its family, or none',
      ]);
    } else sourceNat = { kind: 'address', address: nat.value.address };
  } else if (nat && 'word' in nat.value && nat.value.word === 'masquerade') sourceNat = { kind: 'masquerade' };

  if (associations) {
    const at = r.loc('associations')!;
    const proto = protocol?.value ?? defaultOf('service', 'protocol');
    if (proto !== 'udp') {
      bag.error('LBC2061', `${label}: associations are for UDP services; this one is ${proto}`, r.keyLoc('associations') ?? at, [
        'a TCP connection keeps its backend by itself; use sticky for source-address affinity across TCP connections',
      ]);
    }
    if (!vip || !vip.isHost) {
      bag.error('LBC2062', `${label}: associations need a single-address vip: a backend's packets leave from the vip, so it must be one address`, vip ? r.loc('vip')! : node.loc, [
        vip ? 'write the one address clients send to instead of the block' : 'add "vip: ADDRESS"',
      ]);
    }
    if (r.has('sticky')) bag.error('LBC2063', `${label}: sticky and associations both choose who keeps a backend; associations already keep each client address and port on its backend`, r.keyLoc('sticky')!, ['remove sticky']);
    if (local?.value) bag.error('LBC2063', `${label}: associations are kept for clients on the network; connections made on the balancer itself (local: true) are not associated`, r.keyLoc('local')!, ['remove local: true']);
    for (const be of backends) {
      if (be.address === null) {
        bag.error('LBC2064', `${label}: with associations every backend needs an address: only addresses are rewritten, and a port on the balancer itself would be the vip again`, be.loc, ['run the local instance under an address of its own, or remove associations']);
      } else if (port && be.port !== port.value) {
        bag.error('LBC2064', `${label}: with associations backends run on the service port (${port.value}), not ${be.port}: only addresses are rewritten, so clients and backends see the same ports`, be.loc, [
          `move the backend to port ${port.value}, or remove associations (then ports may differ)`,
        ]);
      }
    }
    if (associations.backendInitiated && sourceNat) {
      bag.error('LBC2065', `${label}: backend-initiated associations need backends that see their clients' addresses; with source-nat they see the balancer's, so they cannot address a client`, r.keyLoc('associations') ?? at, [
        ownNat ? 'remove source-nat (route the backends\' replies through the balancer), or set backend-initiated: false' : 'add "source-nat: none" to this service (route its backends\' replies through the balancer), or set backend-initiated: false',
      ]);
    }
  }

  if (bag.items.length > before && bag.items.slice(before).some((d) => d.severity === 'error')) return null;
  const loc: ServiceLocations = {
    service: node.loc,
    name: name!.loc,
    vip: r.loc('vip'),
    port: r.loc('port'),
    protocol: r.loc('protocol'),
    interface: r.loc('interface'),
    mode: r.loc('mode'),
    hash: r.loc('hash'),
    sticky: r.loc('sticky'),
    local: r.loc('local'),
    health: r.loc('health'),
    family: r.loc('family'),
    associations: r.loc('associations'),
    sourceNat: ownNat?.loc ?? (sourceNat ? specNat?.loc : undefined),
    backends: beNode!.loc,
  };
  return {
    name: name!.value,
    family: family ?? 'ipv4',
    vip,
    port: port!.value,
    protocol: protocol?.value ?? defaultOf('service', 'protocol'),
    interface: iface,
    mode,
    hashFields,
    sticky,
    local: local?.value ?? defaultOf('service', 'local'),
    associations,
    sourceNat,
    backends,
    health,
    loc,
  };
}

function readAssociations(node: SNode, bag: DiagnosticBag): Associations | null {
  if (node.kind !== 'map') {
    bag.error('LBC2060', `"associations" must be a mapping such as { max: 1048576, idle: 1d }, not ${describeNode(node)}`, node.loc, ['write "associations: {}" for the defaults']);
    return null;
  }
  // A field in error leaves its default here; the service is refused anyway, and what the rest of it
  // contradicts about associations is still reported.
  const r = new MapReader(node, bag, 'associations');
  const max = r.integer('max')?.value ?? defaultOf<number>('associations', 'max');
  const idleMs = r.duration('idle', 'associations idle')?.value;
  const backendInitiated = r.boolean('backend-initiated')?.value ?? defaultOf<boolean>('associations', 'backend-initiated');
  return { max, idleSeconds: idleMs === undefined ? null : idleMs / 1000, backendInitiated };
}

function readBackend(
  node: SNode,
  index: number,
  servicePort: number | null,
  serviceHealth: HealthCheck | null,
  bag: DiagnosticBag,
  settleFamily: (f: Family, loc: SourceLocation) => void,
): Backend | null {
  const before = bag.items.length;
  let address: string | null = null;
  let port: number | null = servicePort;
  let weight = defaultOf<number>('backend', 'weight');
  let backup = defaultOf<boolean>('backend', 'backup');
  let health = serviceHealth;
  if (node.kind === 'scalar' && typeof node.value === 'string') {
    const parsed = parseShorthand(node.value);
    if (!parsed) {
      bag.error('LBC2030', `backend "${printable(node.value)}" is not ADDRESS, ADDRESS:PORT, [IPv6]:PORT or :PORT`, node.loc);
      return null;
    }
    if (parsed.address !== null) {
      const res = parseAddress(parsed.address, false);
      if (!res.ok) bag.error('LBC2031', `backend address: ${res.message}`, node.loc, res.hint ? [res.hint] : undefined);
      else {
        address = res.prefix.address;
        settleFamily(res.family, node.loc);
      }
    }
    if (parsed.port !== null) {
      if (parsed.port < 1 || parsed.port > 65535) bag.error('LBC2004', `backend port must be between 1 and 65535, not ${parsed.port}`, node.loc);
      port = parsed.port;
    }
  } else if (node.kind === 'map') {
    const r = new MapReader(node, bag, 'backend');
    const a = r.string('address');
    if (a) {
      const res = parseAddress(a.value, false);
      if (!res.ok) bag.error('LBC2031', `backend address: ${res.message}`, a.loc, res.hint ? [res.hint] : undefined);
      else {
        address = res.prefix.address;
        settleFamily(res.family, a.loc);
      }
    }
    const p = r.integer('port');
    if (p) port = p.value;
    const w = r.integer('weight');
    if (w) weight = w.value;
    const b = r.boolean('backup');
    if (b) backup = b.value;
    const h = r.node('health');
    if (h) health = readHealth(h, bag, serviceHealth);
    if (!r.block.oneOfRequired!.some((k) => r.has(k))) bag.error('LBC2032', 'a backend needs an "address", a "port", or both', node.loc);
  } else {
    bag.error('LBC2030', `a backend must be a mapping or a string like 10.0.0.1:8080, not ${describeNode(node)}`, node.loc);
    return null;
  }
  if (port === null) {
    if (bag.items.length === before) bag.error('LBC2033', 'backend port unknown: the service has no valid port', node.loc);
    return null;
  }
  if (bag.items.length > before) return null;
  return { index, address, port, weight, backup, health, loc: node.loc };
}

/** "10.0.0.1", "10.0.0.1:80", "[2001:db8::1]:80", "2001:db8::1", ":4001". */
function parseShorthand(s: string): { address: string | null; port: number | null } | null {
  let m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s);
  if (m) return { address: m[1], port: m[2] ? Number(m[2]) : null };
  m = /^:(\d{1,5})$/.exec(s);
  if (m) return { address: null, port: Number(m[1]) };
  m = /^([0-9.]+):(\d{1,5})$/.exec(s);
  if (m) return { address: m[1], port: Number(m[2]) };
  if (/^[0-9A-Fa-f:.]+$/.test(s)) return { address: s, port: null };
  return null;
}

const HEALTH_DEFAULTS: HealthCheck = {
  check: defaultOf('health', 'check'),
  intervalMs: parseDuration(defaultOf('health', 'interval'))!,
  timeoutMs: parseDuration(defaultOf('health', 'timeout'))!,
  rise: defaultOf('health', 'rise'),
  fall: defaultOf('health', 'fall'),
  port: null,
  http: null,
  banner: null,
};

function readHealth(node: SNode, bag: DiagnosticBag, base: HealthCheck | null): HealthCheck | null {
  if (node.kind !== 'map') {
    bag.error('LBC2040', `"health" must be a mapping such as { check: tcp, interval: 1s }, not ${describeNode(node)}`, node.loc);
    return null;
  }
  const before = bag.items.length;
  const r = new MapReader(node, bag, 'health');
  const from = base ?? HEALTH_DEFAULTS;
  const check = r.oneOf<HealthCheck['check']>('check')?.value ?? from.check;
  const intervalMs = r.duration('interval', 'health interval')?.value ?? from.intervalMs;
  const timeoutMs = r.duration('timeout', 'health timeout')?.value ?? (r.has('interval') && !r.has('timeout') ? Math.min(from.timeoutMs, intervalMs) : from.timeoutMs);
  if (timeoutMs > intervalMs) bag.error('LBC2042', `health timeout (${timeoutMs}ms) must not exceed the interval (${intervalMs}ms)`, r.loc('timeout') ?? node.loc);
  const rise = r.integer('rise')?.value ?? from.rise;
  const fall = r.integer('fall')?.value ?? from.fall;
  const port = r.integer('port')?.value ?? from.port;

  const httpKeys = ['path', 'status', 'host', 'method'];
  const bannerKeys = ['send', 'expect'];
  for (const k of httpKeys) if (r.has(k) && check !== 'http') bag.error('LBC2043', `"${k}" only applies to check: http`, r.keyLoc(k));
  for (const k of bannerKeys) if (r.has(k) && check !== 'banner') bag.error('LBC2043', `"${k}" only applies to check: banner`, r.keyLoc(k));

  let http: HealthCheck['http'] = null;
  if (check === 'http') {
    const prev = from.check === 'http' ? from.http : null;
    http = {
      path: r.text('path')?.value ?? prev?.path ?? defaultOf('health', 'path'),
      status: r.integer('status')?.value ?? prev?.status ?? defaultOf('health', 'status'),
      host: r.text('host')?.value ?? prev?.host ?? null,
      method: r.oneOf<'GET' | 'HEAD'>('method')?.value ?? prev?.method ?? defaultOf('health', 'method'),
    };
  }
  let banner: HealthCheck['banner'] = null;
  if (check === 'banner') {
    const prev = from.check === 'banner' ? from.banner : null;
    const send = r.text('send');
    const exp = r.text('expect')?.value ?? prev?.expect;
    if (exp === undefined && !r.has('expect')) bag.error('LBC2046', 'check: banner needs "expect" (the start of the first line the backend sends, e.g. "220")', node.loc);
    banner = { send: send?.value ?? prev?.send ?? null, expect: exp ?? '' };
  }
  if (bag.items.slice(before).some((d) => d.severity === 'error')) return null;
  return { check, intervalMs, timeoutMs, rise, fall, port, http, banner };
}

/** Two services may not claim the same traffic: same family, protocol, port and the same (or overlapping CIDR) vip. */
function checkAcrossServices(services: Service[], bag: DiagnosticBag): void {
  const names = new Map<string, Service>();
  for (const s of services) {
    const prev = names.get(s.name);
    if (prev) bag.error('LBC2050', `service name "${s.name}" is used twice (first at line ${prev.loc.name.line})`, s.loc.name);
    else names.set(s.name, s);
  }
  checkAssociationBackends(services, bag);
  checkSourceNatBackends(services, bag);
  // Bucket by what every target dispatches on, so the check stays linear for 100,000 services.
  const buckets = new Map<string, Service[]>();
  for (const s of services) {
    const k = `${s.family}|${s.protocol}|${s.port}`;
    let b = buckets.get(k);
    if (!b) buckets.set(k, (b = []));
    b.push(s);
  }
  for (const group of buckets.values()) {
    const exact = new Map<string, Service>();
    const cidrs: Service[] = [];
    for (const s of group) {
      const key = s.vip ? `${s.vip.address}/${s.vip.prefixLength}` : 'any';
      const prev = exact.get(key);
      if (prev) {
        bag.error('LBC2051', `services "${prev.name}" and "${s.name}" both claim ${s.protocol} port ${s.port} on ${s.vip ? key : 'any address'}`, s.loc.vip ?? s.loc.port ?? s.loc.service, [
          prev.interface !== s.interface ? 'lbc dispatches on address, protocol and port; an interface does not tell services apart — give each its own vip or port' : 'merge them into one service or give each its own vip or port',
        ]);
        continue;
      }
      exact.set(key, s);
      if (s.vip && !s.vip.isHost) cidrs.push(s);
    }
    // Nested CIDR blocks would make the winner depend on the target; refuse them. Prefixes either nest or are
    // disjoint, so after sorting by start only the block reaching furthest so far can contain the next one.
    if (cidrs.length > 1) {
      const ranged = cidrs.map((s) => {
        const bits = bitsOf(s.vip!.address, s.family);
        const keep = bits.slice(0, s.vip!.prefixLength);
        return { s, start: bits, end: keep.padEnd(bits.length, '1') };
      });
      ranged.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.s.vip!.prefixLength - b.s.vip!.prefixLength));
      let widest = ranged[0];
      for (const cur of ranged.slice(1)) {
        if (cur.start <= widest.end) {
          const a = widest.s, b = cur.s;
          bag.error('LBC2052', `vip ${b.vip!.address}/${b.vip!.prefixLength} of "${b.name}" overlaps ${a.vip!.address}/${a.vip!.prefixLength} of "${a.name}" on the same protocol and port`, b.loc.vip);
        }
        if (cur.end > widest.end) widest = cur;
      }
    }
  }
}

/**
 * A backend's packet names the service it answers for only by its source address and port, and with
 * associations the balancer acts on every such packet (it rewrites the source to the vip, or drops it).
 * So a UDP backend address and port of a service with associations may serve no other UDP service.
 */
function checkAssociationBackends(services: Service[], bag: DiagnosticBag): void {
  const owner = new Map<string, Service>();
  const key = (s: Service, b: Backend) => `${s.family}|${b.address}|${b.port}`;
  for (const s of services) {
    if (!s.associations) continue;
    for (const b of s.backends) {
      const prev = owner.get(key(s, b));
      if (prev && prev !== s) {
        bag.error('LBC2066', `backend ${b.address} port ${b.port} serves both "${prev.name}" and "${s.name}", which have associations: its packets would not say which vip they leave from`, b.loc, ['give each service its own backend addresses or port']);
      }
      owner.set(key(s, b), s);
    }
  }
  for (const s of services) {
    if (s.associations || s.protocol !== 'udp') continue;
    for (const b of s.backends) {
      const a = b.address === null ? undefined : owner.get(key(s, b));
      if (a) {
        bag.error('LBC2066', `backend ${b.address} port ${b.port} of "${s.name}" is also a backend of "${a.name}", which has associations: the balancer would take its replies for "${a.name}"'s`, b.loc, [
          `give "${s.name}" other backend addresses or another port, or give it associations on its own backends`,
        ]);
      }
    }
  }
}

/**
 * Source NAT is decided by where a connection was sent (nftables and ipnat match the backend's address,
 * protocol and port after the destination NAT), so services sharing a backend must agree on it.
 */
function checkSourceNatBackends(services: Service[], bag: DiagnosticBag): void {
  const seen = new Map<string, Service>();
  const natText = (s: Service) => (s.sourceNat === null ? 'none' : s.sourceNat.kind === 'masquerade' ? 'masquerade' : s.sourceNat.address);
  for (const s of services) {
    for (const b of s.backends) {
      if (b.address === null) continue;
      const k = `${s.family}|${s.protocol}|${b.address}|${b.port}`;
      const prev = seen.get(k);
      if (!prev) seen.set(k, s);
      else if (prev !== s && natText(prev) !== natText(s)) {
        bag.error('LBC2072', `backend ${b.address} port ${b.port} serves "${prev.name}" (source-nat ${natText(prev)}) and "${s.name}" (source-nat ${natText(s)}): source NAT is decided by the backend a connection goes to, so they must agree`, b.loc, [
          'give both services the same source-nat, or give one of them other backend addresses or ports',
        ]);
      }
    }
  }
}

export type { SScalar, SMap };
export { readInteger };
