// OpenFlow 1.4 on the wire: message and multipart types, reserved ports, a growable writer, and
// the error table (type, code) → OVS's name for the error. No sockets here and nothing of the
// flow model: openflow-codec.ts builds messages from flows, openflow.ts carries them.

export const OFP_VERSION = 0x05; // OpenFlow 1.4

export const T = {
  HELLO: 0, ERROR: 1, ECHO_REQUEST: 2, ECHO_REPLY: 3, EXPERIMENTER: 4, FEATURES_REQUEST: 5, FEATURES_REPLY: 6,
  PACKET_IN: 10, FLOW_REMOVED: 11, PORT_STATUS: 12, PACKET_OUT: 13, FLOW_MOD: 14, GROUP_MOD: 15,
  MULTIPART_REQUEST: 18, MULTIPART_REPLY: 19, BARRIER_REQUEST: 20, BARRIER_REPLY: 21,
  SET_ASYNC: 28, METER_MOD: 29, BUNDLE_CONTROL: 33, BUNDLE_ADD_MESSAGE: 34,
} as const;

export const MP = { FLOW: 1, GROUP_DESC: 7, METER_CONFIG: 10, METER_FEATURES: 11 } as const;
export const MP_REPLY_MORE = 1;

export const FC = { ADD: 0, MODIFY: 1, MODIFY_STRICT: 2, DELETE: 3, DELETE_STRICT: 4 } as const;
export const GC = { ADD: 0, MODIFY: 1, DELETE: 2 } as const;
export const MC = { ADD: 0, MODIFY: 1, DELETE: 2 } as const;

export const BUNDLE = {
  OPEN_REQUEST: 0, OPEN_REPLY: 1, CLOSE_REQUEST: 2, CLOSE_REPLY: 3,
  COMMIT_REQUEST: 4, COMMIT_REPLY: 5, DISCARD_REQUEST: 6, DISCARD_REPLY: 7,
  ATOMIC: 1, ORDERED: 2,
} as const;

/** OpenFlow 1.1+ reserved ports (32-bit). */
export const OFPP = { MAX: 0xffffff00, IN_PORT: 0xfffffff8, TABLE: 0xfffffff9, CONTROLLER: 0xfffffffd, LOCAL: 0xfffffffe, ANY: 0xffffffff } as const;
export const OFPG_ANY = 0xffffffff;
export const OFPM_ALL = 0xffffffff;
export const OFP_NO_BUFFER = 0xffffffff;

/** OpenFlow 1.0 port numbers above 0xff00 (what `output:65534` means) to the 1.1+ space, and back. */
export const portToWire = (p: number): number => (p >= 0xff00 && p <= 0xffff ? (p + 0xffff0000) >>> 0 : p);
export const portFromWire = (p: number): number => (p >= 0xffffff00 ? p - 0xffff0000 : p);

/** Nicira vendor id, for NXAST actions and NX error codes. */
export const NX_VENDOR = 0x00002320;
export const ONF_VENDOR = 0x4f4e4600;

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const TWO32 = 0x100000000;

/** A growable big-endian byte writer; messages are written in place, lengths patched after. */
export class Writer {
  buf: Buffer;
  len = 0;

