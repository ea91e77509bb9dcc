#!/usr/bin/env node
// Generates proto/gen/*.ts from proto/alcor/*.proto with ts-proto and the protoc binary that the
// npm `protoc` package ships: no network beyond npm. Runs on `npm install` (postinstall).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const protoc = join(root, 'node_modules', 'protoc', 'protoc.cjs');
const plugin = join(root, 'node_modules', '.bin', 'protoc-gen-ts_proto');
if (!existsSync(protoc) || !existsSync(plugin)) {
  // A production install without devDependencies keeps the generated code it shipped with.
  console.error('gen-proto: protoc or ts-proto not installed; skipping generation');
  process.exit(0);
}
const out = join(root, 'proto', 'gen');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const files = readdirSync(join(root, 'proto', 'alcor'))
  .filter((f) => f.endsWith('.proto'))
  .map((f) => `alcor/${f}`);
const opts = [
  'outputServices=grpc-js',
  'esModuleInterop=true',
  'importSuffix=.js',
  'forceLong=string',
  'oneof=unions-value',
  'env=node',
  'useExactTypes=false',
].join(',');
execFileSync(process.execPath, [
  protoc,
  `--plugin=protoc-gen-ts_proto=${plugin}`,
  `--ts_proto_out=${out}`,
  `--ts_proto_opt=${opts}`,
  '-I', join(root, 'proto'),
  ...files,
], { stdio: 'inherit' });
console.error(`gen-proto: generated ${files.length} files into proto/gen`);
