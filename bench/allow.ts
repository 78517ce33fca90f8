/**
 * `npm run bench:allow`: what a large allow list costs. One service with N client blocks (default
 * 10,000 /24 networks), compiled for nftables and iptables, and loaded into a scratch network
 * namespace next to the same number of elements loaded the plainest way each tool has:
 *   nftables  lbc's whole file (the service, its chain, its interval set)  vs  a table holding
 *             only one interval set of the N blocks
 *   iptables  lbc's ipset.rules (a hash:net filled aside and swapped in), then its rules  vs
 *             `ipset restore` of one hash:net with the N blocks
 * Goal (issue 13): N ranges load in about the time of N set elements. Median of --runs fresh loads,
 * each into an empty namespace. Also the compile time of the spec (YAML, then JSON). Ratios are what
 * to read; absolute times move with the machine's load.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { compile, parseSpec, type TargetName } from '../src/index.js';
import { median, must, run } from './lib/proc.js';

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const N = opt('ranges', 10_000);
const RUNS = opt('runs', 3);

const block = (i: number) => `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`;
const blocks = Array.from({ length: N }, (_, i) => block(i));
const yaml = `version: 1\nservices:\n  - name: guarded\n    vip: 192.0.2.10\n    port: 80\n    allow:\n${blocks.map((b) => `      - ${b}\n`).join('')}    backends: [10.250.2.2, 10.250.2.3]\n`;
const json = JSON.stringify({ version: 1, services: [{ name: 'guarded', vip: '192.0.2.10', port: 80, allow: blocks, backends: ['10.250.2.2', '10.250.2.3'] }] });

function timeCompile(text: string, file: string, target: TargetName): { parseMs: number; emitMs: number } {
  const t0 = performance.now();
  const ir = parseSpec(text, file);
  const t1 = performance.now();
  const r = compile(ir, target);
  const t2 = performance.now();
  if (r.diagnostics.some((d) => d.severity === 'error')) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return { parseMs: t1 - t0, emitMs: t2 - t1 };
}

async function inFreshNs<T>(fn: (ns: string) => Promise<T>): Promise<T> {
  const ns = `lbc-allow-${process.pid}-${randomBytes(3).toString('hex')}`;
  await must(['ip', 'netns', 'add', ns]);
  try {
    return await fn(ns);
  } finally {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
}

async function load(argv: string[], input: string): Promise<number> {
  return inFreshNs(async (ns) => (await must(['ip', 'netns', 'exec', ns, ...argv], { input, timeoutMs: 120_000 })).ms);
}

async function loadAll(steps: Array<[string[], string]>): Promise<number> {
  return inFreshNs(async (ns) => {
    let ms = 0;
    for (const [argv, input] of steps) ms += (await must(['ip', 'netns', 'exec', ns, ...argv], { input, timeoutMs: 120_000 })).ms;
    return ms;
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:allow loads rulesets into network namespaces: run it as root');
  const nft = compile(parseSpec(yaml, 'allow.yaml'), 'nftables').files[0].content;
  const ipt = Object.fromEntries(compile(parseSpec(yaml, 'allow.yaml'), 'iptables').files.map((f) => [f.name, f.content]));
  const plainSet = `table ip ref {\n\tset s {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = {\n${blocks.map((b) => `\t\t\t${b},\n`).join('')}\t\t}\n\t}\n}\n`;
  const plainIpset = `create ref hash:net family inet maxelem 65536\n${blocks.map((b) => `add ref ${b}\n`).join('')}`;

  const rows: Array<[string, number[]]> = [];
  const measure = async (what: string, f: () => Promise<number>) => {
    const xs: number[] = [];
    for (let i = 0; i < RUNS; i++) xs.push(await f());
    rows.push([what, xs]);
    return median(xs);
  };
  const nftLbc = await measure('nftables: lbc file (service + allow set)', () => load(['nft', '-f', '-'], nft));
  const nftRef = await measure(`nftables: one interval set of ${N} elements`, () => load(['nft', '-f', '-'], plainSet));
  const iptLbc = await measure('iptables: lbc ipset.rules + iptables-restore --noflush', () =>
    loadAll([[['ipset', 'restore', '-exist'], ipt['ipset.rules']], [['iptables-restore', '--noflush'], ipt['iptables.rules']]]));
  const iptRef = await measure(`iptables: ipset restore of one hash:net of ${N} elements`, () => load(['ipset', 'restore'], plainIpset));

  const compiles = (['nftables', 'iptables', 'pf'] as const).flatMap((t) => [
    [t, 'YAML', timeCompile(yaml, 'allow.yaml', t)] as const,
    [t, 'JSON', timeCompile(json, 'allow.json', t)] as const,
  ]);

  const ms = (x: number) => `${x.toFixed(0)} ms`;
  const out = [
    `allow list of ${N} blocks, median of ${RUNS} fresh loads (all runs in brackets); load average ${execFileSync('cat', ['/proc/loadavg']).toString().split(' ').slice(0, 3).join(' ')}`,
    '',
    '| load | median | runs |',
    '|---|---|---|',
    ...rows.map(([w, xs]) => `| ${w} | ${ms(median(xs))} | ${xs.map(ms).join(', ')} |`),
    '',
    `| ratio | measured | goal |`,
    '|---|---|---|',
    `| nftables: lbc / plain set | ${(nftLbc / nftRef).toFixed(2)}× | about 1× |`,
    `| iptables: lbc (sets + rules) / plain ipset | ${(iptLbc / iptRef).toFixed(2)}× | about 1× |`,
    '',
    '| compile (in this process) | parse | emit |',
    '|---|---|---|',
    ...compiles.map(([t, f, c]) => `| ${t} from ${f} | ${ms(c.parseMs)} | ${ms(c.emitMs)} |`),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  void run;
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
