/**
 * The IPFilter grammars accept what ipnat/ipf load and refuse what they would
 * refuse (ipnat_y.y / ipf_y.y actions and syntax), with a position.
 */
import { describe, expect, it } from 'vitest';
import { filterCoverage, GrammarError, ipfMeaning, ipnatMeaning, parseIpf, parseIpnat } from '../../grammars/ipnat/index.js';

function rejects(parse: (t: string) => unknown, text: string, message: RegExp, line = 1) {
  try {
    parse(text);
  } catch (e) {
    expect(e).toBeInstanceOf(GrammarError);
    const p = (e as GrammarError).problems;
    expect(p.some((x) => message.test(x.message))).toBe(true);
    expect(p[0].line).toBe(line);
    return;
  }
  throw new Error(`accepted: ${text}`);
}

describe('ipnat grammar', () => {
  it('reads the rdr forms of ipnat.5', () => {
    const f = parseIpnat(
      [
        '# comment',
        'rdr le0,ppp0 9.8.7.6/32 port 80 -> 1.1.1.1,1.1.1.2 port 80 tcp round-robin frag age 40/40 sticky mssclamp 1000 tag tagged',
        'rdr de0 0/0 port 80 -> 127.0.0.1 port 3128 tcp',
        'rdr le0 0/0 port 80-88 -> 127.0.0.1 port = 3128 tcp;',
        'rdr le0 10.0.0.0/8 port 53 -> range 10.1.1.1 - 10.1.1.5 port 53 udp',
        'RDR em0 inet6 2001:db8::/64 port 443 -> 2001:db8::1 port 8443 tcp/udp',
        'rdr em0 10.0.0.1 port 80 -> 10.0.0.2 port 80 tcpudp # trailing comment',
      ].join('\n'),
    );
    expect(f.rules).toHaveLength(6);
    expect(f.rules[0].interfaces).toEqual(['le0', 'ppp0']);
    expect(f.rules[0].to).toMatchObject({ kind: 'split' });
    expect(f.rules[0].age).toEqual([40, 40]);
    expect(f.rules[2].nport).toEqual({ lo: 3128, hi: 3128, fixed: true });
    expect(f.rules[3].to.kind).toBe('range');
    expect(f.rules[4].family).toBe('ipv6');
    expect(f.rules[4].protocol).toBe('tcp/udp');
  });

  it('masks the left side as ipnat does and models port rotation', () => {
    const f = parseIpnat('rdr lagg0 10.0.240.1/20 port 4000 -> 127.0.0.1 port 4001-4008 tcp');
    expect(f.rules[0].match).toEqual({ family: 'ipv4', address: '10.0.240.0', prefixLength: 20 });
    const m = ipnatMeaning(f);
    expect(m.problems).toEqual([]);
    expect(m.redirects[0].policy).toBe('rotate');
    expect(m.redirects[0].members).toHaveLength(8);
  });

  it('models rules that share a left side without round-robin: only the first is used', () => {
    const m = ipnatMeaning(parseIpnat('rdr em0 10.0.0.1/32 port 80 -> 10.0.0.2 port 80 tcp\nrdr em0 10.0.0.1/32 port 80 -> 10.0.0.3 port 80 tcp round-robin'));
    expect(m.problems.join()).toMatch(/only line 1/);
    expect(m.redirects[0].members).toHaveLength(1);
  });

  it('reports sticky without round-robin as ipnat does (ignored with a warning)', () => {
    const f = parseIpnat('rdr em0 10.0.0.1/32 port 80 -> 10.0.0.2 port 80 tcp sticky');
    expect(f.rules[0].sticky).toBe(false);
    expect(f.warnings[0].message).toMatch(/round-robin/);
  });

  it('flags ::1 as an IPv6 redirect target', () => {
    expect(ipnatMeaning(parseIpnat('rdr em0 inet6 2001:db8::1 port 80 -> ::1 port 8080 tcp')).problems.join()).toMatch(/ip6_input/);
  });

  it('refuses what ipnat refuses', () => {
    rejects(parseIpnat, 'rdr 10.0.0.1/32 port 80 -> 10.0.0.2 port 80 tcp', /Word/);
    rejects(parseIpnat, 'rdr em0 10.0.0.1/32 port 80 -> 10.0.0.0/24 port 80 tcp', /not \/32/);
    rejects(parseIpnat, 'rdr em0 inet6 2001:db8::1 port 80 -> 2001:db8::/64 port 80 tcp', /not \/128/);
    rejects(parseIpnat, 'rdr em0 10.0.0.1/32 port 80 -> 10.0.0.2 port 80 round-robin tcp', /NewLine/);
    rejects(parseIpnat, 'rdr em0 10.0.0.1/32 port 80 -> 10.0.0.2 port 80 tcp sticky round-robin', /NewLine/);
    rejects(parseIpnat, 'rdr em0 10.0.0.1/32 port 80 -> 2001:db8::1 port 80 tcp', /family mismatch/);
    rejects(parseIpnat, 'rdr em0 inet6 10.0.0.1/32 port 80 -> 10.0.0.2 port 80 tcp', /inet6/);
    rejects(parseIpnat, 'rdr em0 10.0.0.1/32 port 70000 -> 10.0.0.2 port 80 tcp', /port number/);
    rejects(parseIpnat, 'rdr em0 10.0.0.300/32 port 80 -> 10.0.0.2 port 80 tcp', /octet/);
    rejects(parseIpnat, 'rdr em0 10.0.0.1/33 port 80 -> 10.0.0.2 port 80 tcp', /too long/);
    rejects(parseIpnat, 'rdr em0 10.0.0.1/32 port 80 -> 10.0.0.2 port 80 tcp tcp', /NewLine/);
    rejects(parseIpnat, '\n\nmap em0 0/0 -> 0/32', /outside the subset/, 3);
    rejects(parseIpnat, 'rdr em0 10.0.0.1 port 80 -> 10.0.0.2 port 80 tcp tag a tag b', /tag given twice/);
    rejects(parseIpnat, 'rdr em0 10.0.0.1 port 80 -> 10.0.0.2 port 80 tcp purge tag a', /before/);
    rejects(parseIpnat, 'rdr em0 10.0.0.1 port 80 -> 10.0.0.2 port 80 tcp @', /unexpected character/);
  });
});

