// The gRPC face as NCM uses it, over real gRPC on loopback: warm-up streams, one and many
// states per stream, concurrent streams, large states and the size limit, undecodable input,
// the V1 unary call.
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalState, GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { GoalStateOperationReply } from '../proto/gen/alcor/goalstateprovisioner.js';
import { makeClient, pushStream, pushUnary } from '../agent/push.js';
import { bigState, neighborState, portState, subnetState, withAgent } from './helpers/agents.js';
import { rawClient } from './helpers/raw-grpc.js';
import { encodeReply, encodeReplyAsync, toReply } from '../agent/reply.js';
import { ResultTable } from '../agent/results.js';

const ok = (r: GoalStateOperationReply | undefined): boolean => !!r && r.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS);

test('warm-up: empty GoalStateV2s on half-open streams get empty replies; the agent keeps serving', async (t) => {
  await withAgent(async (agent, addr) => {
    const clients = Array.from({ length: 10 }, () => makeClient(addr));
    const replies = await Promise.all(clients.map((c) => new Promise<GoalStateOperationReply>((resolve, reject) => {
      const call = c.pushGoalStatesStream();
      call.on('data', (r: GoalStateOperationReply) => resolve(r));
      call.on('error', reject);
      call.write(GoalStateV2.fromPartial({})); // never half-closed, as NCM does
    })));
    for (const r of replies) t.deepEqual(r.operationStatuses, []);
    const [real] = await pushStream(clients[0]!, [GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') } })]);
    t.true(ok(real));
    t.is(agent.store.count('subnet'), 1);
    for (const c of clients) c.close();
  });
});

test('many states on one stream: one reply each, in order, all applied', async (t) => {
  await withAgent(async (agent, addr) => {
    const states = Array.from({ length: 20 }, (_, i) => GoalStateV2.fromPartial({
      subnetStates: { S: subnetState('S') },
      portStates: { [`P${i}`]: portState(`P${i}`, { macAddress: `fa:16:3e:00:01:${i.toString(16).padStart(2, '0')}`, fixedIps: [{ subnetId: 'S', ipAddress: `10.1.0.${10 + i}` }] }) },
    }));
    const client = makeClient(addr);
    const replies = await pushStream(client, states);
    client.close();
    t.is(replies.length, 20);
    replies.forEach((r, i) => {
      t.true(ok(r));
      t.true(r.operationStatuses.some((s) => s.resourceId === `P${i}`), `reply ${i} is for P${i}`);
    });
    t.is(agent.store.count('port'), 20);
  });
});

test('concurrent streams on different channels all apply', async (t) => {
  await withAgent(async (agent, addr) => {
    const clients = Array.from({ length: 8 }, () => makeClient(addr));
    const replies = await Promise.all(clients.map((c, i) => pushStream(c, [GoalStateV2.fromPartial({
      subnetStates: { S: subnetState('S') },
      neighborStates: Object.fromEntries(Array.from({ length: 50 }, (_, j) => [`L2/n${i}-${j}`, neighborState(`n${i}-${j}`, i * 100 + j)])),
    })])));
    for (const r of replies) t.true(ok(r[0]));
    t.is(agent.store.count('neighbor'), 400);
    for (const c of clients) c.close();
  });
});

test('a multi-megabyte state (50,000 neighbors) is accepted', async (t) => {
  await withAgent(async (agent, addr) => {
    const gs = bigState(50_000);
    const size = GoalStateV2.encode(gs).finish().length;
    t.true(size > 4 * 1024 * 1024, `encoded ${size} bytes, above grpc-js's default 4 MB`);
    const client = makeClient(addr);
    const [reply] = await pushStream(client, [gs]);
    client.close();
    t.is(reply!.operationStatuses.length, 50_002);
    t.true(ok(reply));
    t.is(agent.store.count('neighbor'), 50_000);
    t.true(reply!.messageTotalOperationTime > 0);
  });
});

test('a message over the configured limit is refused with RESOURCE_EXHAUSTED; the next stream is served', async (t) => {
  await withAgent(async (agent, addr) => {
    const client = makeClient(addr);
    const err = await t.throwsAsync(pushStream(client, [bigState(10_000)]));
    t.is((err as unknown as grpc.ServiceError).code, grpc.status.RESOURCE_EXHAUSTED);
    t.regex(err.message, /larger than max/);
    const [small] = await pushStream(client, [GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') } })]);
    t.true(ok(small));
    t.is(agent.store.count('subnet'), 1);
    client.close();
  }, { maxMessageBytes: 1024 * 1024 });
});

test('an undecodable message ends its stream with INVALID_ARGUMENT; the agent keeps serving', async (t) => {
  await withAgent(async (agent, addr) => {
    const raw = rawClient(addr);
    const status = await new Promise<grpc.ServiceError>((resolve) => {
      const call = raw.push();
      call.on('data', () => undefined);
      call.on('error', (e: grpc.ServiceError) => resolve(e));
      call.write(Buffer.from([0x3a, 0xff, 0xff, 0xff, 0x0f, 0x01])); // field 7, length far past the end
      call.end();
    });
    t.is(status.code, grpc.status.INVALID_ARGUMENT);
    t.regex(status.details, /undecodable GoalStateV2/);
    raw.close();
    const client = makeClient(addr);
    t.true(ok((await pushStream(client, [GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') } })]))[0]));
    client.close();
    t.is(agent.store.count('subnet'), 1);
  });
});

test('V1 unary PushNetworkResourceStates applies lists and answers once', async (t) => {
  await withAgent(async (agent, addr) => {
    const client = makeClient(addr);
    const reply = await pushUnary(client, GoalState.fromPartial({
      subnetStates: [subnetState('S')], portStates: [portState('P1')], neighborStates: [neighborState('N1', 1)],
    }));
    client.close();
    t.is(reply.operationStatuses.length, 3);
    t.true(ok(reply));
    t.truthy(agent.store.get('port', 'P1'));
    t.truthy(agent.store.get('neighbor', 'L2/N1'));
  });
});

test('the reply encoder, whole or in slices that yield, gives the bytes the generated encoder gives', async (t) => {
  const rs = new ResultTable();
  const statuses = ['SUCCESS', 'FAILURE', 'INVALID_ARG', 'PENDING', 'OUT_OF_ORDER'] as const;
  for (let i = 0; i < 10_000; i++) {
    const j = rs.add(i % 3 ? 'neighbor' : 'port', i % 7 ? `id-${i}-é` : '', i % 4);
    if (i % 2) rs.markChanged(j);
    rs.setConfigUs(j, i * 3);
    if (i % 5) rs.setStatus(j, statuses[i % 5]!, i % 10 === 1 ? `reason ${i} ✓` : '');
  }
  const result = { results: rs, events: 5000, dataplaneUs: 123_456, savedUs: 0, totalUs: 2_345_678, cancelled: false };
  const expected = Buffer.from(GoalStateOperationReply.encode(toReply(result)).finish());
  t.deepEqual(encodeReply(result), expected);
  t.deepEqual(await encodeReplyAsync(result, 0), expected);
});
