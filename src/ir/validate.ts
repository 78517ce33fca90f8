/**
 * Positioned syntax tree → validated, normalized IR. Every problem is
 * reported (not just the first) with the position of the value at fault;
 * the IR is produced only when there are no errors. Field types, ranges,
 * enums and patterns come from the spec definition (spec/definition.ts,
 * through ir/reader.ts); what is checked here is what needs more than one
 * field: families, defaults that depend on other fields, duplicates, overlaps.
 */
import { DiagnosticBag, type SourceLocation } from '../diagnostics/diagnostic.js';
import type { SMap, SNode, SScalar, SSeq } from '../spec/ast.js';
import { describeNode, StopReading } from '../spec/ast.js';
import { MAX_SERVICES, MAX_TOTAL_BACKENDS } from '../spec/limits.js';
import { BLOCKS, defaultOf, HEX_BYTES_RE, PORT_RANGE_RE, printable, type FieldType } from '../spec/definition.js';
import { bitsOf, parseAddress, specialUse } from './address.js';
import { normalizeAllow, type AllowEntry } from './allow.js';
import { firstSharedPort, rangeText } from './ports.js';
import { parseDuration } from './duration.js';
import { readBalancers } from './balancers.js';
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
  type PortRange,
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
const PORTS_FIELD = BLOCKS.service.fields.ports.type as Extract<FieldType, { kind: 'list' }>;
const ALLOW_FIELD = BLOCKS.service.fields.allow.type as Extract<FieldType, { kind: 'list' }>;

/**
 * Validates a spec service by service: `add` takes each item of the "services" list as soon as the
 * parser has read it (the parser then drops the item's syntax tree, so a large spec is never whole
 * in memory), `finish` the rest of the tree. Diagnostics collect in the validator's own bag; the
 * caller merges them when the text parsed. Past MAX_SERVICES or MAX_TOTAL_BACKENDS it reports once
 * and throws StopReading, which ends the parse.
 */
export class SpecValidator {
  readonly bag = new DiagnosticBag();
  private readonly services: Service[] = [];
  /** Services that take the spec's source-nat (they write none of their own). */
  private readonly inheriting: Service[] = [];
  private count = 0;
  private backends = 0;

  constructor(readonly file: string) {}

  readonly add = (node: SNode): void => {
    if (++this.count > MAX_SERVICES) {
      this.bag.error('LBC2008', `a spec may have at most ${MAX_SERVICES.toLocaleString('en-US')} services; this is service ${this.count.toLocaleString('en-US')}`, node.loc, [LIMITS_NOTE]);
      throw new StopReading();
    }
    const be = node.kind === 'map' ? node.entries.find((e) => e.key === 'backends')?.value : undefined;
    if (be?.kind === 'seq' && (this.backends += be.items.length) > MAX_TOTAL_BACKENDS) {
      this.bag.error('LBC2008', `a spec may have at most ${MAX_TOTAL_BACKENDS.toLocaleString('en-US')} backends in all; this service goes past that`, be.loc, [LIMITS_NOTE]);
      throw new StopReading();
    }
    // The spec's own source-nat may come after the services in the text: a service without one of its
    // own is settled in finish(), once the whole spec is read.
    const svc = validateService(node, this.bag);
    if (!svc) return;
    this.services.push(svc);
    if (!(node.kind === 'map' && node.entries.some((e) => e.key === 'source-nat'))) this.inheriting.push(svc);
  };

  /** The IR, or null when the spec has errors (in `bag`). `root` is what the parser returned. */
  finish(root: SNode): IR | null {
    const bag = this.bag;
    if (root.kind !== 'map') {
      bag.error('LBC2000', `the spec must be a mapping with "version" and "services", not ${describeNode(root)}`, root.loc);
      return null;
    }
    const top = new MapReader(root, bag, 'spec');
    const version = top.scalar('version');
    if (!version) {
      if (!top.has('version')) bag.error('LBC2005', 'the spec needs "version: 1" at the top', root.loc);
    } else if (version.value !== (BLOCKS.spec.fields.version.type as Extract<FieldType, { kind: 'const' }>).value) {
      bag.error('LBC2006', `unsupported spec version ${describeNode(version)}; this lbc reads version 1`, version.loc);
    }
    const specNat: SpecSourceNat | null = top.addressOrWord('source-nat') ?? null;
    const servicesNode = top.node('services');
    if (!servicesNode) {
      bag.error('LBC2005', 'the spec needs a "services" list', root.loc);
    } else if (servicesNode.kind !== 'seq') {
      bag.error('LBC2007', `"services" must be a list, not ${describeNode(servicesNode)}`, servicesNode.loc, ['an empty list (services: []) is a spec with nothing to balance']);
    } else {
      try {
        // Items the parser streamed are validated already; the others (an aliased or merged list) now.
        if (!servicesNode.streamed) for (const item of servicesNode.items) this.add(item);
      } catch (e) {
        if (!(e instanceof StopReading)) throw e;
      }
      if (specNat) for (const svc of this.inheriting) inheritSourceNat(svc, specNat, bag);
      checkAcrossServices(this.services, bag);
    }
    const balancers = top.node('balancers') ? readBalancers(top.node('balancers')!, bag, this.services) : null;
    if (bag.hasErrors) return null;
    return balancers ? { file: this.file, services: this.services, balancers } : { file: this.file, services: this.services };
  }
}

