/**
 * One diagnostic type for every stage of lbc: spec parsing, validation,
 * target capability checks and the CLI. Modelled on compiler diagnostics:
 * a stable code, a message, a position, and optional notes that tell the
 * user what to do instead.
 */

export interface SourceLocation {
  /** The file name as the user gave it ("-" is shown as "<stdin>"). */
  file: string;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  column: number;
}

export type Severity = 'error' | 'warning' | 'note';

export interface Diagnostic {
  /** Stable identifier, e.g. "LBC1003". Ranges: 1xxx spec syntax, 2xxx validation, 3xxx target capability, 4xxx CLI/IO, 5xxx runtime (apply/agent). */
  code: string;
  severity: Severity;
  message: string;
  location?: SourceLocation;
  /** Follow-up hints: "did you mean …", "use … instead". */
  notes?: string[];
}

/** Thrown by library entry points when a spec cannot be compiled; carries every problem found, not just the first. */
export class LbcError extends Error {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
    this.name = 'LbcError';
    this.diagnostics = diagnostics;
  }
}

export function formatLocation(loc: SourceLocation | undefined): string {
  if (!loc) return 'lbc';
  return `${loc.file}:${loc.line}:${loc.column}`;
}

/** "file:line:col: error: message [LBCxxxx]" followed by indented notes. */
export function formatDiagnostic(d: Diagnostic): string {
  const head = `${formatLocation(d.location)}: ${d.severity}: ${d.message} [${d.code}]`;
  const notes = (d.notes ?? []).map((n) => `  note: ${n}`);
  return [head, ...notes].join('\n');
}

export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === 'error');
}

/** Collects diagnostics during a pass; a pass never throws on bad input, it reports. */
export class DiagnosticBag {
  readonly items: Diagnostic[] = [];
  error(code: string, message: string, location?: SourceLocation, notes?: string[]): void {
    this.items.push({ code, severity: 'error', message, location, notes });
  }
  warning(code: string, message: string, location?: SourceLocation, notes?: string[]): void {
    this.items.push({ code, severity: 'warning', message, location, notes });
  }
  note(code: string, message: string, location?: SourceLocation, notes?: string[]): void {
    this.items.push({ code, severity: 'note', message, location, notes });
  }
  get hasErrors(): boolean {
    return hasErrors(this.items);
  }
}

/** Sorted by position so output is deterministic and reads top to bottom. */
export function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return [...ds].sort((a, b) => {
    const la = a.location, lb = b.location;
    if (!la || !lb) return la ? 1 : lb ? -1 : 0;
    if (la.file !== lb.file) return la.file < lb.file ? -1 : 1;
    return la.line - lb.line || la.column - lb.column;
  });
}

/** "did you mean" by edit distance, for unknown keys and enum values. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      bestDist = d;
      best = c;
    }
  }
  return best !== undefined && bestDist <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}
