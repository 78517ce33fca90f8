/**
 * Address parsing for specs: strict IPv4 dotted quads (no leading zeros, which
 * some tools read as octal), IPv6 hexadecimal groups read here (ip-address judges
 * any other form), canonical text out
 * (RFC 5952 lower-case compressed), CIDR blocks whose host bits are zero.
 */
import { Address6 } from 'ip-address';
import type { Family, Prefix } from './types.js';

export type AddressResult = { ok: true; family: Family; prefix: Prefix } | { ok: false; message: string; hint?: string };

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** A dotted quad (already validated) as an integer; a char loop, as it runs for every address of a spec. */
export function v4ToInt(a: string): number {
  let n = 0;
  let octet = 0;
  for (let i = 0; i < a.length; i++) {
    const c = a.charCodeAt(i);
    if (c === 46) {
      n = n * 256 + octet;
      octet = 0;
    } else {
      octet = octet * 10 + (c - 48);
    }
  }
  return n * 256 + octet;
}

export function intToV4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** Parse "addr" or "addr/len". allowPrefix false rejects any "/". */
export function parseAddress(text: string, allowPrefix: boolean): AddressResult {
  const s = text.trim();
  if (s !== text || s.length === 0 || s.length > 64) return { ok: false, message: `"${printable(text)}" is not an IP address` };
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const lenText = slash < 0 ? null : s.slice(slash + 1);
  if (lenText !== null && !allowPrefix) return { ok: false, message: `"${s}" is a CIDR block; a backend needs a single address` };
  if (lenText !== null && !/^(0|[1-9]\d{0,2})$/.test(lenText)) return { ok: false, message: `"${s}" has a bad prefix length` };
  if (V4.test(addr)) {
    const len = lenText === null ? 32 : Number(lenText);
    if (len > 32) return { ok: false, message: `prefix length /${len} is longer than 32 bits` };
    const n = v4ToInt(addr);
    const size = 2 ** (32 - len);
    const net = n - (n % size);
    if (net !== n) return { ok: false, message: `"${s}" has host bits set`, hint: `the network is ${intToV4(net)}/${len}` };
    return { ok: true, family: 'ipv4', prefix: { address: addr, prefixLength: len, isHost: len === 32 } };
  }
  if (/^[0-9.]+$/.test(addr)) return { ok: false, message: `"${addr}" is not a valid IPv4 address (four decimal numbers 0-255, no leading zeros)` };
  if (!/^[0-9A-Fa-f:.]+$/.test(addr) || !addr.includes(':')) return { ok: false, message: `"${printable(addr)}" is not an IP address` };
  // Plain hexadecimal groups (every address a spec needs) take the quick reader below; anything it
  // does not read is left to ip-address, for its verdict and its error message.
  const groups = v6Groups(addr);
  if (!groups) {
    try {
      new Address6(addr);
    } catch {
      return { ok: false, message: `"${addr}" is not a valid IPv6 address` };
    }
    if (addr.includes('.')) return { ok: false, message: `"${addr}" is an IPv4-mapped/embedded IPv6 address`, hint: 'write an IPv4 service with the plain IPv4 address instead' };
    return { ok: false, message: `"${addr}" is not a valid IPv6 address` };
  }
  const len = lenText === null ? 128 : Number(lenText);
  if (len > 128) return { ok: false, message: `prefix length /${len} is longer than 128 bits` };
  const canonical = v6Text(groups);
  if (len < 128) {
    const net = v6FromBigInt(groupsToBigInt(groups) & ~((1n << BigInt(128 - len)) - 1n));
    if (net !== canonical) return { ok: false, message: `"${s}" has host bits set`, hint: `the network is ${net}/${len}` };
  }
  return { ok: true, family: 'ipv6', prefix: { address: canonical, prefixLength: len, isHost: len === 128 } };
}

/**
 * The eight 16-bit groups of an IPv6 address written as hexadecimal groups with at most one "::"
 * (RFC 4291 section 2.2, forms 1 and 2), or null for anything else — including the embedded IPv4
 * form 3, which lbc refuses anyway.
 */
export function v6Groups(text: string): number[] | null {
  // One pass over the characters (a spec of 10,000 IPv6 services has 90,000 addresses): groups
  // before "::" fill `head`, groups after it `tail`.
  const head: number[] = [];
  const tail: number[] = [];
  let cur = head;
  let value = 0;
  let digits = 0;
  let gap = false;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : -1;
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
    if (d >= 0) {
      if (++digits > 4) return null;
      value = value * 16 + d;
      continue;
    }
    if (c !== 58 && c !== -1) return null;
    if (digits > 0) {
      cur.push(value);
    } else if (c === 58 && text.charCodeAt(i + 1) === 58 && !gap) {
      // "::" — at the start, or right after a group's colon was consumed below.
      if (i !== 0) return null;
    } else if (!(c === -1 && gap && cur.length === 0 && text.endsWith('::'))) {
      return null;
    }
    value = 0;
    digits = 0;
    if (c === 58 && text.charCodeAt(i + 1) === 58) {
      if (gap) return null;
      gap = true;
      cur = tail;
      i++;
    }
  }
  if (!gap) return head.length === 8 ? head : null;
  // "::" stands for one or more zero groups.
  const missing = 8 - head.length - tail.length;
  if (missing < 1) return null;
  for (let k = 0; k < missing; k++) head.push(0);
  for (const g of tail) head.push(g);
  return head;
}