const LIMITS_NOTE = 'see "Limits" in the README';

/** " (first at line 3)", or nothing for a value without a position (an IR built without a spec). */
function lineRef(words: string, loc: SourceLocation | undefined): string {
  return loc && loc.line > 0 ? ` (${words} line ${loc.line})` : '';
}

/**
 * The spec's source-nat for a service that writes none of its own: checked against the service's family
 * and its backend-initiated associations, as the service's own would have been.
 */
function inheritSourceNat(svc: Service, nat: SpecSourceNat, bag: DiagnosticBag): void {
  const label = `service "${svc.name}"`;
  if ('address' in nat.value) {
    if (nat.value.family !== svc.family) {
      const fam = (f: Family) => (f === 'ipv4' ? 'IPv4' : 'IPv6');
      bag.error('LBC2151', `${label} is ${fam(svc.family)}, but its source-nat address ${nat.value.address} is ${fam(nat.value.family)} (the spec's source-nat, line ${nat.loc.line})`, svc.loc.service, [
        'give this service its own source-nat: masquerade, an address of its family, or none',
      ]);
      return;
    }
    svc.sourceNat = { kind: 'address', address: nat.value.address };
  } else if (nat.value.word === 'masquerade') svc.sourceNat = { kind: 'masquerade' };
  else return;
  svc.loc.sourceNat = nat.loc;
  if (svc.associations?.backendInitiated) {
    bag.error('LBC2135', `${label}: backend-initiated associations need backends that see their clients' addresses; with source-nat they see the balancer's, so they cannot address a client`, svc.loc.associations ?? svc.loc.service, [
      'add "source-nat: none" to this service (route its backends\' replies through the balancer), or set backend-initiated: false',
    ]);
  }
}

/** Validates a whole syntax tree (one the parser did not stream services out of). */
export function validateSpec(root: SNode, file: string, bag: DiagnosticBag): IR | null {
  const v = new SpecValidator(file);
  const ir = v.finish(root);
  bag.items.push(...v.bag.items);
  return ir;
}

