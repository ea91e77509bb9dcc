// The on-demand path's flows (docs/on-demand.md) and every local port's punt limit. Unicast from
// a local port to a MAC nobody here knows (local_l2's miss; Zeta networks send theirs to the
// gateway first, at a higher priority), for an IPv4 address of its subnet, goes to the agent
// through the port's meter; the agent asks the controller (dataplane/on-demand.ts). A port's ARP
// misses and DHCP requests go up through the same meter, so one VM cannot flood the agent or
// take another VM's share of it: the switch drops what exceeds the port's rate.
import { ETH_TYPE, IP_PROTO, ipv4Value, prefixMask } from '../fields.js';
import { type Action, eq, masked, reg, resubmit } from '../flow.js';
import type { Feature } from '../feature.js';
import { PRIORITY, PUNT, PUNT_LIMITS, REGISTERS, TABLES } from '../pipeline.js';
import { networkOf } from '../topology.js';
import { multicast } from './pipeline.js';

const punt = (userdata: string): Action => ({ type: 'controller', userdata: userdata.slice(2) });

/** The meter of a local port's punts. */
export const puntMeterId = (ofport: number): number => PUNT_LIMITS.meterBase + ofport;

export const onDemandPipeline: Feature = {
  name: 'on-demand', namespace: 'on-demand', programmer: 'onDemand', owners: { singleton: true },
  purpose: 'unknown unicast from local ports to the on_demand table; from tunnels and multicast dropped there',
  build(_ctx, _key, out) {
    out.flow(TABLES.LOCAL_L2, PRIORITY.fallthrough, [], [resubmit(TABLES.ON_DEMAND)]);
    out.flow(TABLES.ON_DEMAND, PRIORITY.guard, [reg(REGISTERS.inPort, 0)], []);
    out.flow(TABLES.ON_DEMAND, PRIORITY.guard, [multicast()], []);
    out.flow(TABLES.ON_DEMAND, PRIORITY.miss, [], []);
    out.flow(TABLES.ON_DEMAND_PUNT, PRIORITY.miss, [], []);
  },
};

/** A subnet's addresses are asked about on demand (IPv4; a Zeta network's never get here). */
export const onDemandSubnets: Feature = {
  name: 'on-demand-subnets', namespace: 'on-demand-subnet', programmer: 'onDemand', owners: { resource: 'subnet' },
  purpose: 'unknown unicast to an address of the subnet goes to the on-demand punt',
  build(ctx, key, out) {
    const subnet = ctx.view.get('subnet', key);
    const net = subnet ? networkOf(subnet) : null;
    if (!subnet || !net || subnet.cidr.family !== 4) return;
    const mask = prefixMask(subnet.cidr.prefix);
    out.flow(TABLES.ON_DEMAND, PRIORITY.match, [reg(REGISTERS.network, net.vni), eq('dl_type', ETH_TYPE.ip), masked('nw_dst', ipv4Value(subnet.cidr.address), mask)], [resubmit(TABLES.ON_DEMAND_PUNT)]);
  },
};

export const puntLimits: Feature = {
  name: 'punt-limits', namespace: 'punt-limit', programmer: 'onDemand', owners: { resource: 'port' },
  purpose: 'a local port\'s punt meter and its metered punts: ARP misses, DHCP requests, on-demand',
  build(ctx, key, out) {
    const port = ctx.view.get('port', key);
    if (!port?.adminStateUp) return;
    const ofport = ctx.bindings.ofport(port.id);
    if (ofport === undefined) return;
    const id = puntMeterId(ofport);
    out.meter({ id, unit: 'pktps', rate: PUNT_LIMITS.meterPktps, burst: PUNT_LIMITS.meterBurst });
    const me = reg(REGISTERS.inPort, ofport);
    const meter: Action = { type: 'meter', id };
    // The cookie of each punt names its cause (arp, dhcp, on-demand), as the shared punts do.
    out.flow(TABLES.ARP_RESPONDER, PRIORITY.arpPuntMetered, [me, eq('dl_type', ETH_TYPE.arp), eq('arp_op', 1)], [meter, punt(PUNT.arpMiss)], 'arp');
    out.flow(TABLES.DHCP, PRIORITY.dhcpPuntMetered, [me, eq('dl_type', ETH_TYPE.ip), eq('nw_proto', IP_PROTO.udp), eq('tp_src', 68), eq('tp_dst', 67)], [meter, punt(PUNT.dhcp)], 'dhcp');
    out.flow(TABLES.ON_DEMAND_PUNT, PRIORITY.match, [me], [meter, punt(PUNT.onDemand)]);
  },
};
