// The MQ path against a real Apache Pulsar 4.2.4 standalone broker on loopback
// (scripts/pulsar-broker.ts): the controller subscribes the agent over gRPC
// (PushNodeSubscribeInfo), DPM-shaped keyed GoalStateV2 messages are published, and the agent
// applies its own key's, in order, acking only after the apply. Skipped, with the reason printed,
// only where Java or the broker's jars cannot be had.
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../agent/config.js';
import { type Agent, startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { PulsarClient, type Producer } from '../agent/pulsar-client.js';
import { keySlot } from '../agent/pulsar-proto.js';
import { type Dataplane, NullDataplane } from '../dataplane/api.js';
import type { ResourceEvent } from '../dataplane/model.js';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { SLICED_SCAN_BYTES } from '../agent/goalstate-source.js';
import { SubscribeInfoProvisionerService, SubscribeOperation, type NodeSubscribeInfo, type SubscribeOperationReply } from '../proto/gen/alcor/subscribeinfoprovisioner.js';
import type { Broker } from '../scripts/pulsar-broker.js';
import { bigState, freePort, neighborState, portState, subnetState } from './helpers/agents.js';
import { testBroker, uniq } from './helpers/pulsar.js';
import { until } from './helpers/wait.js';

const HOST_A = '10.0.0.11';
const stateDirs: string[] = [];

const { need: needBroker } = testBroker('pulsar-broker');

test.after.always(() => {
  for (const d of stateDirs) rmSync(d, { recursive: true, force: true });
});

function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'aca-pulsar-state-'));
  stateDirs.push(d);
  return d;
}

async function agentOn(b: Broker, hostIp: string, opts: { stateDir?: string; dataplane?: Dataplane } = {}): Promise<Agent> {
  const config = resolveConfig({
    listen: '127.0.0.1:0', admin: '127.0.0.1:0', subscribeListen: '127.0.0.1:0', hostIp, dataplane: 'dry-run',
    pulsarUrl: b.serviceUrl, stateDir: opts.stateDir ?? 'none',
  });
  return startAgent(config, silentLogger(), opts.dataplane);
}

