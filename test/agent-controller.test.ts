// The agent as a client of the controller: a fake NCM (a real gRPC server, the controller's side
// of the contract) pushes to the agent before answering RequestGoalStates, as NCM does; and an
// agent with a controller configured announces AGENT_RESTARTED at start.
import test from 'ava';
import { OperationStatus, RequestType } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { ControllerClient } from '../agent/controller-client.js';
import { silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';
import { subnetState, withAgent } from './helpers/agents.js';
import { fakeNcm } from './helpers/fake-ncm.js';

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
