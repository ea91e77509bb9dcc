// Desired flows, groups and meters, grouped by owner (a resource or an aggregate), as OVN's
// ofctrl keeps them: when an owner is recomputed only its objects change. Two owners may want
// the same flow key (same table, priority and match): when every claim is a conjunction clause
// the flows merge into one with all their conjunction actions (ofctrl_add_or_append_flow);
// otherwise the owner that sorts first wins, so the result does not depend on the order changes
// arrived in. Groups and meters are claimed by id the same way.
import { type Action, type Flow, type Group, type Meter, actionsKey, flowKey, identityOfKey, objectKey } from './flow.js';
import { BRIDGE } from './pipeline.js';

/** What one owner wants. */
export interface OwnerOutput {
  readonly flows: readonly Flow[];
  readonly groups: readonly Group[];
  readonly meters: readonly Meter[];
}

/**
 * A flow the switch holds as its one owner wants it, kept as its key, actions and cookie: the key
 * spells table, priority, match and bridge, so the flow is whole again when something needs it
 * (`unpack`). A million neighbors' flows kept whole cost their match arrays, match fields and
 * values twice over; packed, a flow is this object and its key.
 */
export class PackedFlow {
  constructor(readonly key: string, readonly actions: readonly Action[], readonly cookie: bigint, readonly owner: string | undefined) {}
}

/** Whether a flow is all its key, actions, cookie and owner say (no note, no timeout, no explicit br-int). */
const packable = (f: Flow): boolean => f.note === undefined && f.idleTimeout === undefined && f.bridge !== BRIDGE;

const pack = (f: Flow): PackedFlow => new PackedFlow(flowKey(f), f.actions, f.cookie, f.owner);

/** The whole flow, made again from a packed one. */
export function unpack(f: Flow | PackedFlow): Flow {
  if (!(f instanceof PackedFlow)) return f;
  const { bridge, table, priority, match } = identityOfKey(f.key);
  const { actions, cookie, key, owner } = f;
  // Literals, not spreads: a spread made this ten times slower (an OVS restart unpacks every flow).
  if (owner === undefined) return bridge === undefined ? { table, priority, match, actions, cookie, key } : { bridge, table, priority, match, actions, cookie, key };
  return bridge === undefined ? { table, priority, match, actions, cookie, key, owner } : { bridge, table, priority, match, actions, cookie, key, owner };
}

/** Equal as the switch sees them: same cookie and actions (the key is the slot's). */
const sameContent = (a: Flow | PackedFlow, b: Flow | PackedFlow): boolean =>
  a.cookie === b.cookie && (a.actions === b.actions || actionsKey(a.actions) === actionsKey(b.actions));

/**
 * One flow key: the owners' claims on it and the flow the switch holds there. Desired and
 * installed share one map entry, so a flow is looked up once per change instead of once for
 * its claim, once to list it as touched, twice to diff it and once to record it (at a million
 * neighbors each lookup in a map of millions costs about a microsecond).
 */
export class FlowSlot {
  /**
   * The one flow wanted here, or every claim sorted by owner (two or more, never packed);
   * undefined: none. A packed claim is the same object as `installed` (the switch holds it as wanted).
   */
  claim: Flow | PackedFlow | Flow[] | undefined = undefined;
  /** What the switch holds (as confirmed by a commit, or read back). */
  installed: Flow | PackedFlow | undefined = undefined;
  /** The round (Touched.round) that last listed it, so one round lists it once. */
  mark = 0;
}

/** Keys whose active object may have changed since the last reconcile. */
export interface Touched {
  /** Flow slots, each once. A slot dropped meanwhile (nothing wanted, nothing held) diffs to nothing. */
  flows: FlowSlot[];
  readonly round: number;
  /** objectKey: the id, prefixed with the bridge off br-int. */
  groups: Set<string>;
  meters: Set<string>;
}

let rounds = 0;
/**
 * A new round. Slots remember the last round that listed them, so one Touched is filled at a
 * time (the dataplane's queue does so); filling two in turn could list a slot twice in one,
 * which only repeats a change in a bundle.
 */
export const newTouched = (): Touched => ({ flows: [], round: ++rounds, groups: new Set(), meters: new Set() });

function touch(touched: Touched, slot: FlowSlot): void {
  if (slot.mark === touched.round) return;
  slot.mark = touched.round;
  touched.flows.push(slot);
}

