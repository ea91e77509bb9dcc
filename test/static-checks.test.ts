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
