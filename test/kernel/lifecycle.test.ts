/**
 * `lbc apply`, `lbc status`, `lbc plan` and `lbc remove` as a user runs them, inside the balancer namespace
 * of a real topology: status reports the load and the kernel's counters of real connections, plan shows
 * exactly the change and changes nothing, remove takes out lbc's objects and leaves everything else.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDR, createTopology, kernelSuite, normalizeSave, tally, type Topology } from './harness/index.js';

const repo = join(import.meta.dirname, '..', '..');
const B = ADDR.v4.backends;
const VIP = ADDR.v4.vip(7);
const spec = (third: string) =>
  `version: 1\nservices:\n  - name: web\n    vip: ${VIP}\n    port: 80\n    backends: ["${B[0]}:8080", "${B[1]}:8080", "${third}:8080"]\n  - name: pinned\n    vip: ${ADDR.v4.vip(8)}\n    port: 80\n    sticky: 5m\n    backends: ["${B[0]}:8080"]\n`;

for (const target of ['nftables', 'iptables'] as const) {
  kernelSuite(`apply, status, plan and remove on ${target}`, target === 'nftables' ? ['nft', 'conntrack'] : ['iptables-restore', 'ipset', 'conntrack'], () => {
    let topo: Topology;
    let dir: string;
    const lbc = async (args: string[], okCodes = [0]) => {
      // Through a shell, to get the exit status of a command that may legitimately end with 1.
      const line = ['env', `LBC_STATE_DIR=${join(dir, 'state')}`, process.execPath, '--import', 'tsx', join(repo, 'src/cli/main.ts'), ...args].map((a) => `'${a}'`).join(' ');
      const r = await topo.exec('lb', ['sh', '-c', `${line}; echo "exit=$?" >&2`]);
      const code = Number(/exit=(\d+)\s*$/.exec(r.stderr)?.[1]);
      expect(okCodes, r.stderr).toContain(code);
      return { ...r, code };
    };
    const live = async () => {
      // Counters of the host's own rules move with the test's traffic; everything else must stay put.
      const nft = (await topo.exec('lb', ['nft', 'list', 'ruleset'])).stdout.replace(/counter packets \d+ bytes \d+/g, 'counter');
      const ipt = normalizeSave((await topo.exec('lb', ['iptables-save'])).stdout);
      const sets = (await topo.exec('lb', ['ipset', 'list', '-n'])).stdout;
      return `${nft}\n${ipt}\n${sets}`;
    };

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), `lbc-life-${target}-`));
      writeFileSync(join(dir, 'a.yaml'), spec(B[2]));
      writeFileSync(join(dir, 'b.yaml'), spec(B[3]));
      topo = await createTopology({ backendAddresses: 4 });
      await topo.startServers('be', B.slice(0, 4).map((a) => ({ protocol: 'tcp' as const, address: a, port: 8080, id: a })));
      // Rules of the host's own that every command must leave alone.
      await topo.exec('lb', ['nft', '-f', '-'], 'table ip mine {\n\tchain pre {\n\t\ttype filter hook prerouting priority 10; policy accept;\n\t\tcounter\n\t}\n}\n');
      await topo.exec('lb', ['iptables', '-t', 'nat', '-N', 'MINE']);
      await topo.exec('lb', ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-j', 'MINE']);
      await topo.exec('lb', ['ipset', 'create', 'mine', 'hash:ip']);
    }, 120_000);
    afterAll(async () => {
      await topo?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    let before = '';
    it('status before any apply: nothing loaded, exit 1', async () => {
      before = await live();
      const r = await lbc(['status', '-t', target, '--json'], [1]);
      const s = JSON.parse(r.stdout);
      expect(s.kernel).toBe('absent');
      expect(s.recorded).toBeNull();
    });

    it('plan before the first apply shows everything as new and changes nothing', async () => {
      const r = await lbc(['plan', join(dir, 'a.yaml'), '-t', target, '--exit-code'], [1]);
      expect(r.stdout).toMatch(/applying this spec changes lbc's rules/);
      expect(r.stdout).toMatch(/no record of an earlier lbc load/);
      expect(r.stdout).toMatch(new RegExp(`^\\+.*${B[2].replace(/\./g, '\\.')}:8080`, 'm'));
      expect(await live()).toBe(before);
      const left = (await topo.exec('lb', ['ip', 'netns', 'list'])).stdout;
      expect(left).not.toMatch(/lbc-plan-/);
    });

    it('status after apply: the kernel holds the load; the counters count real connections', async () => {
      await lbc(['apply', join(dir, 'a.yaml'), '-t', target]);
      const conns = await topo.connect({ host: VIP, port: 80, protocol: 'tcp', count: 30 });
      expect(tally(conns)).toEqual({ [B[0]]: 10, [B[1]]: 10, [B[2]]: 10 });
      const r = await lbc(['status', '-t', target, '--json']);
      const s = JSON.parse(r.stdout);
      expect(s.kernel).toBe('holds');
      expect(s.recorded.spec).toBe(join(dir, 'a.yaml'));
      const web = s.services.find((x: { name: string }) => x.name === 'web');
      expect(web.backends.map((b: { backend: string }) => b.backend)).toEqual([B[0], B[1], B[2]].map((a) => `${a}:8080`));
      if (target === 'iptables') {
        // nat sees each connection's first packet once: the DNAT rules' counters are the connections.
        expect(web.backends.map((b: { newConnections: number }) => b.newConnections)).toEqual([10, 10, 10]);
      }
      // The client closed its connections; conntrack may still track them (TIME_WAIT): at most the 30 made.
      const tracked = web.backends.reduce((a: number, b: { tracked: number }) => a + b.tracked, 0);
      expect(tracked).toBeLessThanOrEqual(30);
      const text = await lbc(['status', '-t', target]);
      expect(text.stdout).toMatch(/the kernel holds lbc's last load/);
    });

    it('plan of the same spec: no changes', async () => {
      const r = await lbc(['plan', join(dir, 'a.yaml'), '-t', target, '--exit-code']);
      expect(r.stdout).toMatch(/no changes/);
      expect(r.stdout).toMatch(/nothing to load/);
    });

    it('plan of a changed backend: exactly that line changes, the load is partial, nothing is applied', async () => {
      const now = await live();
      const r = await lbc(['plan', join(dir, 'b.yaml'), '-t', target, '--exit-code'], [1]);
      const changed = r.stdout.split('\n').filter((l) => /^[-+]/.test(l) && !/^(---|\+\+\+) /.test(l));
      expect(changed.filter((l) => l.startsWith('-'))).toEqual([expect.stringContaining(`${B[2]}:8080`)]);
      expect(changed.filter((l) => l.startsWith('+'))).toEqual([expect.stringContaining(`${B[3]}:8080`)]);
      expect(r.stdout).toMatch(/only what changed/);
      expect(await live()).toBe(now);
    });

    it('status sees a table changed behind lbc back', async () => {
      if (target === 'nftables') {
        const list = (await topo.exec('lb', ['nft', 'list', 'table', 'inet', 'lbc'])).stdout;
        const marker = /chain (loaded_[0-9a-f]+)/.exec(list)![1];
        await topo.exec('lb', ['nft', 'delete', 'chain', 'inet', 'lbc', marker]);
      } else {
        const save = (await topo.exec('lb', ['iptables-save', '-t', 'nat'])).stdout;
        const marker = /^:(LBC-L-\S+)/m.exec(save)![1];
        await topo.exec('lb', ['iptables', '-t', 'nat', '-X', marker]);
      }
      const s = JSON.parse((await lbc(['status', '-t', target, '--json'], [1])).stdout);
      expect(s.kernel).toBe('differs');
      await lbc(['apply', join(dir, 'a.yaml'), '-t', target]);
      expect(JSON.parse((await lbc(['status', '-t', target, '--json'])).stdout).kernel).toBe('holds');
    });

    it('remove takes out lbc and its record, and leaves the rest exactly as it was', async () => {
      await lbc(['remove', '-t', target]);
      expect(await live()).toBe(before);
      expect(existsSync(join(dir, 'state', `${target}.state`))).toBe(false);
      const again = await lbc(['remove', '-t', target]);
      expect(again.stderr).toMatch(/nothing to remove/);
      const conns = await topo.connect({ host: VIP, port: 80, protocol: 'tcp', count: 3, timeoutMs: 1000 });
      expect(conns.every((c) => c.backend === null)).toBe(true);
    });
  });
}
