#!/usr/bin/env node
// `npm run build`: compiles the TypeScript (agent/, dataplane/, ovs-sim/, proto/gen/, scripts/ and
// the test helpers the scripts use) to dist/ with tsc and tsconfig.build.json. Incremental: with
// nothing changed it takes about 2 s. On a type error nothing is emitted (noEmitOnError), so dist/
// is never half new. `bin/aca.mjs`, `bin/ovs-sim.mjs`, `npm start`, the demo and the benchmarks
// run dist/; `npm install` (postinstall) and `npm test` build it first.
// `--if-installed`: skip when TypeScript is not installed (an install without devDependencies
// keeps the dist/ it shipped with).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
if (!existsSync(tsc)) {
  const optional = process.argv.includes('--if-installed');
  console.error(`build: typescript is not installed (npm install)${optional ? '; skipping the build' : ''}`);
  process.exit(optional ? 0 : 1);
}
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) console.error('build: tsc failed; dist/ was not updated');
process.exit(r.status ?? 1);
