/** IPv6 addresses are read by lbc's own reader; ip-address, the reference, must agree on every form it writes out. */
import fc from 'fast-check';
import { Address6 } from 'ip-address';
import { describe, expect, it } from 'vitest';
import { intToV4, parseAddress, v4ToInt, v6FromBigInt, v6Groups, v6Text, v6ToBigInt } from '../../src/ir/address.js';

/** Random ways to write the same eight groups: case, leading zeros, and "::" over any run of zero groups. */
const written = fc
  .record({
    groups: fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }),
    pad: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
    upper: fc.boolean(),
    cut: fc.nat(8),
  })
  .map(({ groups, pad, upper, cut }) => {
    const g = groups.map((x, i) => (pad[i] ? x.toString(16).padStart(4, '0') : x.toString(16)));
    // Compress the zero run that starts at or after `cut`, if there is one.
    let start = groups.findIndex((x, i) => i >= cut && x === 0);
    let text = g.join(':');
    if (start >= 0) {
      let end = start;
      while (end < 8 && groups[end] === 0) end++;
      text = `${g.slice(0, start).join(':')}::${g.slice(end).join(':')}`;
    }
    return { groups, text: upper ? text.toUpperCase() : text };
  });

describe('IPv6 reading', () => {
  it('reads every form ip-address reads the same way, to the same RFC 5952 text', () => {
    fc.assert(
      fc.property(written, ({ groups, text }) => {
        expect(v6Groups(text)).toEqual(groups);
        const r = parseAddress(text, false);
        expect(r.ok).toBe(true);
        if (r.ok) expect(r.prefix.address).toBe(new Address6(text).correctForm());
        expect(v6FromBigInt(v6ToBigInt(text))).toBe(v6Text(groups));
        expect(v6ToBigInt(text)).toBe(new Address6(text).bigInt());
      }),
      { numRuns: 2000 },
    );
  });

  it('writes the longest zero run as "::", the first of equal ones, and never a single zero group', () => {
    expect(v6Text([0x2001, 0xdb8, 0, 0, 1, 0, 0, 0])).toBe('2001:db8:0:0:1::');
    expect(v6Text([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1])).toBe('2001:db8::1:0:0:1');
    expect(v6Text([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1])).toBe('2001:db8:0:1:1:1:1:1');
    expect(v6Text([0, 0, 0, 0, 0, 0, 0, 0])).toBe('::');
    expect(v6Text([0, 0, 0, 0, 0, 0, 0, 1])).toBe('::1');
  });

  it('refuses what is not an address, and checks host bits of blocks', () => {
    for (const bad of ['1::2::3', '12345::', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', 'g::1', '1:2:3:4:5:6:7:8::']) {
      expect(v6Groups(bad)).toBeNull();
      expect(parseAddress(bad, false).ok).toBe(false);
    }
    expect(parseAddress('::ffff:10.0.0.1', false)).toMatchObject({ ok: false, message: expect.stringMatching(/embedded IPv6/) });
    expect(parseAddress('2001:db8::/32', true)).toMatchObject({ ok: true, prefix: { address: '2001:db8::', prefixLength: 32 } });
    expect(parseAddress('2001:db8::1/64', true)).toMatchObject({ ok: false, hint: 'the network is 2001:db8::/64' });
  });
});

describe('IPv4 as integers', () => {
  it('reads a dotted quad as its 32-bit value and writes it back', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), (o) => {
        const text = o.join('.');
        expect(v4ToInt(text)).toBe(((o[0] * 256 + o[1]) * 256 + o[2]) * 256 + o[3]);
        expect(intToV4(v4ToInt(text))).toBe(text);
      }),
      { numRuns: 500 },
    );
  });
});
