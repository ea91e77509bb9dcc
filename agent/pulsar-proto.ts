// The parts of Apache Pulsar's binary protocol the agent speaks (agent/pulsar-client.ts): the
// protobuf messages (a subset of PulsarApi.proto, proto2, written here from the protocol's field
// numbers; enums carried as int32, which is the same varint on the wire), the frame layout, the
// CRC-32C checksum of payload frames, and the key → Key_Shared slot hash.
//
// Frames: simple   [total:u32][cmdSize:u32][BaseCommand]
//         payload  [total:u32][cmdSize:u32][BaseCommand][0x0e01][crc32c:u32][metaSize:u32][MessageMetadata][payload]
// (big-endian; total counts everything after itself; the CRC covers metaSize..end).
import protobuf from 'protobufjs';

const SCHEMA = `
syntax = "proto2";
package aca.pulsar;
message MessageIdData { required uint64 ledgerId = 1; required uint64 entryId = 2; optional int32 partition = 3 [default = -1];
  optional int32 batch_index = 4 [default = -1]; repeated int64 ack_set = 5; optional int32 batch_size = 6; }
message KeyValue { required string key = 1; required string value = 2; }
message MessageMetadata { required string producer_name = 1; required uint64 sequence_id = 2; required uint64 publish_time = 3;
  repeated KeyValue properties = 4; optional string partition_key = 6; optional int32 compression = 8;
  optional uint32 uncompressed_size = 9; optional int32 num_messages_in_batch = 11 [default = 1]; optional bytes ordering_key = 18; }
message SingleMessageMetadata { repeated KeyValue properties = 1; optional string partition_key = 2; required int32 payload_size = 3;
  optional bool compacted_out = 4; optional bytes ordering_key = 7; optional bool null_value = 9; }
message CommandConnect { required string client_version = 1; optional int32 protocol_version = 4; }
message CommandConnected { required string server_version = 1; optional int32 protocol_version = 2; optional int32 max_message_size = 3; }
message IntRange { required int32 start = 1; required int32 end = 2; }
message KeySharedMeta { required int32 keySharedMode = 1; repeated IntRange hashRanges = 3; optional bool allowOutOfOrderDelivery = 4; }
message CommandSubscribe { required string topic = 1; required string subscription = 2; required int32 subType = 3;
  required uint64 consumer_id = 4; required uint64 request_id = 5; optional string consumer_name = 6; optional bool durable = 8;
  optional int32 initialPosition = 13; optional KeySharedMeta keySharedMeta = 17; }
message CommandLookupTopic { required string topic = 1; required uint64 request_id = 2; optional bool authoritative = 3; }
message CommandLookupTopicResponse { optional string brokerServiceUrl = 1; optional string brokerServiceUrlTls = 2; optional int32 response = 3;
  required uint64 request_id = 4; optional bool authoritative = 5; optional int32 error = 6; optional string message = 7;
  optional bool proxy_through_service_url = 8; }
message CommandProducer { required string topic = 1; required uint64 producer_id = 2; required uint64 request_id = 3; optional string producer_name = 4; }
message CommandSend { required uint64 producer_id = 1; required uint64 sequence_id = 2; optional int32 num_messages = 3; }
message CommandSendReceipt { required uint64 producer_id = 1; required uint64 sequence_id = 2; optional MessageIdData message_id = 3; }
message CommandSendError { required uint64 producer_id = 1; required uint64 sequence_id = 2; required int32 error = 3; required string message = 4; }
message CommandMessage { required uint64 consumer_id = 1; required MessageIdData message_id = 2; optional uint32 redelivery_count = 3; }
message CommandAck { required uint64 consumer_id = 1; required int32 ack_type = 2; repeated MessageIdData message_id = 3; }
message CommandFlow { required uint64 consumer_id = 1; required uint32 messagePermits = 2; }
message CommandUnsubscribe { required uint64 consumer_id = 1; required uint64 request_id = 2; }
message CommandCloseProducer { required uint64 producer_id = 1; required uint64 request_id = 2; }
message CommandCloseConsumer { required uint64 consumer_id = 1; required uint64 request_id = 2; }
message CommandRedeliverUnacknowledgedMessages { required uint64 consumer_id = 1; repeated MessageIdData message_ids = 2; }
message CommandSuccess { required uint64 request_id = 1; }
message CommandError { required uint64 request_id = 1; required int32 error = 2; required string message = 3; }
message CommandProducerSuccess { required uint64 request_id = 1; required string producer_name = 2; optional int64 last_sequence_id = 3; }
message CommandPing {}
message CommandPong {}
message BaseCommand { required int32 type = 1;
  optional CommandConnect connect = 2; optional CommandConnected connected = 3; optional CommandSubscribe subscribe = 4;
  optional CommandProducer producer = 5; optional CommandSend send = 6; optional CommandSendReceipt send_receipt = 7;
  optional CommandSendError send_error = 8; optional CommandMessage message = 9; optional CommandAck ack = 10;
  optional CommandFlow flow = 11; optional CommandUnsubscribe unsubscribe = 12; optional CommandSuccess success = 13;
  optional CommandError error = 14; optional CommandCloseProducer close_producer = 15; optional CommandCloseConsumer close_consumer = 16;
  optional CommandProducerSuccess producer_success = 17; optional CommandPing ping = 18; optional CommandPong pong = 19;
  optional CommandRedeliverUnacknowledgedMessages redeliverUnacknowledgedMessages = 20;
  optional CommandLookupTopic lookupTopic = 23; optional CommandLookupTopicResponse lookupTopicResponse = 24; }
`;