/** PushNodeSubscribeInfo as DPM calls it. */
async function pushSubscribe(agent: Agent, op: SubscribeOperation, topic: string, key: string): Promise<OperationStatus> {
  const Client = grpc.makeGenericClientConstructor(SubscribeInfoProvisionerService, 'SubscribeInfoProvisioner');
  const client = new Client(`127.0.0.1:${agent.subscribePort}`, grpc.credentials.createInsecure());
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

/** A DPM-shaped goal state for a host: subnet S and one port. */
function portGoalState(host: string, portId: string, ip: string): Uint8Array {
  const gs = GoalStateV2.fromPartial({ formatVersion: 102, hostResources: { [host]: { resources: [] } } });
  gs.subnetStates.S = subnetState('S');
  gs.portStates[portId] = portState(portId, { fixedIps: [{ subnetId: 'S', ipAddress: ip }], macAddress: `fa:16:3e:00:01:${ip.split('.')[3]!.padStart(2, '0').slice(-2)}` });
  return GoalStateV2.encode(gs).finish();
}

const hasPort = (a: Agent, id: string): boolean => a.store.get('port', id) !== undefined;

interface SubStats { type: string; msgBacklog: number; unackedMessages: number; consumers: { consumerName: string; keyHashRangeArrays?: number[][] }[]; keySharedMode?: string }
async function subStats(b: Broker, topic: string, sub: string): Promise<SubStats | undefined> {
  const r = await fetch(`${b.webUrl}/admin/v2/persistent/public/default/${topic}/stats`);
  if (r.status !== 200) return undefined;
  const s = await r.json() as { subscriptions: Record<string, SubStats> };
  return s.subscriptions[sub];
}

/** A string key (for a message) other than `key` that lands in the same slot. */
function collidingKey(key: string, prefix: string): string {
  const want = keySlot(key);
  for (let i = 0; ; i++) {
    const k = `${prefix}${i}`;
    if (k !== key && keySlot(k) === want) return k;
  }
}

/** An IPv4 host address other than `ip` whose key lands in the same slot. */
function collidingIp(ip: string): string {
  const want = keySlot(ip);
  for (let i = 1; ; i++) {
    const cand = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    if (cand !== ip && keySlot(cand) === want) return cand;
  }
}

async function producer(b: Broker, topic: string): Promise<{ p: Producer; client: PulsarClient }> {
  const client = new PulsarClient(b.serviceUrl);
  return { p: await client.createProducer(topic), client };
}

/**
 * A broker (or the test skipped with the reason), a fresh topic, an agent for HOST_A and a
 * producer on the topic; `body` runs with them, and everything is closed after it.
 */
async function withAgentAndProducer(t: ExecutionContext, body: (s: { b: Broker; topic: string; a: Agent; p: Producer }) => Promise<void>): Promise<void> {
  const b = needBroker(t);
  if (!b) return;
  const topic = uniq('vpc');
  const a = await agentOn(b, HOST_A);
  const { p, client } = await producer(b, topic);
  try {
    await body({ b, topic, a, p });
  } finally {
    await p.close();
    client.close();
    await a.stop();
  }
}

test.serial('Subscribe over gRPC: STICKY [h,h] on the broker, own goal states applied in order, other hosts\' keys never delivered', (t) => withAgentAndProducer(t, async ({ b, topic, a, p }) => {
  t.is(await pushSubscribe(a, SubscribeOperation.Subscribe, topic, HOST_A), OperationStatus.SUCCESS);
  const st = await subStats(b, topic, 'alcor-agents');
  t.is(st?.type, 'Key_Shared');
  t.is(st?.keySharedMode, 'STICKY');
  const h = keySlot(HOST_A);
  t.deepEqual(st?.consumers.map((c) => c.keyHashRangeArrays), [[[h, h]]]);
  await p.send(portGoalState(HOST_A, 'P1', '10.1.0.5'), { key: HOST_A });
  await p.send(portGoalState('10.0.0.12', 'P2', '10.1.0.6'), { key: '10.0.0.12' });
  await p.send(portGoalState(HOST_A, 'P3', '10.1.0.7'), { key: HOST_A });
  await until(() => hasPort(a, 'P1') && hasPort(a, 'P3'), 'P1 and P3 applied');
  t.false(hasPort(a, 'P2'), 'another host\'s goal state is never applied');
  t.is(a.pulsar!.totals.applied, 2);
  // P2 waits for its owner in the backlog; ours were acked.
  await until(async () => (await subStats(b, topic, 'alcor-agents'))?.msgBacklog === 1, 'the backlog holds only the other host\'s message');
  t.is((await subStats(b, topic, 'alcor-agents'))?.unackedMessages, 0);
}));

test.serial('A message over 1 MB is scanned in slices and keeps its place: the next message, naming one of its neighbors with a newer revision, wins', (t) => withAgentAndProducer(t, async ({ topic, a, p }) => {
  t.is(await pushSubscribe(a, SubscribeOperation.Subscribe, topic, HOST_A), OperationStatus.SUCCESS);
  const large = bigState(12_000);
  const bytes = GoalStateV2.encode(large).finish();
  t.true(bytes.length > SLICED_SCAN_BYTES, `${bytes.length} bytes take the sliced scan`);
  const lastKey = Object.keys(large.neighborStates).at(-1)!;
  const id = large.neighborStates[lastKey]!.configuration!.id;
  const newer = GoalStateV2.encode(GoalStateV2.fromPartial({ neighborStates: { [lastKey]: neighborState(id, 11_999, { revisionNumber: 2, hostIpAddress: '10.0.99.99' }) } })).finish();
  await p.send(bytes, { key: HOST_A });
  await p.send(newer, { key: HOST_A });
  await until(() => a.pulsar!.totals.applied === 2, 'both applied');
  t.is(a.store.count('neighbor'), 12_000);
  t.is(a.store.get('neighbor', lastKey)?.hostIp, '10.0.99.99', 'the later message was applied after the large one');
  t.is(a.pulsar!.totals.failed, 0);
}));

test.serial('A key sharing our slot (hash collision) is acked, ignored and counted; an undecodable message is acked and counted', (t) => withAgentAndProducer(t, async ({ b, topic, a, p }) => {
  t.is(await pushSubscribe(a, SubscribeOperation.Subscribe, topic, ''), OperationStatus.SUCCESS, 'an empty key means our host IP');
  const other = collidingKey(HOST_A, 'host-');
  t.is(keySlot(other), keySlot(HOST_A));
  await p.send(portGoalState('10.9.9.9', 'PX', '10.1.0.9'), { key: other });
  await p.send(Buffer.from('not a goal state \xff\xff'), { key: HOST_A });
  await p.send(portGoalState(HOST_A, 'P4', '10.1.0.8'), { key: HOST_A });
  await until(() => hasPort(a, 'P4'), 'P4 applied');
  t.false(hasPort(a, 'PX'));
  t.is(a.pulsar!.totals.foreign, 1);
  t.is(a.pulsar!.totals.undecodable, 1);
  await until(async () => (await subStats(b, topic, 'alcor-agents'))?.msgBacklog === 0, 'everything acked');
}));

test.serial('Collision between two hosts: the second falls back to a subscription of its own that filters by key; each applies only its own', async (t) => {
  const b = needBroker(t);
  if (!b) return;
  const topic = uniq('vpc');
  const hostB = collidingIp(HOST_A);
  t.log(`${HOST_A} and ${hostB} both hash to slot ${keySlot(HOST_A)}`);
  const a = await agentOn(b, HOST_A);
  const bAgent = await agentOn(b, hostB);
  const { p, client } = await producer(b, topic);
  try {
    t.is(await pushSubscribe(a, SubscribeOperation.Subscribe, topic, HOST_A), OperationStatus.SUCCESS);
    t.is(await pushSubscribe(bAgent, SubscribeOperation.Subscribe, topic, hostB), OperationStatus.SUCCESS);
    t.is(a.pulsar!.list()[0]?.mode, 'sticky');
    t.is(bAgent.pulsar!.list()[0]?.mode, 'fallback');
    t.is((await subStats(b, topic, `alcor-agents-${hostB}`))?.type, 'Exclusive');
    await p.send(portGoalState(hostB, 'PB', '10.1.0.20'), { key: hostB });
    await p.send(portGoalState(HOST_A, 'PA', '10.1.0.21'), { key: HOST_A });
    await until(() => hasPort(a, 'PA') && hasPort(bAgent, 'PB'), 'each host applied its own');
    await until(() => a.pulsar!.totals.foreign === 1 && bAgent.pulsar!.totals.foreign === 1, 'each ignored the other\'s');
    t.false(hasPort(a, 'PB'));
    t.false(hasPort(bAgent, 'PA'));
    // Unsubscribe deletes the fallback subscription (it is B's alone).
    t.is(await pushSubscribe(bAgent, SubscribeOperation.Unsubscribe, topic, hostB), OperationStatus.SUCCESS);
    t.is(await subStats(b, topic, `alcor-agents-${hostB}`), undefined);
  } finally {
    await p.close();
    client.close();
    await a.stop();
    await bAgent.stop();
  }
});

/** A dataplane that holds each apply until released, or fails it. */
class GatedDataplane extends NullDataplane {
  calls = 0;
  failNext = 0;
  private gate: Promise<void> | null = null;
  private open: (() => void) | null = null;
  hold(): void {
    this.gate = new Promise((r) => { this.open = r; });
  }
  release(): void {
    this.open?.();
    this.gate = null;
  }
  override async apply(events: readonly ResourceEvent[]): ReturnType<NullDataplane['apply']> {
    this.calls += 1;
    if (this.gate) await this.gate;
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error('switch unavailable (test)');
    }
    return super.apply(events);
  }
}

