/**
 * Positioned syntax tree → validated, normalized IR. Every problem is
 * reported (not just the first) with the position of the value at fault;
 * the IR is produced only when there are no errors.
 */
import type { DiagnosticBag, SourceLocation } from '../diagnostics/diagnostic.js';
import type { SMap, SNode, SScalar } from '../spec/ast.js';
import { describeNode } from '../spec/ast.js';
import { bitsOf, parseAddress } from './address.js';
import { parseDuration } from './duration.js';
import { readBalancers } from './balancers.js';
import { MapReader, printableKey, readInteger } from './reader.js';
import {
  HASH_FIELDS,
  MAX_SERVICE_NAME_LENGTH,
  type Backend,
  type Family,
  type HashField,
  type HealthCheck,
  type IR,
  type Mode,
  type Prefix,
  type Service,
  type ServiceLocations,
} from './types.js';

const TOP_FIELDS = ['version', 'services', 'balancers'] as const;
const SERVICE_FIELDS = ['name', 'vip', 'port', 'protocol', 'interface', 'mode', 'hash', 'sticky', 'local', 'family', 'health', 'backends'] as const;
const BACKEND_FIELDS = ['address', 'port', 'weight', 'backup', 'health'] as const;
const HEALTH_FIELDS = ['check', 'interval', 'timeout', 'rise', 'fall', 'port', 'path', 'status', 'host', 'method', 'send', 'expect'] as const;

export const MAX_WEIGHT = 1000;
export const MAX_BACKENDS = 1024;
/** ipset's largest timeout; also far beyond any sane affinity. */
export const MAX_STICKY_SECONDS = 2_147_483;
const NAME_RE = /^[a-z](?:[a-z0-9-]*[a-z0-9])?$/;
/** Linux IFNAMSIZ is 16 with the NUL; BSD names are shorter. No quotes, spaces or wildcards: they would reach rule text. */
const IFNAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,14}$/;

const MODE_ALIASES: Record<string, Mode> = { nth: 'nth', 'round-robin': 'nth', roundrobin: 'nth', random: 'random', hash: 'hash' };

export function validateSpec(root: SNode, file: string, bag: DiagnosticBag): IR | null {
  if (root.kind !== 'map') {
    bag.error('LBC2000', `the spec must be a mapping with "version" and "services", not ${describeNode(root)}`, root.loc);
    return null;
  }
  const top = new MapReader(root, bag, 'the spec', TOP_FIELDS);
  const version = top.scalar('version');
  if (!version) {
    if (!top.has('version')) bag.error('LBC2005', 'the spec needs "version: 1" at the top', root.loc);
  } else if (version.value !== 1) {
    bag.error('LBC2006', `unsupported spec version ${describeNode(version)}; this lbc reads version 1`, version.loc);
  }
  const servicesNode = top.node('services');
  const services: Service[] = [];
  if (!servicesNode) {
    bag.error('LBC2005', 'the spec needs a "services" list', root.loc);
  } else if (servicesNode.kind !== 'seq' || servicesNode.items.length === 0) {
    bag.error('LBC2007', `"services" must be a non-empty list, not ${describeNode(servicesNode)}`, servicesNode.loc);
  } else {
    for (const item of servicesNode.items) {
      const svc = validateService(item, bag);
      if (svc) services.push(svc);
    }
    checkAcrossServices(services, bag);
  }
  const balancers = top.node('balancers') ? readBalancers(top.node('balancers')!, bag, services) : null;
  if (bag.hasErrors) return null;
  return balancers ? { file, services, balancers } : { file, services };
}

