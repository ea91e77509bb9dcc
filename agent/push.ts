// `aca push`: send goal states the way the controller does. V2: one new PushGoalStatesStream
// per file, one message, half-close, read the reply. V1 (--v1): the unary call.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { OperationStatus, operationStatusToJSON, operationTypeToJSON, resourceTypeToJSON } from '../proto/gen/alcor/common.js';
import { GoalState, GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { GoalStateOperationReply, GoalStateProvisionerClient } from '../proto/gen/alcor/goalstateprovisioner.js';

import { PushError } from './errors.js';
import { strictProblems } from './strict-json.js';

export { PushError };

type Codec<T> = { fromJSON(o: unknown): T; decode(b: Uint8Array): T; encode(m: T): { finish(): Uint8Array } };

const STATE_FIELDS = ['vpcStates', 'subnetStates', 'portStates', 'neighborStates', 'securityGroupStates', 'dhcpStates', 'routerStates', 'gatewayStates'] as const;

/** Resources in a decoded GoalState (lists) or GoalStateV2 (maps). */
function resourceCount(m: unknown): number {
  let n = 0;
  for (const f of STATE_FIELDS) {
    const v = (m as Record<string, unknown>)[f];
    if (Array.isArray(v)) n += v.length;
    else if (v && typeof v === 'object') n += Object.keys(v).length;
  }
  return n;
}

/**
 * A file holds proto3 canonical JSON (snake_case or camelCase) or the binary encoding. With
 * `strict` (what `aca push` and `aca render` use) it must also be that message and nothing
 * else: no unknown keys, maps and lists where the version has them, at least one resource, and
 * a binary file that decodes whole.
 */
export function readGoalStateFile<T>(path: string, codec: Codec<T>, strict?: 'GoalState' | 'GoalStateV2'): T {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new PushError(`cannot read ${path}: ${(e as Error).message}`);
  }
  if (strict && bytes.toString('utf8').trim() === '') throw new PushError(`${path} is empty: nothing to push`);
  const other = strict === 'GoalState' ? 'a GoalStateV2 (maps keyed by id): push it without --v1' : 'a V1 GoalState (lists): push it with --v1';
  const head = bytes.subarray(0, 64).toString('utf8').trimStart();
  let message: T;
  if (head.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch (e) {
      throw new PushError(`${path} is not valid JSON: ${(e as Error).message}`);
    }
    if (strict) {
      const problems = strictProblems(strict, json);
      if (problems.length > 0) {
        const versionMixup = problems.some((p) => /_states|States/.test(p.split(':')[0] ?? '') && /must be a (map|list)/.test(p));
        throw new PushError(`${path} is not a valid ${strict}: ${problems.join('; ')}${versionMixup ? `; this looks like ${other}` : ''}`);
      }
    }
    try {
      message = codec.fromJSON(json);
    } catch (e) {
      throw new PushError(`${path} is not a valid ${strict ?? 'goal state'}: ${(e as Error).message}`);
    }
  } else {
    try {
      message = codec.decode(bytes);
    } catch (e) {
      throw new PushError(`${path} is neither JSON nor a binary ${strict ?? 'goal state'}${strict ? ` (or it is ${other.split(':')[0]})` : ''}: ${(e as Error).message}`);
    }
    if (strict && codec.encode(message).finish().length !== bytes.length) {
      throw new PushError(`${path} decodes as a ${strict} only in part (it holds fields a ${strict} does not have): is it ${other}?`);
    }
  }
  if (strict && resourceCount(message) === 0) throw new PushError(`${path} holds no resources: nothing to push`);
  return message;
}

export function makeClient(address: string, credentials = grpc.credentials.createInsecure()): GoalStateProvisionerClient {
  return new GoalStateProvisionerClient(address, credentials, {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
  });
}

/** Waits until the channel is connected; a clear error after `timeoutMs`. */
export function connect(client: GoalStateProvisionerClient, address: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + timeoutMs, (err) => {
      if (!err) return resolve();
      reject(new PushError(`cannot connect to the agent at ${address} within ${timeoutMs / 1000} s (is it running there, and does it speak TLS exactly when this client does?): ${err.message}`));
    });
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

/** One goal state published on the MQ path (`aca push --pulsar`). */
export interface Published { file: string; topic: string; key: string; slot: number; messageId: { ledgerId: number; entryId: number }; bytes: number }

/**
 * Publish goal states as Alcor's DPM does: raw GoalStateV2 bytes on the VPC's topic, message key
 * = the host (or its salted key, agent/pulsar-keys.ts), one message per file, in order (each send
 * waits for the broker's receipt, so order per key holds). Publishes nothing when the broker
 * cannot be reached or the topic is not a topic name; on a failed send, what was published
 * before it is in `published` of the error.
 */
export async function publishPulsar(url: string, topic: string, key: string, states: { file: string; bytes: Uint8Array }[], timeoutMs: number): Promise<Published[]> {
  const { PulsarClient, PulsarError, topicName } = await import('./pulsar-client.js');
  const { keySlot } = await import('./pulsar-proto.js');
  if (key === '') throw new PushError('--key must name the host (its IP, or a salted key IP#n), not be empty');
  let client: InstanceType<typeof PulsarClient>;
  let full: string;
  try {
    full = topicName(topic);
    client = new PulsarClient(url, { connectTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs });
  } catch (e) {
    if (e instanceof PulsarError) throw new PushError(e.message);
    throw e;
  }
  const published: Published[] = [];
  try {
    let producer;
    try {
      producer = await client.createProducer(full);
    } catch (e) {
      throw new PushError(`cannot publish to ${full} at ${url} within ${timeoutMs / 1000} s (is a Pulsar broker running there?): ${(e as Error).message}`);
    }
    try {
      for (const s of states) {
        let id;
        try {
          id = await producer.send(s.bytes, { key });
        } catch (e) {
          throw Object.assign(new PushError(`${s.file}: not published${published.length > 0 ? ` (the ${published.length} before it were)` : ''}: ${(e as Error).message}`), { published });
        }
        published.push({ file: s.file, topic: full, key, slot: keySlot(key), messageId: { ledgerId: Number(id.ledgerId), entryId: Number(id.entryId) }, bytes: s.bytes.length });
      }
    } finally {
      await producer.close();
    }
  } finally {
    client.close();
  }
  return published;
}

export const formatPublished = (p: Published): string =>
  `${p.file}: published to ${p.topic}, key ${p.key} (slot ${p.slot}), message ${p.messageId.ledgerId}:${p.messageId.entryId}, ${p.bytes} bytes`;