  constructor(size = 4096) {
    this.buf = Buffer.allocUnsafe(size);
  }

  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.len++] = v;
  }

  // Bytes stored directly, not through Buffer's writeUInt16BE and kin (their argument checks
  // cost more than the store in code V8 has not optimized yet: a first commit writes a few
  // hundred thousand fields); the same RangeError for a value that does not fit.
  u16(v: number): void {
    if (v > 0xffff || v < 0) throw new RangeError(`${v} does not fit 16 bits`);
    this.ensure(2);
    const b = this.buf;
    b[this.len] = v >>> 8;
    b[this.len + 1] = v;
    this.len += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.store32(v >>> 0);
  }

  private store32(v: number): void {
    const b = this.buf;
    const at = this.len;
    b[at] = v >>> 24;
    b[at + 1] = v >>> 16;
    b[at + 2] = v >>> 8;
    b[at + 3] = v;
    this.len = at + 4;
  }

  u64(v: bigint): void {
    this.ensure(8);
    if (v >= 0n && v <= SAFE) {
      const n = Number(v);
      const hi = Math.floor(n / TWO32);
      this.store32(hi);
      this.store32(n - hi * TWO32);
      return;
    }
    this.buf.writeBigUInt64BE(v, this.len);
    this.len += 8;
  }

  /** An unsigned value of `bytes` bytes (1 to 16), big-endian. */
  uint(v: bigint, bytes: number): void {
    this.ensure(bytes);
    if (bytes <= 6) {
      let n = Number(v);
      if (n < 0 || n >= 2 ** (8 * bytes)) throw new RangeError(`${v} does not fit ${bytes} bytes`);
      const b = this.buf;
      for (let i = this.len + bytes - 1; i >= this.len; i--) {
        b[i] = n % 256;
        n = Math.floor(n / 256);
      }
    } else if (bytes === 8) {
      this.u64(v);
      return;
    } else {
      for (let i = bytes - 1; i >= 0; i--) this.buf[this.len + bytes - 1 - i] = Number((v >> BigInt(8 * i)) & 0xffn);
    }
    this.len += bytes;
  }

  zeros(n: number): void {
    this.ensure(n);
    const b = this.buf;
    for (let i = this.len; i < this.len + n; i++) b[i] = 0;
    this.len += n;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** Zero bytes up to a multiple of 8 counted from `start`. */
  pad8(start: number): void {
    const rem = (this.len - start) % 8;
    if (rem !== 0) this.zeros(8 - rem);
  }

  patch16(at: number, v: number): void {
    this.buf.writeUInt16BE(v, at);
  }

  patch32(at: number, v: number): void {
    this.buf.writeUInt32BE(v >>> 0, at);
  }

  /** Starts a message: version, type, length patched by `end`, xid. Returns its offset. */
  header(type: number, xid: number): number {
    const at = this.len;
    this.ensure(8);
    this.buf[at] = OFP_VERSION;
    this.buf[at + 1] = type;
    this.buf.writeUInt16BE(0, at + 2);
    this.buf.writeUInt32BE(xid >>> 0, at + 4);
    this.len += 8;
    return at;
  }

  /** Patches the length of the message begun at `at`; throws if it outgrew OpenFlow's 64 KB. */
  end(at: number): void {
    const n = this.len - at;
    if (n > 0xffff) throw new RangeError(`OpenFlow message of ${n} bytes exceeds 65535`);
    this.buf.writeUInt16BE(n, at + 2);
  }

  take(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/** An unsigned big-endian value of `bytes` bytes at `off`. */
export function readUint(b: Buffer, off: number, bytes: number): bigint {
  if (bytes <= 6) return BigInt(b.readUIntBE(off, bytes));
  if (bytes === 8) return b.readBigUInt64BE(off);
  let v = 0n;
  for (let i = 0; i < bytes; i++) v = (v << 8n) | BigInt(b[off + i]!);
  return v;
}

// ---- errors ----

/** OpenFlow 1.4 error (type, code) → name, as OVS's ofp-errors.h names them (generated from OVS 3.1). */
const STANDARD_ERRORS: readonly [number, string[]][] = [
  [0, ['OFPHFC_INCOMPATIBLE', 'OFPHFC_EPERM']],
  [1, ['OFPBRC_BAD_VERSION', 'OFPBRC_BAD_TYPE', 'OFPBRC_BAD_STAT', 'OFPBRC_BAD_VENDOR', 'OFPBRC_BAD_SUBTYPE', 'OFPBRC_EPERM',
    'OFPBRC_BAD_LEN', 'OFPBRC_BUFFER_EMPTY', 'OFPBRC_BUFFER_UNKNOWN', 'OFPBRC_BAD_TABLE_ID', 'OFPBRC_IS_SECONDARY', 'OFPBRC_BAD_PORT',
    'OFPBRC_BAD_PACKET', 'OFPBRC_MULTIPART_BUFFER_OVERFLOW', 'OFPBRC_MULTIPART_REQUEST_TIMEOUT', 'OFPBRC_MULTIPART_REPLY_TIMEOUT']],
  [2, ['OFPBAC_BAD_TYPE', 'OFPBAC_BAD_LEN', 'OFPBAC_BAD_VENDOR', 'OFPBAC_BAD_VENDOR_TYPE', 'OFPBAC_BAD_OUT_PORT', 'OFPBAC_BAD_ARGUMENT',
    'OFPBAC_EPERM', 'OFPBAC_TOO_MANY', 'OFPBAC_BAD_QUEUE', 'OFPBAC_BAD_OUT_GROUP', 'OFPBAC_MATCH_INCONSISTENT', 'OFPBAC_UNSUPPORTED_ORDER',
    'OFPBAC_BAD_TAG', 'OFPBAC_BAD_SET_TYPE', 'OFPBAC_BAD_SET_LEN', 'OFPBAC_BAD_SET_ARGUMENT']],
  [3, ['OFPBIC_UNKNOWN_INST', 'OFPBIC_UNSUP_INST', 'OFPBIC_BAD_TABLE_ID', 'OFPBIC_UNSUP_METADATA', 'OFPBIC_UNSUP_METADATA_MASK',
    'OFPBIC_BAD_EXPERIMENTER', 'OFPBIC_BAD_EXP_TYPE', 'OFPBIC_BAD_LEN', 'OFPBIC_EPERM', 'OFPBIC_DUP_INST']],
  [4, ['OFPBMC_BAD_TYPE', 'OFPBMC_BAD_LEN', 'OFPBMC_BAD_TAG', 'OFPBMC_BAD_DL_ADDR_MASK', 'OFPBMC_BAD_NW_ADDR_MASK', 'OFPBMC_BAD_WILDCARDS',
    'OFPBMC_BAD_FIELD', 'OFPBMC_BAD_VALUE', 'OFPBMC_BAD_MASK', 'OFPBMC_BAD_PREREQ', 'OFPBMC_DUP_FIELD', 'OFPBMC_EPERM']],
  [5, ['OFPFMFC_UNKNOWN', 'OFPFMFC_TABLE_FULL', 'OFPFMFC_BAD_TABLE_ID', 'OFPFMFC_OVERLAP', 'OFPFMFC_EPERM', 'OFPFMFC_BAD_TIMEOUT',
    'OFPFMFC_BAD_COMMAND', 'OFPFMFC_BAD_FLAGS', 'OFPFMFC_CANT_SYNC', 'OFPFMFC_BAD_PRIORITY', 'OFPFMFC_IS_SYNC']],
  [6, ['OFPGMFC_GROUP_EXISTS', 'OFPGMFC_INVALID_GROUP', 'OFPGMFC_WEIGHT_UNSUPPORTED', 'OFPGMFC_OUT_OF_GROUPS', 'OFPGMFC_OUT_OF_BUCKETS',
    'OFPGMFC_CHAINING_UNSUPPORTED', 'OFPGMFC_WATCH_UNSUPPORTED', 'OFPGMFC_LOOP', 'OFPGMFC_UNKNOWN_GROUP', 'OFPGMFC_CHAINED_GROUP',
    'OFPGMFC_BAD_TYPE', 'OFPGMFC_BAD_COMMAND', 'OFPGMFC_BAD_BUCKET', 'OFPGMFC_BAD_WATCH', 'OFPGMFC_EPERM']],
  [7, ['OFPPMFC_BAD_PORT', 'OFPPMFC_BAD_HW_ADDR', 'OFPPMFC_BAD_CONFIG', 'OFPPMFC_BAD_ADVERTISE', 'OFPPMFC_EPERM']],
  [8, ['OFPTMFC_BAD_TABLE', 'OFPTMFC_BAD_CONFIG', 'OFPTMFC_EPERM']],
  [9, ['OFPQOFC_BAD_PORT', 'OFPQOFC_BAD_QUEUE', 'OFPQOFC_EPERM']],
  [10, ['OFPSCFC_BAD_FLAGS', 'OFPSCFC_BAD_LEN', 'OFPSCFC_EPERM']],
  [11, ['OFPRRFC_STALE', 'OFPRRFC_UNSUP', 'OFPRRFC_BAD_ROLE']],
  [12, ['OFPMMFC_UNKNOWN', 'OFPMMFC_METER_EXISTS', 'OFPMMFC_INVALID_METER', 'OFPMMFC_UNKNOWN_METER', 'OFPMMFC_BAD_COMMAND',
    'OFPMMFC_BAD_FLAGS', 'OFPMMFC_BAD_RATE', 'OFPMMFC_BAD_BURST', 'OFPMMFC_BAD_BAND', 'OFPMMFC_BAD_BAND_VALUE', 'OFPMMFC_OUT_OF_METERS',
    'OFPMMFC_OUT_OF_BANDS']],
  [13, ['OFPTFFC_BAD_TABLE', 'OFPTFFC_BAD_METADATA', '', '', '', 'OFPTFFC_EPERM']],
  [14, ['OFPBPC_BAD_TYPE', 'OFPBPC_BAD_LEN', 'OFPBPC_BAD_VALUE', 'OFPBPC_TOO_MANY', 'OFPBPC_DUP_TYPE', 'OFPBPC_BAD_EXPERIMENTER',
    'OFPBPC_BAD_EXP_TYPE', 'OFPBPC_BAD_EXP_VALUE', 'OFPBPC_EPERM']],
  [15, ['OFPACFC_INVALID', 'OFPACFC_UNSUPPORTED', 'OFPACFC_EPERM']],
  [16, ['OFPMOFC_UNKNOWN', 'OFPMOFC_MONITOR_EXISTS', 'OFPMOFC_INVALID_MONITOR', 'OFPMOFC_UNKNOWN_MONITOR', 'OFPMOFC_BAD_COMMAND',
    'OFPMOFC_BAD_FLAGS', 'OFPMOFC_BAD_TABLE_ID', 'OFPMOFC_BAD_OUT']],
  [17, ['OFPBFC_UNKNOWN', 'OFPBFC_EPERM', 'OFPBFC_BAD_ID', 'OFPBFC_BUNDLE_EXIST', 'OFPBFC_BUNDLE_CLOSED', 'OFPBFC_OUT_OF_BUNDLES',
    'OFPBFC_BAD_TYPE', 'OFPBFC_BAD_FLAGS', 'OFPBFC_MSG_BAD_LEN', 'OFPBFC_MSG_BAD_XID', 'OFPBFC_MSG_UNSUP', 'OFPBFC_MSG_CONFLICT',
    'OFPBFC_MSG_TOO_MANY', 'OFPBFC_MSG_FAILED', 'OFPBFC_TIMEOUT', 'OFPBFC_BUNDLE_IN_PROGRESS']],
];

/** Nicira extension errors in OpenFlow 1.2+ (type 0xffff, code, vendor 0x2320). */
const NX_ERRORS: Readonly<Record<number, string>> = {
  2: 'NXBRC_NXM_INVALID', 3: 'NXBRC_NXM_BAD_TYPE', 4: 'NXBRC_MUST_BE_ZERO', 5: 'NXBRC_BAD_REASON', 9: 'NXBRC_FM_BAD_EVENT',
  10: 'NXBRC_UNENCODABLE_ERROR', 11: 'NXBAC_MUST_BE_ZERO', 12: 'NXFMFC_HARDWARE', 13: 'NXFMFC_BAD_TABLE_ID', 15: 'NXBAC_BAD_CONJUNCTION',
  16: 'NXTTMFC_BAD_COMMAND', 17: 'NXTTMFC_BAD_OPT_LEN', 18: 'NXTTMFC_BAD_FIELD_IDX', 19: 'NXTTMFC_TABLE_FULL', 20: 'NXTTMFC_ALREADY_MAPPED',
  21: 'NXTTMFC_DUP_ENTRY', 22: 'OFPBFC_BAD_VERSION', 23: 'NXQOFC_QUEUE_ERROR', 34: 'NXR_NOT_SUPPORTED', 35: 'NXR_STALE',
  36: 'NXST_NOT_CONFIGURED', 37: 'NXFMFC_INVALID_TLV_FIELD', 38: 'NXTTMFC_INVALID_TLV_DEL', 39: 'NXBAC_BAD_HEADER_TYPE',
  40: 'NXBAC_UNKNOWN_ED_PROP', 41: 'NXBAC_BAD_ED_PROP', 42: 'NXBAC_CT_DATAPATH_SUPPORT', 43: 'NXBMC_CT_DATAPATH_SUPPORT', 44: 'NXTFFC_DUP_TABLE',
};

const ERROR_NAMES = new Map<number, string>();
for (const [type, names] of STANDARD_ERRORS) names.forEach((n, code) => { if (n) ERROR_NAMES.set(type * 0x10000 + code, n); });

export interface OpenFlowErrorBody {
  /** OVS's name for the error, e.g. OFPFMFC_TABLE_FULL; `OFPET(type,code)` when unknown. */
  name: string;
  type: number;
  code: number;
  /** The start of the request that failed, as the switch echoed it. */
  data: Buffer;
}

/** An OFPT_ERROR body decoded to OVS's error name. */
export function decodeError(body: Buffer): OpenFlowErrorBody {
  const type = body.length >= 2 ? body.readUInt16BE(0) : -1;
  const code = body.length >= 4 ? body.readUInt16BE(2) : -1;
  if (type === 0xffff && body.length >= 8) {
    const vendor = body.readUInt32BE(4);
    const name = vendor === NX_VENDOR ? NX_ERRORS[code] : vendor === ONF_VENDOR && code === 4250 ? 'OFPBAC_BAD_SET_MASK' : undefined;
    return { name: name ?? `OFPET_EXPERIMENTER(vendor=0x${vendor.toString(16)},code=${code})`, type, code, data: body.subarray(8) };
  }
  return { name: ERROR_NAMES.get(type * 0x10000 + code) ?? `OFPET(${type},${code})`, type, code, data: body.subarray(4) };
}
