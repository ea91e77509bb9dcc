// A small simulated cloud: hosts on one simulated underlay, each with its own agent on the
// `sim` dataplane, driven only through gRPC goal states as a controller drives them.
import { resolveConfig } from '../../agent/config.js';
import { type Agent, startAgent } from '../../agent/daemon.js';
import { silentLogger } from '../../agent/log.js';
import { pushOne } from './agents.js';
import { SimBackend } from '../../dataplane/backends/sim.js';
import { FlowDataplane } from '../../dataplane/flow-dataplane.js';
import { hostNetworking, parseBridgeMappings } from '../../dataplane/external.js';
import { Fabric, type SimHost } from '../../ovs-sim/index.js';
import { OperationType } from '../../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../../proto/gen/alcor/goalstate.js';
import type { GoalStateOperationReply } from '../../proto/gen/alcor/goalstateprovisioner.js';

export interface CloudHost {
  host: SimHost;
  agent: Agent;
  dataplane: FlowDataplane;
  push(gs: GoalStateV2): Promise<GoalStateOperationReply>;
}

export async function startCloud(
  ips: string[], dhcp = { leaseSeconds: 3600, domain: 'cloud.internal', dns: ['10.9.9.9'], underlayMtu: 1500 }, bridgeMappings = '',
  /** The fabric to use (one with a test clock), and more agent configuration (a controller to ask on demand). */
  opts: { fabric?: Fabric; more?: Record<string, string> } = {},
): Promise<{ fabric: Fabric; hosts: CloudHost[]; stop(): Promise<void> }> {
  const fabric = opts.fabric ?? new Fabric();
  const hosts: CloudHost[] = [];
  for (const [i, ip] of ips.entries()) {
    const host = fabric.addHost(`host${i + 1}`, ip);
    const dataplane = new FlowDataplane(new SimBackend(host), undefined, dhcp, undefined, undefined, hostNetworking(ip, parseBridgeMappings(bridgeMappings)));
    const agent = await startAgent(resolveConfig({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: ip, dataplane: 'dry-run', ...opts.more }), silentLogger(), dataplane);
    const addr = `127.0.0.1:${agent.grpcPort}`;
    hosts.push({
      host, agent, dataplane,
      push: (gs) => pushOne(addr, gs),
    });
  }
  return { fabric, hosts, stop: async () => { for (const h of hosts) await h.agent.stop(); } };
}

/** Turn every state of a goal state into a DELETE. */
export function asDelete(gs: GoalStateV2): GoalStateV2 {
  const copy = GoalStateV2.fromJSON(GoalStateV2.toJSON(gs));
  for (const m of [copy.vpcStates, copy.subnetStates, copy.portStates, copy.dhcpStates, copy.neighborStates, copy.securityGroupStates, copy.routerStates, copy.gatewayStates]) {
    for (const s of Object.values(m)) s.operationType = OperationType.DELETE;
  }
  return copy;
}
