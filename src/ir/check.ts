/**
 * The library's guard on IRs it is handed: a provisioning script may build an IR or edit one that
 * parseSpec returned, and emitters trust every invariant of ir/types.ts. So an IR from outside is
 * written back as the spec it stands for and put through the spec validator — the same checks,
 * codes and wording as a spec gets — and then compared field by field with what the validator
 * makes of it: anything not already in normalized form (an alias, a non-canonical address, hash
 * fields out of order, an http check without its request) is refused too. Emitters get the
 * validator's fresh copy, never the caller's objects, so a getter cannot change a value after the
 * check. Positions come from the IR's own `loc` where it has them; otherwise diagnostics have none.
 */
import { DiagnosticBag, LbcError, sortDiagnostics, type Diagnostic, type SourceLocation } from '../diagnostics/diagnostic.js';
import type { SMap, SMapEntry, SNode } from '../spec/ast.js';
import { MAX_BACKENDS } from '../spec/limits.js';
import type { HealthCheck, IR, Service, ServiceLocations } from './types.js';
import { SpecValidator } from './validate.js';

/** The position of values an IR gives none for; dropped from every diagnostic and from the result. */
const NOWHERE: SourceLocation = Object.freeze({ file: '', line: 0, column: 0 });

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A plain copy of the caller's value, each property read once (a getter cannot answer the check
 * one way and the emitter another), to the depth an IR has; deeper or cyclic parts become {}.
 */
function snapshot(v: unknown, depth = 0): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (depth > 6) return {};
  if (Array.isArray(v)) return Array.from(v, (x) => snapshot(x, depth + 1));
  const out: Obj = {};
  for (const k of Object.keys(v)) out[k] = snapshot((v as Obj)[k], depth + 1);
  return out;
}

/** A valid position the IR carries, or NOWHERE. */
function locOf(v: unknown): SourceLocation {
  if (!isObj(v)) return NOWHERE;
  const { file, line, column } = v;
  if (typeof file !== 'string' || !Number.isSafeInteger(line) || !Number.isSafeInteger(column) || (line as number) < 1 || (column as number) < 1) return NOWHERE;
  return { file, line: line as number, column: column as number };
}

/** One value of the IR as a syntax-tree node, read once. Objects of unknown shape become empty mappings (never walked). */
function leaf(v: unknown, loc: SourceLocation): SNode {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return { kind: 'scalar', value: v, quoted: typeof v === 'string', loc };
  if (typeof v === 'bigint') return { kind: 'scalar', value: Number(v), quoted: false, loc };
  if (Array.isArray(v)) return { kind: 'seq', items: v.map((x) => leaf(isObj(x) || Array.isArray(x) ? {} : x, loc)), loc };
  if (isObj(v)) return { kind: 'map', entries: [], loc };
  return { kind: 'scalar', value: `<${typeof v}>`, quoted: true, loc };
}

class MapBuilder {
  readonly entries: SMapEntry[] = [];
  constructor(readonly loc: SourceLocation) {}
  /** Adds key: value unless the value is undefined (the field is absent). */
  set(key: string, value: SNode | unknown, loc: SourceLocation = this.loc): void {
    if (value === undefined) return;
    const node = isNode(value) ? value : leaf(value, loc);
    this.entries.push({ key, keyLoc: node.loc, value: node });
  }
  node(): SMap {
    return { kind: 'map', entries: this.entries, loc: this.loc };
  }
}

const NODE = Symbol('node');
const isNode = (v: unknown): v is SNode => isObj(v) && (v as { [NODE]?: true })[NODE] === true;
const mark = <T extends SNode>(n: T): T => Object.assign(n, { [NODE]: true as const });

