// The agent's version: the `version` of the package.json it ships in. Read once, from the
// package.json above this module (agent/ in a clone run through tsx, dist/agent/ when compiled).
import { readFileSync } from 'node:fs';

export const PACKAGE_NAME = 'alcor-agent-ts';

function readVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not there: try the next level up
    }
  }
  return '0.0.0-unknown';
}

export const VERSION = readVersion();
