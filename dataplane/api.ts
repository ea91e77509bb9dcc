// The seam between the agent's intake and whatever programs the switch. The intake hands over
// what one goal state changed in its store; the dataplane answers once the switch has confirmed.
import type { Kind, NetworkType, ResourceEvent, ResourceView } from './model.js';

export type DataplaneStatus = 'SUCCESS' | 'PENDING' | 'FAILURE';

export interface ResourceOutcome {
  status: Exclude<DataplaneStatus, 'SUCCESS'>;
  detail: string;
}

/**
 * Outcome key for a resource: its kind and configuration id (`resource.id`), the id the reply
 * reports it under.
 */
export const outcomeKey = (kind: Kind, id: string): string => `${kind}:${id}`;

export interface Dataplane {
  readonly name: string;
  /**
   * Network types it can carry (subnet `network_type`); a subnet of another type is refused
   * at intake, never carried over some other encapsulation. Absent: any.
   */
  readonly networkTypes?: readonly NetworkType[];
  /**
   * The host's bridge-mapping names (external networks a router's external gateway may name);
   * absent: any name is accepted (a dataplane that programs no external bridge).
   */
  readonly externalNetworks?: ReadonlySet<string>;
  /** Prepare the switch (bridge, tunnel ports, fixed flows) before the first goal state. */
  start(view: ResourceView): Promise<void>;
  /**
   * Program the change. Resolves after the switch has confirmed it, with an entry for each
   * resource that is not simply SUCCESS (keyed by `outcomeKey`); rejecting fails them all.
   */
  apply(events: readonly ResourceEvent[], view: ResourceView): Promise<Map<string, ResourceOutcome>>;
  /**
   * True when a change may be applied in several calls (chunks) of its events, in order. A
   * dataplane that builds its indexes from the view on its first call (not started) is not.
   */
  readonly chunkable?: boolean;
  close(): Promise<void>;
}

/**
 * Programs nothing at all, not even in memory: the agent only validates and stores. For
 * controller testing and for measuring the intake alone (`--dataplane none`).
 */
export class NullDataplane implements Dataplane {
  readonly name = 'none';
  applied = 0;
  events = 0;

  start(): Promise<void> {
    return Promise.resolve();
  }

  apply(events: readonly ResourceEvent[]): Promise<Map<string, ResourceOutcome>> {
    this.applied += 1;
    this.events += events.length;
    return Promise.resolve(new Map<string, ResourceOutcome>());
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
