// `aca agent` under systemd, as far as a test can be systemd: the notify protocol spoken to a
// datagram socket the test binds ($NOTIFY_SOCKET), the watchdog ($WATCHDOG_USEC), SIGHUP
// re-reading the config file, SIGTERM stopping gracefully (a stream in flight still gets its
// reply). The agent is the compiled bin/aca.mjs in a child process.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { SdNotify } from '../agent/systemd.js';
import { silentLogger } from '../agent/log.js';
import { makeClient } from '../agent/push.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import type { GoalStateOperationReply } from '../proto/gen/alcor/goalstateprovisioner.js';
import { freePort, portState, subnetState } from './helpers/agents.js';
import { NotifySocket } from './helpers/notify-socket.js';
import { until } from './helpers/wait.js';

const aca = new URL('../bin/aca.mjs', import.meta.url).pathname;

test('READY once serving, WATCHDOG pings, RELOADING/READY around SIGHUP, STOPPING and a graceful stop on SIGTERM', async (t) => {
  const sock = new NotifySocket();
  const [g, a] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'aca-systemd-'));
  const config = join(dir, 'aca.yaml');
  writeFileSync(config, `listen: 127.0.0.1:${g}\nadmin: 127.0.0.1:${a}\nhost-ip: 10.0.0.11\nlog-format: json\nlog-level: info\n`);
  const child = execa(process.execPath, [aca, 'agent', '--config', config], {
    reject: false, env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000' },
  });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  try {
    const ready = await sock.next((m) => m.READY === '1', 'READY=1');
    // READY comes after gRPC listens: the admin API says ready and the status names the port.
    t.is((await fetch(`http://127.0.0.1:${a}/readyz`)).status, 200);
    t.regex(sock.messages[ready]!.STATUS ?? '', new RegExp(`serving: 0 ports, .*gRPC :${g}`));
    t.is(sock.messages[ready]!.MAINPID, String(child.pid));
    t.true(sock.messages.slice(0, ready).some((m) => (m.STATUS ?? '').startsWith('starting')), 'a starting STATUS before READY');
    // Half of WATCHDOG_USEC: pings keep coming while healthy.
    const w1 = await sock.next((m) => m.WATCHDOG === '1', 'a first WATCHDOG=1', ready);
    await sock.next((m) => m.WATCHDOG === '1', 'a second WATCHDOG=1', w1 + 1);

    // A stream opened before SIGTERM: its first message is answered now, its second after
    // STOPPING=1, and the stream still completes.
    const client = makeClient(`127.0.0.1:${g}`);
    const replies: GoalStateOperationReply[] = [];
    const call = client.pushGoalStatesStream();
    const ended = new Promise<Error | null>((resolve) => { call.on('end', () => resolve(null)); call.on('error', (e: Error) => resolve(e)); });
    call.on('data', (r: GoalStateOperationReply) => replies.push(r));
    call.write(GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') } }));
    await until(() => replies.length === 1, 'the first reply');

    // SIGHUP: the changed file is read again; the log level applies live, the listen address
    // needs a restart and says so.
    writeFileSync(config, `listen: 127.0.0.1:${await freePort()}\nadmin: 127.0.0.1:${a}\nhost-ip: 10.0.0.11\nlog-format: json\nlog-level: debug\ndhcp-domain: example.org\n`);
    const before = sock.messages.length;
    child.kill('SIGHUP');
    const reloading = await sock.next((m) => m.RELOADING === '1', 'RELOADING=1', before);
    t.regex(sock.messages[reloading]!.MONOTONIC_USEC ?? '', /^\d+$/);
    const reReady = await sock.next((m) => m.READY === '1', 'READY=1 after the reload', reloading);
    t.regex(sock.messages[reReady]!.STATUS ?? '', /reloaded; needs a restart for: listen/);
    await until(() => log.includes('"configuration reloaded"'), 'the reload log line');
    const line = JSON.parse(log.split('\n').find((l) => l.includes('"configuration reloaded"'))!) as { applied: string[]; needsRestart: string[] };
    t.deepEqual(line.applied.sort(), ['dhcpDomain', 'logLevel']);
    t.deepEqual(line.needsRestart, ['listen']);
    // debug now logs: the agent's own sd_notify lines appear at debug level.
    await until(() => log.includes('"message":"sd_notify"'), 'a debug line after the reload');

    // A broken file on SIGHUP: the running configuration stays; READY=1 again with the reason.
    writeFileSync(config, 'log-level: loud\n');
    const beforeBad = sock.messages.length;
    child.kill('SIGHUP');
    const badReady = await sock.next((m) => m.READY === '1', 'READY=1 after a failed reload', beforeBad);
    t.regex(sock.messages[badReady]!.STATUS ?? '', /reload failed: logLevel: "loud" is not one of/);

    const beforeStop = sock.messages.length;
    child.kill('SIGTERM');
    const stopping = await sock.next((m) => m.STOPPING === '1', 'STOPPING=1', beforeStop);
    t.regex(sock.messages[stopping]!.STATUS ?? '', /flows stay on the switch/);
    call.write(GoalStateV2.fromPartial({ portStates: { P: portState('P') } }));
    call.end();
    t.is(await ended, null, 'the stream in flight completed');
    t.is(replies.length, 2);
    t.is(replies[1]!.operationStatuses[0]!.resourceId, 'P');
    client.close();
    const r = await child;
    t.is(r.exitCode, 0, log);
    t.regex(log, /"message":"agent stopped"/);
    // Nothing after STOPPING but silence: no READY or WATCHDOG once stopping.
    t.false(sock.messages.slice(stopping + 1).some((m) => m.READY === '1' || m.WATCHDOG === '1'));
  } finally {
    child.kill('SIGKILL');
    sock.close();
  }
});

