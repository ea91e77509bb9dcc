// A simulated Zeta gateway cluster on the simulator's underlay (a stand-in, not Zeta's code): each
// node receives the tunnel packets sent to its underlay IP and does what Alcor's reference says a
// Zeta gateway node does: answers ARP for every instance of the VPC, forwards a packet to the
// instance's host (eth dst = the instance's MAC, the same VNI and encapsulation), and sends the
// source host an OAM UDP packet (to the VPC's in-band port) injecting a direct path for the
// packet's 5-tuple. Tests may also send OAM packets of their own making through it.
import { type Fabric, type SimHost } from '../../ovs-sim/index.js';
import { arpFrame, ipv4Frame, ipBytes, ipText, macText, udp } from '../../packets/frames.js';
import { type OamMessage, encodeOamPayload } from '../../dataplane/zeta-oam.js';
import { OperationType } from '../../proto/gen/alcor/common.js';
import type { GatewayState } from '../../proto/gen/alcor/gateway.js';
import type { VpcState } from '../../proto/gen/alcor/vpc.js';

export interface Instance { ip: string; mac: string; host: string }
export type Encap = 'vxlan' | 'geneve';

const ETH_IP = 0x0800;
const ETH_ARP = 0x0806;
const u16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
const underlayMac = (ip: string): string => {
  const [a, b, c, d] = ipBytes(ip);
  return ['02', '00', a, b, c, d].map((x) => (typeof x === 'string' ? x : x!.toString(16).padStart(2, '0'))).join(':');
};

/** An underlay IPv4/UDP packet carrying `inner` in VXLAN or Geneve (no options). */
export function encapsulate(inner: Uint8Array, o: { src: string; dst: string; vni: number; type: Encap }): Uint8Array {
  const hdr = new Uint8Array(8);
  if (o.type === 'vxlan') hdr[0] = 0x08;
  else {
    hdr[2] = 0x65;
    hdr[3] = 0x58;
  }
  hdr[4] = (o.vni >> 16) & 0xff;
  hdr[5] = (o.vni >> 8) & 0xff;
  hdr[6] = o.vni & 0xff;
  const payload = new Uint8Array(hdr.length + inner.length);
  payload.set(hdr);
  payload.set(inner, hdr.length);
  const u = udp(49152, o.type === 'vxlan' ? 4789 : 6081, payload);
  // The outer UDP checksum is optional for tunnels (and OVS sends none).
  u[6] = 0;
  u[7] = 0;
  return ipv4Frame(underlayMac(o.dst), underlayMac(o.src), o.src, o.dst, 17, u);
}

export function decapsulate(outer: Uint8Array): { src: string; vni: number; type: Encap; inner: Uint8Array } | null {
  if (u16(outer, 12) !== ETH_IP || outer[23] !== 17) return null;
  const udpAt = 14 + (outer[14]! & 0x0f) * 4;
  const port = u16(outer, udpAt + 2);
  const h = udpAt + 8;
  const vni = (outer[h + 4]! << 16) | (outer[h + 5]! << 8) | outer[h + 6]!;
  const src = ipText(outer, 26);
  if (port === 4789) return { src, vni, type: 'vxlan', inner: outer.slice(h + 8) };
  if (port === 6081) return { src, vni, type: 'geneve', inner: outer.slice(h + 8 + (outer[h]! & 0x3f) * 4) };
  return null;
}

export interface Received { node: string; from: string; vni: number; type: Encap; inner: Uint8Array }

/** The cluster: nodes by underlay IP, the VPC's instances, the OAM port. */
export class ZetaGatewayStandIn {
  readonly received: Received[] = [];
  readonly oamSent: OamMessage[] = [];
  /** Send OAM injects for forwarded packets (off: the gateway only forwards). */
  sendOam = true;
  idleTimeout = 60;
  private readonly carry: Fabric['carry'];

