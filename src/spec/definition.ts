/**
 * The spec language, defined once: every block, every field, its type, allowed values, range or
 * pattern, default and description. Two things are made from it:
 * - the validator's field checks (ir/reader.ts reads a field through its definition: unknown fields
 *   with "did you mean", wrong types, ranges, enums, patterns — each with its code and position);
 * - the JSON Schema of the spec (spec/json-schema.ts), for editors and CI.
 * What needs more than one field or more than one service (address families, overlapping services,
 * duplicates, http-only keys on a tcp check) stays code in ir/validate.ts.
 *
 * Adding a field: one entry in its block below, then its meaning in ir/validate.ts (and the IR).
 */
import { HASH_FIELDS, MAX_SERVICE_NAME_LENGTH } from '../ir/types.js';
import { MAX_BACKENDS, MAX_SERVICES } from './limits.js';

export { MAX_BACKENDS };

export interface Invalid {
  code: string;
  /** The message for a value of the right type that the pattern refuses. */
  message: (value: string) => string;
  notes?: readonly string[];
}

export type FieldType =
  /** A whole number in [min, max]. */
  | { kind: 'integer'; min: number; max: number }
  | { kind: 'boolean' }
  /** Exactly this number (the spec's version). */
  | { kind: 'const'; value: number }
  /**
   * One of `values`; `aliases` are accepted spellings of a value. `message` replaces the generic
   * "must be one of" wording where the field has its own.
   */
  | { kind: 'enum'; values: readonly string[]; aliases?: Readonly<Record<string, string>>; message?: (value: string) => string }
  /**
   * Text matching `pattern` (anchored; also the JSON Schema's pattern). `numbers`: a bare number is
   * read as its text (banner expect: 220).
   */
  | { kind: 'text'; pattern: RegExp; invalid: Invalid; numbers?: boolean }
  /** An IP address, or (block: true) an address or CIDR block; read by ir/address.ts. */
  | { kind: 'address'; block: boolean }
  /**
   * A duration with a unit (ir/duration.ts) in [minMs, maxMs]; `wholeSeconds`: a multiple of 1s.
   * Messages call it `noun` (default "a duration"), give `example`, and `about` after the range.
   */
  | { kind: 'duration'; minMs: number; maxMs: number; code: string; example: string; noun?: string; about?: string; wholeSeconds?: boolean }
  /** A nested block. */
  | { kind: 'block'; block: BlockName }
  /**
   * A list whose items have one of the `items` types. `single`: one item may be written without the
   * list (hash: saddr). `unique`: no item twice.
   */
  | { kind: 'list'; items: readonly FieldType[]; minItems: number; maxItems?: number; single?: boolean; unique?: boolean }
  /** The backend shorthand "ADDRESS", "ADDRESS:PORT", "[IPv6]:PORT" or ":PORT" (read by ir/validate.ts). */
  | { kind: 'backend-shorthand' }
  /** One of the `words`, or an IP address (not a block): source-nat's masquerade | none | ADDRESS. */
  | { kind: 'address-or-word'; words: readonly string[] };

export interface FieldDef {
  type: FieldType;
  description: string;
  /** The value an absent field has (shown in the JSON Schema; the validator applies it). */
  default?: string | number | boolean | readonly string[];
  required?: boolean;
}

export type BlockName = 'spec' | 'service' | 'backend' | 'health' | 'associations' | 'balancers' | 'node' | 'gateway' | 'sync';

export interface BlockDef {
  /** How messages name the block: `unknown field "x" in a service`. */
  what: string;
  title: string;
  description: string;
  fields: Readonly<Record<string, FieldDef>>;
  /** At least one of these fields must be present (a backend needs an address, a port, or both). */
  oneOfRequired?: readonly string[];
  /** Exactly one of these fields must be present (a service has a port or ports, not both). */
  exactlyOneOf?: readonly string[];
}

