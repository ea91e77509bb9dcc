// A small Apache Pulsar client speaking the binary protocol itself (agent/pulsar-proto.ts), for
// the agent's MQ path and `aca push --pulsar`.
//
// Why our own and not pulsar-flex 1.1.1 (the only pure-JS client that installs here; the
// official `pulsar-client` is a native addon that cannot): pulsar-flex sends no Key_Shared
// STICKY ranges, no initial position and no message keys, which are exactly what the Alcor MQ
// path needs; adding them means patching its module internals at run time (pulsar-checked.md);
// it also opens a connection per consumer with a fixed consumer id 0 and a fixed 10 s request
// timeout. What the agent needs is a few commands (CONNECT, LOOKUP, SUBSCRIBE, FLOW, MESSAGE,
// ACK, REDELIVER, UNSUBSCRIBE, CLOSE_*, PRODUCER, SEND, PING/PONG) that fit in one file we can
// test against a real broker and reason about:
// - one connection per broker, shared by all consumers and producers, with keep-alive pings;
// - consumers: Key_Shared STICKY ranges, initial position, flow control (a bounded receiver
//   queue: the broker sends no more than the permits given), messages handed to one handler at
//   a time, in order, acked only when the handler resolved; on failure the unacked messages are
//   redelivered in order after a backoff; on a lost connection or a broker-side close they are
//   re-subscribed with backoff (0.1 s doubling to 30 s);
// - producers: keyed, non-batched messages, each send resolved by its receipt.
import { EventEmitter } from 'node:events';
import { type Socket, createConnection } from 'node:net';
import { inflateSync } from 'node:zlib';
import {
  COMPRESSION, type Command, INITIAL_POSITION, KEY_SHARED_MODE, LOOKUP, MAGIC_BROKER_ENTRY_METADATA, MAGIC_CRC32C,
  MessageMetadata, PROTOCOL_VERSION, SUB_TYPE, SingleMessageMetadata, T, crc32c, decodeCommand, payloadFrame, simpleFrame,
} from './pulsar-proto.js';
import { VERSION } from './version.js';

export class PulsarError extends Error {
  constructor(message: string, readonly code?: number) {
    super(message);
  }
}

export interface MessageId { ledgerId: number; entryId: number; partition?: number; batch_index?: number }

export interface PulsarMessage {
  id: MessageId;
  /** The message key (partition_key), '' when the message has none. */
  key: string;
  payload: Buffer;
  properties: Record<string, string>;
  redeliveryCount: number;
  publishTime: number;
}

/** Normalize a topic: short names are persistent://public/default/<name>. */
export function topicName(topic: string): string {
  if (/^(persistent|non-persistent):\/\//.test(topic)) return topic;
  const parts = topic.split('/');
  if (parts.length === 3) return `persistent://${topic}`;
  if (parts.length === 1 && topic !== '') return `persistent://public/default/${topic}`;
  throw new PulsarError(`"${topic}" is not a topic name`);
}

function parseServiceUrl(url: string): { host: string; port: number } {
  const m = /^pulsar:\/\/(\[[^\]]+\]|[^:/]+)(?::([0-9]+))?\/?$/.exec(url);
  if (!m) throw new PulsarError(`"${url}" is not a pulsar://HOST:PORT URL (TLS is not supported yet)`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: m[2] ? Number(m[2]) : 6650 };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref?.());

export interface ClientOptions {
  /** Per-request timeout (lookup, subscribe, producer, close); default 30 s (a cold broker creates its first topic's system topic in ~13 s). */
  requestTimeoutMs?: number;
  /** Keep-alive: a PING after this much silence, and the connection is dropped after twice this without an answer. Default 30 s. */
  keepAliveMs?: number;
  connectTimeoutMs?: number;
}

interface Pending { resolve: (c: Command) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

/** One TCP connection to a broker: framing, request ids, keep-alive. Emits 'close'. */
export class Connection extends EventEmitter {
  private buf: Buffer = Buffer.alloc(0);
  private readonly pending = new Map<number, Pending>();
  private readonly sendReceipts = new Map<string, Pending>();
  readonly consumers = new Map<number, Consumer>();
  closed = false;
  private lastHeard = Date.now();
  private keepAlive: NodeJS.Timeout | null = null;
  maxMessageSize = 5 * 1024 * 1024;

