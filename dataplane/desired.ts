// Desired flows, groups and meters, grouped by owner (a resource or an aggregate), as OVN's
// ofctrl keeps them: when an owner is recomputed only its objects change. Two owners may want
// the same flow key (same table, priority and match): when every claim is a conjunction clause
// the flows merge into one with all their conjunction actions (ofctrl_add_or_append_flow);
// otherwise the owner that sorts first wins, so the result does not depend on the order changes
// arrived in. Groups and meters are claimed by id the same way.
import { type Action, type Flow, type Group, type Meter, actionsKey, flowKey, objectKey } from './flow.js';

/** What one owner wants. */
export interface OwnerOutput {
  readonly flows: readonly Flow[];
  readonly groups: readonly Group[];
  readonly meters: readonly Meter[];
}

/** Keys whose active object may have changed since the last reconcile. */
export interface Touched {
  flows: Set<string>;
  /** objectKey: the id, prefixed with the bridge off br-int. */
  groups: Set<string>;
  meters: Set<string>;
}

export const newTouched = (): Touched => ({ flows: new Set(), groups: new Set(), meters: new Set() });

/**
 * Claims on keys by owners. Claimed objects carry their owner (a flow, group or meter knows who
 * built it), so a key maps to the one object wanting it (most keys) or to every object wanting
 * it, sorted by owner: no claim object per flow.
 */
class Claims<T extends { readonly owner?: string }> {
  readonly byKey = new Map<string, T | T[]>();

  claim(key: string, o: T): void {
    const c = this.byKey.get(key);
    if (c === undefined) this.byKey.set(key, o);
    else if (Array.isArray(c)) {
      const i = c.findIndex((x) => x.owner === o.owner);
      if (i >= 0) c[i] = o;
      else {
        c.push(o);
        c.sort(byOwner);
      }
    } else if (c.owner === o.owner) this.byKey.set(key, o); // the same owner asking twice: last wins
    else this.byKey.set(key, [c, o].sort(byOwner));
  }

  unclaim(key: string, owner: string): void {
    const c = this.byKey.get(key);
    if (c === undefined) return;
    if (!Array.isArray(c)) {
      if (c.owner === owner) this.byKey.delete(key);
      return;
    }
    const rest = c.filter((x) => x.owner !== owner);
    if (rest.length === 0) this.byKey.delete(key);
    else this.byKey.set(key, rest.length === 1 ? rest[0]! : rest);
  }

  first(key: string): T | undefined {
    const c = this.byKey.get(key);
    return Array.isArray(c) ? c[0] : c;
  }

  owners(key: string): string[] {
    const c = this.byKey.get(key);
    if (c === undefined) return [];
    return Array.isArray(c) ? c.map((x) => x.owner!) : [c.owner!];
  }
}

function byOwner(a: { readonly owner?: string }, b: { readonly owner?: string }): number {
  return a.owner! < b.owner! ? -1 : a.owner! > b.owner! ? 1 : 0;
}

/** The object as claimed by `owner` (a copy only when it was built for another). */
const owned = <T extends { readonly owner?: string }>(o: T, owner: string): T => (o.owner === owner ? o : { ...o, owner });

const isConjunctionOnly = (f: Flow): boolean => f.actions.length > 0 && f.actions.every((a) => a.type === 'conjunction');

/** One flow from several owners' conjunction clauses: the first owner's flow with every clause. */
function mergeConjunctions(claims: Flow[]): Flow {
  const seen = new Map<string, Action>();
  for (const c of claims) for (const a of c.actions) seen.set(actionsKey([a]), a);
  const actions = [...seen.values()].sort((a, b) => {
    const x = a as Extract<Action, { type: 'conjunction' }>;
    const y = b as Extract<Action, { type: 'conjunction' }>;
    return x.id - y.id || x.clause - y.clause;
  });
  return { ...claims[0]!, actions };
}

export class DesiredFlows {
  private readonly byOwner = new Map<string, OwnerOutput>();
  private readonly flows = new Claims<Flow>();
  private readonly groups = new Claims<Group>();
  private readonly meters = new Claims<Meter>();

  get size(): number {
    return this.flows.byKey.size;
  }

  ownerOutput(owner: string): OwnerOutput | undefined {
    return this.byOwner.get(owner);
  }

  *owners(): IterableIterator<string> {
    yield* this.byOwner.keys();
  }

  /** Replace an owner's objects; records every key whose active object may have changed. */
  set(owner: string, out: OwnerOutput, touched: Touched): void {
    const before = this.byOwner.get(owner);
    if (before) {
      for (const f of before.flows) {
        const k = flowKey(f);
        this.flows.unclaim(k, owner);
        touched.flows.add(k);
      }
      for (const g of before.groups) {
        this.groups.unclaim(objectKey(g), owner);
        touched.groups.add(objectKey(g));
      }
      for (const m of before.meters) {
        this.meters.unclaim(objectKey(m), owner);
        touched.meters.add(objectKey(m));
      }
    }
    if (out.flows.length === 0 && out.groups.length === 0 && out.meters.length === 0) this.byOwner.delete(owner);
    else this.byOwner.set(owner, out);
    for (const f of out.flows) {
      const k = flowKey(f);
      this.flows.claim(k, owned(f, owner));
      touched.flows.add(k);
    }
    for (const g of out.groups) {
      this.groups.claim(objectKey(g), owned(g, owner));
      touched.groups.add(objectKey(g));
    }
    for (const m of out.meters) {
      this.meters.claim(objectKey(m), owned(m, owner));
      touched.meters.add(objectKey(m));
    }
  }

  /** The flow to install for a key: merged conjunctions, or the first owner's claim. */
  active(key: string): Flow | undefined {
    const c = this.flows.byKey.get(key);
    if (c === undefined || !Array.isArray(c)) return c;
    return c.every(isConjunctionOnly) ? mergeConjunctions(c) : c[0];
  }

  activeGroup(id: string): Group | undefined {
    return this.groups.first(id);
  }

  activeMeter(id: string): Meter | undefined {
    return this.meters.first(id);
  }

  /** Owners of a flow key (for provenance). */
  flowOwners(key: string): string[] {
    return this.flows.owners(key);
  }

  groupOwners(id: string): string[] {
    return this.groups.owners(id);
  }

  meterOwners(id: string): string[] {
    return this.meters.owners(id);
  }

  *activeFlows(): IterableIterator<Flow> {
    for (const key of this.flows.byKey.keys()) yield this.active(key)!;
  }

  *activeGroups(): IterableIterator<Group> {
    for (const id of this.groups.byKey.keys()) yield this.groups.first(id)!;
  }

  *activeMeters(): IterableIterator<Meter> {
    for (const id of this.meters.byKey.keys()) yield this.meters.first(id)!;
  }

  flowKeys(): IterableIterator<string> {
    return this.flows.byKey.keys();
  }

  /** Flow keys wanted by more than one owner that do not merge, for diagnostics. */
  conflicts(): string[] {
    const out: string[] = [];
    for (const [k, c] of this.flows.byKey) if (Array.isArray(c) && c.length > 1 && !c.every(isConjunctionOnly)) out.push(k);
    return out;
  }
}
