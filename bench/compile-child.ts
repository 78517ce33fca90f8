/**
 * One compile measurement in its own process, so its peak memory is its own:
 *   tsx bench/compile-child.ts '{"spec": FILE, "targets": [...], "outDir": DIR?}'
 * Times reading and parsing the spec as lbc does (readSpecFile, then parseSpec: YAML or JSON → validated
 * IR) once, then compile() per target (capability check + emit), optionally writes the files to
 * outDir/<target>/, and prints one JSON line:
 * { parseMs, parseError?, targets: { name: { emitMs, bytes, lines, error? } }, maxRssKb }.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { compile, parseSpec, readSpecFile, LbcError, formatDiagnostic, type IR, type TargetName } from '../src/index.js';

interface Job {
  spec: string;
  targets: TargetName[];
  outDir?: string;
}

const job = JSON.parse(process.argv[2]) as Job;
// The name decides the reader: a .json name takes the one-pass JSON reader, anything else YAML.
const specName = `bench${extname(job.spec) || '.yaml'}`;
const t0 = performance.now();
let ir: IR;
try {
  // As lbc reads a spec: readSpecFile (size limits, UTF-8), then parse and validate.
  ir = parseSpec(readSpecFile(job.spec).text, specName);
} catch (e) {
  const error = e instanceof LbcError ? formatDiagnostic(e.diagnostics[0]) : String(e);
  process.stdout.write(JSON.stringify({ parseMs: performance.now() - t0, parseError: error.split('\n')[0].slice(0, 300), targets: {}, maxRssKb: process.resourceUsage().maxRSS }) + '\n');
  process.exit(0);
}
const parseMs = performance.now() - t0;
const targets: Record<string, { emitMs: number; bytes: number; lines: number; error?: string }> = {};
for (const name of job.targets) {
  const a = performance.now();
  try {
    // specPath: targets that write units naming the spec file (systemd) need one; the others ignore it.
    const r = compile(ir, name, { emit: { specPath: `/etc/lbc/${specName}` } });
    const emitMs = performance.now() - a;
    let bytes = 0;
    let lines = 0;
    for (const f of r.files) {
      bytes += Buffer.byteLength(f.content);
      for (let i = f.content.indexOf('\n'); i >= 0; i = f.content.indexOf('\n', i + 1)) lines++;
      if (job.outDir) {
        mkdirSync(join(job.outDir, name), { recursive: true });
        writeFileSync(join(job.outDir, name, f.name), f.content);
      }
    }
    targets[name] = { emitMs, bytes, lines };
  } catch (e) {
    const msg = e instanceof LbcError ? e.diagnostics.slice(0, 1).map((d) => formatDiagnostic(d)).join('') : String(e);
    targets[name] = { emitMs: performance.now() - a, bytes: 0, lines: 0, error: msg.split('\n')[0].slice(0, 300) };
  }
}
process.stdout.write(JSON.stringify({ parseMs, targets, maxRssKb: process.resourceUsage().maxRSS }) + '\n');
