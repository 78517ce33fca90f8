/**
 * The kernel's jhash of one IPv4 address and the bucket it picks, to predict which node of an
 * active-active cluster answers a client: xt_cluster hashes jhash_1word(addr, seed) and nftables'
 * `jhash ct original ip saddr mod M seed S` hashes jhash(addr, 4, seed); both read the address's four
 * bytes as one little-endian word on this (x86) machine, and both scale with reciprocal_scale
 * ((hash × M) >> 32). include/linux/jhash.h, net/netfilter/xt_cluster.c, net/netfilter/nft_hash.c.
 */
const rol = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

export function jhashWord(word: number, seed: number): number {
  let a = (0xdeadbeef + 4 + seed) >>> 0;
  let b = a;
  let c = a;
  a = (a + word) >>> 0;
  // __jhash_final
  c = ((c ^ b) - rol(b, 14)) >>> 0;
  a = ((a ^ c) - rol(c, 11)) >>> 0;
  b = ((b ^ a) - rol(a, 25)) >>> 0;
  c = ((c ^ b) - rol(b, 16)) >>> 0;
  a = ((a ^ c) - rol(c, 4)) >>> 0;
  b = ((b ^ a) - rol(a, 14)) >>> 0;
  c = ((c ^ b) - rol(b, 24)) >>> 0;
  return c;
}

/** The bucket of an IPv4 source address among `buckets`, as the kernel computes it. */
export function bucketOf(address: string, seed: number, buckets: number): number {
  const [p, q, r, s] = address.split('.').map(Number);
  const word = (p | (q << 8) | (r << 16) | (s << 24)) >>> 0;
  return Number((BigInt(jhashWord(word, seed)) * BigInt(buckets)) >> 32n);
}