function validateService(node: SNode, bag: DiagnosticBag): Service | null {
  if (node.kind !== 'map') {
    bag.error('LBC2010', `each service must be a mapping, not ${describeNode(node)}`, node.loc);
    return null;
  }
  const before = bag.items.length;
  const r = new MapReader(node, bag, 'a service', SERVICE_FIELDS);
  const label = (() => {
    const n = r.node('name');
    return n && n.kind === 'scalar' && typeof n.value === 'string' ? `service "${printableKey(n.value)}"` : 'this service';
  })();

  const name = r.string('name');
  if (!name) {
    if (!r.has('name')) bag.error('LBC2011', 'a service needs a "name"', node.loc);
  } else if (!NAME_RE.test(name.value) || name.value.length > MAX_SERVICE_NAME_LENGTH) {
    bag.error('LBC2012', `service name "${printableKey(name.value)}" must be 1-${MAX_SERVICE_NAME_LENGTH} characters of lower-case letters, digits and '-', starting with a letter and not ending with '-'`, name.loc, [
      'the name becomes part of chain, table and set names in every target, which limits its length and alphabet',
    ]);
  }

  let family: Family | undefined;
  let familyLoc: SourceLocation | undefined;
  const famField = r.oneOf('family', ['ipv4', 'ipv6'] as const);
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

  const port = r.integer('port', 1, 65535);
  if (!r.has('port')) bag.error('LBC2015', `${label} needs a "port" (1-65535)`, node.loc);
  const protocol = r.oneOf('protocol', ['tcp', 'udp'] as const);

  let iface: string | null = null;
  const ifStr = r.string('interface');
  if (ifStr) {
    if (!IFNAME_RE.test(ifStr.value)) {
      bag.error('LBC2016', `interface "${printableKey(ifStr.value)}" is not a valid interface name (a letter, then up to 14 letters, digits, '_', '.', '-')`, ifStr.loc);
    } else iface = ifStr.value;
  }

  let mode: Mode = 'nth';
  const modeStr = r.string('mode');
  if (modeStr) {
    const m = MODE_ALIASES[modeStr.value];
    if (!m) bag.error('LBC2003', `mode must be nth (or round-robin), random or hash, not "${printableKey(modeStr.value)}"`, modeStr.loc);
    else mode = m;
  }

  let hashFields: HashField[] = [];
  const hashNode = r.node('hash');
  if (hashNode) {
    if (mode !== 'hash') bag.error('LBC2017', '"hash" fields only apply to mode: hash', r.keyLoc('hash'), ['add "mode: hash" or remove "hash"']);
    const items = hashNode.kind === 'seq' ? hashNode.items : [hashNode];
    const seen = new Set<HashField>();
    for (const it of items) {
      if (it.kind !== 'scalar' || typeof it.value !== 'string' || !(HASH_FIELDS as readonly string[]).includes(it.value)) {
        bag.error('LBC2018', `hash field must be one of ${HASH_FIELDS.join(', ')}, not ${describeNode(it)}`, it.loc);
        continue;
      }
      const f = it.value as HashField;
      if (seen.has(f)) bag.error('LBC2018', `hash field "${f}" is listed twice`, it.loc);
      seen.add(f);
    }
    if (items.length === 0) bag.error('LBC2018', 'hash needs at least one field', hashNode.loc);
    hashFields = HASH_FIELDS.filter((f) => seen.has(f));
  } else if (mode === 'hash') hashFields = ['saddr'];

  let sticky: Service['sticky'] = null;
  const stickyNode = r.scalar('sticky');
  if (stickyNode) {
    const ms = stickyNode.value === null || typeof stickyNode.value === 'boolean' ? null : parseDuration(stickyNode.value);
    if (ms === null) bag.error('LBC2019', `sticky must be an idle timeout such as 10m, 90s or 1h30m, not ${describeNode(stickyNode)}`, stickyNode.loc);
    else if (ms < 1000 || ms % 1000 !== 0) bag.error('LBC2019', 'sticky timeout must be a whole number of seconds, at least 1s', stickyNode.loc);
    else if (ms / 1000 > MAX_STICKY_SECONDS) bag.error('LBC2019', `sticky timeout must be at most ${MAX_STICKY_SECONDS}s (about 24 days)`, stickyNode.loc);
    else sticky = { timeoutSeconds: ms / 1000 };
  }

  const local = r.boolean('local');
  const health = r.node('health') ? readHealth(r.node('health')!, bag, null) : null;

  const backends: Backend[] = [];
  const beNode = r.node('backends');
  if (!beNode) bag.error('LBC2020', `${label} needs a "backends" list`, node.loc);
  else if (beNode.kind !== 'seq' || beNode.items.length === 0) bag.error('LBC2020', `"backends" must be a non-empty list, not ${describeNode(beNode)}`, beNode.loc);
  else if (beNode.items.length > MAX_BACKENDS) bag.error('LBC2020', `a service may have at most ${MAX_BACKENDS} backends`, beNode.loc);
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
    backends: beNode!.loc,
  };
  return {
    name: name!.value,
    family: family ?? 'ipv4',
    vip,
    port: port!.value,
    protocol: protocol?.value ?? 'tcp',
    interface: iface,
    mode,
    hashFields,
    sticky,
    local: local?.value ?? false,
    backends,
    health,
    loc,
  };
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
  let weight = 1;
  let backup = false;
  let health = serviceHealth;
  if (node.kind === 'scalar' && typeof node.value === 'string') {
    const parsed = parseShorthand(node.value);
    if (!parsed) {
      bag.error('LBC2030', `backend "${printableKey(node.value)}" is not ADDRESS, ADDRESS:PORT, [IPv6]:PORT or :PORT`, node.loc);
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
    const r = new MapReader(node, bag, 'a backend', BACKEND_FIELDS);
    const a = r.string('address');
    if (a) {
      const res = parseAddress(a.value, false);
      if (!res.ok) bag.error('LBC2031', `backend address: ${res.message}`, a.loc, res.hint ? [res.hint] : undefined);
      else {
        address = res.prefix.address;
        settleFamily(res.family, a.loc);
      }
    }
    const p = r.integer('port', 1, 65535);
    if (p) port = p.value;
    const w = r.integer('weight', 1, MAX_WEIGHT);
    if (w) weight = w.value;
    const b = r.boolean('backup');
    if (b) backup = b.value;
    const h = r.node('health');
    if (h) health = readHealth(h, bag, serviceHealth);
    if (!r.has('address') && !r.has('port')) bag.error('LBC2032', 'a backend needs an "address", a "port", or both', node.loc);
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
  check: 'tcp',
  intervalMs: 2000,
  timeoutMs: 1000,
  rise: 2,
  fall: 3,
  port: null,
  http: null,
  banner: null,
};

/** Printable ASCII only: these strings reach checker scripts and relayd.conf. */
const SAFE_TEXT = /^[\x20-\x7e]*$/;

function readHealth(node: SNode, bag: DiagnosticBag, base: HealthCheck | null): HealthCheck | null {
  if (node.kind !== 'map') {
    bag.error('LBC2040', `"health" must be a mapping such as { check: tcp, interval: 1s }, not ${describeNode(node)}`, node.loc);
    return null;
  }
  const before = bag.items.length;
  const r = new MapReader(node, bag, 'a health check', HEALTH_FIELDS);
  const from = base ?? HEALTH_DEFAULTS;
  const check = r.oneOf('check', ['tcp', 'http', 'banner'] as const)?.value ?? from.check;
  const dur = (key: string, fallback: number): number => {
    const n = r.scalar(key);
    if (!n) return fallback;
    const ms = n.value === null || typeof n.value === 'boolean' ? null : parseDuration(n.value);
    if (ms === null || ms < 10 || ms > 3_600_000) {
      bag.error('LBC2041', `health ${key} must be a duration between 10ms and 1h such as 1s or 500ms, not ${describeNode(n)}`, n.loc);
      return fallback;
    }
    return ms;
  };
  const intervalMs = dur('interval', from.intervalMs);
  const timeoutMs = dur('timeout', r.has('interval') && !r.has('timeout') ? Math.min(from.timeoutMs, intervalMs) : from.timeoutMs);
  if (timeoutMs > intervalMs) bag.error('LBC2042', `health timeout (${timeoutMs}ms) must not exceed the interval (${intervalMs}ms)`, r.loc('timeout') ?? node.loc);
  const rise = r.integer('rise', 1, 100)?.value ?? from.rise;
  const fall = r.integer('fall', 1, 100)?.value ?? from.fall;
  const port = r.integer('port', 1, 65535)?.value ?? from.port;

  const httpKeys = ['path', 'status', 'host', 'method'];
  const bannerKeys = ['send', 'expect'];
  for (const k of httpKeys) if (r.has(k) && check !== 'http') bag.error('LBC2043', `"${k}" only applies to check: http`, r.keyLoc(k));
  for (const k of bannerKeys) if (r.has(k) && check !== 'banner') bag.error('LBC2043', `"${k}" only applies to check: banner`, r.keyLoc(k));

  let http: HealthCheck['http'] = null;
  if (check === 'http') {
    const prev = from.check === 'http' ? from.http : null;
    const path = r.string('path');
    if (path && !/^\/[\x21-\x7e]*$/.test(path.value)) bag.error('LBC2044', 'health path must start with "/" and contain no spaces or control characters', path.loc);
    if (path && /["\\]/.test(path.value)) bag.error('LBC2044', 'health path must not contain quotes or backslashes', path.loc);
    const status = r.integer('status', 100, 599);
    const host = r.string('host');
    if (host && !/^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/.test(host.value)) bag.error('LBC2044', 'health host must be a host name (letters, digits, "." and "-")', host.loc);
    const method = r.oneOf('method', ['GET', 'HEAD'] as const);
    http = {
      path: path?.value ?? prev?.path ?? '/',
      status: status?.value ?? prev?.status ?? 200,
      host: host?.value ?? prev?.host ?? null,
      method: method?.value ?? prev?.method ?? 'GET',
    };
  }
  let banner: HealthCheck['banner'] = null;
  if (check === 'banner') {
    const prev = from.check === 'banner' ? from.banner : null;
    const send = r.string('send');
    if (send && (!/^[\x20-\x7e\r\n\t]*$/.test(send.value) || send.value.length > 512)) bag.error('LBC2045', 'health send must be printable ASCII (\\r, \\n and \\t allowed), at most 512 characters', send.loc);
    const expect = r.scalar('expect');
    let expectText: string | undefined;
    if (expect) {
      if (typeof expect.value === 'string' || typeof expect.value === 'number') expectText = String(expect.value);
      else bag.error('LBC2045', `health expect must be text such as "220", not ${describeNode(expect)}`, expect.loc);
      if (expectText !== undefined && (!SAFE_TEXT.test(expectText) || expectText.length === 0 || expectText.length > 256)) {
        bag.error('LBC2045', 'health expect must be 1-256 printable ASCII characters', expect.loc);
      }
    }
    const exp = expectText ?? prev?.expect;
    if (exp === undefined) bag.error('LBC2046', 'check: banner needs "expect" (the start of the first line the backend sends, e.g. "220")', node.loc);
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

export type { SScalar, SMap };
export { readInteger };