  private constructor(private readonly socket: Socket, private readonly client: PulsarClient, readonly url: string) {
    super();
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => this.shut(new PulsarError(`connection to ${url} closed`)));
    socket.on('error', (e) => this.shut(new PulsarError(`connection to ${url}: ${e.message}`)));
  }

  static async open(url: string, client: PulsarClient): Promise<Connection> {
    const { host, port } = parseServiceUrl(url);
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection({ host, port });
      const timer = setTimeout(() => { s.destroy(); reject(new PulsarError(`connecting to ${url} timed out`)); }, client.opts.connectTimeoutMs);
      s.once('connect', () => { clearTimeout(timer); resolve(s); });
      s.once('error', (e) => { clearTimeout(timer); reject(new PulsarError(`cannot connect to ${url}: ${e.message}`)); });
    });
    const c = new Connection(socket, client, url);
    const connected = await c.request(T.CONNECT, { client_version: `aca-${VERSION}`, protocol_version: PROTOCOL_VERSION }, T.CONNECTED);
    const body = connected.connected as { max_message_size?: number } | undefined;
    if (body?.max_message_size) c.maxMessageSize = body.max_message_size;
    const every = client.opts.keepAliveMs;
    c.keepAlive = setInterval(() => {
      const silent = Date.now() - c.lastHeard;
      if (silent > 2 * every) c.socket.destroy(new Error(`no answer to keep-alive for ${Math.round(silent / 1000)} s`));
      else if (silent >= every) c.write(simpleFrame(T.PING, {}));
    }, Math.max(50, every / 2));
    c.keepAlive.unref();
    return c;
  }

  write(frame: Buffer): boolean {
    if (this.closed) return false;
    return this.socket.write(frame);
  }

  /**
   * Send a command and wait for its answer: by request id (SUCCESS, ERROR, PRODUCER_SUCCESS,
   * LOOKUP_RESPONSE) or, for CONNECT, the CONNECTED command.
   */
  request(typeNo: number, body: Record<string, unknown>, expect?: number): Promise<Command> {
    if (this.closed) return Promise.reject(new PulsarError(`connection to ${this.url} is closed`));
    const id = expect === T.CONNECTED ? -1 : this.client.nextRequestId();
    if (id >= 0) body.request_id = id;
    return new Promise<Command>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PulsarError(`no answer from ${this.url} within ${this.client.opts.requestTimeoutMs / 1000} s`));
      }, this.client.opts.requestTimeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.write(simpleFrame(typeNo, body));
    });
  }

  /** Send a message and wait for its receipt. */
  sendPayload(producerId: number, sequenceId: number, metadata: Record<string, unknown>, payload: Uint8Array): Promise<Command> {
    if (this.closed) return Promise.reject(new PulsarError(`connection to ${this.url} is closed`));
    const k = `${producerId}:${sequenceId}`;
    return new Promise<Command>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.sendReceipts.delete(k);
        reject(new PulsarError(`no receipt from ${this.url} within ${this.client.opts.requestTimeoutMs / 1000} s`));
      }, this.client.opts.requestTimeoutMs);
      this.sendReceipts.set(k, { resolve, reject, timer });
      this.write(payloadFrame(T.SEND, { producer_id: producerId, sequence_id: sequenceId, num_messages: 1 }, metadata, payload));
    });
  }

  close(): void {
    this.socket.destroy();
    this.shut(new PulsarError(`connection to ${this.url} closed by the client`));
  }

  private shut(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    if (this.keepAlive) clearInterval(this.keepAlive);
    for (const p of [...this.pending.values(), ...this.sendReceipts.values()]) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.sendReceipts.clear();
    for (const c of [...this.consumers.values()]) c.lost(err);
    this.consumers.clear();
    this.emit('close', err);
  }

  private onData(d: Buffer): void {
    this.lastHeard = Date.now();
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    while (this.buf.length >= 4) {
      const total = this.buf.readUInt32BE(0);
      if (this.buf.length < 4 + total) break;
      const frame = this.buf.subarray(4, 4 + total);
      this.buf = this.buf.subarray(4 + total);
      try {
        this.onFrame(frame);
      } catch (e) {
        this.socket.destroy(new Error(`bad frame from the broker: ${(e as Error).message}`));
        return;
      }
    }
  }

  private onFrame(frame: Buffer): void {
    const cmdSize = frame.readUInt32BE(0);
    const cmd = decodeCommand(frame.subarray(4, 4 + cmdSize));
    const rest = frame.subarray(4 + cmdSize);
    switch (cmd.type) {
      case T.PING:
        this.write(simpleFrame(T.PONG, {}));
        return;
      case T.PONG:
        return;
      case T.CONNECTED:
        this.settle(-1, cmd);
        return;
      case T.SUCCESS:
      case T.ERROR:
      case T.PRODUCER_SUCCESS:
      case T.LOOKUP_RESPONSE: {
        const body = cmd[({ [T.SUCCESS]: 'success', [T.ERROR]: 'error', [T.PRODUCER_SUCCESS]: 'producer_success', [T.LOOKUP_RESPONSE]: 'lookupTopicResponse' } as Record<number, string>)[cmd.type]!] as { request_id: number };
        this.settle(body.request_id, cmd);
        return;
      }
      case T.SEND_RECEIPT:
      case T.SEND_ERROR: {
        const body = (cmd.send_receipt ?? cmd.send_error) as { producer_id: number; sequence_id: number };
        const k = `${body.producer_id}:${body.sequence_id}`;
        const p = this.sendReceipts.get(k);
        if (p) {
          this.sendReceipts.delete(k);
          clearTimeout(p.timer);
          p.resolve(cmd);
        }
        return;
      }
      case T.MESSAGE: {
        const body = cmd.message as { consumer_id: number; message_id: MessageId; redelivery_count?: number };
        this.consumers.get(body.consumer_id)?.deliver(body.message_id, body.redelivery_count ?? 0, rest);
        return;
      }
      case T.CLOSE_CONSUMER: {
        const body = cmd.close_consumer as { consumer_id: number };
        this.consumers.get(body.consumer_id)?.lost(new PulsarError('the broker closed the consumer (topic unloaded or moved)'));
        return;
      }
      default:
        // Commands we do not use (ACK_RESPONSE, topic migration, …) are ignored.
        return;
    }
  }

  private settle(id: number, cmd: Command): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (cmd.type === T.ERROR) {
      const e = cmd.error as { error: number; message: string };
      p.reject(new PulsarError(e.message, e.error));
    } else {
      p.resolve(cmd);
    }
  }
}

