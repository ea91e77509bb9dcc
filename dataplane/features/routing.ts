// Distributed routing (DVR) on the sending host, from Alcor's RouterState: a router joins the
// subnets of its `subnet_routing_tables`. One owner per router holds, per joined subnet S
// (packets a local VM of S sent to S's gateway MAC): the gateway ping answers, the TTL guard,
// one route per joined subnet and one per routing rule (table l3_gateway). Next-hop entries (table l3_route) belong to
// the VMs themselves (local ports and neighbors, `routeEntry` below), so a router change never
// rewrites per-VM flows and a VM joins routing when it arrives. A local port of a routed subnet
// also has its DVR MAC restore (table dvr_restore).
import { ETH_TYPE, IP_PROTO, ipv4Value, macValue, prefixMask } from '../fields.js';
import { type Action, type MatchField, eq, load, masked, reg, resubmit, setField, sharedReg } from '../flow.js';
import type { BuildContext, Feature, OwnerBuilder } from '../feature.js';
import type { Router, RoutingRule, Subnet } from '../model.js';
import { DVR_MAC_PREFIX, PRIORITY, REGISTERS, TABLES, routePriority } from '../pipeline.js';
import { type Network, networkOf } from '../topology.js';
import { tunnelOutput } from './tunnels.js';

/** A joined subnet the router can route: IPv4, carried, with a gateway IP and MAC. */
interface Joined {
  subnet: Subnet;
  net: Network;
  gwIp: string;
  gwMac: bigint;
  /** CIDR as a value/mask on nw_dst. */
  base: bigint;
  mask: bigint;
  prefix: number;
  rules: RoutingRule[];
}


/** The routable part of a joined subnet, or null (IPv6, not carried, no gateway). */
export function routable(subnet: Subnet | undefined): Omit<Joined, 'rules'> | null {
  if (!subnet || subnet.cidr.family !== 4) return null;
  const net = networkOf(subnet);
  const { ip, mac } = subnet.gateway;
  if (!net || ip === null || mac === null || ip.includes(':') || ip === '0.0.0.0') return null;
  const mask = prefixMask(subnet.cidr.prefix);
  return { subnet, net, gwIp: ip, gwMac: macValue(mac), base: ipv4Value(subnet.cidr.address) & mask, mask, prefix: subnet.cidr.prefix };
}

/** nw_dst within a prefix (no match at all for /0: a zero mask is a wildcard, not a field). */
const nwDst = (base: bigint, mask: bigint): MatchField[] => (mask === 0n ? [] : [masked('nw_dst', base, mask)]);

const contains = (j: Pick<Joined, 'base' | 'mask'>, ip: bigint): boolean => (ip & j.mask) === j.base;

const slice = (field: 'dl_src' | 'dl_dst' | 'nw_src' | 'nw_dst', nbits: number) => ({ field, ofs: 0, nbits });
const SWAP_MACS: Action = { type: 'move', src: slice('dl_src', 48), dst: slice('dl_dst', 48) };
const SWAP_IPS: Action = { type: 'move', src: slice('nw_src', 32), dst: slice('nw_dst', 32) };
export const NEXT_HOP_FROM_DST: Action = { type: 'move', src: slice('nw_dst', 32), dst: { field: REGISTERS.nextHop.field, ofs: 0, nbits: 32 } };
export const DEC_TTL: Action = { type: 'dec_ttl' };
const IP = eq('dl_type', ETH_TYPE.ip);

/** The echo reply made from the request, from `gwIp` with the sender's gateway MAC. */
function echoReply(gwMac: bigint, gwIp: string): Action[] {
  return [SWAP_MACS, setField('dl_src', gwMac), SWAP_IPS, setField('nw_src', ipv4Value(gwIp)), setField('nw_ttl', 64), setField('icmp_type', 0), { type: 'in_port' }];
}

/** Into the next hop's network, then its l3_route entry. */
function toNextHop(srcMac: bigint, into: Joined, nextHop: Action): Action[] {
  return [DEC_TTL, setField('dl_src', srcMac), setField('metadata', into.net.vni), nextHop, resubmit(TABLES.L3_ROUTE)];
}

/** The routable subnets a router joins, each once, with its routing rules. */
export function joinedOf(ctx: BuildContext, router: Router): Joined[] {
  const out: Joined[] = [];
  const seen = new Set<string>();
  for (const t of router.subnetRoutingTables) {
    if (seen.has(t.subnetId)) continue;
    seen.add(t.subnetId);
    const r = routable(ctx.view.get('subnet', t.subnetId));
    if (r) out.push({ ...r, rules: t.rules });
  }
  return out;
}

