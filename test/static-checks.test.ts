// The lint and the type check are part of the test suite: typescript-eslint with type
// information over the whole tree, and tsc --noEmit in strict mode.
import test from 'ava';
import { execa } from 'execa';
import { pipelineMarkdown } from '../dataplane/pipeline-doc.js';
import { readFileSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const bin = (name: string): string => new URL(`../node_modules/.bin/${name}`, import.meta.url).pathname;

test('eslint (typescript-eslint, type-checked rules) reports nothing', async (t) => {
  const r = await execa(bin('eslint'), ['.'], { cwd: root, reject: false });
  t.is(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
});

test('tsc --noEmit (strict) reports nothing', async (t) => {
  const r = await execa(bin('tsc'), ['--noEmit', '-p', '.'], { cwd: root, reject: false });
  t.is(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
});

test('docs/pipeline.md is what dataplane/pipeline.ts generates (npm run gen:docs)', (t) => {
  t.is(readFileSync(new URL('../docs/pipeline.md', import.meta.url), 'utf8'), pipelineMarkdown());
});

test('imports point one way: ovs-sim and packets import nothing of ours; agent and dataplane reach the simulator only through the sim backend and its public API', async (t) => {
  const { readdirSync, readFileSync: read } = await import('node:fs');
  const files = (dir: string): string[] => readdirSync(new URL(`../${dir}/`, import.meta.url), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts')).map((f) => `${dir}/${f}`);
  const importsOf = (file: string): string[] => [...read(new URL(`../${file}`, import.meta.url), 'utf8').matchAll(/^(?:import|export)[^;]*?from '([^']+)'/gm)].map((m) => m[1]!);
  const problems: string[] = [];
  for (const f of [...files('ovs-sim'), ...files('packets')]) {
    for (const i of importsOf(f)) if (i.startsWith('.') && !new URL(i, new URL(`../${f}`, import.meta.url)).pathname.match(/\/(ovs-sim|packets)\//)) problems.push(`${f} imports ${i}`);
  }
  for (const f of [...files('agent'), ...files('dataplane')]) {
    // The sim backend (sim.ts and its compiler) reaches the simulator through its public API only.
    const simBackend = /^dataplane\/backends\/sim(-compile)?\.ts$/.test(f);
    for (const i of importsOf(f)) if (i.includes('ovs-sim/') && !(simBackend && i.endsWith('ovs-sim/api.js'))) problems.push(`${f} imports ${i}`);
  }
  t.deepEqual(problems, []);
});
