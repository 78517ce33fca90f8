/** Reading a spec: bytes, never more than lbc reads, refused before the rest is read; not-UTF-8 named with its position. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { firstInvalidByte } from '../../src/spec/utf8.js';
import { checkSpec, formatDiagnostic, LbcError, limits, readSpecFile } from '../../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'lbc-read-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SPEC = 'version: 1\nservices:\n  - name: web\n    port: 80\n    backends: ["10.0.0.1"]\n';

function refusal(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(LbcError);
    return (e as LbcError).diagnostics.map(formatDiagnostic);
  }
  throw new Error('not refused');
}

/** readSpecFile('-') in a child process, with `input` on its standard input. */
function readStdin(input: Buffer | string): { status: number | null; out: string } {
  const code = `import { readSpecFile, formatDiagnostic } from './src/index.ts';
try { const r = readSpecFile('-'); process.stdout.write(JSON.stringify({ file: r.file, length: r.text.length })); }
catch (e) { process.stdout.write(e.diagnostics.map(formatDiagnostic).join('\\n')); process.exitCode = 1; }`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { input, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 });
  return { status: r.status, out: r.stdout.toString() + r.stderr.toString() };
}

describe('readSpecFile', () => {
  it('reads a file and standard input', () => {
    const p = join(dir, 'web.yaml');
    writeFileSync(p, SPEC);
    expect(readSpecFile(p)).toEqual({ text: SPEC, file: p });
    expect(readStdin(SPEC)).toEqual({ status: 0, out: JSON.stringify({ file: '<stdin>', length: SPEC.length }) });
  });

  it('says why a file cannot be read, with its path', () => {
    expect(refusal(() => readSpecFile(join(dir, 'missing.yaml')))).toEqual([`lbc: error: cannot read spec "${join(dir, 'missing.yaml')}": no such file or directory (ENOENT) [LBC4001]`]);
    mkdirSync(join(dir, 'd.yaml'));
    expect(refusal(() => readSpecFile(join(dir, 'd.yaml')))[0]).toMatch(/it is a directory \[LBC4001\]/);
  });

  it('refuses a file larger than any spec before reading it', () => {
    // A sparse file: 100 MiB long, nothing on disk; reading it would take seconds and the memory.
    const p = join(dir, 'huge.json');
    writeFileSync(p, '');
    truncateSync(p, 100 * 1024 * 1024);
    // The size in the message comes from the file's metadata: the refusal came before reading.
    expect(refusal(() => readSpecFile(p))).toEqual([
      expect.stringMatching(/error: the spec ".*huge\.json" is 100\.0 MiB; lbc reads specs of up to 8 MiB of YAML or 64 MiB of JSON \[LBC4005\]\n {2}note: see "Limits"/),
    ]);
  });

  it('refuses a YAML file past the YAML limit, a JSON one only past the JSON limit', () => {
    const big = '#'.repeat(limits.MAX_YAML_BYTES) + '\n' + SPEC;
    const y = join(dir, 'big.yaml');
    writeFileSync(y, big);
    expect(refusal(() => readSpecFile(y))[0]).toMatch(/is 8\.0 MiB; lbc reads specs of up to 8 MiB of YAML/);
    const j = join(dir, 'big.json');
    writeFileSync(j, `${' '.repeat(limits.MAX_YAML_BYTES)}{"version": 1, "services": []}`);
    expect(checkSpec(readSpecFile(j).text, j).diagnostics).toEqual([]);
  });

  it('reads standard input in chunks and stops past the limit', () => {
    const r = readStdin(Buffer.alloc(limits.MAX_YAML_BYTES + 3 * 1024 * 1024, '#'));
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/^lbc: error: the spec standard input holds more than 8 MiB of YAML; lbc reads specs of up to 8 MiB of YAML or 64 MiB of JSON \[LBC4005\]/);
  });

  it('names bytes that are not UTF-8, with their line and column', () => {
    const bytes = Buffer.concat([Buffer.from('version: 1\nservices:\n  - name: wé'), Buffer.from([0xff]), Buffer.from('b\n')]);
    const p = join(dir, 'latin.yaml');
    writeFileSync(p, bytes);
    const expected = `${p}:3:13: error: the spec is not UTF-8 text: byte 0xff cannot start a character [LBC1011]`;
    expect(refusal(() => readSpecFile(p))[0]).toMatch(new RegExp(`^${expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    expect(checkSpec(bytes, p).diagnostics.map(formatDiagnostic)[0]).toMatch(/^.*latin\.yaml:3:13: error: the spec is not UTF-8 text/);
    expect(readStdin(bytes).out).toMatch(/^<stdin>:3:13: error: the spec is not UTF-8 text/);
    // A character cut short (é is C3 A9) and an overlong form.
    expect(checkSpec(Buffer.from([0x61, 0x3a, 0x20, 0xc3, 0x0a]), 'c.yaml').diagnostics.map(formatDiagnostic)[0]).toMatch(/c\.yaml:1:4: error: .*starting with byte 0xc3 is cut short or malformed/);
    expect(checkSpec(Buffer.from([0x61, 0x3a, 0x20, 0xc0, 0xaf]), 'c.yaml').diagnostics.map(formatDiagnostic)[0]).toMatch(/c\.yaml:1:4: error: .*byte 0xc0 cannot start a character/);
  });
});

describe('firstInvalidByte', () => {
  const fatal = new TextDecoder('utf-8', { fatal: true });
  const decodes = (b: Uint8Array) => {
    try {
      fatal.decode(b);
      return true;
    } catch {
      return false;
    }
  };
  it('agrees with a strict UTF-8 decoder on random bytes and on random text with a bad byte in it', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 24 }),
      fc.tuple(fc.string({ unit: 'binary', maxLength: 12 }), fc.integer({ min: 0x80, max: 0xff }), fc.string({ unit: 'binary', maxLength: 6 })).map(([a, b, c]) => Buffer.concat([Buffer.from(a), Buffer.from([b]), Buffer.from(c)])),
    );
    fc.assert(
      fc.property(bytes, (b) => {
        const at = firstInvalidByte(b);
        expect(at === -1).toBe(decodes(b));
        if (at >= 0) {
          expect(decodes(b.subarray(0, at))).toBe(true);
          expect(decodes(b.subarray(0, at + 4 < b.length ? at + 4 : b.length))).toBe(false);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
