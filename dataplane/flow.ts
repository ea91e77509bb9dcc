// The flow model: what features produce and the reconciler installs. A match is typed fields
// (value and mask), actions are a typed union, registers are declared subfields; text exists
// only for people and files (flow-text.ts). A flow's identity is (table, priority, match), as in
// OpenFlow; `flowKey` makes it a compact string for maps.
import { FIELDS, FIELD_RANK, type FieldName, fullMask } from './fields.js';
import { BRIDGE, COOKIE, PROGRAMMERS, type ProgrammerName } from './pipeline.js';

/** Each field's short name in flow keys: its rank in base 36 (unique, as ranks are). */
const FIELD_TAG = Object.fromEntries(Object.entries(FIELD_RANK).map(([f, r]) => [f, r.toString(36)])) as Readonly<Record<FieldName, string>>;

export interface MatchField {
  readonly field: FieldName;
  readonly value: bigint;
  /** null: exact match on the whole field. */
  readonly mask: bigint | null;
}

/** A match: fields in canonical order (FIELD_ORDER), each at most once. Empty matches all. */
export type Match = readonly MatchField[];

/** A declared slice of a field: a register, or metadata, or a part of one. */
export interface RegField {
  readonly name: string;
  readonly field: FieldName;
  /** First bit and width (OVS's `reg6[0..15]` is ofs 0, nbits 16). */
  readonly ofs: number;
  readonly nbits: number;
  readonly purpose: string;
}

export type Action =
  | { readonly type: 'output'; readonly port: number }
  /** Out of the port a register holds (output:NXM_NX_REG5[]). */
  | { readonly type: 'output_reg'; readonly src: RegField }
  /** Back out of the input port (OpenFlow's IN_PORT). */
  | { readonly type: 'in_port' }
  | { readonly type: 'resubmit'; readonly table: number }
  /** A whole field (set_field). */
  | { readonly type: 'set_field'; readonly field: FieldName; readonly value: bigint }
  /** A slice of a field (load:V->F[ofs..]). */
  | { readonly type: 'load'; readonly dst: RegField; readonly value: bigint }
  | { readonly type: 'move'; readonly src: Slice; readonly dst: Slice }
  | { readonly type: 'controller'; readonly userdata: string }
  | { readonly type: 'group'; readonly id: number }
  | { readonly type: 'meter'; readonly id: number }
  | { readonly type: 'conjunction'; readonly id: number; readonly clause: number; readonly nClauses: number }
  | { readonly type: 'ct'; readonly commit: boolean; readonly zone: number | RegField | null; readonly table: number | null; readonly nat: string | null }
  | { readonly type: 'ct_clear' }
  | { readonly type: 'dec_ttl' };

/** A bit range of a field, for move. */
export interface Slice {
  readonly field: FieldName;
  readonly ofs: number;
  readonly nbits: number;
}

export interface Flow {
  /** The bridge it lives on; absent: br-int (the integration bridge, where almost all flows live). */
  readonly bridge?: string;
  readonly table: number;
  readonly priority: number;
  readonly match: Match;
  /** Empty: drop. */
  readonly actions: readonly Action[];
  readonly cookie: bigint;
  /**
   * flowKey, when the flow was built by a feature (a cache, never part of the flow's meaning:
   * drop it when table, priority or match change).
   */
  readonly key?: string;
  /** The owner that built it (provenance, kept by the desired table; not sent to the switch). */
  readonly owner?: string;
  /** What it stands for within its owner (a security group rule), for traces; not sent to the switch. */
  readonly note?: string;
  /** Seconds without a packet before the switch removes it: transient flows only (Zeta direct paths), never desired state. */
  readonly idleTimeout?: number;
}

export type GroupType = 'all' | 'select' | 'indirect' | 'ff';

export interface Bucket {
  readonly actions: readonly Action[];
  /** select groups */
  readonly weight?: number;
  /** ff groups */
  readonly watchPort?: number;
}

/** An OpenFlow group, desired like a flow: one owner, identity by id. */
export interface Group {
  /** Absent: br-int. */
  readonly bridge?: string;
  /** The owner that wants it (provenance, kept by the desired table; not sent to the switch). */
  readonly owner?: string;
  readonly id: number;
  readonly type: GroupType;
  readonly buckets: readonly Bucket[];
}

/** An OpenFlow meter (rate limits): drop above `rate` (pktps or kbps). */
export interface Meter {
  /** Absent: br-int. */
  readonly bridge?: string;
  /** The owner that wants it (provenance; not sent to the switch). */
  readonly owner?: string;
  readonly id: number;
  readonly unit: 'pktps' | 'kbps';
  readonly rate: number;
  readonly burst: number;
}

// ---- identity ----

