// The package as an operator gets it: `npm pack`, then `npm install -g --omit=dev` of the tarball
// into a temporary prefix, then `aca` run from an unrelated directory (no clone, no TypeScript,
// no tsx, no protoc): --version, --help, and a daemon that takes a goal state over gRPC.
import { mkdirSync, mkdtempSync, readdirSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { freePort } from './helpers/agents.js';
import { until } from './helpers/wait.js';

const root = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
const work = mkdtempSync(join(tmpdir(), 'aca-pkg-'));
const prefix = join(work, 'prefix');
const elsewhere = join(work, 'elsewhere');
mkdirSync(elsewhere);
const aca = join(prefix, 'bin', 'aca');
// npm's own environment (when the suite runs under `npm test`) must not steer the install.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_') || k === 'npm_config_nodedir'));

let tarball = '';
let listing: string[] = [];

test.before(async () => {
  const packed = await execa('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, env });
  const info = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  tarball = join(work, info[0]!.filename);
  listing = info[0]!.files.map((f) => f.path);
  await execa('npm', ['install', '-g', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--prefix', prefix, tarball], { cwd: elsewhere, env });
});

test('the tarball holds the compiled code, the generated protobuf code, the systemd unit and the licence; no TypeScript sources, no tests', (t) => {
  for (const f of ['bin/aca.mjs', 'dist/agent/cli.js', 'dist/proto/gen/alcor/goalstate.js', 'dist/dataplane/flow-dataplane.js', 'LICENSE', 'CHANGELOG.md', 'package.json', 'scripts/systemd/aca.service', 'scripts/systemd/aca.yaml', 'docs/install.md']) {
    t.true(listing.includes(f), `${f} is in the package`);
  }
  t.false(listing.some((f) => f.endsWith('.ts')), 'no TypeScript');
  t.false(listing.some((f) => f.startsWith('test/') || f.startsWith('dist/test/') || f.startsWith('dist/scripts/')), 'no tests or benchmarks');
});

test('installed without dev dependencies: no typescript, tsx or protoc beside it', (t) => {
  const modules = readdirSync(join(prefix, 'lib', 'node_modules', pkg.name, 'node_modules'));
  for (const dev of ['typescript', 'tsx', 'protoc', 'ava', 'ts-proto']) t.false(modules.includes(dev), dev);
  t.true(existsSync(aca));
});

test('aca --version, -V and --help from another directory', async (t) => {
  for (const flag of ['--version', '-V']) {
    const r = await execa(aca, [flag], { cwd: elsewhere, env, reject: false });
    t.is(r.exitCode, 0, r.stderr);
    t.is(r.stdout, `aca ${pkg.version}`);
  }
  const help = await execa(aca, ['--help'], { cwd: elsewhere, env, reject: false });
  t.is(help.exitCode, 0, help.stderr);
  t.true(help.stdout.includes(`version ${pkg.version}`));
  t.regex(help.stdout, /agent \[options\]/);
});

test('the installed daemon starts, logs its version, takes a push and shows its version in /v1/info', async (t) => {
  const [g, a] = [await freePort(), await freePort()];
  const daemon = execa(aca, ['agent', '--listen', `127.0.0.1:${g}`, '--admin', `127.0.0.1:${a}`, '--host-ip', '10.0.0.11', '--log-format', 'json'], { cwd: elsewhere, env, reject: false });
  let log = '';
  daemon.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  try {
    await until(() => fetch(`http://127.0.0.1:${a}/readyz`).then((r) => r.status === 200, () => false), 'the installed agent to be ready');
    const push = await execa(aca, ['push', join(root, 'test', 'fixtures', 'ncm-port-create.json'), '--agent', `127.0.0.1:${g}`], { cwd: elsewhere, env, reject: false });
    t.is(push.exitCode, 0, push.stderr);
    t.regex(push.stdout, /PORT\s+P1\s+CREATE\s+SUCCESS/);
    const info = (await (await fetch(`http://127.0.0.1:${a}/v1/info`)).json()) as { version: string; counts: { port: number } };
    t.is(info.version, pkg.version);
    t.is(info.counts.port, 1);
    const ready = log.split('\n').filter((l) => l.includes('"agent ready"')).map((l) => JSON.parse(l) as { version: string });
    t.is(ready[0]?.version, pkg.version);
  } finally {
    daemon.kill('SIGTERM');
    await daemon;
  }
});
