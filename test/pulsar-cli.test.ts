// The MQ path through the command line, against a real Apache Pulsar 4.2.4 standalone broker
// (scripts/pulsar-broker.ts, shared with test/pulsar-broker.test.ts through ACA_TEST_PULSAR_DIR
// or started here): `aca push --pulsar` publishes as DPM does and a subscribed agent applies it;
// `aca agent` as a child process killed with SIGKILL in the middle of an apply loses nothing.
// The CLI runs as a user runs it: `bin/aca.mjs` (the compiled dist/, as test/agent-cli.test.ts)
// in child processes with argument arrays. Skipped, with the reason printed, only where Java or
// the broker's jars cannot be had.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { type ResultPromise, execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../agent/config.js';
import { type Agent, startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { keySlot } from '../agent/pulsar-proto.js';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { SubscribeInfoProvisionerService, SubscribeOperation, type NodeSubscribeInfo, type SubscribeOperationReply } from '../proto/gen/alcor/subscribeinfoprovisioner.js';
import type { Broker } from '../scripts/pulsar-broker.js';
import { HOST_IP, bigState, freePort, portState, subnetState } from './helpers/agents.js';
import { testBroker, uniq } from './helpers/pulsar.js';
import { until } from './helpers/wait.js';

const aca = new URL('../bin/aca.mjs', import.meta.url).pathname;
const run = (args: string[]) => execa(process.execPath, [aca, ...args], { reject: false });

const dirs: string[] = [];
const children: ResultPromise[] = [];

const { need: needBroker } = testBroker('pulsar-cli');

test.after.always(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** PushNodeSubscribeInfo as DPM calls it. */
async function pushSubscribe(port: number, op: SubscribeOperation, topic: string, key: string): Promise<OperationStatus> {
  const Client = grpc.makeGenericClientConstructor(SubscribeInfoProvisionerService, 'SubscribeInfoProvisioner');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const reply = await new Promise<SubscribeOperationReply>((resolve, reject) => {
      (client as unknown as { pushNodeSubscribeInfo: (r: NodeSubscribeInfo, cb: (e: Error | null, r: SubscribeOperationReply) => void) => void })
        .pushNodeSubscribeInfo({ subscribeOperation: op, topic, key }, (e, r) => (e ? reject(e) : resolve(r)));
    });
    return reply.operationStatus;
  } finally {
    client.close();
  }
}

interface SubStats { msgBacklog: number; unackedMessages: number; consumers: { consumerName: string; unackedMessages: number }[] }
async function subStats(b: Broker, topic: string, sub = 'alcor-agents'): Promise<SubStats | undefined> {
  const r = await fetch(`${b.webUrl}/admin/v2/persistent/public/default/${topic}/stats`);
  if (r.status !== 200) return undefined;
  const s = await r.json() as { subscriptions: Record<string, SubStats> };
  return s.subscriptions[sub];
}

/** A DPM-shaped goal state for a host: subnet S and one port. */
function portGoalState(host: string, portId: string, ip: string): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({ formatVersion: 102, hostResources: { [host]: { resources: [] } } });
  gs.subnetStates.S = subnetState('S');
  gs.portStates[portId] = portState(portId, { fixedIps: [{ subnetId: 'S', ipAddress: ip }], macAddress: `fa:16:3e:00:02:${ip.split('.')[3]!.padStart(2, '0').slice(-2)}` });
  return gs;
}

const pushArgs = (b: Broker, topic: string, key: string, files: string[]): string[] =>
  ['push', '--pulsar', b.serviceUrl, '--topic', topic, '--key', key, ...files];

