// North-south: distributed SNAT and elastic IPs on every host (docs/nat.md). A router with an
// external gateway gets, on each host, a default route below all its routes (l3_gateway), this
// host's SNAT slice (nat_egress), the way out through br-int's patch port to the operator's
// external bridge (nat_output), un-NAT of replies (nat_ingress, nat_deliver) and the external
// bridge's ARP answers and intake for its SNAT addresses. A local port's elastic IPs are its
// own owner: 1:1 NAT both ways and the external bridge's answers for them. Only this host's VMs'
// elastic IPs are answered here, which is what makes it distributed. Conntrack zone: one per
// router, shared by SNAT and DNAT so a connection made either way is found both ways.
import { CT_STATE, ETH_TYPE, IP_PROTO, ipv4Value, macValue } from '../fields.js';
import { type Action, type MatchField, eq, load, masked, output, reg, resubmit, setField } from '../flow.js';
import type { BuildContext, Feature, OwnerBuilder } from '../feature.js';
import type { ExternalGateway, Router } from '../model.js';
import { OFPP_NORMAL, PRIORITY, PUNT, REGISTERS, TABLES, type TableSpec } from '../pipeline.js';
import { type ExternalNetwork, elasticIpMac, hostExternalMac, snatMac } from '../external.js';
import { DEC_TTL, NEXT_HOP_FROM_DST, joinedOf } from './routing.js';
import { ARP_REQUEST, arpReplyActions } from './arp-responder.js';
import { portMasks } from './security-groups.js';

const IP = eq('dl_type', ETH_TYPE.ip);
const ARP = eq('dl_type', ETH_TYPE.arp);
const NORMAL = output(OFPP_NORMAL);

/** The external bridge's table, on the bridge a mapping names (TABLES declares it on br-ex). */
const extTables = new Map<string, TableSpec>();
export function extClassify(bridge: string): TableSpec {
  let t = extTables.get(bridge);
  if (!t) extTables.set(bridge, (t = { ...TABLES.EXT_CLASSIFY, bridge }));
  return t;
}

const ct = (commit: boolean, zone: number, table: TableSpec, nat: string): Action => ({ type: 'ct', commit, zone, table: table.id, nat });

/**
 * An ARP answer on the external bridge for `ip`: `arpMac` in the ARP body, `frameMac` as the
 * frame's source (they differ for a shared SNAT address, whose MAC must never be a source).
 */
function externalArp(out: OwnerBuilder, bridge: string, ip: string, arpMac: bigint, frameMac: bigint): void {
  out.flow(extClassify(bridge), PRIORITY.match, [...ARP_REQUEST, eq('arp_tpa', ipv4Value(ip))], arpReplyActions(arpMac, ip, frameMac));
}

/** Toward br-int, from the uplink: what this owner's addresses receive. */
const toIntegration = (ext: ExternalNetwork): Action[] => [output(ext.phyPort.ofport)];

/** What a router with an external gateway has on this host, or null when it cannot have anything. */
interface Gateway {
  router: Router;
  gw: ExternalGateway;
  ext: ExternalNetwork;
  zone: number;
  /** The next hop's MAC: given, or resolved by ARP; null while unknown. */
  nextHopMac: bigint | null;
}

function gatewayOf(ctx: BuildContext, router: Router | undefined): Gateway | null {
  const gw = router?.externalGateway;
  if (!router || !gw) return null;
  const ext = ctx.host.externals.get(gw.network);
  if (!ext) return null;
  const mac = gw.nextHopMac ?? ctx.resolvedMac(gw.nextHopIp) ?? null;
  return { router, gw, ext, zone: ctx.zoneId(`router:${router.key}`), nextHopMac: mac === null ? null : macValue(mac) };
}

/** Out of br-int to the next hop: from `srcMac` (an elastic IP's, or this host's). */
function toNextHop(g: Gateway, srcMac: bigint): Action[] {
  if (g.nextHopMac === null) return [];
  return [setField('dl_src', srcMac), setField('dl_dst', g.nextHopMac), output(g.ext.intPort.ofport)];
}

