/** The README's capability matrix is generated from the targets' own tables; this keeps the two in step. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { matrixCell, matrixMarkdown } from '../../src/cli/matrix.js';
import { TARGETS } from '../../src/index.js';

describe('README', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');

  it('shows the capability matrix the targets declare', () => {
    const m = /<!-- matrix:begin -->\n([\s\S]*?)<!-- matrix:end -->/.exec(readme);
    expect(m, 'matrix markers in README.md').not.toBeNull();
    expect(m![1]).toBe(matrixMarkdown([...TARGETS.values()]));
  });

  it('matrix cells agree with what the seeds need', () => {
    const t = (n: string) => TARGETS.get(n)!;
    expect(matrixCell(t('pf'), 'backend.ports-differ')).toBe('no');
    expect(matrixCell(t('ipnat'), 'backend.ports-differ')).toBe('yes');
    expect(matrixCell(t('pf-openbsd'), 'backend.ports-differ')).toBe('approx');
    expect(matrixCell(t('iptables'), 'sticky')).toBe('yes');
    expect(matrixCell(t('ip6tables'), 'family.ipv6')).toBe('yes');
    expect(matrixCell(t('iptables'), 'family.ipv6')).toBe('n/a');
  });
});