function healthNode(h: unknown, loc: SourceLocation): SNode {
  if (!isObj(h)) return leaf(h, loc);
  const m = new MapBuilder(loc);
  m.set('check', h.check);
  m.set('interval', typeof h.intervalMs === 'number' ? `${h.intervalMs}ms` : h.intervalMs);
  m.set('timeout', typeof h.timeoutMs === 'number' ? `${h.timeoutMs}ms` : h.timeoutMs);
  m.set('rise', h.rise);
  m.set('fall', h.fall);
  if (h.port !== null) m.set('port', h.port);
  if (isObj(h.http)) {
    m.set('path', h.http.path);
    m.set('status', h.http.status);
    if (h.http.host !== null) m.set('host', h.http.host);
    m.set('method', h.http.method);
  } else if (h.http !== null && h.http !== undefined) m.set('path', h.http);
  if (isObj(h.banner)) {
    if (h.banner.send !== null) m.set('send', h.banner.send);
    m.set('expect', h.banner.expect);
  } else if (h.banner !== null && h.banner !== undefined) m.set('expect', h.banner);
  if (isObj(h.udp)) {
    m.set('send', h.udp.send);
    if (h.udp.expect !== null) m.set('expect', h.udp.expect);
  } else if (h.udp !== null && h.udp !== undefined) m.set('send', h.udp);
  return mark(m.node());
}

/** A port range as `ports` writes it: 5683, or "4000-4010". */
function portsValue(ports: unknown): unknown {
  if (!Array.isArray(ports)) return ports;
  return ports.map((r) => (isObj(r) && typeof r.from === 'number' && typeof r.to === 'number' ? (r.from === r.to ? r.from : `${r.from}-${r.to}`) : isObj(r) ? {} : r));
}

const severalPorts = (ports: unknown): boolean => Array.isArray(ports) && (ports.length !== 1 || !isObj(ports[0]) || ports[0].from !== ports[0].to);

function vipValue(vip: unknown): unknown {
  if (vip === null || vip === undefined) return undefined;
  if (isObj(vip) && typeof vip.address === 'string' && Number.isInteger(vip.prefixLength)) return `${vip.address}/${vip.prefixLength}`;
  return isObj(vip) ? {} : vip;
}

function backendNode(b: unknown, svcHealth: unknown, loc: SourceLocation): SNode {
  if (!isObj(b)) return leaf(b, loc);
  const bl = b.loc === undefined ? loc : locOf(b.loc);
  const m = new MapBuilder(bl);
  if (b.address !== null) m.set('address', b.address);
  // A backend that keeps the client's port names none in the spec (the IR's port is then the service's first).
  if (b.keepsPort !== true) m.set('port', b.port);
  m.set('weight', b.weight);
  m.set('backup', b.backup);
  // The effective check: written only where it differs from the service's (a spec's override).
  if (b.health !== null && b.health !== undefined && !sameValue(b.health, svcHealth)) m.set('health', healthNode(b.health, bl));
  return mark(m.node());
}

