/**
 * --target pf-freebsd15: pf with `pass in quick … rdr-to …` as FreeBSD 15 reads it (FreeBSD 15 took
 * OpenBSD's translation syntax and still reads the classic `rdr` of --target pf). The same emitter as
 * pf-openbsd without what FreeBSD's pf lacks: table weights (FreeBSD's parse.y has no WEIGHT token), so
 * unequal weights are a probability cascade (rdr-to.ts).
 */
import { rdrToTarget } from '../pf-openbsd/rdr-to.js';

export const pfFreebsd15Target = rdrToTarget({
  target: 'pf-freebsd15',
  title: 'FreeBSD 15 pf, pass … rdr-to translation (no table weights)',
  about: [
    'FreeBSD 15 pf, translation as a filter-rule option (pass in ... rdr-to ...).',
    'Check with `pfctl -nf FILE`, load with `pfctl -f FILE`, or into an anchor',
    '(`pfctl -a lbc -f FILE`) named by `anchor "lbc"` in the main pf.conf. The rules',
    'are `quick`: the first matching rule translates and passes the connection.',
  ],
  tableWeights: false,
});
