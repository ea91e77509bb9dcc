// The MQ path: goal states from Apache Pulsar, beside the gRPC server.
//
// Alcor's DPM publishes raw GoalStateV2 bytes on one topic per VPC, keyed by host, and tells each
// host what to consume with PushNodeSubscribeInfo (agent/subscribe-server.ts). For each topic the
// agent joins the shared Key_Shared subscription (--pulsar-subscription, `alcor-agents`) in STICKY
// mode on [h, h], h = the key's slot (agent/pulsar-proto.ts keySlot), so the broker sends it its
// own key's messages, in order. Semantics:
// - a message is acked only after its goal state is applied (store, state dir, dataplane); a
//   failed apply (any FAILURE) is redelivered, in order, after a backoff; duplicates are harmless
//   (revisions, idempotent apply);
// - a message whose key is not ours (another key sharing our slot) is acked, never applied, and
//   counted (`foreign`);
// - an undecodable message is acked (it would come back forever), logged and counted;
// - when the slot is owned by another host's key (the broker says "Range conflict"), the agent
//   falls back to a subscription of its own (`<subscription>-<key>`, Exclusive) that receives
//   every key of the topic and keeps only ours: correct, costs bandwidth, logged and counted.
//   A topic in fallback stays in fallback until unsubscribed (docs/mq.md says why).
// Subscriptions are remembered in the state dir (pulsar-subscriptions.json) and resumed at start.
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from 'winston';
import { SLICED_SCAN_BYTES, scanGoalStateV2, scanGoalStateV2Sliced } from './goalstate-source.js';
import { type Intake, slicer } from './intake.js';
import type { AgentMetrics, Transport } from './metrics.js';
import { type Consumer, PulsarClient, type PulsarMessage, topicName } from './pulsar-client.js';
import { keySlot } from './pulsar-proto.js';

export type SubscriptionMode = 'sticky' | 'fallback';

export interface SubscriptionInfo {
  topic: string;
  key: string;
  slot: number;
  mode: SubscriptionMode;
  /** The consumer's state: subscribing, ready, reconnecting, closed. */
  state: string;
  counters: MessageCounters;
}

export interface MessageCounters {
  /** Goal states applied and acked. */
  applied: number;
  /** Messages of other keys sharing our slot (or all other keys, in fallback): acked, ignored. */
  foreign: number;
  /** Applies that failed (FAILURE): redelivered. */
  failed: number;
  /** Messages that are no GoalStateV2: acked, dropped. */
  undecodable: number;
}

export interface PulsarSourceOptions {
  url: string;
  subscription: string;
  hostIp: string;
  /** Where subscriptions are remembered ('' = not kept). */
  stateDir: string;
  intake: Intake;
  log: Logger;
  metrics?: AgentMetrics;
  /** Backoff before redelivering a failed apply (default 0.5 s doubling to 30 s). */
  retryBackoffMs?: (failures: number) => number;
}

interface Entry {
  topic: string;
  key: string;
  mode: SubscriptionMode;
  consumer: Consumer | null;
  counters: MessageCounters;
}

const STATE_FILE = 'pulsar-subscriptions.json';

/** Is a key from PushNodeSubscribeInfo a usable message key, or DPM's hashed number (§3.7: it hashes twice)? */
function keyFor(given: string, hostIp: string): string {
  return given === '' || /^[0-9]+$/.test(given) ? hostIp : given;
}

/** Emits 'applied' (topic, key) after each goal state applied and acked. */
export class PulsarSource extends EventEmitter {
  readonly client: PulsarClient;
  private readonly entries = new Map<string, Entry>();
  /** Operations on one topic run one after another. */
  private readonly chains = new Map<string, Promise<unknown>>();
  readonly totals: MessageCounters = { applied: 0, foreign: 0, failed: 0, undecodable: 0 };
  private closed = false;
  private warnedForeign = new Set<string>();

  constructor(private readonly opts: PulsarSourceOptions) {
    super();
    this.client = new PulsarClient(opts.url);
  }

  /** Resume the subscriptions remembered in the state dir (in the background: the broker may be down). */
  start(): void {
    for (const s of this.readState()) {
      const entry: Entry = { topic: s.topic, key: s.key, mode: s.mode, consumer: null, counters: zero() };
      this.entries.set(s.topic, entry);
      void this.serialize(s.topic, () => this.resume(entry));
    }
  }

