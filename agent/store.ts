// The resource store: the agent's desired state, one map per kind, keyed by store key.
// It is the single owner of that state; the dataplane programs from it and learns of changes
// through typed events, batched per applied goal state.
import { KINDS, type Kind, type ResourceEvent, type ResourceOf, type ResourceView } from '../dataplane/model.js';

export type StoreEvent = ResourceEvent;

export type StoreListener = (events: readonly StoreEvent[]) => void;

type Tables = { [K in Kind]: Map<string, ResourceOf[K]> };

/**
 * What goal states did to the store, in order, as the state dir journals it (agent/state-dir.ts):
 * for each change its kind, and either the new value (upsert) or the removed key with the
 * tombstone revision the store holds for it afterwards (0: none). Every entry states the key's
 * whole state after the change, so replaying entries is idempotent. Parallel arrays: a goal
 * state can change a million keys.
 */
export interface ChangeLog {
  kinds: Kind[];
  /** The stored value (upsert) or the key (remove). */
  items: (ResourceOf[Kind] | string)[];
  /** For removes: the tombstone after the change; 0 for upserts. */
  tombs: number[];
}

/**
 * Whether revision `a` is older than `b`. Revisions are uint32 and wrap: compared as serial
 * numbers (RFC 1982), a revision is older when it lies less than half the space behind. So
 * 4294967295 (a client's -1) is just behind 0 and 1, never "newer than everything" for good.
 * 0 is unversioned and never older or newer.
 */
export function isOlderRevision(a: number, b: number): boolean {
  if (a === 0 || b === 0 || a === b) return false;
  const behind = (b - a) >>> 0;
  return behind < 0x80000000;
}

/** Default cap on remembered revisions of deleted keys, per kind (oldest forgotten first). */
export const DEFAULT_MAX_TOMBSTONES = 100_000;

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
  /** Changes since the last takeChanges(); null when nobody records them (no state dir). */
  private changes: ChangeLog | null = null;

  /** `maxTombstones`: per kind; past it the oldest tombstones are forgotten (memory stays bounded). */
  constructor(private readonly maxTombstones = DEFAULT_MAX_TOMBSTONES) {}

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
    if (this.changes) this.record(kind, value, 0);
    return (before === undefined
      ? { type: 'added', kind, key: value.key, after: value }
      : { type: 'changed', kind, key: value.key, before, after: value }) as StoreEvent;
  }

  /**
   * Remove; the revision of what was there (or the DELETE's, if newer) is remembered. A DELETE
   * of a key the store does not hold changes nothing and leaves no tombstone, so it can never
   * block a later CREATE. Returns the event, or null when nothing was there.
   */
  remove<K extends Kind>(kind: K, key: string, revision: number): StoreEvent | null {
    const table = this.tables[kind] as Map<string, ResourceOf[K]>;
    const before = table.get(key);
    if (before === undefined) return null;
    const kept = isOlderRevision(before.revision, revision) ? revision : before.revision || revision;
    const tombs = this.tombstones[kind];
    if (kept > 0) {
      tombs.delete(key);
      tombs.set(key, kept);
      // Bounded: the oldest tombstones go first (a Map iterates in insertion order).
      while (tombs.size > this.maxTombstones) tombs.delete(tombs.keys().next().value!);
    }
    if (this.changes) this.record(kind, key, kept);
    table.delete(key);
    return { type: 'removed', kind, key, before } as StoreEvent;
  }

  /** Start (or stop) recording changes for takeChanges(). */
  recordChanges(on: boolean): void {
    this.changes = on ? { kinds: [], items: [], tombs: [] } : null;
  }

  /** The changes recorded since the last call (null when not recording); recording goes on. */
  takeChanges(): ChangeLog | null {
    const taken = this.changes;
    if (taken) this.changes = { kinds: [], items: [], tombs: [] };
    return taken;
  }

  private record(kind: Kind, item: ResourceOf[Kind] | string, tomb: number): void {
    const c = this.changes!;
    c.kinds.push(kind);
    c.items.push(item);
    c.tombs.push(tomb);
  }

  /**
   * Set a key's whole state as the state dir recorded it: a value, or absence with a tombstone
   * revision (0: no tombstone). No events, no recording: for loading before anything runs.
   */
  restore<K extends Kind>(kind: K, key: string, value: ResourceOf[K] | null, tomb: number): void {
    const table = this.tables[kind] as Map<string, ResourceOf[K]>;
    if (value !== null) {
      table.set(key, value);
      this.tombstones[kind].delete(key);
      return;
    }
    table.delete(key);
    if (tomb > 0) this.tombstones[kind].set(key, tomb);
    else this.tombstones[kind].delete(key);
  }

  /** Empty every table and tombstone (a state found corrupt halfway through loading). */
  clear(): void {
    for (const k of KINDS) {
      this.tables[k].clear();
      this.tombstones[k].clear();
    }
  }

  /** Remembered revisions of deleted keys, per kind. */
  tombstoneCount(): number {
    let n = 0;
    for (const k of KINDS) n += this.tombstones[k].size;
    return n;
  }

  /**
   * A point-in-time copy of every table and tombstone map (the maps are copied, the values are
   * shared: the store replaces values, it never changes one). For writing a snapshot while
   * goal states go on changing the store.
   */
  capture(): { tables: { [K in Kind]: Map<string, ResourceOf[K]> }; tombstones: Record<Kind, Map<string, number>> } {
    const tables = {} as { [K in Kind]: Map<string, ResourceOf[K]> };
    const tombstones = {} as Record<Kind, Map<string, number>>;
    for (const k of KINDS) {
      (tables as Record<Kind, Map<string, unknown>>)[k] = new Map<string, unknown>(this.tables[k] as Map<string, unknown>);
      tombstones[k] = new Map(this.tombstones[k]);
    }
    return { tables, tombstones };
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Tell subscribers what one applied goal state changed (called once per goal state). Listeners
   * read the events during the call: the intake drops a large state's events as it commits them.
   */
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
