// A routed cloud with a way out: routers with external gateways (our extension), each host with
// its share of SNAT addresses, elastic IPs on ports. Shared by the simulator and real-OVS NAT tests.
import type { GoalStateV2 } from '../../proto/gen/alcor/goalstate.js';
import { type RoutedCloud, goalStateFor } from './routed-cloud.js';

export const EXT_CIDR = '203.0.113.0/24';
export const NEXT_HOP = { ip: '203.0.113.1', mac: '02:00:00:00:ff:01' };
/** An address on the internet behind the next hop. */
export const INTERNET_HOST = '198.51.100.7';

export interface Slice { ip: string; portMin: number; portMax: number }

export interface NatSpec {
  /** router → host → its slices there */
  slices: Record<string, Record<string, Slice[]>>;
  /** port → elastic IP (of its first fixed IP) */
  eips: Record<string, string>;
  /** hosts whose goal states leave next_hop_mac empty (resolved by ARP) */
  resolveNextHopOn?: string[];
}

/** The routed cloud's goal state for a host, with the routers' external gateways and the ports' elastic IPs. */
export function natGoalStateFor(cloud: RoutedCloud, nat: NatSpec, host: string): GoalStateV2 {
  const gs = goalStateFor(cloud, host);
  for (const [key, r] of Object.entries(gs.routerStates)) {
    const c = r.configuration!;
    c.externalGateway = {
      externalNetwork: 'ext', externalCidr: EXT_CIDR, nextHopIp: NEXT_HOP.ip,
      nextHopMac: nat.resolveNextHopOn?.includes(host) ? '' : NEXT_HOP.mac,
      snat: (nat.slices[c.id]?.[host] ?? []).map((s) => ({ ip: s.ip, portMin: s.portMin, portMax: s.portMax })),
    };
    gs.routerStates[key] = r;
  }
  for (const [id, p] of Object.entries(gs.portStates)) {
    const eip = nat.eips[id];
    if (eip) p.configuration!.elasticIps = [{ elasticIp: eip, fixedIp: p.configuration!.fixedIps[0]!.ipAddress }];
  }
  return gs;
}
