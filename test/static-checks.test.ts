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

test('imports point one way: ovs-sim and packets import nothing of ours; agent and dataplane reach the simulator only through the sim backend and ovs-sim/index.ts; ovs-sim\'s layers import only the layers below them', async (t) => {
  const { readdirSync, readFileSync: read } = await import('node:fs');
  const files = (dir: string): string[] => readdirSync(new URL(`../${dir}/`, import.meta.url), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts')).map((f) => `${dir}/${f}`);
  const importsOf = (file: string): string[] => [...read(new URL(`../${file}`, import.meta.url), 'utf8').matchAll(/^(?:import|export)[^;]*?from '([^']+)'|import\('([^']+)'\)/gm)].map((m) => (m[1] ?? m[2])!);
  const resolved = (file: string, i: string): string => new URL(i, new URL(`../${file}`, import.meta.url)).pathname.slice(root.length);
  const problems: string[] = [];
  for (const f of [...files('ovs-sim'), ...files('packets')]) {
    for (const i of importsOf(f)) if (i.startsWith('.') && !/^(ovs-sim|packets)\//.test(resolved(f, i))) problems.push(`${f} imports ${i}`);
  }
  // ovs-sim's folders, bottom up: a file imports from its own folder and from lower ranks only.
  const RANK: Record<string, number> = { base: 0, packet: 1, openflow: 1, switch: 2, translate: 3, tools: 4, fabric: 4, '': 5 };
  const layer = (path: string): string => /^ovs-sim\/([a-z]+)\//.exec(path)?.[1] ?? '';
  for (const f of files('ovs-sim')) {
    for (const i of importsOf(f)) {
      const to = resolved(f, i);
      if (!to.startsWith('ovs-sim/')) continue;
      const [a, b] = [layer(f), layer(to)];
      if (!(a in RANK)) problems.push(`${f}: ovs-sim/${a}/ is no known layer`);
      else if (a !== b && (RANK[b]! > RANK[a]! || (RANK[b] === RANK[a] && a !== ''))) problems.push(`${f} (${a || 'root'}) imports ${i} (${b || 'root'}), a layer at or above its own`);
    }
  }
  for (const f of [...files('agent'), ...files('dataplane')]) {
    // Only the sim backend (sim.ts) reaches the simulator, and only through its public API.
    const simBackend = f === 'dataplane/backends/sim.ts';
    for (const i of importsOf(f)) if (i.includes('ovs-sim/') && !(simBackend && /ovs-sim\/index\.js$/.test(i))) problems.push(`${f} imports ${i}`);
  }
  // Scripts and tests of other parts use the public API too (ovs-sim's own tests may look inside).
  for (const f of [...files('scripts'), ...files('test').filter((x) => !/^test\/(ovs-sim-|diff\/)/.test(x))]) {
    for (const i of importsOf(f)) if (/ovs-sim\//.test(i) && !/ovs-sim\/index\.js$/.test(i)) problems.push(`${f} imports ${i} (use ovs-sim/index.js)`);
  }
  t.deepEqual(problems, []);
});
