// The GoalStateOperationReply for an intake result, encoded straight to bytes. A reply carries
// one status per resource (a million for a large neighbor state); building a protobuf object
// per status and encoding it through the generic writer cost seconds, this costs milliseconds.
// `toReply` gives the same reply as an object, for in-process callers and as the reference the
// tests check the encoder against.
import { OperationStatus, ResourceType } from '../proto/gen/alcor/common.js';
import type { GoalStateOperationReply } from '../proto/gen/alcor/goalstateprovisioner.js';
import type { IntakeResult } from './intake.js';
import type { ResourceResult, Status } from './results.js';
import { KINDS, type Kind } from '../dataplane/model.js';

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

/** uint32 microseconds; at least 1 so "measured" never reads as "unset". */
export function clampUs(us: number): number {
  return Math.min(0xffffffff, Math.max(1, Math.round(us)));
}

interface Times {
  dataplane: number;
  config: number;
  elapsed: number;
}

function timesOf(r: ResourceResult, result: IntakeResult): Times {
  return {
    dataplane: r.changed ? clampUs(result.dataplaneUs) : 0,
    config: clampUs(r.configUs),
    elapsed: clampUs(result.totalUs),
  };
}

export function toReply(result: IntakeResult): GoalStateOperationReply {
  return {
    formatVersion: 0,
    operationStatuses: result.results.toArray().map((r) => {
      const t = timesOf(r, result);
      return {
        resourceId: r.id,
        resourceType: RESOURCE_TYPES[r.kind],
        operationType: r.operationType,
        operationStatus: STATUSES[r.status],
        dataplaneProgrammingTime: t.dataplane,
        networkConfigurationTime: t.config,
        stateElapseTime: t.elapsed,
        statusDetail: r.detail,
      };
    }),
    messageTotalOperationTime: clampUs(result.totalUs),
  };
}

function varintSize(v: number): number {
  if (v < 0) return 10; // negative int32 enums are sign-extended to 64 bits
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n += 1;
  }
  return n;
}

class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(v: number): void {
    if (v < 0) {
      // int32 enum below zero: two's complement over 64 bits, 10 bytes
      let lo = v >>> 0;
      for (let i = 0; i < 4; i++) {
        this.buf[this.pos++] = (lo & 0x7f) | 0x80;
        lo >>>= 7;
      }
      this.buf[this.pos++] = (lo & 0x0f) | 0x70 | 0x80;
      for (let i = 0; i < 4; i++) this.buf[this.pos++] = 0xff;
      this.buf[this.pos++] = 0x01;
      return;
    }
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }

  bytes(tag: number[], text: string, byteLength: number): void {
    for (const b of tag) this.buf[this.pos++] = b;
    this.varint(byteLength);
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }
}

const TYPE_BY_KIND_INDEX = KINDS.map((k) => RESOURCE_TYPES[k]);
const TAG_ID = [0x0a]; // field 1, length-delimited
const TAG_DETAIL = [0xa2, 0x06]; // field 100, length-delimited

/** Proto3 encoding of `toReply(result)`: default values omitted, fields in number order. */
export function encodeReply(result: IntakeResult): Buffer {
  const steps = encodeSteps(result);
  for (let r = steps.next(); ; r = steps.next()) if (r.done) return r.value;
}

/**
 * The same, yielding to the event loop whenever a slice of the work has run `sliceMs`: a reply of
 * a million statuses takes about half a second to encode, which other clients must not wait out.
 */
export async function encodeReplyAsync(result: IntakeResult, sliceMs: number): Promise<Buffer> {
  const steps = encodeSteps(result);
  let start = performance.now();
  for (let r = steps.next(); ; r = steps.next()) {
    if (r.done) return r.value;
    if (performance.now() - start >= sliceMs) {
      await new Promise((resolve) => setImmediate(resolve));
      start = performance.now();
    }
  }
}

/** Statuses encoded between two looks at the clock. */
const STEP = 2048;