/** The key of a flow's identity, made from its fields. */
export function makeFlowKey(table: number, priority: number, match: Match, bridge?: string): string {
  // A field is named by its rank in base 36 (`r=`, not `arp_tpa=`): keys are only ever compared,
  // and a million-neighbor host keeps two million of them.
  return joinKey(table, priority, match, bridge, FIELD_TAG);
}

/**
 * The key with each field's name (as keys were before they named fields by rank): the order
 * listings sort flows of one table and priority in, kept as it was for operators who read them.
 */
export const namedFlowKey = (f: Pick<Flow, 'bridge' | 'table' | 'priority' | 'match'>): string => joinKey(f.table, f.priority, f.match, f.bridge, null);

function joinKey(table: number, priority: number, match: Match, bridge: string | undefined, tags: Readonly<Record<FieldName, string>> | null): string {
  // Joined, not concatenated: `+=` leaves a rope of a dozen pieces per key, and a million keys
  // kept as ropes cost more than the flows they name.
  const parts: string[] = [bridge === undefined || bridge === BRIDGE ? `${table}/${priority}` : `${bridge}|${table}/${priority}`];
  for (let i = 0; i < match.length; i++) {
    const m = match[i]!;
    if (tags === FIELD_TAG && isShared(m)) {
      // A field many flows share (a network's register match, dl_type=arp) is written once.
      let part = SHARED_PARTS.get(m);
      if (part === undefined) SHARED_PARTS.set(m, (part = keyPart(m, tags)));
      parts.push(part);
    } else parts.push(keyPart(m, tags));
  }
  return parts.join('/');
}

/** The key parts of shared match fields (flow keys' tags only), for as long as a field lives. */
const SHARED_PARTS = new WeakMap<MatchField, string>();

function keyPart(m: MatchField, tags: Readonly<Record<FieldName, string>> | null): string {
  const name = tags === null ? m.field : tags[m.field];
  return m.mask === null ? `${name}=${m.value.toString(16)}` : `${name}=${m.value.toString(16)}&${m.mask.toString(16)}`;
}

/** Field names by their tag in flow keys. */
const TAG_FIELD = new Map<string, FieldName>(Object.entries(FIELD_TAG).map(([f, t]) => [t, f as FieldName]));

/**
 * A flow's identity read back from its key (makeFlowKey's inverse): a flow the agent keeps only
 * as its key, actions and cookie (desired.ts) is whole again with this.
 */
export function identityOfKey(key: string): Pick<Flow, 'bridge' | 'table' | 'priority' | 'match'> {
  // Read in place (no split, no spread): an OVS restart makes every flow whole again this way,
  // 200,000 of them at 100,000 neighbors.
  const bar = key.indexOf('|');
  let at = bar + 1;
  let slash = key.indexOf('/', at);
  const table = Number(key.slice(at, slash));
  at = slash + 1;
  slash = key.indexOf('/', at);
  const priority = Number(key.slice(at, slash < 0 ? key.length : slash));
  const match: MatchField[] = [];
  while (slash >= 0) {
    at = slash + 1;
    slash = key.indexOf('/', at);
    const end = slash < 0 ? key.length : slash;
    const eqAt = key.indexOf('=', at);
    const amp = key.indexOf('&', eqAt);
    const field = TAG_FIELD.get(key.slice(at, eqAt));
    if (field === undefined || eqAt < 0 || eqAt > end) throw new Error(`flow key ${key}: unknown field tag ${key.slice(at, eqAt < 0 || eqAt > end ? end : eqAt)}`);
    match.push(amp < 0 || amp > end
      ? { field, value: hexValue(key, eqAt + 1, end), mask: null }
      : { field, value: hexValue(key, eqAt + 1, amp), mask: hexValue(key, amp + 1, end) });
  }
  return bar < 0 ? { table, priority, match } : { bridge: key.slice(0, bar), table, priority, match };
}

/** Hex digits of `s` from `from` to `to` as a bigint (up to 13 digits through a double: exact, and no string made). */
function hexValue(s: string, from: number, to: number): bigint {
  return to - from <= 13 ? BigInt(parseInt(s.slice(from, to), 16)) : BigInt(`0x${s.slice(from, to)}`);
}

/** The bridge a flow key names (br-int's keys name none). */
export function bridgeOfKey(key: string): string {
  const bar = key.indexOf('|');
  return bar < 0 ? BRIDGE : key.slice(0, bar);
}

/**
 * OpenFlow identity of a flow: a second flow with the same key replaces the first. Flows built
 * by features carry it already (the reconciler asks for it several times per flow).
 */
export function flowKey(f: Pick<Flow, 'bridge' | 'table' | 'priority' | 'match' | 'key'>): string {
  return f.key ?? makeFlowKey(f.table, f.priority, f.match, f.bridge);
}

