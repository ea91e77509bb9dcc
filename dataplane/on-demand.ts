// The on-demand engine (docs/on-demand.md): a packet from a local VM to a destination this host
// does not know (unicast to an unknown MAC, or ARP for an unknown address) comes up as a
// packet-in; the first one per destination is kept (bounded), the controller is asked with
// RequestGoalStates ON_DEMAND (tunnel id, 5-tuple) without waiting on it, and the controller
// pushes what is needed before it answers. Routable: the kept packet goes back into the pipeline
// (packet-out to table, from its own port) once the pushed state is on the switch, exactly once;
// later packets go direct. Not routable: dropped, and the destination remembered for a while
// (negative cache) so a scanning VM does not flood the controller. The controller unreachable:
// dropped, remembered for a shorter while.
import type { PacketIn, PacketIo } from './backend.js';
import { ETH_TYPE, IP_PROTO } from './fields.js';

export type OnDemandProtocol = 'tcp' | 'udp' | 'icmp' | 'arp' | 'other';

/** What the controller is asked: the 5-tuple of the first packet and its network's tunnel id. */
export interface OnDemandQuery {
  vni: number;
  sourceIp: string;
  destinationIp: string;
  sourcePort: number;
  destinationPort: number;
  protocol: OnDemandProtocol;
}

/** Resolves true (routable) or false (not routable); rejects when the controller could not answer. */
export type OnDemandAsk = (q: OnDemandQuery) => Promise<boolean>;

export interface OnDemandOptions {
  /** Packets kept while their question is open, at most (one per destination). */
  maxBuffered: number;
  /** How long a not-routable destination is dropped without asking again. */
  negativeTtlMs: number;
  /** How long a destination is dropped without asking after the controller could not answer. */
  failureTtlMs: number;
  /** Destinations remembered at most (the oldest go first). */
  maxNegative: number;
  /** An on-demand entry without a packet for this long goes (the routing design's 60 s). */
  idleMs: number;
  /** On-demand entries watched at most (beyond: the oldest stop being watched and stay). */
  maxLearned: number;
  now: () => number;
}

export const DEFAULT_ON_DEMAND: OnDemandOptions = { maxBuffered: 1024, negativeTtlMs: 30_000, failureTtlMs: 5_000, maxNegative: 65_536, idleMs: 60_000, maxLearned: 65_536, now: () => Date.now() };

/**
 * What the engine needs of the dataplane to make on-demand entries expire: the owners (store
 * resources) whose flows answer a destination, and the packets those flows carried so far (null:
 * the switch holds none of them any more).
 */
export interface OnDemandEntries {
  ownersOf(vni: number, ip: string): string[];
  packets(owner: string): Promise<bigint | null>;
}

export interface OnDemandCounters {
  asked: number;
  routable: number;
  notRoutable: number;
  failed: number;
  reinjected: number;
  /** Dropped: a question for the destination is open (its first packet is kept). */
  coalesced: number;
  /** Dropped: the destination is in the negative cache. */
  negative: number;
  /** Dropped: the buffer is full. */
  bufferFull: number;
  /** Dropped: not IPv4 or ARP, or truncated. */
  unparsable: number;
  /** Dropped: no controller configured. */
  noController: number;
  /** On-demand entries watched since they were answered, and the ones that went idle. */
  learned: number;
  expired: number;
}

const ip4 = (b: Buffer, at: number): string => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

