/**
 * --target pf-openbsd: pf with `pass in quick … rdr-to …` as OpenBSD reads it, with the table weights
 * and random table pools of OpenBSD's pf (rdr-to.ts says what each mode becomes and why).
 */
import { rdrToTarget } from './rdr-to.js';

export const pfOpenbsdTarget = rdrToTarget({
  target: 'pf-openbsd',
  title: 'OpenBSD pf, pass … rdr-to translation, weighted round-robin tables',
  about: [
    'OpenBSD pf, translation as a filter-rule option (pass in ... rdr-to ...).',
    'Check with `pfctl -nf FILE`, load with `pfctl -f FILE`, or into an anchor',
    '(`pfctl -a lbc -f FILE`) named by `anchor "lbc"` in the main pf.conf. The rules',
    'are `quick`: the first matching rule translates and passes the connection.',
    'Tables may carry a weight per entry, which FreeBSD does not read: use',
    '--target pf-freebsd15 or --target pf there.',
  ],
  tableWeights: true,
});
