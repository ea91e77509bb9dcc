// A minimal OpenFlow 1.3 connection for what flows cannot do: packet-ins (DHCP and ARP misses
// punted by `controller` actions) and packet-outs (the agent's replies). It connects to the
// bridge's management socket like ovs-ofctl does; flow programming stays with the bundle path.
import { EventEmitter } from 'node:events';
import { type Socket, connect } from 'node:net';

const OFP_VERSION = 0x04;
const T = {
  HELLO: 0, ERROR: 1, ECHO_REQUEST: 2, ECHO_REPLY: 3, FEATURES_REQUEST: 5, PACKET_IN: 10, PACKET_OUT: 13,
  BARRIER_REQUEST: 20, BARRIER_REPLY: 21, SET_ASYNC: 28,
} as const;
const OFPP_CONTROLLER = 0xfffffffd;
const OFP_NO_BUFFER = 0xffffffff;

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

export class OpenFlowError extends Error {}

export class OpenFlowConnection extends EventEmitter<{ packetIn: [PacketIn]; error: [Error]; close: [] }> {
  private socket: Socket | null = null;
  private xid = 1;
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting = new Map<number, { resolve(): void; reject(e: Error): void }>();

  constructor(readonly path: string) {
    super();
  }

  async connect(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const s = connect(this.path);
      s.once('connect', () => { this.socket = s; resolve(); });
      s.once('error', (e) => { if (!this.socket) reject(new OpenFlowError(`cannot connect to ${this.path}: ${e.message}`)); else this.emit('error', e); });
      s.on('data', (d: Buffer) => this.receive(d));
      s.on('close', () => {
        for (const w of this.waiting.values()) w.reject(new OpenFlowError('OpenFlow connection closed'));
        this.waiting.clear();
        this.socket = null;
        this.emit('close');
      });
    });
    this.send(T.HELLO, Buffer.alloc(0));
    // Ask for packet-ins caused by actions and misses, whatever role this connection has:
    // SET_ASYNC masks: packet_in [master/equal, slave], port_status [..], flow_removed [..].
    const masks = Buffer.alloc(24);
    masks.writeUInt32BE(0b111, 0);
    masks.writeUInt32BE(0b111, 4);
    this.send(T.SET_ASYNC, masks);
    await this.barrier();
  }

  private send(type: number, body: Buffer, xid = this.xid++): number {
    if (!this.socket) throw new OpenFlowError('OpenFlow not connected');
    const h = Buffer.alloc(8);
    h.writeUInt8(OFP_VERSION, 0);
    h.writeUInt8(type, 1);
    h.writeUInt16BE(8 + body.length, 2);
    h.writeUInt32BE(xid, 4);
    this.socket.write(Buffer.concat([h, body]));
    return xid;
  }

  barrier(): Promise<void> {
    return new Promise((resolve, reject) => {
      const xid = this.send(T.BARRIER_REQUEST, Buffer.alloc(0));
      this.waiting.set(xid, { resolve, reject });
    });
  }

  private receive(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    while (this.buf.length >= 8) {
      const len = this.buf.readUInt16BE(2);
      if (len < 8 || this.buf.length < len) break;
      const msg = this.buf.subarray(0, len);
      this.buf = this.buf.subarray(len);
      this.handle(msg.readUInt8(1), msg.readUInt32BE(4), msg.subarray(8));
    }
  }

  private handle(type: number, xid: number, body: Buffer): void {
    switch (type) {
      case T.ECHO_REQUEST:
        this.send(T.ECHO_REPLY, Buffer.from(body), xid);
        break;
      case T.BARRIER_REPLY:
        this.waiting.get(xid)?.resolve();
        this.waiting.delete(xid);
        break;
      case T.ERROR: {
        const w = this.waiting.get(xid);
        const err = new OpenFlowError(`OpenFlow error type ${body.readUInt16BE(0)} code ${body.readUInt16BE(2)}`);
        if (w) { w.reject(err); this.waiting.delete(xid); } else this.emit('error', err);
        break;
      }
      case T.PACKET_IN: {
        const p = parsePacketIn(body);
        if (p) this.emit('packetIn', p);
        break;
      }
      default:
        break;
    }
  }

  /** Send a frame out of a port, as if it came from the controller. */
  packetOut(outPort: number, data: Buffer): void {
    const actions = Buffer.alloc(16);
    actions.writeUInt16BE(0, 0); // OFPAT_OUTPUT
    actions.writeUInt16BE(16, 2);
    actions.writeUInt32BE(outPort, 4);
    actions.writeUInt16BE(0xffff, 8); // max_len
    const head = Buffer.alloc(16);
    head.writeUInt32BE(OFP_NO_BUFFER, 0);
    head.writeUInt32BE(OFPP_CONTROLLER, 4);
    head.writeUInt16BE(actions.length, 8);
    this.send(T.PACKET_OUT, Buffer.concat([head, actions, data]));
  }

  close(): void {
    this.socket?.destroy();
  }
}

/** OFPT_PACKET_IN (OpenFlow 1.3): header fields, an OXM match, 2 bytes pad, the frame. */
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