function serviceNode(s: unknown): SNode {
  if (!isObj(s)) return leaf(s, NOWHERE);
  const locs = isObj(s.loc) ? s.loc : {};
  const at = (k: string) => locOf(locs[k]);
  const m = new MapBuilder(at('service'));
  m.set('name', s.name, at('name'));
  m.set('vip', vipValue(s.vip), at('vip'));
  if (severalPorts(s.ports)) m.set('ports', portsValue(s.ports), at('ports'));
  else m.set('port', s.port, at('port'));
  if (s.allow !== null && s.allow !== undefined) m.set('allow', Array.isArray(s.allow) ? s.allow.map(vipValue) : s.allow, at('allow'));
  m.set('protocol', s.protocol, at('protocol'));
  if (s.interface !== null) m.set('interface', s.interface, at('interface'));
  m.set('mode', s.mode, at('mode'));
  // Hash fields as a spec writes them: with mode hash, or where they do not belong (an error then); not beside a mode that is wrong already.
  const knownMode = s.mode === 'nth' || s.mode === 'random' || s.mode === 'hash';
  if (s.mode === 'hash' || (knownMode && (!Array.isArray(s.hashFields) || s.hashFields.length > 0))) m.set('hash', s.hashFields, at('hash'));
  if (s.sticky !== null) m.set('sticky', isObj(s.sticky) && typeof s.sticky.timeoutSeconds === 'number' ? `${s.sticky.timeoutSeconds}s` : s.sticky, at('sticky'));
  m.set('local', s.local, at('local'));
  m.set('family', s.family, at('family'));
  if (s.associations !== null && s.associations !== undefined) {
    if (isObj(s.associations)) {
      const a = new MapBuilder(at('associations'));
      a.set('max', s.associations.max);
      if (s.associations.idleSeconds !== null) a.set('idle', typeof s.associations.idleSeconds === 'number' ? `${s.associations.idleSeconds}s` : s.associations.idleSeconds);
      a.set('backend-initiated', s.associations.backendInitiated);
      m.set('associations', mark(a.node()));
    } else m.set('associations', s.associations, at('associations'));
  }
  // Written on the service itself: the IR holds each service's settled source NAT.
  if (s.sourceNat !== null && s.sourceNat !== undefined) {
    m.set('source-nat', isObj(s.sourceNat) ? (s.sourceNat.kind === 'masquerade' ? 'masquerade' : s.sourceNat.kind === 'address' ? s.sourceNat.address : {}) : s.sourceNat, at('sourceNat'));
  }
  if (s.health !== null) m.set('health', s.health === undefined ? undefined : healthNode(s.health, at('health')));
  const bl = at('backends');
  m.set('backends', Array.isArray(s.backends) ? mark({ kind: 'seq', items: s.backends.map((b) => backendNode(b, s.health, bl)), loc: bl }) : s.backends, bl);
  return mark(m.node());
}

function balancersNode(t: unknown): SNode {
  if (!isObj(t)) return leaf(t, NOWHERE);
  const locs = isObj(t.loc) ? t.loc : {};
  const at = (k: string) => locOf(locs[k]);
  const m = new MapBuilder(at('block'));
  m.set('mode', t.mode, at('mode'));
  m.set('id', t.id, at('id'));
  m.set('advert', typeof t.advertMs === 'number' ? `${t.advertMs}ms` : t.advertMs, at('advert'));
  m.set('interface', t.interface, at('interface'));
  if (isObj(t.gateway)) {
    const g = new MapBuilder(at('gateway'));
    g.set('interface', t.gateway.interface);
    g.set('address', `${String(t.gateway.address)}/${String(t.gateway.prefixLength)}`);
    m.set('gateway', mark(g.node()));
  } else if (t.gateway !== null) m.set('gateway', t.gateway, at('gateway'));
  if (isObj(t.sync)) {
    const y = new MapBuilder(at('sync'));
    y.set('interface', t.sync.interface);
    m.set('sync', mark(y.node()));
  } else if (t.sync !== null) m.set('sync', t.sync, at('sync'));
  if (t.secretFile !== null) m.set('secret-file', t.secretFile, at('secretFile'));
  if (t.mac !== null) m.set('mac', t.mac, at('mac'));
  const nl = at('nodes');
  const nodes = Array.isArray(t.nodes)
    ? t.nodes.map((n) => {
        if (!isObj(n)) return leaf(n, nl);
        const nm = new MapBuilder(n.loc === undefined ? nl : locOf(n.loc));
        nm.set('name', n.name);
        nm.set('address', n.address);
        if (n.syncAddress !== null) nm.set('sync-address', n.syncAddress);
        return mark(nm.node());
      })
    : null;
  m.set('nodes', nodes ? mark({ kind: 'seq', items: nodes, loc: nl }) : t.nodes, nl);
  return mark(m.node());
}

/** Deep equality of plain data (the IR's values; `loc` too unless skipLoc), without allocating. */
function sameValue(a: unknown, b: unknown, skipLoc = true): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i], skipLoc)) return false;
    return true;
  }
  if (!isObj(a) || !isObj(b)) return false;
  let n = 0;
  for (const k in a) {
    const v = a[k];
    if ((skipLoc && k === 'loc') || v === undefined) continue;
    if (!sameValue(v, b[k], skipLoc)) return false;
    n++;
  }
  for (const k in b) if (!(skipLoc && k === 'loc') && b[k] !== undefined) n--;
  return n === 0;
}