const root = protobuf.parse(SCHEMA, { keepCase: true }).root;
const type = (name: string): protobuf.Type => root.lookupType(`aca.pulsar.${name}`);
export const BaseCommand = type('BaseCommand');
export const MessageMetadata = type('MessageMetadata');
export const SingleMessageMetadata = type('SingleMessageMetadata');

/** BaseCommand.Type values used here. */
export const T = {
  CONNECT: 2, CONNECTED: 3, SUBSCRIBE: 4, PRODUCER: 5, SEND: 6, SEND_RECEIPT: 7, SEND_ERROR: 8, MESSAGE: 9, ACK: 10,
  FLOW: 11, UNSUBSCRIBE: 12, SUCCESS: 13, ERROR: 14, CLOSE_PRODUCER: 15, CLOSE_CONSUMER: 16, PRODUCER_SUCCESS: 17,
  PING: 18, PONG: 19, REDELIVER_UNACKNOWLEDGED_MESSAGES: 20, LOOKUP: 23, LOOKUP_RESPONSE: 24,
} as const;

/** The field of BaseCommand that carries each type's body. */
export const FIELD: Record<number, string> = {
  2: 'connect', 3: 'connected', 4: 'subscribe', 5: 'producer', 6: 'send', 7: 'send_receipt', 8: 'send_error', 9: 'message',
  10: 'ack', 11: 'flow', 12: 'unsubscribe', 13: 'success', 14: 'error', 15: 'close_producer', 16: 'close_consumer',
  17: 'producer_success', 18: 'ping', 19: 'pong', 20: 'redeliverUnacknowledgedMessages', 23: 'lookupTopic', 24: 'lookupTopicResponse',
};

export const SUB_TYPE = { Exclusive: 0, Shared: 1, Failover: 2, Key_Shared: 3 } as const;
export const KEY_SHARED_MODE = { AUTO_SPLIT: 0, STICKY: 1 } as const;
export const INITIAL_POSITION = { Latest: 0, Earliest: 1 } as const;
export const LOOKUP = { Redirect: 0, Connect: 1, Failed: 2 } as const;
export const COMPRESSION = { NONE: 0, LZ4: 1, ZLIB: 2, ZSTD: 3, SNAPPY: 4 } as const;
/** The protocol version we announce (Key_Shared metadata needs ≥ 15). */
export const PROTOCOL_VERSION = 17;
export const MAGIC_CRC32C = 0x0e01;
export const MAGIC_BROKER_ENTRY_METADATA = 0x0e02;

/** A decoded BaseCommand (protobufjs plain object; 64-bit integers as numbers). */
export type Command = Record<string, unknown> & { type: number };

export function encodeCommand(typeNo: number, body: Record<string, unknown>): Uint8Array {
  return BaseCommand.encode(BaseCommand.fromObject({ type: typeNo, [FIELD[typeNo]!]: body })).finish();
}

export function decodeCommand(bytes: Uint8Array): Command {
  return BaseCommand.toObject(BaseCommand.decode(bytes), { longs: Number, bytes: Buffer, defaults: false }) as Command;
}

export function simpleFrame(typeNo: number, body: Record<string, unknown>): Buffer {
  const cmd = encodeCommand(typeNo, body);
  const frame = Buffer.allocUnsafe(8 + cmd.length);
  frame.writeUInt32BE(4 + cmd.length, 0);
  frame.writeUInt32BE(cmd.length, 4);
  frame.set(cmd, 8);
  return frame;
}

export function payloadFrame(typeNo: number, body: Record<string, unknown>, metadata: Record<string, unknown>, payload: Uint8Array): Buffer {
  const cmd = encodeCommand(typeNo, body);
  const meta = MessageMetadata.encode(MessageMetadata.fromObject(metadata)).finish();
  const total = 4 + cmd.length + 2 + 4 + 4 + meta.length + payload.length;
  const frame = Buffer.allocUnsafe(4 + total);
  let o = 0;
  frame.writeUInt32BE(total, o); o += 4;
  frame.writeUInt32BE(cmd.length, o); o += 4;
  frame.set(cmd, o); o += cmd.length;
  frame.writeUInt16BE(MAGIC_CRC32C, o); o += 2;
  const crcAt = o; o += 4;
  const checked = o;
  frame.writeUInt32BE(meta.length, o); o += 4;
  frame.set(meta, o); o += meta.length;
  frame.set(payload, o);
  frame.writeUInt32BE(crc32c(frame.subarray(checked)), crcAt);
  return frame;
}

// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78: the checksum Pulsar puts in payload frames.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** MurmurHash3 x86_32 (seed 0) of bytes, as an unsigned 32-bit integer. */
export function murmur3_32(data: Uint8Array, seed = 0): number {
  let h = seed >>> 0;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const n = data.length & ~3;
  for (let i = 0; i < n; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = data.length & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= data[n + 2]! << 16;
    if (tail >= 2) k ^= data[n + 1]! << 8;
    k ^= data[n]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= data.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Key_Shared hash-range size (Pulsar's DEFAULT_HASH_RANGE_SIZE). */
export const HASH_RANGE_SIZE = 65536;

/**
 * The Key_Shared slot a message key lands in, as the broker computes it:
 * (Murmur3_32Hash(UTF-8 key) & 0x7fffffff) % 65536, where slot 0 becomes 1 (checked on 4.2.4).
 * Alcor's `murmur3_32(key) % 65536` is the same except for that 0.
 */
export function keySlot(key: string): number {
  const h = (murmur3_32(Buffer.from(key, 'utf8')) & 0x7fffffff) % HASH_RANGE_SIZE;
  return h === 0 ? 1 : h;
}
