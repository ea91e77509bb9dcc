// Host discovery with netlink, inside network namespaces the test creates (root and `ip netns`
// needed; skipped with the reason printed otherwise): the default route's interface gives the
// host IP and the underlay MTU, --underlay-interface picks another, flags override, and a host
// without a default route falls back with a warning. Also: goal states that place our own
// ports on another host IP are warned about and counted in /v1/info.
import { PassThrough } from 'node:stream';
import test from 'ava';
import { execa } from 'execa';
import { resolveConfig } from '../agent/config.js';
import { startAgent } from '../agent/daemon.js';
import { createLogger } from '../agent/log.js';
import { readGoalStateFile } from '../agent/push.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { pushOne } from './helpers/agents.js';
import { until } from './helpers/wait.js';

const aca = new URL('../bin/aca.mjs', import.meta.url).pathname;
const ns1 = `aca-nl1-${process.pid}`;
const ns2 = `aca-nl2-${process.pid}`;
let skip: string | null = null;

const ip = (args: string[]) => execa('ip', args);
const inNs = (ns: string, args: string[]) => execa('ip', ['netns', 'exec', ns, process.execPath, aca, ...args], { reject: false });

test.before(async () => {
  if (process.getuid?.() !== 0) {
    skip = 'not root: network namespaces cannot be made';
    return;
  }
  try {
    await ip(['netns', 'add', ns1]);
    await ip(['netns', 'add', ns2]);
  } catch (e) {
    skip = `ip netns add failed: ${(e as Error).message.split('\n')[0]}`;
    return;
  }
  // ns1: a veth pair; u0 holds the default route (MTU 9000), u1 another network (MTU 1450).
  await ip(['-n', ns1, 'link', 'set', 'lo', 'up']);
  await ip(['-n', ns1, 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u1']);
  await ip(['-n', ns1, 'link', 'set', 'u0', 'mtu', '9000']);
  await ip(['-n', ns1, 'link', 'set', 'u1', 'mtu', '1450']);
  await ip(['-n', ns1, 'addr', 'add', '10.77.0.5/24', 'dev', 'u0']);
  await ip(['-n', ns1, 'addr', 'add', '10.88.0.7/24', 'dev', 'u1']);
  await ip(['-n', ns1, 'link', 'set', 'u0', 'up']);
  await ip(['-n', ns1, 'link', 'set', 'u1', 'up']);
  await ip(['-n', ns1, 'route', 'add', 'default', 'via', '10.77.0.1', 'dev', 'u0']);
  // ns2: loopback only, no default route.
  await ip(['-n', ns2, 'link', 'set', 'lo', 'up']);
});

test.after.always(async () => {
  if (skip) return;
  await execa('ip', ['netns', 'del', ns1], { reject: false });
  await execa('ip', ['netns', 'del', ns2], { reject: false });
});

function skipped(t: { pass(): void }): boolean {
  if (!skip) return false;
  console.log(`skipped: ${skip}`);
  t.pass();
  return true;
}

const printed = async (ns: string, args: string[]): Promise<Record<string, unknown>> => {
  const r = await inNs(ns, ['agent', '--print-config', ...args]);
  if (r.exitCode !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
};

test.serial('the default route\'s interface gives the host IP and the underlay MTU', async (t) => {
  if (skipped(t)) return;
  const c = await printed(ns1, []);
  t.is(c.hostIp, '10.77.0.5');
  t.is(c.underlayMtu, 9000);
});

test.serial('--underlay-interface picks another interface; --host-ip and --underlay-mtu override; an unknown interface is an error', async (t) => {
  if (skipped(t)) return;
  const u1 = await printed(ns1, ['--underlay-interface', 'u1']);
  t.is(u1.hostIp, '10.88.0.7');
  t.is(u1.underlayMtu, 1450);
  const given = await printed(ns1, ['--host-ip', '10.99.0.1', '--underlay-mtu', '1600']);
  t.is(given.hostIp, '10.99.0.1');
  t.is(given.underlayMtu, 1600);
  const mtuOnly = await printed(ns1, ['--underlay-mtu', '1600']);
  t.is(mtuOnly.hostIp, '10.77.0.5');
  t.is(mtuOnly.underlayMtu, 1600);
  const bad = await inNs(ns1, ['agent', '--print-config', '--underlay-interface', 'nosuch0']);
  t.is(bad.exitCode, 2);
  t.regex(bad.stderr, /underlayInterface: no interface nosuch0 \(interfaces: lo, u1, u0\)|underlayInterface: no interface nosuch0 \(interfaces: .*u0.*\)/);
});

test.serial('the running agent logs what it found; without a default route it warns and falls back', async (t) => {
  if (skipped(t)) return;
  const lines = (log: string): Record<string, unknown>[] => log.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const run = async (ns: string): Promise<Record<string, unknown>[]> => {
    const child = execa('ip', ['netns', 'exec', ns, process.execPath, aca, 'agent', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--log-format', 'json'], { reject: false });
    let log = '';
    child.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
    try {
      await until(() => log.includes('"agent ready"'), `the agent in ${ns} to be ready`);
    } finally {
      child.kill('SIGTERM');
      await child;
    }
    return lines(log);
  };
  const found = (await run(ns1)).find((l) => l.message === 'underlay found with netlink');
  t.like(found, { level: 'info', interface: 'u0', ip: '10.77.0.5', mtu: 9000, via: 'default-route' });
  const logs2 = await run(ns2);
  const failed = logs2.find((l) => typeof l.message === 'string' && l.message.startsWith('host discovery with netlink failed'));
  t.is(failed?.level, 'warn');
  t.regex(String(failed?.error), /no IPv4 default route/);
  t.like(logs2.find((l) => l.message === 'agent ready'), { hostIp: '127.0.0.1' });
});

test('goal states that place our own ports on another host IP are warned about and counted', async (t) => {
  const out = new PassThrough();
  let log = '';
  out.on('data', (d: Buffer) => { log += d.toString(); });
  const agent = await startAgent(resolveConfig({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: '192.0.2.2', dataplane: 'dry-run' }), createLogger('warn', 'json', out));
  try {
    // NCM's state for host 10.0.0.11: port P1 and the neighbor entry of P1 on 10.0.0.11.
    await pushOne(`127.0.0.1:${agent.grpcPort}`, readGoalStateFile(new URL('./fixtures/ncm-port-create.json', import.meta.url).pathname, GoalStateV2));
    t.regex(log, /goal states place this host's own ports on 10\.0\.0\.11, but this agent's host IP is 192\.0\.2\.2/);
    const info = (await (await fetch(`http://127.0.0.1:${agent.adminPort}/v1/info`)).json()) as { hostIpMismatches: { resources: number; lastIp: string } };
    t.is(info.hostIpMismatches.lastIp, '10.0.0.11');
    t.true(info.hostIpMismatches.resources >= 1);
  } finally {
    await agent.stop();
  }
  // The right host IP: no warning.
  const quiet = new PassThrough();
  let quietLog = '';
  quiet.on('data', (d: Buffer) => { quietLog += d.toString(); });
  const right = await startAgent(resolveConfig({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: '10.0.0.11', dataplane: 'dry-run' }), createLogger('warn', 'json', quiet));
  try {
    await pushOne(`127.0.0.1:${right.grpcPort}`, readGoalStateFile(new URL('./fixtures/ncm-port-create.json', import.meta.url).pathname, GoalStateV2));
    t.notRegex(quietLog, /place this host's own ports/);
  } finally {
    await right.stop();
  }
});