  private async resume(entry: Entry): Promise<void> {
    for (let attempt = 1; !this.closed && this.entries.get(entry.topic) === entry && !entry.consumer; attempt++) {
      try {
        await this.connect(entry);
        this.opts.log.info('pulsar subscription resumed', { topic: entry.topic, key: entry.key, mode: entry.mode });
        return;
      } catch (e) {
        const wait = Math.min(30_000, 500 * 2 ** (attempt - 1));
        this.opts.log.warn('pulsar subscription not resumed yet; retrying', { topic: entry.topic, error: (e as Error).message, retryMs: wait });
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private serialize<T>(topic: string, op: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(topic) ?? Promise.resolve();
    const next = prev.then(op, op);
    this.chains.set(topic, next.catch(() => undefined));
    return next;
  }

  /**
   * Consume a topic for a key (ours when empty or DPM's numeric hash). Resolves once the broker
   * accepted the subscription (sticky, or the fallback after a range conflict); rejects otherwise.
   */
  subscribe(topicIn: string, givenKey: string): Promise<SubscriptionInfo> {
    const topic = topicName(topicIn);
    const key = keyFor(givenKey, this.opts.hostIp);
    return this.serialize(topic, async () => {
      const old = this.entries.get(topic);
      if (old && old.key === key && old.consumer) return this.info(old);
      if (old) {
        await old.consumer?.close();
        this.entries.delete(topic);
      }
      const entry: Entry = { topic, key, mode: 'sticky', consumer: null, counters: old?.counters ?? zero() };
      await this.connect(entry);
      this.entries.set(topic, entry);
      this.saveState();
      this.opts.log.info('pulsar subscription', { topic, key, slot: keySlot(key), mode: entry.mode, subscription: this.subscriptionName(entry) });
      return this.info(entry);
    });
  }

  /** Stop consuming a topic. A fallback subscription (ours alone) is deleted on the broker. */
  unsubscribe(topicIn: string): Promise<boolean> {
    const topic = topicName(topicIn);
    return this.serialize(topic, async () => {
      const entry = this.entries.get(topic);
      if (!entry) return false;
      if (entry.mode === 'fallback' && entry.consumer?.state === 'ready') await entry.consumer.unsubscribe();
      else await entry.consumer?.close();
      this.entries.delete(topic);
      this.saveState();
      this.opts.log.info('pulsar unsubscribed', { topic, key: entry.key, mode: entry.mode });
      return true;
    });
  }

  private subscriptionName(entry: Entry): string {
    return entry.mode === 'sticky' ? this.opts.subscription : `${this.opts.subscription}-${entry.key}`;
  }

  private async connect(entry: Entry): Promise<void> {
    const slot = keySlot(entry.key);
    const handler = (m: PulsarMessage): Promise<boolean> => this.handle(entry, m);
    const common = {
      topic: entry.topic, handler, initialPosition: 'Earliest' as const, consumerName: `aca-${this.opts.hostIp}`,
      ...(this.opts.retryBackoffMs ? { retryBackoffMs: this.opts.retryBackoffMs } : {}),
    };
    if (entry.mode === 'sticky') {
      try {
        entry.consumer = await this.client.subscribe({ ...common, subscription: this.opts.subscription, subType: 'Key_Shared', stickyRanges: [[slot, slot]] });
      } catch (e) {
        const msg = (e as Error).message;
        if (!/range conflict/i.test(msg)) throw e;
        // Our own consumer of a previous life the broker has not dropped yet: try again later.
        if (msg.includes(`consumerName=aca-${this.opts.hostIp},`)) throw new Error(`the broker still holds our previous consumer of this slot: ${msg.slice(0, 120)}`);
        this.opts.log.warn('pulsar: our key\'s slot is owned by another key (hash collision); falling back to a subscription of our own that filters by key (costs bandwidth)', {
          topic: entry.topic, key: entry.key, slot, broker: (e as Error).message.slice(0, 200),
        });
        entry.mode = 'fallback';
      }
    }
    if (entry.mode === 'fallback') {
      entry.consumer = await this.client.subscribe({ ...common, subscription: this.subscriptionName(entry), subType: 'Exclusive' });
    }
    const c = entry.consumer!;
    c.on('disconnected', (err: Error) => this.opts.log.warn('pulsar consumer disconnected; re-subscribing', { topic: entry.topic, error: err.message }));
    c.on('reconnected', (attempt: number) => this.opts.log.info('pulsar consumer re-subscribed', { topic: entry.topic, attempt }));
    c.on('reconnectFailed', (err: Error, attempt: number) => {
      if (attempt === 1 || attempt % 10 === 0) this.opts.log.warn('pulsar re-subscribe failed; retrying', { topic: entry.topic, attempt, error: err.message });
    });
    c.on('undecodable', (id: unknown, err: Error) => {
      entry.counters.undecodable += 1;
      this.totals.undecodable += 1;
      this.opts.log.error('pulsar message unreadable; acked and dropped', { topic: entry.topic, id, error: err.message });
    });
    c.on('retry', (_id: unknown, waitMs: number) => this.opts.log.warn('pulsar: goal state not applied; redelivering', { topic: entry.topic, afterMs: waitMs }));
  }

  private async handle(entry: Entry, m: PulsarMessage): Promise<boolean> {
    if (m.key !== entry.key) {
      entry.counters.foreign += 1;
      this.totals.foreign += 1;
      const tag = `${entry.topic}|${m.key}`;
      if (entry.mode === 'sticky' && !this.warnedForeign.has(tag)) {
        this.warnedForeign.add(tag);
        this.opts.log.warn('pulsar: a message for another key shares our slot (hash collision); acked and ignored', { topic: entry.topic, ours: entry.key, theirs: m.key });
      }
      return true;
    }
    const received = performance.now() * 1000;
    let source;
    try {
      // Messages reach this handler one at a time, in order: a sliced scan keeps their order.
      source = m.payload.length > SLICED_SCAN_BYTES ? await scanGoalStateV2Sliced(m.payload, slicer()) : scanGoalStateV2(m.payload);
    } catch (e) {
      entry.counters.undecodable += 1;
      this.totals.undecodable += 1;
      this.opts.metrics?.goalState('pulsar' as Transport, 0, null, 'undecodable');
      this.opts.log.error('pulsar message is no GoalStateV2; acked and dropped', { topic: entry.topic, id: m.id, bytes: m.payload.length, error: (e as Error).message });
      return true;
    }
    const r = await this.opts.intake.apply({ source }, received);
    this.opts.metrics?.goalState('pulsar' as Transport, r.totalUs / 1e6, r.results);
    let failures = 0;
    for (let i = 0; i < r.results.length; i++) if (r.results.status(i) === 'FAILURE') failures += 1;
    if (failures > 0) {
      entry.counters.failed += 1;
      this.totals.failed += 1;
      this.opts.log.warn('pulsar goal state not applied (FAILURE); it will be redelivered', { topic: entry.topic, failures, resources: r.results.length, redelivery: m.redeliveryCount });
      return false;
    }
    entry.counters.applied += 1;
    this.totals.applied += 1;
    this.emit('applied', entry.topic, m.key);
    return true;
  }

  private info(e: Entry): SubscriptionInfo {
    return { topic: e.topic, key: e.key, slot: keySlot(e.key), mode: e.mode, state: e.consumer?.state ?? 'subscribing', counters: { ...e.counters } };
  }

  /** aca_pulsar_messages_total{result} and aca_pulsar_subscriptions{mode} on the agent's registry. */
  registerMetrics(registry: Registry): void {
    const totals = this.totals;
    new Counter({
      name: 'aca_pulsar_messages_total', help: 'Pulsar messages by outcome: applied, foreign (another key; acked, ignored), failed (redelivered), undecodable (acked, dropped)',
      labelNames: ['result'], registers: [registry],
      collect() {
        this.reset();
        for (const result of Object.keys(totals) as (keyof MessageCounters)[]) this.inc({ result }, totals[result]);
      },
    });
    const list = (): SubscriptionInfo[] => this.list();
    new Gauge({
      name: 'aca_pulsar_subscriptions', help: 'Topics consumed, by mode (sticky: our key\'s slot; fallback: a subscription of our own after a hash collision)',
      labelNames: ['mode'], registers: [registry],
      collect() {
        for (const mode of ['sticky', 'fallback']) this.set({ mode }, list().filter((s) => s.mode === mode).length);
      },
    });
  }

  list(): SubscriptionInfo[] {
    return [...this.entries.values()].map((e) => this.info(e));
  }

  private readState(): { topic: string; key: string; mode: SubscriptionMode }[] {
    if (this.opts.stateDir === '') return [];
    let text: string;
    try {
      text = readFileSync(join(this.opts.stateDir, STATE_FILE), 'utf8');
    } catch {
      return [];
    }
    try {
      const data = JSON.parse(text) as { subscriptions?: { topic: string; key: string; mode?: string }[] };
      return (data.subscriptions ?? []).filter((s) => typeof s.topic === 'string' && typeof s.key === 'string')
        .map((s) => ({ topic: s.topic, key: s.key, mode: s.mode === 'fallback' ? 'fallback' : 'sticky' }));
    } catch (e) {
      this.opts.log.error('pulsar subscriptions file unreadable; starting without subscriptions (the controller subscribes again)', { file: STATE_FILE, error: (e as Error).message });
      return [];
    }
  }

  private saveState(): void {
    if (this.opts.stateDir === '') return;
    const subscriptions = [...this.entries.values()].map((e) => ({ topic: e.topic, key: e.key, mode: e.mode }));
    const file = join(this.opts.stateDir, STATE_FILE);
    try {
      mkdirSync(this.opts.stateDir, { recursive: true });
      const tmp = `${file}.tmp`;
      writeFileSync(tmp, `${JSON.stringify({ version: 1, subscriptions }, null, 2)}\n`);
      const fd = openSync(tmp, 'r');
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, file);
    } catch (e) {
      this.opts.log.error('pulsar subscriptions not saved', { file, error: (e as Error).message });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.entries.values()].map((e) => e.consumer ? e.consumer.close() : Promise.resolve()));
    this.client.close();
  }
}

function zero(): MessageCounters {
  return { applied: 0, foreign: 0, failed: 0, undecodable: 0 };
}
