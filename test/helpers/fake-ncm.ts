// A fake NCM (a real gRPC server, the controller's side of the contract), below the protocol
// boundary: it records RequestGoalStates and, on each, may push a goal state to the agent first.
import * as grpc from '@grpc/grpc-js';
import { OperationStatus } from '../../proto/gen/alcor/common.js';
import { GoalStateProvisionerService, type HostRequest, type HostRequestReply } from '../../proto/gen/alcor/goalstateprovisioner.js';

/**
 * A fake NCM: records requests; on each, optionally pushes a goal state to the agent first, then
 * answers every request of the call with what `onRequest` resolved to (default SUCCESS; NCM's
 * FAILURE means not routable).
 */
export async function fakeNcm(onRequest: (req: HostRequest) => Promise<void | OperationStatus>): Promise<{ addr: string; requests: HostRequest[]; stop(): Promise<void> }> {
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
        (status) => cb(null, { formatVersion: 1, operationStatuses: call.request.stateRequests.map((r) => ({ requestId: r.requestId, operationStatus: status ?? OperationStatus.SUCCESS })), totalOperationTime: 0 }),
        (e: unknown) => cb({ code: grpc.status.INTERNAL, details: String(e) }),
      );
    },
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { addr: `127.0.0.1:${port}`, requests, stop: () => new Promise((r) => server.tryShutdown(() => r())) };
}
