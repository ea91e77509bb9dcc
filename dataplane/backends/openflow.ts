// One OpenFlow 1.4 connection to a bridge's management socket (`<rundir>/<bridge>.mgmt`, where
// ovs-ofctl connects too): version negotiation, atomic ordered bundles, barrier, multipart
// requests, echo keepalive, packet-ins (DHCP and ARP misses punted by `controller` actions) and
// packet-outs (the agent's replies). Messages are built by openflow-codec.ts; this module only
// frames, sends, and matches replies and errors to requests by xid.
import { EventEmitter } from 'node:events';
import { type Socket, connect } from 'node:net';
import { writeBundleAdd, writeBundleControl, writeEmpty, writeMultipartRequest } from './openflow-codec.js';
import { BUNDLE, MP_REPLY_MORE, OFPP, OFP_NO_BUFFER, OFP_VERSION, type OpenFlowErrorBody, T, Writer, decodeError } from './openflow-wire.js';

export interface PacketIn {
  /** The OpenFlow port the packet came in on. */
  inPort: number;
  /** OpenFlow metadata (the network, in our pipeline). */
  metadata: bigint;
  /** Cookie of the flow that sent it up: names the programmer (and so the reason). */
  cookie: bigint;
  tableId: number;
  reason: number;
  data: Buffer;
}

/** The connection failed or closed; the request may or may not have reached the switch. */
export class OpenFlowError extends Error {}

/** The switch answered a request with an OpenFlow error. */
export class OpenFlowRefusedError extends OpenFlowError {
  constructor(
    message: string,
    readonly error: OpenFlowErrorBody,
    /** For a bundle: the index of the message the switch refused (null: the bundle as a whole). */
    readonly index: number | null,
  ) {
    super(message);
  }
}

export interface OpenFlowOptions {
  /** Idle time before an echo request is sent (ms). */
  echoInterval?: number;
  /** An echo unanswered this long (while no long request is in flight) means the switch is dead (ms). */
  echoTimeout?: number;
  /** Bundles and read-backs: base time allowed, plus `perMessageTimeout` per bundled message (ms). */
  requestTimeout?: number;
  perMessageTimeout?: number;
}

interface Waiter {
  resolve(body: Buffer): void;
  reject(e: Error): void;
  /** Multipart: bodies so far. */
  parts?: Buffer[];
  long: boolean;
}

/** Errors the switch sent for a range of xids (the messages of one bundle). */
interface ErrorRange {
  lo: number;
  hi: number;
  errors: { xid: number; error: OpenFlowErrorBody }[];
}

const HELLO_ELEM_VERSIONBITMAP = 1;
const OFPACPT_PACKET_IN_MASTER = 1;
/** Packet-ins for table misses and every OpenFlow 1.4 action reason (not invalid TTL). */
const PACKET_IN_REASONS = 0b111011;
/** Bundles are written in slices of about this many bytes, so the switch works while we encode. */
const SLICE_BYTES = 1 << 20;

export class OpenFlowConnection extends EventEmitter<{ packetIn: [PacketIn]; warning: [Error]; close: [Error | null] }> {
  private socket: Socket | null = null;
  private xid = 1;
  private bundleId = 1;
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting = new Map<number, Waiter>();
  private readonly ranges = new Set<ErrorRange>();
  private lastRx = Date.now();
  private echoXid: number | null = null;
  private echoSent = 0;
  private longOps = 0;
  private timer: NodeJS.Timeout | null = null;
  private hello: ((version: number, bitmap: number | null) => void) | null = null;
  private closing = false;
  private readonly opts: Required<OpenFlowOptions>;

  constructor(readonly path: string, opts: OpenFlowOptions = {}) {
    super();
    this.opts = { echoInterval: 5000, echoTimeout: 15000, requestTimeout: 60000, perMessageTimeout: 0.2, ...opts };
  }

  get connected(): boolean {
    return this.socket !== null && !this.closing;
  }