function validateService(node: SNode, bag: DiagnosticBag): Service | null {
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
      bag.error('LBC2013', `${label} mixes address families: this address is ${f === 'ipv4' ? 'IPv4' : 'IPv6'} but the service is ${family === 'ipv4' ? 'IPv4' : 'IPv6'}${lineRef('from', familyLoc)}`, loc, [
        'write one service per address family',
      ]);
    }
  };

  let vip: Prefix | null = null;
  let vipFamily: Family = 'ipv4';
  const vipStr = r.string('vip');
  if (vipStr) {
    const res = parseAddress(vipStr.value, true);
    if (!res.ok) bag.error('LBC2014', `vip: ${res.message}`, vipStr.loc, res.hint ? [res.hint] : undefined);
    else {
      vip = res.prefix;
      vipFamily = res.family;
      settleFamily(res.family, vipStr.loc);
    }
  }

  const portNode = r.node('port');
  let port: { value: number; loc: SourceLocation } | undefined;
  let ports: PortRange[] | null = null;
  if (portNode?.kind === 'seq') {
    // The common slip for seed 004's two ports: say exactly what to write.
    const written = portNode.items.map((i) => (i.kind === 'scalar' ? String(i.value) : '…')).join(', ');
    bag.error('LBC2060', `"port" takes one port; ${label} lists ${portNode.items.length === 1 ? 'one in a list' : 'several'}`, portNode.loc, [
      `write "ports: [${printable(written)}]" for one service on all of them (one rotation and affinity shared by every port), or one service per port`,
    ]);
  } else {
    port = r.integer('port');
  }
  if (r.has('port') && r.has('ports')) {
    bag.error('LBC2060', `${label} has both "port" and "ports"`, r.keyLoc('ports')!, ['keep "ports" and put the port of "port" in its list, or keep only "port"']);
  } else if (r.has('ports')) {
    ports = readPorts(r.node('ports')!, bag);
  } else if (!r.has('port')) {
    bag.error('LBC2015', `${label} needs a "port" (1-65535), or "ports" for several`, node.loc);
  }
  const firstPort = ports?.[0]?.from ?? port?.value ?? null;
  // The service's port problem is reported once, not again for every backend that has no port of its own.
  const portReported = firstPort === null && bag.items.slice(before).some((d) => d.severity === 'error');
  const severalPorts = ports !== null && (ports.length > 1 || ports[0].from !== ports[0].to);
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

  const allowEntries = r.node('allow') ? readAllow(r.node('allow')!, bag, settleFamily) : null;

  const local = r.boolean('local');
  if (vip && vipStr) checkVip(vip, vipFamily, vipStr.loc, firstPort, local?.value ?? false, iface, bag);
  const health = r.node('health') ? readHealth(r.node('health')!, bag, null) : null;
  const associations = r.node('associations') ? readAssociations(r.node('associations')!, bag) : null;
  const ownNat = r.addressOrWord('source-nat');
  const nat = ownNat;

  const backends: Backend[] = [];
  const beNode = r.node('backends');
  if (!beNode) bag.error('LBC2020', `${label} needs a "backends" list`, node.loc);
  else if (beNode.kind !== 'seq' || beNode.items.length < BACKENDS_FIELD.minItems) bag.error('LBC2020', `"backends" must be a non-empty list, not ${describeNode(beNode)}`, beNode.loc);
  else if (beNode.items.length > BACKENDS_FIELD.maxItems!) bag.error('LBC2020', `a service may have at most ${BACKENDS_FIELD.maxItems} backends`, beNode.loc);
  else {
    const seen = new Map<string, SourceLocation | undefined>();
    beNode.items.forEach((item, index) => {
      const be = readBackend(item, index, firstPort, severalPorts, portReported, health, bag, settleFamily);
      if (!be) return;
      const key = `${be.address ?? 'local'}|${be.keepsPort ? 'client port' : be.port}`;
      const prev = seen.get(key);
      const where = be.keepsPort ? 'on the client\'s port' : `port ${be.port}`;
      if (seen.has(key)) bag.error('LBC2021', `backend ${be.address ?? '(this host)'} ${where} is listed twice${lineRef('first at', prev)}`, be.loc, ['give the backend a weight instead of listing it twice']);
      else seen.set(key, be.loc);
      if (vip?.isHost && be.address === vip.address && (be.keepsPort || (ports ? ports.some((r) => be.port >= r.from && be.port <= r.to) : be.port === port?.value))) {
        bag.error('LBC2034', `backend ${be.address} port ${be.port} is the service's own vip and port: connections would be sent where they are already going`, be.loc, [
          'to hand them to a listener on this host, give that listener another port (a backend { port: N }, or this address with port N)',
        ]);
      }
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
      bag.error('LBC2151', `${label} is ${fam(serviceFamily)}, but its source-nat address ${nat.value.address} is ${fam(nat.value.family)}${ownNat ? '' : ` (the spec's source-nat, line ${nat.loc.line})`}`, ownNat ? nat.loc : node.loc, [
        ownNat ? 'give an address of the service\'s family, or masquerade' : 'give this service its own source-nat: masquerade, an address of its family, or none',
      ]);
    } else sourceNat = { kind: 'address', address: nat.value.address };
  } else if (nat && 'word' in nat.value && nat.value.word === 'masquerade') sourceNat = { kind: 'masquerade' };

  if (associations) {
    const at = r.loc('associations')!;
    const proto = protocol?.value ?? defaultOf('service', 'protocol');
    if (severalPorts) {
      // An association is a client address and port on one backend address; the rules that keep it
      // (nftables/associations.ts, iptables/associations.ts) match the one service port.
      bag.error('LBC2137', `${label}: associations are kept for one service port; this service has several`, r.keyLoc('ports') ?? at, [
        'write one service per port (each with its own associations), or leave out associations',
      ]);
    }
    if (proto !== 'udp') {
      bag.error('LBC2131', `${label}: associations are for UDP services; this one is ${proto}`, r.keyLoc('associations') ?? at, [
        'a TCP connection keeps its backend by itself; use sticky for source-address affinity across TCP connections',
      ]);
    }
    if (!vip || !vip.isHost) {
      bag.error('LBC2132', `${label}: associations need a single-address vip: a backend's packets leave from the vip, so it must be one address`, vip ? r.loc('vip')! : node.loc, [
        vip ? 'write the one address clients send to instead of the block' : 'add "vip: ADDRESS"',
      ]);
    }
    if (r.has('sticky')) bag.error('LBC2133', `${label}: sticky and associations both choose who keeps a backend; associations already keep each client address and port on its backend`, r.keyLoc('sticky')!, ['remove sticky']);
    if (local?.value) bag.error('LBC2133', `${label}: associations are kept for clients on the network; connections made on the balancer itself (local: true) are not associated`, r.keyLoc('local')!, ['remove local: true']);
    for (const be of backends) {
      if (be.address === null) {
        bag.error('LBC2134', `${label}: with associations every backend needs an address: only addresses are rewritten, and a port on the balancer itself would be the vip again`, be.loc, ['run the local instance under an address of its own, or remove associations']);
      } else if (port && be.port !== port.value) {
        bag.error('LBC2134', `${label}: with associations backends run on the service port (${port.value}), not ${be.port}: only addresses are rewritten, so clients and backends see the same ports`, be.loc, [
          `move the backend to port ${port.value}, or remove associations (then ports may differ)`,
        ]);
      }
    }
    if (associations.backendInitiated && sourceNat) {
      bag.error('LBC2135', `${label}: backend-initiated associations need backends that see their clients' addresses; with source-nat they see the balancer's, so they cannot address a client`, r.keyLoc('associations') ?? at, [
        ownNat ? 'remove source-nat (route the backends\' replies through the balancer), or set backend-initiated: false' : 'add "source-nat: none" to this service (route its backends\' replies through the balancer), or set backend-initiated: false',
      ]);
    }
  }

  if (bag.items.length > before && bag.items.slice(before).some((d) => d.severity === 'error')) return null;
  const allow = allowEntries ? settleAllow(allowEntries, family ?? 'ipv4', label, bag) : null;
  const loc: ServiceLocations = {
    service: node.loc,
    name: name!.loc,
    vip: r.loc('vip'),
    port: r.loc('port') ?? r.loc('ports'),
    ports: r.loc('ports'),
    allow: r.loc('allow'),
    protocol: r.loc('protocol'),
    interface: r.loc('interface'),
    mode: r.loc('mode'),
    hash: r.loc('hash'),
    sticky: r.loc('sticky'),
    local: r.loc('local'),
    health: r.loc('health'),
    family: r.loc('family'),
    associations: r.loc('associations'),
    sourceNat: ownNat?.loc,
    backends: beNode!.loc,
  };
  return {
    name: name!.value,
    family: family ?? 'ipv4',
    vip,
    port: firstPort!,
    ports: ports ?? [{ from: firstPort!, to: firstPort! }],
    allow,
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

/**
 * `ports`: ports and "LOW-HIGH" ranges, sorted; none may share a port with another. Lists written as
 * they are (neighbours are not joined): a target that needs one block judges that itself.
 */
function readPorts(node: SNode, bag: DiagnosticBag): PortRange[] | null {
  if (node.kind !== 'seq' || node.items.length < PORTS_FIELD.minItems) {
    bag.error('LBC2061', `"ports" must be a non-empty list of ports and ranges such as [5683, 5684] or ["4000-4010"], not ${describeNode(node)}`, node.loc);
    return null;
  }
  if (node.items.length > PORTS_FIELD.maxItems!) {
    bag.error('LBC2061', `"ports" may have at most ${PORTS_FIELD.maxItems} entries (write ranges such as "4000-4010")`, node.loc);
    return null;
  }
  const before = bag.items.length;
  const read: Array<{ range: PortRange; loc: SourceLocation }> = [];
  for (const it of node.items) {
    if (it.kind === 'scalar' && typeof it.value === 'number') {
      const p = readInteger(it, 'a port in "ports"', 1, 65535, bag);
      if (p) read.push({ range: { from: p.value, to: p.value }, loc: it.loc });
      continue;
    }
    const m = it.kind === 'scalar' && typeof it.value === 'string' ? PORT_RANGE_RE.exec(it.value) : null;
    if (!m) {
      bag.error('LBC2061', `an entry of "ports" must be a port (1-65535) or a range "LOW-HIGH" of two such ports, not ${describeNode(it)}`, it.loc);
      continue;
    }
    const from = Number(m[1]);
    const to = Number(m[2]);
    if (from >= to) {
      bag.error('LBC2063', `port range "${m[0]}" must be LOW-HIGH with LOW below HIGH`, it.loc, from === to ? [`write the single port as ${from}`] : [`write "${to}-${from}"`]);
      continue;
    }
    read.push({ range: { from, to }, loc: it.loc });
  }
  if (bag.items.length > before) return null;
  const sorted = [...read].sort((a, b) => a.range.from - b.range.from);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.range.from <= prev.range.to) {
      const [first, second] = prev.loc.line < cur.loc.line || (prev.loc.line === cur.loc.line && prev.loc.column < cur.loc.column) ? [prev, cur] : [cur, prev];
      const what = first.range.from === first.range.to && second.range.from === second.range.to ? `port ${first.range.from} is listed twice` : `"${rangeText(second.range)}" overlaps "${rangeText(first.range)}"`;
      bag.error('LBC2062', `${what} in "ports" (first at line ${first.loc.line})`, second.loc);
      return null;
    }
  }
  return sorted.map((x) => x.range);
}

