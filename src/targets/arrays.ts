/**
 * Appending without spreading into arguments: `a.push(...b)` passes every
 * element as a call argument and overflows the stack for the hundreds of
 * thousands of rules a large spec produces.
 */
export function appendAll<T>(target: T[], items: Iterable<T>): T[] {
  for (const item of items) target.push(item);
  return target;
}