test.serial('aca push --pulsar publishes DPM-shaped messages (raw GoalStateV2, key = host); the agent subscribed with that key applies them, in order, and no other host\'s', async (t) => {
  const b = needBroker(t);
  if (!b) return;
  const topic = uniq('vpc');
  const dir = tempDir('aca-pulsar-push-');
  const config = resolveConfig({
    listen: '127.0.0.1:0', admin: '127.0.0.1:0', subscribeListen: '127.0.0.1:0', hostIp: HOST_IP, dataplane: 'dry-run', pulsarUrl: b.serviceUrl, stateDir: 'none',
  });
  const agent: Agent = await startAgent(config, silentLogger());
  try {
    t.is(await pushSubscribe(agent.subscribePort, SubscribeOperation.Subscribe, topic, HOST_IP), OperationStatus.SUCCESS);
    // JSON and binary files; the second revises the first's port (order per key matters).
    const first = join(dir, 'p1.json');
    writeFileSync(first, JSON.stringify(GoalStateV2.toJSON(portGoalState(HOST_IP, 'PP1', '10.1.0.5'))));
    const second = join(dir, 'p2.bin');
    const revised = portGoalState(HOST_IP, 'PP1', '10.1.0.6');
    revised.portStates.PP2 = portState('PP2', { fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.7' }], macAddress: 'fa:16:3e:00:02:07' });
    revised.portStates.PP1!.operationType = 2; // UPDATE
    writeFileSync(second, GoalStateV2.encode(revised).finish());
    const other = join(dir, 'other.json');
    writeFileSync(other, JSON.stringify(GoalStateV2.toJSON(portGoalState('10.0.0.12', 'PX', '10.1.0.9'))));

    // The strict checks of `aca push` hold: a file that is not a goal state stops everything before anything is published.
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ portStates: [] }));
    const refused = await run(pushArgs(b, topic, HOST_IP, [first, bad]));
    t.is(refused.exitCode, 2);
    t.regex(refused.stderr, /bad\.json is not a valid GoalStateV2/);
    t.regex((await run(['push', '--pulsar', b.serviceUrl, '--topic', topic, first])).stderr, /--pulsar needs --topic VPC and --key HOST/);

    const r = await run(pushArgs(b, topic, HOST_IP, [first, second]));
    t.is(r.exitCode, 0, r.stderr);
    const slot = keySlot(HOST_IP);
    t.regex(r.stdout, new RegExp(`p1\\.json: published to persistent://public/default/${topic}, key ${HOST_IP.replaceAll('.', '\\.')} \\(slot ${slot}\\), message \\d+:\\d+, \\d+ bytes`));
    t.regex(r.stdout, /p2\.bin: published to .* message \d+:\d+/);
    const o = await run([...pushArgs(b, topic, '10.0.0.12', [other]), '--json']);
    t.is(o.exitCode, 0, o.stderr);
    const published = JSON.parse(o.stdout) as { key: string; topic: string; bytes: number }[];
    t.deepEqual(published.map((p) => [p.key, p.topic]), [['10.0.0.12', `persistent://public/default/${topic}`]]);
    t.is(published[0]!.bytes, GoalStateV2.encode(GoalStateV2.fromJSON(JSON.parse(JSON.stringify(GoalStateV2.toJSON(portGoalState('10.0.0.12', 'PX', '10.1.0.9')))))).finish().length, 'the raw GoalStateV2 bytes, nothing around them');

    await until(() => agent.store.get('port', 'PP2') !== undefined, 'both messages applied');
    t.is(agent.pulsar!.totals.applied, 2, 'exactly the two published with our key (the refused push published nothing)');
    t.is(agent.pulsar!.totals.undecodable, 0);
    const pp1 = agent.store.get('port', 'PP1') as { fixedIps?: { ipAddress: string }[] } | undefined;
    t.is(JSON.stringify(pp1).includes('10.1.0.6'), true, 'the later revision is the one kept');
    t.is(agent.store.get('port', 'PX'), undefined, 'another host\'s goal state is never applied');
    // The other host's message waits for its owner; ours were acked.
    await until(async () => (await subStats(b, topic))?.msgBacklog === 1, 'only the other host\'s message left in the backlog');
  } finally {
    await agent.stop();
  }
});

