// Zeta OAM packets to direct paths (docs/zeta.md). A Zeta gateway node that forwarded the first
// packet of a connection tells the source host, in an OAM UDP packet on the VPC's in-band port,
// where the destination lives: op 0 injects a direct path (that 5-tuple straight to the
// instance's host, with an idle timeout), op 1 deletes it. OVS's `learn` reads header fields
// only, never a UDP payload, so the pipeline punts OAM packets here (only from the gateway's
// own nodes, in the gateway's networks) and the agent validates each one and installs the path
// as a transient flow. Bad packets are dropped and counted by reason, never installed; direct
// paths of a network that leaves the Zeta path are purged, expired or not.
import type { FlowBackend, PacketIn } from './backend.js';
import { ETH_TYPE, IP_PROTO, ipv4Number, ipv4Text, ipv4Value, macText } from './fields.js';
import { type Flow, canonicalMatch, cookieFor, eq, load, makeFlowKey, reg, resubmit, setField } from './flow.js';
import type { ResourceView, Subnet } from './model.js';
import { PRIORITY, REGISTERS, TABLES, TUNNEL_PORTS } from './pipeline.js';
import { type Topology, networkOf } from './topology.js';
import { zetaOfSubnet } from './features/zeta.js';

/** op_code(4) src(4) dst(4) sport(2) dport(2) proto(1) vni(3) inst_ip(4) node_ip(4) inst_mac(6) node_mac(6) idle(2). */
export const OAM_BYTES = 42;

export interface OamMessage {
  op: number;
  innerSrcIp: string;
  innerDstIp: string;
  srcPort: number;
  dstPort: number;
  proto: number;
  vni: number;
  instIp: string;
  nodeIp: string;
  instMac: string;
  nodeMac: string;
  /** Seconds, network byte order (ACA reads it in host order: on x86 a bug that turns 60 into 15360). */
  idleTimeout: number;
}

const ip4 = (b: Buffer, at: number): string => ipv4Text(BigInt(b.readUInt32BE(at)));
const mac6 = (b: Buffer, at: number): string => macText(BigInt(`0x${b.subarray(at, at + 6).toString('hex')}`));

/** The OAM payload, or null when it is shorter than the layout. */
export function parseOamPayload(p: Buffer): OamMessage | null {
  if (p.length < OAM_BYTES) return null;
  return {
    op: p.readUInt32BE(0), innerSrcIp: ip4(p, 4), innerDstIp: ip4(p, 8), srcPort: p.readUInt16BE(12), dstPort: p.readUInt16BE(14),
    proto: p[16]!, vni: p.readUIntBE(17, 3), instIp: ip4(p, 20), nodeIp: ip4(p, 24), instMac: mac6(p, 28), nodeMac: mac6(p, 34), idleTimeout: p.readUInt16BE(40),
  };
}

export function encodeOamPayload(m: OamMessage): Buffer {
  const b = Buffer.alloc(OAM_BYTES);
  b.writeUInt32BE(m.op, 0);
  b.writeUInt32BE(ipv4Number(m.innerSrcIp), 4);
  b.writeUInt32BE(ipv4Number(m.innerDstIp), 8);
  b.writeUInt16BE(m.srcPort, 12);
  b.writeUInt16BE(m.dstPort, 14);
  b[16] = m.proto;
  b.writeUIntBE(m.vni, 17, 3);
  b.writeUInt32BE(ipv4Number(m.instIp), 20);
  b.writeUInt32BE(ipv4Number(m.nodeIp), 24);
  Buffer.from(m.instMac.replaceAll(':', ''), 'hex').copy(b, 28);
  Buffer.from(m.nodeMac.replaceAll(':', ''), 'hex').copy(b, 34);
  b.writeUInt16BE(m.idleTimeout, 40);
  return b;
}

/** UDP destination port and payload of an Ethernet/IPv4/UDP frame, or a reason it is not one. */
function udpOf(frame: Buffer): { dstPort: number; payload: Buffer } | string {
  if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== ETH_TYPE.ip) return 'not IPv4';
  const ihl = (frame[14]! & 0x0f) * 4;
  if (ihl < 20 || frame[23] !== IP_PROTO.udp || frame.length < 14 + ihl + 8) return 'not UDP';
  const udp = 14 + ihl;
  const len = frame.readUInt16BE(udp + 4);
  if (len < 8) return 'bad UDP length';
  return { dstPort: frame.readUInt16BE(udp + 2), payload: frame.subarray(udp + 8, Math.min(frame.length, udp + len)) };
}