/** The question a frame raises, or null when it is not IPv4 or an ARP request. */
export function queryOf(frame: Buffer, vni: number): OnDemandQuery | null {
  if (frame.length < 14) return null;
  const type = frame.readUInt16BE(12);
  if (type === ETH_TYPE.arp) {
    if (frame.length < 42 || frame.readUInt16BE(20) !== 1) return null;
    return { vni, sourceIp: ip4(frame, 28), destinationIp: ip4(frame, 38), sourcePort: 0, destinationPort: 0, protocol: 'arp' };
  }
  if (type !== ETH_TYPE.ip || frame.length < 34) return null;
  const ihl = (frame[14]! & 0x0f) * 4;
  const proto = frame[23]!;
  const l4 = 14 + ihl;
  const ports = (proto === IP_PROTO.tcp || proto === IP_PROTO.udp) && frame.length >= l4 + 4 ? [frame.readUInt16BE(l4), frame.readUInt16BE(l4 + 2)] : [0, 0];
  const protocol: OnDemandProtocol = proto === IP_PROTO.tcp ? 'tcp' : proto === IP_PROTO.udp ? 'udp' : proto === IP_PROTO.icmp ? 'icmp' : 'other';
  return { vni, sourceIp: ip4(frame, 26), destinationIp: ip4(frame, 30), sourcePort: ports[0]!, destinationPort: ports[1]!, protocol };
}

export class OnDemandEngine {
  readonly counters: OnDemandCounters = { asked: 0, routable: 0, notRoutable: 0, failed: 0, reinjected: 0, coalesced: 0, negative: 0, bufferFull: 0, unparsable: 0, noController: 0, learned: 0, expired: 0 };
  /** On-demand entries by destination: the owners of their flows, their packets when last seen changing. */
  private readonly learned = new Map<string, { owners: string[]; packets: bigint; changedAt: number }>();
  private readonly opts: OnDemandOptions;
  /** Open questions by destination (`vni|ip`), each with the first packet. */
  private readonly pending = new Map<string, { inPort: number; data: Buffer }>();
  /** Destinations not to ask about until their time. */
  private readonly negative = new Map<string, number>();
  private ask: OnDemandAsk | null = null;

  constructor(
    /** Runs a re-injection after everything the dataplane has queued (the pushed state's commit). */
    private readonly afterCommits: (fn: () => Promise<void>) => Promise<void>,
    opts: Partial<OnDemandOptions> = {},
    private readonly log?: { info(m: string, meta?: Record<string, unknown>): void; warn(m: string, meta?: Record<string, unknown>): void },
    private readonly entries: OnDemandEntries | null = null,
  ) {
    this.opts = { ...DEFAULT_ON_DEMAND, ...opts };
  }

  /** The clock of the caches and the idle expiry (tests drive it). */
  setClock(now: () => number): void {
    this.opts.now = now;
  }

  get watched(): number {
    return this.learned.size;
  }

  /**
   * The on-demand entries idle for idleMs: their owners (store resources the controller pushed
   * in answer), to be removed. Entries whose flows are gone (the controller deleted them) are
   * dropped from the watch. Run in the dataplane's commit order; remove the result outside it.
   */
  async idleOwners(): Promise<string[]> {
    if (!this.entries) return [];
    const now = this.opts.now();
    const idle: string[] = [];
    for (const [key, e] of [...this.learned]) {
      let total = 0n;
      let held = false;
      for (const o of e.owners) {
        const n = await this.entries.packets(o);
        if (n !== null) {
          held = true;
          total += n;
        }
      }
      if (!held) this.learned.delete(key);
      else if (total !== e.packets) {
        e.packets = total;
        e.changedAt = now;
      } else if (now - e.changedAt >= this.opts.idleMs) {
        this.learned.delete(key);
        this.counters.expired += 1;
        for (const o of e.owners) if (!idle.includes(o)) idle.push(o);
      }
    }
    return idle;
  }

  /** The controller to ask (null: none, on-demand packets are dropped). */
  setController(ask: OnDemandAsk | null): void {
    this.ask = ask;
  }

  get buffered(): number {
    return this.pending.size;
  }

