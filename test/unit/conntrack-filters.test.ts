// Which conntrack entries the agent deletes for a dead backend: one filter per service port.
import { describe, expect, it } from 'vitest';
import { conntrackFilters, MAX_PORT_FILTERS } from '../../src/agent/conntrack.js';
import { parseSpec } from '../../src/index.js';

const service = (ports: string, backends: string) =>
  parseSpec(`version: 1\nservices:\n  - { name: s, vip: 10.0.0.1, protocol: udp, ${ports}, backends: [${backends}] }\n`).services[0];

describe('conntrack filters of a backend', () => {
  it('one port: the original destination port and the backend port', () => {
    const s = service('port: 53', '"10.1.0.1:5353"');
    expect(conntrackFilters(s, s.backends[0])).toEqual([['-p', 'udp', '--orig-dst', '10.0.0.1', '--orig-port-dst', '53', '--reply-src', '10.1.0.1', '--reply-port-src', '5353']]);
  });

  it('several ports: one filter each; a backend keeping the client port answers from that same port', () => {
    const s = service('ports: [5683, 5684]', '10.1.0.1, "10.1.0.2:5700"');
    expect(conntrackFilters(s, s.backends[0]).map((f) => f.join(' '))).toEqual([
      '-p udp --orig-dst 10.0.0.1 --orig-port-dst 5683 --reply-src 10.1.0.1 --reply-port-src 5683',
      '-p udp --orig-dst 10.0.0.1 --orig-port-dst 5684 --reply-src 10.1.0.1 --reply-port-src 5684',
    ]);
    expect(conntrackFilters(s, s.backends[1]).map((f) => f.at(-1))).toEqual(['5700', '5700']);
  });

  it(`more than ${MAX_PORT_FILTERS} ports: by address alone`, () => {
    const s = service('ports: ["1000-2000"]', '10.1.0.1');
    expect(conntrackFilters(s, s.backends[0])).toEqual([['-p', 'udp', '--orig-dst', '10.0.0.1', '--reply-src', '10.1.0.1']]);
  });
});
