#!/usr/bin/env node
// The `aca` command: runs the TypeScript sources through tsx, so a clone needs no build step.
import { register } from 'tsx/esm/api';

register();
await import('../agent/cli.ts');
