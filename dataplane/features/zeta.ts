// The Zeta gateway path (docs/zeta.md). A subnet whose VPC names a ZETA gateway in gateway_ids
// sends what this host cannot deliver itself to the gateway cluster: unicast to a MAC no local
// port or known neighbor has (local_l2's miss for the network) and ARP requests no entry answers,
// through one OpenFlow select group per (gateway, encapsulation): a bucket per gateway node (eth
// dst and tun_dst of the node), OVS hashing the 5-tuple so a connection sticks to one node. The
// tunnel carries the subnet's VNI. OAM packets from the gateway's nodes go to the agent (direct
// paths: dataplane/zeta-oam.ts). One owner per subnet: everything it builds is keyed by its VNI,
// so subnets sharing a VNI build the same flows and never conflict.
import { ETH_TYPE, IP_PROTO, ipv4Value, macValue } from '../fields.js';
import { type Action, type Bucket, eq, hash48, output, reg, resubmit, setField } from '../flow.js';
import type { BuildContext, Feature } from '../feature.js';
import type { Gateway, Subnet } from '../model.js';
import { type Encapsulation, PRIORITY, PUNT, REGISTERS, TABLES, TUNNEL_PORTS } from '../pipeline.js';
import { networkOf } from '../topology.js';
import { multicast } from './pipeline.js';
import { isIPv4 } from './arp-responder.js';

/** A ZETA gateway as the dataplane uses it: IPv4 nodes only (our underlay is IPv4). */
export interface ZetaGateway {
  key: string;
  nodes: { ip: string; mac: string }[];
  oamPort: number;
}

/**
 * The ZETA gateway of a VPC: the first id of `gateway_ids` naming a ZETA gateway with at least
 * one IPv4 node (the contract allows several ids; a VPC has one Zeta gateway cluster).
 */
export function zetaGatewayOf(ctx: Pick<BuildContext, 'view'>, vpcId: string): ZetaGateway | null {
  const vpc = ctx.view.get('vpc', vpcId);
  if (!vpc) return null;
  for (const id of vpc.gatewayIds) {
    const g = ctx.view.get('gateway', id);
    const z = g ? asZeta(g) : null;
    if (z) return z;
  }
  return null;
}

function asZeta(g: Gateway): ZetaGateway | null {
  if (g.type !== 'ZETA') return null;
  const nodes = g.destinations.filter((d) => isIPv4(d.ip)).sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
  if (nodes.length === 0) return null;
  // Alcor's code and tests use 8300 throughout; a gateway without zeta_info gets it too.
  return { key: g.key, nodes, oamPort: g.zeta?.portInbandOperation || 8300 };
}

/** Group ids of Zeta groups: 0x10 in the top byte (the programmer id), a hash of gateway and encapsulation below. */
export function zetaGroupId(gatewayKey: string, encap: Encapsulation): number {
  return 0x10_00_00_00 | Number(hash48(`${gatewayKey}|${encap}`) & 0xff_ff_ffn);
}

/** The network (VNI, encapsulation) and gateway of a subnet on the Zeta path, or null. */
export function zetaOfSubnet(ctx: Pick<BuildContext, 'view'>, subnet: Subnet): { vni: number; encap: Encapsulation; gateway: ZetaGateway } | null {
  const net = networkOf(subnet);
  if (!net) return null;
  const gateway = zetaGatewayOf(ctx, subnet.vpcId);
  return gateway ? { vni: net.vni, encap: net.encap, gateway } : null;
}

const IP = eq('dl_type', ETH_TYPE.ip);
const UDP = eq('nw_proto', IP_PROTO.udp);
const TUN_ID_TO_NETWORK: Action = { type: 'move', src: { field: 'tun_id', ofs: 0, nbits: 24 }, dst: { field: 'metadata', ofs: 0, nbits: 24 } };

export const zeta: Feature = {
  name: 'zeta', namespace: 'zeta', programmer: 'zeta', owners: { resource: 'subnet' },
  purpose: 'the Zeta gateway path of a subnet whose VPC has a ZETA gateway: its select group, unknown unicast and unanswered ARP to it, the OAM punt',
  build(ctx, key, out) {
    const subnet = ctx.view.get('subnet', key);
    const z = subnet ? zetaOfSubnet(ctx, subnet) : null;
    if (!z) return;
    const { vni, encap, gateway } = z;
    const tunnel = TUNNEL_PORTS[encap].ofport;
    const group = zetaGroupId(gateway.key, encap);
    const buckets: Bucket[] = gateway.nodes.map((n) => ({ actions: [setField('dl_dst', macValue(n.mac)), setField('tun_dst', ipv4Value(n.ip)), output(tunnel)] }));
    out.group({ id: group, type: 'select', buckets });
    const net = reg(REGISTERS.network, vni);
    // Unicast nobody here knows: through the direct paths, else to the gateway. Local ports and
    // neighbors match local_l2 / remote_l2 first; broadcast has its own flows above.
    out.flow(TABLES.LOCAL_L2, PRIORITY.zetaUnknown, [net], [resubmit(TABLES.ZETA_DIRECT)]);
    out.flow(TABLES.ZETA_DIRECT, PRIORITY.guard, [reg(REGISTERS.inPort, 0), net], []);
    out.flow(TABLES.ZETA_DIRECT, PRIORITY.guard, [net, multicast()], []);
    out.flow(TABLES.ZETA_DIRECT, PRIORITY.fallthrough, [net], [resubmit(TABLES.ZETA_GATEWAY)]);
    out.flow(TABLES.ZETA_GATEWAY, PRIORITY.match, [net], [setField('tun_id', vni), { type: 'group', id: group }]);
    // The gateway knows every instance of the VPC and answers ARP for them.
    out.flow(TABLES.ARP_RESPONDER, PRIORITY.zetaArp, [net, eq('dl_type', ETH_TYPE.arp), eq('arp_op', 1)], [resubmit(TABLES.ZETA_GATEWAY)]);
    // OAM: only from the gateway's own nodes, in this network, to its in-band port.
    for (const n of gateway.nodes) {
      out.flow(TABLES.CLASSIFY, PRIORITY.guard, [eq('in_port', tunnel), eq('tun_id', vni), eq('tun_src', ipv4Value(n.ip)), IP, UDP, eq('tp_dst', gateway.oamPort)], [
        TUN_ID_TO_NETWORK, { type: 'controller', userdata: PUNT.zetaOam.slice(2) },
      ]);
    }
  },
};
