// Goal states as the intake reads them: one resource state at a time, by kind, with its V2 map
// key. Three sources: a decoded V1 GoalState, a decoded GoalStateV2, and raw GoalStateV2 bytes
// decoded lazily — a controller's state can hold a million neighbors, and decoding them one at
// a time keeps only one protobuf object alive instead of a million.
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { DHCPState } from '../proto/gen/alcor/dhcp.js';
import { GatewayState } from '../proto/gen/alcor/gateway.js';
import { type GoalState, type GoalStateV2, GoalStateV2_HostResourcesEntry, type HostResources } from '../proto/gen/alcor/goalstate.js';
import { NeighborState } from '../proto/gen/alcor/neighbor.js';
import { PortState } from '../proto/gen/alcor/port.js';
import { RouterState } from '../proto/gen/alcor/router.js';
import { SecurityGroupState } from '../proto/gen/alcor/securitygroup.js';
import { SubnetState } from '../proto/gen/alcor/subnet.js';
import { VpcState } from '../proto/gen/alcor/vpc.js';
import type { Kind } from '../dataplane/model.js';
import { decodeNeighborState } from './neighbor-decoder.js';
import { type StateOf, idFromMapKey } from './normalize.js';

export interface GoalStateSource {
  /** How many states of a kind; with `slice`, a kind can be visited a part at a time. */
  size(kind: Kind): number;
  /**
   * Visit the states of a kind from index `from` up to (not including) `to`, in message order.
   * A state that cannot be decoded is `Error`.
   */
  slice<K extends Kind>(kind: K, from: number, to: number, visit: (state: StateOf[K] | Error, mapKey: string | undefined) => void): void;
  /**
   * The id each state of a kind from `from` up to `to` reports under (its configuration id, else
   * the one in its map key), read without decoding the rest of the state: cheap enough to know a
   * large state's resources before its turn (agent/overtake.ts). '' when there is none.
   */
  ids(kind: Kind, from: number, to: number, visit: (id: string) => void): void;
  /** The same ids as idHash values, -1 for none (raw bytes: no string made per id). */
  idHashes(kind: Kind, from: number, to: number, visit: (hash: number) => void): void;
  count(): number;
  /**
   * Every state has been read: free what the source keeps now rather than at the next full
   * collection (raw bytes only). size, slice, ids and idHashes throw after it; count stays.
   */
  release?(): void;
}

const hashOrNone = (id: string): number => (id === '' ? -1 : idHash(id));

const configIdOf = (state: { configuration?: { id: string } | undefined }, mapKey: string | undefined): string =>
  idFromMapKey(state.configuration?.id ?? '', mapKey);

export function fromV1(g: GoalState): GoalStateSource {
  const lists: { [K in Kind]: StateOf[K][] } = {
    vpc: g.vpcStates, subnet: g.subnetStates, port: g.portStates, neighbor: g.neighborStates,
    securityGroup: g.securityGroupStates, dhcp: g.dhcpStates, router: g.routerStates, gateway: g.gatewayStates,
  };
  return {
    size: (kind) => lists[kind].length,
    slice(kind, from, to, visit) {
      const l = lists[kind];
      for (let i = from; i < to && i < l.length; i++) visit(l[i]!, undefined);
    },
    ids(kind, from, to, visit) {
      const l = lists[kind];
      for (let i = from; i < to && i < l.length; i++) visit(configIdOf(l[i]!, undefined));
    },
    idHashes(kind, from, to, visit) {
      const l = lists[kind];
      for (let i = from; i < to && i < l.length; i++) visit(hashOrNone(configIdOf(l[i]!, undefined)));
    },
    count: () => Object.values(lists).reduce((n, l) => n + l.length, 0),
  };
}

export function fromV2(g: GoalStateV2): GoalStateSource {
  const maps: { [K in Kind]: Record<string, StateOf[K]> } = {
    vpc: g.vpcStates, subnet: g.subnetStates, port: g.portStates, neighbor: g.neighborStates,
    securityGroup: g.securityGroupStates, dhcp: g.dhcpStates, router: g.routerStates, gateway: g.gatewayStates,
  };
  const entries = new Map<Kind, [string, unknown][]>();
  const entriesOf = (kind: Kind): [string, unknown][] => {
    let e = entries.get(kind);
    if (!e) entries.set(kind, (e = Object.entries(maps[kind])));
    return e;
  };
  return {
    size: (kind) => entriesOf(kind).length,
    slice(kind, from, to, visit) {
      const l = entriesOf(kind);
      for (let i = from; i < to && i < l.length; i++) visit(l[i]![1] as StateOf[typeof kind], l[i]![0]);
    },
    ids(kind, from, to, visit) {
      const l = entriesOf(kind);
      for (let i = from; i < to && i < l.length; i++) visit(configIdOf(l[i]![1] as StateOf[typeof kind], l[i]![0]));
    },
    idHashes(kind, from, to, visit) {
      const l = entriesOf(kind);
      for (let i = from; i < to && i < l.length; i++) visit(hashOrNone(configIdOf(l[i]![1] as StateOf[typeof kind], l[i]![0])));
    },
    count: () => Object.values(maps).reduce((n, m) => n + Object.keys(m).length, 0),
  };
}