/** `allow`: client addresses and blocks, each of the service's family. */
function readAllow(node: SNode, bag: DiagnosticBag, settleFamily: (f: Family, loc: SourceLocation) => void): AllowEntry[] | null {
  if (node.kind !== 'seq' || node.items.length < ALLOW_FIELD.minItems) {
    bag.error('LBC2070', `"allow" must be a non-empty list of client addresses or CIDR blocks such as [222.222.222.0/24], not ${describeNode(node)}`, node.loc, [
      'an empty list would refuse every client: leave "allow" out to balance everyone, or remove the service',
    ]);
    return null;
  }
  if (node.items.length > ALLOW_FIELD.maxItems!) {
    bag.error('LBC2070', `"allow" may have at most ${ALLOW_FIELD.maxItems} entries, not ${node.items.length}`, node.loc, ['join neighbouring blocks into larger ones']);
    return null;
  }
  const out: AllowEntry[] = [];
  let bad = false;
  for (const it of node.items) {
    if (it.kind !== 'scalar' || typeof it.value !== 'string') {
      bag.error('LBC2071', `an entry of "allow" must be an address or CIDR block, not ${describeNode(it)}`, it.loc);
      bad = true;
      continue;
    }
    const res = parseAddress(it.value, true);
    if (!res.ok) {
      bag.error('LBC2071', `allow: ${res.message}`, it.loc, res.hint ? [res.hint] : undefined);
      bad = true;
      continue;
    }
    settleFamily(res.family, it.loc);
    out.push({ prefix: res.prefix, loc: it.loc });
  }
  return bad ? null : out;
}