/**
 * IRs this library made (by parsing a spec, or by checkIR), each with a private copy made at once.
 * An IR still equal to its copy needs no new check: the copy is what gets emitted, so nothing the
 * caller changes later (or a getter it installs) can reach a target.
 */
const ORIGINALS = new WeakMap<object, IR>();

/** Marks an IR as made here; returns it. */
export function remember(ir: IR): IR {
  ORIGINALS.set(ir, copyIR(ir));
  return ir;
}

/** A deep copy of an IR (every object its own; several times faster than structuredClone). */
function copyIR(ir: IR): IR {
  const loc = (l: SourceLocation | undefined) => l && { ...l };
  const health = (h: HealthCheck | null): HealthCheck | null => h && { ...h, http: h.http && { ...h.http }, banner: h.banner && { ...h.banner }, udp: h.udp && { ...h.udp } };
  return {
    file: ir.file,
    ...(ir.balancers ? { balancers: structuredClone(ir.balancers) } : {}),
    services: ir.services.map((s) => ({
      ...s,
      vip: s.vip && { ...s.vip },
      ports: s.ports.map((r) => ({ ...r })),
      allow: s.allow && s.allow.map((a) => ({ ...a })),
      hashFields: [...s.hashFields],
      sticky: s.sticky && { ...s.sticky },
      associations: s.associations && { ...s.associations },
      sourceNat: s.sourceNat && { ...s.sourceNat },
      health: health(s.health),
      loc: Object.fromEntries(Object.entries(s.loc).map(([k, v]) => [k, loc(v)])),
      backends: s.backends.map((b) => ({ ...b, health: health(b.health), ...(b.loc ? { loc: loc(b.loc) } : {}) })),
    })),
  };
}

/** An IR emitters may trust: the private copy of an unchanged IR made here, or checkIR's copy. Throws LbcError. */
export function trustedIR(ir: unknown): IR {
  const original = typeof ir === 'object' && ir !== null ? ORIGINALS.get(ir) : undefined;
  if (original) {
    try {
      if (sameValue(ir, original, false)) return original;
    } catch {
      // a getter threw: checkIR says so
    }
  }
  const r = checkIR(ir);
  if (!r.ir) throw new LbcError(r.diagnostics);
  return r.ir;
}

const show = (v: unknown): string => {
  const t = JSON.stringify(v, (k, x) => (k === 'loc' ? undefined : x)) ?? String(v);
  return t.length > 80 ? `${t.slice(0, 80)}…` : t;
};

const FIELDS = ['name', 'family', 'vip', 'port', 'ports', 'allow', 'protocol', 'interface', 'mode', 'hashFields', 'sticky', 'local', 'associations', 'sourceNat', 'health'] as const;
const BACKEND_FIELDS = ['address', 'port', 'keepsPort', 'weight', 'backup', 'health'] as const;
const LOC_OF: Partial<Record<(typeof FIELDS)[number], keyof ServiceLocations>> = { hashFields: 'hash' };

/**
 * Checks an IR from outside the library (read once, into a copy). `ir` is a fresh IR that emitters may trust, or null;
 * `diagnostics` are the spec validator's (codes LBC2xxx), plus LBC2090 (not an IR at all), LBC2091
 * (backend indexes) and LBC2092 (a value the validator would normalize).
 */