const CODECS: { [K in Kind]: { decode(r: BinaryReader, len: number): StateOf[K] } } = {
  vpc: VpcState, subnet: SubnetState, port: PortState, neighbor: NeighborState,
  securityGroup: SecurityGroupState, dhcp: DHCPState, router: RouterState, gateway: GatewayState,
};

/** GoalStateV2 field numbers of the state maps. */
const FIELD_KINDS: Record<number, Kind> = {
  3: 'vpc', 4: 'subnet', 5: 'port', 6: 'dhcp', 7: 'neighbor', 8: 'securityGroup', 9: 'router', 10: 'gateway',
};

export class UndecodableError extends Error {}

/** A GoalStateV2 whose map entries are located but not yet decoded. */
export interface LazyGoalStateV2 extends GoalStateSource {
  formatVersion: number;
  hostResources: Record<string, HostResources>;
  bytes: number;
}

/**
 * Scan a GoalStateV2's top level: decode `format_version` and `host_resources`, and record where
 * each state map entry's key and value lie. Throws UndecodableError if the framing is broken;
 * a state whose own bytes are broken is reported per resource by slice.
 */
export function scanGoalStateV2(buf: Uint8Array): LazyGoalStateV2 {
  const steps = scanSteps(buf);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * The same scan in slices: between two slices `pause` may hand the loop to others (a state of a
 * million entries is scanned in about a second; health checks and small states do not wait for
 * it). Rejects with UndecodableError as scanGoalStateV2 throws.
 */
export async function scanGoalStateV2Sliced(buf: Uint8Array, pause: () => Promise<void> | null): Promise<LazyGoalStateV2> {
  const steps = scanSteps(buf);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    const p = pause();
    if (p) await p;
  }
}

/**
 * A message larger than this is scanned in slices (scanGoalStateV2Sliced), by the gRPC stream
 * and the Pulsar path alike: a 100,000-neighbor state took 40–100 ms in one piece.
 */
export const SLICED_SCAN_BYTES = 1 << 20;

/** Map entries scanned between two chances to pause. */
const SCAN_SLICE = 2048;

/** Scan map entries until SCAN_SLICE more are found or the message ends: whether more is left. */
function scanSlice(scan: Scan): boolean {
  const { buf, reader } = scan;
  while (reader.pos < reader.len) {
    // The tag without the reader's [field, wire] array (one per entry otherwise).
    const tag = readVarint(buf, reader.pos, reader.len);
    let field: number;
    let wire: WireType;
    if (tag >= 0 && tag < 0x80000000) {
      reader.pos = after;
      field = tag >>> 3;
      wire = tag & 7;
    } else {
      [field, wire] = reader.tag();
    }
    const kind = FIELD_KINDS[field];
    if (kind !== undefined && wire === WireType.LengthDelimited) {
      const len = reader.uint32();
      const end = reader.pos + len;
      if (end > reader.len) throw new UndecodableError(`map entry of field ${field} overruns the message`);
      let keyStart = -1;
      let keyLen = 0;
      let valueStart = -1;
      let valueLen = 0;
      while (reader.pos < end) {
        // The usual key (field 1) and value (field 2), read without the reader's allocations
        // (a state of a million entries is scanned while others wait).
        const t = readVarint(buf, reader.pos, end);
        if (t === 10 || t === 18) {
          const l = readVarint(buf, after, end);
          if (l >= 0) {
            if (t === 10) { keyLen = l; keyStart = after; } else { valueLen = l; valueStart = after; }
            reader.pos = after + l;
            continue;
          }
        }
        const [f, w] = reader.tag();
        if (f === 1 && w === WireType.LengthDelimited) {
          keyLen = reader.uint32();
          keyStart = reader.pos;
          reader.pos += keyLen;
        } else if (f === 2 && w === WireType.LengthDelimited) {
          valueLen = reader.uint32();
          valueStart = reader.pos;
          reader.pos += valueLen;
        } else {
          reader.skip(w, f);
        }
      }
      if (reader.pos !== end) throw new UndecodableError(`map entry of field ${field} is malformed`);
      let list = scan.spans.get(kind);
      if (!list) scan.spans.set(kind, (list = []));
      list.push(keyStart, keyLen, valueStart, valueLen);
      scan.total += 1;
      if (scan.total % SCAN_SLICE === 0) return reader.pos < reader.len;
    } else if (field === 1 && wire === WireType.Varint) {
      scan.formatVersion = reader.uint32();
    } else if (field === 2 && wire === WireType.LengthDelimited) {
      const entry = GoalStateV2_HostResourcesEntry.decode(reader, reader.uint32());
      if (entry.value !== undefined) scan.hostResources[entry.key] = entry.value;
    } else {
      reader.skip(wire, field);
    }
    if (reader.pos > reader.len) throw new UndecodableError('field overruns the message');
  }
  return false;
}