/** Counters of the OAM path: what was done, and what was dropped, by reason. */
export interface ZetaOamCounters {
  injected: number;
  deleted: number;
  purged: number;
  dropped: Record<OamDropReason, number>;
}

export type OamDropReason = 'malformed' | 'wrongPort' | 'truncated' | 'badOp' | 'vni' | 'address' | 'node' | 'mac' | 'protocol' | 'full' | 'switch';

export interface ZetaOamOptions {
  /** Direct paths this host holds at most (beyond: OAM injects are dropped, counted `full`). */
  maxPaths: number;
  /** Idle timeout when the OAM says 0 (never a permanent flow): the routing design's 60 s. */
  defaultIdleSeconds: number;
  /** This host's underlay IP: never a direct path's node. */
  hostIp?: string;
}

export const DEFAULT_ZETA_OAM: ZetaOamOptions = { maxPaths: 65536, defaultIdleSeconds: 60 };

interface Ctx {
  view: ResourceView;
  topology: Topology;
  backend: FlowBackend;
}

/** A direct path's cookie: one per network, so all of a network's paths go in one purge. */
export const directPathCookie = (vni: number): bigint => cookieFor('zetaPath', `vni:${vni}`);

const inCidr = (ip: string, s: Subnet): boolean => {
  if (s.cidr.family !== 4) return false;
  const bits = s.cidr.prefix;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return ((ipv4Number(ip) & mask) >>> 0) === ((ipv4Number(s.cidr.address) & mask) >>> 0);
};

const badMac = (m: string): boolean => m === '00:00:00:00:00:00' || (parseInt(m.slice(0, 2), 16) & 1) === 1;

export class ZetaOamHandler {
  readonly counters: ZetaOamCounters = {
    injected: 0, deleted: 0, purged: 0,
    dropped: { malformed: 0, wrongPort: 0, truncated: 0, badOp: 0, vni: 0, address: 0, node: 0, mac: 0, protocol: 0, full: 0, switch: 0 },
  };
  /** Direct paths installed, by network: flow key → flow (expired ones stay until deleted or purged). */
  private readonly paths = new Map<number, Map<string, Flow>>();
  /** When each OAM's direct path was confirmed by the switch, ms after its packet-in (the last few, for figures). */
  readonly latencies: number[] = [];

  constructor(
    private readonly opts: ZetaOamOptions = DEFAULT_ZETA_OAM,
    private readonly log?: { info(m: string, meta?: Record<string, unknown>): void; warn(m: string, meta?: Record<string, unknown>): void },
  ) {}

  get size(): number {
    let n = 0;
    for (const m of this.paths.values()) n += m.size;
    return n;
  }

  private drop(reason: OamDropReason, why: string, p: PacketIn): void {
    this.counters.dropped[reason] += 1;
    this.log?.info('Zeta OAM packet dropped', { reason, why, inPort: p.inPort, network: Number(p.metadata) });
  }

  /** One OAM packet-in: validated, then the direct path installed or deleted. Run in the dataplane's commit order. */
  async handle(p: PacketIn, ctx: Ctx): Promise<void> {
    const started = Date.now();
    const udp = udpOf(p.data);
    if (typeof udp === 'string') return this.drop('malformed', udp, p);
    const vni = Number(p.metadata & 0xff_ff_ffn);
    const subnets = ctx.topology.subnetsOfVni(vni);
    const zeta = subnets.map((s) => ({ s, z: zetaOfSubnet(ctx, s) })).find((x) => x.z !== null);
    if (!zeta) return this.drop('vni', `network ${vni} is not on a Zeta path here`, p);
    const { s: subnet, z } = zeta as { s: Subnet; z: NonNullable<ReturnType<typeof zetaOfSubnet>> };
    if (udp.dstPort !== z.gateway.oamPort) return this.drop('wrongPort', `UDP port ${udp.dstPort}, the gateway's in-band port is ${z.gateway.oamPort}`, p);
    const m = parseOamPayload(udp.payload);
    if (!m) return this.drop('truncated', `payload of ${udp.payload.length} bytes, the OAM layout has ${OAM_BYTES}`, p);
    if (m.op !== 0 && m.op !== 1) return this.drop('badOp', `op_code ${m.op}`, p);
    if (m.vni !== vni) return this.drop('vni', `OAM for VNI ${m.vni} arrived in network ${vni}`, p);
    if (m.proto !== IP_PROTO.tcp && m.proto !== IP_PROTO.udp && m.proto !== IP_PROTO.icmp) return this.drop('protocol', `protocol ${m.proto}`, p);
    // Addresses: the connection's ends and the instance must be in the VPC's subnets.
    const vpcSubnets = [...ctx.view.list('subnet')].filter((x) => x.vpcId === subnet.vpcId);
    for (const [what, ip] of [['inner source', m.innerSrcIp], ['inner destination', m.innerDstIp], ['instance', m.instIp]] as const) {
      if (!vpcSubnets.some((x) => inCidr(ip, x))) return this.drop('address', `${what} ${ip} is in no subnet of VPC ${subnet.vpcId}`, p);
    }
    if (m.op === 1) return this.remove(this.flowOf(m, subnet, 0), ctx, vni);
    if (badMac(m.instMac)) return this.drop('mac', `instance MAC ${m.instMac}`, p);
    if (!this.knownHost(m.nodeIp, ctx) || m.nodeIp === this.opts.hostIp || z.gateway.nodes.some((n) => n.ip === m.nodeIp)) {
      return this.drop('node', `node ${m.nodeIp} is not a known host`, p);
    }
    const flow = this.flowOf(m, subnet, m.idleTimeout === 0 ? this.opts.defaultIdleSeconds : m.idleTimeout);
    const mine = this.paths.get(vni);
    if (!mine?.has(flow.key!) && this.size >= this.opts.maxPaths) return this.drop('full', `${this.size} direct paths held already`, p);
    try {
      await ctx.backend.transient!({ add: [flow], remove: [], purge: [] });
    } catch (e) {
      return this.drop('switch', String(e), p);
    }
    let map = this.paths.get(vni);
    if (!map) this.paths.set(vni, (map = new Map<string, Flow>()));
    map.set(flow.key!, flow);
    this.counters.injected += 1;
    this.latencies.push(Date.now() - started);
    if (this.latencies.length > 1000) this.latencies.shift();
  }

