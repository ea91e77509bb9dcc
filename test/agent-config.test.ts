// Configuration: defaults < file (JSON or YAML) < environment < flags, and clear errors.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ConfigError, parseSize, readConfigFile, readEnv, resolveConfig } from '../agent/config.js';

const dir = mkdtempSync(join(tmpdir(), 'aca-config-'));

test('defaults', (t) => {
  const c = resolveConfig({ hostIp: '10.0.0.11' });
  t.is(c.listen, '0.0.0.0:50001');
  t.is(c.admin, '127.0.0.1:50080');
  t.is(c.dataplane, 'sim');
  t.is(c.maxMessageBytes, 512 * 1024 * 1024);
  t.is(c.controller, '');
  t.regex(resolveConfig({}).hostIp, /^\d+\.\d+\.\d+\.\d+$/);
});

test('precedence: file < env < flags, JSON and YAML files, kebab-case keys', (t) => {
  const yaml = join(dir, 'aca.yaml');
  writeFileSync(yaml, 'listen: 127.0.0.1:6001\nhost-ip: 10.9.9.9\nlog-level: debug\nmax-message-bytes: 64MB\n');
  const json = join(dir, 'aca.json');
  writeFileSync(json, JSON.stringify({ listen: '127.0.0.1:7001', logFormat: 'json' }));
  const env = readEnv({ ACA_LISTEN: '127.0.0.1:6002', ACA_LOG_LEVEL: 'warn' });
  const c = resolveConfig(readConfigFile(yaml), env, { logLevel: 'error' });
  t.is(c.listen, '127.0.0.1:6002');
  t.is(c.hostIp, '10.9.9.9');
  t.is(c.logLevel, 'error');
  t.is(c.maxMessageBytes, 64 * 1024 * 1024);
  const j = resolveConfig(readConfigFile(json), {}, { hostIp: '10.0.0.1' });
  t.is(j.listen, '127.0.0.1:7001');
  t.is(j.logFormat, 'json');
});

test('bad values are refused with a reason', (t) => {
  t.throws(() => resolveConfig({ hostIp: '10.0.0.300' }), { instanceOf: ConfigError, message: /hostIp/ });
  t.throws(() => resolveConfig({ listen: 'nope' }), { instanceOf: ConfigError, message: /listen: "nope" is not host:port/ });
  t.throws(() => resolveConfig({ dataplane: 'magic' }), { instanceOf: ConfigError, message: /dataplane: "magic" is not one of/ });
  t.throws(() => resolveConfig({ logFormat: 'xml' }), { instanceOf: ConfigError });
  t.throws(() => resolveConfig({ ovsDb: 'ftp://x' }), { instanceOf: ConfigError, message: /ovsDb/ });
  t.throws(() => resolveConfig({ dhcpDns: '8.8.8.8,bad' }), { instanceOf: ConfigError, message: /dhcpDns/ });
  const unknown = join(dir, 'unknown.json');
  writeFileSync(unknown, '{"lisen": "x"}');
  t.throws(() => readConfigFile(unknown), { instanceOf: ConfigError, message: /unknown setting "lisen"/ });
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, '{');
  t.throws(() => readConfigFile(broken), { instanceOf: ConfigError, message: /not valid JSON/ });
  t.throws(() => readConfigFile(join(dir, 'missing.yaml')), { instanceOf: ConfigError, message: /cannot read/ });
});

test('sizes', (t) => {
  t.is(parseSize('4096'), 4096);
  t.is(parseSize('512MB'), 512 * 1024 * 1024);
  t.is(parseSize('1GiB'), 1024 ** 3);
  t.throws(() => parseSize('lots'), { instanceOf: ConfigError });
});
