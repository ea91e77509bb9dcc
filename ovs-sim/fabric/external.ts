// A simulated external network: one L2 segment (a MAC-learning switch) joining the hosts'
// uplinks on their external bridges and an upstream router that stands for the internet. The
// switch floods what it has not learned, as a real one does; the router answers ARP for its
// address, takes every IPv4 packet sent to its MAC (any destination: it is the way to the
// internet), records it, answers ICMP echo and echoes UDP back, and can open connections to
// addresses on the segment (an elastic IP) — resolving them by ARP as a router would.
import { BROADCAST_MAC, arpFrame, icmpEcho, ipv4Frame, macText, parseFrame, udp } from '../../packets/frames.js';

/** What plugs into a bridge port (SimHost.plug): frames from the port, frames to it. */
export interface Endpoint {
  attach(wire: (frame: Uint8Array) => void): void;
  receive(frame: Uint8Array): void;
}

interface Member {
  name: string;
  deliver(frame: Uint8Array): void;
}


export class ExternalSegment {
  private readonly members: Member[] = [];
  /** MAC → member index, learned from source addresses. */
  readonly learned = new Map<string, number>();
  /** Frames flooded because their destination was not learned (or broadcast). */
  flooded = 0;

  /** A port of the switch for a host's uplink: plug it into the external bridge. */
  uplink(name: string): Endpoint {
    let toBridge: ((frame: Uint8Array) => void) | null = null;
    const index = this.members.length;
    this.members.push({ name, deliver: (f) => toBridge?.(f) });
    return {
      attach: (wire) => { toBridge = wire; },
      receive: (frame) => this.forward(index, frame),
    };
  }

  /** Join a device that sends through `send` and receives through the returned function. */
  join(name: string, device: { receive(frame: Uint8Array): void }): (frame: Uint8Array) => void {
    const index = this.members.length;
    this.members.push({ name, deliver: (f) => device.receive(f) });
    return (frame) => this.forward(index, frame);
  }

  private forward(from: number, frame: Uint8Array): void {
    if (frame.length < 14) return;
    const dst = macText(frame, 0);
    const src = macText(frame, 6);
    if ((frame[6]! & 1) === 0) this.learned.set(src, from);
    const to = dst === BROADCAST_MAC || (frame[0]! & 1) === 1 ? undefined : this.learned.get(dst);
    if (to !== undefined) {
      if (to !== from) this.members[to]!.deliver(frame);
      return;
    }
    this.flooded += 1;
    for (const [i, m] of this.members.entries()) if (i !== from) m.deliver(frame);
  }
}

export interface InternetPacket {
  src: string;
  dst: string;
  proto: 'icmp' | 'udp';
  srcPort: number;
  dstPort: number;
  /** ICMP echo id. */
  id: number;
  srcMac: string;
  ttl: number;
  payload: Uint8Array;
}

/** The upstream router and everything behind it. */
export class SimInternet {
  readonly arp = new Map<string, string>();
  readonly received: InternetPacket[] = [];
  /** ICMP echo replies and UDP that came back to what `send*` opened. */
  readonly replies: InternetPacket[] = [];
  /** Echo UDP back to its sender. */
  echoUdp = true;
  private readonly wire: (frame: Uint8Array) => void;

  constructor(segment: ExternalSegment, readonly ip: string, readonly mac: string, readonly prefix = 24) {
    this.wire = segment.join('internet', this);
  }

  /** A UDP datagram from `from` (an internet address) to `dst` on the external network. */
  sendUdp(from: string, dst: string, srcPort: number, dstPort: number, payload: Uint8Array): void {
    this.toSegment(dst, (mac) => ipv4Frame(mac, this.mac, from, dst, 17, udp(srcPort, dstPort, payload)));
  }

  ping(from: string, dst: string, id: number, seq: number): void {
    this.toSegment(dst, (mac) => ipv4Frame(mac, this.mac, from, dst, 1, icmpEcho(8, id, seq)));
  }

  /** Deliver to an address on the segment, resolving it by ARP first when needed. */
  private toSegment(dst: string, frame: (mac: string) => Uint8Array): void {
    const mac = this.arp.get(dst);
    if (mac) {
      this.wire(frame(mac));
      return;
    }
    this.pendingBuilders.push({ dst, frame });
    this.wire(arpFrame(1, this.mac, this.ip, '00:00:00:00:00:00', dst));
  }

  private readonly pendingBuilders: { dst: string; frame: (mac: string) => Uint8Array }[] = [];

  receive(frame: Uint8Array): void {
    const p = parseFrame(frame);
    if (!p) return;
    if (p.kind === 'arp') {
      if (p.op === 1 && p.tpa === this.ip) this.wire(arpFrame(2, this.mac, this.ip, p.sha, p.spa));
      if (p.op === 2 && p.tha === this.mac) {
        this.arp.set(p.spa, p.sha);
        const ready = this.pendingBuilders.filter((b) => b.dst === p.spa);
        for (const b of ready) this.pendingBuilders.splice(this.pendingBuilders.indexOf(b), 1);
        for (const b of ready) this.wire(b.frame(p.sha));
      }
      return;
    }
    if (p.dst !== this.mac || p.kind === 'other') return;
    const pkt: InternetPacket = {
      src: p.ipSrc, dst: p.ipDst, srcMac: p.src, ttl: frame[22]!,
      proto: p.kind,
      srcPort: p.kind === 'udp' ? p.srcPort : 0, dstPort: p.kind === 'udp' ? p.dstPort : 0,
      id: p.kind === 'icmp' ? p.id : 0, payload: p.kind === 'udp' ? p.payload : new Uint8Array(),
    };
    if (p.kind === 'icmp' && p.type === 0) {
      this.replies.push(pkt);
      return;
    }
    if (p.kind === 'udp' && this.sentFrom(pkt)) {
      this.replies.push(pkt);
      return;
    }
    this.received.push(pkt);
    if (p.kind === 'icmp' && p.type === 8) this.toSegment(p.ipSrc, (mac) => ipv4Frame(mac, this.mac, p.ipDst, p.ipSrc, 1, icmpEcho(0, p.id, p.seq)));
    else if (p.kind === 'udp' && this.echoUdp) this.toSegment(p.ipSrc, (mac) => ipv4Frame(mac, this.mac, p.ipDst, p.ipSrc, 17, udp(p.dstPort, p.srcPort, p.payload)));
  }

  /** Ports this side opened with sendUdp (a reply comes back to one of them). */
  private readonly opened = new Set<string>();
  private sentFrom(p: InternetPacket): boolean {
    return this.opened.has(`${p.dst}:${p.dstPort}`);
  }

  /** Open a UDP "connection" from an internet address: replies to it are recorded, not echoed. */
  openUdp(from: string, dst: string, srcPort: number, dstPort: number, payload: Uint8Array): void {
    this.opened.add(`${from}:${srcPort}`);
    this.sendUdp(from, dst, srcPort, dstPort, payload);
  }
}