  handle(p: PacketIn, io: PacketIo | undefined): void {
    const q = queryOf(p.data, Number(p.metadata & 0xff_ff_ffn));
    if (!q) {
      this.counters.unparsable += 1;
      return;
    }
    const key = `${q.vni}|${q.destinationIp}`;
    const until = this.negative.get(key);
    if (until !== undefined) {
      if (until > this.opts.now()) {
        this.counters.negative += 1;
        return;
      }
      this.negative.delete(key);
    }
    if (this.pending.has(key)) {
      this.counters.coalesced += 1;
      return;
    }
    const ask = this.ask;
    if (!ask || !io?.packetOutToTable) {
      this.counters.noController += 1;
      return;
    }
    if (this.pending.size >= this.opts.maxBuffered) {
      this.counters.bufferFull += 1;
      return;
    }
    this.pending.set(key, { inPort: p.inPort, data: p.data });
    this.counters.asked += 1;
    // Not awaited: the packet-in path never waits on the controller.
    void ask(q).then(
      (routable) => this.answered(key, q, routable, io),
      (e: unknown) => {
        this.pending.delete(key);
        this.counters.failed += 1;
        this.remember(key, this.opts.failureTtlMs);
        this.log?.warn('on-demand request failed; the packet is dropped', { vni: q.vni, destination: q.destinationIp, error: String(e) });
      },
    );
  }

  private answered(key: string, q: OnDemandQuery, routable: boolean, io: PacketIo): void {
    const kept = this.pending.get(key);
    if (!routable) {
      this.pending.delete(key);
      this.counters.notRoutable += 1;
      this.remember(key, this.opts.negativeTtlMs);
      this.log?.info('on-demand: not routable, dropped', { vni: q.vni, source: q.sourceIp, destination: q.destinationIp });
      return;
    }
    this.counters.routable += 1;
    if (!kept) return;
    // The controller pushed before answering; the re-injection waits for that push's commit.
    void this.afterCommits(() => {
      // Taken out first: delivered once, whatever happens next.
      if (this.pending.get(key) !== kept) return Promise.resolve();
      this.pending.delete(key);
      io.packetOutToTable!(kept.inPort, kept.data);
      this.counters.reinjected += 1;
      this.watch(key, q);
      return Promise.resolve();
    }).catch((e: unknown) => this.log?.warn('on-demand re-injection failed', { error: String(e) }));
  }

  /** The pushed state that answers the destination becomes an on-demand entry, watched for idleness. */
  private watch(key: string, q: OnDemandQuery): void {
    const owners = this.entries?.ownersOf(q.vni, q.destinationIp) ?? [];
    if (owners.length === 0 || this.learned.has(key)) return;
    if (this.learned.size >= this.opts.maxLearned) this.learned.delete(this.learned.keys().next().value!);
    this.learned.set(key, { owners, packets: -1n, changedAt: this.opts.now() });
    this.counters.learned += 1;
  }

  private remember(key: string, ttl: number): void {
    if (this.negative.size >= this.opts.maxNegative) this.negative.delete(this.negative.keys().next().value!);
    this.negative.set(key, this.opts.now() + ttl);
  }
}

/**
 * Token buckets per input port: whatever the switch lets through (meters) beyond a port's rate is
 * dropped before any handler runs, so one port cannot take another's share of the agent.
 */
export class PuntLimiter {
  private readonly buckets = new Map<number, { tokens: number; at: number }>();
  dropped = 0;

  constructor(
    private readonly limit: (inPort: number) => { rate: number; burst: number },
    private readonly now: () => number = () => Date.now(),
  ) {}

  take(inPort: number): boolean {
    const { rate, burst } = this.limit(inPort);
    const t = this.now();
    let b = this.buckets.get(inPort);
    if (!b) this.buckets.set(inPort, (b = { tokens: burst, at: t }));
    b.tokens = Math.min(burst, b.tokens + ((t - b.at) * rate) / 1000);
    b.at = t;
    if (b.tokens < 1) {
      this.dropped += 1;
      return false;
    }
    b.tokens -= 1;
    return true;
  }
}
