// Local VM ports: classification into their network (table classify), delivery by MAC (table
// local_l2: the output register, then the policy stage), and ARP responder entries for their
// addresses, and the next-hop entries of its addresses in routed subnets. A port's network is that of the subnet of its first fixed IP; until its interface
// is bound to an OpenFlow port it has no flows.
import { ETH_TYPE, ipv4Value, macValue } from '../fields.js';
import { eq, load, reg, resubmit, setField } from '../flow.js';
import type { BuildContext, Feature } from '../feature.js';
import type { Port } from '../model.js';
import { PRIORITY, REGISTERS, TABLES } from '../pipeline.js';
import { type Network, networkOf } from '../topology.js';
import { arpEntry, isIPv4 } from './arp-responder.js';
import { routeEntry } from './routing.js';
import { isProtected } from './security-groups.js';

export function portNetwork(ctx: BuildContext, port: Port): Network | null {
  const first = port.fixedIps[0];
  const subnet = first ? ctx.view.get('subnet', first.subnetId) : undefined;
  return subnet ? networkOf(subnet) : null;
}

export const ports: Feature = {
  name: 'ports', namespace: 'port', programmer: 'port', owners: { resource: 'port' },
  purpose: 'classification of, and delivery to, a local VM port, and its ARP answers',
  build(ctx, key, out) {
    const port = ctx.view.get('port', key);
    if (!port) return;
    const ofport = ctx.bindings.ofport(port.id);
    const net = portNetwork(ctx, port);
    if (ofport === undefined || net === null || !port.adminStateUp) return;
    out.flow(TABLES.CLASSIFY, PRIORITY.match, [eq('in_port', ofport)], [
      setField('metadata', net.vni), load(REGISTERS.inPort, ofport), resubmit(isProtected(ctx, port) ? TABLES.PORT_SECURITY : TABLES.ARP_RESPONDER),
    ]);
    out.flow(TABLES.LOCAL_L2, PRIORITY.match, [reg(REGISTERS.network, net.vni), eq('dl_dst', macValue(port.mac))], [
      load(REGISTERS.outPort, ofport), resubmit(isProtected(ctx, port) ? TABLES.SG_INGRESS : TABLES.OUTPUT),
    ]);
    const own = new Set<string>();
    for (const f of port.fixedIps) {
      if (!isIPv4(f.ip) || own.has(f.ip)) continue;
      own.add(f.ip);
      const subnet = ctx.view.get('subnet', f.subnetId);
      if (subnet && networkOf(subnet)?.vni === net.vni) routeEntry(ctx, out, subnet, f.ip, port.mac, null);
      arpEntry(out, net.vni, f.ip, port.mac);
      // A VM probing its own address (duplicate address detection) must get no answer.
      out.flow(TABLES.ARP_RESPONDER, PRIORITY.guard, [
        reg(REGISTERS.inPort, ofport), eq('dl_type', ETH_TYPE.arp), eq('arp_tpa', ipv4Value(f.ip)), eq('arp_op', 1),
      ], [], 'arp');
    }
    for (const pair of port.allowedAddressPairs) {
      if (pair.ip.includes('/') || !isIPv4(pair.ip) || own.has(pair.ip)) continue;
      own.add(pair.ip);
      arpEntry(out, net.vni, pair.ip, pair.mac ?? port.mac);
    }
  },
};