  /** Connects, negotiates OpenFlow 1.4 and asks for packet-ins. */
  async connect(): Promise<void> {
    const s = await new Promise<Socket>((resolve, reject) => {
      const sock = connect(this.path);
      sock.once('connect', () => resolve(sock));
      sock.once('error', (e) => reject(new OpenFlowError(`cannot connect to ${this.path}: ${e.message}`)));
    });
    this.socket = s;
    s.on('error', (e) => this.emit('warning', e));
    s.on('data', (d: Buffer) => this.receive(d));
    s.on('close', () => this.closed());
    const negotiated = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new OpenFlowError(`no OpenFlow HELLO from ${this.path}`)), this.opts.echoTimeout);
      this.hello = (version, bitmap) => {
        clearTimeout(t);
        const ok = bitmap !== null ? (bitmap & (1 << OFP_VERSION)) !== 0 : version >= OFP_VERSION;
        if (ok) resolve();
        else reject(new OpenFlowError(`the switch at ${this.path} does not allow OpenFlow 1.4 (add OpenFlow14 to the bridge's protocols)`));
      };
    });
    // HELLO with a version bitmap naming only 1.4: OVS answers HELLO_FAILED rather than settle lower.
    const w = new Writer(64);
    const at = w.header(T.HELLO, this.xid++);
    w.u16(HELLO_ELEM_VERSIONBITMAP);
    w.u16(8);
    w.u32(1 << OFP_VERSION);
    w.end(at);
    // SET_ASYNC (1.4 properties) also makes OVS send async messages to this service connection.
    const asyncAt = w.header(T.SET_ASYNC, this.xid++);
    w.u16(OFPACPT_PACKET_IN_MASTER);
    w.u16(8);
    w.u32(PACKET_IN_REASONS);
    w.end(asyncAt);
    s.write(w.take());
    try {
      await negotiated;
      await this.barrier();
    } catch (e) {
      this.close();
      throw e;
    }
    this.lastRx = Date.now();
    this.timer = setInterval(() => this.keepalive(), Math.max(10, Math.min(this.opts.echoInterval, this.opts.echoTimeout) / 2));
    this.timer.unref();
  }

  private keepalive(): void {
    if (!this.connected) return;
    const now = Date.now();
    if (this.echoXid !== null) {
      if (this.longOps === 0 && now - this.echoSent > this.opts.echoTimeout) {
        this.fail(new OpenFlowError(`the switch at ${this.path} did not answer an echo request in ${this.opts.echoTimeout} ms`));
      }
      return;
    }
    if (now - this.lastRx >= this.opts.echoInterval) {
      this.echoXid = this.xid++;
      this.echoSent = now;
      this.write((w) => writeEmpty(w, T.ECHO_REQUEST, this.echoXid!));
    }
  }

  /** Round trip of an echo (ms), as a liveness check. */
  async echo(): Promise<number> {
    const start = Date.now();
    await this.request((w, xid) => writeEmpty(w, T.ECHO_REQUEST, xid), false);
    return Date.now() - start;
  }

  barrier(): Promise<void> {
    return this.request((w, xid) => writeEmpty(w, T.BARRIER_REQUEST, xid), false).then(() => undefined);
  }

  /** A multipart request; resolves with every reply body (after the multipart header). */
  multipart(mpType: number, filter?: { table: number; cookie: bigint }): Promise<Buffer[]> {
    return new Promise((resolve, reject) => {
      const xid = this.xid++;
      const parts: Buffer[] = [];
      const done = this.longOp(this.opts.requestTimeout, reject);
      const waiter: Waiter = { resolve: () => { done(); resolve(parts); }, reject: (e) => { done(); reject(e); }, parts, long: true };
      this.waiting.set(xid, waiter);
      try {
        this.write((out) => writeMultipartRequest(out, xid, mpType, filter));
      } catch (e) {
        this.waiting.delete(xid);
        waiter.reject(e as Error);
      }
    });
  }

  /**
   * Messages sent one after another outside a bundle (meter-mods, which OVS cannot bundle), then
   * a barrier; resolves with the switch's refusals (index of the message and its error), in order.
   */
  async sendAll(n: number, write: (i: number, w: Writer, xid: number) => void): Promise<{ index: number; error: OpenFlowErrorBody }[]> {
    if (n === 0) return [];
    const range: ErrorRange = { lo: this.xid, hi: this.xid + n, errors: [] };
    this.xid += n;
    this.ranges.add(range);
    try {
      const w = new Writer(256 * n);
      for (let i = 0; i < n; i++) write(i, w, range.lo + i);
      this.send(w.take());
      await this.barrier();
    } finally {
      this.ranges.delete(range);
    }
    return range.errors.map((e) => ({ index: e.xid - range.lo, error: e.error }));
  }

  /**
   * One atomic, ordered bundle of `n` messages (flow-mods and group-mods): open, add each, barrier
   * (OVS drops an add it cannot decode from the bundle and commits the rest, so we look for such
   * errors before committing), then commit, or discard if any add was refused. On a refusal
   * nothing of the bundle is applied, and the error names the message at fault.
   */
  async bundle(n: number, write: (i: number, w: Writer, xid: number) => void): Promise<void> {
    if (!this.connected) throw new OpenFlowError('OpenFlow not connected');
    const id = this.bundleId++;
    const openXid = this.xid++;
    const range: ErrorRange = { lo: this.xid, hi: this.xid + n, errors: [] };
    this.xid += n;
    this.ranges.add(range);
    let openError: Error | null = null;
    const opened = this.expect(openXid).catch((e: Error) => { openError = e; });
    const done = this.longOp(this.opts.requestTimeout + n * this.opts.perMessageTimeout, () => undefined);
    let lastEnd = 0;
    const discard = (): Promise<unknown> =>
      this.request((out, xid) => writeBundleControl(out, xid, id, BUNDLE.DISCARD_REQUEST), true).catch(() => undefined);
    try {
      let w = new Writer(Math.min(SLICE_BYTES * 2, 256 + n * 200));
      writeBundleControl(w, openXid, id, BUNDLE.OPEN_REQUEST);
      lastEnd = w.len;
      for (let i = 0; i < n; i++) {
        try {
          writeBundleAdd(w, range.lo + i, id, (out, xid) => write(i, out, xid));
        } catch (e) {
          // A message we cannot encode: what was sent of the bundle is thrown away.
          if (this.connected) {
            this.send(w.take().subarray(0, lastEnd));
            await discard();
          }
          throw e;
        }
        lastEnd = w.len;
        if (w.len >= SLICE_BYTES) {
          this.send(w.take());
          w = new Writer(SLICE_BYTES * 2);
          lastEnd = 0;
          // Let the socket drain and the switch start while the next slice is encoded.
          await new Promise<void>((r) => setImmediate(r));
          if (!this.connected) throw new OpenFlowError('OpenFlow connection closed during the bundle');
        }
      }
      this.send(w.take());
      await this.barrier();
      await opened;
      const refusedAdd = range.errors[0];
      if (openError || refusedAdd) {
        await discard();
        if (refusedAdd) throw this.refused(refusedAdd, range);
        throw openError!;
      }
      try {
        await this.request((out, xid) => writeBundleControl(out, xid, id, BUNDLE.COMMIT_REQUEST), true);
      } catch (e) {
        // OVS reports the failing message (with its xid) before OFPBFC_MSG_FAILED for the commit.
        const failed = range.errors[0];
        if (failed) throw this.refused(failed, range);
        throw e;
      }
    } finally {
      done();
      this.ranges.delete(range);
    }
  }

  private refused(e: { xid: number; error: OpenFlowErrorBody }, range: ErrorRange): OpenFlowRefusedError {
    const index = e.xid - range.lo;
    return new OpenFlowRefusedError(`switch refused bundle message ${index}: ${e.error.name}`, e.error, index);
  }

  /** Sends a request and waits for the reply with its xid (or an error). */
  private request(write: (w: Writer, xid: number) => void, long: boolean): Promise<Buffer> {
    const xid = this.xid++;
    const p = this.expect(xid, long);
    try {
      this.write((w) => write(w, xid));
    } catch (e) {
      this.waiting.get(xid)?.reject(e as Error);
      this.waiting.delete(xid);
    }
    return p;
  }

  private expect(xid: number, long = false): Promise<Buffer> {
    return new Promise((resolve, reject) => this.waiting.set(xid, { resolve, reject, long }));
  }

  /** Counts a long request (which pauses echo-based death detection) and bounds it by a timeout. */
  private longOp(timeout: number, onTimeout: (e: Error) => void): () => void {
    this.longOps++;
    const t = setTimeout(() => {
      const e = new OpenFlowError(`the switch at ${this.path} did not answer in ${Math.round(timeout)} ms`);
      onTimeout(e);
      this.fail(e);
    }, timeout);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.longOps--;
      clearTimeout(t);
    };
  }

  private write(fill: (w: Writer) => void): void {
    const w = new Writer(128);
    fill(w);
    this.send(w.take());
  }

  private send(b: Buffer): void {
    if (!this.socket || this.closing) throw new OpenFlowError('OpenFlow not connected');
    this.socket.write(b);
  }

  private receive(d: Buffer): void {
    this.lastRx = Date.now();
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    let off = 0;
    while (this.buf.length - off >= 8) {
      const len = this.buf.readUInt16BE(off + 2);
      if (len < 8) {
        this.fail(new OpenFlowError(`bad OpenFlow message length ${len} from ${this.path}`));
        return;
      }
      if (this.buf.length - off < len) break;
      const msg = this.buf.subarray(off, off + len);
      off += len;
      this.handle(msg[0]!, msg[1]!, msg.readUInt32BE(4), msg.subarray(8));
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
  }

  private handle(version: number, type: number, xid: number, body: Buffer): void {
    if (type === T.HELLO) {
      let bitmap: number | null = null;
      for (let at = 0; at + 4 <= body.length;) {
        const et = body.readUInt16BE(at);
        const el = body.readUInt16BE(at + 2);
        if (el < 4) break;
        if (et === HELLO_ELEM_VERSIONBITMAP && el >= 8) bitmap = body.readUInt32BE(at + 4);
        at += Math.ceil(el / 8) * 8;
      }
      this.hello?.(version, bitmap);
      this.hello = null;
      return;
    }
    switch (type) {
      case T.ECHO_REQUEST:
        this.write((w) => writeEmpty(w, T.ECHO_REPLY, xid, Buffer.from(body)));
        return;
      case T.ECHO_REPLY:
        if (xid === this.echoXid) {
          this.echoXid = null;
          return;
        }
        break;
      case T.ERROR: {
        const error = decodeError(body);
        if (error.type === 0 && this.hello) {
          this.hello(0, 0);
          return;
        }
        for (const r of this.ranges) {
          if (xid >= r.lo && xid < r.hi) {
            r.errors.push({ xid, error });
            return;
          }
        }
        const w = this.waiting.get(xid);
        if (w) {
          this.waiting.delete(xid);
          w.reject(new OpenFlowRefusedError(`switch refused: ${error.name}`, error, null));
        } else {
          this.emit('warning', new OpenFlowError(`OpenFlow error ${error.name} (xid ${xid})`));
        }
        return;
      }
      case T.PACKET_IN: {
        const p = parsePacketIn(body);
        if (p) this.emit('packetIn', p);
        return;
      }
      case T.MULTIPART_REPLY: {
        const w = this.waiting.get(xid);
        if (!w?.parts || body.length < 8) return;
        w.parts.push(body.subarray(8));
        if ((body.readUInt16BE(2) & MP_REPLY_MORE) === 0) {
          this.waiting.delete(xid);
          w.resolve(body);
        }
        return;
      }
      default:
        break;
    }
    const w = this.waiting.get(xid);
    if (w && !w.parts) {
      this.waiting.delete(xid);
      w.resolve(body);
    }
  }

  /** Send a frame out of a port (or OFPP.TABLE: through the pipeline), as if it came in on `inPort` (default: the controller). */
  packetOut(outPort: number, data: Buffer, inPort: number = OFPP.CONTROLLER): void {
    this.write((w) => {
      const at = w.header(T.PACKET_OUT, this.xid++);
      w.u32(OFP_NO_BUFFER);
      w.u32(inPort);
      w.u16(16);
      w.zeros(6);
      w.u16(0); // OFPAT_OUTPUT
      w.u16(16);
      w.u32(outPort);
      w.u16(0xffff);
      w.zeros(6);
      w.bytes(data);
      w.end(at);
    });
  }

  /** Tear the connection down as failed: pending requests reject, `close` fires with the reason. */
  private fail(e: Error): void {
    if (!this.socket || this.closing) return;
    this.failure = e;
    this.socket.destroy();
  }

  private failure: Error | null = null;

  private closed(): void {
    const wasClosing = this.closing;
    this.closing = true;
    this.socket = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const err = this.failure ?? new OpenFlowError(`OpenFlow connection to ${this.path} closed`);
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    this.hello?.(0, 0);
    this.hello = null;
    this.emit('close', wasClosing ? null : err);
  }

  close(): void {
    if (!this.socket) return;
    this.closing = true;
    this.socket.destroy();
  }
}

