// OpenFlow 1.4 messages from and to the structured model: flow-mods, group-mods, meter-mods,
// bundle control and add, multipart requests, and the flow-stats / group-desc / meter-config
// replies read back into Flow, Group and Meter. Bytes only; openflow.ts carries them.
//
// Read-back keeps exactly what the model can say. A flow, group or meter with anything else
// (a field or action we do not encode, timeouts, flags, importance, several meter bands) is
// *foreign*: it comes back in `foreign` with a `reason`, decoded as far as it goes, and can be
// passed as is to `FlowChanges.remove` (groups.remove, meters.remove) to delete it; a foreign
// flow whose match holds fields we do not model carries its match bytes with it, so
// delete_strict removes exactly that flow.
import { FIELDS } from '../fields.js';
import { type Action, type Bucket, type Flow, type Group, type GroupType, type Meter, makeFlowKey } from '../flow.js';
import { BRIDGE } from '../pipeline.js';
import { readActionList, readInstructions, regFieldOf, writeActionList, writeInstructions } from './openflow-actions.js';
import { canonicalNat, userdataBytes, userdataText } from './openflow-args.js';
import { FlowEncodeError, canonicalMatch, prereqsOf, readMatch, writeMatch } from './openflow-oxm.js';
import { BUNDLE, FC, MP, OFPG_ANY, OFPM_ALL, OFPP, OFP_NO_BUFFER, T, type Writer, portFromWire, portToWire } from './openflow-wire.js';

export { FlowEncodeError };

/** A flow read back that the model cannot express whole; usable in `FlowChanges.remove`. */
export interface ForeignFlow extends Flow {
  readonly reason: string;
}

export interface ForeignGroup extends Group {
  readonly reason: string;
}

export interface ForeignMeter extends Meter {
  readonly reason: string;
}

/** The exact match bytes of a foreign flow whose match the model cannot hold (for delete_strict). */
export const RAW_MATCH: unique symbol = Symbol('raw OpenFlow match');
type WithRawMatch = { [RAW_MATCH]?: Buffer };

// ---- flow-mods ----

export type FlowCommand = (typeof FC)[keyof typeof FC];

/** OFPT_FLOW_MOD: add (replaces a flow with the same match whole, cookie included), modify_strict or delete_strict. */
export function writeFlowMod(w: Writer, xid: number, command: FlowCommand, f: Flow): void {
  if (!Number.isInteger(f.table) || f.table < 0 || f.table > 253) throw new FlowEncodeError(`table ${f.table} is not 0..253`);
  if (!Number.isInteger(f.priority) || f.priority < 0 || f.priority > 0xffff) throw new FlowEncodeError(`priority ${f.priority} is not 0..65535`);
  const at = w.header(T.FLOW_MOD, xid);
  w.u64(command === FC.DELETE_STRICT ? 0n : f.cookie);
  w.u64(0n); // cookie_mask: modify and delete whatever the cookie
  w.u8(f.table);
  w.u8(command);
  w.u16(command === FC.ADD ? f.idleTimeout ?? 0 : 0); // idle_timeout (transient flows only)
  w.u16(0); // hard_timeout
  w.u16(f.priority);
  w.u32(OFP_NO_BUFFER);
  w.u32(OFPP.ANY);
  w.u32(OFPG_ANY);
  w.u16(0); // flags
  w.u16(0); // importance
  const raw = (f as WithRawMatch)[RAW_MATCH];
  if (command === FC.DELETE_STRICT && raw) {
    w.bytes(raw);
  } else {
    const p = prereqsOf(f.match);
    writeMatch(w, f.match, p);
    if (command !== FC.DELETE_STRICT) writeInstructions(w, f.actions, p);
  }
  w.end(at);
}

/** OFPT_FLOW_MOD delete (non-strict) of every flow of a table with exactly this cookie: a transient flow family (all Zeta direct paths of a network). */
export function writeFlowPurge(w: Writer, xid: number, table: number, cookie: bigint): void {
  const at = w.header(T.FLOW_MOD, xid);
  w.u64(cookie);
  w.u64(0xffff_ffff_ffff_ffffn); // cookie_mask: exactly this cookie
  w.u8(table);
  w.u8(FC.DELETE);
  w.u16(0);
  w.u16(0);
  w.u16(0);
  w.u32(OFP_NO_BUFFER);
  w.u32(OFPP.ANY);
  w.u32(OFPG_ANY);
  w.u16(0);
  w.u16(0);
  writeMatch(w, [], prereqsOf([]));
  w.end(at);
}

