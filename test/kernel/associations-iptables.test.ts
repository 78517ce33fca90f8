// UDP associations with the iptables and ip6tables targets, in the kernel: see associations-cases.ts.
import { describe } from 'vitest';
import { ip6tablesTarget, iptablesTarget } from '../../src/targets/iptables/index.js';
import { associationCases } from './associations-cases.js';
import { kernelSuite, type Topology } from './harness/index.js';

async function count(topo: Topology, set: string): Promise<number> {
  const out = (await topo.exec('lb', ['ipset', 'list', '-t', set])).stdout;
  return Number(/Number of entries: (\d+)/.exec(out)?.[1] ?? NaN);
}

kernelSuite('iptables UDP associations in the kernel', ['iptables', 'ip6tables', 'ipset', 'conntrack'], () => {
  describe('IPv4 (iptables)', () => associationCases({ target: iptablesTarget, tools: [], count: (topo) => count(topo, 'LBC4-coap-all') }, 'ipv4'));
  describe('IPv6 (ip6tables)', () => associationCases({ target: ip6tablesTarget, tools: [], count: (topo) => count(topo, 'LBC6-coap-all') }, 'ipv6'));
});