/** OFPT_PACKET_IN (OpenFlow 1.3 and 1.4): header fields, an OXM match, 2 bytes pad, the frame. */
export function parsePacketIn(body: Buffer): PacketIn | null {
  if (body.length < 24) return null;
  const reason = body.readUInt8(6);
  const tableId = body.readUInt8(7);
  const cookie = body.readBigUInt64BE(8);
  const matchLen = body.readUInt16BE(18);
  if (body.readUInt16BE(16) !== 1 || matchLen < 4 || 16 + matchLen > body.length) return null;
  let inPort = 0;
  let metadata = 0n;
  for (let off = 20; off + 4 <= 16 + matchLen;) {
    const cls = body.readUInt16BE(off);
    const field = body.readUInt8(off + 2) >> 1;
    const len = body.readUInt8(off + 3);
    if (off + 4 + len > 16 + matchLen) break;
    if (cls === 0x8000 && field === 0 && len === 4) inPort = body.readUInt32BE(off + 4);
    if (cls === 0x8000 && field === 2 && len === 8) metadata = body.readBigUInt64BE(off + 4);
    off += 4 + len;
  }
  const dataStart = 16 + Math.ceil(matchLen / 8) * 8 + 2;
  if (dataStart > body.length) return null;
  return { inPort, metadata, cookie, tableId, reason, data: Buffer.from(body.subarray(dataStart)) };
}
