#!/usr/bin/env node
// `npm run bench:startup`: how long the compiled `aca` takes to start, as an operator runs it
// (`node bin/aca.mjs`, a new process each time, argument arrays, no shell): `aca --version` and
// `aca --help` (median and worst of N runs, beside the target of 0.5 s), and `aca agent` from
// exec until GET /readyz answers 200 (simulated dataplane, loopback).
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const aca = join(root, 'bin', 'aca.mjs');
const runs = Number(process.argv.find((a) => a.startsWith('--runs='))?.slice(7) ?? 15);
const TARGET_S = 0.5;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function timeCommand(args) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [aca, ...args], { encoding: 'utf8' });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`aca ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    times.push(s);
  }
  return { median: median(times), max: Math.max(...times) };
}
const freePort = () => new Promise((resolve) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});
async function agentReady() {
  const [g, a] = [await freePort(), await freePort()];
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [aca, 'agent', '--listen', `127.0.0.1:${g}`, '--admin', `127.0.0.1:${a}`, '--host-ip', '10.0.0.11', '--log-level', 'warn'], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 6000; i++) {
      const ok = await fetch(`http://127.0.0.1:${a}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) return Number(process.hrtime.bigint() - t0) / 1e9;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error('the agent did not become ready');
  } finally {
    child.kill('SIGTERM');
  }
}

const fmt = (s) => `${s.toFixed(3)} s`;
console.log(`aca start-up, compiled dist/, ${runs} runs each, Node ${process.version}`);
for (const args of [['--version'], ['--help']]) {
  const r = timeCommand(args);
  console.log(`  aca ${args.join(' ').padEnd(10)} median ${fmt(r.median)}  worst ${fmt(r.max)}  target <= ${TARGET_S} s  ${r.median <= TARGET_S ? 'met' : 'MISSED'}`);
}
const ready = [];
for (let i = 0; i < 3; i++) ready.push(await agentReady());
console.log(`  aca agent    exec to /readyz 200: median ${fmt(median(ready))}  worst ${fmt(Math.max(...ready))}  (sim dataplane, no target)`);