function buildSubnet(out: OwnerBuilder, router: Router, s: Joined, joined: readonly Joined[]): void {
  const base: MatchField[] = [sharedReg(REGISTERS.network, s.net.vni), IP, eq('dl_dst', s.gwMac)];
  // The gateway IP of every joined subnet answers ping from every joined subnet.
  for (const t of joined) {
    const echo = [...base, eq('nw_proto', IP_PROTO.icmp), eq('nw_dst', ipv4Value(t.gwIp)), eq('icmp_type', 8)];
    out.flow(TABLES.L3_GATEWAY, PRIORITY.gatewayEcho, echo, echoReply(s.gwMac, t.gwIp));
    // Answered by these flows, so no security group rule stands in its way.
    out.flow(TABLES.SG_EGRESS, PRIORITY.gatewayEcho, [...echo], [resubmit(TABLES.ARP_RESPONDER)]);
  }
  // TTL 0 or 1 would expire here: dropped (ICMP time exceeded needs the agent: left for later).
  for (const ttl of [0, 1]) out.flow(TABLES.L3_GATEWAY, PRIORITY.ttlGuard, [...base, eq('nw_ttl', ttl)], []);
  const dvr = router.hostDvrMac === null ? null : macValue(router.hostDvrMac);
  for (const t of joined) {
    out.flow(TABLES.L3_GATEWAY, routePriority(t.prefix, null), [...base, ...nwDst(t.base, t.mask)], toNextHop(dvr ?? t.gwMac, t, NEXT_HOP_FROM_DST));
  }
  for (const rule of s.rules) {
    const hop = ruleNextHop(rule, joined);
    if (!hop) continue;
    const dst = rule.destination;
    const mask = prefixMask(dst.prefix);
    out.flow(TABLES.L3_GATEWAY, routePriority(dst.prefix, rule.priority), [...base, ...nwDst(ipv4Value(dst.address) & mask, mask)],
      toNextHop(dvr ?? hop.into.gwMac, hop.into, load(REGISTERS.nextHop, hop.ip)));
  }
}

/**
 * Where a rule sends its packets: the joined subnet its next hop is in. A rule for the internet
 * (no next hop) waits for SNAT; a next hop outside every joined subnet is not routable. A next
 * hop no VM holds yet is still programmed: its l3_route entry appears when the VM does.
 */
function ruleNextHop(rule: RoutingRule, joined: readonly Joined[]): { into: Joined; ip: bigint } | null {
  if (rule.nextHopIp === null || rule.nextHopIp.includes(':') || rule.destination.family !== 4) return null;
  const ip = ipv4Value(rule.nextHopIp);
  const into = joined.find((j) => contains(j, ip));
  return into ? { into, ip } : null;
}

export const routers: Feature = {
  name: 'routers', namespace: 'router', programmer: 'router', owners: { resource: 'router' },
  purpose: 'distributed routing between the subnets a router joins: gateway ping, TTL guard, routes, routing rules',
  build(ctx, key, out) {
    const router = ctx.view.get('router', key);
    if (!router) return;
    const joined = joinedOf(ctx, router);
    for (const s of joined) buildSubnet(out, router, s, joined);
  },
};

/**
 * The l3_route entry of a VM address in a routed subnet, built by the VM's own owner: a local
 * port (`local` true: delivered on this host with its gateway as source) or a remote neighbor
 * (straight into the destination subnet's tunnel to its host).
 */
export function routeEntry(ctx: BuildContext, out: OwnerBuilder, subnet: Subnet, ip: string, mac: string, remoteHost: string | null): void {
  if (ip.includes(':') || !ctx.topology.routed(subnet.id)) return;
  const r = routable(subnet);
  if (!r) return;
  const match = [sharedReg(REGISTERS.network, r.net.vni), reg(REGISTERS.nextHop, ipv4Value(ip))];
  const toMac = setField('dl_dst', macValue(mac));
  if (remoteHost !== null) {
    out.flow(TABLES.L3_ROUTE, PRIORITY.match, match, [toMac, ...tunnelOutput(r.net.encap, r.net.vni, remoteHost)], 'route');
    return;
  }
  const fromGateway = setField('dl_src', r.gwMac);
  out.flow(TABLES.L3_ROUTE, PRIORITY.match, match, [fromGateway, toMac, resubmit(TABLES.LOCAL_L2)], 'route');
  // Arrivals another host routed to this port (to its address, or through it as a rule's next
  // hop) carry that host's DVR MAC: the port sees its own gateway instead. Keyed by the port's
  // MAC, not its subnet's CIDR, so a rule's destination outside the subnet is restored too.
  out.flow(TABLES.DVR_RESTORE, PRIORITY.match, [sharedReg(REGISTERS.network, r.net.vni), DVR_SRC, eq('dl_dst', macValue(mac))], [fromGateway, resubmit(TABLES.LOCAL_L2)], 'route');
}

const DVR_SRC = masked('dl_src', DVR_MAC_PREFIX.value, DVR_MAC_PREFIX.mask);