/** The normalized allow list; entries that change nothing are warned about, not refused. */
function settleAllow(entries: AllowEntry[], family: Family, label: string, bag: DiagnosticBag): Prefix[] | null {
  const n = normalizeAllow(entries, family);
  const show = (e: AllowEntry) => `${e.prefix.address}/${e.prefix.prefixLength}`;
  if (n.everything) {
    bag.warning('LBC2072', `allow: ${show(n.everything)} lets every client in, so ${label} balances everyone`, n.everything.loc, ['leave "allow" out']);
    return null;
  }
  for (const c of n.covered) {
    const same = c.entry.prefix.address === c.by.prefix.address && c.entry.prefix.prefixLength === c.by.prefix.prefixLength;
    bag.warning('LBC2073', `allow: ${show(c.entry)} ${same ? 'is listed twice' : `lies inside ${show(c.by)}`} (line ${c.by.loc.line}); it changes nothing`, c.entry.loc);
  }
  return n.kept;
}

function readAssociations(node: SNode, bag: DiagnosticBag): Associations | null {
  if (node.kind !== 'map') {
    bag.error('LBC2130', `"associations" must be a mapping such as { max: 1048576, idle: 1d }, not ${describeNode(node)}`, node.loc, ['write "associations: {}" for the defaults']);
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
  severalPorts: boolean,
  portReported: boolean,
  serviceHealth: HealthCheck | null,
  bag: DiagnosticBag,
  settleFamily: (f: Family, loc: SourceLocation) => void,
): Backend | null {
  const before = bag.items.length;
  let address: string | null = null;
  let port: number | null = servicePort;
  let named = false;
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
      else if (usableBackend(res.prefix, res.family, node.loc, bag)) {
        address = res.prefix.address;
        settleFamily(res.family, node.loc);
      }
    }
    if (parsed.port !== null) {
      if (parsed.port < 1 || parsed.port > 65535) bag.error('LBC2004', `backend port must be between 1 and 65535, not ${parsed.port}`, node.loc);
      port = parsed.port;
      named = true;
    }
  } else if (node.kind === 'map') {
    const r = new MapReader(node, bag, 'backend');
    const a = r.string('address');
    if (a) {
      const res = parseAddress(a.value, false);
      if (!res.ok) bag.error('LBC2031', `backend address: ${res.message}`, a.loc, res.hint ? [res.hint] : undefined);
      else if (usableBackend(res.prefix, res.family, a.loc, bag)) {
        address = res.prefix.address;
        settleFamily(res.family, a.loc);
      }
    }
    const p = r.integer('port');
    if (p) {
      port = p.value;
      named = true;
    }
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
    if (bag.items.length === before && !portReported) bag.error('LBC2033', 'backend port unknown: the service has no valid port', node.loc);
    return null;
  }
  if (bag.items.length > before) return null;
  return { index, address, port, keepsPort: severalPorts && !named, weight, backup, health, loc: node.loc };
}

