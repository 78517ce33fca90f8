/**
 * The intermediate representation: a validated, normalized, target-neutral
 * description of the balanced services. Nothing in here is a string of any
 * target's syntax; emitters decide how to spell it.
 *
 * Invariants every emitter may rely on (established by ir/validate.ts):
 * - names match /^[a-z][a-z0-9-]*$/, are unique, at most MAX_SERVICE_NAME_LENGTH long;
 * - addresses are canonical text (IPv4 dotted quad, IPv6 RFC 5952 compressed lower case);
 * - every address of a service (vip and backends) is of the service's family;
 * - weights are positive integers; backends has at least one primary (non-backup) entry;
 * - interface names match /^[A-Za-z0-9_.:-]{1,15}$/ (Linux IFNAMSIZ-1; BSD names are shorter);
 * - services are in the order the spec gives them;
 * - a service with associations is UDP, has a host vip, is neither sticky nor local, and every backend
 *   has an address and the service's port (only addresses are rewritten); no other UDP service of its
 *   family has a backend with the same address and port (a backend's packet names its service by them);
 * - a source NAT address is of the service's family; a service with source NAT has no backend-initiated
 *   associations (its backends never see a client's address); services of one family and protocol that
 *   share a backend address and port have the same source NAT.
 */
import type { SourceLocation } from '../diagnostics/diagnostic.js';

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

export type HealthCheckKind = 'tcp' | 'http' | 'banner';

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
}

export interface Backend {
  /** Position in the service's backends list (0-based), stable across the pipeline. */
  index: number;
  /** null: a port on the balancer itself (redirect to a local listener). */
  address: string | null;
  port: number;
  weight: number;
  /** Used only while every primary backend is down. */
  backup: boolean;
  /** Effective health check (service default merged with the backend's override), or null. */
  health: HealthCheck | null;
  loc: SourceLocation;
}

/** Where the spec wrote each field of a service, so targets can point at the line they refuse. */
export interface ServiceLocations {
  service: SourceLocation;
  name: SourceLocation;
  vip?: SourceLocation;
  port?: SourceLocation;
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
  backends: SourceLocation;
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
  port: number;
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
}

/** Primary (non-backup) backends. */
export function primaries(svc: Service): Backend[] {
  return svc.backends.filter((b) => !b.backup);
}

export function totalWeight(backends: readonly Backend[]): number {
  return backends.reduce((s, b) => s + b.weight, 0);
}
