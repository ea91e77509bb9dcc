// Remote L2 neighbors: unicast to the neighbor's host over the tunnel of its network's type,
// and ARP responder entries for its addresses. Neighbors on this host are local ports and get
// nothing here; L3 neighbors are for routing (a later programmer).
import { type Flow, cookieFor } from '../flow.js';
import { PRIORITY, TABLES } from '../pipeline.js';
import type { Neighbor } from '../model.js';
import type { ProgramContext } from '../program-context.js';
import { type Network, networkOf } from '../topology.js';
import { arpEntry, isIPv4 } from './arp-responder.js';
import { tunnelOutput } from './tunnels.js';

export function neighborFlows(ctx: ProgramContext, n: Neighbor, owner: string): Flow[] {
  if (n.local || n.type !== 'L2') return [];
  const flows: Flow[] = [];
  const nets = new Map<number, Network>();
  for (const f of n.fixedIps) {
    const subnet = ctx.view.get('subnet', f.subnetId);
    const net = subnet ? networkOf(subnet) : null;
    if (!net) continue;
    if (!nets.has(net.vni)) {
      nets.set(net.vni, net);
      flows.push({
        table: TABLES.REMOTE_L2.id, priority: PRIORITY.match, match: `metadata=${net.vni},dl_dst=${n.mac}`,
        actions: tunnelOutput(net.encap, net.vni, n.hostIp), cookie: cookieFor('neighbor', owner),
      });
    }
    if (isIPv4(f.ip)) flows.push(arpEntry(net.vni, f.ip, n.mac, owner));
  }
  return flows;
}
