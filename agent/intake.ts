// Goal-state intake: V1 lists and V2 maps in, one status per resource out. Validates and
// normalizes each resource (agent/normalize.ts), enforces revision order, applies to the store,
// hands the batch of changes to the dataplane and produces the result the reply is made from.
import type { Logger } from 'winston';
import { OperationType, operationTypeToJSON } from '../proto/gen/alcor/common.js';
import type { GoalState, GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { type Dataplane, type ResourceOutcome, outcomeKey } from '../dataplane/api.js';
import { type GoalStateSource, fromV1, fromV2 } from './goalstate-source.js';
import { KINDS, type Kind, type ResourceOf } from '../dataplane/model.js';
import { AddressClaims } from './claims.js';
import { type Limits, type NormalizeContext, type StateOf, createInterner, idFromMapKey, normalize } from './normalize.js';
import { type LargeTurn, buildIndex, meetsPending, touchedIds } from './overtake.js';
import { ResultTable, STATUSES, type Status } from './results.js';
import { type ChangeLog, type ResourceStore, type StoreEvent, isOlderRevision } from './store.js';

/** Where applied goal states are saved before they are answered (agent/state-dir.ts). */
export interface StateSaver {
  /** Resolves once the changes (and all before them) are on disk: null, or why they are not. */
  commit(changes: ChangeLog | null): Promise<Error | null>;
}

export type { ResourceResult, Status } from './results.js';

export interface IntakeResult {
  results: ResultTable;
  /** Store changes handed to the dataplane. */
  events: number;
  /** Microseconds of the dataplane commit. */
  dataplaneUs: number;
  /** Microseconds from the store change until the state dir had it on disk (0: no state dir). */
  savedUs: number;
  /** Microseconds from receipt of the message to completion. */
  totalUs: number;
  /**
   * Its client went away (cancelled, or its deadline passed) before it was all stored: the
   * states not yet stored were skipped (no result), what was stored is programmed as usual.
   */
  cancelled: boolean;
}

/** A large goal state's store change being committed in chunks. */
interface InFlight {
  /** Committed events are dropped (undefined) as chunks commit. */
  readonly events: readonly (StoreEvent | undefined)[];
  /** Events before this index are committed. */
  at: number;
  /**
   * Kind → key → index of its last event; built in slices when another goal state first asks
   * (100,000 events took 35 ms in one piece).
   */
  index: Promise<Map<Kind, Map<string, number>>> | null;
  readonly done: Promise<void>;
}

/** Whether `events` touch a resource the large goal state in flight has not committed yet. */
async function touchesPending(m: InFlight, events: readonly StoreEvent[]): Promise<boolean> {
  m.index ??= (async () => {
    const index = new Map<Kind, Map<string, number>>();
    const pause = slicer();
    for (let i = 0; i < m.events.length; i++) {
      const e = m.events[i];
      if (e === undefined) continue;
      let byKey = index.get(e.kind);
      if (!byKey) index.set(e.kind, (byKey = new Map<string, number>()));
      byKey.set(e.key, i);
      if ((i & 1023) === 1023) {
        const p = pause();
        if (p) await p;
      }
    }
    return index;
  })();
  const index = await m.index;
  for (const e of events) {
    const last = index.get(e.kind)?.get(e.key);
    if (last !== undefined && last >= m.at) return true;
  }
  return false;
}

/**
 * A clock for work done in slices: null while the current slice has run less than `ms`, else a
 * promise for the next turn of the loop (which starts the next slice).
 */
export function slicer(ms = YIELD_MS): () => Promise<void> | null {
  let start = performance.now();
  return () => (performance.now() - start < ms ? null : breathe().then(() => { start = performance.now(); }));
}

export type GoalStateInput = { v1: GoalState } | { v2: GoalStateV2 } | { source: GoalStateSource };

const nowUs = (): number => performance.now() * 1000;

/**
 * A goal state of more states than this is large: its store turn yields to the event loop (by
 * time, YIELD_MS) and a small one (at most this many states) may take its turn inside it.
 */
export const SMALL_STATE = 256;
/** A large goal state's store turn yields to the event loop after about this many ms of work. */
export const YIELD_MS = 2;
/** States validated and stored between two looks at the clock. */
const SLICE = 64;
/** A store change of more events than this is committed to the dataplane in chunks. */
export const CHUNK_MIN_EVENTS = 1024;
/** Each chunk is sized to take about this many ms (from the rate of the chunks before it). */
export const CHUNK_MS = 2;
/** A chunk's time while no other goal state is in the intake (a newcomer waits for one at most). */
export const ALONE_CHUNK_MS = 40;
/** How long no other goal state must have arrived for a large one to count as alone. */
export const QUIET_MS = 100;
/** The first chunk's size (events), before any rate is known. */
const FIRST_CHUNK = 256;

/** Resolves on the next turn of the event loop (after pending I/O). */
const breathe = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Kinds the dataplane stores but does not program yet. Their resources answer SUCCESS (Alcor's
 * controllers treat anything but FAILURE as done and must not retry forever) with this
 * status_detail, a warning in the log and aca_resources_not_programmed_total; an entry goes
 * away when its feature lands (routers and security groups have).
 */
export const NOT_PROGRAMMED: Partial<Record<Kind, string>> = {
  gateway: 'stored; not programmed: only ZETA gateways are (through the VPCs whose gateway_ids name them, docs/zeta.md); this gateway type is not implemented',
};

function sourceOf(gs: GoalStateInput): GoalStateSource {
  if ('source' in gs) return gs.source;
  return 'v1' in gs ? fromV1(gs.v1) : fromV2(gs.v2);
}

export class Intake {
  /** Dataplane commits run one at a time, in the order goal states arrived. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Resolves once the latest goal state has had its store turn. */
  private storeTurn: Promise<void> = Promise.resolve();
  /** The large goal state in its store turn, if any (small ones may take their turn inside it). */
  private large: LargeTurn | null = null;
  /** Goal states waiting for their store turn in the ordinary way (nothing overtakes them). */
  private queued = 0;
  /** Goal states inside apply() (stored or not yet): a large one alone takes bigger chunks. */
  private active = 0;
  private lastArrival = 0;
  /** Resolves once the latest small goal state that asked to overtake has been decided (and stored). */
  private overtakers: Promise<void> = Promise.resolve();
  /** Resolves once the latest goal state has entered the dataplane queue. */
  private entry: Promise<void> = Promise.resolve();
  /** Large goal states being committed in chunks. */
  private readonly inFlight: InFlight[] = [];
  private readonly ctx: NormalizeContext;
  /** Address ownership (built from the store on the first goal state, then kept in step). */
  private claims: AddressClaims | null = null;
  /** Our ports' neighbors (or ports) placed on a host IP that is not ours: a misconfigured --host-ip. */
  readonly hostIpMismatches = { resources: 0, lastIp: '', lastWarnedAt: 0 };
  /** When the dataplane commit now running started (Date.now()), 0 when none runs. */
  private commitSince = 0;

  constructor(
    private readonly store: ResourceStore,
    private readonly dataplane: Dataplane,
    private readonly log: Logger,
    hostIp: string,
    private readonly saver: StateSaver | null = null,
    limits?: Limits,
  ) {
    this.ctx = {
      hostIp,
      ...(limits ? { limits } : {}),
      subnet: (id) => store.get('subnet', id),
      securityGroupKnown: (id) => store.has('securityGroup', id),
      networkTypes: dataplane.networkTypes,
      ...(dataplane.externalNetworks ? { externalNetworks: dataplane.externalNetworks } : {}),
      externalGatewayOf: (subnetId) => {
        for (const r of store.list('router')) {
          if (r.externalGateway && r.subnetRoutingTables.some((t) => t.subnetId === subnetId)) return r.externalGateway;
        }
        return undefined;
      },
      intern: createInterner(),
    };
  }

  /**
   * Apply one goal state. Its store turn comes in arrival order (a small state may take it inside
   * a large one's, see below); the save to the state dir and the dataplane commit are awaited
   * after, and a resource answers SUCCESS only once both are done. `signal`: the client is gone
   * (its call was cancelled or its deadline passed); states not stored by then are skipped.
   */
  apply(gs: GoalStateInput, receivedUs = nowUs(), signal?: AbortSignal): Promise<IntakeResult> {
    const source = sourceOf(gs);
    const turn = this.storeTurn;
    let release!: () => void;
    this.storeTurn = new Promise<void>((r) => { release = r; });
    let stored!: () => void;
    const storedP = new Promise<void>((r) => { stored = r; });
    let early: Promise<boolean> = Promise.resolve(false);
    const large = this.large;
    if (large !== null && source.count() <= SMALL_STATE) {
      // Small states decide one at a time, in arrival order; each after the one before is stored.
      const before = this.overtakers;
      this.overtakers = storedP;
      // A failure deciding (an index that could not be read) only means it queues as usual.
      early = this.decideAfter(before, large, source);
    } else {
      this.queued += 1;
    }
    this.active += 1;
    this.lastArrival = performance.now();
    return this.applyInTurn(source, receivedUs, early, turn, release, stored, signal).finally(() => { this.active -= 1; });
  }

  /**
   * The overtaking decision once the one before it is decided. A method of its own: a closure in
   * apply() naming the source would keep the whole message (a large one's bytes) alive in
   * apply()'s context until its reply, long after its store turn read the last of it.
   */
  private decideAfter(before: Promise<void>, large: LargeTurn, source: GoalStateSource): Promise<boolean> {
    // A failure deciding (an index that could not be read) only means it queues as usual.
    return before.then(() => this.mayOvertake(large, source)).catch(() => { this.queued += 1; return false; });
  }

  /**
   * Whether a small state may take its store turn now, inside the large one's: nobody waits for
   * a turn the ordinary way (it would be overtaken too), and it touches nothing the large one
   * has still to store (agent/overtake.ts). When not, it queues the ordinary way.
   */
  private async mayOvertake(large: LargeTurn, source: GoalStateSource): Promise<boolean> {
    const no = (): boolean => { this.queued += 1; return false; };
    if (this.large !== large || this.queued > 0) return no();
    const touched = touchedIds(source);
    if (touched === null) return no();
    if (large.index === null) {
      large.index = buildIndex(large.source, () => this.pause());
      // What the large turn waits for between its slices: settled either way (an index that
      // cannot be read, as when the large turn ended and released its source meanwhile, only
      // means this state queues; the rejection is mayOvertake's to handle, not an unhandled one).
      large.building = large.index.then(() => undefined, () => undefined).finally(() => { large.building = null; });
    }
    const index = await large.index;
    if (this.large !== large || this.queued > 0 || meetsPending(large, index, touched)) return no();
    return true;
  }

  private sliceStart = performance.now();
  /**
   * When the current slice of a large state's work has run YIELD_MS: a promise for the next turn
   * of the loop, else null. (Tests replace it to hold a large state between two slices.)
   */
  pause(): Promise<void> | null {
    if (performance.now() - this.sliceStart < YIELD_MS) return null;
    return breathe().then(() => { this.sliceStart = performance.now(); });
  }

  private async applyInTurn(
    source: GoalStateSource, receivedUs: number, early: Promise<boolean>, turn: Promise<void>, release: () => void, stored: () => void, signal: AbortSignal | undefined,
  ): Promise<IntakeResult> {
    const overtook = await early;
    if (!overtook) {
      await turn;
      this.queued -= 1;
    }
    const results = new ResultTable();
    const events: StoreEvent[] = [];
    const store = this.store;
    let last = nowUs();
    /** Subnet deletes wait until the message's other deletes are done (they may free the subnet). */
    const subnetDeletes: { i: number; keys: string[]; revision: number }[] = [];
    const claims = (this.claims ??= AddressClaims.of(store));
    /** Store keys written by this message, per kind: a second state for one of them is refused. */
    const written = new Map<Kind, Set<string>>();

    const isLarge = source.count() > SMALL_STATE;
    const me: LargeTurn | null = isLarge ? { source, visited: 0, index: null, building: null } : null;
    if (me) this.large = me;
    let cancelled = false;
    let saved: Promise<{ error: Error | null; us: number }> | null = null;
    try {
      for (const kind of KINDS) {
        const visit = (state: StateOf[Kind] | Error, mapKey: string | undefined): void => {
          let i: number;
          if (state instanceof Error) {
            i = results.add(kind, idFromMapKey('', mapKey), OperationType.INFO);
            results.setStatus(i, 'INVALID_ARG', state.message);
          } else {
            const n = normalize(kind, state, mapKey, this.ctx);
            i = results.add(kind, n.id, n.operationType);
            const intent = n.intent;
            if (intent.op === 'invalid') {
              results.setStatus(i, 'INVALID_ARG', intent.reason);
            } else if (intent.op !== 'noop') {
              let newer = 0;
              if (n.revision !== 0) {
                const count = intent.op === 'upsert' ? intent.values.length : intent.keys.length;
                for (let j = 0; j < count; j++) {
                  const stored = store.revisionOf(kind, intent.op === 'upsert' ? intent.values[j]!.key : intent.keys[j]!);
                  if (isOlderRevision(n.revision, stored)) newer = stored;
                }
              }
              if (newer !== 0) {
                results.setStatus(i, 'OUT_OF_ORDER', `revision ${n.revision} is older than the stored revision ${newer}`);
              } else if (intent.op === 'upsert') {
                const refusal = this.refusal(kind, intent.values, written, claims);
                if (refusal !== null) {
                  results.setStatus(i, 'INVALID_ARG', refusal);
                } else {
                  for (const v of intent.values) {
                    const e = store.upsert(kind, v);
                    if (e) { events.push(e); claims.update(e); results.markChanged(i); }
                  }
                }
                if (results.status(i) !== 'SUCCESS') {
                  // refused above
                } else if (intent.refused.length > 0) {
                  // Applied without the parts it could not take: the controller must hear of them.
                  results.setStatus(i, 'INVALID_ARG', `applied without: ${[...intent.refused, ...intent.warnings].join('; ')}`);
                } else if (intent.warnings.length > 0) {
                  results.setDetail(i, intent.warnings.join('; '));
                  this.log.warn('resource accepted with warnings', { kind, id: n.id, warnings: intent.warnings });
                }
              } else if (kind === 'subnet') {
                subnetDeletes.push({ i, keys: intent.keys, revision: n.revision });
              } else {
                for (const k of intent.keys) {
                  const e = store.remove(kind, k, n.revision);
                  if (e) { events.push(e); claims.update(e); results.markChanged(i); }
                }
              }
            }
          }
          if (results.status(i) !== 'SUCCESS') {
            this.log.warn('resource refused', {
              kind, id: results.id(i), operation: operationTypeToJSON(results.operationType(i)),
              status: results.status(i), reason: results.detail(i),
            });
          }
          const now = nowUs();
          results.setConfigUs(i, now - last);
          last = now;
        };
        const n = source.size(kind);
        for (let from = 0; from < n && !cancelled; from += SLICE) {
          if (signal?.aborted) {
            cancelled = true;
            break;
          }
          // A small state waits for this one's index: it goes first.
          if (me?.building) await me.building.catch(() => undefined);
          source.slice(kind, from, from + SLICE, visit);
          if (me) {
            me.visited += Math.min(SLICE, n - from);
            // A large state breathes by time: gRPC, the admin API and small states get their turn.
            const p = this.pause();
            if (p) await p;
          }
        }
        if (cancelled) break;
      }
      if (cancelled) this.log.warn('goal state cancelled by its client: the states not stored yet are skipped, those stored are programmed', { stored: results.length, skipped: source.count() - results.length });
      await this.checkHostIp(events, me !== null);
      for (const d of subnetDeletes) {
        const users = d.keys.map((k) => this.subnetUsers(k)).filter((u) => u !== null);
        if (users.length > 0) {
          results.setStatus(d.i, 'INVALID_ARG', `${users.join('; ')}: delete or move them first`);
          this.log.warn('resource refused', { kind: 'subnet', id: results.id(d.i), operation: 'DELETE', status: 'INVALID_ARG', reason: results.detail(d.i) });
          continue;
        }
        for (const k of d.keys) {
          const e = store.remove('subnet', k, d.revision);
          if (e) { events.push(e); claims.update(e); results.markChanged(d.i); }
        }
      }
      store.publish(events);
      // Saving starts now, in store order (before the next goal state's turn), and runs beside
      // the dataplane commit.
      const saveStart = nowUs();
      saved = this.saver ? this.saver.commit(store.takeChanges()).then((error) => ({ error, us: nowUs() - saveStart })) : null;
    } finally {
      // Only the store turn refuses repeats; a million keys need not wait for the commit.
      written.clear();
      if (me) {
        this.large = null;
        // Its states are all stored: a small state deciding whether to overtake cannot read it
        // any more (it queues), and the message's bytes need not wait for a full collection.
        source.release?.();
      }
      stored();
      // An overtaking state's place in the order is still after the one before it.
      if (overtook) void turn.then(release); else release();
    }

    const commit = this.commitToDataplane(events, results);
    // A large state's events are dropped as they commit (commitToDataplane): only their count is read after.
    return commit.then(async (dataplaneUs) => {
      let savedUs = 0;
      if (saved) {
        const s = await saved;
        savedUs = s.us;
        if (s.error) this.notSaved(results, s.error);
      }
      this.markNotProgrammed(results);
      const totalUs = nowUs() - receivedUs;
      this.logSummary(results, events.length, totalUs, savedUs);
      return { results, events: events.length, dataplaneUs, savedUs, totalUs, cancelled };
    });
  }

  /**
   * Hand a goal state's store changes to the dataplane, one commit at a time in arrival order,
   * with one exception that keeps small goal states fast: a large change is committed in chunks
   * sized to take about CHUNK_MS each (from the rate of the chunks before), yielding between
   * them, and a smaller goal state that arrives meanwhile and touches none of the large one's
   * not-yet-committed resources is committed between two of its chunks (per-resource arrival
   * order is kept: a goal state touching a pending resource waits for the large one). The
   * dataplane hears which chunks belong together, so work that serves the whole change (a
   * network's flood list) is done once, with the last. Resolves with the microseconds the
   * dataplane took; outcomes are merged into `results` (a failure fails every changed resource
   * of the goal state, as before).
   */
  private async commitToDataplane(events: StoreEvent[], results: ResultTable): Promise<number> {
    const large = events.length > CHUNK_MIN_EVENTS && this.dataplane.chunkable === true;
    // Goal states enter the dataplane queue in arrival order: wait for the one before us to
    // have entered (a goal state held back by a conflict holds back those after it).
    const before = this.entry;
    let entered!: () => void;
    this.entry = new Promise<void>((r) => { entered = r; });
    await before;
    // Wait for the large goal states in flight whose not-yet-committed resources we touch.
    const conflicting: InFlight[] = [];
    for (const m of [...this.inFlight]) if (await touchesPending(m, events)) conflicting.push(m);
    if (conflicting.length > 0) await Promise.all(conflicting.map((m) => m.done));
    let settle!: () => void;
    const me: InFlight = { events, at: 0, index: null, done: new Promise<void>((r) => { settle = r; }) };
    if (large) this.inFlight.push(me);
    const outcomes = new Map<string, ResourceOutcome>();
    let error: Error | null = null;
    let us = 0;
    const batch = {};
    try {
      let size = large ? FIRST_CHUNK : events.length;
      for (let at = 0; at < events.length;) {
        const chunk = large ? events.slice(at, at + size) : events;
        const from = at;
        const last = at + chunk.length >= events.length;
        let chunkUs = 0;
        const run = this.queue.then(async () => {
          const start = nowUs();
          this.commitSince = Date.now();
          try {
            const got = await this.dataplane.apply(chunk, this.store, large ? { batch, last } : undefined);
            for (const [k, o] of got) outcomes.set(k, o);
          } catch (e) {
            error ??= e instanceof Error ? e : new Error(String(e));
          } finally {
            this.commitSince = 0;
            chunkUs = nowUs() - start;
            us += chunkUs;
          }
        });
        this.queue = run.catch(() => undefined);
        entered();
        await run;
        if (!large) break;
        at += chunk.length;
        me.at = at;
        // Committed: the intake never reads these events again. The dataplane keeps a deferred
        // chunk's events until the last chunk (to name the resources of a refused aggregate) and
        // then lets them go; this array would keep a million of them until the goal state's end.
        // The intake made the array; store listeners read it when published.
        (events as (StoreEvent | undefined)[]).fill(undefined, from, at);
        // The next chunk to take about CHUNK_MS at the rate this one ran (at most twice as many
        // events) while other goal states come and go; alone (none in the intake, none arrived
        // for QUIET_MS), about ALONE_CHUNK_MS: nobody
        // waits, and each chunk costs a bundle and a switch round trip (4 ms chunks sent a
        // 10,000-neighbor state to a real OVS as 120 bundles, 1.4× one bundle's time).
        const alone = this.active === 1 && performance.now() - this.lastArrival > QUIET_MS;
        const target = alone ? ALONE_CHUNK_MS : CHUNK_MS;
        size = Math.max(64, Math.min(size * 2, Math.floor((chunk.length * target * 1000) / Math.max(chunkUs, 1))));
        // Let the loop breathe: gRPC, the admin API and other goal states get their turn.
        if (!last) await breathe();
      }
    } finally {
      entered();
      if (large) this.inFlight.splice(this.inFlight.indexOf(me), 1);
      settle();
    }
    if (error !== null) {
      let failed = 0;
      for (let i = 0; i < results.length; i++) {
        if (!results.changed(i)) continue;
        results.setStatus(i, 'FAILURE', `dataplane: ${(error as Error).message}`);
        failed += 1;
      }
      this.log.error('dataplane commit failed', { error: (error as Error).message, resources: failed });
    } else if (outcomes.size > 0) this.mergeOutcomes(results, outcomes);
    return us;
  }

  /**
   * A controller places a port on the host it pushes the port to: a neighbor entry of one of our
   * ports (or the port itself) naming another host IP means our --host-ip is wrong, and traffic
   * for our own ports would be tunneled away. Said loudly, at most once a minute.
   */
  private async checkHostIp(events: readonly StoreEvent[], large: boolean): Promise<void> {
    const ours = this.ctx.hostIp;
    let found = 0;
    let ip = '';
    for (let i = 0; i < events.length; i++) {
      if (large && (i & 1023) === 1023) {
        // A large state's check breathes like its store turn (100,000 events took 20–30 ms).
        const p = this.pause();
        if (p) await p;
      }
      const e = events[i]!;
      if (e.type === 'removed') continue;
      if (e.kind === 'neighbor') {
        if (e.after.hostIp !== ours && this.store.has('port', e.after.id)) { found += 1; ip = e.after.hostIp; }
      } else if (e.kind === 'port') {
        if (e.after.hostIp !== null && e.after.hostIp !== '' && e.after.hostIp !== ours) { found += 1; ip = e.after.hostIp; }
      }
    }
    if (found === 0) return;
    const m = this.hostIpMismatches;
    m.resources += found;
    m.lastIp = ip;
    if (Date.now() - m.lastWarnedAt < 60_000) return;
    m.lastWarnedAt = Date.now();
    this.log.warn(`goal states place this host's own ports on ${ip}, but this agent's host IP is ${ours}: their traffic is tunneled to ${ip} instead of delivered here. Set --host-ip (or --underlay-interface) to this host's underlay address`, {
      hostIp: ours, namedIp: ip, resources: found, total: m.resources,
    });
  }

  /** SUCCESS for a kind in NOT_PROGRAMMED (not a delete) says it is stored only; one warning per kind. */
  private markNotProgrammed(results: ResultTable): void {
    let counts: Partial<Record<Kind, number>> | null = null;
    for (let i = 0; i < results.length; i++) {
      const kind = results.kind(i);
      const note = NOT_PROGRAMMED[kind];
      if (!note || results.status(i) !== 'SUCCESS' || results.operationType(i) === OperationType.DELETE) continue;
      // A ZETA gateway is programmed (the Zeta path of the VPCs that name it).
      if (kind === 'gateway' && this.store.get('gateway', results.id(i))?.type === 'ZETA') continue;
      const detail = results.detail(i);
      results.setDetail(i, detail === '' ? note : `${detail}; ${note}`);
      counts ??= {};
      counts[kind] = (counts[kind] ?? 0) + 1;
    }
    if (counts) this.log.warn('resources stored but not programmed (their kind is not implemented yet)', { resources: counts });
  }

  /** How long the dataplane commit now running has taken, ms (0: none runs). For the watchdog. */
  get commitRunningMs(): number {
    return this.commitSince === 0 ? 0 : Date.now() - this.commitSince;
  }

  /**
   * Why values cannot be stored: a key this message already wrote (the first state applies),
   * or an address another resource owns (docs/intake.md, conflict rules). Null: they can.
   */
  private refusal<K extends Kind>(kind: K, values: readonly ResourceOf[K][], written: Map<Kind, Set<string>>, claims: AddressClaims): string | null {
    let keys = written.get(kind);
    if (!keys) written.set(kind, (keys = new Set()));
    for (const v of values) {
      if (keys.has(v.key)) return `${kind} ${v.key.slice(0, 64)} appears more than once in this message: the first one applies`;
    }
    for (const v of values) {
      const why = claims.conflict(kind, v);
      if (why !== null) return why;
    }
    for (const v of values) keys.add(v.key);
    return null;
  }

  /**
   * What still uses a subnet (its ports, neighbors and DHCP bindings), said briefly, or null.
   * A scan: deleting a subnet is rare, and an index would cost memory on every neighbor.
   */
  private subnetUsers(subnetId: string): string | null {
    const found: string[] = [];
    const count = { port: 0, neighbor: 0, dhcp: 0 };
    const note = (kind: keyof typeof count, id: string): void => {
      count[kind] += 1;
      if (found.length < 3) found.push(`${kind} ${id.slice(0, 64)}`);
    };
    for (const p of this.store.list('port')) if (p.fixedIps.some((f) => f.subnetId === subnetId)) note('port', p.id);
    for (const n of this.store.list('neighbor')) if (n.fixedIps.some((f) => f.subnetId === subnetId)) note('neighbor', n.key);
    for (const d of this.store.list('dhcp')) if (d.subnetId === subnetId) note('dhcp', d.key);
    const total = count.port + count.neighbor + count.dhcp;
    if (total === 0) return null;
    return `subnet ${subnetId.slice(0, 64)} is still used by ${count.port} ports, ${count.neighbor} neighbors and ${count.dhcp} DHCP bindings (${found.join(', ')}${total > found.length ? ', ...' : ''})`;
  }

  /**
   * The state dir could not save this goal state (or an earlier one not yet saved): what it
   * changed is in memory and maybe on the switch, but would be lost on a restart, so no resource
   * of it answers SUCCESS (or PENDING).
   */
  private notSaved(results: ResultTable, error: Error): void {
    const reason = `not saved in the state dir (${error.message}); applied in memory only, lost on restart`;
    let failed = 0;
    for (let i = 0; i < results.length; i++) {
      const status = results.status(i);
      if (status !== 'SUCCESS' && status !== 'PENDING') continue;
      results.setStatus(i, 'FAILURE', reason);
      failed += 1;
    }
    this.log.error('goal state not saved', { error: error.message, resources: failed });
  }

  /** Per-resource dataplane outcomes (PENDING, FAILURE) onto the results that changed. */
  private mergeOutcomes(results: ResultTable, outcomes: Map<string, ResourceOutcome>): void {
    // Only results of a kind some outcome names need their key made (a large state is mostly
    // neighbors, its outcomes mostly a port's PENDING).
    const kinds = new Set<string>();
    for (const k of outcomes.keys()) kinds.add(k.slice(0, k.indexOf(':')));
    for (let i = 0; i < results.length; i++) {
      if (!results.changed(i) || results.status(i) !== 'SUCCESS' || !kinds.has(results.kind(i))) continue;
      const o = outcomes.get(outcomeKey(results.kind(i), results.id(i)));
      if (o) results.setStatus(i, o.status, o.detail);
    }
  }

  private logSummary(results: ResultTable, events: number, totalUs: number, savedUs: number): void {
    // Counted by index (a million rows: no property looked up by name per row).
    const kindCounts = new Float64Array(KINDS.length);
    const statusCounts = new Float64Array(STATUSES.length);
    for (let i = 0; i < results.length; i++) {
      kindCounts[results.kindIndex(i)]! += 1;
      statusCounts[results.statusCode(i)]! += 1;
    }
    const kinds: Partial<Record<Kind, number>> = {};
    const statuses: Partial<Record<Status, number>> = {};
    for (let k = 0; k < KINDS.length; k++) if (kindCounts[k]! > 0) kinds[KINDS[k]!] = kindCounts[k]!;
    for (let k = 0; k < STATUSES.length; k++) if (statusCounts[k]! > 0) statuses[STATUSES[k]!] = statusCounts[k]!;
    this.log.info('goal state applied', {
      resources: kinds, statuses, changes: events, totalUs: Math.round(totalUs), ...(this.saver ? { savedUs: Math.round(savedUs) } : {}),
    });
  }
}
