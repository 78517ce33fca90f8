/**
 * The intermediate representation: a validated, normalized, target-neutral
 * description of the balanced services. Nothing in here is a string of any
 * target's syntax; emitters decide how to spell it.
 *
 * Invariants every emitter may rely on. ir/validate.ts establishes them for
 * specs; ir/check.ts checks them (with the same validator) for every IR the
 * library is handed, and any new field must be checked there too (its tests
 * round-trip random specs through it).
 * - at most MAX_SERVICES services and MAX_TOTAL_BACKENDS backends (spec/limits.ts),
 *   in the order the spec gives them;
 * - names match /^[a-z](?:[a-z0-9-]*[a-z0-9])?$/, at most MAX_SERVICE_NAME_LENGTH
 *   long, unique;
 * - family is ipv4 or ipv6, and every address of a service (vip and backends) is of it;
 * - addresses are canonical text (IPv4 dotted quad without leading zeros, IPv6
 *   RFC 5952: lower case, compressed), never IPv4-mapped, never with a zone;
 * - vip is null or a prefix with the host bits zero, isHost exactly when the
 *   length is 32 / 128, and not a special-use block (spec/definition.ts and
 *   ir/address.ts specialUse: not every address, unspecified, multicast,
 *   broadcast; loopback only with `local`, link-local only with an interface);
 * - port 1-65535; protocol tcp or udp; interface null or /^[A-Za-z][A-Za-z0-9_.-]{0,14}$/
 *   (Linux IFNAMSIZ-1; BSD names are shorter);
 * - mode is nth, random or hash (no aliases); hashFields is non-empty, without
 *   repeats and in HASH_FIELDS order for mode hash, empty otherwise;
 * - sticky is null or a whole number of seconds from 1 to MAX_STICKY_SECONDS;
 * - backends: 1 to MAX_BACKENDS, at least one primary (backup false); no two
 *   with the same address and port; address null (a port on this host) or a
 *   unicast address that is not special-use, nor the vip itself on the
 *   service's port; port 1-65535; weight 1-MAX_WEIGHT; index a whole number
 *   below MAX_BACKENDS, different for each backend of the service (its place
 *   in the spec's list; the agent's live IRs keep them, with gaps);
 * - health checks: intervalMs and timeoutMs whole numbers from 10 to 3,600,000
 *   with timeout <= interval; rise and fall 1-100; port null or 1-65535; http
 *   set exactly for check http (path, status 100-599, host, method as in
 *   spec/definition.ts) and banner exactly for check banner; when a service has
 *   a check, every backend carries its effective one (the service's merged
 *   with the backend's own);
 * - ports is non-empty, sorted by `from`, its ranges disjoint (from <= to), and port === ports[0].from;
 * - keepsPort is true exactly for the backends that name no port of a service with more than one port
 *   (hasSeveralPorts); their `port` is the service's first port. A backend that names no port of a
 *   one-port service has that port and keepsPort false;
 * - allow is null (every client) or a non-empty list of client blocks of the service's family, sorted
 *   by address, none inside another and none the whole address space (that is null);
 * - a health check's udp fields are lower-case hex without spaces, present exactly for check udp;
 *   an icmp check has port null;
 * - balancers is absent (one balancer) or a tier as ir/balancers.ts validates it;
 * - a service with associations is UDP, has a host vip, is neither sticky nor local, and every backend
 *   has an address and the service's port (only addresses are rewritten); no other UDP service of its
 *   family has a backend with the same address and port (a backend's packet names its service by them);
 * - a source NAT address is of the service's family; a service with source NAT has no backend-initiated
 *   associations (its backends never see a client's address); services of one family and protocol that
 *   share a backend address and port have the same source NAT;
 * - no two services claim the same traffic: same family and protocol, a shared port and
 *   the same vip (or both none), or nested vip blocks.
 * The text that reaches output through names, interfaces, health paths, hosts,
 * send and expect strings is restricted to those alphabets; `file` reaches only
 * comments, which targets make printable; nothing else in an IR is text.
 */
import type { SourceLocation } from '../diagnostics/diagnostic.js';
import type { Balancers } from './balancers.js';

export const MAX_SERVICE_NAME_LENGTH = 16;

export type Family = 'ipv4' | 'ipv6';
export type Protocol = 'tcp' | 'udp';
export type Mode = 'nth' | 'random' | 'hash';
export type HashField = 'saddr' | 'sport' | 'daddr' | 'dport';
export const HASH_FIELDS: readonly HashField[] = ['saddr', 'sport', 'daddr', 'dport'];

/** An address with a prefix length; a host address has the family's full length (32/128). */
export interface Prefix {
  address: string;
  prefixLength: number;
  /** true when prefixLength is 32 (IPv4) or 128 (IPv6). */
  isHost: boolean;
}