export const MAX_WEIGHT = 1000;
/** ipset's largest timeout; also far beyond any sane affinity. */
export const MAX_STICKY_SECONDS = 2_147_483;
/** Client blocks in one service's allow list: ipset's default maxelem, and far beyond a hand-kept ACL. */
export const MAX_ALLOW = 65_536;
/** Entries in one service's ports list (each a port or a range). */
export const MAX_PORT_ENTRIES = 256;
/** A port number 1-65535 in text, for patterns. */
const PORT_TEXT = '(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
/** "LOW-HIGH": an inclusive port range in `ports` (LOW below HIGH is checked by the validator). */
export const PORT_RANGE_RE = new RegExp(`^(${PORT_TEXT})-(${PORT_TEXT})$`);
/** Hex bytes for check udp: pairs of hex digits, optionally separated by spaces ("40 00 00 00"). */
export const HEX_BYTES_RE = /^ *[0-9A-Fa-f]{2}(?: *[0-9A-Fa-f]{2})* *$/;
/** Most UDP associations one service may hold (16 × sbulb's default); every target stores each one in kernel memory. */
export const MAX_ASSOCIATIONS = 16_777_216;
/** sbulb's default (seed 004): 1,048,576 associations. */
export const DEFAULT_ASSOCIATIONS = 1_048_576;

export const NAME_RE = /^[a-z](?:[a-z0-9-]*[a-z0-9])?$/;
/** Linux IFNAMSIZ is 16 with the NUL; BSD names are shorter. No quotes, spaces or wildcards: they would reach rule text. */
export const IFNAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,14}$/;

const PORT = { kind: 'integer', min: 1, max: 65535 } as const;

/** One field's printable form for messages (no control characters, at most 40 characters). */
export function printable(s: string): string {
  const t = s.replace(/[^\x20-\x7e]/g, '?');
  return t.length > 40 ? `${t.slice(0, 40)}…` : t;
}

