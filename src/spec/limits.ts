/**
 * How big a spec lbc reads. Beyond these a spec is refused with a clear error before the work
 * (and the memory) grows with it: the text's size is checked before it is read, the number of
 * values while it is parsed, services and backends while it is validated. Within them, compiling
 * for any target stays under 1 GB of memory (measured by `npm run bench`, bench/README.md).
 */

/** Bytes of JSON text. JSON is read in one pass that stops at MAX_NODES. */
export const MAX_JSON_BYTES = 64 * 1024 * 1024;
/**
 * Bytes of YAML text: about 15,000 services of 8 backends written as the README writes backends,
 * 35,000 with backends as "ADDRESS:PORT" strings. Lower than JSON's because the YAML parser (js-yaml's event stream) holds about
 * 120 bytes per value of the whole text before the first value can be counted, and dense YAML
 * (`[1,1,1,…]`, `-` lines) has a value every two bytes: 8 MiB of it peak at about 800 MB.
 */
export const MAX_YAML_BYTES = 8 * 1024 * 1024;
/** Services in one spec. */
export const MAX_SERVICES = 50_000;
/** Backends of one service. */
export const MAX_BACKENDS = 1024;
/** Backends of all services together. */
export const MAX_TOTAL_BACKENDS = 400_000;
/**
 * Values (scalars, lists, mappings) held in the syntax tree at once, aliases counted expanded.
 * Services are validated as they are read and not held, so this bounds the rest of the spec.
 */
export const MAX_NODES = 1_000_000;
/** Values reached through YAML aliases: they can multiply a document (the "billion laughs"). */
export const MAX_ALIAS_NODES = 100_000;
/** Nesting deeper than any spec; stops runaway input early. */
export const MAX_DEPTH = 64;
