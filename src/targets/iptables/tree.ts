/**
 * Dispatch tree: instead of one linear chain with a rule per service (every new
 * connection to the last of 10,000 services walks 10,000 rules), services with a
 * single-address vip are sorted by (address, port) and split 16 ways on the next
 * address or port bits below their common prefix, until a chain holds at most
 * LEAF_SIZE services. A new connection then walks at most ~16 rules per level and
 * about log16(n) levels. Tree rules only narrow the search: every leaf rule is a
 * complete match of its service, so a tree rule may be looser than its subtree.
 */
import { createHash } from 'node:crypto';
import { Address4, Address6 } from 'ip-address';
import type { Family, Protocol } from '../../ir/types.js';

/**
 * Services per leaf chain. Each chain is an object the loader must create, so fewer, larger leaves load
 * faster (10,000 services: ~170 tree chains instead of ~2,700 with 16), while 64 rules are still cheap
 * next to the cost of a new connection (measured: a /24 tree with 250-rule leaves keeps the 10,000th
 * service at the first one's connection rate).
 */
export const LEAF_SIZE = 64;
const SPLIT_BITS = 4;

export interface TreeItem {
  family: Family;
  address: string;
  port: number;
  protocol: Protocol;
  /** The complete rule for this item without "-A CHAIN " (it matches the service on its own). */
  rule: string;
}

export interface TreeChains {
  /** Chains to declare besides the root, in output order. */
  chains: string[];
  /** "-A CHAIN ..." lines, root first. */
  rules: string[];
}

function addressBits(family: Family, address: string): bigint {
  return family === 'ipv4' ? new Address4(address).bigInt() : new Address6(address).bigInt();
}

function bigToAddress(family: Family, v: bigint): string {
  return family === 'ipv4' ? Address4.fromBigInt(v).correctForm() : Address6.fromBigInt(v).correctForm();
}

interface Keyed {
  key: bigint;
  order: number;
  item: TreeItem;
}

/**
 * Build the tree under `root`. `namespace` keeps chain names of different trees in one table
 * apart (e.g. "T" for PREROUTING, "O" for OUTPUT); names are a hash of the subtree's prefix so
 * adding a service renames only the chains on its own path.
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

  const node = (chain: string, set: Keyed[]) => {
    const lo = set[0].key;
    const hi = set[set.length - 1].key;
    const c = commonPrefix(lo, hi);
    if (set.length <= LEAF_SIZE || c === keyBits) {
      // Leaf: spec order, so services sharing an address and port keep their precedence.
      for (const k of [...set].sort((a, b) => a.order - b.order)) out.rules.push(`-A ${chain} ${k.item.rule}`);
      return;
    }
    const width = c < addrBits ? Math.min(SPLIT_BITS, addrBits - c) : Math.min(SPLIT_BITS, keyBits - c);
    const len = c + width;
    const shift = BigInt(keyBits - len);
    const groups: Keyed[][] = [];
    for (const k of set) {
      const last = groups[groups.length - 1];
      if (last && last[0].key >> shift === k.key >> shift) last.push(k);
      else groups.push([k]);
    }
    const pending: Array<[string, Keyed[]]> = [];
    for (const g of groups) {
      if (g.length === 1) {
        out.rules.push(`-A ${chain} ${g[0].item.rule}`);
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
    for (const [child, g] of pending) node(child, g);
  };

  if (keyed.length) node(root, keyed);
  return out;
}