/** The flow to install for a slot, as kept (maybe packed): merged conjunctions, or the first owner's claim. */
export function activeOf(slot: FlowSlot): Flow | PackedFlow | undefined {
  const c = slot.claim;
  if (c === undefined || !Array.isArray(c)) return c;
  return c.every(isConjunctionOnly) ? mergeConjunctions(c) : c[0];
}

/**
 * After a diff found the active flow and the switch's alike (`alike`: the caller compared them
 * already), or a commit installed the active flow: keep one packed object for both when one
 * owner wants it and it packs, so the whole flow a rebuild or a read-back made is not kept.
 */
function settle(slot: FlowSlot, alike: boolean): void {
  const c = slot.claim;
  const h = slot.installed;
  if (c === undefined || h === undefined || Array.isArray(c)) return;
  if (!alike && c !== h && !sameContent(c, h)) return;
  if (c instanceof PackedFlow) slot.installed = c;
  else if (h instanceof PackedFlow) {
    if (c.owner === h.owner && packable(c)) slot.claim = h;
  } else if (packable(c)) slot.claim = slot.installed = pack(c);
}

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

/**
 * A flow key's entry: its slot, or, while the switch holds it as its one owner wants it, the
 * packed flow alone, standing for a slot whose claim and installed flow are both that flow (a
 * million neighbors' flows need no slot object each). A change opens the slot again.
 */
type Entry = FlowSlot | PackedFlow;
const claimIn = (e: Entry): FlowSlot['claim'] => (e instanceof PackedFlow ? e : e.claim);
const installedIn = (e: Entry): FlowSlot['installed'] => (e instanceof PackedFlow ? e : e.installed);

/** The entries by flow key. */
export class SlotMap {
  readonly map = new Map<string, Entry>();

  /** What is wanted at a key, as kept (a packed flow stands for its own claim). */
  claimAt(key: string): FlowSlot['claim'] {
    const e = this.map.get(key);
    return e === undefined ? undefined : claimIn(e);
  }

  /** What the switch holds at a key, as kept. */
  installedAt(key: string): FlowSlot['installed'] {
    const e = this.map.get(key);
    return e === undefined ? undefined : installedIn(e);
  }

  /** The slot at a key, opened from the packed flow standing there if need be (to change it). */
  open(key: string): FlowSlot | undefined {
    const e = this.map.get(key);
    if (!(e instanceof PackedFlow)) return e;
    const slot = new FlowSlot();
    slot.claim = slot.installed = e;
    this.map.set(key, slot);
    return slot;
  }

  openOrMake(key: string): FlowSlot {
    let slot = this.open(key);
    if (slot === undefined) this.map.set(key, (slot = new FlowSlot()));
    return slot;
  }

  /** Settle a slot; when one packed flow is all it holds, the flow takes its place in the map. */
  settle(slot: FlowSlot, alike: boolean): void {
    settle(slot, alike);
    const c = slot.claim;
    if (c instanceof PackedFlow && slot.installed === c && this.map.get(c.key) === slot) this.map.set(c.key, c);
  }
}

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

/**
 * The installed flows by key: a view of the slots' `installed` halves, with the Map methods the
 * reconciler, the admin API and the tests use.
 */
export class InstalledFlows {
  private count = 0;

  constructor(private readonly slots: SlotMap) {}

  get size(): number {
    return this.count;
  }

  get(key: string): Flow | undefined {
    const f = this.slots.installedAt(key);
    return f === undefined ? undefined : unpack(f);
  }

  has(key: string): boolean {
    return this.slots.installedAt(key) !== undefined;
  }

  set(key: string, f: Flow): this {
    this.setIn(this.slots.openOrMake(key), f);
    return this;
  }

  /** set() when the slot is at hand (the reconciler's own diff found it). */
  setIn(slot: FlowSlot, f: Flow): void {
    if (slot.installed === undefined) this.count += 1;
    slot.installed = f;
  }

  /**
   * set() through a slot that may have left the map since it was found (its last claim went
   * while the commit was in flight): the key's current slot takes the flow, or, when there is
   * none, the slot goes back into the map, so a round that listed it still diffs it.
   */
  setThrough(key: string, slot: FlowSlot, f: Flow): void {
    const current = this.slots.open(key);
    if (current !== undefined) return this.setIn(current, f);
    this.slots.map.set(key, slot);
    this.setIn(slot, f);
  }

  delete(key: string): boolean {
    const slot = this.slots.open(key);
    if (slot === undefined || slot.installed === undefined) return false;
    this.count -= 1;
    slot.installed = undefined;
    if (slot.claim === undefined) this.slots.map.delete(key);
    return true;
  }

