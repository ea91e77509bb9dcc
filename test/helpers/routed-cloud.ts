// A routed VPC as DPM describes it to each host: subnets joined by a router (with its per-host
// DVR MAC and routing rules), the host's own ports, L2 neighbors for the subnets the host has
// ports in, and L3 neighbors for the VMs of the router's other subnets. Used by the simulator
// and the real-OVS routing tests.
import { GoalStateV2 } from '../../proto/gen/alcor/goalstate.js';
import type { RouterState } from '../../proto/gen/alcor/router.js';
import { neighborState, portState, subnetState } from './agents.js';

export interface SubnetSpec { id: string; vpc: string; cidr: string; gw: string; gwMac: string; vni: number; geneve: boolean }
export interface VmSpec { id: string; mac: string; ip: string; subnet: string; host: string }
export interface RuleSpec { id: string; destination: string; nextHop: string; priority?: number; internet?: boolean }
export interface RouterSpec { id: string; subnets: string[]; rules?: Record<string, RuleSpec[]>; dvrMac?: string }

export interface RoutedCloud { subnets: SubnetSpec[]; vms: VmSpec[]; routers: RouterSpec[] }

export function routerState(r: RouterSpec, op = 0, dvrMac = r.dvrMac ?? 'fe:16:11:00:00:00'): RouterState {
  return {
    operationType: op,
    configuration: {
      revisionNumber: 1, requestId: '', id: r.id, updateType: 0, hostDvrMacAddress: dvrMac, externalGateway: undefined,
      subnetRoutingTables: r.subnets.map((s) => ({
        subnetId: s,
        routingRules: (r.rules?.[s] ?? []).map((x) => ({
          operationType: 0, id: x.id, name: x.id, destination: x.destination, nextHopIp: x.nextHop, priority: x.priority ?? 0,
          routingRuleExtraInfo: { destinationType: x.internet ? 0 : 1, nextHopMac: '' },
        })),
      })),
    },
  };
}

/** Every host's DVR MAC differs in its last octets, as the routing design wants. */
export const dvrMacOf = (host: string): string => {
  const last = Number(host.split('.').at(-1));
  return `fe:16:11:00:00:${last.toString(16).padStart(2, '0')}`;
};

export function goalStateFor(cloud: RoutedCloud, host: string): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({ hostResources: { [host]: { resources: [] } } });
  for (const s of cloud.subnets) {
    gs.subnetStates[s.id] = subnetState(s.id, { vpcId: s.vpc, cidr: s.cidr, tunnelId: String(s.vni), networkType: s.geneve ? 3 : 0, gateway: { ipAddress: s.gw, macAddress: s.gwMac } });
  }
  const mySubnets = new Set(cloud.vms.filter((v) => v.host === host).map((v) => v.subnet));
  for (const v of cloud.vms) {
    const vpc = cloud.subnets.find((s) => s.id === v.subnet)!.vpc;
    if (v.host === host) gs.portStates[v.id] = portState(v.id, { vpcId: vpc, macAddress: v.mac, fixedIps: [{ subnetId: v.subnet, ipAddress: v.ip }] });
    const fixed = (type: number) => [{ neighborType: type, subnetId: v.subnet, ipAddress: v.ip, arionGroup: '', tunnelId: 0 }];
    if (mySubnets.has(v.subnet)) gs.neighborStates[`L2/${v.id}`] = neighborState(v.id, 0, { vpcId: vpc, macAddress: v.mac, hostIpAddress: v.host, fixedIps: fixed(0) });
    // L3: a VM of another subnet of a router that joins one of this host's subnets.
    const l3 = cloud.routers.some((r) => r.subnets.includes(v.subnet) && r.subnets.some((s) => s !== v.subnet && mySubnets.has(s)));
    if (l3) gs.neighborStates[`L3/${v.id}`] = neighborState(v.id, 0, { vpcId: vpc, macAddress: v.mac, hostIpAddress: v.host, fixedIps: fixed(1) });
  }
  for (const r of cloud.routers) {
    if (r.subnets.some((s) => mySubnets.has(s))) gs.routerStates[`${host}/${r.id}`] = routerState(r, 0, r.dvrMac ?? dvrMacOf(host));
  }
  return gs;
}

/** Parse a tunnel packet on the underlay: VNI, encapsulation and the inner frame. */
export function decap(outer: Uint8Array): { vni: number; type: 'geneve' | 'vxlan'; inner: Uint8Array; dst: string } | null {
  const ihl = (outer[14]! & 0x0f) * 4;
  const udp = 14 + ihl;
  const port = (outer[udp + 2]! << 8) | outer[udp + 3]!;
  const tun = udp + 8;
  const dst = [...outer.subarray(30, 34)].join('.');
  const vni = (outer[tun + 4]! << 16) | (outer[tun + 5]! << 8) | outer[tun + 6]!;
  if (port === 4789) return { vni, type: 'vxlan', inner: outer.subarray(tun + 8), dst };
  if (port === 6081) return { vni, type: 'geneve', inner: outer.subarray(tun + 8 + (outer[tun]! & 0x3f) * 4), dst };
  return null;
}

export const macOf = (b: Uint8Array, at: number): string => [...b.subarray(at, at + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
