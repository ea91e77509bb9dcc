// The agent as a client of the controller: a fake NCM (a real gRPC server, the controller's side
// of the contract) pushes to the agent before answering RequestGoalStates, as NCM does; and an
// agent with a controller configured announces AGENT_RESTARTED at start.
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { OperationStatus, RequestType } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import {
  GoalStateProvisionerService, type HostRequest, type HostRequestReply,
} from '../proto/gen/alcor/goalstateprovisioner.js';
import { ControllerClient } from '../agent/controller-client.js';
import { silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';
import { subnetState, withAgent } from './helpers/agents.js';

/** A fake NCM: records requests; on each, optionally pushes a goal state to the agent first. */
async function fakeNcm(onRequest: (req: HostRequest) => Promise<void>): Promise<{ addr: string; requests: HostRequest[]; stop(): Promise<void> }> {
  const requests: HostRequest[] = [];
  const server = new grpc.Server();
  const unimplemented = (_: unknown, cb: grpc.sendUnaryData<never>) => cb({ code: grpc.status.UNIMPLEMENTED });
  server.addService(GoalStateProvisionerService, {
    pushNetworkResourceStates: unimplemented,
    pushGoalStatesStream: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
    pushGoalstates: unimplemented,
    requestGoalStates: (call: grpc.ServerUnaryCall<HostRequest, HostRequestReply>, cb: grpc.sendUnaryData<HostRequestReply>) => {
      requests.push(call.request);
      onRequest(call.request).then(
        () => cb(null, { formatVersion: 1, operationStatuses: call.request.stateRequests.map((r) => ({ requestId: r.requestId, operationStatus: OperationStatus.SUCCESS })), totalOperationTime: 0 }),
        (e: unknown) => cb({ code: grpc.status.INTERNAL, details: String(e) }),
      );
    },
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { addr: `127.0.0.1:${port}`, requests, stop: () => new Promise((r) => server.tryShutdown(() => r())) };
}

test('RequestGoalStates outstanding while the controller pushes to the agent: no deadlock', async (t) => {
  await withAgent(async (agent, agentAddr) => {
    const ncm = await fakeNcm(async () => {
      // NCM pushes the answer to the agent and waits for its reply before answering the request.
      const c = makeClient(agentAddr);
      const [reply] = await pushStream(c, [GoalStateV2.fromPartial({ subnetStates: { ONDEMAND: subnetState('ONDEMAND') } })]);
      c.close();
      if (reply?.operationStatuses[0]?.operationStatus !== OperationStatus.SUCCESS) throw new Error('push failed');
    });
    const client = new ControllerClient(ncm.addr, silentLogger());
    const reply = await client.request([{ tunnelId: 5001, sourceIp: '10.1.0.5', destinationIp: '10.1.0.9' }], 10_000);
    client.close();
    await ncm.stop();
    t.is(reply.operationStatuses.length, 1);
    t.is(reply.operationStatuses[0]!.operationStatus, OperationStatus.SUCCESS);
    t.regex(reply.operationStatuses[0]!.requestId, /^[0-9a-f-]{36}$/);
    t.truthy(agent.store.get('subnet', 'ONDEMAND'), 'the pushed state was applied while the request was outstanding');
    t.is(ncm.requests[0]!.stateRequests[0]!.requestType, RequestType.ON_DEMAND);
  });
});

test('an agent with a controller configured sends AGENT_RESTARTED with its host IP at start', async (t) => {
  const ncm = await fakeNcm(() => Promise.resolve());
  await withAgent(async () => {
    for (let i = 0; i < 100 && ncm.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  }, { controller: ncm.addr });
  await ncm.stop();
  t.is(ncm.requests.length, 1);
  const r = ncm.requests[0]!.stateRequests[0]!;
  t.is(r.requestType, RequestType.AGENT_RESTARTED);
  t.is(r.sourceIp, '10.0.0.11');
});