/**
 * The encoder, pausing (yield) every STEP statuses of each of its two passes. The passes' loops
 * are functions of their own, called per STEP: V8 does not optimize a loop inside a generator
 * while it runs (no on-stack replacement there), so a first reply of 10,000 statuses ran its
 * 20,000 rounds in unoptimized code.
 */
function* encodeSteps(result: IntakeResult): Generator<void, Buffer> {
  const rs = result.results;
  const n = rs.length;
  const m: Measured = {
    elapsed: clampUs(result.totalUs), dp: clampUs(result.dataplaneUs),
    sizes: new Uint32Array(n), idLens: new Uint32Array(n), detailLens: new Uint32Array(n),
  };
  let total = 0;
  for (let from = 0; from < n; from += STEP) {
    if (from > 0) yield;
    total += measure(rs, from, Math.min(n, from + STEP), m);
  }
  total += 1 + varintSize(m.elapsed);
  const w = new Writer(Buffer.allocUnsafe(total));
  for (let from = 0; from < n; from += STEP) {
    if (from > 0) yield;
    write(w, rs, from, Math.min(n, from + STEP), m);
  }
  w.buf[w.pos++] = 0x18; // field 3
  w.varint(m.elapsed);
  if (w.pos !== total) throw new Error(`reply encoder size mismatch: wrote ${w.pos} of ${total}`);
  return w.buf;
}

/** What the first pass finds for the second: each status's size and its strings' byte lengths. */
interface Measured {
  readonly elapsed: number;
  readonly dp: number;
  readonly sizes: Uint32Array;
  readonly idLens: Uint32Array;
  readonly detailLens: Uint32Array;
}

/** The first pass over statuses [from, to): their sizes; returns the bytes they take framed. */
function measure(rs: IntakeResult['results'], from: number, to: number, m: Measured): number {
  let total = 0;
  for (let i = from; i < to; i++) {
    const idLen = Buffer.byteLength(rs.id(i));
    const detail = rs.detail(i);
    const detailLen = detail === '' ? 0 : Buffer.byteLength(detail);
    const type = TYPE_BY_KIND_INDEX[rs.kindIndex(i)]!;
    const status = rs.statusCode(i);
    const op = rs.operationType(i);
    let size = 0;
    if (idLen > 0) size += 1 + varintSize(idLen) + idLen;
    if (type !== 0) size += 1 + varintSize(type);
    if (op !== 0) size += 1 + varintSize(op);
    if (status !== 0) size += 1 + varintSize(status);
    if (rs.changed(i)) size += 1 + varintSize(m.dp);
    size += 1 + varintSize(clampUs(rs.config(i)));
    size += 1 + varintSize(m.elapsed);
    if (detailLen > 0) size += 2 + varintSize(detailLen) + detailLen;
    m.sizes[i] = size;
    m.idLens[i] = idLen;
    m.detailLens[i] = detailLen;
    total += 1 + varintSize(size) + size;
  }
  return total;
}

/** The second pass over statuses [from, to): each written as measured. */
function write(w: Writer, rs: IntakeResult['results'], from: number, to: number, m: Measured): void {
  for (let i = from; i < to; i++) {
    w.buf[w.pos++] = 0x12; // field 2, length-delimited
    w.varint(m.sizes[i]!);
    if (m.idLens[i]! > 0) w.bytes(TAG_ID, rs.id(i), m.idLens[i]!);
    const type = TYPE_BY_KIND_INDEX[rs.kindIndex(i)]!;
    if (type !== 0) { w.buf[w.pos++] = 0x10; w.varint(type); }
    const op = rs.operationType(i);
    if (op !== 0) { w.buf[w.pos++] = 0x18; w.varint(op); }
    const status = rs.statusCode(i);
    if (status !== 0) { w.buf[w.pos++] = 0x20; w.varint(status); }
    if (rs.changed(i)) { w.buf[w.pos++] = 0x28; w.varint(m.dp); }
    w.buf[w.pos++] = 0x30; w.varint(clampUs(rs.config(i)));
    w.buf[w.pos++] = 0x38; w.varint(m.elapsed);
    if (m.detailLens[i]! > 0) w.bytes(TAG_DETAIL, rs.detail(i), m.detailLens[i]!);
  }
}
