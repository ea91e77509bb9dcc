// Local VM ports: classification into their network (table classify), delivery by MAC (table
// local_l2), and ARP responder entries for their addresses. A port's network is that of the
// subnet of its first fixed IP; until its interface is bound to an OpenFlow port it has no flows.
import { type Flow, cookieFor } from '../flow.js';
import { PRIORITY, TABLES } from '../pipeline.js';
import type { Port } from '../model.js';
import type { ProgramContext } from '../program-context.js';
import { type Network, networkOf } from '../topology.js';
import { arpEntry, isIPv4 } from './arp-responder.js';

export function portNetwork(ctx: ProgramContext, port: Port): Network | null {
  const first = port.fixedIps[0];
  const subnet = first ? ctx.view.get('subnet', first.subnetId) : undefined;
  return subnet ? networkOf(subnet) : null;
}

export function portFlows(ctx: ProgramContext, port: Port, owner: string): Flow[] {
  const ofport = ctx.bindings.ofport(port.id);
  const net = portNetwork(ctx, port);
  if (ofport === undefined || net === null || !port.adminStateUp) return [];
  const cookie = cookieFor('port', owner);
  const flows: Flow[] = [
    {
      table: TABLES.CLASSIFY.id, priority: PRIORITY.match, match: `in_port=${ofport}`,
      actions: `set_field:${net.vni}->metadata,load:${ofport}->NXM_NX_REG6[],resubmit(,${TABLES.ARP_RESPONDER.id})`,
      cookie,
    },
    {
      table: TABLES.LOCAL_L2.id, priority: PRIORITY.match, match: `metadata=${net.vni},dl_dst=${port.mac}`,
      actions: `output:${ofport}`, cookie,
    },
  ];
  const own = new Set<string>();
  for (const f of port.fixedIps) {
    if (!isIPv4(f.ip) || own.has(f.ip)) continue;
    own.add(f.ip);
    flows.push(arpEntry(net.vni, f.ip, port.mac, owner));
    // A VM probing its own address (duplicate address detection) must get no answer.
    flows.push({
      table: TABLES.ARP_RESPONDER.id, priority: PRIORITY.guard,
      match: `arp,reg6=${ofport},arp_tpa=${f.ip},arp_op=1`, actions: 'drop', cookie: cookieFor('arp', owner),
    });
  }
  for (const pair of port.allowedAddressPairs) {
    if (pair.ip.includes('/') || !isIPv4(pair.ip) || own.has(pair.ip)) continue;
    own.add(pair.ip);
    flows.push(arpEntry(net.vni, pair.ip, pair.mac ?? port.mac, owner));
  }
  return flows;
}
