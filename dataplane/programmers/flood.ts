// Broadcast and multicast per network (other than ARP and DHCP, which earlier tables consume):
// from a local port, one copy to every remote host with ports in the network (head-end
// replication) and to every other local port; from a tunnel, to local ports only.
import { type Flow, cookieFor } from '../flow.js';
import { PRIORITY, TABLES } from '../pipeline.js';
import type { Subnet } from '../model.js';
import type { ProgramContext } from '../program-context.js';
import { portNetwork } from './ports.js';
import { MULTICAST } from './pipeline.js';
import { tunnelOutput } from './tunnels.js';

/** Subnets sharing a VNI but not an encapsulation: the one with the smallest id decides. */
const encapOf = (subnets: Subnet[]): 'geneve' | 'vxlan' | null => {
  const first = subnets[0];
  return first ? (first.networkType === 'geneve' ? 'geneve' : 'vxlan') : null;
};

/** One copy to every remote host with L2 neighbors in the network, then local flooding. */
export function floodRemoteFlows(ctx: ProgramContext, vni: number, owner: string): Flow[] {
  const subnets = ctx.topology.subnetsOfVni(vni);
  const encap = encapOf(subnets);
  if (!encap) return [];
  const hosts = new Set<string>();
  for (const s of subnets) for (const h of ctx.topology.remoteHostsOf(s.id)) hosts.add(h);
  if (hosts.size === 0) return [];
  const outs = [...hosts].sort().map((h) => tunnelOutput(encap, vni, h));
  return [{
    table: TABLES.REMOTE_L2.id, priority: PRIORITY.broadcast, match: `metadata=${vni},dl_dst=${MULTICAST}`,
    actions: `${outs.join(',')},resubmit(,${TABLES.LOCAL_L2.id})`, cookie: cookieFor('flood', owner),
  }];
}

/** One copy to every bound local port of the network (OVS skips the input port). */
export function floodLocalFlows(ctx: ProgramContext, vni: number, owner: string): Flow[] {
  const ofports = new Set<number>();
  for (const s of ctx.topology.subnetsOfVni(vni)) {
    for (const id of ctx.topology.portsOf(s.id)) {
      const port = ctx.view.get('port', id);
      const ofport = ctx.bindings.ofport(id);
      if (port && ofport !== undefined && port.adminStateUp && portNetwork(ctx, port)?.vni === vni) ofports.add(ofport);
    }
  }
  if (ofports.size === 0) return [];
  return [{
    table: TABLES.LOCAL_L2.id, priority: PRIORITY.broadcast, match: `metadata=${vni},dl_dst=${MULTICAST}`,
    actions: [...ofports].sort((a, b) => a - b).map((p) => `output:${p}`).join(','), cookie: cookieFor('flood', owner),
  }];
}