/** Parse a payload frame's tail: [magic][crc][metaSize][metadata][payload]. */
function parsePayload(rest: Buffer): { metadata: Record<string, unknown>; payload: Buffer } {
  let o = 0;
  if (rest.readUInt16BE(o) === MAGIC_BROKER_ENTRY_METADATA) {
    o += 2;
    o += 4 + rest.readUInt32BE(o);
  }
  if (rest.readUInt16BE(o) === MAGIC_CRC32C) {
    const want = rest.readUInt32BE(o + 2);
    o += 6;
    if (crc32c(rest.subarray(o)) !== want) throw new PulsarError('checksum mismatch');
  }
  const metaSize = rest.readUInt32BE(o);
  o += 4;
  const metadata = MessageMetadata.toObject(MessageMetadata.decode(rest.subarray(o, o + metaSize)), { longs: Number, bytes: Buffer }) as Record<string, unknown>;
  return { metadata, payload: rest.subarray(o + metaSize) };
}

function properties(list: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of (list as { key: string; value: string }[] | undefined) ?? []) out[kv.key] = kv.value;
  return out;
}

/** The messages of one entry: one, or the members of a batch (DPM's Java producer batches by key). */
function unpack(id: MessageId, redeliveryCount: number, rest: Buffer): PulsarMessage[] {
  const { metadata, payload: raw } = parsePayload(rest);
  const compression = (metadata.compression as number | undefined) ?? COMPRESSION.NONE;
  let payload = raw;
  if (compression === COMPRESSION.ZLIB) payload = inflateSync(raw);
  else if (compression !== COMPRESSION.NONE) throw new PulsarError(`compression ${compression} is not supported (NONE and ZLIB are)`);
  const publishTime = (metadata.publish_time as number | undefined) ?? 0;
  const n = metadata.num_messages_in_batch as number | undefined;
  if (n === undefined) {
    return [{ id, key: (metadata.partition_key as string | undefined) ?? '', payload, properties: properties(metadata.properties), redeliveryCount, publishTime }];
  }
  // A batch: [size:u32][SingleMessageMetadata][payload] × n.
  const out: PulsarMessage[] = [];
  let o = 0;
  for (let i = 0; i < n; i++) {
    const size = payload.readUInt32BE(o);
    o += 4;
    const single = SingleMessageMetadata.toObject(SingleMessageMetadata.decode(payload.subarray(o, o + size))) as Record<string, unknown>;
    o += size;
    const len = single.payload_size as number;
    out.push({
      id: { ...id, batch_index: i }, key: (single.partition_key as string | undefined) ?? '', payload: payload.subarray(o, o + len),
      properties: properties(single.properties), redeliveryCount, publishTime,
    });
    o += len;
  }
  return out;
}

