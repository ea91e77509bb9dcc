// Several simulated hosts on one simulated underlay. Each host is one datapath its bridges share
// (as ovs-vswitchd's one datapath per type); a packet is translated and executed as OVS would
// (ct, recirculation, packet-ins, outputs). An output to a tunnel vport is encapsulated for real
// (VXLAN or Geneve over IPv4/UDP, from this host's underlay IP) and carried to the host whose
// underlay IP is tun_dst, which decapsulates it and receives it on its tunnel port whose options
// (remote_ip, key) accept it, as the kernel's tunnel ports do. Deliveries are queued and run until
// idle, so a test drives the whole network deterministically.
import type { Ofpact } from '../openflow/actions.js';
import { Bridge, type PortType } from '../switch/bridge.js';
import { type Clock, Datapath, wallClock } from '../switch/datapath.js';
import { executeDatapath } from '../translate/dpexec.js';
import { type Flow, W, getWords } from '../base/flow.js';
import type { OdpAction } from '../translate/odp.js';
import { type TunnelType, decapsulate, encapsulate, extract, writeBack } from '../packet/packet.js';
import { OFPP, ipText, parseIp } from '../base/text.js';
import type { Endpoint } from './external.js';

export interface PacketInFrame {
  bridge: string;
  /** The OpenFlow port the packet came in on. */
  inPort: number;
  /** The cookie of the rule that sent it. */
  cookie: bigint;
  tableId: number;
  /** The controller action's userdata, if any. */
  userdata: Uint8Array | null;
  /** The packet's metadata field when it was sent. */
  metadata: bigint;
  /** The flow as it was when sent (registers, tunnel, ...). */
  flow: Flow;
  /** The frame as it was when sent (with the actions before it applied). */
  frame: Uint8Array;
}

type Delivery =
  | { kind: 'port'; host: SimHost; bridge: Bridge; inPort: number; frame: Uint8Array }
  | { kind: 'underlay'; host: SimHost; type: TunnelType; frame: Uint8Array };

/** An address option's value, or -1 (matching nothing) when it is not an IPv4 address. */
const ipNumber = (ip: string): number => parseIp(ip) ?? -1;

export interface FabricOptions {
  clock?: Clock;
}

export class Fabric {
  readonly hosts = new Map<string, SimHost>();
  private readonly queue: Delivery[] = [];
  readonly clock: Clock;
  /** Tunnel packets to an underlay IP no host has, or that no tunnel port there accepted. */
  lost = 0;
  /** Tunnel packets carried across the underlay. */
  delivered = 0;

  constructor(opts: FabricOptions = {}) {
    this.clock = opts.clock ?? wallClock;
  }

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
      if (d.kind === 'port') d.host.process(d.bridge, d.inPort, d.frame);
      else d.host.receiveTunnel(d.type, d.frame);
    }
    return n;
  }

  /** An encapsulated packet on the underlay, to the host that has its destination IP. */
  carry(outer: Uint8Array, dst: number, type: TunnelType): void {
    const host = this.hosts.get(ipText(dst));
    if (!host) {
      this.lost += 1;
      return;
    }
    this.delivered += 1;
    this.enqueue({ kind: 'underlay', host, type, frame: outer });
  }
}

/** A MAC for a host's underlay interface, from its IP (locally administered). */
const underlayMac = (ip: number): number => 0x020000000000 + ip;

export class SimHost {
  readonly bridges = new Map<string, Bridge>();
  readonly datapath: Datapath;
  /** Endpoints by bridge/ofport. */
  private readonly vms = new Map<string, Endpoint>();
  private readonly listeners: ((e: PacketInFrame) => void)[] = [];
  private readonly portListeners: ((keys: string[]) => void)[] = [];
  readonly packetIns: PacketInFrame[] = [];
  private readonly ip: number;
  /** Every host reaches every underlay IP (the fabric counts what nobody receives). */
  readonly underlayRoute = { route: (): boolean => true };

  constructor(readonly name: string, readonly underlayIp: string, readonly fabric: Fabric) {
    this.datapath = new Datapath(fabric.clock);
    this.ip = ipNumber(underlayIp);
  }

