// Goal-state intake: V1 lists and V2 maps in, one status per resource out. Validates and
// normalizes each resource (agent/normalize.ts), enforces revision order, applies to the store,
// hands the batch of changes to the dataplane and builds the reply.
import type { Logger } from 'winston';
import { OperationStatus, ResourceType } from '../proto/gen/alcor/common.js';
import type { GoalState, GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import type {
  GoalStateOperationReply, GoalStateOperationReply_GoalStateOperationStatus as PbStatus,
} from '../proto/gen/alcor/goalstateprovisioner.js';
import { type Dataplane, outcomeKey } from './dataplane.js';
import { KINDS, type Kind } from './model.js';
import { type NormalizeContext, type StateOf, normalize } from './normalize.js';
import type { ResourceStore, StoreEvent } from './store.js';

export type Status = 'SUCCESS' | 'FAILURE' | 'INVALID_ARG' | 'PENDING' | 'OUT_OF_ORDER';

export interface ResourceResult {
  kind: Kind;
  id: string;
  operation: string;
  operationType: number;
  status: Status;
  detail: string;
  /** Microseconds: validate + store; dataplane; receipt to done. */
  configUs: number;
  dataplaneUs: number;
  elapsedUs: number;
}

export interface IntakeResult {
  results: ResourceResult[];
  events: number;
  totalUs: number;
}

const RESOURCE_TYPES: Record<Kind, ResourceType> = {
  vpc: ResourceType.VPC, subnet: ResourceType.SUBNET, port: ResourceType.PORT,
  neighbor: ResourceType.NEIGHBOR, securityGroup: ResourceType.SECURITYGROUP,
  dhcp: ResourceType.DHCP, router: ResourceType.ROUTER, gateway: ResourceType.GATEWAY,
};
const STATUSES: Record<Status, OperationStatus> = {
  SUCCESS: OperationStatus.SUCCESS, FAILURE: OperationStatus.FAILURE,
  INVALID_ARG: OperationStatus.INVALID_ARG, PENDING: OperationStatus.PENDING,
  OUT_OF_ORDER: OperationStatus.OUT_OF_ORDER,
};

interface Entry<K extends Kind = Kind> {
  kind: K;
  state: StateOf[K];
  mapKey: string | undefined;
}

type V1Lists = { [K in Kind]: StateOf[K][] };
type V2Maps = { [K in Kind]: Record<string, StateOf[K]> };

/** V1 lists and V2 maps as one sequence, in apply order (referenced kinds first). */
export function entriesOf(gs: { v1: GoalState } | { v2: GoalStateV2 }): Entry[] {
  const out: Entry[] = [];
  if ('v1' in gs) {
    const g = gs.v1;
    const lists: V1Lists = {
      vpc: g.vpcStates, subnet: g.subnetStates, port: g.portStates, neighbor: g.neighborStates,
      securityGroup: g.securityGroupStates, dhcp: g.dhcpStates, router: g.routerStates, gateway: g.gatewayStates,
    };
    for (const kind of KINDS) for (const state of lists[kind]) out.push({ kind, state, mapKey: undefined });
  } else {
    const g = gs.v2;
    const maps: V2Maps = {
      vpc: g.vpcStates, subnet: g.subnetStates, port: g.portStates, neighbor: g.neighborStates,
      securityGroup: g.securityGroupStates, dhcp: g.dhcpStates, router: g.routerStates, gateway: g.gatewayStates,
    };
    for (const kind of KINDS) for (const [mapKey, state] of Object.entries(maps[kind])) out.push({ kind, state, mapKey });
  }
  return out;
}

const nowUs = (): number => performance.now() * 1000;

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
    };
  }

  /**
   * Apply one goal state. The store changes synchronously, in arrival order, before this
   * returns its promise; the dataplane commit is awaited after.
   */
  apply(gs: { v1: GoalState } | { v2: GoalStateV2 }, receivedUs = nowUs()): Promise<IntakeResult> {
    const results: ResourceResult[] = [];
    const events: StoreEvent[] = [];
    /** results index → store keys it touched, for dataplane outcomes. */
    const touched: { index: number; keys: string[] }[] = [];

    for (const { kind, state, mapKey } of entriesOf(gs)) {
      const start = nowUs();
      const n = normalize(kind, state, mapKey, this.ctx);
      const result: ResourceResult = {
        kind, id: n.id, operation: n.operation, operationType: n.operationType, status: 'SUCCESS', detail: '',
        configUs: 0, dataplaneUs: 0, elapsedUs: 0,
      };
      const intent = n.intent;
      if (intent.op === 'invalid') {
        result.status = 'INVALID_ARG';
        result.detail = intent.reason;
      } else if (intent.op !== 'noop') {
        const keys = intent.op === 'upsert' ? intent.values.map((v) => v.key) : intent.keys;
        const newer = keys.map((k) => this.store.revisionOf(kind, k)).find((stored) => n.revision !== 0 && n.revision < stored);
        if (newer !== undefined) {
          result.status = 'OUT_OF_ORDER';
          result.detail = `revision ${n.revision} is older than the stored revision ${newer}`;
        } else {
          const changed = intent.op === 'upsert'
            ? intent.values.map((v) => this.store.upsert(kind, v))
            : intent.keys.map((k) => this.store.remove(kind, k, n.revision));
          for (const e of changed) if (e) events.push(e);
          if (changed.some((e) => e !== null)) touched.push({ index: results.length, keys });
          if (intent.op === 'upsert' && intent.warnings.length > 0) {
            result.detail = intent.warnings.join('; ');
            this.log.warn('resource accepted with warnings', { kind, id: n.id, warnings: intent.warnings });
          }
        }
      }
      if (result.status !== 'SUCCESS') {
        this.log.warn('resource refused', { kind, id: n.id, operation: n.operation, status: result.status, reason: result.detail });
      }
      result.configUs = nowUs() - start;
      results.push(result);
    }
    this.store.publish(events);

    const commit = this.queue.then(async () => {
      const dpStart = nowUs();
      try {
        const outcomes = events.length > 0 ? await this.dataplane.apply(events, this.store) : new Map();
        const dpUs = nowUs() - dpStart;
        for (const { index, keys } of touched) {
          const r = results[index]!;
          r.dataplaneUs = dpUs;
          for (const k of keys) {
            const o = outcomes.get(outcomeKey(r.kind, k));
            if (o && r.status === 'SUCCESS') {
              r.status = o.status;
              r.detail = o.detail;
            }
          }
        }
      } catch (e) {
        const dpUs = nowUs() - dpStart;
        for (const { index } of touched) {
          const r = results[index]!;
          r.dataplaneUs = dpUs;
          r.status = 'FAILURE';
          r.detail = `dataplane: ${e instanceof Error ? e.message : String(e)}`;
        }
        this.log.error('dataplane commit failed', { error: String(e), resources: touched.length });
      }
      const end = nowUs();
      for (const r of results) r.elapsedUs = end - receivedUs;
      const totalUs = end - receivedUs;
      this.logSummary(results, events.length, totalUs);
      return { results, events: events.length, totalUs };
    });
    this.queue = commit.catch(() => undefined);
    return commit;
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

/** The wire reply for an intake result. */
export function toReply(result: IntakeResult): GoalStateOperationReply {
  return {
    formatVersion: 0,
    operationStatuses: result.results.map((r): PbStatus => ({
      resourceId: r.id,
      resourceType: RESOURCE_TYPES[r.kind],
      operationType: r.operationType,
      operationStatus: STATUSES[r.status],
      dataplaneProgrammingTime: clampUs(r.dataplaneUs),
      networkConfigurationTime: clampUs(r.configUs),
      stateElapseTime: clampUs(r.elapsedUs),
      statusDetail: r.detail,
    })),
    messageTotalOperationTime: clampUs(result.totalUs),
  };
}

/** uint32 microseconds; at least 1 so "measured" never reads as "unset". */
function clampUs(us: number): number {
  return Math.min(0xffffffff, Math.max(1, Math.round(us)));
}