export interface ConsumerOptions {
  topic: string;
  subscription: string;
  subType: keyof typeof SUB_TYPE;
  /** Key_Shared STICKY: the inclusive hash ranges this consumer owns; AUTO_SPLIT when absent. */
  stickyRanges?: [number, number][];
  initialPosition?: keyof typeof INITIAL_POSITION;
  consumerName?: string;
  /** Messages the broker may send ahead (the permits); bounds the memory held. Default 100. */
  receiverQueueSize?: number;
  /**
   * Called for each message, one at a time, in order. Resolve `true` (ack) or `false` (failed:
   * the unacked messages are redelivered in order after a backoff); a throw counts as `false`.
   */
  handler: (m: PulsarMessage) => Promise<boolean>;
  /** Backoff before a redelivery after a failure: 0.5 s doubling to 30 s by default. */
  retryBackoffMs?: (failures: number) => number;
}

export type ConsumerState = 'subscribing' | 'ready' | 'reconnecting' | 'closed';

/**
 * A consumer. `subscribe()` resolves once the broker accepted the subscription and rejects with
 * its error (e.g. "Range conflict …" for a STICKY range another consumer owns). After that, a
 * lost connection is re-subscribed in the background; 'state' events say so.
 */
export class Consumer extends EventEmitter {
  readonly id: number;
  readonly topic: string;
  state: ConsumerState = 'subscribing';
  private conn: Connection | null = null;
  private queue: { id: MessageId; messages: PulsarMessage[] }[] = [];
  private running = false;
  private used = 0;
  private failures = 0;
  /** Bumped on each (re)subscription: messages of an older one are dropped. */
  private epoch = 0;
  readonly stats = { received: 0, acked: 0, failed: 0, redeliveries: 0, reconnects: 0, undecodable: 0 };

  constructor(private readonly client: PulsarClient, private readonly opts: ConsumerOptions) {
    super();
    this.id = client.nextConsumerId();
    this.topic = topicName(opts.topic);
  }

  private get permits(): number {
    return this.opts.receiverQueueSize ?? 100;
  }

  async subscribe(): Promise<void> {
    const conn = await this.client.connectionFor(this.topic);
    conn.consumers.set(this.id, this);
    const body: Record<string, unknown> = {
      topic: this.topic, subscription: this.opts.subscription, subType: SUB_TYPE[this.opts.subType], consumer_id: this.id,
      consumer_name: this.opts.consumerName ?? `aca-${this.id}`, durable: true,
      initialPosition: INITIAL_POSITION[this.opts.initialPosition ?? 'Earliest'],
    };
    if (this.opts.subType === 'Key_Shared') {
      body.keySharedMeta = this.opts.stickyRanges
        ? { keySharedMode: KEY_SHARED_MODE.STICKY, hashRanges: this.opts.stickyRanges.map(([start, end]) => ({ start, end })) }
        : { keySharedMode: KEY_SHARED_MODE.AUTO_SPLIT };
    }
    try {
      await conn.request(T.SUBSCRIBE, body);
    } catch (e) {
      conn.consumers.delete(this.id);
      throw e;
    }
    if (this.state === 'closed') {
      void conn.request(T.CLOSE_CONSUMER, { consumer_id: this.id }).catch(() => undefined);
      conn.consumers.delete(this.id);
      return;
    }
    this.epoch += 1;
    this.conn = conn;
    this.queue = [];
    this.used = 0;
    this.setState('ready');
    conn.write(simpleFrame(T.FLOW, { consumer_id: this.id, messagePermits: this.permits }));
  }

  private setState(s: ConsumerState): void {
    this.state = s;
    this.emit('state', s);
  }