  /** A bridge in fail-mode secure (no NORMAL flow: the agent programs everything). */
  addBridge(name: string): Bridge {
    const b = new Bridge(name, this.datapath);
    b.failMode = 'secure';
    b.addPort(name, 'internal', { ofportRequest: OFPP.LOCAL });
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
  plug(bridgeName: string, vm: Endpoint, portName: string, externalIds: Record<string, string> = {}): number {
    const b = this.bridge(bridgeName);
    const port = b.addPort(portName, 'system', { externalIds });
    this.vms.set(`${bridgeName}/${port.ofport}`, vm);
    vm.attach((frame) => this.fabric.enqueue({ kind: 'port', host: this, bridge: b, inPort: port.ofport, frame }));
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

  /** A packet-out from a controller (in_port CONTROLLER): run these actions on the frame. */
  packetOut(bridgeName: string, actions: Ofpact[], frame: Uint8Array, inPort: number = OFPP.CONTROLLER): void {
    const b = this.bridge(bridgeName);
    this.execute(b, extract(frame, inPort, undefined, b.vlanLimit), frame, actions);
  }

  process(b: Bridge, inPort: number, frame: Uint8Array): void {
    if (!b.ports.has(inPort)) return;
    this.execute(b, extract(frame, inPort, undefined, b.vlanLimit), frame, null);
  }

  /** An encapsulated packet from the underlay: the tunnel port that accepts it receives it. */
  receiveTunnel(type: TunnelType, outer: Uint8Array): void {
    for (const b of this.bridges.values()) {
      const d = decapsulate(outer, b.tun);
      if (!d || d.type !== type) continue;
      const port = [...b.ports.values()].find((p) => p.type === type && accepts(p.options, d.meta, this.ip));
      if (!port) continue;
      this.execute(b, extract(d.inner, port.ofport, d.meta, b.vlanLimit), d.inner, null);
      return;
    }
    this.fabric.lost += 1;
  }

  private execute(b: Bridge, flow: Flow, frame: Uint8Array, actions: Ofpact[] | null): void {
    executeDatapath(b, flow, frame, {
      actions,
      underlay: this.underlayRoute,
      sinks: {
        output: (port, f, bridge) => this.output(bridge, port, f, frame),
        packetIn: (a, bridge) => this.packetIn(a, bridge, frame),
      },
    });
  }

  private output(bridge: Bridge, odpPort: number, f: Flow, original: Uint8Array): void {
    const frame = writeBack(original, f, bridge.vlanLimit);
    const dp = this.datapath.portByNumber(odpPort)?.name ?? '';
    const type: TunnelType | null = dp.startsWith('vxlan_sys_') ? 'vxlan' : dp.startsWith('genev_sys_') ? 'geneve' : null;
    if (type) {
      const hop = { srcMac: underlayMac(this.ip), dstMac: underlayMac(f[W.tun_dst]!) };
      const src = f[W.tun_src] || this.ip;
      const t = Uint32Array.from(f);
      t[W.tun_src] = src;
      this.fabric.carry(encapsulate(frame, t, type, hop, bridge.tun), f[W.tun_dst]!, type);
      return;
    }
    // A local port (its datapath port has its name): the VM on it, in whichever bridge of this
    // datapath has it, or an internal port nobody reads.
    for (const b of this.bridges.values()) {
      const p = b.portByName(dp);
      if (p?.odpPort !== odpPort) continue;
      this.vms.get(`${b.name}/${p.ofport}`)?.receive(frame);
      return;
    }
  }

  private packetIn(a: Extract<OdpAction, { t: 'userspace' }>, bridge: Bridge, original: Uint8Array): void {
    const f = a.flow;
    const e: PacketInFrame = {
      bridge: a.bridge || bridge.name, inPort: f[W.in_port]!, cookie: a.cookie.ruleCookie, tableId: a.tableId, userdata: a.userdata,
      metadata: getWords(f, W.metadata, 2), flow: f, frame: writeBack(original, f, bridge.vlanLimit),
    };
    this.packetIns.push(e);
    for (const l of this.listeners) l(e);
  }
}

/** Does a tunnel port with these options receive a packet with this tunnel metadata? */
function accepts(options: Map<string, string>, meta: Flow, localIp: number): boolean {
  const remote = options.get('remote_ip');
  if (remote !== undefined && remote !== 'flow' && ipNumber(remote) !== meta[W.tun_src]) return false;
  const local = options.get('local_ip');
  if (local !== undefined && local !== 'flow' && ipNumber(local) !== meta[W.tun_dst]) return false;
  if (local === undefined && meta[W.tun_dst] !== localIp) return false;
  // No key option is key 0, as a tunnel port without one receives only VNI 0.
  const key = options.get('in_key') ?? options.get('key') ?? '0';
  if (key !== 'flow' && BigInt(Number(key)) !== getWords(meta, W.tun_id, 2)) return false;
  return true;
}

export type { PortType };
