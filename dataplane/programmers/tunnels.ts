// Traffic arriving from a tunnel: the VNI becomes the network, and it goes straight to local
// delivery (split horizon: what came from a remote host is never sent to another one).
import { type Flow, cookieFor } from '../flow.js';
import { PRIORITY, TABLES, TUNNEL_PORTS } from '../pipeline.js';

export function tunnelFlows(): Flow[] {
  return Object.entries(TUNNEL_PORTS).map(([encap, port]) => ({
    table: TABLES.CLASSIFY.id, priority: PRIORITY.match, match: `in_port=${port.ofport}`,
    actions: `move:NXM_NX_TUN_ID[0..23]->OXM_OF_METADATA[0..23],resubmit(,${TABLES.LOCAL_L2.id})`,
    cookie: cookieFor('tunnel', encap),
  }));
}

/** Actions that send the packet to a remote host of a network. */
export function tunnelOutput(encap: keyof typeof TUNNEL_PORTS, vni: number, hostIp: string): string {
  return `set_field:${vni}->tun_id,set_field:${hostIp}->tun_dst,output:${TUNNEL_PORTS[encap].ofport}`;
}