// ---- group-mods and meter-mods ----

const GROUP_TYPES: Record<GroupType, number> = { all: 0, select: 1, indirect: 2, ff: 3 };
const GROUP_NAMES: GroupType[] = ['all', 'select', 'indirect', 'ff'];

export function writeGroupMod(w: Writer, xid: number, command: number, g: Group): void {
  const at = w.header(T.GROUP_MOD, xid);
  w.u16(command);
  w.u8(GROUP_TYPES[g.type]);
  w.u8(0);
  w.u32(g.id);
  if (command !== 2) {
    for (const b of g.buckets) {
      const start = w.len;
      w.u16(0);
      // ovs-ofctl's defaults: weight 1 in select groups, 0 elsewhere; no watch port or group.
      w.u16(b.weight ?? (g.type === 'select' ? 1 : 0));
      w.u32(b.watchPort === undefined ? OFPP.ANY : portToWire(b.watchPort));
      w.u32(OFPG_ANY);
      w.zeros(4);
      writeActionList(w, b.actions, {});
      w.patch16(start, w.len - start);
    }
  }
  w.end(at);
}

const METER_FLAGS = { kbps: 1, pktps: 2, burst: 4, stats: 8 } as const;

/** OFPT_METER_MOD with one drop band, as `ovs-ofctl add-meter meter=N,UNIT,burst,band=type=drop,...`. */
export function writeMeterMod(w: Writer, xid: number, command: number, m: Meter): void {
  const at = w.header(T.METER_MOD, xid);
  w.u16(command);
  w.u16(METER_FLAGS[m.unit] | METER_FLAGS.burst);
  w.u32(m.id);
  if (command !== 2) {
    w.u16(1); // OFPMBT_DROP
    w.u16(16);
    w.u32(m.rate);
    w.u32(m.burst);
    w.zeros(4);
  }
  w.end(at);
}

// ---- bundles, barrier, echo, multipart ----

export const BUNDLE_FLAGS = BUNDLE.ATOMIC | BUNDLE.ORDERED;

export function writeBundleControl(w: Writer, xid: number, bundleId: number, type: number, flags = BUNDLE_FLAGS): void {
  const at = w.header(T.BUNDLE_CONTROL, xid);
  w.u32(bundleId);
  w.u16(type);
  w.u16(flags);
  w.end(at);
}

/** OFPT_BUNDLE_ADD_MESSAGE around the message `inner` writes (with the same xid, as OVS requires). */
export function writeBundleAdd(w: Writer, xid: number, bundleId: number, inner: (w: Writer, xid: number) => void, flags = BUNDLE_FLAGS): void {
  const at = w.header(T.BUNDLE_ADD_MESSAGE, xid);
  w.u32(bundleId);
  w.u16(0);
  w.u16(flags);
  inner(w, xid);
  w.end(at);
}

export function writeEmpty(w: Writer, type: number, xid: number, body?: Buffer): void {
  const at = w.header(type, xid);
  if (body) w.bytes(body);
  w.end(at);
}

export function writeMultipartRequest(w: Writer, xid: number, mpType: number, filter?: { table: number; cookie: bigint }): void {
  const at = w.header(T.MULTIPART_REQUEST, xid);
  w.u16(mpType);
  w.u16(0);
  w.zeros(4);
  if (mpType === MP.FLOW) {
    w.u8(filter ? filter.table : 0xff); // one table, or all
    w.zeros(3);
    w.u32(OFPP.ANY);
    w.u32(OFPG_ANY);
    w.zeros(4);
    w.u64(filter ? filter.cookie : 0n);
    w.u64(filter ? 0xffff_ffff_ffff_ffffn : 0n); // cookie_mask: exactly that cookie
    w.u16(1); // empty OXM match
    w.u16(4);
    w.zeros(4);
  } else if (mpType === MP.METER_CONFIG) {
    w.u32(OFPM_ALL);
    w.zeros(4);
  }
  w.end(at);
}

// ---- read-back ----

const OFPFF_RESET_COUNTS = 4;

export interface DecodedFlows {
  flows: Flow[];
  foreign: ForeignFlow[];
}

