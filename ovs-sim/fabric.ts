// Several simulated hosts on one simulated underlay. Each host has bridges; a packet sent out
// of a flow-based tunnel port (remote_ip=flow, key=flow) reaches the tunnel port of the same
// type on the host whose underlay IP is tun_dst, with tun_id and tun_src/tun_dst set, as OVS's
// native tunnelling delivers it (encapsulation headers are not materialized). Deliveries are
// queued and run until idle, so a test drives the whole network deterministically.
import { Bridge, type PacketInEvent, type PortType } from './bridge.js';
import { extract, writeBack } from './packet.js';
import type { Packet } from './match.js';
import type { SimVm } from './vm.js';

export interface PacketInFrame extends PacketInEvent {
  bridge: string;
  frame: Uint8Array;
}

interface Delivery {
  host: SimHost;
  bridge: Bridge;
  inPort: number;
  frame: Uint8Array;
  meta?: Packet;
}

export class Fabric {
  readonly hosts = new Map<string, SimHost>();
  private readonly queue: Delivery[] = [];
  /** Tunnel packets to an underlay IP no host has. */
  lost = 0;
  delivered = 0;

  addHost(name: string, underlayIp: string): SimHost {
    const h = new SimHost(name, underlayIp, this);
    this.hosts.set(underlayIp, h);
    return h;
  }

  enqueue(d: Delivery): void {
    this.queue.push(d);
  }

  /** Deliver until nothing moves (bounded, so a forwarding loop cannot hang a test). */
  run(limit = 100_000): number {
    let n = 0;
    while (this.queue.length > 0) {
      if (++n > limit) throw new Error(`fabric did not settle after ${limit} deliveries (loop?)`);
      const d = this.queue.shift()!;
      d.host.process(d);
    }
    return n;
  }

  tunnel(from: SimHost, type: PortType, p: Packet, frame: Uint8Array): void {
    const dst = p.get('tun_dst') ?? 0n;
    const ip = [24n, 16n, 8n, 0n].map((s) => Number((dst >> s) & 0xffn)).join('.');
    const host = this.hosts.get(ip);
    const target = host && [...host.bridges.values()].flatMap((b) => [...b.ports.values()].map((port) => ({ b, port }))).find((x) => x.port.type === type);
    if (!host || !target) {
      this.lost += 1;
      return;
    }
    const srcIp = from.underlayIp.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n);
    this.delivered += 1;
    this.enqueue({ host, bridge: target.b, inPort: target.port.ofport, frame, meta: new Map([['tun_id', p.get('tun_id') ?? 0n], ['tun_src', srcIp], ['tun_dst', dst]]) });
  }
}

export class SimHost {
  readonly bridges = new Map<string, Bridge>();
  /** Endpoints by bridge/ofport. */
  private readonly vms = new Map<string, SimVm>();
  private readonly listeners: ((e: PacketInFrame) => void)[] = [];
  private readonly portListeners: ((keys: string[]) => void)[] = [];
  readonly packetIns: PacketInFrame[] = [];

  constructor(readonly name: string, readonly underlayIp: string, readonly fabric: Fabric) {}

  addBridge(name: string): Bridge {
    const b = new Bridge(name);
    this.bridges.set(name, b);
    return b;
  }

  bridge(name: string): Bridge {
    const b = this.bridges.get(name);
    if (!b) throw new Error(`no bridge ${name} on ${this.name}`);
    return b;
  }

  onPacketIn(l: (e: PacketInFrame) => void): void {
    this.listeners.push(l);
  }

  /** Interfaces added or removed (keys: iface-id and name), as an OVSDB monitor would report. */
  onPortsChanged(l: (keys: string[]) => void): void {
    this.portListeners.push(l);
  }

  /** Plug a VM into a new port of a bridge (a tap with external_ids:iface-id, as Nova does). */
  plug(bridgeName: string, vm: SimVm, portName: string, externalIds: Record<string, string> = {}): number {
    const b = this.bridge(bridgeName);
    const port = b.addPort(portName, 'system', { externalIds });
    this.vms.set(`${bridgeName}/${port.ofport}`, vm);
    vm.attach((frame) => this.fabric.enqueue({ host: this, bridge: b, inPort: port.ofport, frame }));
    const keys = [portName, ...Object.values(externalIds)];
    for (const l of this.portListeners) l(keys);
    return port.ofport;
  }

  unplug(bridgeName: string, portName: string): void {
    const port = this.bridge(bridgeName).removePort(portName);
    if (!port) return;
    this.vms.delete(`${bridgeName}/${port.ofport}`);
    const keys = [portName, ...port.externalIds.values()];
    for (const l of this.portListeners) l(keys);
  }

  /** A packet-out from a controller: the frame leaves by that port. */
  packetOut(bridgeName: string, port: number, frame: Uint8Array): void {
    this.emit(this.bridge(bridgeName), port, extract(frame, port), frame);
  }

  process(d: Delivery): void {
    const p = extract(d.frame, d.inPort);
    if (d.meta) for (const [k, v] of d.meta) p.set(k, v);
    const result = d.bridge.process(p);
    for (const o of result.outputs) this.emit(d.bridge, o.port, o.packet, writeBack(d.frame, o.packet));
    for (const pi of result.packetIns) {
      const e: PacketInFrame = { ...pi, bridge: d.bridge.name, frame: writeBack(d.frame, pi.packet) };
      this.packetIns.push(e);
      for (const l of this.listeners) l(e);
    }
  }

  private emit(bridge: Bridge, port: number, p: Packet, frame: Uint8Array): void {
    const bp = bridge.ports.get(port);
    if (!bp) return;
    if (bp.type === 'vxlan' || bp.type === 'geneve') {
      this.fabric.tunnel(this, bp.type, p, frame);
      return;
    }
    const vm = this.vms.get(`${bridge.name}/${port}`);
    if (vm) vm.receive(frame);
  }
}