/** The bridge of a flow, group or meter. */
export const bridgeOf = (o: { bridge?: string }): string => o.bridge ?? BRIDGE;

/** Identity of a group or meter: its id on its bridge. */
export const objectKey = (o: { bridge?: string; id: number }): string => (o.bridge === undefined || o.bridge === BRIDGE ? String(o.id) : `${o.bridge}|${o.id}`);


/** A string that is equal exactly when two action lists do the same thing. */
export function actionsKey(actions: readonly Action[]): string {
  let k = '';
  for (const a of actions) k += `${actionKey(a)};`;
  return k;
}

function sliceKey(s: Slice): string {
  return `${s.field}[${s.ofs}+${s.nbits}]`;
}

function actionKey(a: Action): string {
  switch (a.type) {
    case 'output': return `o${a.port}`;
    case 'output_reg': return `or${sliceKey(a.src)}`;
    case 'in_port': return 'ip';
    case 'resubmit': return `r${a.table}`;
    case 'set_field': return `s${a.field}=${a.value.toString(16)}`;
    case 'load': return `l${sliceKey(a.dst)}=${a.value.toString(16)}`;
    case 'move': return `m${sliceKey(a.src)}>${sliceKey(a.dst)}`;
    case 'controller': return `c${a.userdata}`;
    case 'group': return `g${a.id}`;
    case 'meter': return `M${a.id}`;
    case 'conjunction': return `j${a.id},${a.clause}/${a.nClauses}`;
    case 'ct': return `ct${a.commit ? 'c' : ''}:${typeof a.zone === 'object' && a.zone !== null ? sliceKey(a.zone) : String(a.zone)}:${String(a.table)}:${a.nat ?? ''}`;
    case 'ct_clear': return 'cc';
    case 'dec_ttl': return 'dt';
  }
}

export function sameGroup(a: Group, b: Group): boolean {
  if (bridgeOf(a) !== bridgeOf(b) || a.type !== b.type || a.buckets.length !== b.buckets.length) return false;
  return a.buckets.every((x, i) => {
    const y = b.buckets[i]!;
    return x.weight === y.weight && x.watchPort === y.watchPort && actionsKey(x.actions) === actionsKey(y.actions);
  });
}

export const sameMeter = (a: Meter, b: Meter): boolean => bridgeOf(a) === bridgeOf(b) && a.unit === b.unit && a.rate === b.rate && a.burst === b.burst;

// ---- building ----

/** A flow a table does not allow, caught where it is built: names the feature and the owner. */
export class FlowBuildError extends Error {}

/** Match on a whole field. */
export const eq = (field: FieldName, value: bigint | number): MatchField => ({ field, value: BigInt(value), mask: null });

/** Match on a masked field. */
export const masked = (field: FieldName, value: bigint | number, mask: bigint | number): MatchField => {
  // Only the bits the switch keeps count: a mask covering all of them is an exact match, as the
  // switch reads it back (so one flow never has two keys).
  const whole = (FIELDS[field]).kept ?? fullMask(FIELDS[field]);
  const m = BigInt(mask) & whole;
  return m === whole ? eq(field, BigInt(value) & whole) : { field, value: BigInt(value) & m, mask: m };
};

/** Match on a declared register slice. */
export function reg(r: RegField, value: bigint | number): MatchField {
  const v = BigInt(value);
  if (v >> BigInt(r.nbits) !== 0n) throw new FlowBuildError(`${value} does not fit ${r.name} (${r.field}[${r.ofs}..${r.ofs + r.nbits - 1}])`);
  const mask = ((1n << BigInt(r.nbits)) - 1n) << BigInt(r.ofs);
  return masked(r.field, v << BigInt(r.ofs), mask);
}

/** Load a value into a declared register slice. */
export function load(r: RegField, value: bigint | number): Action {
  const v = BigInt(value);
  if (v >> BigInt(r.nbits) !== 0n) throw new FlowBuildError(`${value} does not fit ${r.name} (${r.field}[${r.ofs}..${r.ofs + r.nbits - 1}])`);
  return { type: 'load', dst: r, value: v };
}

export const setField = (field: FieldName, value: bigint | number): Action => ({ type: 'set_field', field, value: BigInt(value) });

export const output = (port: number): Action => ({ type: 'output', port });
export const resubmit = (table: { id: number } | number): Action => ({ type: 'resubmit', table: typeof table === 'number' ? table : table.id });

/**
 * Immutable match fields and actions shared between flows: a million neighbors on a few thousand
 * hosts need a few thousand `set_field:H->tun_dst` objects, not a million. Bounded: cleared when
 * it grows past its limit (it only saves memory, never changes a result).
 */
