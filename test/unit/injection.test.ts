/**
 * Nothing a spec (or its file name) contains may become a line of any target's
 * output. Valid-but-odd values must reach the output only in their safe form.
 */
import { describe, expect, it } from 'vitest';
import { checkSpec, TARGETS } from '../../src/index.js';
import { compileForTarget } from '../../src/targets/target.js';

const EVIL_FILE = 'evil\n-A INPUT -j ACCEPT\nflush ruleset\npass in all\r\n\u2028x.yaml';
const SPEC = `version: 1
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    interface: eth0
    health: { check: http, path: "/a?b=c&d=%20", host: example.org }
    backends: ["10.0.0.1:8080", "10.0.0.2:8080", { port: 80, backup: true }]
  - name: six
    vip: 2001:db8::10
    port: 80
    interface: eth0
    health: { check: banner, send: "QUIT\\r\\n", expect: "220 ok" }
    backends: ["[2001:db8::1]:80", "[2001:db8::2]:80"]
`;

describe('no injection through the spec', () => {
  const { ir, diagnostics } = checkSpec(SPEC, EVIL_FILE);
  it('parses', () => expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]));
  let compiled = 0;
  for (const target of TARGETS.values()) {
    it(`${target.name}: the file name stays inside comments`, () => {
      const r = compileForTarget(target, ir!, { specPath: '/etc/lbc/web.yaml' });
      if (r.files.length > 0) compiled++;
      const text = r.files.map((f) => f.content).join('\n');
      for (const line of text.split('\n')) {
        expect(line).not.toMatch(/^-A INPUT|^flush ruleset|^pass in all/);
      }
      expect(text).not.toMatch(/[\r\u2028]/);
    });
  }
  it('was not vacuous: most targets compiled the spec', () => expect(compiled).toBeGreaterThanOrEqual(6));
});