  constructor(
    private readonly fabric: Fabric,
    readonly nodes: { ip: string; mac: string }[],
    readonly instances: Instance[],
    readonly oamPort = 8300,
  ) {
    this.carry = fabric.carry.bind(fabric);
    fabric.carry = (outer, dst, type) => {
      const ip = ipText(Uint8Array.of(dst >>> 24, (dst >>> 16) & 255, (dst >>> 8) & 255, dst & 255), 0);
      const node = this.nodes.find((n) => n.ip === ip);
      if (node) this.receive(node, outer);
      else this.carry(outer, dst, type);
    };
  }

  private host(ip: string): SimHost {
    const h = this.fabric.hosts.get(ip);
    if (!h) throw new Error(`no host ${ip}`);
    return h;
  }

  /** Put a packet on the underlay from a gateway node to a host. */
  send(node: { ip: string }, hostIp: string, vni: number, type: Encap, inner: Uint8Array): void {
    this.fabric.enqueue({ kind: 'underlay', host: this.host(hostIp), type, frame: encapsulate(inner, { src: node.ip, dst: hostIp, vni, type }) });
  }

  /** An OAM packet from a node to a host, in the network's tunnel (payload bytes as given). */
  sendOamPayload(node: { ip: string; mac: string }, hostIp: string, vni: number, type: Encap, payload: Uint8Array, port = this.oamPort): void {
    const frame = ipv4Frame(underlayMac(hostIp), node.mac, node.ip, hostIp, 17, udp(this.oamPort, port, payload));
    this.send(node, hostIp, vni, type, frame);
  }

  oam(node: { ip: string; mac: string }, hostIp: string, type: Encap, m: OamMessage): void {
    this.oamSent.push(m);
    this.sendOamPayload(node, hostIp, m.vni, type, encodeOamPayload(m));
  }

  private receive(node: { ip: string; mac: string }, outer: Uint8Array): void {
    const d = decapsulate(outer);
    if (!d) return;
    this.received.push({ node: node.ip, from: d.src, vni: d.vni, type: d.type, inner: d.inner });
    const f = d.inner;
    const ethType = u16(f, 12);
    if (ethType === ETH_ARP && u16(f, 20) === 1) {
      const tpa = ipText(f, 38);
      const inst = this.instances.find((i) => i.ip === tpa);
      if (!inst) return;
      const sha = macText(f, 22);
      const spa = ipText(f, 28);
      this.send(node, d.src, d.vni, d.type, arpFrame(2, inst.mac, inst.ip, sha, spa));
      return;
    }
    if (ethType !== ETH_IP) return;
    const dst = ipText(f, 30);
    const inst = this.instances.find((i) => i.ip === dst);
    if (!inst) return;
    const out = new Uint8Array(f);
    out.set(inst.mac.split(':').map((x) => parseInt(x, 16)), 0);
    this.send(node, inst.host, d.vni, d.type, out);
    if (!this.sendOam) return;
    const proto = f[23]!;
    const l4 = 14 + (f[14]! & 0x0f) * 4;
    const ports = proto === 6 || proto === 17 ? [u16(f, l4), u16(f, l4 + 2)] : [0, 0];
    this.oam(node, d.src, d.type, {
      op: 0, innerSrcIp: ipText(f, 26), innerDstIp: dst, srcPort: ports[0]!, dstPort: ports[1]!, proto, vni: d.vni,
      instIp: inst.ip, nodeIp: inst.host, instMac: inst.mac, nodeMac: underlayMac(inst.host), idleTimeout: this.idleTimeout,
    });
  }
}

/** VPC V1 naming these gateways. */
export function vpcState(gatewayIds: string[], op = OperationType.CREATE): VpcState {
  return { operationType: op, configuration: { revisionNumber: 1, requestId: '', id: 'V1', updateType: 0, projectId: 'p', name: 'V1', cidr: '10.0.0.0/8', tunnelId: 0, gatewayIds } };
}

export function gatewayState(nodes: { ip: string; mac: string }[], op = OperationType.CREATE, port = 8300): GatewayState {
  return {
    operationType: op,
    configuration: {
      revisionNumber: 1, requestId: '', id: 'ZG1', gatewayType: 1,
      destinations: nodes.map((n) => ({ ipAddress: n.ip, macAddress: n.mac })),
      extraInfo: { $case: 'zetaInfo', value: { portInbandOperation: port } },
    },
  };
}

