// npm's prepare step: build dist/ from src/ when TypeScript is installed (a clone with its dev
// dependencies). A production install (`npm ci --omit=dev`) has no compiler; the package's
// published dist/ (built by prepack) is what runs then, so there is nothing to do.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  process.stderr.write('lbc: TypeScript is not installed (production install); not building dist/\n');
  process.exit(0);
}
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