const ANY_LOCAL = 'omit "vip" to balance connections to any local address of this host (with "interface" to name one link)';
const UNICAST_VIP = 'give the service the unicast address (or block of them) that clients connect to';

/** A vip must be somewhere connections can arrive: no special-use block, or one that fits the service. */
function checkVip(vip: Prefix, family: Family, loc: SourceLocation, port: number | null, local: boolean, iface: string | null, bag: DiagnosticBag): void {
  const text = `${vip.address}${vip.isHost ? '' : `/${vip.prefixLength}`}`;
  if (vip.prefixLength === 0) {
    bag.error('LBC2014', `vip ${text} is every ${family === 'ipv4' ? 'IPv4' : 'IPv6'} address: it would capture every forwarded connection${port ? ` to port ${port}` : ''}`, loc, [ANY_LOCAL]);
    return;
  }
  const sp = specialUse(vip, family);
  if (!sp) return;
  if (!sp.within) {
    bag.error('LBC2014', `vip block ${text} contains ${sp.text}`, loc, [UNICAST_VIP]);
    return;
  }
  switch (sp.use) {
    case 'unspecified':
    case 'this-network':
      bag.error('LBC2014', `vip ${text} is ${sp.text}: no connection is addressed to it`, loc, [ANY_LOCAL]);
      return;
    case 'multicast':
    case 'broadcast':
      bag.error('LBC2014', `vip ${text} is ${sp.single ? '' : 'in '}${sp.text}: lbc balances connections, which are made to unicast addresses`, loc, [UNICAST_VIP]);
      return;
    case 'loopback':
      if (!local) bag.error('LBC2014', `vip ${text} is ${sp.single ? '' : 'in '}${sp.text}: connections from other hosts never arrive there`, loc, ['add "local: true" to balance connections made on this host to it, or use the address clients connect to']);
      return;
    case 'link-local':
      if (!iface) bag.error('LBC2014', `vip ${text} is in ${sp.text}: the same address may be in use on every link`, loc, ['add "interface" to say which link the service is on']);
      return;
  }
}

