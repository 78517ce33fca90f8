/**
 * Where two texts differ, for incremental apply: the emitted ruleset of 10,000 services is megabytes,
 * one changed backend a line or two of it. Finding the equal start and end by comparing pieces of
 * the strings (a block comparison in the engine) costs milliseconds, where splitting both texts into
 * lines costs tens of them.
 */

/** Length of the longest common prefix of a and b (suffix, with `fromEnd`). */
function commonLength(a: string, b: string, fromEnd: boolean): number {
  const max = Math.min(a.length, b.length);
  const piece = (s: string, i: number, n: number) => (fromEnd ? s.slice(s.length - i - n, s.length - i) : s.slice(i, i + n));
  let i = 0;
  // Large pieces while they are equal, then narrower ones inside the first piece that is not.
  for (const step of [4096, 512, 64, 8, 1]) {
    while (i + step <= max && piece(a, i, step) === piece(b, i, step)) i += step;
  }
  return i;
}

/**
 * The lines that differ: `head` characters of whole lines are equal at the start of both texts and
 * `tail` characters of whole lines at the end, without overlapping. Each text's differing part is
 * then text.slice(head, text.length - tail), whole lines, each ending with its newline (unless at
 * the very end of a text without a final newline).
 */
export function differingLines(before: string, after: string): { head: number; tail: number } {
  let head = commonLength(before, after, false);
  // Back to the start of the line the first difference is on (everything before head is common).
  if (head > 0 && before[head - 1] !== '\n') head = before.lastIndexOf('\n', head - 1) + 1;
  let tail = Math.min(commonLength(before, after, true), before.length - head, after.length - head);
  // The common tail must begin a line in both texts; the start of a text begins one (so equal texts,
  // with or without a final newline, are all head and tail).
  const startsLine = (s: string) => tail === 0 || tail === s.length || s[s.length - tail - 1] === '\n';
  while (tail > 0 && !(startsLine(before) && startsLine(after))) tail--;
  return { head, tail };
}
