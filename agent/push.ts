// `aca push`: send goal states the way the controller does. V2: one new PushGoalStatesStream
// per file, one message, half-close, read the reply. V1 (--v1): the unary call.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { OperationStatus, operationStatusToJSON, operationTypeToJSON, resourceTypeToJSON } from '../proto/gen/alcor/common.js';
import { GoalState, GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { GoalStateOperationReply, GoalStateProvisionerClient } from '../proto/gen/alcor/goalstateprovisioner.js';

import { PushError } from './errors.js';

export { PushError };

/** A file holds proto3 canonical JSON (snake_case or camelCase) or the binary encoding. */
export function readGoalStateFile<T>(path: string, codec: { fromJSON(o: unknown): T; decode(b: Uint8Array): T }): T {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new PushError(`cannot read ${path}: ${(e as Error).message}`);
  }
  const head = bytes.subarray(0, 64).toString('utf8').trimStart();
  if (head.startsWith('{')) {
    try {
      return codec.fromJSON(JSON.parse(bytes.toString('utf8')));
    } catch (e) {
      throw new PushError(`${path} is not valid JSON: ${(e as Error).message}`);
    }
  }
  try {
    return codec.decode(bytes);
  } catch (e) {
    throw new PushError(`${path} is neither JSON nor a binary goal state: ${(e as Error).message}`);
  }
}

export function makeClient(address: string): GoalStateProvisionerClient {
  return new GoalStateProvisionerClient(address, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
  });
}

/** Send goal states on one stream; one reply per message, in order. */
export function pushStream(client: GoalStateProvisionerClient, states: GoalStateV2[], deadlineMs = 300_000): Promise<GoalStateOperationReply[]> {
  return new Promise((resolve, reject) => {
    const replies: GoalStateOperationReply[] = [];
    const call = client.pushGoalStatesStream(new grpc.Metadata(), { deadline: Date.now() + deadlineMs });
    call.on('data', (r: GoalStateOperationReply) => replies.push(r));
    call.on('error', reject);
    call.on('end', () => resolve(replies));
    for (const s of states) call.write(s);
    call.end();
  });
}

export function pushUnary(client: GoalStateProvisionerClient, state: GoalState, deadlineMs = 300_000): Promise<GoalStateOperationReply> {
  return new Promise((resolve, reject) => {
    client.pushNetworkResourceStates(state, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, reply) =>
      err ? reject(err) : resolve(reply));
  });
}

export const allSucceeded = (replies: GoalStateOperationReply[]): boolean =>
  replies.every((r) => r.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));

/** A readable table: one line per resource, then the message total. */
export function formatReply(file: string, reply: GoalStateOperationReply): string {
  const rows = reply.operationStatuses.map((s) => [
    resourceTypeToJSON(s.resourceType), s.resourceId, operationTypeToJSON(s.operationType),
    operationStatusToJSON(s.operationStatus), String(s.stateElapseTime), s.statusDetail,
  ]);
  const header = ['TYPE', 'ID', 'OP', 'STATUS', 'µs', 'DETAIL'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const out = [`${file}: ${reply.operationStatuses.length} resources, ${reply.messageTotalOperationTime} µs`];
  if (rows.length > 0) out.push(line(header), ...rows.map(line));
  return out.join('\n');
}
