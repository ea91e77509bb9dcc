// Fixed flows: each table's miss, the links between stages, the output table, and the punts to
// the agent.
import { CT_STATE, ETH_TYPE, IP_PROTO } from '../fields.js';
import { type Action, eq, masked, resubmit } from '../flow.js';
import type { Feature } from '../feature.js';
import { PRIORITY, PUNT, REGISTERS, TABLES } from '../pipeline.js';
import { ARP_REPLY_TAIL } from './arp-responder.js';

/** Broadcast and multicast destinations: the group bit of the first octet. */
export const MULTICAST_BIT = 0x01_00_00_00_00_00n;
export const multicast = () => masked('dl_dst', MULTICAST_BIT, MULTICAST_BIT);

const punt = (userdata: string): Action => ({ type: 'controller', userdata: userdata.slice(2) });

/** IPv6 neighbor discovery (router/neighbor solicitation and advertisement, redirect excluded). */
const ND_TYPES = [133, 134, 135, 136];
const nd = (type: number) => [eq('dl_type', ETH_TYPE.ipv6), eq('nw_proto', IP_PROTO.icmpv6), eq('icmp_type', type)];

export const pipeline: Feature = {
  name: 'pipeline', namespace: 'pipeline', programmer: 'pipeline', owners: { singleton: true },
  purpose: 'fixed flows of the pipeline: table misses, stage links, the output table, punts',
  build(_ctx, _key, out) {
    out.flow(TABLES.CLASSIFY, PRIORITY.miss, [], []);
    // Security groups (only ports with groups reach port_security, sg_egress's conntrack entry
    // and sg_ingress's): DHCP to the agent and neighbor discovery pass whatever the rules.
    out.flow(TABLES.PORT_SECURITY, PRIORITY.miss, [], [resubmit(TABLES.SG_EGRESS)]);
    out.flow(TABLES.SG_EGRESS, PRIORITY.guard, [eq('dl_type', ETH_TYPE.ip), eq('nw_proto', IP_PROTO.udp), eq('tp_src', 68), eq('tp_dst', 67)], [resubmit(TABLES.ARP_RESPONDER)], 'sg');
    for (const type of ND_TYPES) {
      out.flow(TABLES.SG_EGRESS, PRIORITY.guard, nd(type), [resubmit(TABLES.ARP_RESPONDER)], 'sg');
      out.flow(TABLES.SG_INGRESS, PRIORITY.guard, nd(type), [resubmit(TABLES.OUTPUT)], 'sg');
    }
    out.flow(TABLES.SG_EGRESS, PRIORITY.miss, [], [resubmit(TABLES.ARP_RESPONDER)]);
    out.flow(TABLES.SG_INGRESS, PRIORITY.miss, [], [resubmit(TABLES.OUTPUT)]);
    for (const [table, next] of [[TABLES.SG_EGRESS_RULES, TABLES.ARP_RESPONDER], [TABLES.SG_INGRESS_RULES, TABLES.OUTPUT]] as const) {
      out.flow(table, PRIORITY.ctInvalid, [masked('ct_state', CT_STATE.inv | CT_STATE.trk, CT_STATE.inv | CT_STATE.trk)], [], 'sg');
      // Replies and related packets (ICMP errors) of connections conntrack holds.
      out.flow(table, PRIORITY.ctReply, [masked('ct_state', CT_STATE.est | CT_STATE.rpl | CT_STATE.trk, CT_STATE.est | CT_STATE.rpl | CT_STATE.trk)], [resubmit(next)], 'sg');
      out.flow(table, PRIORITY.ctReply, [masked('ct_state', CT_STATE.rel | CT_STATE.trk, CT_STATE.rel | CT_STATE.trk)], [resubmit(next)], 'sg');
      out.flow(table, PRIORITY.miss, [], []);
    }
    // ARP: unknown addresses go up (counted, later the on-demand engine); broadcast ARP that is
    // not a request is not flooded.
    out.flow(TABLES.ARP_RESPONDER, PRIORITY.punt, [eq('dl_type', ETH_TYPE.arp), eq('arp_op', 1)], [punt(PUNT.arpMiss)], 'arp');
    out.flow(TABLES.ARP_RESPONDER, PRIORITY.broadcast, [eq('dl_type', ETH_TYPE.arp), multicast()], [], 'arp');
    out.flow(TABLES.ARP_RESPONDER, PRIORITY.miss, [], [resubmit(TABLES.DHCP)]);
    out.flow(TABLES.ARP_REPLY, PRIORITY.match, [eq('dl_type', ETH_TYPE.arp)], ARP_REPLY_TAIL, 'arp');
    out.flow(TABLES.ARP_REPLY, PRIORITY.miss, [], []);
    // DHCP: requests to the agent's server; replies from VMs (rogue servers) dropped.
    const udp = [eq('dl_type', ETH_TYPE.ip), eq('nw_proto', IP_PROTO.udp)];
    out.flow(TABLES.DHCP, PRIORITY.match, [...udp, eq('tp_src', 68), eq('tp_dst', 67)], [punt(PUNT.dhcp)], 'dhcp');
    out.flow(TABLES.DHCP, PRIORITY.match, [...udp, eq('tp_src', 67), eq('tp_dst', 68)], [], 'dhcp');
    out.flow(TABLES.DHCP, PRIORITY.miss, [], [resubmit(TABLES.L3_GATEWAY)]);
    // Not addressed to a router's gateway MAC: switched (L2) as before.
    out.flow(TABLES.L3_GATEWAY, PRIORITY.miss, [], [resubmit(TABLES.REMOTE_L2)]);
    out.flow(TABLES.L3_ROUTE, PRIORITY.miss, [], []);
    out.flow(TABLES.DVR_RESTORE, PRIORITY.miss, [], [resubmit(TABLES.LOCAL_L2)]);
    out.flow(TABLES.REMOTE_L2, PRIORITY.miss, [], [resubmit(TABLES.LOCAL_L2)]);
    out.flow(TABLES.LOCAL_L2, PRIORITY.miss, [], []);
    out.flow(TABLES.OUTPUT, PRIORITY.miss, [], [{ type: 'output_reg', src: REGISTERS.outPort }]);
  },
};
