// ARP responder in flows (table arp_responder): a request from a local port for a known address
// of its network is answered in place and sent back out of the input port; it never reaches
// the agent or leaves the host. Entries come from local ports, remote neighbors and subnet
// gateways; the misses and guards are fixed pipeline flows (programmers/pipeline.ts).
import { type Flow, cookieFor, ipv4Hex, macHex } from '../flow.js';
import { PRIORITY, TABLES } from '../pipeline.js';
import type { Subnet } from '../model.js';
import type { ProgramContext } from '../program-context.js';
import { networkOf } from '../topology.js';

/** The reply built from the request: swap addresses, answer with `mac` for `ip`. */
export function arpReplyActions(mac: string, ip: string): string {
  return [
    'move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]',
    `mod_dl_src:${mac}`,
    'load:0x2->NXM_OF_ARP_OP[]',
    'move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]',
    'move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]',
    `load:${macHex(mac)}->NXM_NX_ARP_SHA[]`,
    `load:${ipv4Hex(ip)}->NXM_OF_ARP_SPA[]`,
    'IN_PORT',
  ].join(',');
}

export const isIPv4 = (ip: string): boolean => !ip.includes(':');

export function arpEntry(vni: number, ip: string, mac: string, owner: string): Flow {
  return {
    table: TABLES.ARP_RESPONDER.id, priority: PRIORITY.match,
    match: `arp,metadata=${vni},arp_tpa=${ip},arp_op=1`,
    actions: arpReplyActions(mac, ip), cookie: cookieFor('arp', owner),
  };
}

/** The subnet gateway answers ARP too (it is the default route of every VM). */
export function gatewayArpFlows(_ctx: ProgramContext, subnet: Subnet, owner: string): Flow[] {
  const net = networkOf(subnet);
  const { ip, mac } = subnet.gateway;
  if (!net || ip === null || mac === null || !isIPv4(ip) || ip === '0.0.0.0') return [];
  return [arpEntry(net.vni, ip, mac, owner)];
}
