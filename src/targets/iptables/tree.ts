/**
 * Dispatch tree: instead of one linear chain with a rule per service (every new
 * connection to the last of 10,000 services walks 10,000 rules), services with a
 * single-address vip are sorted by (address, port) and split on the address or port
 * bits below their common prefix, until a chain holds at most LEAF_SIZE services.
 * Each split takes as many bits as make the parts leaves if that gives at most
 * MAX_FANOUT parts, else as many as keep the parts within MAX_FANOUT, so a new
 * connection walks at most MAX_FANOUT rules (×2 protocols on port splits) per level,
 * a few levels, and one leaf. Tree rules only narrow the search: every leaf rule is a
 * complete match of its service, so a tree rule may be looser than its subtree.
 *
 * Up to FLAT_MAX services stay in one flat chain (the layout small specs always had).
 */
import { createHash } from 'node:crypto';
import { intToV4, v4ToInt, v6FromBigInt, v6ToBigInt } from '../../ir/address.js';
import type { Family, Protocol } from '../../ir/types.js';

/** Services a dispatch chain may hold before it is split into a tree. */
export const FLAT_MAX = 64;
/**
 * Services per leaf chain. Leaves hold each service's selection rules inline (emit.ts), up to one rule
 * per slot, so a leaf of 16 services of 8 backends is walked over at most 128 rules, each failing at its
 * first match (the destination address) for every service but the packet's own. Every chain is an
 * object `iptables-restore --noflush` must create and that costs far more than a rule (iptables 1.8.9,
 * nf_tables backend: load time grows faster than linearly with the chains), so leaves are made as
 * full as this allows: 10,000 services in ~660 chains instead of ~10,350.
 */
export const LEAF_SIZE = 16;
/** Most child chains a tree chain jumps to. */
export const MAX_FANOUT = 32;

export interface TreeItem {
  family: Family;
  address: string;
  port: number;
  protocol: Protocol;
  /** The item's complete rules without "-A CHAIN " (each matches the service on its own), in order. */
  rules: string[];
  /** A comment line (without "# ") put before the rules. */
  comment?: string;
}

export interface TreeChains {
  /** Chains to declare besides the root, in output order. */
  chains: string[];
  /** "-A CHAIN ..." lines, root first; "# ..." comment lines belong to the chain of the next rule. */
  rules: string[];
}

function addressBits(family: Family, address: string): bigint {
  return family === 'ipv4' ? BigInt(v4ToInt(address)) : v6ToBigInt(address);
}

function bigToAddress(family: Family, v: bigint): string {
  return family === 'ipv4' ? intToV4(Number(v)) : v6FromBigInt(v);
}

interface Keyed {
  key: bigint;
  order: number;
  item: TreeItem;
}

/**
 * Build the tree under `root`. `namespace` keeps chain names of different trees in one table
 * apart (e.g. "T" for PREROUTING, "O" for OUTPUT); names are a hash of the subtree's prefix, so
 * a change that leaves the splits as they were renames nothing (incremental apply diffs by chain).
 */
export function buildTree(root: string, namespace: string, family: Family, items: TreeItem[]): TreeChains {
  const addrBits = family === 'ipv4' ? 32 : 128;
  const keyBits = addrBits + 16;
  const keyed: Keyed[] = items.map((item, order) => ({ key: (addressBits(family, item.address) << 16n) | BigInt(item.port), order, item }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.order - b.order));
  const out: TreeChains = { chains: [], rules: [] };
  const seen = new Set<string>();

  const bit = (k: bigint, i: number) => (k >> BigInt(keyBits - 1 - i)) & 1n;
  const commonPrefix = (a: bigint, b: bigint) => {
    let i = 0;
    while (i < keyBits && bit(a, i) === bit(b, i)) i++;
    return i;
  };

  const put = (chain: string, k: Keyed) => {
    if (k.item.comment !== undefined) out.rules.push(`# ${k.item.comment}`);
    for (const r of k.item.rules) out.rules.push(`-A ${chain} ${r}`);
  };
  /** The parts of a sorted set sharing the first `len` key bits. */
  const partsAt = (set: Keyed[], len: number): Keyed[][] => {
    const shift = BigInt(keyBits - len);
    const parts: Keyed[][] = [];
    for (const k of set) {
      const last = parts[parts.length - 1];
      if (last && last[0].key >> shift === k.key >> shift) last.push(k);
      else parts.push([k]);
    }
    return parts;
  };
  const largest = (parts: Keyed[][]) => parts.reduce((m, p) => Math.max(m, p.length), 0);
  /**
   * Smallest len in (lo, hi] for which ok(len) holds, ok being monotone (false ... true); hi if none.
   * A binary search: each probe is a pass over the set.
   */
  const firstLen = (lo: number, hi: number, ok: (len: number) => boolean) => {
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (ok(mid)) hi = mid;
      else lo = mid;
    }
    return hi;
  };

  const node = (chain: string, set: Keyed[], flat: boolean) => {
    const lo = set[0].key;
    const hi = set[set.length - 1].key;
    const c = commonPrefix(lo, hi);
    if (set.length <= (flat ? FLAT_MAX : LEAF_SIZE) || c === keyBits) {
      // Leaf: spec order, so services sharing an address and port keep their precedence.
      for (const k of [...set].sort((a, b) => a.order - b.order)) put(chain, k);
      return;
    }
    // Parts grow more numerous and smaller with len: split where they become leaves if that keeps
    // the fan-out bounded, else at the longest prefix that does.
    // An address split stops at the full address: port ranges alone would let other addresses in.
    const cap = c < addrBits ? addrBits : keyBits;
    let len = firstLen(c, cap, (l) => largest(partsAt(set, l)) <= LEAF_SIZE);
    if (partsAt(set, len).length > MAX_FANOUT) len = firstLen(c, cap, (l) => partsAt(set, l).length > MAX_FANOUT) - 1;
    const shift = BigInt(keyBits - len);
    const pending: Array<[string, Keyed[]]> = [];
    for (const g of partsAt(set, len)) {
      if (g.length === 1) {
        put(chain, g[0]);
        continue;
      }
      const prefix = g[0].key >> shift;
      const child = `LBC-${namespace}-${createHash('sha256').update(`${family}/${prefix.toString(16)}/${len}`).digest('hex').slice(0, 12)}`;
      if (seen.has(child)) throw new Error(`lbc: dispatch chain name collision (${child}); please report this`);
      seen.add(child);
      out.chains.push(child);
      if (len <= addrBits) {
        const net = (prefix << BigInt(addrBits - len)) as bigint;
        out.rules.push(`-A ${chain} -d ${bigToAddress(family, net)}/${len} -j ${child}`);
      } else {
        const portBits = len - addrBits;
        const portPrefix = Number(prefix & ((1n << BigInt(portBits)) - 1n));
        const pLo = portPrefix << (16 - portBits);
        const pHi = pLo + (1 << (16 - portBits)) - 1;
        for (const proto of ['tcp', 'udp'] as const) {
          if (g.some((k) => k.item.protocol === proto)) out.rules.push(`-A ${chain} -p ${proto} -m ${proto} --dport ${pLo}:${pHi} -j ${child}`);
        }
      }
      pending.push([child, g]);
    }
    for (const [child, g] of pending) node(child, g, false);
  };

  if (keyed.length) node(root, keyed, true);
  return out;
}
