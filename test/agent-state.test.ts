// Restart without loss, the agent's half (issue 8 item 3): the store is saved in the state dir
// before a reply says SUCCESS, and a new agent on that dir starts with it (every kind, deletes,
// the tombstones that keep a late older CREATE OUT_OF_ORDER). Agents stopped, dropped without a
// stop, and killed with SIGKILL in the middle of a write; a state cut short, corrupt or
// unreadable; a full disk (a real tmpfs, where the machine lets us mount one); persistence off.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import test from 'ava';
import { execa } from 'execa';
import { OperationStatus, OperationType, RequestType } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import type { GoalStateOperationReply } from '../proto/gen/alcor/goalstateprovisioner.js';
import { type AgentConfig, resolveConfig } from '../agent/config.js';
import { type Agent, startAgent } from '../agent/daemon.js';
import { createLogger, silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';
import { SNAPSHOT_FILE } from '../agent/state-dir.js';
import { HOST_IP, bigState, neighborState, portState, pushOne, subnetState } from './helpers/agents.js';
import { fakeNcm } from './helpers/fake-ncm.js';
import { until } from './helpers/wait.js';

const cli = new URL('../agent/cli.ts', import.meta.url).pathname;
/** tsx's loader by URL, so that a child in another working directory finds it. */
const tsx = import.meta.resolve('tsx');
const root = new URL('..', import.meta.url).pathname;
const fixture = (name: string): GoalStateV2 =>
  GoalStateV2.fromJSON(JSON.parse(readFileSync(new URL(`./fixtures/ncm-sequence/${name}`, import.meta.url), 'utf8')));
const tempDir = (): string => mkdtempSync(join(tmpdir(), 'aca-state-'));

// A full disk, for real: a small tmpfs (needs root and mount; skipped with a message elsewhere).
const exec = promisify(execFile);
const tmpfs = join(tmpdir(), `aca-state-tmpfs-${process.pid}`);
const mounted = await (async () => {
  if (process.getuid?.() !== 0) return 'not root';
  try {
    mkdirSync(tmpfs, { recursive: true });
    await exec('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', tmpfs]);
    return null;
  } catch (e) {
    rmSync(tmpfs, { recursive: true, force: true });
    return (e as Error).message.split('\n')[0];
  }
})();
if (mounted) console.log(`agent-state: disk-full test skipped: cannot mount a tmpfs (${mounted})`);
test.after.always(async () => {
  if (mounted === null) {
    await exec('umount', [tmpfs]).catch(() => undefined);
    rmSync(tmpfs, { recursive: true, force: true });
  }
});


interface LogLine { level: string; message: string; [k: string]: unknown }

/** A logger whose JSON lines a test can read. */
function capturingLogger(): { log: ReturnType<typeof createLogger>; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  return { log: createLogger('debug', 'json', stream), lines };
}

function start(stateDir: string, log = silentLogger(), over: Partial<Record<keyof AgentConfig, string>> = {}): Promise<Agent> {
  return startAgent(resolveConfig({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: HOST_IP, dataplane: 'dry-run', stateDir, ...over }), log);
}

const addr = (a: Agent): string => `127.0.0.1:${a.grpcPort}`;

async function stateOf(a: Agent): Promise<unknown> {
  const r = await fetch(`http://127.0.0.1:${a.adminPort}/v1/state`);
  return r.json();
}

const statuses = (r: GoalStateOperationReply): Record<string, string> =>
  Object.fromEntries(r.operationStatuses.map((s) => [`${s.resourceType}/${s.resourceId}`, OperationStatus[s.operationStatus]]));
const allSuccess = (r: GoalStateOperationReply): boolean => r.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS);
const statusOf = (r: GoalStateOperationReply, id: string): OperationStatus | undefined => r.operationStatuses.find((s) => s.resourceId === id)?.operationStatus;

