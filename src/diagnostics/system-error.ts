/** The system's own words for an I/O error ("no such file or directory (ENOENT)"), not just its code. */
import { getSystemErrorMap } from 'node:util';

export function systemMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.errno === 'number') {
    const entry = getSystemErrorMap().get(err.errno);
    if (entry) return `${entry[1]} (${entry[0]})`;
  }
  if (typeof err?.code === 'string') {
    for (const [name, message] of getSystemErrorMap().values()) if (name === err.code) return `${message} (${name})`;
  }
  return err?.message ?? String(e);
}
