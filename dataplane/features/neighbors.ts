// Remote neighbors. L2 (a VM in a subnet this host has ports in): unicast to the neighbor's host
// over the tunnel of its network's type, and ARP responder entries for its addresses. L2 and L3
// (a VM in another subnet of a router): the next-hop entry routing uses when its subnet is
// routed (features/routing.ts); an L3 neighbor is off-link here, so it answers no ARP. The L2
// and L3 entries of one VM build the same next-hop flow, so they never conflict. Neighbors on
// this host are local ports and get nothing here.
import { macValue } from '../fields.js';
import { eq, sharedReg } from '../flow.js';
import type { Feature } from '../feature.js';
import { PRIORITY, REGISTERS, TABLES } from '../pipeline.js';
import { networkOf } from '../topology.js';
import { arpEntry, isIPv4 } from './arp-responder.js';
import { routeEntry } from './routing.js';
import { tunnelOutput } from './tunnels.js';

export const neighbors: Feature = {
  name: 'neighbors', namespace: 'neighbor', programmer: 'neighbor', owners: { resource: 'neighbor' },
  purpose: 'unicast to remote L2 neighbors over their tunnel, and their ARP answers',
  build(ctx, key, out) {
    const n = ctx.view.get('neighbor', key);
    if (!n || n.local) return;
    // Networks seen (almost always one: an array, not a set per neighbor).
    const vnis: number[] = [];
    // One value for the unicast match and the ARP answer.
    const mac = macValue(n.mac);
    for (const f of n.fixedIps) {
      const subnet = ctx.view.get('subnet', f.subnetId);
      const net = subnet ? networkOf(subnet) : null;
      if (!net) continue;
      routeEntry(ctx, out, subnet!, f.ip, n.mac, n.hostIp);
      if (n.type !== 'L2') continue;
      if (!vnis.includes(net.vni)) {
        vnis.push(net.vni);
        out.flow(TABLES.REMOTE_L2, PRIORITY.match, [sharedReg(REGISTERS.network, net.vni), eq('dl_dst', mac)], tunnelOutput(net.encap, net.vni, n.hostIp));
      }
      if (isIPv4(f.ip)) arpEntry(out, net.vni, f.ip, mac);
    }
  },
};
