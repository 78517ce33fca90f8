import { describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/index.js';
import { primaries, type IR } from '../../src/ir/types.js';
import { compileForTarget } from '../../src/targets/target.js';
import { hashKey, relaydFreebsdTarget, relaydTarget, SESSION_TIMEOUT } from '../../src/targets/relayd/index.js';
import { parseRelaydConf } from '../../grammars/relayd/index.js';
import { parsePf } from '../../grammars/pf/index.js';
import type { TargetDefinition } from '../../src/targets/target.js';

function compile(yaml: string, target: TargetDefinition = relaydTarget) {
  const ir = parseSpec(`version: 1\n${yaml}`, 'spec.yaml');
  return { ir, result: compileForTarget(target, ir) };
}

const SEED_002 = `
services:
  - name: www
    vip: 192.168.1.51
    port: 80
    interface: em0
    health: { check: tcp, interval: 10s, timeout: 300ms, fall: 3, rise: 1 }
    backends:
      - { address: 192.168.10.20 }
      - { address: 192.168.10.21 }
      - { address: 192.168.10.22 }
      - { port: 80, backup: true }
  - name: api
    vip: 2001:db8::51
    family: ipv6
    port: 443
    mode: hash
    health: { check: http, path: /health, status: 204, host: api.example.org, method: HEAD, interval: 20s, timeout: 1s, rise: 1 }
    backends:
      - { address: 2001:db8::1, port: 8443 }
      - { address: 2001:db8::2, port: 8443 }
  - name: smtp
    vip: 192.168.1.53
    port: 25
    mode: random
    health: { check: banner, expect: "220", interval: 5s, timeout: 2s, rise: 1, fall: 1 }
    backends:
      - { address: 10.0.0.1 }
      - { address: 10.0.0.2 }
  - name: dns
    vip: 192.168.1.54
    port: 53
    protocol: udp
    health: { check: tcp, interval: 10s, rise: 1 }
    backends:
      - { address: 10.0.5.1 }
`;

/** The meaning the relayd.conf must have, straight from the IR (`freebsd`: the port, which always rotates). */
function expectedMeaning(ir: IR, freebsd = false) {
  return ir.services.map((svc) => {
    const groups = [primaries(svc), svc.backends.filter((b) => b.backup)].filter((g) => g.length > 0);
    return {
      name: `lbc-${svc.name}`,
      listen: { address: svc.vip!.address, proto: svc.protocol, port: svc.port, interface: svc.interface },
      sticky: svc.sticky !== null,
      sessionTimeout: svc.protocol === 'tcp' ? SESSION_TIMEOUT : null,
      pftag: freebsd ? `lbc-${svc.name}` : null,
      forwards: groups.map((g) => {
        const hc = g[0].health;
        return {
          hosts: g.map((b) => ({ address: b.address ?? '127.0.0.1', retry: (hc?.fall ?? 1) - 1 })),
          port: g[0].port,
          mode: svc.mode === 'nth' || freebsd ? 'roundrobin' : svc.mode === 'random' ? 'random' : 'source-hash',
          key: svc.mode === 'hash' ? hashKey(svc) : null,
          check:
            !hc
              ? { kind: svc.protocol === 'udp' ? 'icmp' : 'tcp' }
              : hc.check === 'tcp' || hc.check === 'icmp'
              ? { kind: hc.check }
              : hc.check === 'http'
                ? { kind: 'http', path: hc.http!.path, host: hc.http!.host, code: hc.http!.status }
                : { kind: 'send', send: hc.banner!.send, expect: `${hc.banner!.expect}*` },
          intervalMs: hc?.intervalMs ?? 10000,
          timeout: hc?.timeoutMs ?? 200,
        };
      }),
    };
  });
}

/** What the emitted relayd.conf means, read back with the relayd.conf grammar. */
function readBack(files: { name: string; content: string }[]) {
  const conf = parseRelaydConf(files.find((f) => f.name === 'relayd.conf')!.content);
  const globalInterval = conf.interval!;
  return conf.redirects.map((r) => ({
    name: r.name,
    listen: r.listen,
    sticky: r.sticky,
    sessionTimeout: r.sessionTimeout,
    pftag: r.pftag,
    forwards: r.forwards.map((f) => ({
      hosts: conf.tables.get(f.table),
      port: f.port,
      mode: f.mode,
      key: f.key,
      check: f.check,
      intervalMs: (f.interval ?? globalInterval) * 1000,
      timeout: f.timeout,
    })),
  }));
}

/** Seed 002 without its hash service, which the FreeBSD port cannot do. */
const SEED_002_FREEBSD = SEED_002.replace(/  - name: api[\s\S]*?(?=  - name: smtp)/, '');

describe('relayd target', () => {
  it('round-trips: the emitted relayd.conf parses back to the meaning of the IR', () => {
    const { ir, result } = compile(SEED_002);
    expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(readBack(result.files)).toEqual(expectedMeaning(ir));
    const conf = parseRelaydConf(result.files.find((f) => f.name === 'relayd.conf')!.content);
    const globalInterval = conf.interval!;
    expect(conf.timeout).toBeLessThanOrEqual(globalInterval * 1000);
    for (const r of conf.redirects) for (const f of r.forwards) if (f.interval) expect(f.interval % globalInterval).toBe(0);
  });

  it('renders seed 002 like the hand-written relayd.conf, with the anchors pf needs', () => {
    const { result } = compile(SEED_002);
    const conf = result.files.find((f) => f.name === 'relayd.conf')!.content;
    expect(conf).toContain('table <lbc-www> { 192.168.10.20 retry 2, 192.168.10.21 retry 2, 192.168.10.22 retry 2 }');
    expect(conf).toContain('forward to <lbc-www-backup> port 80 mode roundrobin check tcp interval 10 timeout 300');
    expect(conf).toContain('listen on 192.168.1.54 udp port 53');
    expect(conf).toContain('check send nothing expect "220*"');
    expect(result.files.map((f) => f.name)).toEqual(['relayd.conf', 'pf.conf.relayd']);
    const obsd = result.files.find((f) => f.name === 'pf.conf.relayd')!.content;
    expect(obsd).toMatch(/^anchor "relayd\/\*"$/m);
    expect(obsd).not.toMatch(/rdr-anchor|^pass/m);
  });

  it('gives established TCP connections pf\'s own idle timeout, not relayd\'s 10 minutes', () => {
    const { result } = compile(SEED_002);
    const conf = result.files.find((f) => f.name === 'relayd.conf')!.content;
    const www = /redirect "lbc-www" \{[^}]*\}/.exec(conf)![0];
    expect(www).toContain('\tsession timeout 86400\n');
    // relayd sets only PFTM_TCP_ESTABLISHED from it; a UDP redirection gets none.
    const dns = /redirect "lbc-dns" \{[^}]*\}/.exec(conf)![0];
    expect(dns).not.toContain('session timeout');
  });

  it('checks a UDP service without a health check with check icmp (a TCP connect would mark every host down), and says so', () => {
    const { result } = compile(`
services:
  - { name: dns, vip: 192.168.1.54, port: 53, protocol: udp, backends: [10.0.5.1, 10.0.5.2] }
  - { name: web, vip: 192.168.1.55, port: 80, backends: [10.0.6.1, 10.0.6.2] }
`);
    expect(result.diagnostics.map((d) => [d.code, d.severity])).toEqual([['LBC3002', 'warning']]);
    expect(result.diagnostics[0].message).toMatch(/check icmp/);
    const conf = result.files.find((f) => f.name === 'relayd.conf')!.content;
    expect(conf).toMatch(/forward to <lbc-dns> port 53 mode roundrobin check icmp /);
    expect(conf).toMatch(/forward to <lbc-web> port 80 mode roundrobin check tcp /);
    expect(conf).toMatch(/^# this UDP service has no health check/m);
    const meaning = readBack(result.files);
    expect(meaning[0].forwards[0].check).toEqual({ kind: 'icmp' });
  });

  it('FreeBSD port: round-robin whatever the mode, a tag on every redirection and pass rules for that tag only', () => {
    const { ir, result } = compile(SEED_002_FREEBSD, relaydFreebsdTarget);
    expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(readBack(result.files)).toEqual(expectedMeaning(ir, true));
    // mode random is written as what the port does, and flagged.
    expect(result.diagnostics.filter((d) => d.code === 'LBC3002').map((d) => d.message).join('\n')).toMatch(/PF_POOL_ROUNDROBIN/);
    const pf = result.files.find((f) => f.name === 'pf.conf.relayd')!.content;
    expect(pf).toMatch(/^rdr-anchor "relayd\/\*"$/m);
    expect(pf).toMatch(/^anchor "relayd\/\*"$/m);
    const pass = pf.split('\n').filter((l) => l.startsWith('pass '));
    expect(pass).toEqual([
      'pass in quick on em0 inet proto tcp all tagged lbc-www keep state',
      'pass in quick inet proto tcp all tagged lbc-smtp keep state',
      'pass in quick inet proto udp all tagged lbc-dns keep state',
    ]);
    // The pass rules are FreeBSD pf.conf and name no backend: only tagged (redirected) packets pass.
    const parsed = parsePf(`${pass.join('\n')}\n`, 'freebsd');
    expect(parsed.statements).toHaveLength(3);
    expect(pass.join('\n')).not.toMatch(/192\.168\.10\.|10\.0\.0\./);
  });

  it('FreeBSD port: refuses mode hash, which the port would turn into round-robin', () => {
    const { result } = compile(SEED_002, relaydFreebsdTarget);
    expect(result.files).toEqual([]);
    const e = result.diagnostics.filter((d) => d.severity === 'error');
    expect(e.map((d) => d.message).join('\n')).toMatch(/service "api".*PF_POOL_ROUNDROBIN/);
    expect(e[0].notes![0]).toMatch(/--target relayd on OpenBSD/);
  });

  it('is deterministic', () => {
    expect(compile(SEED_002).result.files).toEqual(compile(SEED_002).result.files);
  });

  const refuse = (yaml: string, re: RegExp) => {
    const { result } = compile(yaml);
    expect(result.files).toEqual([]);
    expect(result.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message).join('\n')).toMatch(re);
  };

  it('refuses what relayd cannot express', () => {
    refuse(`
services:
  - { name: w, vip: 10.0.0.1, port: 80, health: { check: tcp }, backends: [{ address: 10.0.1.1, weight: 2 }, { address: 10.0.1.2 }] }
`, /weights/);
    refuse(`
services:
  - { name: p, vip: 10.0.0.1, port: 80, health: { check: tcp }, backends: [{ address: 10.0.1.1, port: 81 }, { address: 10.0.1.2, port: 82 }] }
`, /one port/);
    refuse(`
services:
  - name: d
    vip: 10.0.0.1
    port: 80
    backends:
      - { address: 10.0.1.1, health: { check: tcp } }
      - { address: 10.0.1.2, health: { check: http, path: / } }
`, /one check per table/);
    refuse(`
services:
  - { name: s, vip: 10.0.0.1, port: 25, health: { check: banner, send: "QUIT\\r\\n", expect: "220" }, backends: [{ address: 10.0.1.1 }] }
`, /CR, LF/);
    refuse(`
services:
  - { name: v, port: 80, interface: em0, health: { check: tcp }, backends: [{ address: 10.0.1.1 }] }
`, /listen on/);
  });

  it('seed 002 as it runs: check tcp for the pool, check icmp for the fallback, and the management networks only', () => {
    const spec = `
services:
  - name: www
    vip: 192.168.1.51
    port: 80
    interface: em0
    allow: [222.222.222.0/24, 221.222.212.0/24]
    health: { check: tcp, interval: 10s, timeout: 300ms, rise: 1 }
    backends:
      - 192.168.10.20
      - 192.168.10.21
      - { port: 80, backup: true, health: { check: icmp } }
`;
    const allowTable = ['221.222.212.0/24', '222.222.222.0/24'];
    for (const [target, dialect] of [[relaydTarget, 'openbsd'], [relaydFreebsdTarget, 'freebsd']] as const) {
      const { ir, result } = compile(spec, target);
      expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      const conf = parseRelaydConf(result.files.find((f) => f.name === 'relayd.conf')!.content);
      expect(conf.redirects[0].forwards.map((f) => f.check)).toEqual([{ kind: 'tcp' }, { kind: 'icmp' }]);
      expect(conf.redirects[0].forwards.map((f) => f.check)).toEqual(expectedMeaning(ir, dialect === 'freebsd')[0].forwards.map((f) => f.check));
      // The pf.conf lines keep everyone else from relayd's anchor, read back with the pf grammar.
      const lines = result.files.find((f) => f.name === 'pf.conf.relayd')!.content.split('\n').filter((l) => !/anchor "relayd/.test(l)).join('\n');
      const ast = parsePf(lines, dialect);
      const table = ast.statements.find((st) => st.kind === 'table');
      expect(table && table.kind === 'table' && table.entries!.map((e) => `${e.address}/${e.prefixLength}`)).toEqual(allowTable);
      const block = ast.statements.find((st) => st.kind === 'filter' && st.action === 'block');
      expect(block).toMatchObject({ blockPolicy: 'drop', direction: 'in', quick: true, interface: 'em0', src: { kind: 'not', host: { kind: 'table', name: 'lbc-allow_www' } }, dst: { kind: 'address', address: '192.168.1.51' }, dstPort: { from: 80, to: null } });
      if (dialect === 'freebsd') {
        // Clients outside the list are not translated ("no rdr"), so they never carry the redirection's tag,
        // and the one pass rule takes only tagged (translated) connections.
        expect(ast.statements.find((st) => st.kind === 'rdr')).toMatchObject({ no: true, src: { kind: 'not', host: { kind: 'table', name: 'lbc-allow_www' } }, dstPort: { from: 80, to: null } });
        const pass = ast.statements.filter((st) => st.kind === 'filter' && st.action === 'pass');
        expect(pass).toHaveLength(1);
        expect(pass[0]).toMatchObject({ tagged: 'lbc-www' });
      }
    }
  });

  it('refuses a UDP check and several ports, which relayd cannot run', () => {
    refuse(`
services:
  - { name: c, vip: 10.0.0.1, port: 5683, protocol: udp, health: { check: udp, send: "40 00 00 00" }, backends: [10.0.1.1] }
`, /relayd has no UDP check/);
    refuse(`
services:
  - { name: c, vip: 10.0.0.1, ports: [5683, 5684], protocol: udp, health: { check: icmp }, backends: [10.0.1.1] }
`, /listens on one port/);
  });

  it('warns where relayd only approximates the spec', () => {
    const { result } = compile(`
services:
  - { name: a, vip: 10.0.0.1, port: 80, sticky: 5m, health: { check: http, path: /, rise: 3 }, backends: [{ address: 10.0.1.1 }] }
`);
    const w = result.diagnostics.filter((d) => d.severity === 'warning').map((d) => d.message).join('\n');
    expect(w).toMatch(/no rise count/);
    expect(w).toMatch(/HEAD, not GET/);
    expect(w).toMatch(/src\.track/);
  });
});
