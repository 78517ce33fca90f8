/** The one results table: each row a measure, its absolute figures, a ratio and the goal it is read against. */
export interface Row {
  section: string;
  measure: string;
  /** Absolute figures, e.g. "parse 2116 ms + emit 891 ms, 312 MB". */
  value: string;
  /** The ratio, formatted; "" when the row is absolute only. */
  ratio: string;
  goal: string;
  /** "met", "MISSED", "n/a" or "" (no goal). */
  verdict: string;
}

export const rows: Row[] = [];
export const notices: string[] = [];

export function addRow(r: Row): void {
  rows.push(r);
}

export function verdict(ok: boolean | null): string {
  return ok === null ? 'n/a' : ok ? 'met' : 'MISSED';
}

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}
export function fmtMb(kb: number | null): string {
  return kb === null || !Number.isFinite(kb) ? '-' : `${(kb / 1024).toFixed(0)} MB`;
}
export function fmtRatio(x: number, digits = 2): string {
  return Number.isFinite(x) ? `${x.toFixed(digits)}×` : '-';
}
export function fmtRate(x: number): string {
  return Number.isFinite(x) ? `${Math.round(x).toLocaleString('en-US')}/s` : '-';
}

export function renderTable(): string {
  const head = ['measure', 'absolute', 'ratio', 'goal', 'verdict'];
  const body = rows.map((r) => [r.measure, r.value, r.ratio, r.goal, r.verdict]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join(' | ').trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('-+-');
  const out: string[] = [line(head), sep];
  let section = '';
  for (let i = 0; i < rows.length; i++) {
    if (rows[i].section !== section) {
      section = rows[i].section;
      out.push(`[${section}]`);
    }
    out.push(line(body[i]));
  }
  return out.join('\n');
}
