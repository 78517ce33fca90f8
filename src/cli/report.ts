/**
 * Where the CLI's words go. Standard output carries only a command's product (a ruleset, a report, a diff);
 * diagnostics and progress lines go to standard error, in the format --output-format chose:
 *   text    file:line:col: error: message [CODE] with indented notes (the default)
 *   json    one JSON document, {"diagnostics": [...]}, written when the command ends
 *   github  GitHub Actions workflow commands (::error file=…,line=…,col=…::message)
 * Writes to a closed pipe end the command quietly (exit 141, as a shell reports SIGPIPE); other write
 * errors are one line naming the stream and the system's message.
 */
import { formatDiagnostic, LbcError, type Diagnostic } from '../diagnostics/diagnostic.js';
import { systemMessage } from '../diagnostics/system-error.js';

export { systemMessage };

export const OUTPUT_FORMATS = ['text', 'json', 'github'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The exit status a shell shows for a process killed by SIGPIPE; a closed pipe ends lbc with it. */
export const EXIT_PIPE = 141;

/** Thrown when standard output is a closed pipe: nothing more to say, nowhere to say it. */
export class ClosedPipe extends Error {
  constructor() {
    super('closed pipe');
  }
}

export interface JsonDiagnostic {
  code: string;
  severity: Diagnostic['severity'];
  message: string;
  file: string | null;
  line: number | null;
  column: number | null;
  notes: string[];
}

export function diagnosticJson(d: Diagnostic): JsonDiagnostic {
  return {
    code: d.code,
    severity: d.severity,
    message: d.message,
    file: d.location?.file ?? null,
    line: d.location?.line ?? null,
    column: d.location?.column ?? null,
    notes: d.notes ?? [],
  };
}

/** Workflow-command escaping (GitHub's toolkit: %, CR and LF in data; also ':' and ',' in properties). */
function ghData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}
function ghProp(s: string): string {
  return ghData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

export function githubAnnotation(d: Diagnostic): string {
  const kind = d.severity === 'error' ? 'error' : d.severity === 'warning' ? 'warning' : 'notice';
  const props = [`title=${ghProp(d.code)}`];
  if (d.location) props.unshift(`file=${ghProp(d.location.file)}`, `line=${d.location.line}`, `col=${d.location.column}`);
  const body = [d.message, ...(d.notes ?? []).map((n) => `note: ${n}`)].join('\n');
  return `::${kind} ${props.join(',')}::${ghData(body)}`;
}

export interface Streams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export class Reporter {
  private readonly collected: Diagnostic[] = [];
  private finished = false;

  constructor(
    readonly format: OutputFormat = 'text',
    private readonly streams: Streams = { stdout: process.stdout, stderr: process.stderr },
  ) {}

  diagnostics(ds: readonly Diagnostic[]): void {
    if (this.format === 'json') {
      this.collected.push(...ds);
      return;
    }
    for (const d of ds) this.errLine(this.format === 'github' ? githubAnnotation(d) : formatDiagnostic(d));
  }

  /** A progress or status line ("lbc: wrote out.nft"); always plain text on stderr. */
  log(line: string): void {
    this.errLine(`lbc: ${line}`);
  }

  /** A line to stderr as it is (the agent's log, usage messages). */
  errLine(line: string): void {
    try {
      this.streams.stderr.write(`${line}\n`);
    } catch {
      // stderr gone: nothing useful is left to do with the line
    }
  }

  /** The command's product on stdout; resolves once the data is handed to the system. */
  stdout(text: string): Promise<void> {
    return writeStream(this.streams.stdout, text, 'standard output');
  }

  /** Ends the report: the json format writes its one document now. */
  finish(): void {
    if (this.format !== 'json' || this.finished) return;
    this.finished = true;
    this.errLine(JSON.stringify({ diagnostics: this.collected.map(diagnosticJson) }, null, 2));
  }
}

/** Write and wait; EPIPE becomes ClosedPipe, any other error one LbcError naming the stream. */
export function writeStream(stream: NodeJS.WritableStream, text: string, what: string): Promise<void> {
  if (text === '') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const fail = (e: unknown) => {
      if ((e as NodeJS.ErrnoException)?.code === 'EPIPE') reject(new ClosedPipe());
      else reject(new LbcError([{ code: 'LBC4003', severity: 'error', message: `cannot write ${what}: ${systemMessage(e)}` }]));
    };
    try {
      stream.write(text, (e?: Error | null) => (e ? fail(e) : resolve()));
    } catch (e) {
      fail(e);
    }
  });
}
