#!/usr/bin/env node
// `npm test`: runs every ava test (TAP reporter) and ends with the plain line
// `N passed, M failed[, K skipped]` that CI reads. Exit code is ava's.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
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