test('the watchdog withholds its pings while the agent is unhealthy', async (t) => {
  const sock = new NotifySocket();
  const sd = new SdNotify({ NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '20000' }, silentLogger());
  t.is(sd.watchdogMs, 10);
  let ticks = 0;
  let healthyFrom = Infinity;
  sd.startWatchdog(() => {
    ticks += 1;
    if (ticks === 5) healthyFrom = ticks;
    return ticks >= 5 ? { ok: true } : { ok: false, reason: 'stuck' };
  }, () => String(ticks));
  try {
    const first = await sock.next((m) => m.WATCHDOG === '1', 'a ping once healthy');
    // Every ping carries the tick that sent it: none was sent while unhealthy.
    t.true(Number(sock.messages[first]!.STATUS) >= healthyFrom);
    t.true(sock.messages.every((m) => Number(m.STATUS) >= 5));
  } finally {
    sd.close();
    sock.close();
  }
});

test('without NOTIFY_SOCKET nothing is sent; WATCHDOG_PID of another process disables the watchdog; abstract sockets are refused with a warning', async (t) => {
  const none = new SdNotify({}, silentLogger());
  t.false(none.enabled);
  t.false(await none.notify({ READY: 1 }));
  t.is(new SdNotify({ NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' }, silentLogger(), 4242).watchdogMs, null);
  t.is(new SdNotify({ NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '4242' }, silentLogger(), 4242).watchdogMs, 500);
  const warnings: string[] = [];
  const abstract = new SdNotify({ NOTIFY_SOCKET: '@/org/systemd/notify' }, { warn: (m) => warnings.push(m), debug: () => undefined });
  t.false(abstract.enabled);
  t.regex(warnings[0] ?? '', /abstract socket address/);
});

const unit = new URL('../scripts/systemd/aca.service', import.meta.url).pathname;
const example = new URL('../scripts/systemd/aca.yaml', import.meta.url).pathname;

test('the unit: Type=notify, a watchdog, reload by SIGHUP, a restart policy, no capabilities, the state directory', (t) => {
  const text = readFileSync(unit, 'utf8');
  const settings = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) settings.set(m[1]!, [...(settings.get(m[1]!) ?? []), m[2]!]);
  }
  const one = (k: string): string | undefined => settings.get(k)?.[0];
  t.is(one('Type'), 'notify');
  t.regex(one('WatchdogSec') ?? '', /^\d+s$/);
  t.is(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  t.is(one('Restart'), 'on-failure');
  t.regex(one('ExecStart') ?? '', /aca agent --config \/etc\/aca\/aca\.yaml --log-format journal$/);
  t.is(one('CapabilityBoundingSet'), '');
  t.is(one('StateDirectory'), 'aca');
  t.is(one('NoNewPrivileges'), 'yes');
  t.false(settings.has('PrivateNetwork'), 'the host network');
  t.false(settings.has('MemoryDenyWriteExecute'), "V8's JIT");
});

test('systemd-analyze verify accepts the unit', async (t) => {
  const which = await execa('systemd-analyze', ['--version'], { reject: false });
  if (which.exitCode !== 0) {
    console.log('skipped: systemd-analyze is not installed here (the unit is checked by the test above only)');
    t.pass();
    return;
  }
  // verify wants ExecStart's binary to exist: check a copy that runs /bin/true.
  const dir = mkdtempSync(join(tmpdir(), 'aca-unit-'));
  writeFileSync(join(dir, 'aca.service'), readFileSync(unit, 'utf8').replace('/usr/local/bin/aca', '/bin/true'));
  const r = await execa('systemd-analyze', ['verify', join(dir, 'aca.service')], { reject: false });
  t.is(r.exitCode, 0, r.stderr);
  t.notRegex(r.stderr, /Unknown (key|section)|Failed to parse/, r.stderr);
});

test('the example configuration is valid as shipped', async (t) => {
  const r = await execa(process.execPath, [aca, 'agent', '--config', example, '--print-config', '--host-ip', '10.0.0.11'], { reject: false });
  t.is(r.exitCode, 0, r.stderr);
  const c = JSON.parse(r.stdout) as Record<string, unknown>;
  t.is(c.dataplane, 'ovs');
  t.is(c.stateDir, '/var/lib/aca');
  t.is(c.listen, '0.0.0.0:50001');
});