  private async remove(flow: Flow, ctx: Ctx, vni: number): Promise<void> {
    await ctx.backend.transient!({ add: [], remove: [flow], purge: [] });
    this.paths.get(vni)?.delete(flow.key!);
    this.counters.deleted += 1;
  }

  /** A host the store names: some neighbor's host, in any network. */
  private knownHost(ip: string, ctx: Ctx): boolean {
    for (const s of ctx.view.list('subnet')) for (const h of ctx.topology.remoteHostsOf(s.id)) if (h === ip) return true;
    return false;
  }

  /** The direct path of an OAM: the 5-tuple of the network to the instance on its node. */
  private flowOf(m: OamMessage, subnet: Subnet, idle: number): Flow {
    const net = networkOf(subnet)!;
    const ports = m.proto === IP_PROTO.icmp ? [] : [eq('tp_src', m.srcPort), eq('tp_dst', m.dstPort)];
    const match = canonicalMatch([reg(REGISTERS.network, m.vni), eq('dl_type', ETH_TYPE.ip), eq('nw_proto', m.proto), eq('nw_src', ipv4Value(m.innerSrcIp)), eq('nw_dst', ipv4Value(m.innerDstIp)), ...ports]);
    const actions = [
      setField('dl_dst', BigInt(`0x${m.instMac.replaceAll(':', '')}`)),
      ...(m.instIp !== m.innerDstIp ? [setField('nw_dst', ipv4Value(m.instIp))] : []),
      setField('tun_id', m.vni), setField('tun_dst', ipv4Value(m.nodeIp)), load(REGISTERS.outPort, TUNNEL_PORTS[net.encap].ofport), resubmit(TABLES.OUTPUT),
    ];
    const table = TABLES.ZETA_DIRECT.id;
    const key = makeFlowKey(table, PRIORITY.match, match);
    return { table, priority: PRIORITY.match, match, actions, cookie: directPathCookie(m.vni), key, ...(idle > 0 ? { idleTimeout: idle } : {}) };
  }

  /**
   * After a change of the desired state: networks that left the Zeta path (gateway gone from the
   * VPC, VPC or subnet deleted) lose every direct path, expired or not, by cookie.
   */
  async sweep(ctx: Ctx): Promise<void> {
    const gone: number[] = [];
    for (const vni of this.paths.keys()) {
      if (!ctx.topology.subnetsOfVni(vni).some((s) => zetaOfSubnet(ctx, s) !== null)) gone.push(vni);
    }
    if (gone.length === 0 || !ctx.backend.transient) return;
    await ctx.backend.transient({ add: [], remove: [], purge: gone.map((vni) => ({ table: TABLES.ZETA_DIRECT.id, cookie: directPathCookie(vni) })) });
    for (const vni of gone) {
      this.counters.purged += this.paths.get(vni)?.size ?? 0;
      this.paths.delete(vni);
    }
  }
}
