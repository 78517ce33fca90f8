/** The pf.conf grammar: what it accepts, what it refuses as pfctl would, and the meaning it extracts. */
import { describe, expect, it } from 'vitest';
import { parsePf, pfMeaning, PfSyntaxError } from '../../grammars/pf/index.js';

describe('parsePf accepts the constructs lbc writes', () => {
  it('classic rdr with a table, tag and tagged pass rule', () => {
    const ast = parsePf(
      [
        '# comment',
        'table <lbc-a> persist { 10.0.0.1, 10.0.0.2 \\',
        '  10.0.0.3 }',
        'rdr on em0 inet proto tcp from any to 192.0.2.1 port 80 tag lbc-a -> <lbc-a> port 8080 round-robin sticky-address',
        'pass in quick on em0 inet proto tcp all tagged lbc-a keep state (src.track 600)',
        '',
      ].join('\n'),
    );
    expect(ast.statements.map((s) => s.kind)).toEqual(['table', 'rdr', 'filter']);
    const [m] = pfMeaning(ast);
    expect(m.choice).toBe('round-robin');
    expect(m.targets.map((t) => [t.address, t.port])).toEqual([['10.0.0.1', 8080], ['10.0.0.2', 8080], ['10.0.0.3', 8080]]);
    expect(m.stickyTimeoutSeconds).toBe(600);
    expect(m.passed).toBe(true);
  });

  it('repetition in an inline list weights the round-robin', () => {
    const [m] = pfMeaning(parsePf('rdr inet proto tcp to 192.0.2.1 port 80 -> { 10.0.0.1, 10.0.0.1, 10.0.0.2 } round-robin\n'));
    expect(m.targets.map((t) => t.share)).toEqual([2 / 3, 1 / 3]);
    expect(m.passed).toBe(false);
  });

  it('a port range on the pool is an offset map: one matched port always gets the first port', () => {
    const [m] = pfMeaning(parsePf('rdr pass inet proto tcp to 192.0.2.0/20 port 4000 -> 192.0.2.0/20 port 4001:4008\n'));
    expect(new Set(m.targets.map((t) => t.port))).toEqual(new Set([4001]));
  });

  it('a matched port range with `port LO:*` (or no port) keeps the client port; a source table with its block rule is an allow list', () => {
    const text = [
      'table <allow> const { 198.51.100.0/24, 203.0.113.7 }',
      'rdr on em0 inet proto udp from <allow> to 192.0.2.1 port 5683:5684 tag t -> { 10.0.0.1, 10.0.0.2 } port 5683:* round-robin',
      'rdr on em0 inet proto udp from any to 192.0.2.2 port 5683:5684 tag u -> 10.0.0.3',
      'block drop in quick on em0 inet proto udp from ! <allow> to 192.0.2.1 port 5683:5684',
      'pass in quick on em0 inet proto udp all tagged t keep state',
      '',
    ].join('\n');
    const [a, b] = pfMeaning(parsePf(text));
    expect(a).toMatchObject({ ports: { from: 5683, to: 5684 }, allow: ['198.51.100.0/24', '203.0.113.7/32'], othersRefused: true });
    expect(a.targets.map((t) => t.port)).toEqual(['kept', 'kept']);
    expect(b).toMatchObject({ ports: { from: 5683, to: 5684 }, allow: null, othersRefused: false });
    expect(b.targets.map((t) => t.port)).toEqual(['kept']);
    // A block rule that returns, or one for another destination, does not drop the others.
    const notDropped = text.replace('block drop in', 'block return in');
    expect(pfMeaning(parsePf(notDropped))[0].othersRefused).toBe(false);
    expect(pfMeaning(parsePf(text.replace('! <allow> to 192.0.2.1 port 5683:5684', '! <allow> to 192.0.2.1 port 5683')))[0].othersRefused).toBe(false);
  });

  it('refuses `! any` and a block policy on pass, as pfctl does', () => {
    expect(() => parsePf('block drop in quick inet proto tcp from ! any to 192.0.2.1 port 80\n')).toThrow(PfSyntaxError);
    expect(() => parsePf('pass drop in quick inet proto tcp from any to 192.0.2.1 port 80\n')).toThrow(PfSyntaxError);
  });

  it('OpenBSD weights and probability cascades', () => {
    const ast = parsePf(
      [
        'pass in quick proto tcp to 192.0.2.1 port 80 probability 25% rdr-to 10.0.0.1',
        'pass in quick proto tcp to 192.0.2.1 port 80 rdr-to { 10.0.0.2 weight 1, 10.0.0.3 weight 2 } round-robin',
      ].join('\n'),
      'openbsd',
    );
    const [m] = pfMeaning(ast);
    expect(m.choice).toBe('probability');
    expect(m.targets.map((t) => t.share)).toEqual([0.25, 0.25, 0.5]);
  });
});

