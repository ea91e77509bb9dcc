#!/usr/bin/env node
// `npm test`: runs every ava test (TAP reporter) and ends with the plain line
// `N passed, M failed[, K skipped]` that CI reads. Exit code is ava's. Builds dist/ first.
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// ava runs the .ts tests through tsx, but the tests that spawn `bin/aca.mjs` run the compiled
// dist/: build it first, so it is what the sources say now.
const build = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  process.stdout.write('\nnpm test: the build (npm run build) failed; no test was run\n');
  process.exit(1);
}
const ava = join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs');
const child = spawn(process.execPath, [ava, '--tap', ...process.argv.slice(2)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
const counts = { pass: 0, fail: 0, skip: 0, todo: 0 };
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const text = tail + chunk.toString('utf8');
  const lines = text.split('\n');
  tail = lines.pop() ?? '';
  for (const line of lines) count(line);
});
function count(line) {
  const m = /^# (pass|fail|skip|todo) (\d+)\s*$/.exec(line);
  if (m) counts[m[1]] = Number(m[2]);
}
child.on('close', (code) => {
  count(tail);
  // ava's TAP counts a crashed test file as a failure only through its exit code; make it visible.
  const failed = counts.fail === 0 && code !== 0 ? 1 : counts.fail;
  process.stdout.write(`\n${counts.pass} passed, ${failed} failed${counts.skip > 0 ? `, ${counts.skip} skipped` : ''}\n`);
  process.exit(code ?? 1);
});