  /** A MESSAGE frame for this consumer. */
  deliver(id: MessageId, redeliveryCount: number, rest: Buffer): void {
    this.stats.received += 1;
    let messages: PulsarMessage[];
    try {
      messages = unpack(id, redeliveryCount, rest);
    } catch (e) {
      // Cannot be read now or ever: acked so it does not come back forever, and reported.
      this.stats.undecodable += 1;
      this.emit('undecodable', id, e);
      this.ack(id);
      this.returnPermit();
      return;
    }
    this.queue.push({ id, messages });
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && this.state === 'ready') {
        const entry = this.queue.shift()!;
        const epoch = this.epoch;
        let ok = true;
        for (const m of entry.messages) {
          try {
            ok = await this.opts.handler(m);
          } catch (e) {
            this.emit('handlerError', e);
            ok = false;
          }
          if (!ok) break;
        }
        if (epoch !== this.epoch || this.state !== 'ready') break; // re-subscribed meanwhile: redelivered anyway
        if (ok) {
          this.failures = 0;
          this.ack(entry.id);
          this.returnPermit();
          continue;
        }
        // Failed: everything not acked (this entry and those queued behind it) comes again, in
        // order, after a backoff. The permits of the dropped ones are given back.
        this.stats.failed += 1;
        this.failures += 1;
        const dropped = 1 + this.queue.length;
        this.queue = [];
        const wait = (this.opts.retryBackoffMs ?? ((n) => Math.min(30_000, 500 * 2 ** (n - 1))))(this.failures);
        this.emit('retry', entry.id, wait);
        await sleep(wait);
        if (epoch !== this.epoch || this.state !== 'ready') break;
        this.stats.redeliveries += 1;
        this.conn?.write(simpleFrame(T.REDELIVER_UNACKNOWLEDGED_MESSAGES, { consumer_id: this.id }));
        for (let i = 0; i < dropped; i++) this.returnPermit();
      }
    } finally {
      this.running = false;
    }
  }

  private ack(id: MessageId): void {
    this.stats.acked += 1;
    this.conn?.write(simpleFrame(T.ACK, { consumer_id: this.id, ack_type: 0, message_id: [{ ledgerId: id.ledgerId, entryId: id.entryId }] }));
  }

  private returnPermit(): void {
    this.used += 1;
    if (this.used >= Math.max(1, Math.floor(this.permits / 2))) {
      this.conn?.write(simpleFrame(T.FLOW, { consumer_id: this.id, messagePermits: this.used }));
      this.used = 0;
    }
  }

  /** The connection or the broker-side consumer went away: re-subscribe with backoff. */
  lost(err: Error): void {
    if (this.state === 'closed' || this.state === 'reconnecting') return;
    this.conn?.consumers.delete(this.id);
    this.conn = null;
    this.queue = [];
    this.epoch += 1;
    this.setState('reconnecting');
    this.emit('disconnected', err);
    void (async () => {
      for (let attempt = 1; this.state === 'reconnecting'; attempt++) {
        const wait = Math.min(30_000, 100 * 2 ** (attempt - 1)) * (0.8 + 0.4 * Math.random());
        await sleep(wait);
        if (this.state !== 'reconnecting') return;
        try {
          await this.subscribe();
          this.stats.reconnects += 1;
          this.emit('reconnected', attempt);
          return;
        } catch (e) {
          this.emit('reconnectFailed', e, attempt);
        }
      }
    })();
  }

  /** Stop consuming; the subscription (and its backlog) stays on the broker. */
  async close(): Promise<void> {
    const conn = this.conn;
    this.setState('closed');
    this.conn = null;
    this.queue = [];
    if (conn && !conn.closed) {
      await conn.request(T.CLOSE_CONSUMER, { consumer_id: this.id }).catch(() => undefined);
      conn.consumers.delete(this.id);
    }
  }

  /** Delete the subscription on the broker (only when this is its only consumer), then close. */
  async unsubscribe(): Promise<void> {
    const conn = this.conn;
    if (!conn || conn.closed) throw new PulsarError('not connected');
    await conn.request(T.UNSUBSCRIBE, { consumer_id: this.id });
    conn.consumers.delete(this.id);
    this.conn = null;
    this.setState('closed');
  }
}

export class Producer {
  private sequence = 0;
  private constructor(private readonly conn: Connection, readonly id: number, readonly name: string, readonly topic: string) {}