const HEALTH: BlockDef = {
  what: 'a health check',
  title: 'Health check',
  description:
    'How lbc agent (and relayd, iptables-condition) check a backend. On a backend: an override merged over the service\'s check.',
  fields: {
    check: {
      type: { kind: 'enum', values: ['tcp', 'http', 'banner', 'icmp', 'udp'] },
      default: 'tcp',
      description:
        'tcp: a connect; http: a request whose status must match; banner: the first line the backend sends must start with `expect`; icmp: an ICMP echo request must be answered; udp: one datagram (`send`, hex bytes) must be answered, by an answer starting with `expect` when given.',
    },
    interval: { type: { kind: 'duration', minMs: 10, maxMs: 3_600_000, code: 'LBC2041', example: '1s or 500ms' }, default: '2s', description: 'Time between two checks of one backend (10ms to 1h), with a unit: ms, s, m, h.' },
    timeout: { type: { kind: 'duration', minMs: 10, maxMs: 3_600_000, code: 'LBC2041', example: '1s or 500ms' }, default: '1s', description: 'How long one check may take (10ms to 1h, at most the interval); default 1s, or the interval when that is shorter.' },
    rise: { type: { kind: 'integer', min: 1, max: 100 }, default: 2, description: 'Consecutive successes before a down backend counts as up.' },
    fall: { type: { kind: 'integer', min: 1, max: 100 }, default: 3, description: 'Consecutive failures before an up backend counts as down.' },
    port: { type: PORT, description: "Port to probe instead of the backend's own (for a backend of a service with several ports that names none: the service's first port). Not for check: icmp." },
    path: {
      type: {
        kind: 'text',
        pattern: /^\/[\x21\x23-\x5b\x5d-\x7e]*$/,
        invalid: {
          code: 'LBC2044',
          message: (v) => (/["\\]/.test(v) ? 'health path must not contain quotes or backslashes' : 'health path must start with "/" and contain no spaces or control characters'),
        },
      },
      default: '/',
      description: 'check: http only. The request path: starts with "/", printable ASCII without spaces, quotes or backslashes.',
    },
    status: { type: { kind: 'integer', min: 100, max: 599 }, default: 200, description: 'check: http only. The status a healthy backend answers with.' },
    host: {
      type: { kind: 'text', pattern: /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/, invalid: { code: 'LBC2044', message: () => 'health host must be a host name (letters, digits, "." and "-")' } },
      description: 'check: http only. The Host header (a host name, optionally with :port).',
    },
    method: { type: { kind: 'enum', values: ['GET', 'HEAD'] }, default: 'GET', description: 'check: http only. The request method.' },
    send: {
      type: { kind: 'text', pattern: /^[\x20-\x7e\r\n\t]{0,512}$/, invalid: { code: 'LBC2045', message: () => 'health send must be printable ASCII (\\r, \\n and \\t allowed), at most 512 characters' } },
      description:
        'check: banner: text sent after the banner is read (e.g. "QUIT\\r\\n"); printable ASCII, \\r, \\n and \\t, at most 512 characters. check: udp (and required there): the datagram to send, as hex bytes, e.g. "40 00 00 00" (a CoAP ping).',
    },
    expect: {
      type: { kind: 'text', pattern: /^[\x20-\x7e]{1,256}$/, numbers: true, invalid: { code: 'LBC2045', message: () => 'health expect must be 1-256 printable ASCII characters' } },
      description:
        'check: banner (and required there): the start of the first line a healthy backend sends, e.g. "220". check: udp: the start of a healthy answer as hex bytes, e.g. "70 00 00 00" (a CoAP reset); without it any answer is healthy.',
    },
  },
};

const ASSOCIATIONS: BlockDef = {
  what: 'associations',
  title: 'UDP associations',
  description:
    'UDP only: one long-lived association per client address and port, kept by the rules themselves (not by connection tracking), so a client and its backend stay together across idle periods, reloads and conntrack flushes. Only addresses are rewritten: backends run on the service port.',
  fields: {
    max: {
      type: { kind: 'integer', min: 1, max: MAX_ASSOCIATIONS },
      default: DEFAULT_ASSOCIATIONS,
      description: `How many associations the service holds at once (1-${MAX_ASSOCIATIONS}). When it is full a new client is still served: no target lbc writes for can evict the least recently used one, so the newcomer is balanced without being remembered (lbc check says how, per target).`,
    },
    idle: {
      type: { kind: 'duration', minMs: 1000, maxMs: MAX_STICKY_SECONDS * 1000, code: 'LBC2130', example: '1d, 1h or 90s', noun: 'an idle timeout', about: 'about 24 days', wholeSeconds: true },
      description: 'Forget an association after this long without a packet in either direction (whole seconds with a unit: s, m, h, d; at most about 24 days). Omitted: never; an association then lasts until its backend leaves the spec or the balancer reboots.',
    },
    'backend-initiated': {
      type: { kind: 'boolean' },
      default: false,
      description: "A backend's packet from the service port to a client creates or refreshes that client's association and leaves from the vip; a backend's packet to a client associated with another backend is dropped. false: only packets to the backend's own clients are rewritten.",
    },
  },
};

const SOURCE_NAT_DESCRIPTION =
  "Source NAT of the connections sent to the backends, so their replies come back through the balancer without a route via it (a balancer beside the servers on one network): masquerade (the balancer's address on the way out to the backend), an address of the balancer, or none. The backends then see the balancer's address, not the client's.";

const BACKEND: BlockDef = {
  what: 'a backend',
  title: 'Backend',
  description: 'A server that receives connections; without an address, a port on the balancer itself.',
  fields: {
    address: { type: { kind: 'address', block: false }, description: 'IPv4 or IPv6 address (canonical form). Omitted: a port on the balancer itself.' },
    port: { type: PORT, description: "The backend's port; default: the service's port." },
    weight: { type: { kind: 'integer', min: 1, max: MAX_WEIGHT }, default: 1, description: `Share of new connections relative to the other backends (1-${MAX_WEIGHT}).` },
    backup: { type: { kind: 'boolean' }, default: false, description: 'Used only while every primary (non-backup) backend is down.' },
    health: { type: { kind: 'block', block: 'health' }, description: "Override of the service's health check for this backend, merged over it." },
  },
  oneOfRequired: ['address', 'port'],
};

const SERVICE: BlockDef = {
  what: 'a service',
  title: 'Service',
  description: 'One balanced service: traffic to vip:port is spread over the backends.',
  fields: {
    name: {
      type: {
        kind: 'text',
        pattern: new RegExp(`^(?=.{1,${MAX_SERVICE_NAME_LENGTH}}$)${NAME_RE.source.slice(1)}`),
        invalid: {
          code: 'LBC2012',
          message: (v) =>
            `service name "${printable(v)}" must be 1-${MAX_SERVICE_NAME_LENGTH} characters of lower-case letters, digits and '-', starting with a letter and not ending with '-'`,
          notes: ['the name becomes part of chain, table and set names in every target, which limits its length and alphabet'],
        },
      },
      required: true,
      description: `Unique name, 1-${MAX_SERVICE_NAME_LENGTH} characters: lower-case letters, digits and "-", starting with a letter, not ending with "-" (it becomes part of chain, table and set names).`,
    },
    vip: { type: { kind: 'address', block: true }, description: 'Virtual IP: an IPv4 or IPv6 address, or a CIDR block with the host bits zero. Omitted: any local address.' },
    port: { type: PORT, description: 'The port clients connect to (1-65535). A service has `port` or `ports`.' },
    ports: {
      type: {
        kind: 'list',
        items: [
          PORT,
          {
            kind: 'text',
            pattern: PORT_RANGE_RE,
            invalid: { code: 'LBC2061', message: (v) => `port range "${printable(v)}" must be LOW-HIGH, two ports from 1 to 65535 with LOW below HIGH` },
          },
        ],
        minItems: 1,
        maxItems: MAX_PORT_ENTRIES,
      },
      description:
        `Several ports instead of \`port\`: ports and ranges "LOW-HIGH" (at most ${MAX_PORT_ENTRIES} entries, none overlapping), e.g. [5683, 5684] or ["4000-4010"]. One rotation (and one affinity table) covers all of them; a backend without a port of its own keeps the port the client connected to.`,
    },
    allow: {
      type: { kind: 'list', items: [{ kind: 'address', block: true }], minItems: 1, maxItems: MAX_ALLOW },
      description: `Client source addresses or CIDR blocks that are balanced (at most ${MAX_ALLOW}); connections from anywhere else are refused. Omitted: every client.`,
    },
    protocol: { type: { kind: 'enum', values: ['tcp', 'udp'] }, default: 'tcp', description: 'tcp or udp.' },
    interface: {
      type: {
        kind: 'text',
        pattern: IFNAME_RE,
        invalid: { code: 'LBC2016', message: (v) => `interface "${printable(v)}" is not a valid interface name (a letter, then up to 14 letters, digits, '_', '.', '-')` },
      },
      description: 'Only connections arriving on this interface (a letter, then up to 14 letters, digits, "_", ".", "-").',
    },
    mode: {
      type: {
        kind: 'enum',
        values: ['nth', 'random', 'hash'],
        aliases: { 'round-robin': 'nth', roundrobin: 'nth' },
        message: (v) => `mode must be nth (or round-robin), random or hash, not "${printable(v)}"`,
      },
      default: 'nth',
      description: 'How a backend is chosen: nth (alias round-robin) rotates exactly, weights included; random picks by weight; hash maps the hash fields to a backend.',
    },
    hash: {
      type: { kind: 'list', items: [{ kind: 'enum', values: HASH_FIELDS }], minItems: 1, maxItems: HASH_FIELDS.length, single: true, unique: true },
      default: ['saddr'],
      description: 'mode: hash only. The fields hashed: any of saddr, sport, daddr, dport.',
    },
    sticky: {
      type: { kind: 'duration', minMs: 1000, maxMs: MAX_STICKY_SECONDS * 1000, code: 'LBC2019', example: '10m, 90s or 1h30m', noun: 'an idle timeout', about: 'about 24 days', wholeSeconds: true },
      description: 'Source-address affinity: a client keeps its backend while it opens connections within this idle time (whole seconds with a unit: s, m, h, d; at most about 24 days).',
    },
    local: { type: { kind: 'boolean' }, default: false, description: 'Also balance connections made on the balancer itself.' },
    family: { type: { kind: 'enum', values: ['ipv4', 'ipv6'] }, description: 'ipv4 or ipv6; normally inferred from the addresses (ipv4 when there are none).' },
    associations: { type: { kind: 'block', block: 'associations' }, description: 'UDP only: long-lived associations per client address and port (see "UDP associations").' },
    'source-nat': { type: { kind: 'address-or-word', words: ['masquerade', 'none'] }, description: `${SOURCE_NAT_DESCRIPTION} Overrides the spec's source-nat.` },
    health: { type: { kind: 'block', block: 'health' }, description: 'Health check of every backend (see "Health checks").' },
    backends: {
      type: { kind: 'list', items: [{ kind: 'block', block: 'backend' }, { kind: 'backend-shorthand' }], minItems: 1, maxItems: MAX_BACKENDS },
      required: true,
      description: `The servers (1-${MAX_BACKENDS}): mappings, or the shorthand "ADDRESS", "ADDRESS:PORT", "[IPv6]:PORT", ":PORT" (a port on this host).`,
    },
  },
  exactlyOneOf: ['port', 'ports'],
};

/** Node names (node1, lb-a): they reach keepalived.conf, script arguments and comments. */
export const NODE_NAME_RE = /^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
/** Absolute, segments starting with a letter, digit or "_" (so no "." or ".."), nothing a shell or a config parser reads specially. */
export const SAFE_PATH_RE = /^(?:\/[A-Za-z0-9_][A-Za-z0-9._-]{0,63}){1,16}$/;
/** RFC 5798 §5.2.7: Max Adver Int is 12 bits of centiseconds. */
export const MAX_ADVERT_MS = 40_950;
export const MAX_NODES = 16;

const IFNAME_TEXT = {
  kind: 'text',
  pattern: IFNAME_RE,
  invalid: { code: 'LBC2016', message: (v: string) => `interface "${printable(v)}" is not a valid interface name (a letter, then up to 14 letters, digits, '_', '.', '-')` },
} as const;

const NODE: BlockDef = {
  what: 'a node',
  title: 'Balancer node',
  description: 'One machine of the balancer tier; its files are compiled with --node NAME.',
  fields: {
    name: {
      type: {
        kind: 'text',
        pattern: NODE_NAME_RE,
        invalid: { code: 'LBC2110', message: (v) => `node name "${printable(v)}" must be 1-32 lower-case letters, digits and '-', starting with a letter and not ending with '-'` },
      },
      required: true,
      description: 'Unique name, 1-32 lower-case letters, digits and "-" (lbc compile --node NAME).',
    },
    address: { type: { kind: 'address', block: false }, required: true, description: "The node's own address on the tier's interface (VRRP's source address)." },
    'sync-address': { type: { kind: 'address', block: false }, description: "With sync: the node's address on the sync link (conntrackd, pfsync's peer)." },
  },
};

const GATEWAY: BlockDef = {
  what: 'the gateway',
  title: 'Gateway',
  description: "Failover only: the backends' default route, an address the tier moves together with the vips.",
  fields: {
    interface: { type: IFNAME_TEXT, required: true, description: 'Where the backends reach the gateway.' },
    address: {
      type: {
        kind: 'text',
        pattern: /^(?:[0-9.]+|[0-9A-Fa-f:]+)\/\d{1,3}$/,
        invalid: { code: 'LBC2106', message: (v) => `gateway address must be an address with its prefix length, such as 192.168.10.100/24, not "${printable(v)}"`, notes: ['the backends are on that network and use the address as their default route'] },
      },
      required: true,
      description: 'The address with the prefix length of the backends\' network, e.g. 192.168.10.100/24.',
    },
  },
};

const SYNC: BlockDef = {
  what: 'sync',
  title: 'Connection-state sync',
  description: 'Failover only: the link on which the nodes copy connection state (conntrackd on Linux, pfsync on the BSDs).',
  fields: {
    interface: { type: IFNAME_TEXT, required: true, description: 'The sync link; every node needs a sync-address on it.' },
  },
};

const BALANCERS: BlockDef = {
  what: 'balancers',
  title: 'Balancer tier',
  description: 'The machines that run the rules: a failover group (one node active, the vips move) or an active-active cluster (each node takes its share by source-address hash). Absent: one balancer.',
  fields: {
    mode: {
      type: { kind: 'enum', values: ['failover', 'active-active'] },
      required: true,
      description: 'failover: one node holds the vips, the next takes them when it fails (VRRP / CARP); active-active: every node receives the vips\' traffic and keeps the clients hashed to buckets it owns.',
    },
    id: { type: { kind: 'integer', min: 1, max: 255 }, required: true, description: 'VRRP virtual router id / CARP vhid (1-255); active-active uses id … id+N·(N−1)−1, the gateway id+1 on CARP.' },
    advert: {
      type: { kind: 'duration', minMs: 10, maxMs: MAX_ADVERT_MS, code: 'LBC2102', example: '1s or 100ms', noun: 'an advertisement interval', about: 'VRRPv3 counts centiseconds' },
      default: '1s',
      description: 'Advertisement interval, 10ms to 40950ms in steps of 10ms (whole seconds on CARP).',
    },
    interface: { type: IFNAME_TEXT, required: true, description: 'Where the vips live.' },
    gateway: { type: { kind: 'block', block: 'gateway' }, description: "Failover: the backends' default route, moved together with the vips." },
    sync: { type: { kind: 'block', block: 'sync' }, description: 'Failover: connection-state sync between the nodes.' },
    'secret-file': {
      type: {
        kind: 'text',
        pattern: SAFE_PATH_RE,
        invalid: { code: 'LBC2103', message: (v) => `secret-file must be an absolute path of letters, digits, ".", "_" and "-", not "${printable(v)}"`, notes: ["the path is written into the nodes' configuration, which reads the secret from it; the secret itself never appears in lbc's output"] },
      },
      description: 'A file on each node holding the CARP key, read there when the interfaces are configured; lbc never reads it.',
    },
    mac: {
      type: {
        kind: 'text',
        pattern: /^(?![fF]{2}(?::[fF]{2}){5}$)[0-9a-fA-F][13579bdfBDF](?::[0-9a-fA-F]{2}){5}$/,
        invalid: { code: 'LBC2104', message: (v) => `mac must be a multicast Ethernet address such as 03:4c:42:00:00:33 (lowest bit of the first byte set, not broadcast), not "${printable(v)}"`, notes: ['every node must receive every frame for the vip, so the vip resolves to a group address the switch floods'] },
      },
      description: 'Active-active: the multicast MAC the vips resolve to (default 03:4c:42:00:00:ID).',
    },
    nodes: {
      type: { kind: 'list', items: [{ kind: 'block', block: 'node' }], minItems: 2, maxItems: MAX_NODES },
      required: true,
      description: `The nodes (2-${MAX_NODES}), in order of preference.`,
    },
  },
};

const SPEC: BlockDef = {
  what: 'the spec',
  title: 'lbc spec',
  description: 'A load-balancer spec for lbc: balanced services, compiled to iptables, nftables, pf or IPFilter rules.',
  fields: {
    version: { type: { kind: 'const', value: 1 }, required: true, description: 'The spec format version: 1.' },
    'source-nat': { type: { kind: 'address-or-word', words: ['masquerade', 'none'] }, default: 'none', description: `${SOURCE_NAT_DESCRIPTION} The default of every service; a service of the other family than an address given here must set its own.` },
    services: {
      type: { kind: 'list', items: [{ kind: 'block', block: 'service' }], minItems: 0, maxItems: MAX_SERVICES },
      required: true,
      description: `The balanced services (at most ${MAX_SERVICES.toLocaleString('en-US')}); an empty list compiles to rulesets that balance nothing.`,
    },
    balancers: { type: { kind: 'block', block: 'balancers' }, description: 'The machines that run the rules, when there are several (failover or active-active).' },
  },
};

export const BLOCKS: Readonly<Record<BlockName, BlockDef>> = { spec: SPEC, service: SERVICE, backend: BACKEND, health: HEALTH, associations: ASSOCIATIONS, balancers: BALANCERS, node: NODE, gateway: GATEWAY, sync: SYNC };

/** A field's definition; throws for a name the block does not define (a programming error, not bad input). */
export function fieldOf(block: BlockDef, name: string): FieldDef {
  const f = block.fields[name];
  if (!f) throw new Error(`${block.what} has no field "${name}" in the spec definition`);
  return f;
}

/** The default of a field as the validator uses it. */
export function defaultOf<T>(block: BlockName, name: string): T {
  return fieldOf(BLOCKS[block], name).default as T;
}