export type HealthCheckKind = 'tcp' | 'http' | 'banner' | 'icmp' | 'udp';

/** An inclusive range of ports; a single port has from === to. */
export interface PortRange {
  from: number;
  to: number;
}

export interface HealthCheck {
  check: HealthCheckKind;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive successes before a down backend counts as up. */
  rise: number;
  /** Consecutive failures before an up backend counts as down. */
  fall: number;
  /** Port to probe; defaults to the backend's port. */
  port: number | null;
  http: { path: string; status: number; host: string | null; method: 'GET' | 'HEAD' } | null;
  banner: { send: string | null; expect: string } | null;
  /** check: udp. One datagram `send` (hex); healthy when an answer arrives that starts with `expect` (hex; null: any answer). */
  udp: { send: string; expect: string | null } | null;
}

export interface Backend {
  /** Position in the service's backends list (0-based), stable across the pipeline. */
  index: number;
  /** null: a port on the balancer itself (redirect to a local listener). */
  address: string | null;
  /** The port connections are sent to (for keepsPort: the service's first port, which health checks probe). */
  port: number;
  /** A service with several ports, and the backend names none: each connection keeps the port the client chose. */
  keepsPort: boolean;
  weight: number;
  /** Used only while every primary backend is down. */
  backup: boolean;
  /** Effective health check (service default merged with the backend's override), or null. */
  health: HealthCheck | null;
  /** Where the spec wrote the backend; absent in an IR built without a spec. */
  loc?: SourceLocation;
}

/**
 * Where the spec wrote each field of a service, so targets can point at the line they refuse.
 * An IR built without a spec (a script's) has none: its diagnostics then carry no position.
 */
export interface ServiceLocations {
  service?: SourceLocation;
  name?: SourceLocation;
  vip?: SourceLocation;
  port?: SourceLocation;
  /** Where `ports` was written (absent with `port`). */
  ports?: SourceLocation;
  allow?: SourceLocation;
  protocol?: SourceLocation;
  interface?: SourceLocation;
  mode?: SourceLocation;
  hash?: SourceLocation;
  sticky?: SourceLocation;
  local?: SourceLocation;
  health?: SourceLocation;
  family?: SourceLocation;
  associations?: SourceLocation;
  /** The service's own source-nat, or the spec's when the service inherits it. */
  sourceNat?: SourceLocation;
  backends?: SourceLocation;
}

/** Long-lived UDP associations per client address and port (seed 004). */
export interface Associations {
  /** Most associations held at once; when full, a new client is balanced without being remembered. */
  max: number;
  /** Forget an association after this long without a packet either way; null: never. */
  idleSeconds: number | null;
  /** A backend's packet to a client creates or refreshes the association and leaves from the vip. */
  backendInitiated: boolean;
}

/** Source NAT of what is sent to the backends: to the outgoing interface's address, or to one address. */
export type SourceNat = { kind: 'masquerade' } | { kind: 'address'; address: string };

export interface Service {
  name: string;
  family: Family;
  /** null: any local address (optionally restricted by `interface`). */
  vip: Prefix | null;
  /** The service's first port: its only port unless `ports` lists more. */
  port: number;
  /** Every port the service balances (one entry { from: port, to: port } for a single port). */
  ports: PortRange[];
  /** Client source blocks that are balanced; everyone else is refused. null: every client. */
  allow: Prefix[] | null;
  protocol: Protocol;
  interface: string | null;
  mode: Mode;
  /** Non-empty for mode 'hash', in the canonical order of HASH_FIELDS; empty otherwise. */
  hashFields: HashField[];
  /** Source-address affinity with an idle timeout, or null. */
  sticky: { timeoutSeconds: number } | null;
  /** Also balance connections made on the balancer itself (output hook). */
  local: boolean;
  /** Long-lived associations per client address and port (UDP), or null. */
  associations: Associations | null;
  /** Source NAT towards the backends, or null (replies must be routed through the balancer). */
  sourceNat: SourceNat | null;
  backends: Backend[];
  /** Service-level default health check (backends carry the effective one). */
  health: HealthCheck | null;
  loc: ServiceLocations;
}

export interface IR {
  /** The spec's file name, for messages. */
  file: string;
  services: Service[];
  /** The machines that run the rules, when the spec describes more than one (balancers.ts). */
  balancers?: Balancers;
}

/** Primary (non-backup) backends. */
export function primaries(svc: Service): Backend[] {
  return svc.backends.filter((b) => !b.backup);
}

/** More than one port (a list or a range). */
export function hasSeveralPorts(svc: Pick<Service, 'ports'>): boolean {
  return svc.ports.length > 1 || svc.ports[0].from !== svc.ports[0].to;
}

export function totalWeight(backends: readonly Backend[]): number {
  return backends.reduce((s, b) => s + b.weight, 0);
}