describe('parsePf refuses what pfctl refuses', () => {
  const bad: [string, string, 'freebsd' | 'openbsd'][] = [
    ['rdr-to in the classic dialect', 'pass in proto tcp to 192.0.2.1 port 80 rdr-to 10.0.0.1\n', 'freebsd'],
    ['rdr in the OpenBSD dialect', 'rdr proto tcp to 192.0.2.1 port 80 -> 10.0.0.1\n', 'openbsd'],
    ['table weights on FreeBSD', 'table <t> { 10.0.0.1 weight 2 }\n', 'freebsd'],
    ['random over a list on FreeBSD', 'rdr proto tcp to 192.0.2.1 port 80 -> { 10.0.0.1, 10.0.0.2 } random\n', 'freebsd'],
    ['source-hash over a table on FreeBSD', 'rdr proto tcp to 192.0.2.1 port 80 -> <t> source-hash\n', 'freebsd'],
    ['bitmask over a list on OpenBSD', 'pass in proto tcp to 192.0.2.1 port 80 rdr-to { 10.0.0.1, 10.0.0.2 } bitmask\n', 'openbsd'],
    ['a short hex key', 'rdr proto tcp to 192.0.2.1 port 80 -> 10.0.0.0/30 source-hash 0x1234\n', 'freebsd'],
    ['rdr without ->', 'rdr proto tcp to 192.0.2.1 port 80\n', 'freebsd'],
    ['probability above 100%', 'pass in quick proto tcp to 192.0.2.1 port 80 probability 150% rdr-to 10.0.0.1\n', 'openbsd'],
    ['rdr-to without a direction', 'pass proto tcp to 192.0.2.1 port 80 rdr-to 10.0.0.1\n', 'openbsd'],
    ['keep state on a block rule', 'block in proto tcp all keep state\n', 'freebsd'],
    ['two statements on one line', 'pass in all pass out all\n', 'freebsd'],
    ['filter before translation (require-order)', 'pass in all\nrdr proto tcp to 192.0.2.1 port 80 -> 10.0.0.1\n', 'freebsd'],
    ['a port without a protocol', 'rdr to 192.0.2.1 port 80 -> 10.0.0.1\n', 'freebsd'],
    ['mixed families in a pool', 'rdr inet proto tcp to 192.0.2.1 port 80 -> { 10.0.0.1, 2001:db8::1 } round-robin\n', 'freebsd'],
    ['a bad address', 'rdr proto tcp to 192.0.2.300 port 80 -> 10.0.0.1\n', 'freebsd'],
    ['a per-rule timeout without a dot', 'pass in proto tcp all keep state (interval 5)\n', 'freebsd'],
    ['sticky-address twice', 'rdr proto tcp to 192.0.2.1 port 80 -> <t> round-robin sticky-address sticky-address\n', 'freebsd'],
  ];
  it.each(bad)('%s', (_what, text, dialect) => {
    expect(() => parsePf(text, dialect)).toThrow(PfSyntaxError);
  });

  it('reports the line', () => {
    try {
      parsePf('table <t> persist { 10.0.0.1 }\n\nrdr proto tcp to 192.0.2.1 port 80 -> { 10.0.0.1, 10.0.0.2 } random\n');
      expect.unreachable();
    } catch (e) {
      expect((e as PfSyntaxError).line).toBe(3);
      expect((e as Error).message).toMatch(/only round-robin valid for multiple redirection addresses/);
    }
  });
});