/** The largest power of two not above n (n >= 1). */
const pow2Floor = (n: number): number => 2 ** Math.floor(Math.log2(n));

function buildRouter(ctx: BuildContext, out: OwnerBuilder, g: Gateway): void {
  const zoneMatch = reg(REGISTERS.natZone, g.zone);
  const bridge = g.ext.bridge;
  for (const j of joinedOf(ctx, g.router)) {
    // Whatever no route of the router takes leaves through the external gateway.
    out.flow(TABLES.L3_GATEWAY, PRIORITY.externalRoute, [reg(REGISTERS.network, j.net.vni), IP, eq('dl_dst', j.gwMac)],
      [DEC_TTL, load(REGISTERS.natZone, g.zone), resubmit(TABLES.NAT_EGRESS)]);
    // Back in: into the joined subnet the un-NATed address is in, then its l3_route entry.
    out.flow(TABLES.NAT_DELIVER, PRIORITY.match, [zoneMatch, IP, masked('nw_dst', j.base, j.mask)],
      [DEC_TTL, setField('dl_src', j.gwMac), setField('metadata', j.net.vni), NEXT_HOP_FROM_DST, resubmit(TABLES.L3_ROUTE)]);
  }
  out.flow(TABLES.NAT_DELIVER, PRIORITY.ctInvalid, [zoneMatch, masked('ct_state', CT_STATE.trk | CT_STATE.inv, CT_STATE.trk | CT_STATE.inv)], []);
  // This host's slices. Several slices split the VMs by the low bits of their address (a power
  // of two of them is used; docs/nat.md). No slice: no SNAT from this host at all.
  const slices = g.gw.snat;
  if (slices.length === 0) {
    out.flow(TABLES.NAT_EGRESS, PRIORITY.match, [zoneMatch, IP], []);
  } else {
    const n = pow2Floor(slices.length);
    for (let i = 0; i < n; i++) {
      const s = slices[i]!;
      const match: MatchField[] = n === 1 ? [zoneMatch, IP] : [zoneMatch, IP, masked('nw_src', i, n - 1)];
      out.flow(TABLES.NAT_EGRESS, PRIORITY.match, match, [ct(true, g.zone, TABLES.NAT_OUTPUT, `src=${s.ip}:${s.portMin}-${s.portMax}`)]);
    }
  }
  out.flow(TABLES.NAT_OUTPUT, PRIORITY.match, [zoneMatch, IP], toNextHop(g, hostExternalMac(ctx.host.underlayIp)));
  const seen = new Set<string>();
  const unnat = [load(REGISTERS.natZone, g.zone), ct(false, g.zone, TABLES.NAT_DELIVER, '')];
  for (const s of slices) {
    const ip = eq('nw_dst', ipv4Value(s.ip));
    if (!seen.has(s.ip)) {
      seen.add(s.ip);
      externalArp(out, bridge, s.ip, snatMac(s.ip), hostExternalMac(ctx.host.underlayIp));
      // ICMP has no port to tell slices apart: conntrack does (a reply of no connection of
      // this host is invalid here and dropped). Two routers sharing an address on one host
      // share this flow: one of them gets the ICMP (docs/nat.md).
      const icmp = [IP, eq('nw_proto', IP_PROTO.icmp), ip];
      out.flow(extClassify(bridge), PRIORITY.match, icmp, toIntegration(g.ext));
      out.flow(TABLES.NAT_INGRESS, PRIORITY.match, [...icmp], unnat);
    }
    // TCP and UDP by this host's slice of ports: the part of the address that is this router's here.
    for (const proto of [IP_PROTO.tcp, IP_PROTO.udp]) {
      for (const b of portMasks(s.portMin, s.portMax)) {
        const port = b.mask === 0xffff ? eq('tp_dst', b.value) : masked('tp_dst', b.value, b.mask);
        out.flow(extClassify(bridge), PRIORITY.match, [IP, eq('nw_proto', proto), ip, port], toIntegration(g.ext));
        out.flow(TABLES.NAT_INGRESS, PRIORITY.match, [IP, eq('nw_proto', proto), ip, port], unnat);
      }
    }
  }
  if (g.nextHopMac === null) {
    // Resolving it: its ARP replies come to the agent as well as to the host.
    out.flow(extClassify(bridge), PRIORITY.guard, [ARP, eq('arp_op', 2), eq('arp_spa', ipv4Value(g.gw.nextHopIp))], [{ type: 'controller', userdata: PUNT.nextHopArp.slice(2) }, NORMAL]);
  }
}