/** A backend must be a unicast address a redirected connection can be sent to; reports why not. */
function usableBackend(p: Prefix, family: Family, loc: SourceLocation, bag: DiagnosticBag): boolean {
  const sp = specialUse(p, family);
  if (!sp) return true;
  const at = `backend address ${p.address} is ${sp.single ? '' : 'in '}${sp.text}`;
  switch (sp.use) {
    case 'unspecified':
    case 'this-network':
      bag.error('LBC2031', `${at}: nothing can be reached there`, loc, ['a port on this host is written { port: N } (or ":N")']);
      break;
    case 'loopback':
      bag.error('LBC2031', `${at}: a connection from the network redirected there is dropped by the kernel (a martian) or never leaves this host`, loc, [
        'write a port on this host as { port: N } (or ":N"): lbc writes what each target needs for it',
      ]);
      break;
    case 'multicast':
    case 'broadcast':
      bag.error('LBC2031', `${at}: a connection cannot be redirected to a group or broadcast address`, loc, ["use the backend's unicast address"]);
      break;
    case 'link-local':
      bag.error('LBC2031', `${at}: a NAT rule cannot say which link it is on, and routers do not forward to link-local addresses (RFC 3927 §7, RFC 4291 §2.5.6)`, loc, [
        `use the backend's ${family === 'ipv4' ? 'private or public' : 'global or unique-local'} address`,
      ]);
      break;
  }
  return false;
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
  udp: null,
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
  // An ICMP echo has no port: one inherited from the service's check is dropped, one written here refused.
  if (check === 'icmp' && r.has('port')) bag.error('LBC2049', '"port" does not apply to check: icmp (an ICMP echo has no port)', r.keyLoc('port'), ['remove "port", or use check: tcp or udp']);
  const port = check === 'icmp' ? null : (r.integer('port')?.value ?? from.port);

  const httpKeys = ['path', 'status', 'host', 'method'];
  const payloadKeys = ['send', 'expect'];
  for (const k of httpKeys) if (r.has(k) && check !== 'http') bag.error('LBC2043', `"${k}" only applies to check: http`, r.keyLoc(k));
  for (const k of payloadKeys) if (r.has(k) && check !== 'banner' && check !== 'udp') bag.error('LBC2043', `"${k}" only applies to check: banner or udp`, r.keyLoc(k));

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
  let udp: HealthCheck['udp'] = null;
  if (check === 'udp') {
    const prev = from.check === 'udp' ? from.udp : null;
    const send = hexField(r, 'send', bag);
    const exp = hexField(r, 'expect', bag);
    const sendHex = send ?? prev?.send;
    if (sendHex === undefined && !r.has('send')) {
      bag.error('LBC2048', 'check: udp needs "send": the datagram to send as hex bytes, e.g. "40 00 00 00" (a CoAP ping)', node.loc, [
        'a UDP server can only show it is alive by answering, so the check needs something it answers',
      ]);
    }
    udp = { send: sendHex ?? '', expect: r.has('expect') ? (exp ?? null) : (prev?.expect ?? null) };
  }
  if (bag.items.slice(before).some((d) => d.severity === 'error')) return null;
  return { check, intervalMs, timeoutMs, rise, fall, port, http, banner, udp };
}

/**
 * A check: udp payload: hex bytes, optionally spaced ("70 00 00 00"), as lower-case hex without spaces.
 * A YAML number is refused, not read: 70000000 would lose nothing, but 0x70 or 00 00 would.
 */
function hexField(r: MapReader, key: string, bag: DiagnosticBag): string | undefined {
  const n = r.node(key);
  if (!n) return undefined;
  if (n.kind === 'scalar' && typeof n.value === 'number') {
    bag.error('LBC2047', `health ${key}: write the bytes of check: udp as a quoted string of hex pairs, e.g. "70 00 00 00", not the number ${n.value}`, n.loc);
    return undefined;
  }
  const t = r.text(key);
  if (!t) return undefined;
  if (!HEX_BYTES_RE.test(t.value)) {
    bag.error('LBC2047', `health ${key} for check: udp must be hex bytes such as "40 00 00 00" (pairs of 0-9, a-f, optionally separated by spaces), not "${printable(t.value)}"`, t.loc);
    return undefined;
  }
  return t.value.replace(/ /g, '').toLowerCase();
}