/** The entries of OFPMP_FLOW reply bodies (each body after the multipart header). */
export function decodeFlowStats(bodies: readonly Buffer[], into: DecodedFlows = { flows: [], foreign: [] }): DecodedFlows {
  for (const b of bodies) {
    for (let at = 0; at + 48 <= b.length;) {
      const len = b.readUInt16BE(at);
      if (len < 48 || at + len > b.length) break;
      const table = b[at + 2]!;
      const priority = b.readUInt16BE(at + 12);
      const idle = b.readUInt16BE(at + 14);
      const hard = b.readUInt16BE(at + 16);
      const flags = b.readUInt16BE(at + 18);
      const importance = b.readUInt16BE(at + 20);
      const cookie = b.readBigUInt64BE(at + 24);
      const { decoded, next } = readMatch(b, at + 48);
      const { actions, unknown } = readInstructions(b, next, at + len);
      const reasons: string[] = [];
      if (decoded.unknown.length > 0) reasons.push(`match fields ${decoded.unknown.join(' ')}`);
      if (unknown !== null) reasons.push(unknown);
      if (idle !== 0 || hard !== 0) reasons.push('timeouts');
      // reset_counts (what OpenFlow 1.0 adds carry) only mattered when the flow was added.
      if ((flags & ~OFPFF_RESET_COUNTS) !== 0) reasons.push(`flags 0x${flags.toString(16)}`);
      if (importance !== 0) reasons.push('importance');
      const flow: Flow = { table, priority, match: decoded.match, actions, cookie };
      if (reasons.length === 0) {
        into.flows.push(flow);
      } else {
        const foreign: ForeignFlow & WithRawMatch = { ...flow, reason: reasons.join('; ') };
        if (decoded.unknown.length > 0) foreign[RAW_MATCH] = Buffer.from(b.subarray(at + 48, next));
        into.foreign.push(foreign);
      }
      at += len;
    }
  }
  return into;
}

/** Packet counts of OFPMP_FLOW reply entries, by flow key (table, priority, match). */
export function decodeFlowPackets(bodies: readonly Buffer[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const b of bodies) {
    for (let at = 0; at + 48 <= b.length;) {
      const len = b.readUInt16BE(at);
      if (len < 48 || at + len > b.length) break;
      const { decoded } = readMatch(b, at + 48);
      out.set(makeFlowKey(b[at + 2]!, b.readUInt16BE(at + 12), decoded.match), b.readBigUInt64BE(at + 32));
      at += len;
    }
  }
  return out;
}

export interface DecodedGroups {
  groups: Group[];
  foreign: ForeignGroup[];
}

export function decodeGroupDesc(bodies: readonly Buffer[]): DecodedGroups {
  const out: DecodedGroups = { groups: [], foreign: [] };
  for (const b of bodies) {
    for (let at = 0; at + 8 <= b.length;) {
      const len = b.readUInt16BE(at);
      if (len < 8 || at + len > b.length) break;
      const typeNo = b[at + 2]!;
      const id = b.readUInt32BE(at + 4);
      const type = GROUP_NAMES[typeNo] ?? 'all';
      const buckets: Bucket[] = [];
      let reason: string | null = typeNo < GROUP_NAMES.length ? null : `group type ${typeNo}`;
      for (let bt = at + 8; bt + 16 <= at + len;) {
        const blen = b.readUInt16BE(bt);
        if (blen < 16 || bt + blen > at + len) { reason ??= 'bucket length'; break; }
        const weight = b.readUInt16BE(bt + 2);
        const watchPort = b.readUInt32BE(bt + 4);
        const watchGroup = b.readUInt32BE(bt + 8);
        const actions: Action[] = [];
        const unknown = readActionList(b, bt + 16, bt + blen, actions);
        if (unknown !== null) reason ??= unknown;
        if (watchGroup !== OFPG_ANY) reason ??= 'watch_group';
        const defaultWeight = type === 'select' ? 1 : 0;
        buckets.push({
          actions,
          ...(weight !== defaultWeight ? { weight } : {}),
          ...(watchPort !== OFPP.ANY ? { watchPort: portFromWire(watchPort) } : {}),
        });
        bt += blen;
      }
      if (reason === null) out.groups.push({ id, type, buckets });
      else out.foreign.push({ id, type, buckets, reason });
      at += len;
    }
  }
  return out;
}

