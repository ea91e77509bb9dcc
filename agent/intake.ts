// Goal-state intake: V1 lists and V2 maps in, one status per resource out. Validates and
// normalizes each resource (agent/normalize.ts), enforces revision order, applies to the store,
// hands the batch of changes to the dataplane and produces the result the reply is made from.
import type { Logger } from 'winston';
import { OperationType, operationTypeToJSON } from '../proto/gen/alcor/common.js';
import type { GoalState, GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { type Dataplane, outcomeKey } from './dataplane.js';
import { type GoalStateSource, fromV1, fromV2 } from './goalstate-source.js';
import { KINDS, type Kind } from './model.js';
import { type NormalizeContext, createInterner, idFromMapKey, normalize } from './normalize.js';
import type { ResourceStore, StoreEvent } from './store.js';

export type Status = 'SUCCESS' | 'FAILURE' | 'INVALID_ARG' | 'PENDING' | 'OUT_OF_ORDER';

/** One resource of a goal state and what became of it. Kept small: a state may hold millions. */
export interface ResourceResult {
  kind: Kind;
  id: string;
  /** The wire operation_type, echoed even when unknown. */
  operationType: number;
  status: Status;
  detail: string;
  /** Microseconds to validate and store this resource. */
  configUs: number;
  /** Whether it changed the store (and so took part in the dataplane commit). */
  changed: boolean;
}

export interface IntakeResult {
  results: ResourceResult[];
  /** Store changes handed to the dataplane. */
  events: number;
  /** Microseconds of the dataplane commit. */
  dataplaneUs: number;
  /** Microseconds from receipt of the message to completion. */
  totalUs: number;
}

export type GoalStateInput = { v1: GoalState } | { v2: GoalStateV2 } | { source: GoalStateSource };

const nowUs = (): number => performance.now() * 1000;

function sourceOf(gs: GoalStateInput): GoalStateSource {
  if ('source' in gs) return gs.source;
  return 'v1' in gs ? fromV1(gs.v1) : fromV2(gs.v2);
}

export class Intake {
  /** Dataplane commits run one at a time, in the order goal states arrived. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly ctx: NormalizeContext;

  constructor(
    private readonly store: ResourceStore,
    private readonly dataplane: Dataplane,
    private readonly log: Logger,
    hostIp: string,
  ) {
    this.ctx = {
      hostIp,
      subnet: (id) => store.get('subnet', id),
      securityGroupKnown: (id) => store.has('securityGroup', id),
      intern: createInterner(),
    };
  }

  /**
   * Apply one goal state. The store changes synchronously, in arrival order, before this
   * returns its promise; the dataplane commit is awaited after.
   */
  apply(gs: GoalStateInput, receivedUs = nowUs()): Promise<IntakeResult> {
    const results: ResourceResult[] = [];
    const events: StoreEvent[] = [];
    const store = this.store;
    let last = nowUs();

    for (const kind of KINDS) {
      sourceOf(gs).forEach(kind, (state, mapKey) => {
        let result: ResourceResult;
        if (state instanceof Error) {
          result = { kind, id: idFromMapKey('', mapKey), operationType: OperationType.INFO, status: 'INVALID_ARG', detail: state.message, configUs: 0, changed: false };
        } else {
          const n = normalize(kind, state, mapKey, this.ctx);
          result = { kind, id: n.id, operationType: n.operationType, status: 'SUCCESS', detail: '', configUs: 0, changed: false };
          const intent = n.intent;
          if (intent.op === 'invalid') {
            result.status = 'INVALID_ARG';
            result.detail = intent.reason;
          } else if (intent.op !== 'noop') {
            const keys = intent.op === 'upsert' ? intent.values.map((v) => v.key) : intent.keys;
            let newer = 0;
            if (n.revision !== 0) {
              for (const k of keys) newer = Math.max(newer, store.revisionOf(kind, k));
            }
            if (n.revision < newer) {
              result.status = 'OUT_OF_ORDER';
              result.detail = `revision ${n.revision} is older than the stored revision ${newer}`;
            } else {
              if (intent.op === 'upsert') {
                for (const v of intent.values) {
                  const e = store.upsert(kind, v);
                  if (e) events.push(e);
                  result.changed ||= e !== null;
                }
                if (intent.warnings.length > 0) {
                  result.detail = intent.warnings.join('; ');
                  this.log.warn('resource accepted with warnings', { kind, id: n.id, warnings: intent.warnings });
                }
              } else {
                for (const k of intent.keys) {
                  const e = store.remove(kind, k, n.revision);
                  if (e) events.push(e);
                  result.changed ||= e !== null;
                }
              }
            }
          }
        }
        if (result.status !== 'SUCCESS') {
          this.log.warn('resource refused', {
            kind, id: result.id, operation: operationTypeToJSON(result.operationType), status: result.status, reason: result.detail,
          });
        }
        const now = nowUs();
        result.configUs = now - last;
        last = now;
        results.push(result);
      });
    }
    store.publish(events);

    const commit = this.queue.then(async () => {
      const dpStart = nowUs();
      let dataplaneUs = 0;
      try {
        const outcomes = events.length > 0 ? await this.dataplane.apply(events, store) : new Map();
        dataplaneUs = nowUs() - dpStart;
        if (outcomes.size > 0) this.mergeOutcomes(results, outcomes);
      } catch (e) {
        dataplaneUs = nowUs() - dpStart;
        let failed = 0;
        for (const r of results) {
          if (!r.changed) continue;
          r.status = 'FAILURE';
          r.detail = `dataplane: ${e instanceof Error ? e.message : String(e)}`;
          failed += 1;
        }
        this.log.error('dataplane commit failed', { error: String(e), resources: failed });
      }
      const totalUs = nowUs() - receivedUs;
      this.logSummary(results, events.length, totalUs);
      return { results, events: events.length, dataplaneUs, totalUs };
    });
    this.queue = commit.catch(() => undefined);
    return commit;
  }

  /** Per-resource dataplane outcomes (PENDING, FAILURE) onto the results that changed. */
  private mergeOutcomes(results: ResourceResult[], outcomes: Map<string, { status: 'PENDING' | 'FAILURE'; detail: string }>): void {
    for (const r of results) {
      if (!r.changed || r.status !== 'SUCCESS') continue;
      // A result's store keys: its id for most kinds; neighbors and DHCP carry theirs in events.
      const o = outcomes.get(outcomeKey(r.kind, r.id));
      if (o) {
        r.status = o.status;
        r.detail = o.detail;
      }
    }
  }

  private logSummary(results: ResourceResult[], events: number, totalUs: number): void {
    const kinds: Partial<Record<Kind, number>> = {};
    const statuses: Partial<Record<Status, number>> = {};
    for (const r of results) {
      kinds[r.kind] = (kinds[r.kind] ?? 0) + 1;
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    }
    this.log.info('goal state applied', { resources: kinds, statuses, changes: events, totalUs: Math.round(totalUs) });
  }
}
