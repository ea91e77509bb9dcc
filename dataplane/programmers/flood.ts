// Broadcast and multicast per network (other than ARP and DHCP, which earlier tables consume):
// from a local port, one copy to every remote host with ports in the network (head-end
// replication) and to every other local port; from a tunnel, to local ports only.
import { type Flow, cookieFor } from '../flow.js';
import { PRIORITY, TABLES } from '../pipeline.js';
import type { ProgramContext } from '../program-context.js';
import { portNetwork } from './ports.js';
import { MULTICAST } from './pipeline.js';
import { tunnelOutput } from './tunnels.js';

export function floodFlows(ctx: ProgramContext, vni: number, owner: string): Flow[] {
  const subnets = ctx.topology.subnetsOfVni(vni);
  if (subnets.length === 0) return [];
  const encap = subnets[0]!.networkType === 'geneve' ? 'geneve' : 'vxlan';
  const hosts = new Set<string>();
  const ofports = new Set<number>();
  for (const s of subnets) {
    for (const h of ctx.topology.remoteHostsOf(s.id)) hosts.add(h);
    for (const id of ctx.topology.portsOf(s.id)) {
      const port = ctx.view.get('port', id);
      const ofport = ctx.bindings.ofport(id);
      if (port && ofport !== undefined && port.adminStateUp && portNetwork(ctx, port)?.vni === vni) ofports.add(ofport);
    }
  }
  const cookie = cookieFor('flood', owner);
  const match = `metadata=${vni},dl_dst=${MULTICAST}`;
  const flows: Flow[] = [];
  if (hosts.size > 0) {
    const outs = [...hosts].sort().map((h) => tunnelOutput(encap, vni, h));
    flows.push({ table: TABLES.REMOTE_L2.id, priority: PRIORITY.broadcast, match, actions: `${outs.join(',')},resubmit(,${TABLES.LOCAL_L2.id})`, cookie });
  }
  if (ofports.size > 0) {
    const outs = [...ofports].sort((a, b) => a - b).map((p) => `output:${p}`);
    flows.push({ table: TABLES.LOCAL_L2.id, priority: PRIORITY.broadcast, match, actions: outs.join(','), cookie });
  }
  return flows;
}
