/**
 * Offsets in spec text → line and column (1-based; columns count UTF-16 code units, as editors
 * and the JSON reader do). Readers ask mostly in increasing order, so lines are found by walking
 * forward from the last answer; an earlier offset is found by binary search over the line starts
 * seen so far. Line breaks are LF, CRLF and a lone CR (YAML 1.2.2 §5.4).
 */
import type { SourceLocation } from '../diagnostics/diagnostic.js';

export class Positions {
  /** Offsets where lines 1, 2, … start, as far as the text has been walked. */
  private readonly starts: number[] = [0];
  /** The text is walked up to here: every line break before it is in `starts`. */
  private walked = 0;

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {}

  at(offset: number): SourceLocation {
    const o = Math.max(0, Math.min(offset, this.text.length));
    if (o >= this.walked) this.walkTo(o);
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length - 1;
    if (starts[hi] <= o) lo = hi;
    else {
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (starts[mid] <= o) lo = mid;
        else hi = mid - 1;
      }
    }
    return { file: this.file, line: lo + 1, column: o - starts[lo] + 1 };
  }

  private walkTo(offset: number): void {
    const t = this.text;
    let i = this.walked;
    for (; i < offset; i++) {
      const c = t.charCodeAt(i);
      if (c === 10) this.starts.push(i + 1);
      else if (c === 13 && t.charCodeAt(i + 1) !== 10) this.starts.push(i + 1);
    }
    this.walked = i;
  }
}