/**
 * RFC 5952 text of eight groups: lower case, no leading zeros, the longest run of two or more zero
 * groups (the first of equally long ones) written "::" (section 4.2).
 */
export function v6Text(groups: readonly number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      out += '::';
      i += bestLen - 1;
      continue;
    }
    if (out !== '' && !out.endsWith(':')) out += ':';
    out += groups[i].toString(16);
  }
  return out;
}

/** An IPv6 address (any form v6Groups reads) as a 128-bit integer. */
export function v6ToBigInt(text: string): bigint {
  const groups = v6Groups(text);
  if (!groups) throw new Error(`not an IPv6 address: ${text}`);
  return groupsToBigInt(groups);
}

function groupsToBigInt(groups: readonly number[]): bigint {
  // 32 bits (two groups) at a time: exact as a double, where four groups (64 bits) would not be.
  let n = 0n;
  for (let i = 0; i < 8; i += 2) n = (n << 32n) | BigInt(groups[i] * 65536 + groups[i + 1]);
  return n;
}

export function v6FromBigInt(n: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(16 * i)) & 0xffffn));
  return v6Text(groups);
}

export function bitsOf(address: string, family: Family): string {
  if (family === 'ipv4') return v4ToInt(address).toString(2).padStart(32, '0');
  return v6ToBigInt(address).toString(2).padStart(128, '0');
}

function printable(s: string): string {
  const t = s.replace(/[^\x20-\x7e]/g, '?');
  return t.length > 50 ? `${t.slice(0, 50)}…` : t;
}

/** Address blocks that are never a balanced service's destination or backend as such (RFC 6890 and its sources). */
export type SpecialUse = 'this-network' | 'unspecified' | 'loopback' | 'link-local' | 'multicast' | 'broadcast';

const SPECIAL: Record<Family, ReadonlyArray<{ use: SpecialUse; net: string; len: number; text: string }>> = {
  ipv4: [
    { use: 'this-network', net: '0.0.0.0', len: 8, text: '0.0.0.0/8 ("this network", RFC 1122 §3.2.1.3: never a destination)' },
    { use: 'loopback', net: '127.0.0.0', len: 8, text: 'the loopback block 127.0.0.0/8' },
    { use: 'link-local', net: '169.254.0.0', len: 16, text: 'the link-local block 169.254.0.0/16' },
    { use: 'multicast', net: '224.0.0.0', len: 4, text: 'the multicast block 224.0.0.0/4' },
    { use: 'broadcast', net: '255.255.255.255', len: 32, text: 'the broadcast address 255.255.255.255' },
  ],
  ipv6: [
    { use: 'unspecified', net: '::', len: 128, text: 'the unspecified address ::' },
    { use: 'loopback', net: '::1', len: 128, text: 'the loopback address ::1' },
    { use: 'link-local', net: 'fe80::', len: 10, text: 'the link-local block fe80::/10' },
    { use: 'multicast', net: 'ff00::', len: 8, text: 'the multicast block ff00::/8' },
  ],
};

/** An address (canonical, as in an IR) as 16-bit groups: two for IPv4, eight for IPv6. */
function groupsOf(address: string, family: Family): number[] {
  if (family === 'ipv6') return v6Groups(address)!;
  const n = v4ToInt(address);
  return [Math.floor(n / 65536), n % 65536];
}

/** Whether the first `bits` bits of two addresses (as groups) are equal. */
function samePrefix(a: readonly number[], b: readonly number[], bits: number): boolean {
  for (let i = 0; bits > 0; i++, bits -= 16) {
    if (bits >= 16) {
      if (a[i] !== b[i]) return false;
    } else if (a[i] >> (16 - bits) !== b[i] >> (16 - bits)) return false;
  }
  return true;
}

const SPECIAL_GROUPS = {
  ipv4: SPECIAL.ipv4.map((sp) => ({ ...sp, groups: groupsOf(sp.net, 'ipv4') })),
  ipv6: SPECIAL.ipv6.map((sp) => ({ ...sp, groups: groupsOf(sp.net, 'ipv6') })),
};

/**
 * The special block a prefix lies in (`within`), or else the first one it contains (a vip block wider
 * than the special block, such as 128.0.0.0/1), or null for ordinary unicast addresses. `single`:
 * the special "block" is one address (::1, 255.255.255.255).
 */
export function specialUse(p: Prefix, family: Family): { use: SpecialUse; text: string; within: boolean; single: boolean } | null {
  const groups = groupsOf(p.address, family);
  for (const s of SPECIAL_GROUPS[family]) {
    if (!samePrefix(groups, s.groups, Math.min(s.len, p.prefixLength))) continue;
    const within = p.prefixLength >= s.len;
    // 0.0.0.0 alone is the unspecified address, the rest of 0.0.0.0/8 "this network".
    const unspecified4 = s.use === 'this-network' && within && p.isHost && p.address === '0.0.0.0';
    return {
      use: unspecified4 ? 'unspecified' : s.use,
      text: unspecified4 ? 'the unspecified address 0.0.0.0' : s.text,
      within,
      single: unspecified4 || s.len === (family === 'ipv4' ? 32 : 128),
    };
  }
  return null;
}
