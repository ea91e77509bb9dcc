// The agent as a client of the controller (NCM): RequestGoalStates for on-demand lookups and
// for AGENT_RESTARTED at start. NCM pushes the goal state to us *before* it answers, so calls
// here are plain async gRPC calls that never hold up the server side.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'winston';
import type { OnDemandAsk, OnDemandQuery } from '../dataplane/on-demand.js';
import { EtherType, OperationStatus, Protocol, RequestType } from '../proto/gen/alcor/common.js';
import {
  GoalStateProvisionerClient, type HostRequest_ResourceStateRequest, type HostRequestReply,
} from '../proto/gen/alcor/goalstateprovisioner.js';

export type StateRequest = Partial<HostRequest_ResourceStateRequest>;

export class ControllerClient {
  private readonly client: GoalStateProvisionerClient;

  constructor(readonly address: string, private readonly log: Logger, credentials = grpc.credentials.createInsecure()) {
    this.client = new GoalStateProvisionerClient(address, credentials, {
      'grpc.max_receive_message_length': -1,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 20_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
  }

  /** One RequestGoalStates call; request ids are generated where missing. */
  request(requests: StateRequest[], deadlineMs = 30_000): Promise<HostRequestReply> {
    const stateRequests = requests.map((r) => ({
      requestType: RequestType.ON_DEMAND, requestId: randomUUID(), tunnelId: 0, sourceIp: '', sourcePort: 0,
      destinationIp: '', destinationPort: 0, ethertype: EtherType.IPV4, protocol: Protocol.TCP, ...r,
    }));
    return new Promise((resolve, reject) => {
      this.client.requestGoalStates(
        { formatVersion: 0, stateRequests },
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err, reply) => (err ? reject(err) : resolve(reply)),
      );
    });
  }

  /**
   * Tell the controller this agent (re)started so it can replay our state. Retries with
   * backoff in the background; never blocks start-up.
   */
  announceRestart(hostIp: string, attempts = 5): Promise<boolean> {
    const attempt = async (n: number): Promise<boolean> => {
      try {
        const reply = await this.request([{ requestType: RequestType.AGENT_RESTARTED, sourceIp: hostIp }], 10_000);
        const ok = reply.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS);
        this.log.info('AGENT_RESTARTED sent to controller', { controller: this.address, ok });
        return ok;
      } catch (e) {
        if (n + 1 >= attempts) {
          this.log.warn('controller did not take AGENT_RESTARTED', { controller: this.address, error: (e as Error).message });
          return false;
        }
        await new Promise((r) => setTimeout(r, Math.min(30_000, 500 * 2 ** n)).unref());
        return attempt(n + 1);
      }
    };
    return attempt(0);
  }

  close(): void {
    this.client.close();
  }
}

const PROTOCOLS: Record<OnDemandQuery['protocol'], Protocol> = { tcp: Protocol.TCP, udp: Protocol.UDP, icmp: Protocol.ICMP, arp: Protocol.ARP, other: Protocol.TCP };

/**
 * The on-demand engine's question as NCM takes it: one ON_DEMAND request; SUCCESS is routable,
 * FAILURE not routable (common.proto), anything else an error.
 */
export function onDemandAsk(controller: ControllerClient, deadlineMs = 10_000): OnDemandAsk {
  return async (q) => {
    const requestId = randomUUID();
    const reply = await controller.request([{
      requestType: RequestType.ON_DEMAND, requestId, tunnelId: q.vni, sourceIp: q.sourceIp, sourcePort: q.sourcePort,
      destinationIp: q.destinationIp, destinationPort: q.destinationPort, ethertype: EtherType.IPV4, protocol: PROTOCOLS[q.protocol],
    }], deadlineMs);
    const status = (reply.operationStatuses.find((s) => s.requestId === requestId) ?? reply.operationStatuses.at(-1))?.operationStatus;
    if (status === OperationStatus.SUCCESS) return true;
    if (status === OperationStatus.FAILURE) return false;
    throw new Error(`the controller answered ${status === undefined ? 'nothing' : OperationStatus[status]} for on-demand request ${requestId}`);
  };
}
