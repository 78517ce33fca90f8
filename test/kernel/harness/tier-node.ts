/**
 * Running lbc's files on the nodes of a TierTopology: compile a node's keepalived files into its run
 * directory, apply a firewall target as that node (services, then the tier), start and stop its daemons.
 */
import { chmodSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, parseSpec } from '../../../src/index.js';
import type { IR } from '../../../src/ir/types.js';
import { TARGETS, type TargetName } from '../../../src/targets/registry.js';
import { applyTier } from '../../../src/targets/tier/apply.js';
import { TIER_ADDR, type TierTopology } from './tier.js';

export interface NodeRun {
  node: string;
  dir: string;
}

export function specIR(text: string): IR {
  return parseSpec(text, 'tier-spec.yaml');
}

/** Write the node's keepalived files (and conntrackd.conf) into its run directory, as `-o RUN --run-dir RUN` would. */
export function writeKeepalivedFiles(ir: IR, run: NodeRun): void {
  const { files } = compile(ir, 'keepalived', { emit: { node: run.node, runDir: run.dir } });
  for (const f of files) {
    const p = join(run.dir, f.name);
    writeFileSync(p, f.content, { mode: f.executable ? 0o755 : 0o644 });
    if (f.executable) chmodSync(p, 0o755);
  }
}

/** `lbc apply --target T --node N --run-dir RUN` inside the node's namespace. */
export async function applyNode(topo: TierTopology, ir: IR, target: TargetName, run: NodeRun, log: (l: string) => void = () => {}): Promise<void> {
  const def = TARGETS.get(target)!;
  const emit = { node: run.node, runDir: run.dir };
  const { files } = compile(ir, target, { emit });
  const ctx = { ...topo.applyContext(run.node, log), stateDir: run.dir };
  await def.apply!(files, ctx);
  await applyTier(def, ir, files, ctx, emit);
}

export function startKeepalived(topo: TierTopology, run: NodeRun): void {
  const d = run.dir;
  topo.spawn(run.node, ['keepalived', '-n', '-l', '-D', '-f', join(d, 'keepalived.conf'), '-p', join(d, 'keepalived.pid'), '-r', join(d, 'vrrp.pid'), '-c', join(d, 'checkers.pid')], `keepalived-${run.node}`);
}

export function startConntrackd(topo: TierTopology, run: NodeRun): void {
  topo.spawn(run.node, ['conntrackd', '-C', join(run.dir, 'conntrackd.conf')], `conntrackd-${run.node}`);
}

/** Bucket → state, as the node's events script recorded it. */
export function bucketStates(run: NodeRun): Map<number, string> {
  const out = new Map<number, string>();
  for (const name of readdirSync(run.dir)) {
    const m = /^bucket\.(\d+)$/.exec(name);
    if (m) out.set(Number(m[1]), readFileSync(join(run.dir, name), 'utf8').trim());
  }
  return out;
}

/** Bucket → the nodes that hold it as MASTER now. */
export function owners(runs: readonly NodeRun[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const r of runs) {
    for (const [b, s] of bucketStates(r)) {
      if (s !== 'MASTER') continue;
      out.set(b, [...(out.get(b) ?? []), r.node]);
    }
  }
  return out;
}

/** The buckets in the node's kernel set (nft) right now. */
export async function kernelOwned(topo: TierTopology, node: string): Promise<number[]> {
  const { stdout } = await topo.exec(node, ['nft', '-j', 'list', 'set', 'inet', 'lbc_tier', 'owned']);
  const doc = JSON.parse(stdout) as { nftables: Array<{ set?: { elem?: number[] } }> };
  const set = doc.nftables.find((x) => x.set)?.set;
  return [...(set?.elem ?? [])].sort((a, b) => a - b);
}

/** Sources with a conntrack entry to `vip` on the node (tcp, any state). */
export async function conntrackSources(topo: TierTopology, node: string, vip: string): Promise<Set<string>> {
  const { stdout, stderr } = await topo.exec(node, ['conntrack', '-L', '-p', 'tcp', '--orig-dst', vip]).catch((e) => ({ stdout: '', stderr: String(e) }));
  void stderr;
  const out = new Set<string>();
  for (const line of stdout.split('\n')) {
    const m = /src=(\d+\.\d+\.\d+\.\d+)/.exec(line);
    if (m) out.add(m[1]);
  }
  return out;
}

/** The failover pair of the tests and the bench: vip and gateway moved together, conntrackd on eth2; web (nth) and echo. */
export function failoverSpec(advert = '1s'): string {
  return `version: 1
balancers:
  mode: failover
  id: 51
  advert: ${advert}
  interface: eth0
  gateway: { interface: eth1, address: ${TIER_ADDR.gateway}/24 }
  sync: { interface: eth2 }
  nodes:
    - { name: n1, address: ${TIER_ADDR.node(0)}, sync-address: ${TIER_ADDR.nodeSync(0)} }
    - { name: n2, address: ${TIER_ADDR.node(1)}, sync-address: ${TIER_ADDR.nodeSync(1)} }
services:
  - { name: web, vip: ${TIER_ADDR.vip}, port: 80, mode: nth, backends: [${TIER_ADDR.backends[0]}:8080, ${TIER_ADDR.backends[1]}:8080] }
  - { name: echo, vip: ${TIER_ADDR.vip}, port: 7, backends: [${TIER_ADDR.backends[0]}:7007] }
`;
}

/** The active-active cluster of the tests and the bench: every node serves web (port 8080) and echo (7007) itself. */
export function activeSpec(nodes: number, advert = '1s'): string {
  return `version: 1
balancers:
  mode: active-active
  id: 60
  advert: ${advert}
  interface: eth0
  nodes:
${Array.from({ length: nodes }, (_, i) => `    - { name: n${i + 1}, address: ${TIER_ADDR.node(i)} }`).join('\n')}
services:
  - { name: web, vip: ${TIER_ADDR.vip}, port: 80, backends: [":8080"] }
  - { name: echo, vip: ${TIER_ADDR.vip}, port: 7, backends: [":7007"] }
`;
}