  clear(): void {
    for (const [key, e] of this.slots.map) {
      if (e instanceof PackedFlow) {
        // Still wanted, no longer held: a slot with the claim alone.
        const slot = new FlowSlot();
        slot.claim = e;
        this.slots.map.set(key, slot);
        continue;
      }
      e.installed = undefined;
      if (e.claim === undefined) this.slots.map.delete(key);
    }
    this.count = 0;
  }

  *entries(): IterableIterator<[string, Flow]> {
    for (const [key, e] of this.slots.map) {
      const f = installedIn(e);
      if (f !== undefined) yield [key, unpack(f)];
    }
  }

  /** Each installed flow's key and cookie, without making packed flows whole (metrics, traces). */
  *cookies(): IterableIterator<[string, bigint]> {
    for (const [key, e] of this.slots.map) {
      const f = installedIn(e);
      if (f !== undefined) yield [key, f.cookie];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [key, e] of this.slots.map) if (installedIn(e) !== undefined) yield key;
  }

  *values(): IterableIterator<Flow> {
    for (const e of this.slots.map.values()) {
      const f = installedIn(e);
      if (f !== undefined) yield unpack(f);
    }
  }

  [Symbol.iterator](): IterableIterator<[string, Flow]> {
    return this.entries();
  }
}

const NONE: readonly never[] = Object.freeze([]);

/**
 * What an owner wants, as kept: its flows by key (the slots hold the flows, so a packed flow is
 * not kept whole here), with its groups and meters when it wants any.
 */
export interface KeptOutput {
  readonly flows: readonly string[];
  readonly groups: readonly Group[];
  readonly meters: readonly Meter[];
}

/** An owner's output kept as its flow keys alone (it wants no group or meter). */
const isKeyList = (o: KeptOutput | readonly string[]): o is readonly string[] => Array.isArray(o);

export class DesiredFlows {
  /**
   * What each owner wants: its flow keys alone when it wants no group or meter (almost every
   * owner: a million neighbors need no wrapper object each).
   */
  private readonly outputs = new Map<string, KeptOutput | readonly string[]>();
  /** Flow key → its claims and what the switch holds there. */
  private readonly slots = new SlotMap();
  /** Keys with at least one claim. */
  private claimed = 0;
  private readonly groups = new Claims<Group>();
  private readonly meters = new Claims<Meter>();
  /** What the switch holds, by flow key (the same slots). */
  readonly installed = new InstalledFlows(this.slots);

  get size(): number {
    return this.claimed;
  }

  ownerOutput(owner: string): OwnerOutput | undefined {
    const o = this.ownerKeys(owner);
    if (o === undefined) return undefined;
    const flows: Flow[] = [];
    for (const key of o.flows) {
      const f = this.claimOf(key, owner);
      if (f !== undefined) flows.push(unpack(f));
    }
    return { flows, groups: o.groups, meters: o.meters };
  }

  /** What an owner wants as kept: its flows' keys (none made whole), its groups and meters. */
  ownerKeys(owner: string): KeptOutput | undefined {
    const o = this.outputs.get(owner);
    return o === undefined ? undefined : isKeyList(o) ? { flows: o, groups: NONE, meters: NONE } : o;
  }

  /** The flow `owner` claims at `key`. */
  private claimOf(key: string, owner: string): Flow | PackedFlow | undefined {
    const c = this.slots.claimAt(key);
    if (c === undefined) return undefined;
    return Array.isArray(c) ? c.find((x) => x.owner === owner) : c.owner === owner ? c : undefined;
  }

  /** Whether an owner wants anything (without making its flows whole, as ownerOutput does). */
  hasOutput(owner: string): boolean {
    return this.outputs.has(owner);
  }

  *owners(): IterableIterator<string> {
    yield* this.outputs.keys();
  }

  /** Replace an owner's objects; records every key whose active object may have changed. */
  set(owner: string, out: OwnerOutput, touched: Touched): void {
    // Read as kept (no wrapper made per rebuild, as ownerOutput() makes for a flow list).
    const before = this.outputs.get(owner);
    if (before !== undefined) {
      const keys = isKeyList(before) ? before : before.flows;
      for (let i = 0; i < keys.length; i++) this.unclaim(keys[i]!, owner, touched);
      if (!isKeyList(before)) {
        for (const g of before.groups) {
          this.groups.unclaim(objectKey(g), owner);
          touched.groups.add(objectKey(g));
        }
        for (const m of before.meters) {
          this.meters.unclaim(objectKey(m), owner);
          touched.meters.add(objectKey(m));
        }
      }
    }
    const flows = out.flows;
    const keys = new Array<string>(flows.length);
    for (let i = 0; i < flows.length; i++) this.claim((keys[i] = flowKey(flows[i]!)), owned(flows[i]!, owner), touched);
    if (flows.length === 0 && out.groups.length === 0 && out.meters.length === 0) this.outputs.delete(owner);
    else this.outputs.set(owner, out.groups.length === 0 && out.meters.length === 0 ? keys : { flows: keys, groups: out.groups, meters: out.meters });
    for (const g of out.groups) {
      this.groups.claim(objectKey(g), owned(g, owner));
      touched.groups.add(objectKey(g));
    }
    for (const m of out.meters) {
      this.meters.claim(objectKey(m), owned(m, owner));
      touched.meters.add(objectKey(m));
    }
  }

