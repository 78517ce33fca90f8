/**
 * The JSON Schema (draft 2020-12) of the spec, generated from the spec definition
 * (spec/definition.ts) that the validator reads its fields through, so the two cannot drift.
 * Editors (yaml-language-server, VS Code) use it to complete and check specs; it checks
 * structure, types, ranges, enums and patterns. What needs more than one field (address
 * families, canonical addresses, overlapping services, http-only keys) is lbc's to refuse.
 */
import { DURATION_RE } from '../ir/duration.js';
import { BLOCKS, type BlockDef, type BlockName, type FieldDef, type FieldType } from './definition.js';

export type JsonSchema = { [key: string]: unknown };

const V4_OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const V4 = `${V4_OCTET}(?:\\.${V4_OCTET}){3}`;
/** IPv6 in hexadecimal groups; lbc checks the groups themselves. */
const V6 = '[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}';
const addressPattern = (block: boolean): string =>
  block ? `^(?:${V4}(?:/(?:3[0-2]|[12]?[0-9]))?|${V6}(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$` : `^(?:${V4}|${V6})$`;
const SHORTHAND = `^(?:${V4}(?::[0-9]{1,5})?|${V6}|\\[${V6}\\](?::[0-9]{1,5})?|:[0-9]{1,5})$`;

function typeSchema(t: FieldType): JsonSchema {
  switch (t.kind) {
    case 'integer':
      return { type: 'integer', minimum: t.min, maximum: t.max };
    case 'boolean':
      return { type: 'boolean' };
    case 'const':
      return { const: t.value };
    case 'enum':
      return { type: 'string', enum: [...t.values, ...Object.keys(t.aliases ?? {})] };
    case 'text': {
      const str = { type: 'string', pattern: t.pattern.source };
      return t.numbers ? { anyOf: [str, { type: 'number' }] } : str;
    }
    case 'address':
      return { type: 'string', pattern: addressPattern(t.block) };
    case 'duration':
      return { type: 'string', pattern: DURATION_RE.source };
    case 'block':
      return { $ref: `#/$defs/${t.block}` };
    case 'backend-shorthand':
      return { type: 'string', pattern: SHORTHAND };
    case 'address-or-word':
      return { anyOf: [{ type: 'string', enum: [...t.words] }, { type: 'string', pattern: addressPattern(false) }] };
    case 'list': {
      const item = t.items.length === 1 ? typeSchema(t.items[0]) : { anyOf: t.items.map(typeSchema) };
      const list: JsonSchema = { type: 'array', items: item, minItems: t.minItems };
      if (t.maxItems !== undefined) list.maxItems = t.maxItems;
      if (t.unique) list.uniqueItems = true;
      return t.single ? { anyOf: [item, list] } : list;
    }
  }
}

function fieldSchema(f: FieldDef): JsonSchema {
  const s: JsonSchema = { description: f.description, ...typeSchema(f.type) };
  if (f.default !== undefined) s.default = f.default;
  return s;
}

function blockSchema(b: BlockDef): JsonSchema {
  const required = Object.entries(b.fields)
    .filter(([, f]) => f.required)
    .map(([k]) => k);
  const s: JsonSchema = {
    title: b.title,
    description: b.description,
    type: 'object',
    properties: Object.fromEntries(Object.entries(b.fields).map(([k, f]) => [k, fieldSchema(f)])),
    additionalProperties: false,
  };
  if (required.length) s.required = required;
  if (b.oneOfRequired) s.anyOf = b.oneOfRequired.map((k) => ({ required: [k] }));
  if (b.exactlyOneOf) s.oneOf = b.exactlyOneOf.map((k) => ({ required: [k] }));
  return s;
}

/** The spec's JSON Schema, draft 2020-12: `{ $schema, title, …, $defs: { service, backend, health } }`. */
export function specJsonSchema(): JsonSchema {
  const { spec, ...nested } = BLOCKS;
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    ...blockSchema(spec),
    $defs: Object.fromEntries((Object.keys(nested) as BlockName[]).map((k) => [k, blockSchema(BLOCKS[k])])),
  };
}

/** The schema as lbc ships it (schema/lbc-spec.schema.json) and prints it: two-space JSON and a newline. */
export function specJsonSchemaText(): string {
  return `${JSON.stringify(specJsonSchema(), null, 2)}\n`;
}
