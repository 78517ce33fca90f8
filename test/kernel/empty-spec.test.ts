/**
 * `services: []` compiles to a ruleset the Linux tools load: applied over a loaded one-service
 * ruleset in a private namespace, it leaves lbc's chains (or table) without a single rule.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { checkSpec, compile, TARGETS } from '../../src/index.js';
import { hostContext } from '../../src/host/exec.js';
import { kernelSuite } from './harness/index.js';

const ns = `lbc-empty-${process.pid}-${randomBytes(3).toString('hex')}`;
const inNs = ['ip', 'netns', 'exec', ns];
const sh = (argv: string[], input?: string) => execFileSync(inNs[0], [...inNs.slice(1), ...argv], { input, timeout: 30_000 }).toString();

const ONE = (vip: string, backend: string) => `version: 1
services:
  - name: web
    vip: ${vip}
    port: 80
    backends: ["${backend}"]
`;
const EMPTY = 'version: 1\nservices: []\n';

kernelSuite('an empty spec in the kernel', ['nft', 'iptables-restore', 'ip6tables-restore', 'iptables-save', 'ip6tables-save'], () => {
  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', ns], { timeout: 10_000 });
  });
  afterAll(() => {
    spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
  });

  const ctx = () => hostContext({ dryRun: false, log: () => {}, prefix: inNs, stateDir: null });
  const apply = async (target: string, text: string) => {
    const ir = checkSpec(text, 'k.yaml').ir!;
    await TARGETS.get(target)!.apply!(compile(ir, target).files, ctx());
  };

  it.each([
    ['iptables', ONE('10.201.100.1', '10.201.200.1:8080'), 'iptables-save'],
    ['ip6tables', ONE('fd00:201::1', '[fd00:201::2]:8080'), 'ip6tables-save'],
  ])('%s: loads, and leaves lbc chains without rules', async (target, one, save) => {
    await apply(target, one);
    expect(sh([save, '-t', 'nat'])).toMatch(/-A LBC-\S+ .*DNAT/);
    await apply(target, EMPTY);
    const after = sh([save, '-t', 'nat']);
    expect(after).toMatch(/^:LBC-PREROUTING /m);
    expect(after).not.toMatch(/^-A LBC-/m);
  });

  it('nftables: loads, and leaves lbc table empty', async () => {
    await apply('nftables', ONE('10.201.100.1', '10.201.200.1:8080'));
    expect(sh(['nft', 'list', 'table', 'inet', 'lbc'])).toMatch(/dnat/);
    await apply('nftables', EMPTY);
    const after = sh(['nft', 'list', 'table', 'inet', 'lbc']);
    expect(after).toMatch(/^table inet lbc \{/);
    expect(after).not.toMatch(/chain|dnat|map/);
  });

  it('iptables-condition: its rules file loads with iptables-restore --noflush', () => {
    const ir = checkSpec(EMPTY, 'k.yaml').ir!;
    const [rules] = compile(ir, 'iptables-condition').files;
    expect(rules.name).toBe('iptables-condition.rules');
    sh(['iptables-restore', '--noflush'], rules.content);
    expect(sh(['iptables-save', '-t', 'mangle'])).toMatch(/^:LBC-PREROUTING /m);
  });
});