export interface DecodedMeters {
  meters: Meter[];
  foreign: ForeignMeter[];
}

export function decodeMeterConfig(bodies: readonly Buffer[]): DecodedMeters {
  const out: DecodedMeters = { meters: [], foreign: [] };
  for (const b of bodies) {
    for (let at = 0; at + 8 <= b.length;) {
      const len = b.readUInt16BE(at);
      if (len < 8 || at + len > b.length) break;
      const flags = b.readUInt16BE(at + 2);
      const id = b.readUInt32BE(at + 4);
      const unit = flags & METER_FLAGS.kbps ? 'kbps' : 'pktps';
      const bands: { type: number; rate: number; burst: number }[] = [];
      for (let bd = at + 8; bd + 16 <= at + len;) {
        const blen = b.readUInt16BE(bd + 2);
        if (blen < 16) break;
        bands.push({ type: b.readUInt16BE(bd), rate: b.readUInt32BE(bd + 4), burst: b.readUInt32BE(bd + 8) });
        bd += blen;
      }
      const band = bands[0];
      const meter: Meter = { id, unit, rate: band?.rate ?? 0, burst: band?.burst ?? 0 };
      const reason = bands.length !== 1 ? `${bands.length} bands`
        : band!.type !== 1 ? `band type ${band!.type}`
          : flags !== (METER_FLAGS[unit] | METER_FLAGS.burst) ? `flags 0x${flags.toString(16)}`
            : null;
      if (reason === null) out.meters.push(meter);
      else out.foreign.push({ ...meter, reason });
      at += len;
    }
  }
  return out;
}

// ---- the model as the switch keeps it ----

/** An action as read-back returns it (declared registers, canonical nat and userdata, value widths). */
export function canonicalAction(a: Action): Action {
  switch (a.type) {
    case 'set_field':
      return { type: 'set_field', field: a.field, value: a.value & ((1n << BigInt(FIELDS[a.field].bits)) - 1n) };
    case 'load':
      return { type: 'load', dst: regFieldOf(a.dst.field, a.dst.ofs, a.dst.nbits), value: a.value & ((1n << BigInt(a.dst.nbits)) - 1n) };
    case 'output_reg':
      return { type: 'output_reg', src: regFieldOf(a.src.field, a.src.ofs, a.src.nbits) };
    case 'move':
      return { type: 'move', src: { field: a.src.field, ofs: a.src.ofs, nbits: a.src.nbits }, dst: { field: a.dst.field, ofs: a.dst.ofs, nbits: a.dst.nbits } };
    case 'controller':
      return { type: 'controller', userdata: userdataText(userdataBytes(a.userdata)) };
    case 'ct': {
      const zone = a.zone === 0 ? null : a.zone !== null && typeof a.zone === 'object' ? regFieldOf(a.zone.field, a.zone.ofs, a.zone.nbits) : a.zone;
      return { type: 'ct', commit: a.commit, zone, table: a.table, nat: a.nat === null ? null : canonicalNat(a.nat) };
    }
    default:
      return a;
  }
}

/**
 * What readBack returns for a flow the agent installed: compare desired flows through this (or
 * by flowKey/actionsKey, which already ignore register names) when adopting flows at start.
 */
export function canonicalFlow(f: Flow): Flow {
  const flow: Flow = { table: f.table, priority: f.priority, match: canonicalMatch(f.match), actions: f.actions.map(canonicalAction), cookie: f.cookie };
  return offBrInt(f) ? { bridge: f.bridge, ...flow } : flow;
}

/** Read-back sets `bridge` only off br-int. */
const offBrInt = (o: { bridge?: string }): o is { bridge: string } => o.bridge !== undefined && o.bridge !== BRIDGE;

export function canonicalGroup(g: Group): Group {
  const defaultWeight = g.type === 'select' ? 1 : 0;
  return {
    ...(offBrInt(g) ? { bridge: g.bridge } : {}),
    id: g.id, type: g.type,
    buckets: g.buckets.map((b) => ({
      actions: b.actions.map(canonicalAction),
      ...(b.weight !== undefined && b.weight !== defaultWeight ? { weight: b.weight } : {}),
      ...(b.watchPort !== undefined && b.watchPort !== OFPP.ANY ? { watchPort: b.watchPort } : {}),
    })),
  };
}