/** A scan's state between its slices. */
interface Scan {
  readonly buf: Uint8Array;
  readonly reader: BinaryReader;
  /** Per kind: [keyStart, keyLen, valueStart, valueLen] (valueStart -1 = no value), flat. */
  readonly spans: Map<Kind, number[]>;
  readonly hostResources: Record<string, HostResources>;
  formatVersion: number;
  total: number;
}

function* scanSteps(buf: Uint8Array): Generator<void, LazyGoalStateV2> {
  const scan: Scan = { buf, reader: new BinaryReader(buf), spans: new Map(), hostResources: {}, formatVersion: 0, total: 0 };
  try {
    // The loop is a function of its own, called per slice: V8 does not optimize a loop inside a
    // generator while it runs, and a large state's first scan would run unoptimized throughout.
    while (scanSlice(scan)) yield;
  } catch (e) {
    if (e instanceof UndecodableError) throw e;
    throw new UndecodableError((e as Error).message);
  }
  const { reader, spans, hostResources, formatVersion, total } = scan;
  const decoder = new TextDecoder();
  const bytes = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let released = false;
  const live = (): void => {
    if (released) throw new Error('the goal state\'s bytes were released once its states were stored');
  };
  return {
    formatVersion,
    hostResources,
    bytes: buf.length,
    count: () => total,
    size: (kind) => {
      live();
      return (spans.get(kind)?.length ?? 0) / 4;
    },
    slice(kind, from, to, visit) {
      live();
      const list = spans.get(kind);
      if (!list) return;
      const codec = CODECS[kind];
      for (let i = from * 4; i < list.length && i < to * 4; i += 4) {
        const keyStart = list[i]!;
        const mapKey = keyStart < 0 ? '' : decoder.decode(buf.subarray(keyStart, keyStart + list[i + 1]!));
        const valueStart = list[i + 2]!;
        let state: StateOf[typeof kind] | Error;
        try {
          // proto3: an absent map value is the default message
          reader.pos = valueStart < 0 ? 0 : valueStart;
          const len = valueStart < 0 ? 0 : list[i + 3]!;
          state = kind === 'neighbor' ? decodeNeighborState(reader, bytes, len) as StateOf[typeof kind] : codec.decode(reader, len);
        } catch (e) {
          state = new Error(`undecodable state: ${(e as Error).message}`);
        }
        visit(state, mapKey);
      }
    },
    ids(kind, from, to, visit) {
      live();
      const list = spans.get(kind);
      if (!list) return;
      for (let i = from * 4; i < list.length && i < to * 4; i += 4) {
        const keyStart = list[i]!;
        const valueStart = list[i + 2]!;
        let id = valueStart < 0 ? '' : peekConfigId(bytes, valueStart, valueStart + list[i + 3]!);
        if (id === '' && keyStart >= 0) id = idFromMapKey('', decoder.decode(buf.subarray(keyStart, keyStart + list[i + 1]!)));
        visit(id);
      }
    },
    idHashes(kind, from, to, visit) {
      live();
      const list = spans.get(kind);
      if (!list) return;
      for (let i = from * 4; i < list.length && i < to * 4; i += 4) {
        const keyStart = list[i]!;
        const valueStart = list[i + 2]!;
        let h = valueStart < 0 ? -1 : peekConfigIdHash(bytes, valueStart, valueStart + list[i + 3]!);
        if (h === -1 && keyStart >= 0) h = idHash(idFromMapKey('', decoder.decode(buf.subarray(keyStart, keyStart + list[i + 1]!))));
        visit(h);
      }
    },
    release() {
      if (released) return;
      released = true;
      spans.clear();
      // A large message's bytes (170 MB for a million neighbors) would otherwise wait for the next
      // full collection, which in a large push comes at its end, on top of the heap's peak. Moved
      // out of the buffer into a clone nobody keeps, they go at the next scavenge. Only when the
      // ArrayBuffer holds this message and at most its transport's frame header (gRPC's 5 bytes):
      // a smaller buffer may be a slice of Node's pool, a larger one may hold other messages.
      const ab = buf.buffer;
      if (ab instanceof ArrayBuffer && ab.byteLength - buf.byteLength <= FRAME_HEADER_BYTES && ab.byteLength > Buffer.poolSize) {
        try {
          structuredClone(ab, { transfer: [ab] });
        } catch {
          // Not transferable: left to the collector.
        }
      }
    },
  };
}