  static async create(client: PulsarClient, topic: string): Promise<Producer> {
    const t = topicName(topic);
    const conn = await client.connectionFor(t);
    const id = client.nextProducerId();
    const r = await conn.request(T.PRODUCER, { topic: t, producer_id: id });
    const name = (r.producer_success as { producer_name: string }).producer_name;
    return new Producer(conn, id, name, t);
  }

  /** Publish one message with a key; resolves with its id once the broker stored it. */
  async send(payload: Uint8Array, opts: { key?: string; properties?: Record<string, string> } = {}): Promise<MessageId> {
    const seq = this.sequence++;
    const metadata: Record<string, unknown> = {
      producer_name: this.name, sequence_id: seq, publish_time: Date.now(),
      properties: Object.entries(opts.properties ?? {}).map(([key, value]) => ({ key, value })),
    };
    if (opts.key !== undefined) metadata.partition_key = opts.key;
    if (payload.length > this.conn.maxMessageSize) throw new PulsarError(`message of ${payload.length} bytes exceeds the broker's limit of ${this.conn.maxMessageSize}`);
    const r = await this.conn.sendPayload(this.id, seq, metadata, payload);
    if (r.type === T.SEND_ERROR) {
      const e = r.send_error as { error: number; message: string };
      throw new PulsarError(`send failed: ${e.message}`, e.error);
    }
    return ((r.send_receipt as { message_id?: MessageId }).message_id) ?? { ledgerId: -1, entryId: -1 };
  }

  async close(): Promise<void> {
    await this.conn.request(T.CLOSE_PRODUCER, { producer_id: this.id }).catch(() => undefined);
  }
}

/** The client: the service URL, topic lookups, one connection per broker. */
export class PulsarClient {
  readonly opts: Required<ClientOptions>;
  private readonly connections = new Map<string, Promise<Connection>>();
  private requestId = 0;
  private consumerId = 0;
  private producerId = 0;
  private closed = false;

  constructor(readonly serviceUrl: string, opts: ClientOptions = {}) {
    parseServiceUrl(serviceUrl);
    this.opts = { requestTimeoutMs: opts.requestTimeoutMs ?? 30_000, keepAliveMs: opts.keepAliveMs ?? 30_000, connectTimeoutMs: opts.connectTimeoutMs ?? 10_000 };
  }

  nextRequestId(): number { return this.requestId++; }
  nextConsumerId(): number { return this.consumerId++; }
  nextProducerId(): number { return this.producerId++; }

  private connection(url: string): Promise<Connection> {
    if (this.closed) return Promise.reject(new PulsarError('the client is closed'));
    let p = this.connections.get(url);
    if (!p) {
      p = Connection.open(url, this);
      this.connections.set(url, p);
      p.then((c) => c.once('close', () => { if (this.connections.get(url) === p) this.connections.delete(url); }), () => this.connections.delete(url));
    }
    return p;
  }

  /** The connection to the broker that serves a topic (LOOKUP, following redirects). */
  async connectionFor(topic: string): Promise<Connection> {
    let url = this.serviceUrl;
    let authoritative = false;
    for (let hop = 0; hop < 10; hop++) {
      const conn = await this.connection(url);
      const r = await conn.request(T.LOOKUP, { topic, authoritative });
      const body = r.lookupTopicResponse as { response?: number; brokerServiceUrl?: string; authoritative?: boolean; message?: string; proxy_through_service_url?: boolean };
      if (body.response === LOOKUP.Failed) throw new PulsarError(`lookup of ${topic} failed: ${body.message ?? 'no reason'}`);
      const target = body.proxy_through_service_url ? this.serviceUrl : (body.brokerServiceUrl ?? url);
      if (body.response === LOOKUP.Connect) return this.connection(target);
      url = target;
      authoritative = body.authoritative ?? false;
    }
    throw new PulsarError(`lookup of ${topic}: too many redirects`);
  }

  async subscribe(opts: ConsumerOptions): Promise<Consumer> {
    const c = new Consumer(this, opts);
    await c.subscribe();
    return c;
  }

  createProducer(topic: string): Promise<Producer> {
    return Producer.create(this, topic);
  }

  close(): void {
    this.closed = true;
    for (const p of this.connections.values()) p.then((c) => c.close(), () => undefined);
    this.connections.clear();
  }
}