describe('ipf grammar', () => {
  it('reads pass rules and their meaning', () => {
    const f = parseIpf(
      [
        'pass in quick on em0 proto tcp from any to 10.0.0.1/32 port = 8080 flags S/SA keep state',
        'pass in quick on em0 proto udp from any to 2001:db8::1/128 port 5300:5310 keep state',
        'pass in on em0 family inet6 proto tcp from any to any port >= 1024 flags S keep state',
        'pass in proto 6 all',
        'block in all',
      ].join('\n'),
    );
    expect(f.rules).toHaveLength(5);
    expect(f.rules[1].family).toBe('ipv6');
    expect(f.rules[3].protocol).toBe('tcp');
    const m = ipfMeaning(f);
    expect(m.passes[0]).toMatchObject({ interface: 'em0', protocol: 'tcp', ports: { lo: 8080, hi: 8080 }, keepState: true, quick: true, flags: 'S/SA' });
    expect(m.passes[1].ports).toEqual({ lo: 5300, hi: 5310 });
    expect(m.passes[2].ports).toEqual({ lo: 1024, hi: 65535 });
    expect(m.problems.join()).toMatch(/only "pass in"/);
  });

  it('refuses what ipf refuses', () => {
    rejects(parseIpf, 'pass in quick on em0 proto udp from any to 10.0.0.1 port = 53 flags S keep state', /flags with non-TCP/);
    rejects(parseIpf, 'pass in quick proto icmp from any to 10.0.0.1 port = 53', /port use incorrect/);
    rejects(parseIpf, 'pass in family inet6 proto tcp from any to 10.0.0.1 port = 80', /family mismatch/);
    rejects(parseIpf, 'pass in proto tcp from 2001:db8::1 to 10.0.0.1 port = 80', /family mismatch/);
    rejects(parseIpf, 'pass quick on em0 proto tcp from any to 10.0.0.1', /In|Out/);
    rejects(parseIpf, 'pass in proto tcp from any to 10.0.0.1 port = 80 flags X keep state', /TCP flags/);
    rejects(parseIpf, 'pass in proto tcp from any to 10.0.0.1 port = 80 keep state flags S', /NewLine/);
    rejects(parseIpf, 'pass in proto tcp from any to 10.0.0.1 port = 99999', /port number/);
    rejects(parseIpf, 'pass in proto tcp from any to 10.0.0.1 port = 80 match-tag(nat=web) keep state', /NewLine/);
    rejects(parseIpf, 'pass out proto tcp from any to 10.0.0.1 port = 80 keep state match-tag(nat=web)', /only checked on inbound/);
    rejects(parseIpf, 'pass in proto tcp from any to 10.0.0.1 port = 80 keep state match-tag(nat=abcdefghijklmnop)', /longer than 15/);
  });

  it('match-tag(nat=NAME) after keep state admits only what the rdr rule with that tag translated', () => {
    const nat = ipnatMeaning(parseIpnat('rdr em0 192.0.2.1/32 port 80 -> 10.0.0.1 port 8080 tcp round-robin tag web\nrdr em0 192.0.2.1/32 port 80 -> 10.0.0.1 port 8080 tcp round-robin tag web.2\n'));
    expect(nat.redirects[0].members[0].tags).toEqual(['web', 'web.2']);
    const pass = (tag: string) => `pass in quick on em0 proto tcp from any to 10.0.0.1/32 port = 8080 flags S/SA keep state match-tag(nat=${tag})`;
    const f = parseIpf(`${pass('web')}\n${pass('web.2')}\n`);
    expect(f.rules.map((r) => r.natTag)).toEqual(['web', 'web.2']);
    expect(filterCoverage(nat, ipfMeaning(f))).toEqual([]);
    // One of the two rdr rules' tags has no pass rule: its connections are not let in.
    expect(filterCoverage(nat, ipfMeaning(parseIpf(`${pass('web')}\n`))).join()).toMatch(/tagged web\.2/);
    // A pass rule for a tag no rdr rule sets admits nothing.
    expect(filterCoverage(nat, ipfMeaning(parseIpf(`${pass('web')}\n${pass('web.2')}\n${pass('other')}\n`))).join()).toMatch(/line 3 admits nothing/);
  });
});
