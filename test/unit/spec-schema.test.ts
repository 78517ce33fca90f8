/**
 * The JSON Schema is generated from the definition the validator reads fields through: the shipped
 * file is that output, a real draft 2020-12 validator accepts every bundled spec with it, refuses the
 * mistakes editors should flag, and never refuses a spec lbc accepts.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import fc from 'fast-check';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { checkSpec, specJsonSchema } from '../../src/index.js';
import { specJsonSchemaText } from '../../src/spec/json-schema.js';
import { specArbitrary } from '../property/spec-arbitrary.js';

const SHIPPED = 'schema/lbc-spec.schema.json';

const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
const validate = ajv.compile(specJsonSchema());
const schemaAccepts = (doc: unknown): boolean => validate(doc) === true;

const fixtureSpecs = readdirSync('fixtures')
  .flatMap((d) => [`fixtures/${d}/spec.yaml`, `fixtures/${d}/spec.json`])
  .filter((p) => existsSync(p));

describe('the spec JSON Schema', () => {
  it('is the shipped file (LBC_ACCEPT_SCHEMA=1 rewrites it)', () => {
    if (process.env.LBC_ACCEPT_SCHEMA) writeFileSync(SHIPPED, specJsonSchemaText());
    expect(readFileSync(SHIPPED, 'utf8')).toBe(specJsonSchemaText());
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { files: string[]; exports: Record<string, unknown> };
    expect(pkg.files).toContain('schema');
    expect(pkg.exports['./schema.json']).toBe(`./${SHIPPED}`);
  });

  it('is draft 2020-12 with a description on every field', () => {
    const s = specJsonSchema() as { $schema: string; $defs: Record<string, { properties: Record<string, { description?: string }> }> };
    expect(s.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    for (const [block, def] of Object.entries(s.$defs)) {
      for (const [field, f] of Object.entries(def.properties)) expect(f.description, `${block}.${field}`).toMatch(/\w/);
    }
  });

  it('accepts every bundled spec', () => {
    expect(fixtureSpecs.length).toBeGreaterThan(5);
    for (const p of fixtureSpecs) {
      const doc = YAML.parse(readFileSync(p, 'utf8'));
      expect(schemaAccepts(doc), `${p}: ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
  });

  const base = () => ({ version: 1, services: [{ name: 'web', vip: '192.0.2.1', port: 80, backends: ['10.0.0.1:8080', { address: '10.0.0.2', weight: 2 }] }] });
  it.each<[string, (s: ReturnType<typeof base>) => void]>([
    ['an unknown field', (s) => Object.assign(s.services[0], { protocl: 'udp' })],
    ['weight 0', (s) => Object.assign(s.services[0].backends[1] as object, { weight: 0 })],
    ['a port out of range', (s) => Object.assign(s.services[0], { port: 65536 })],
    ['a missing version', (s) => delete (s as { version?: number }).version],
    ['an unsafe name', (s) => Object.assign(s.services[0], { name: 'web"; flush ruleset; "' })],
    ['an unsafe interface', (s) => Object.assign(s.services[0], { interface: 'eth0 -j ACCEPT' })],
    ['a bare number as a duration', (s) => Object.assign(s.services[0], { sticky: 600 })],
    ['an unknown mode', (s) => Object.assign(s.services[0], { mode: 'fastest' })],
    ['a backend with neither address nor port', (s) => s.services[0].backends.push({ weight: 1 } as never)],
  ])('refuses %s, as lbc does', (_what, edit) => {
    const good = base();
    expect(schemaAccepts(good)).toBe(true);
    expect(checkSpec(JSON.stringify(good), 's.json').ir).not.toBeNull();
    const bad = base();
    edit(bad);
    expect(schemaAccepts(bad)).toBe(false);
    expect(checkSpec(JSON.stringify(bad), 's.json').ir).toBeNull();
  });

  it('accepts every random valid spec', () => {
    for (const text of fc.sample(specArbitrary(), { numRuns: 200, seed: 5 })) {
      expect(checkSpec(text, 'r.json').ir, text).not.toBeNull();
      expect(schemaAccepts(JSON.parse(text)), `${ajv.errorsText(validate.errors)}\n${text}`).toBe(true);
    }
  });

  /** Codes of problems a single field has on its own: the schema must see each of them too. */
  const FIELD_CODES = new Set(['LBC2001', 'LBC2002', 'LBC2003', 'LBC2004', 'LBC2005', 'LBC2006', 'LBC2007', 'LBC2010', 'LBC2011', 'LBC2012', 'LBC2015', 'LBC2016', 'LBC2018', 'LBC2019', 'LBC2020', 'LBC2030', 'LBC2032', 'LBC2033', 'LBC2041', 'LBC2044', 'LBC2045', 'LBC2060', 'LBC2061', 'LBC2070']);

  it('agrees with lbc on random plausible specs: never stricter, and refuses what is wrong with a field alone', () => {
    // Mostly right values, sometimes anything: both verdicts come up often.
    const wild = fc.oneof(
      fc.string({ maxLength: 8 }),
      fc.integer({ min: -5, max: 70000 }),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom('10.0.0.1', '2001:db8::1', '10.0.0.0/8', ':80', '10.0.0.2:8080', '10m', '500ms', 600, 'tcp', 'nth', 'saddr', 'eth0', 'web', 'http', '/x', '220'),
      fc.array(fc.constantFrom('saddr', 'x', 1), { maxLength: 3 }),
      fc.constant({ check: 'tcp' }),
    );
    const maybe = <T,>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 19, arbitrary: good as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: wild });
    /** Now and then an unknown field. */
    const misspelt = <T,>(r: fc.Arbitrary<T>, key: string) => fc.tuple(r, fc.nat(19), wild).map(([o, n, w]) => (n === 0 ? { ...o, [key]: w } : o));
    const optional = <T extends Record<string, fc.Arbitrary<unknown>>>(r: T) => fc.record(r, { requiredKeys: [] });
    // Fields agree with each other (family, mode, check kind), so what lbc refuses is mostly a single field.
    const health = fc.constantFrom('tcp', 'http', 'banner', 'icmp', 'udp').chain((check) =>
      optional({
        check: maybe(fc.constant(check)),
        interval: maybe(fc.constantFrom('1s', '2s')),
        timeout: maybe(fc.constantFrom('100ms', '1s')),
        rise: maybe(fc.integer({ min: 1, max: 100 })),
        fall: maybe(fc.integer({ min: 1, max: 100 })),
        ...(check === 'icmp' ? {} : { port: maybe(fc.integer({ min: 1, max: 65535 })) }),
        ...(check === 'udp' ? { send: maybe(fc.constantFrom('40 00 00 00', '00')), expect: maybe(fc.constantFrom('70 00 00 00', '7000')) } : {}),
        ...(check === 'http' ? { path: maybe(fc.constantFrom('/', '/healthz')), status: maybe(fc.integer({ min: 100, max: 599 })), method: maybe(fc.constantFrom('GET', 'HEAD')) } : {}),
        ...(check === 'banner' ? { expect: maybe(fc.constantFrom('220', 220)), send: maybe(fc.constant('QUIT\r\n')) } : {}),
      }).map((h) => (check === 'banner' && !('expect' in h) ? { ...h, check, expect: '220' } : check === 'udp' && !('send' in h) ? { ...h, check, send: '40 00 00 00' } : { ...h, check })),
    );
    const svc = fc.record({ v6: fc.boolean(), mode: fc.constantFrom('nth', 'random', 'hash', 'round-robin'), port: fc.integer({ min: 1, max: 65535 }) }).chain(({ v6, mode, port }) => {
      const backend = fc.oneof(
        maybe(fc.constantFrom(...(v6 ? ['2001:db8::7', '[2001:db8::5]:80'] : ['10.0.0.1', '10.0.0.2:8080']), ':81')),
        misspelt(
          optional({
            address: maybe(fc.constantFrom(...(v6 ? ['2001:db8::3', '2001:db8::4'] : ['10.0.0.3', '10.0.0.4']))),
            port: maybe(fc.integer({ min: 1, max: 65535 })),
            weight: maybe(fc.integer({ min: 1, max: 1000 })),
            health,
          }).map((b) => ('address' in b || 'port' in b ? b : { ...b, port: 82 })),
          'wieght',
        ),
      );
      return misspelt(
        fc.record(
          {
            name: maybe(fc.constantFrom('a', 'b-1', 'svc', 'web2')),
            vip: maybe(fc.constantFrom(...(v6 ? ['2001:db8::1', '2001:db8:1::/48'] : ['192.0.2.1', '198.51.100.0/24']))),
            port: maybe(fc.constant(port)),
            protocol: maybe(fc.constantFrom('tcp', 'udp')),
            mode: maybe(fc.constant(mode)),
            ...(mode === 'hash' ? { hash: maybe(fc.constantFrom(['saddr'], 'dport', ['saddr', 'sport'])) } : {}),
            sticky: maybe(fc.constantFrom('10m', '30s', '1h')),
            interface: maybe(fc.constantFrom('eth0', 'bond0.204')),
            local: maybe(fc.boolean()),
            family: maybe(fc.constant(v6 ? 'ipv6' : 'ipv4')),
            health,
            allow: maybe(fc.constantFrom(...(v6 ? [['2001:db8:9::/48'], ['2001:db8:9::1', '2001:db8:a::/64']] : [['198.51.100.0/24'], ['203.0.113.7', '192.0.2.0/25']]))),
            backends: maybe(fc.uniqueArray(backend, { minLength: 1, maxLength: 3, selector: (b) => JSON.stringify(b) })),
            several: fc.constantFrom(null, null, [port, port === 65535 ? 1 : port + 1], [`${Math.min(port, 65000)}-${Math.min(port, 65000) + 10}`], 'both'),
          },
          { requiredKeys: ['name', 'port', 'backends', 'several'] },
        ).map(({ several, ...svc }) => {
          // Now and then ports instead of port (and, rarely, both: a mistake lbc and the schema refuse).
          if (several === null) return svc;
          if (several === 'both') return { ...svc, ports: [svc.port] };
          const { port: _p, ...rest } = svc;
          return { ...rest, ports: several };
        }),
        'protocl',
      );
    });
    const arbitrarySpec = misspelt(fc.record({ version: maybe(fc.constant(1)), services: maybe(fc.array(svc, { minLength: 1, maxLength: 2 })) }), 'extra');
    let lbcAccepted = 0;
    let fieldOnly = 0;
    fc.assert(
      fc.property(arbitrarySpec, (doc) => {
        const r = checkSpec(JSON.stringify(doc), 'p.json');
        const codes = r.diagnostics.filter((d) => d.severity === 'error').map((d) => d.code);
        if (r.ir) {
          lbcAccepted++;
          expect(schemaAccepts(doc), `${ajv.errorsText(validate.errors)}\n${JSON.stringify(doc)}`).toBe(true);
        } else if (codes.every((c) => FIELD_CODES.has(c))) {
          fieldOnly++;
          expect(schemaAccepts(doc), `lbc: ${codes.join(', ')}\n${JSON.stringify(doc)}`).toBe(false);
        }
      }),
      { numRuns: 3000, seed: 20260105 },
    );
    // Not vacuous: both sides of the property ran.
    expect(lbcAccepted).toBeGreaterThan(20);
    expect(fieldOnly).toBeGreaterThan(500);
  });
});