test.serial('Ack only after apply: a crash during the apply loses nothing (redelivered to the restarted agent); a failed apply is redelivered and applied', async (t) => {
  const b = needBroker(t);
  if (!b) return;
  const topic = uniq('vpc');
  const dir = stateDir();
  const gated = new GatedDataplane();
  gated.hold();
  const a1 = await agentOn(b, HOST_A, { stateDir: dir, dataplane: gated });
  const { p, client } = await producer(b, topic);
  try {
    t.is(await pushSubscribe(a1, SubscribeOperation.Subscribe, topic, HOST_A), OperationStatus.SUCCESS);
    await p.send(portGoalState(HOST_A, 'P5', '10.1.0.30'), { key: HOST_A });
    await until(() => gated.calls === 1, 'the apply is under way');
    // Crash: the connection drops with the message unacked, the agent never finishes.
    a1.pulsar!.client.close();
    await until(async () => (await subStats(b, topic, 'alcor-agents'))?.consumers.length === 0, 'the broker saw the consumer go');
    t.is((await subStats(b, topic, 'alcor-agents'))?.msgBacklog, 1, 'the message is still owed');
    // The restarted agent resumes the subscription from the state dir and gets it again.
    const failing = new GatedDataplane();
    const a2 = await agentOn(b, HOST_A, { stateDir: dir, dataplane: failing });
    try {
      await until(() => hasPort(a2, 'P5') && a2.pulsar!.totals.applied === 1, 'P5 applied by the restarted agent', 120_000);
      await until(async () => (await subStats(b, topic, 'alcor-agents'))?.msgBacklog === 0, 'acked once applied');
      // A failed apply (the dataplane refuses) is not acked: it comes again and is applied.
      failing.failNext = 1;
      await p.send(portGoalState(HOST_A, 'P6', '10.1.0.31'), { key: HOST_A });
      await until(() => a2.pulsar!.totals.applied === 2, 'P6 applied after a failed first attempt', 120_000);
      t.is(a2.pulsar!.totals.failed, 1, 'the first apply failed and the message was redelivered');
      t.true(hasPort(a2, 'P6'));
      await until(async () => (await subStats(b, topic, 'alcor-agents'))?.msgBacklog === 0, 'acked once applied');
    } finally {
      await a2.stop();
    }
  } finally {
    gated.release();
    await p.close();
    client.close();
    await a1.stop().catch(() => undefined);
  }
});