/** Every kind: the NCM sequence (VPC, subnets, ports, neighbors, DHCP, router, SGs, a port delete) and a gateway. */
function everyKind(): GoalStateV2[] {
  const states = ['01-first-port.json', '02-remote-neighbor-only.json', '03-second-local-port.json', '04-router-attach.json', '05-security-group-rules.json', '06-port-delete.json'].map(fixture);
  states.push(GoalStateV2.fromPartial({
    gatewayStates: {
      GW1: { operationType: OperationType.CREATE, configuration: { revisionNumber: 1, id: 'GW1', gatewayType: 1, destinations: [{ ipAddress: '172.16.0.1', macAddress: 'aa:bb:cc:00:00:01' }], extraInfo: { $case: 'zetaInfo', value: { portInbandOperation: 8300 } } } },
    },
  }));
  return states;
}

/** Deletes, updates and a delete of something never seen (which leaves no tombstone). */
function changes(): GoalStateV2[] {
  return [
    GoalStateV2.fromPartial({
      subnetStates: { S: subnetState('S') },
      portStates: { P1: portState('P1'), P2: portState('P2', { macAddress: 'fa:16:3e:00:00:02', fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.6' }] }) },
      neighborStates: { 'L2/N1': neighborState('N1', 1), 'L2/N2': neighborState('N2', 2), 'L2/N3': neighborState('N3', 3) },
    }),
    GoalStateV2.fromPartial({
      portStates: {
        P1: portState('P1', { revisionNumber: 2, name: 'renamed' }, OperationType.UPDATE),
        P2: portState('P2', { revisionNumber: 5 }, OperationType.DELETE),
        PX: portState('PX', { revisionNumber: 7 }, OperationType.DELETE),
      },
      neighborStates: { 'L2/N3': neighborState('N3', 3, { revisionNumber: 4 }, OperationType.DELETE) },
    }),
  ];
}

async function pushAll(a: Agent, states: GoalStateV2[]): Promise<GoalStateOperationReply[]> {
  const out: GoalStateOperationReply[] = [];
  for (const gs of states) out.push(await pushOne(addr(a), gs));
  return out;
}

/** After a restart: older revisions of deleted resources stay refused, newer ones apply. */
async function checkRevisionsKept(t: import('ava').ExecutionContext, a: Agent): Promise<void> {
  const late = await pushOne(addr(a), GoalStateV2.fromPartial({
    portStates: { P2: portState('P2', { revisionNumber: 4 }), PX: portState('PX', { revisionNumber: 6, macAddress: 'fa:16:3e:00:00:0f', fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.15' }] }) },
    neighborStates: { 'L2/N3': neighborState('N3', 3, { revisionNumber: 3 }) },
  }));
  // PX was deleted before it ever existed: that DELETE left nothing that could block its CREATE.
  t.deepEqual(statuses(late), { '2/P2': 'OUT_OF_ORDER', '2/PX': 'SUCCESS', '3/N3': 'OUT_OF_ORDER' }, JSON.stringify(late.operationStatuses));
  const older = await pushOne(addr(a), GoalStateV2.fromPartial({ portStates: { P1: portState('P1', { revisionNumber: 1 }) } }));
  t.is(statusOf(older, 'P1'), OperationStatus.OUT_OF_ORDER);
  const newer = await pushOne(addr(a), GoalStateV2.fromPartial({ portStates: { P2: portState('P2', { revisionNumber: 6, macAddress: 'fa:16:3e:00:00:02', fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.6' }] }) } }));
  t.is(statusOf(newer, 'P2'), OperationStatus.SUCCESS);
}

test('stop and start on the same dir: every kind, updates, deletes and tombstones are back; late older CREATEs stay OUT_OF_ORDER', async (t) => {
  const dir = tempDir();
  const a = await start(dir);
  const replies = await pushAll(a, [...everyKind(), ...changes()]);
  for (const r of replies) t.true(allSuccess(r), JSON.stringify(r.operationStatuses.filter((s) => s.operationStatus !== 0)));
  const before = await stateOf(a);
  const counts = a.store.counts();
  t.true(Object.values(counts).every((n) => n > 0), `every kind is in the store: ${JSON.stringify(counts)}`);
  await a.stop();

  const { log, lines } = capturingLogger();
  const b = await start(dir, log);
  try {
    t.deepEqual(await stateOf(b), before);
    t.is(b.loaded?.movedAside, null);
    const loaded = lines.find((l) => l.message === 'state loaded');
    t.deepEqual(loaded?.resources, counts);
    t.is(loaded?.tombstones, b.store.tombstoneCount());
    t.true(b.store.tombstoneCount() >= 3);
    await checkRevisionsKept(t, b);
    const after = await stateOf(b);
    await b.stop();
    // And once more: what the second agent was told is kept as well.
    const c = await start(dir);
    t.deepEqual(await stateOf(c), after);
    await c.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an agent dropped without a stop: a new agent on its dir has every goal state it acknowledged', async (t) => {
  const dir = tempDir();
  const a = await start(dir);
  const replies = await pushAll(a, changes());
  t.true(replies.every(allSuccess));
  const before = await stateOf(a);
  // No stop: nothing is flushed or closed; the replies alone promised the state was on disk.
  const b = await start(dir);
  try {
    t.deepEqual(await stateOf(b), before);
    await checkRevisionsKept(t, b);
  } finally {
    await b.stop();
    await a.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('concurrent streams: records never interleave, every acknowledged resource is back after a restart', async (t) => {
  const dir = tempDir();
  const a = await start(dir, silentLogger(), { dataplane: 'none' });
  const clients = Array.from({ length: 6 }, () => makeClient(addr(a)));
  try {
    // Six streams at once, three goal states each, some of them several frames long.
    const results = await Promise.all(clients.map((c, s) => pushStream(c, [0, 1, 2].map((m) => {
      const gs = bigState(m === 1 ? 4000 : 50, `${s}${m}`.padStart(12, '0'));
      gs.portStates = { [`P-${s}-${m}`]: portState(`P-${s}-${m}`, { macAddress: `fa:16:3e:01:0${s}:0${m}`, fixedIps: [{ subnetId: 'S', ipAddress: `10.1.${s}.${10 + m}` }] }) };
      return gs;
    }))));
    for (const replies of results) for (const r of replies) t.true(allSuccess(r));
    const before = await stateOf(a);
    const b = await start(dir, silentLogger(), { dataplane: 'none' });
    // Interleaved frames of two records would load as corrupt; a partial one as torn.
    t.is(b.loaded?.movedAside, null);
    t.is(b.loaded?.torn, null);
    t.deepEqual(await stateOf(b), before);
    t.is(b.store.count('neighbor'), 6 * (4000 + 100));
    t.is(b.store.count('port'), 6 * 3);
    await b.stop();
  } finally {
    for (const c of clients) c.close();
    await a.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the journal is compacted into a snapshot once it outgrows it; the snapshot plus the rest of the journal load', async (t) => {
  const dir = tempDir();
  const { log, lines } = capturingLogger();
  const a = await start(dir, log, { dataplane: 'none' });
  try {
    // About 7 MB of records: more than the 4 MiB below which a journal is left alone.
    t.true(allSuccess(await pushOne(addr(a), bigState(20_000))));
    await a.state!.idle();
    t.truthy(lines.find((l) => l.message === 'state compacted'));
    const files = readdirSync(dir);
    t.true(files.includes(SNAPSHOT_FILE));
    t.is(files.filter((f) => f.startsWith('journal.')).length, 1, files.join(' '));
    // After the snapshot: more records in the new journal, deletes among them.
    const del = GoalStateV2.fromPartial({ neighborStates: {} });
    for (let i = 0; i < 10; i++) {
      const id = `${i.toString(16).padStart(8, '0')}-b718-11ea-b3de-111111111111`;
      del.neighborStates[`L2/${id}`] = neighborState(id, i, { revisionNumber: 2 }, OperationType.DELETE);
    }
    t.true(allSuccess(await pushOne(addr(a), del)));
    t.true((await pushAll(a, changes())).every(allSuccess));
    const before = await stateOf(a);
    await a.stop();
    const b = await start(dir, silentLogger(), { dataplane: 'none' });
    t.deepEqual(await stateOf(b), before);
    t.is(b.store.count('neighbor'), 20_000 - 10 + 2);
    t.true((b.loaded?.snapshotSeq ?? 0) >= 1);
    t.is(b.loaded?.records, 3);
    await b.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a journal whose last record was cut short: the record is ignored with a warning, the rest loads, appending goes on', async (t) => {
  const dir = tempDir();
  const a = await start(dir);
  const [first, second] = changes();
  t.true(allSuccess(await pushOne(addr(a), first!)));
  const afterFirst = await stateOf(a);
  const journal = join(dir, readdirSync(dir).find((f) => f.startsWith('journal.'))!);
  const sizeAfterFirst = statSync(journal).size;
  t.true(allSuccess(await pushOne(addr(a), second!)));
  await a.stop();
  // The write of the second record was cut short: a crash halfway through its frame.
  truncateSync(journal, sizeAfterFirst + Math.floor((statSync(journal).size - sizeAfterFirst) / 2));

  const { log, lines } = capturingLogger();
  const b = await start(dir, log);
  try {
    t.deepEqual(await stateOf(b), afterFirst);
    const warn = lines.find((l) => l.level === 'warn' && /cut short/.test(l.message));
    t.truthy(warn, JSON.stringify(lines));
    t.is(warn?.file, journal);
    t.regex(String(b.loaded?.torn), /cut short|no end frame/);
    t.is(statSync(journal).size, sizeAfterFirst, 'the cut record is truncated away');
    // Appending after it: the next start loads without complaint.
    t.true(allSuccess(await pushOne(addr(b), second!)));
    const after = await stateOf(b);
    await b.stop();
    const { log: log2, lines: lines2 } = capturingLogger();
    const c = await start(dir, log2);
    t.deepEqual(await stateOf(c), after);
    t.falsy(lines2.find((l) => l.level === 'warn' || l.level === 'error'));
    await c.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const corruptions: [string, (dir: string) => string][] = [
  ['garbage in the middle of the journal', (dir) => {
    const journal = join(dir, readdirSync(dir).find((f) => f.startsWith('journal.'))!);
    const bytes = readFileSync(journal);
    bytes.write('GARBAGE', Math.floor(bytes.length / 3));
    writeFileSync(journal, bytes);
    return journal;
  }],
  ['a snapshot that is garbage', (dir) => {
    const snapshot = join(dir, SNAPSHOT_FILE);
    writeFileSync(snapshot, 'this is not a snapshot\n'.repeat(100));
    return snapshot;
  }],
  ['a snapshot that cannot be read (a directory)', (dir) => {
    const snapshot = join(dir, SNAPSHOT_FILE);
    mkdirSync(snapshot);
    return snapshot;
  }],
];

for (const [what, spoil] of corruptions) {
  test(`${what}: reported with the file and the reason, moved aside, the agent starts empty and keeps new state`, async (t) => {
    const dir = tempDir();
    const a = await start(dir);
    const replies = await pushAll(a, changes());
    t.true(replies.every(allSuccess));
    await a.stop();
    const file = spoil(dir);

    const { log, lines } = capturingLogger();
    const b = await start(dir, log);
    try {
      const error = lines.find((l) => l.level === 'error');
      t.truthy(error, JSON.stringify(lines));
      t.is(error?.file, file);
      t.regex(String(error?.reason), /./);
      t.is(b.store.counts().port, 0);
      t.is(b.store.tombstoneCount(), 0);
      const aside = readdirSync(dir).filter((f) => f.startsWith('corrupt-'));
      t.is(aside.length, 1);
      t.is(b.loaded?.movedAside, join(dir, aside[0]!));
      t.true(readdirSync(join(dir, aside[0]!)).length >= 1);
      // It goes on: new state is saved and loads on the next start.
      t.true(allSuccess(await pushOne(addr(b), changes()[0]!)));
      const after = await stateOf(b);
      await b.stop();
      const c = await start(dir);
      t.deepEqual(await stateOf(c), after);
      await c.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a corrupt state with a controller configured: the agent starts empty and asks the controller (AGENT_RESTARTED), as at every start', async (t) => {
  const ncm = await fakeNcm(() => Promise.resolve());
  const requests = ncm.requests;
  const dir = tempDir();
  try {
    const a = await start(dir);
    t.true((await pushAll(a, changes())).every(allSuccess));
    await a.stop();
    writeFileSync(join(dir, SNAPSHOT_FILE), 'garbage');
    const b = await start(dir, silentLogger(), { controller: ncm.addr });
    await until(() => requests.length > 0, 'AGENT_RESTARTED at the controller');
    t.truthy(b.loaded?.movedAside);
    t.is(b.store.counts().port, 0);
    t.is(requests.length, 1);
    t.is(requests[0]!.stateRequests[0]!.requestType, RequestType.AGENT_RESTARTED);
    t.is(requests[0]!.stateRequests[0]!.sourceIp, HOST_IP);
    await b.stop();
  } finally {
    await ncm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing state dir is created (with its parents)', async (t) => {
  const parent = tempDir();
  const dir = join(parent, 'var', 'lib', 'aca');
  const a = await start(dir);
  try {
    t.true(statSync(dir).isDirectory());
    t.true(allSuccess(await pushOne(addr(a), changes()[0]!)));
  } finally {
    await a.stop();
    rmSync(parent, { recursive: true, force: true });
  }
});

/**
 * `aca agent` in a child process, on loopback, on ports it picks itself (read from its log):
 * ports picked by the test could be taken by another test file's process before the child binds.
 */
async function agentProcess(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const proc = execa(process.execPath, ['--import', tsx, cli, 'agent', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--host-ip', HOST_IP, '--log-format', 'json', ...args], {
    reject: false, cwd: opts.cwd ?? root, env: opts.env ?? {},
  });
  let grpc = '';
  let admin = '';
  // The log goes to stdout or stderr (the logger decides by its environment): read both.
  for (const stream of [proc.stdout, proc.stderr]) {
    let out = '';
    stream?.on('data', (b: Buffer) => {
      out += b.toString();
      const lines = out.split('\n');
      out = lines.pop()!; // a line not complete yet
      for (const line of lines) {
        const m = /"message":"(gRPC server listening|admin API listening)"/.exec(line);
        if (!m) continue;
        const l = JSON.parse(line) as { port?: number; address?: string };
        if (m[1] === 'gRPC server listening') grpc = `127.0.0.1:${l.port}`;
        else admin = l.address!;
      }
    });
  }
  // Until it is ready or gone: a loaded machine may take many seconds to start a child under
  // tsx, so the bound is generous (a hang, not a slow start, is what it catches).
  let ready = false;
  for (let i = 0; i < 2400 && !ready; i++) {
    ready = grpc !== '' && admin !== '' && await fetch(`http://${admin}/readyz`).then((r) => r.ok, () => false);
    if (ready || proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!ready && proc.exitCode === null) throw new Error('the agent process was not ready after 2 minutes');
  return { proc, grpc, admin };
}

test('SIGKILL in the middle of saving a large goal state: the dir loads, with the state before it or after it, never half of it', async (t) => {
  const dir = tempDir();
  const child = await agentProcess(['--dataplane', 'none', '--state-dir', dir]);
  try {
    const small = changes()[0]!;
    t.true(allSuccess(await pushOne(child.grpc, small)));
    const journal = join(dir, readdirSync(dir).find((f) => f.startsWith('journal.'))!);
    const size = statSync(journal).size;
    // 200,000 neighbors: about 70 MB of journal record, written 8 MB at a time.
    const big = bigState(200_000, 'bbbbbbbbbbbb');
    const c = makeClient(child.grpc);
    const pushed = pushStream(c, [big]).catch(() => null);
    // The journal may be compacted away (renamed into a snapshot) while the record is written:
    // gone counts as changed.
    const sizeNow = (): number => (existsSync(journal) ? statSync(journal, { throwIfNoEntry: false })?.size ?? -1 : -1);
    for (let i = 0; i < 6000 && sizeNow() === size; i++) await new Promise((r) => setTimeout(r, 5));
    child.proc.kill('SIGKILL');
    await child.proc;
    const reply = await pushed;
    c.close();
    t.log(sizeNow() < 0 ? `killed after the journal was compacted${reply ? ' (after its reply)' : ''}` : `killed with ${sizeNow() - size} bytes of the big record written${reply ? ' (after its reply)' : ''}`);

    const { log, lines } = capturingLogger();
    const b = await start(dir, log, { dataplane: 'none' });
    try {
      t.is(b.loaded?.movedAside, null);
      const neighbors = b.store.count('neighbor');
      t.true(neighbors === 3 || neighbors === 3 + 200_000, `neighbors: ${neighbors}`);
      if (reply) t.is(neighbors, 3 + 200_000, 'an acknowledged state is never lost');
      t.is(b.store.count('port'), 2);
      const torn = lines.find((l) => l.level === 'warn' && /cut short/.test(l.message));
      if (torn) t.is(neighbors, 3, 'a record cut short is not applied');
    } finally {
      await b.stop();
    }
  } finally {
    // Never leave the child behind (a live child keeps this test file's worker, and CI, waiting).
    if (child.proc.exitCode === null) child.proc.kill('SIGKILL');
    await child.proc;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('persistence off: no state dir by default for sim, dry-run and none, nor with --state-dir none; /var/lib/aca by default for ovs', async (t) => {
  const print = async (args: string[], env: Record<string, string> = {}): Promise<string> => {
    const r = await execa(process.execPath, ['--import', tsx, cli, 'agent', '--print-config', ...args], { reject: false, env, cwd: root });
    t.is(r.exitCode, 0, r.stderr);
    return (JSON.parse(r.stdout) as AgentConfig).stateDir;
  };
  t.is(await print(['--dataplane', 'sim']), '');
  t.is(await print(['--dataplane', 'dry-run']), '');
  t.is(await print(['--dataplane', 'none']), '');
  t.is(await print(['--dataplane', 'ovs']), '/var/lib/aca');
  t.is(await print(['--dataplane', 'ovs', '--state-dir', 'none']), '');
  t.is(await print(['--dataplane', 'ovs', '--state-dir', '']), '');
  t.is(await print(['--dataplane', 'ovs'], { ACA_STATE_DIR: '' }), '');
  t.is(await print(['--dataplane', 'sim'], { ACA_STATE_DIR: '/srv/aca' }), '/srv/aca');
  t.is(await print(['--dataplane', 'sim', '--state-dir', 'auto']), '');
  // In-process agents (tests, demo, benchmarks) keep nothing unless given a dir, whatever the dataplane.
  t.is(resolveConfig({ dataplane: 'ovs' }).stateDir, '');
  t.is(resolveConfig({ dataplane: 'ovs', stateDir: 'auto' }).stateDir, '/var/lib/aca');

  // The daemon with persistence off writes no file where it could: its working directory, HOME,
  // and /var/lib/aca.
  const cwd = tempDir();
  const varLib = existsSync('/var/lib/aca');
  const child = await agentProcess(['--dataplane', 'sim'], { cwd, env: { HOME: cwd } });
  try {
    const info = await fetch(`http://${child.admin}/v1/info`).then((r) => r.json() as Promise<{ state: unknown }>);
    t.is(info.state, null);
    t.true(allSuccess(await pushOne(child.grpc, changes()[0]!)));
  } finally {
    child.proc.kill('SIGTERM');
    await child.proc;
  }
  t.deepEqual(readdirSync(cwd), []);
  t.is(existsSync('/var/lib/aca'), varLib);
  rmSync(cwd, { recursive: true, force: true });
});

(mounted ? test.skip : test)('disk full: the resources answer FAILURE with the reason, nothing answers SUCCESS until the state is saved again; then nothing is lost', async (t) => {
  const dir = join(tmpfs, 'state');
  const { log, lines } = capturingLogger();
  const a = await start(dir, log);
  let stopped = false;
  try {
    const [first, changed] = changes();
    t.true(allSuccess(await pushOne(addr(a), first!)));
    // Larger than what is left in the journal's last page, so that it needs a new one.
    const second = bigState(100, 'ffffffffffff');
    second.portStates = changed!.portStates;
    second.neighborStates = { ...second.neighborStates, ...changed!.neighborStates };
    delete second.subnetStates.S;
    // Fill the file system.
    const filler = join(tmpfs, 'filler');
    writeFileSync(filler, '');
    const block = Buffer.alloc(64 * 1024, 1);
    try {
      for (;;) writeFileSync(filler, block, { flag: 'a' });
    } catch { /* ENOSPC: full */ }
    try {
      for (;;) writeFileSync(filler, Buffer.alloc(512, 1), { flag: 'a' });
    } catch { /* ENOSPC: full to the last block */ }

    const failed = await pushOne(addr(a), second);
    t.true(failed.operationStatuses.length > 0);
    for (const s of failed.operationStatuses) {
      t.is(s.operationStatus, OperationStatus.FAILURE, JSON.stringify(s));
      t.regex(s.statusDetail, /not saved in the state dir \(ENOSPC/);
    }
    t.truthy(lines.find((l) => l.level === 'error' && /cannot save/.test(l.message)));
    // A resend changes nothing in the store but is still not saved: still FAILURE.
    const resent = await pushOne(addr(a), second);
    t.true(resent.operationStatuses.every((s) => s.operationStatus === OperationStatus.FAILURE));
    const info = await fetch(`http://127.0.0.1:${a.adminPort}/v1/info`).then((r) => r.json() as Promise<{ state: { saving: string } }>);
    t.regex(info.state.saving, /failing: ENOSPC/);

    // Room again: the agent saves everything by itself (a full snapshot) and answers SUCCESS.
    rmSync(filler);
    let again: GoalStateOperationReply | null = null;
    for (let i = 0; i < 100; i++) {
      again = await pushOne(addr(a), second);
      if (allSuccess(again)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    t.true(allSuccess(again!), JSON.stringify(again?.operationStatuses));
    t.truthy(lines.find((l) => /saved again/.test(l.message)));
    const before = await stateOf(a);
    await a.stop();
    stopped = true;
    const b = await start(dir);
    t.deepEqual(await stateOf(b), before);
    await checkRevisionsKept(t, b);
    await b.stop();
  } finally {
    if (!stopped) await a.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a state dir written before the north-south fields existed loads: ports without elastic IPs, routers without an external gateway', async (t) => {
  const dir = tempDir();
  const a = await start(dir);
  const gs = GoalStateV2.fromPartial({
    subnetStates: { S: subnetState('S') },
    portStates: { P1: portState('P1') },
    routerStates: { [`${HOST_IP}/R1`]: { operationType: OperationType.CREATE, configuration: { revisionNumber: 1, requestId: '', id: 'R1', updateType: 0, hostDvrMacAddress: '', externalGateway: undefined, subnetRoutingTables: [{ subnetId: 'S', routingRules: [] }] } } },
  });
  t.true(allSuccess((await pushAll(a, [gs]))[0]!));
  await a.stop();
  // What the previous version wrote: the same lines without the two fields, framed again
  // (magic, flags, seq, length, payload crc32, header crc32; agent/state-dir.ts).
  let stripped = 0;
  for (const f of readdirSync(dir)) {
    const path = join(dir, f);
    if (!statSync(path).isFile()) continue;
    const b = readFileSync(path);
    const out: Buffer[] = [];
    for (let pos = 0; pos + 28 <= b.length;) {
      const len = b.readUInt32LE(pos + 16);
      const text = b.subarray(pos + 28, pos + 28 + len).toString('utf8');
      const old = Buffer.from(text.replace(/,"elasticIps":\[\]/g, '').replace(/,"externalGateway":null/g, ''), 'utf8');
      stripped += len - old.length;
      const head = Buffer.from(b.subarray(pos, pos + 28));
      head.writeUInt32LE(old.length, 16);
      head.writeUInt32LE(crc32(old), 20);
      head.writeUInt32LE(crc32(head.subarray(0, 24)), 24);
      out.push(head, old);
      pos += 28 + len;
    }
    writeFileSync(path, Buffer.concat(out));
  }
  t.true(stripped > 0, 'the state files held the new fields');
  const b = await start(dir, silentLogger(), { dataplane: 'sim', bridgeMappings: 'ext:br-ex' });
  try {
    t.is(b.loaded?.movedAside, null, 'nothing was found corrupt');
    t.deepEqual(b.store.get('port', 'P1')?.elasticIps, []);
    t.is(b.store.get('router', 'R1')?.externalGateway, null);
    // The dataplane built everything from it, the north-south features included.
    const r = await pushOne(`127.0.0.1:${b.grpcPort}`, GoalStateV2.fromPartial({ portStates: { P1: portState('P1', { revisionNumber: 2, name: 'again' }) } }));
    t.is(r.operationStatuses[0]?.operationStatus, OperationStatus.SUCCESS);
  } finally {
    await b.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