/** The most an ArrayBuffer may hold beside a message for release() to free it (gRPC's frame header is 5). */
const FRAME_HEADER_BYTES = 16;

/** Where the last varint read by readVarint ended (module state: no array per varint). */
let after = 0;

/** A varint at `pos` of `buf` (up to 2^53); -1 when cut short. Sets `after`. */
function readVarint(buf: Uint8Array, pos: number, end: number): number {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8 && pos < end; i++) {
    const b = buf[pos++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) {
      after = pos;
      return v;
    }
    mul *= 128;
  }
  return -1;
}

/** Past the field of wire type `wire` whose value starts at `pos`, or -1 (a group, or broken). */
function skipField(buf: Uint8Array, pos: number, end: number, wire: number): number {
  switch (wire) {
    case WireType.Varint: return readVarint(buf, pos, end) < 0 ? -1 : after;
    case WireType.Bit64: return pos + 8;
    case WireType.Bit32: return pos + 4;
    case WireType.LengthDelimited: { const len = readVarint(buf, pos, end); return len < 0 ? -1 : after + len; }
    default: return -1;
  }
}

/** Where the id peekConfigIdAt found ends (module state, as `after`). */
let idEnd = 0;

/**
 * Where `configuration.id` of a resource state starts (every kind: configuration is field 2 of
 * the state, id field 3 of the configuration; the last occurrence wins, as in a full decode), its
 * end in `idEnd`; -1 when absent or when the bytes are broken (the full decode then reports the
 * state as undecodable).
 */
function peekConfigIdAt(buf: Buffer, start: number, end: number): number {
  let at = -1;
  let pos = start;
  while (pos < end) {
    const tag = readVarint(buf, pos, end);
    if (tag < 0) return at;
    pos = after;
    if (tag === 18) {
      const len = readVarint(buf, pos, end);
      if (len < 0) return at;
      const cEnd = Math.min(end, after + len);
      let p = after;
      pos = after + len;
      while (p < cEnd) {
        const t = readVarint(buf, p, cEnd);
        if (t < 0) break;
        p = after;
        if (t === 26) {
          const l = readVarint(buf, p, cEnd);
          if (l < 0 || after + l > cEnd) break;
          at = after;
          idEnd = after + l;
          p = after + l;
        } else {
          p = skipField(buf, p, cEnd, t & 7);
          if (p < 0) break;
        }
      }
    } else {
      pos = skipField(buf, pos, end, tag & 7);
      if (pos < 0) return at;
    }
  }
  return at;
}

function peekConfigId(buf: Buffer, start: number, end: number): string {
  const at = peekConfigIdAt(buf, start, end);
  return at < 0 || idEnd === at ? '' : utf8Slice(buf, at, idEnd);
}

/** idHash of the configuration id's UTF-8 bytes, read in place; -1 when it is absent or empty. */
function peekConfigIdHash(buf: Buffer, start: number, end: number): number {
  const at = peekConfigIdAt(buf, start, end);
  if (at < 0 || idEnd === at) return -1;
  let h = 0x811c9dc5;
  for (let i = at; i < idEnd; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h & 0x3fffffff;
}

/**
 * A 30-bit FNV-1a hash of an id's UTF-8 bytes (a small integer: cheap as a Map key). Equal ids
 * hash equal; two ids may share a hash, which callers must treat as "maybe the same".
 */
export function idHash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c >= 0x80) {
      for (const b of Buffer.from(id, 'utf8')) h = Math.imul(h ^ b, 0x01000193);
      return h & 0x3fffffff;
    }
    h = Math.imul(h ^ c, 0x01000193);
  }
  return h & 0x3fffffff;
}

const utf8 = new TextDecoder();
/** ASCII read as latin1 (the same text, and no TextDecoder call); anything else as UTF-8. */
function utf8Slice(buf: Buffer, start: number, end: number): string {
  for (let i = start; i < end; i++) if (buf[i]! >= 0x80) return utf8.decode(buf.subarray(start, end));
  return buf.toString('latin1', start, end);
}
