import { describe, expect, it } from 'vitest';
import { parseSpec } from '../../src/index.js';
import { ipnatStateChangeCommands, liveAddresses, pfStateChangeCommands } from '../../src/agent-bsd/index.js';

const ir = parseSpec(
  `version: 1
services:
  - name: web
    vip: 203.0.113.10
    port: 80
    interface: em0
    sticky: 10m
    health: { check: tcp }
    backends:
      - { address: 10.0.0.1, port: 8080 }
      - { address: 10.0.0.2, port: 8080 }
      - { address: 10.0.0.9, port: 8080, backup: true }
`,
  'spec.yaml',
);
const svc = ir.services[0];
const PF = 'table <lbc-web> persist { 10.0.0.1, 10.0.0.2 }\nrdr on em0 ... -> <lbc-web> port 8080 round-robin sticky-address\n';
const IPNAT = [
  'rdr em0 203.0.113.10/32 port 80 -> 10.0.0.1 port 8080 tcp round-robin sticky',
  'rdr em0 203.0.113.10/32 port 80 -> 10.0.0.2 port 8080 tcp round-robin sticky',
  '',
].join('\n');

describe('agent-bsd command plans', () => {
  it('pf: replaces the table with the live primaries and kills sticky source nodes of the dead one', () => {
    const plan = pfStateChangeCommands({ svc, up: new Set([1, 2]), wentDown: [0], pfConf: PF, anchor: 'lbc' });
    expect(plan).toEqual({
      ok: true,
      commands: [
        { argv: ['pfctl', '-a', 'lbc', '-t', 'lbc-web', '-T', 'replace', '10.0.0.2'] },
        { argv: ['pfctl', '-K', '0.0.0.0/0', '-K', '10.0.0.1'] },
      ],
    });
  });

  it('pf: falls back to the backups when every primary is down, and flushes when nothing is up', () => {
    expect(liveAddresses(svc, new Set([2]))).toEqual(['10.0.0.9']);
    const none = pfStateChangeCommands({ svc, up: new Set(), wentDown: [2], pfConf: PF });
    expect(none.ok && none.commands[0].argv).toEqual(['pfctl', '-t', 'lbc-web', '-T', 'flush']);
  });

  it('pf: refuses pools without a table', () => {
    const plan = pfStateChangeCommands({ svc, up: new Set([0]), wentDown: [1], pfConf: 'rdr on em0 -> { 10.0.0.1, 10.0.0.2 }' });
    expect(plan.ok).toBe(false);
  });

  it('ipnat: removes and restores exactly the dead backend\'s rule, without flushing translations', () => {
    // Sticky: the rule goes with its sessions (-p), or the host map would keep sending its clients there.
    const down = ipnatStateChangeCommands({ svc, backendIndex: 0, up: false, ipnatRules: IPNAT });
    expect(down).toEqual({ ok: true, commands: [{ argv: ['ipnat', '-p', '-r', '-f', '-'], stdin: `${IPNAT.split('\n')[0]}\n` }] });
    const tcp = { ...svc, sticky: null };
    expect(ipnatStateChangeCommands({ svc: tcp, backendIndex: 0, up: false, ipnatRules: IPNAT })).toEqual({ ok: true, commands: [{ argv: ['ipnat', '-r', '-f', '-'], stdin: `${IPNAT.split('\n')[0]}\n` }] });
    const udp = { ...tcp, protocol: 'udp' as const };
    const udpRules = IPNAT.replace(/ tcp /g, ' udp ');
    expect(ipnatStateChangeCommands({ svc: udp, backendIndex: 0, up: false, ipnatRules: udpRules })).toMatchObject({ ok: true, commands: [{ argv: ['ipnat', '-p', '-r', '-f', '-'] }] });
    const upAgain = ipnatStateChangeCommands({ svc, backendIndex: 0, up: true, ipnatRules: IPNAT });
    expect(upAgain.ok && upAgain.commands[0].argv).toEqual(['ipnat', '-f', '-']);
    for (const p of [down, upAgain]) if (p.ok) for (const c of p.commands) expect(c.argv).not.toContain('-F');
  });

  it('ipnat: refuses a backend that shares a port-range rule', () => {
    const plan = ipnatStateChangeCommands({ svc, backendIndex: 1, up: false, ipnatRules: 'rdr em0 203.0.113.10/32 port 80 -> 10.0.0.2 port 8080-8081 tcp\n' });
    expect(plan.ok).toBe(false);
  });
});