test.serial('Durable backlog while the agent is down; Unsubscribe stops consuming', async (t) => {
  const b = needBroker(t);
  if (!b) return;
  const topic = uniq('vpc');
  const dir = stateDir();
  const a1 = await agentOn(b, HOST_A, { stateDir: dir });
  t.is(await pushSubscribe(a1, SubscribeOperation.Subscribe, topic, HOST_A), OperationStatus.SUCCESS);
  await a1.stop();
  const { p, client } = await producer(b, topic);
  try {
    for (let i = 0; i < 3; i++) await p.send(portGoalState(HOST_A, `PD${i}`, `10.1.0.${40 + i}`), { key: HOST_A });
    const a2 = await agentOn(b, HOST_A, { stateDir: dir });
    try {
      await until(() => [0, 1, 2].every((i) => hasPort(a2, `PD${i}`)), 'the backlog applied after the restart');
      // Acks follow the whole apply (store, then dataplane): wait for them, or an unacked one
      // would still count in the backlog after the unsubscribe below.
      await until(async () => (await subStats(b, topic, 'alcor-agents'))?.msgBacklog === 0, 'the backlog acked');
      t.is(await pushSubscribe(a2, SubscribeOperation.Unsubscribe, topic, HOST_A), OperationStatus.SUCCESS);
      t.deepEqual(a2.pulsar!.list(), []);
      await until(async () => (await subStats(b, topic, 'alcor-agents'))?.consumers.length === 0, 'our consumer is gone');
      await p.send(portGoalState(HOST_A, 'PE', '10.1.0.50'), { key: HOST_A });
      await until(async () => (await subStats(b, topic, 'alcor-agents'))?.msgBacklog === 1, 'the new message waits in the backlog');
      t.false(hasPort(a2, 'PE'));
    } finally {
      await a2.stop();
    }
    // Unsubscribed is remembered too: a restart does not resume the topic.
    const a3 = await agentOn(b, HOST_A, { stateDir: dir });
    t.deepEqual(a3.pulsar!.list(), []);
    await a3.stop();
  } finally {
    await p.close();
    client.close();
  }
});

test.serial('Subscribe fails cleanly without a broker; the agent re-subscribes by itself after a broker restart', async (t) => {
  const b = needBroker(t);
  if (!b) return;
  const topic = uniq('vpc');
  const nowhere = { ...b, serviceUrl: `pulsar://127.0.0.1:${await freePort()}` };
  const lonely = await agentOn(nowhere, HOST_A);
  try {
    t.is(await pushSubscribe(lonely, SubscribeOperation.Subscribe, topic, HOST_A), OperationStatus.FAILURE, 'no SUCCESS without a broker');
    t.deepEqual(lonely.pulsar!.list(), []);
  } finally {
    await lonely.stop();
  }
  const a = await agentOn(b, HOST_A);
  try {
    t.is(await pushSubscribe(a, SubscribeOperation.Subscribe, topic, HOST_A), OperationStatus.SUCCESS);
    t.is(await pushSubscribe(a, SubscribeOperation.Subscribe, '', HOST_A), OperationStatus.INVALID_ARG);
    const restarted = Date.now();
    await b.restart();
    t.log(`broker restarted in ${((Date.now() - restarted) / 1000).toFixed(1)} s`);
    const { p, client } = await producer(b, topic);
    try {
      await p.send(portGoalState(HOST_A, 'PR', '10.1.0.60'), { key: HOST_A });
      await until(() => hasPort(a, 'PR'), 'applied after the broker came back', 180_000);
      t.is(a.pulsar!.list()[0]?.state, 'ready');
    } finally {
      await p.close();
      client.close();
    }
  } finally {
    await a.stop();
  }
});