  private claim(key: string, f: Flow, touched: Touched): void {
    const slot = this.slots.openOrMake(key);
    touch(touched, slot);
    const c = slot.claim;
    if (c === undefined) {
      slot.claim = f;
      this.claimed += 1;
    } else if (Array.isArray(c)) {
      const i = c.findIndex((x) => x.owner === f.owner);
      if (i >= 0) c[i] = f;
      else {
        c.push(f);
        c.sort(byOwner);
      }
    } else if (c.owner === f.owner) slot.claim = f; // the same owner asking twice: last wins
    else slot.claim = [unpack(c), f].sort(byOwner);
  }

  private unclaim(key: string, owner: string, touched: Touched): void {
    const slot = this.slots.open(key);
    if (slot === undefined || slot.claim === undefined) return;
    touch(touched, slot);
    const c = slot.claim;
    if (!Array.isArray(c)) {
      if (c.owner !== owner) return;
      slot.claim = undefined;
      this.claimed -= 1;
      if (slot.installed === undefined) this.slots.map.delete(key);
      return;
    }
    const rest = c.filter((x) => x.owner !== owner);
    slot.claim = rest.length === 1 ? rest[0]! : rest;
  }

  /** The flow to install for a key: merged conjunctions, or the first owner's claim. */
  active(key: string): Flow | undefined {
    const e = this.slots.map.get(key);
    const f = e === undefined ? undefined : e instanceof PackedFlow ? e : activeOf(e);
    return f === undefined ? undefined : unpack(f);
  }

  /** After a diff or a commit: see SlotMap.settle. */
  settle(slot: FlowSlot, alike: boolean): void {
    this.slots.settle(slot, alike);
  }

  activeGroup(id: string): Group | undefined {
    return this.groups.first(id);
  }

  activeMeter(id: string): Meter | undefined {
    return this.meters.first(id);
  }

  /** Owners of a flow key (for provenance). */
  flowOwners(key: string): string[] {
    const c = this.slots.claimAt(key);
    if (c === undefined) return [];
    return Array.isArray(c) ? c.map((x) => x.owner!) : [c.owner!];
  }

  groupOwners(id: string): string[] {
    return this.groups.owners(id);
  }

  meterOwners(id: string): string[] {
    return this.meters.owners(id);
  }

  *activeFlows(): IterableIterator<Flow> {
    for (const e of this.slots.map.values()) {
      if (e instanceof PackedFlow) yield unpack(e);
      else if (e.claim !== undefined) yield unpack(activeOf(e)!);
    }
  }

  *activeGroups(): IterableIterator<Group> {
    for (const id of this.groups.byKey.keys()) yield this.groups.first(id)!;
  }

  *activeMeters(): IterableIterator<Meter> {
    for (const id of this.meters.byKey.keys()) yield this.meters.first(id)!;
  }

  *flowKeys(): IterableIterator<string> {
    for (const [key, e] of this.slots.map) if (claimIn(e) !== undefined) yield key;
  }

  /** List a key as touched (nothing to do for a key nobody wants and the switch does not hold). */
  touchKey(touched: Touched, key: string): void {
    const slot = this.slots.open(key);
    if (slot !== undefined) touch(touched, slot);
  }

  /** List every flow key wanted or held as touched (a full comparison). */
  touchAllFlows(touched: Touched): void {
    for (const key of this.slots.map.keys()) touch(touched, this.slots.open(key)!);
  }

  /** Flow keys wanted by more than one owner that do not merge, for diagnostics. */
  conflicts(): string[] {
    const out: string[] = [];
    for (const [k, e] of this.slots.map) {
      const c = claimIn(e);
      if (Array.isArray(c) && c.length > 1 && !c.every(isConjunctionOnly)) out.push(k);
    }
    return out;
  }
}
