// A simulated VM on a bridge port: answers ARP and ICMP echo, keeps an ARP cache, pings, sends
// UDP, and runs a DHCP client (DISCOVER → OFFER → REQUEST → ACK, renewal by unicast to the
// server). It only sends frames through `wire`; the fabric delivers what comes back.
import {
  BROADCAST_MAC, arpFrame, dhcpClientPayload, icmpEcho, ipText, ipv4Frame, parseDhcpServerPayload, parseFrame, udp,
} from '../../packets/frames.js';

export interface DhcpConfig {
  ip: string;
  mask: string;
  router: string | null;
  dns: string[];
  mtu: number | null;
  hostName: string | null;
  domain: string | null;
  lease: number | null;
  renewal: number | null;
  rebinding: number | null;
  serverId: string;
}

type PingState = 'waiting-arp' | 'sent' | 'replied';

const ipv4s = (b: Uint8Array): string[] => Array.from({ length: b.length / 4 }, (_, i) => ipText(b, i * 4));
const u32 = (b?: Uint8Array): number | null => (b && b.length === 4 ? ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0 : null);

export class SimVm {
  ip: string | null;
  readonly arp = new Map<string, string>();
  readonly received: Uint8Array[] = [];
  readonly pings = new Map<number, { dst: string; state: PingState; ttl?: number }>();
  readonly udpReceived: { from: string; port: number; payload: Uint8Array }[] = [];
  dhcp: { state: 'init' | 'selecting' | 'requesting' | 'bound' | 'renewing'; xid: number; config?: DhcpConfig; naks: number } = { state: 'init', xid: 0, naks: 0 };
  private seq = 0;
  private wire: ((frame: Uint8Array) => void) | null = null;

  constructor(readonly name: string, readonly mac: string, ip: string | null = null, public gateway: string | null = null, public prefix = 24) {
    this.ip = ip;
  }

  attach(wire: (frame: Uint8Array) => void): void {
    this.wire = wire;
  }

  send(frame: Uint8Array): void {
    if (!this.wire) throw new Error(`${this.name} is not attached`);
    this.wire(frame);
  }

  /** Start a ping; the fabric must run for the answer to arrive. */
  ping(dst: string): number {
    const seq = ++this.seq;
    const mac = this.arp.get(this.nextHop(dst));
    if (mac) {
      this.pings.set(seq, { dst, state: 'sent' });
      this.sendEcho(dst, mac, seq);
    } else {
      this.pings.set(seq, { dst, state: 'waiting-arp' });
      this.arpFor(this.nextHop(dst));
    }
    return seq;
  }

  private nextHop(dst: string): string {
    if (!this.ip || !this.gateway) return dst;
    const n = (ip: string): number => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    const m = this.prefix === 0 ? 0 : (0xffffffff << (32 - this.prefix)) >>> 0;
    return ((n(dst) & m) >>> 0) === ((n(this.ip) & m) >>> 0) ? dst : this.gateway;
  }

  arpFor(ip: string): void {
    this.send(arpFrame(1, this.mac, this.ip ?? '0.0.0.0', '00:00:00:00:00:00', ip));
  }

  private sendEcho(dst: string, mac: string, seq: number): void {
    this.send(ipv4Frame(mac, this.mac, this.ip ?? '0.0.0.0', dst, 1, icmpEcho(8, 0x4242, seq)));
  }

  sendUdp(dst: string, dstMac: string, srcPort: number, dstPort: number, payload: Uint8Array): void {
    this.send(ipv4Frame(dstMac, this.mac, this.ip ?? '0.0.0.0', dst, 17, udp(srcPort, dstPort, payload)));
  }

  // -- DHCP client --

  startDhcp(broadcast = false): void {
    this.dhcp = { state: 'selecting', xid: (Math.random() * 0xffffffff) >>> 0, naks: 0 };
    this.sendDhcp({ type: 1, broadcast });
  }

