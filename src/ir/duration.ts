/**
 * Durations in specs: "500ms", "10s", "10m", "1h30m", "1d" — always with a unit (a bare number is
 * refused by the reader: ir/reader.ts says why).
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The pattern every duration matches (also the JSON Schema's). */
export const DURATION_RE = /^(?:\d+(?:ms|s|m|h|d))+$/;

/** Milliseconds, or null when the text is not a duration. */
export function parseDuration(v: string): number | null {
  if (!DURATION_RE.test(v)) return null;
  let total = 0;
  for (const m of v.matchAll(/(\d+)(ms|s|m|h|d)/g)) {
    total += Number(m[1]) * UNIT_MS[m[2]];
    if (!Number.isSafeInteger(total)) return null;
  }
  return total;
}