export class Interned<K, T extends object> {
  /** Values asked for once so far: not marked shared. */
  private readonly once = new Map<K, T>();
  /** Values asked for again: marked shared, and found with one lookup and nothing more. */
  private readonly again = new Map<K, T>();
  constructor(private readonly limit = 100_000) {}

  /** The value for `key` if made already (no closure needed to ask). */
  peek(key: K): T | undefined {
    return this.again.get(key) ?? this.second(key);
  }

  get(key: K, make: (key: K) => T): T {
    const v = this.peek(key);
    if (v !== undefined) return v;
    if (this.once.size + this.again.size >= this.limit) {
      this.once.clear();
      this.again.clear();
    }
    const made = make(key);
    this.once.set(key, made);
    return made;
  }

  /**
   * A value's second use marks it shared, not its first: most values interned per host or per
   * address (a neighbor's host on a cloud of thousands of hosts) are used once, and marking,
   * like a backend's cached translation, costs more than it saves for those. Marked once: a
   * value used a million times is not marked a million times.
   */
  private second(key: K): T | undefined {
    const v = this.once.get(key);
    if (v === undefined) return undefined;
    this.once.delete(key);
    this.again.set(key, shared(v));
    return v;
  }
}

/**
 * Marks an immutable match field, action or action list as shared by many flows, so a backend
 * may translate it once and reuse the translation (the simulator does): a hint about identity,
 * never about meaning. Marked by freezing it: it is immutable already, and asking whether an
 * object is frozen reads a bit of its shape, where a WeakSet of shared objects was a hash
 * lookup per action of every flow (a second of a million-neighbor push).
 */
export function shared<T extends object>(o: T): T {
  return Object.freeze(o);
}

/** Whether an object is immutable and may be shared (marked by `shared`, or frozen otherwise). */
export const isShared = (o: object): boolean => Object.isFrozen(o);

const regMatches = new Map<RegField, Interned<number, MatchField>>();
const regLoads = new Map<RegField, Interned<number, Action>>();

/** A register match shared by every flow that matches the same value. */
export function sharedReg(r: RegField, value: number): MatchField {
  let i = regMatches.get(r);
  if (!i) regMatches.set(r, (i = new Interned()));
  return i.get(value, (v) => reg(r, v));
}

/** A load action shared by every flow that loads the same value into the same register. */
export function sharedLoad(r: RegField, value: number): Action {
  let i = regLoads.get(r);
  if (!i) regLoads.set(r, (i = new Interned()));
  return i.get(value, (v) => load(r, v));
}

/** Whether a match is already in canonical order with each field once (features mostly write it so). */
function isCanonical(fields: readonly MatchField[]): boolean {
  for (let i = 1; i < fields.length; i++) if (FIELD_RANK[fields[i - 1]!.field] >= FIELD_RANK[fields[i]!.field]) return false;
  return true;
}

/** Sort a match into canonical order and check each field appears once. */
export function canonicalMatch(fields: MatchField[]): Match {
  if (isCanonical(fields)) return fields;
  fields.sort((a, b) => FIELD_RANK[a.field] - FIELD_RANK[b.field]);
  for (let i = 1; i < fields.length; i++) {
    if (fields[i]!.field === fields[i - 1]!.field) throw new FlowBuildError(`field ${fields[i]!.field} matched twice`);
  }
  return fields;
}


// ---- cookies ----

export const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

/**
 * 48-bit hash of a string: the resource part of a cookie. Two 32-bit FNV-1a lanes with
 * different offsets, in plain integer arithmetic (BigInt per character cost more than the flow
 * itself at a million neighbors).
 */
export function hash48(text: string): bigint {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  // Below 2^48: exact as a double, so one BigInt is made, not four.
  return BigInt((a >>> 0) * 0x10000 + ((b >>> 0) & 0xffff));
}

/** The programmer part of cookies, made once per programmer. */
const PROGRAMMER_BITS = new Map<ProgrammerName, bigint>();

/** Cookie of the flows a programmer makes for one owner (a resource or an aggregate). */
export function cookieFor(programmer: ProgrammerName, owner: string): bigint {
  let high = PROGRAMMER_BITS.get(programmer);
  if (high === undefined) PROGRAMMER_BITS.set(programmer, (high = BigInt(PROGRAMMERS[programmer].id) << COOKIE.programmerShift));
  return high | hash48(owner);
}

export function programmerOf(cookie: bigint): ProgrammerName | undefined {
  const id = Number((cookie >> COOKIE.programmerShift) & 0xffn);
  return (Object.keys(PROGRAMMERS) as ProgrammerName[]).find((p) => PROGRAMMERS[p].id === id);
}
