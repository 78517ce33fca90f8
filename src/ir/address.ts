/**
 * Address parsing for specs: strict IPv4 dotted quads (no leading zeros, which
 * some tools read as octal), IPv6 via ip-address, canonical text out
 * (RFC 5952 lower-case compressed), CIDR blocks whose host bits are zero.
 */
import { Address6 } from 'ip-address';
import type { Family, Prefix } from './types.js';

export type AddressResult = { ok: true; family: Family; prefix: Prefix } | { ok: false; message: string; hint?: string };

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function v4ToInt(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
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
  let a6: Address6;
  try {
    a6 = new Address6(addr);
  } catch {
    return { ok: false, message: `"${addr}" is not a valid IPv6 address` };
  }
  if (addr.includes('.')) return { ok: false, message: `"${addr}" is an IPv4-mapped/embedded IPv6 address`, hint: 'write an IPv4 service with the plain IPv4 address instead' };
  const len = lenText === null ? 128 : Number(lenText);
  if (len > 128) return { ok: false, message: `prefix length /${len} is longer than 128 bits` };
  const canonical = a6.correctForm();
  if (len < 128) {
    const net = new Address6(`${canonical}/${len}`).startAddress().correctForm();
    if (net !== canonical) return { ok: false, message: `"${s}" has host bits set`, hint: `the network is ${net}/${len}` };
  }
  return { ok: true, family: 'ipv6', prefix: { address: canonical, prefixLength: len, isHost: len === 128 } };
}

/** Whether two prefixes of one family overlap (one contains the other). */
export function prefixesOverlap(a: Prefix, b: Prefix, family: Family): boolean {
  const len = Math.min(a.prefixLength, b.prefixLength);
  return bitsOf(a.address, family).slice(0, len) === bitsOf(b.address, family).slice(0, len);
}

export function bitsOf(address: string, family: Family): string {
  if (family === 'ipv4') return v4ToInt(address).toString(2).padStart(32, '0');
  return new Address6(address).binaryZeroPad();
}

function printable(s: string): string {
  const t = s.replace(/[^\x20-\x7e]/g, '?');
  return t.length > 50 ? `${t.slice(0, 50)}…` : t;
}
