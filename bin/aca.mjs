#!/usr/bin/env node
// The `aca` command: runs the TypeScript sources through tsx, so a clone needs no build step.
import v8 from 'node:v8';
import { register } from 'tsx/esm/api';

// A larger young generation: a controller's state can hold a million neighbors, whose objects
// would otherwise be copied into the old generation in many small scavenges.
v8.setFlagsFromString('--max-semi-space-size=32');
v8.setFlagsFromString('--min-semi-space-size=16');

register();
await import('../agent/cli.ts');