/** Distributed SNAT: one owner per router with an external gateway on a mapped network. */
export const snat: Feature = {
  name: 'snat', namespace: 'nat', programmer: 'nat', owners: { resource: 'router' },
  purpose: 'distributed SNAT of a router with an external gateway: default route, this host\'s port slice, un-NAT of replies, the external bridge\'s answers',
  build(ctx, key, out) {
    const g = gatewayOf(ctx, ctx.view.get('router', key));
    if (g) buildRouter(ctx, out, g);
  },
};

/** The external gateway of the router that joins a subnet, if any (first by key). */
function gatewayOfSubnet(ctx: BuildContext, subnetId: string): Gateway | null {
  for (const key of [...ctx.topology.routersOf(subnetId)].sort()) {
    const g = gatewayOf(ctx, ctx.view.get('router', key));
    if (g) return g;
  }
  return null;
}

/** Elastic IPs of a local port: one owner per port that has any. */
export const elasticIps: Feature = {
  name: 'elastic-ips', namespace: 'eip', programmer: 'eip', owners: { resource: 'port' },
  purpose: 'elastic IPs of a local port: 1:1 NAT both ways, the external bridge\'s ARP answers and intake',
  build(ctx, key, out) {
    const port = ctx.view.get('port', key);
    if (!port || port.elasticIps.length === 0 || !port.adminStateUp) return;
    if (ctx.bindings.ofport(port.id) === undefined) return;
    for (const e of port.elasticIps) {
      const fixed = port.fixedIps.find((f) => f.ip === e.fixedIp);
      if (!fixed) continue;
      const g = gatewayOfSubnet(ctx, fixed.subnetId);
      if (!g) continue;
      const zoneMatch = reg(REGISTERS.natZone, g.zone);
      const eip = ipv4Value(e.elasticIp);
      const mac = elasticIpMac(e.elasticIp);
      out.flow(TABLES.NAT_EGRESS, PRIORITY.eip, [zoneMatch, IP, eq('nw_src', ipv4Value(e.fixedIp))], [ct(true, g.zone, TABLES.NAT_OUTPUT, `src=${e.elasticIp}`)]);
      out.flow(TABLES.NAT_OUTPUT, PRIORITY.eip, [zoneMatch, IP, eq('nw_src', eip)], toNextHop(g, mac));
      out.flow(TABLES.NAT_INGRESS, PRIORITY.eip, [IP, eq('nw_dst', eip)], [load(REGISTERS.natZone, g.zone), ct(true, g.zone, TABLES.NAT_DELIVER, `dst=${e.fixedIp}`)]);
      externalArp(out, g.ext.bridge, e.elasticIp, mac, mac);
      out.flow(extClassify(g.ext.bridge), PRIORITY.eip, [IP, eq('nw_dst', eip)], toIntegration(g.ext));
    }
  },
};

/** The fixed flows of each mapped external bridge and of br-int's side of its patch. */
export const externalBridges: Feature = {
  name: 'external-bridges', namespace: 'external-bridges', programmer: 'nat', owners: { singleton: true },
  purpose: 'per bridge mapping: br-int classifies what comes from the patch port; the external bridge forwards NORMAL',
  build(ctx, _key, out) {
    for (const ext of ctx.host.externals.values()) {
      out.flow(TABLES.CLASSIFY, PRIORITY.match, [eq('in_port', ext.intPort.ofport)], [resubmit(TABLES.NAT_INGRESS)]);
      out.flow(extClassify(ext.bridge), PRIORITY.fromIntegration, [eq('in_port', ext.phyPort.ofport)], [NORMAL]);
      out.flow(extClassify(ext.bridge), PRIORITY.miss, [], [NORMAL]);
    }
  },
};
