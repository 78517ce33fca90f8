// UDP associations with the nftables target, in the kernel: see associations-cases.ts.
import { nftablesTarget } from '../../src/targets/nftables/index.js';
import { associationSuites } from './associations-cases.js';
import { kernelSuite } from './harness/index.js';

kernelSuite('nftables UDP associations in the kernel', ['nft', 'conntrack'], () => {
  associationSuites({
    target: nftablesTarget,
    tools: ['nft', 'conntrack'],
    async count(topo) {
      const out = JSON.parse((await topo.exec('lb', ['nft', '-j', 'list', 'set', 'inet', 'lbc_assoc', 'all_coap'])).stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
      return out.nftables.find((o) => o.set)?.set?.elem?.length ?? 0;
    },
  });
});