  /** RENEWING: unicast REQUEST with ciaddr to the server, no server id, no requested IP. */
  renew(): void {
    const c = this.dhcp.config;
    if (!c) throw new Error(`${this.name} has no lease to renew`);
    this.dhcp.state = 'renewing';
    this.dhcp.xid = (this.dhcp.xid + 1) >>> 0;
    const serverMac = this.arp.get(c.serverId);
    if (!serverMac) throw new Error(`${this.name}: server ${c.serverId} not in the ARP cache`);
    this.send(ipv4Frame(serverMac, this.mac, c.ip, c.serverId, 17, udp(68, 67, dhcpClientPayload({ type: 3, xid: this.dhcp.xid, mac: this.mac, ciaddr: c.ip }))));
  }

  private sendDhcp(s: { type: number; requestedIp?: string; serverId?: string; broadcast?: boolean }): void {
    const payload = dhcpClientPayload({ ...s, xid: this.dhcp.xid, mac: this.mac });
    this.send(ipv4Frame(BROADCAST_MAC, this.mac, '0.0.0.0', '255.255.255.255', 17, udp(68, 67, payload)));
  }

  private onDhcp(payload: Uint8Array, serverMac: string): void {
    const m = parseDhcpServerPayload(payload);
    if (!m || m.xid !== this.dhcp.xid) return;
    const serverId = ipv4s(m.options.get(54) ?? new Uint8Array())[0] ?? '';
    if (m.type === 2 && this.dhcp.state === 'selecting') {
      this.dhcp.state = 'requesting';
      this.sendDhcp({ type: 3, requestedIp: m.yiaddr, serverId });
    } else if (m.type === 5 && (this.dhcp.state === 'requesting' || this.dhcp.state === 'renewing')) {
      const mask = ipv4s(m.options.get(1) ?? new Uint8Array())[0] ?? '255.255.255.255';
      const mtu = m.options.get(26);
      const text = (code: number): string | null => (m.options.get(code) ? Buffer.from(m.options.get(code)!).toString() : null);
      const config: DhcpConfig = {
        ip: m.yiaddr, mask, router: ipv4s(m.options.get(3) ?? new Uint8Array())[0] ?? null, dns: ipv4s(m.options.get(6) ?? new Uint8Array()),
        mtu: mtu && mtu.length === 2 ? (mtu[0]! << 8) | mtu[1]! : null, hostName: text(12), domain: text(15),
        lease: u32(m.options.get(51)), renewal: u32(m.options.get(58)), rebinding: u32(m.options.get(59)), serverId,
      };
      this.dhcp = { state: 'bound', xid: this.dhcp.xid, config, naks: this.dhcp.naks };
      this.ip = config.ip;
      this.gateway = config.router;
      this.prefix = mask.split('.').reduce((n, o) => n + Number(o).toString(2).replace(/0/g, '').length, 0);
      this.arp.set(serverId, serverMac);
    } else if (m.type === 6) {
      this.dhcp = { state: 'init', xid: this.dhcp.xid, naks: this.dhcp.naks + 1 };
    }
  }

  /** A frame arriving from the port. */
  receive(frame: Uint8Array): void {
    this.received.push(frame);
    const p = parseFrame(frame);
    if (!p) return;
    if (p.dst !== this.mac && p.dst !== BROADCAST_MAC) return;
    if (p.kind === 'arp') {
      if (p.op === 1 && this.ip && p.tpa === this.ip) this.send(arpFrame(2, this.mac, this.ip, p.sha, p.spa));
      if (p.op === 2) {
        this.arp.set(p.spa, p.sha);
        for (const [seq, ping] of this.pings) {
          if (ping.state === 'waiting-arp' && this.nextHop(ping.dst) === p.spa) {
            ping.state = 'sent';
            this.sendEcho(ping.dst, p.sha, seq);
          }
        }
      }
    } else if (p.kind === 'icmp') {
      if (p.type === 8 && p.ipDst === this.ip) this.send(ipv4Frame(p.src, this.mac, this.ip, p.ipSrc, 1, icmpEcho(0, p.id, p.seq)));
      if (p.type === 0 && p.ipDst === this.ip) {
        const ping = this.pings.get(p.seq);
        if (ping) {
          ping.state = 'replied';
          ping.ttl = p.ttl;
        }
      }
    } else if (p.kind === 'udp') {
      if (p.srcPort === 67 && p.dstPort === 68) this.onDhcp(p.payload, p.src);
      else if (this.ip && p.ipDst === this.ip) this.udpReceived.push({ from: p.ipSrc, port: p.dstPort, payload: p.payload });
    }
  }
}