/** `aca agent` in a child process on loopback with the MQ path on; resolves once /readyz answers 200. */
async function childAgent(b: Broker, stateDir: string): Promise<{ proc: ResultPromise; admin: string; subscribePort: number }> {
  const [g, a, s] = [await freePort(), await freePort(), await freePort()];
  const admin = `127.0.0.1:${a}`;
  const proc = execa(process.execPath, [aca, 'agent', '--listen', `127.0.0.1:${g}`, '--admin', admin, '--subscribe-listen', `127.0.0.1:${s}`,
    '--host-ip', HOST_IP, '--dataplane', 'dry-run', '--state-dir', stateDir, '--pulsar-url', b.serviceUrl, '--log-format', 'json'], { reject: false });
  children.push(proc);
  let exited = false;
  void proc.then(() => { exited = true; });
  await until(async () => {
    if (exited) throw new Error(`the agent exited before it was ready: ${(await proc).stderr}`);
    return fetch(`http://${admin}/readyz`).then((r) => r.status === 200, () => false);
  }, 'the agent ready', 120_000);
  return { proc, admin, subscribePort: s };
}

interface Info { pulsar: { messages: { applied: number; failed: number }; topics: { topic: string; state: string }[] }; counts: Record<string, number> }
const info = async (admin: string): Promise<Info> => (await fetch(`http://${admin}/v1/info`)).json() as Promise<Info>;

test.serial('kill -9 of `aca agent` in the middle of an apply: nothing lost; the agent restarted on the same state dir gets the message again and applies it once', async (t) => {
  const b = needBroker(t);
  if (!b) return;
  const N = 20_000; // neighbors: ~3 MB, under the broker's 5 MB frame, an apply of a second or more
  // The kill must land between delivery and ack. We wait for the broker to show the message
  // delivered and unacked, then kill; if the apply still won (the message was acked before the
  // kill), that round proves nothing and is done again with a fresh topic and state dir.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const topic = uniq('vpc');
    const dir = tempDir('aca-pulsar-kill-');
    const file = join(dir, 'big.bin');
    const gs = bigState(N, `0000000${attempt}aaaa`.slice(-12));
    writeFileSync(file, GoalStateV2.encode(gs).finish());
    const a1 = await childAgent(b, dir);
    t.is(await pushSubscribe(a1.subscribePort, SubscribeOperation.Subscribe, topic, HOST_IP), OperationStatus.SUCCESS);
    const pushed = await run(pushArgs(b, topic, HOST_IP, [file]));
    t.is(pushed.exitCode, 0, pushed.stderr);
    await until(async () => (await subStats(b, topic))?.unackedMessages === 1, 'the message delivered to the agent, not yet acked', 120_000);
    a1.proc.kill('SIGKILL');
    const killed = await a1.proc;
    t.is(killed.signal, 'SIGKILL');
    await until(async () => (await subStats(b, topic))?.consumers.length === 0, 'the broker saw the consumer go');
    const backlog = (await subStats(b, topic))?.msgBacklog;
    if (backlog === 0) {
      t.log(`attempt ${attempt}: the apply finished before the kill landed; again`);
      continue;
    }
    t.is(backlog, 1, 'the message is still owed');
    t.log(`attempt ${attempt}: killed mid-apply, the message is still owed`);
    // The restarted agent resumes the subscription from the state dir and gets the message again.
    const a2 = await childAgent(b, dir);
    await until(async () => (await info(a2.admin)).pulsar.messages.applied === 1, 'the redelivered goal state applied', 180_000);
    const after = await info(a2.admin);
    t.deepEqual(after.pulsar.topics.map((s) => s.topic), [`persistent://public/default/${topic}`]);
    t.is(after.counts.neighbor, N, 'every neighbor of the goal state is there');
    t.is(after.counts.port, 1);
    await until(async () => (await subStats(b, topic))?.msgBacklog === 0, 'acked once applied');
    t.is((await info(a2.admin)).pulsar.messages.applied, 1, 'applied once');
    a2.proc.kill('SIGTERM');
    await a2.proc;
    return;
  }
  t.fail('three applies in a row finished before the kill landed: make the goal state larger');
});