/** Two services may not claim the same traffic: same family, protocol, port and the same (or overlapping CIDR) vip. */
function checkAcrossServices(services: Service[], bag: DiagnosticBag): void {
  const names = new Map<string, Service>();
  for (const s of services) {
    const prev = names.get(s.name);
    if (prev) bag.error('LBC2050', `service name "${s.name}" is used twice${lineRef('first at', prev.loc.name)}`, s.loc.name);
    else names.set(s.name, s);
  }
  checkAssociationBackends(services, bag);
  checkSourceNatBackends(services, bag);
  // Same vip: no port may be claimed twice. Grouped by family, protocol and vip, then one sweep over the
  // group's port ranges sorted by their start, so the check stays linear for 100,000 services.
  const order = new Map(services.map((s, i) => [s, i]));
  const claimedTwice = new Set<Service>();
  const byVip = new Map<string, Service[]>();
  for (const s of services) {
    const k = `${s.family}|${s.protocol}|${s.vip ? `${s.vip.address}/${s.vip.prefixLength}` : 'any'}`;
    let g = byVip.get(k);
    if (!g) byVip.set(k, (g = []));
    g.push(s);
  }
  for (const group of byVip.values()) {
    if (group.length < 2) continue;
    const spans = group.flatMap((s) => s.ports.map((r) => ({ s, r })));
    spans.sort((a, b) => a.r.from - b.r.from);
    let reach = spans[0];
    for (const cur of spans.slice(1)) {
      if (cur.s !== reach.s && cur.r.from <= reach.r.to && !claimedTwice.has(cur.s) && !claimedTwice.has(reach.s)) {
        const [prev, s] = order.get(reach.s)! < order.get(cur.s)! ? [reach.s, cur.s] : [cur.s, reach.s];
        claimedTwice.add(s);
        const port = firstSharedPort(prev.ports, s.ports)!;
        const where = s.vip ? `${s.vip.address}/${s.vip.prefixLength}` : 'any address';
        bag.error('LBC2051', `services "${prev.name}" and "${s.name}" both claim ${s.protocol} port ${port} on ${where}`, s.loc.vip ?? s.loc.port ?? s.loc.service, [
          prev.interface !== s.interface ? 'lbc dispatches on address, protocol and port; an interface does not tell services apart — give each its own vip or port' : 'merge them into one service or give each its own vip or port',
        ]);
      }
      if (cur.r.to > reach.r.to) reach = cur;
    }
  }
  // Nested CIDR blocks would make the winner depend on the target; refuse them where their ports meet.
  const cidrs = services.filter((s) => s.vip && !s.vip.isHost && !claimedTwice.has(s));
  const single = new Map<string, Service[]>();
  for (const s of cidrs) {
    if (s.ports.length !== 1 || s.ports[0].from !== s.ports[0].to) continue;
    const k = `${s.family}|${s.protocol}|${s.port}`;
    let b = single.get(k);
    if (!b) single.set(k, (b = []));
    b.push(s);
  }
  const nestedError = (a: Service, b: Service) =>
    bag.error('LBC2052', `vip ${b.vip!.address}/${b.vip!.prefixLength} of "${b.name}" overlaps ${a.vip!.address}/${a.vip!.prefixLength} of "${a.name}" on the same protocol and port`, b.loc.vip);
  // Single-port services: prefixes either nest or are disjoint, so after sorting by start only the block
  // reaching furthest so far can contain the next one.
  for (const group of single.values()) {
    if (group.length < 2) continue;
    const ranged = group.map((s) => {
      const bits = bitsOf(s.vip!.address, s.family);
      const keep = bits.slice(0, s.vip!.prefixLength);
      return { s, start: bits, end: keep.padEnd(bits.length, '1') };
    });
    ranged.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.s.vip!.prefixLength - b.s.vip!.prefixLength));
    let widest = ranged[0];
    for (const cur of ranged.slice(1)) {
      if (cur.start <= widest.end) nestedError(widest.s, cur.s);
      if (cur.end > widest.end) widest = cur;
    }
  }
  // CIDR services with several ports (rare) are compared with every other CIDR service of their family and protocol.
  const multi = cidrs.filter((s) => s.ports.length > 1 || s.ports[0].from !== s.ports[0].to);
  const done = new Set<Service>();
  for (const m of multi) {
    done.add(m);
    for (const o of cidrs) {
      if (o === m || (done.has(o) && multi.includes(o)) || o.family !== m.family || o.protocol !== m.protocol) continue;
      if (!firstSharedPort(m.ports, o.ports) || !prefixesNest(m.vip!, o.vip!, m.family)) continue;
      const [a, b] = order.get(m)! < order.get(o)! ? [m, o] : [o, m];
      nestedError(a, b);
    }
  }
}

function prefixesNest(a: Prefix, b: Prefix, family: Family): boolean {
  const len = Math.min(a.prefixLength, b.prefixLength);
  return bitsOf(a.address, family).slice(0, len) === bitsOf(b.address, family).slice(0, len);
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
        bag.error('LBC2136', `backend ${b.address} port ${b.port} serves both "${prev.name}" and "${s.name}", which have associations: its packets would not say which vip they leave from`, b.loc, ['give each service its own backend addresses or port']);
      }
      owner.set(key(s, b), s);
    }
  }
  for (const s of services) {
    if (s.associations || s.protocol !== 'udp') continue;
    for (const b of s.backends) {
      const a = b.address === null ? undefined : owner.get(key(s, b));
      if (a) {
        bag.error('LBC2136', `backend ${b.address} port ${b.port} of "${s.name}" is also a backend of "${a.name}", which has associations: the balancer would take its replies for "${a.name}"'s`, b.loc, [
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
        bag.error('LBC2152', `backend ${b.address} port ${b.port} serves "${prev.name}" (source-nat ${natText(prev)}) and "${s.name}" (source-nat ${natText(s)}): source NAT is decided by the backend a connection goes to, so they must agree`, b.loc, [
          'give both services the same source-nat, or give one of them other backend addresses or ports',
        ]);
      }
    }
  }
}

export type { SScalar, SMap };
export { readInteger };
