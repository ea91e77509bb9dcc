// The resource store: the agent's desired state, one map per kind, keyed by store key.
// It is the single owner of that state; the dataplane programs from it and learns of changes
// through typed events, batched per applied goal state.
import { KINDS, type Kind, type ResourceEvent, type ResourceOf, type ResourceView } from '../dataplane/model.js';

export type StoreEvent = ResourceEvent;

export type StoreListener = (events: readonly StoreEvent[]) => void;

type Tables = { [K in Kind]: Map<string, ResourceOf[K]> };

export class ResourceStore implements ResourceView {
  private readonly tables: Tables = {
    vpc: new Map(), subnet: new Map(), port: new Map(), neighbor: new Map(),
    securityGroup: new Map(), dhcp: new Map(), router: new Map(), gateway: new Map(),
  };
  /** Revisions of deleted resources, so a late CREATE older than the DELETE stays refused. */
  private readonly tombstones: Record<Kind, Map<string, number>> = {
    vpc: new Map(), subnet: new Map(), port: new Map(), neighbor: new Map(),
    securityGroup: new Map(), dhcp: new Map(), router: new Map(), gateway: new Map(),
  };
  private readonly listeners = new Set<StoreListener>();

  get<K extends Kind>(kind: K, key: string): ResourceOf[K] | undefined {
    return this.tables[kind].get(key);
  }

  has(kind: Kind, key: string): boolean {
    return this.tables[kind].has(key);
  }

  list<K extends Kind>(kind: K): IterableIterator<ResourceOf[K]> {
    return this.tables[kind].values();
  }

  count(kind: Kind): number {
    return this.tables[kind].size;
  }

  counts(): Record<Kind, number> {
    return Object.fromEntries(KINDS.map((k) => [k, this.tables[k].size])) as Record<Kind, number>;
  }

  /** The revision the store holds for a key: its own, a deleted one's, or 0. */
  revisionOf(kind: Kind, key: string): number {
    return this.tables[kind].get(key)?.revision ?? this.tombstones[kind].get(key) ?? 0;
  }

  /** Insert or replace. Returns the event, or null when the stored value is identical. */
  upsert<K extends Kind>(kind: K, value: ResourceOf[K]): StoreEvent | null {
    const table = this.tables[kind] as Map<string, ResourceOf[K]>;
    const before = table.get(value.key);
    if (before !== undefined && sameResource(before, value)) return null;
    table.set(value.key, value);
    const tombstones = this.tombstones[kind];
    if (tombstones.size > 0) tombstones.delete(value.key);
    return (before === undefined
      ? { type: 'added', kind, key: value.key, after: value }
      : { type: 'changed', kind, key: value.key, before, after: value }) as StoreEvent;
  }

  /** Remove; a revision > 0 is remembered. Returns the event, or null when nothing was there. */
  remove<K extends Kind>(kind: K, key: string, revision: number): StoreEvent | null {
    const table = this.tables[kind] as Map<string, ResourceOf[K]>;
    const before = table.get(key);
    const kept = Math.max(revision, before?.revision ?? 0);
    if (kept > 0) this.tombstones[kind].set(key, kept);
    if (before === undefined) return null;
    table.delete(key);
    return { type: 'removed', kind, key, before } as StoreEvent;
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tell subscribers what one applied goal state changed (called once per goal state). */
  publish(events: readonly StoreEvent[]): void {
    if (events.length === 0) return;
    for (const listener of this.listeners) listener(events);
  }

  /** A plain snapshot, one array per kind, for the admin API. */
  snapshot(): { [K in Kind]: ResourceOf[K][] } {
    return Object.fromEntries(KINDS.map((k) => [k, [...this.tables[k].values()]])) as {
      [K in Kind]: ResourceOf[K][];
    };
  }
}

/**
 * Normalized resources are built field by field in a fixed order, so equal content gives equal
 * JSON. Cheaper than a generic deep-equal and only paid on re-sends of existing keys.
 */
function sameResource(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