export function checkIR(given: unknown): { ir: IR | null; diagnostics: Diagnostic[] } {
  const bag = new DiagnosticBag();
  let tree: SNode;
  let file: string;
  let input: unknown;
  try {
    input = snapshot(given);
    if (!isObj(input) || typeof input.file !== 'string') {
      bag.error('LBC2090', `not an lbc IR: expected an object with "file" (a string) and "services", not ${show(input)}`);
      return { ir: null, diagnostics: bag.items };
    }
    file = input.file;
    const top = new MapBuilder(NOWHERE);
    top.set('version', 1);
    top.set('services', Array.isArray(input.services) ? mark({ kind: 'seq', items: input.services.map(serviceNode), loc: NOWHERE }) : input.services);
    if (input.balancers !== undefined && input.balancers !== null) top.set('balancers', balancersNode(input.balancers));
    tree = top.node();
  } catch (e) {
    bag.error('LBC2090', `the IR cannot be read: ${e instanceof Error ? e.message : String(e)}`);
    return { ir: null, diagnostics: bag.items };
  }
  const validator = new SpecValidator(file);
  const ir = validator.finish(tree);
  bag.items.push(...validator.bag.items);
  if (ir) compareWithInput(input as Obj, ir, bag);
  const diagnostics = sortDiagnostics(bag.items.map(withoutNowhere));
  if (bag.hasErrors || !ir) return { ir: null, diagnostics };
  const checked: IR = { file, services: ir.services.map(dropNowhere) };
  if (ir.balancers) checked.balancers = ir.balancers;
  return { ir: remember(checked), diagnostics };
}

/** Backend indexes, and every field the validator would have written otherwise. */
function compareWithInput(input: Obj, ir: IR, bag: DiagnosticBag): void {
  if (ir.balancers && !sameValue(input.balancers, ir.balancers)) {
    bag.error('LBC2092', `balancers: ${show(input.balancers)} is not in the normalized form ${show(ir.balancers)} the validator writes`, NOWHERE, [
      'build the IR with parseSpec(), or write each value as ir/balancers.ts describes it',
    ]);
  }
  const given = input.services as Obj[];
  ir.services.forEach((out, i) => {
    const svc = given[i];
    const label = `service "${out.name}"`;
    const locs = isObj(svc.loc) ? (svc.loc as Obj) : {};
    for (const f of FIELDS) {
      if (!sameValue(svc[f], out[f])) {
        bag.error('LBC2092', `${label}: ${f} is ${show(svc[f])}, not in the normalized form ${show(out[f])} the validator writes`, locOf(locs[LOC_OF[f as 'hashFields'] ?? f] ?? locs.service), [
          'build the IR with parseSpec(), or write each value as types.ts describes it',
        ]);
      }
    }
    const backends = svc.backends as Obj[];
    const indexes = new Set<number>();
    out.backends.forEach((b, j) => {
      const inB = backends[j];
      const bloc = locOf(inB.loc);
      for (const f of BACKEND_FIELDS) {
        if (!sameValue(inB[f], b[f])) {
          bag.error('LBC2092', `${label}, backend ${j}: ${f} is ${show(inB[f])}, not in the normalized form ${show(b[f])} the validator writes`, bloc, [
            f === 'health' && inB[f] === null ? "every backend of a service with a health check carries the check it gets (the service's, merged with its own)" : 'build the IR with parseSpec(), or write each value as types.ts describes it',
          ]);
        }
      }
      const index = inB.index;
      if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0 || index >= MAX_BACKENDS || indexes.has(index)) {
        bag.error('LBC2091', `${label}, backend ${j}: index ${show(index)} must be a whole number from 0 to ${MAX_BACKENDS - 1}, different for every backend of the service`, bloc, [
          "the index is the backend's position in the spec's list; targets name chains and sets after it",
        ]);
      } else indexes.add(index);
      b.index = typeof index === 'number' ? index : j;
    });
  });
}

function withoutNowhere(d: Diagnostic): Diagnostic {
  return d.location && d.location.line === 0 ? { ...d, location: undefined } : d;
}

/** The validator's fresh IR without the NOWHERE positions (changed in place: nobody else holds it). */
function dropNowhere(s: Service): Service {
  for (const k of Object.keys(s.loc) as (keyof ServiceLocations)[]) if (s.loc[k] === NOWHERE) delete s.loc[k];
  for (const b of s.backends) if (b.loc === NOWHERE) delete b.loc;
  return s;
}
