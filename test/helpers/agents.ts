// Shared helpers: in-process agents on loopback, goal-state builders shaped like the controllers'.
import { createServer } from 'node:net';
import { type AgentConfig, resolveConfig } from '../../agent/config.js';
import { type Agent, startAgent } from '../../agent/daemon.js';
import { silentLogger } from '../../agent/log.js';
import { makeClient, pushStream } from '../../agent/push.js';
import type { GoalStateOperationReply } from '../../proto/gen/alcor/goalstateprovisioner.js';
import { GoalStateV2 } from '../../proto/gen/alcor/goalstate.js';
import type { NeighborState } from '../../proto/gen/alcor/neighbor.js';
import type { PortState } from '../../proto/gen/alcor/port.js';
import type { SubnetState } from '../../proto/gen/alcor/subnet.js';

export const HOST_IP = '10.0.0.11';

export async function withAgent<T>(fn: (agent: Agent, addr: string) => Promise<T>, over: Partial<Record<keyof AgentConfig, string | number>> = {}): Promise<T> {
  const agent = await startAgent(resolveConfig({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: HOST_IP, ...over }), silentLogger());
  try {
    return await fn(agent, `127.0.0.1:${agent.grpcPort}`);
  } finally {
    await agent.stop();
  }
}

/** One goal state on a new stream of a new channel, as NCM pushes: its one reply. */
export async function pushOne(addr: string, gs: GoalStateV2): Promise<GoalStateOperationReply> {
  const c = makeClient(addr);
  try {
    const [r] = await pushStream(c, [gs]);
    if (!r) throw new Error('the agent closed the stream without a reply');
    return r;
  } finally {
    c.close();
  }
}

/** A port nobody listens on, for child processes that need a fixed address. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function subnetState(id: string, over: Partial<NonNullable<SubnetState['configuration']>> = {}, op = 0): SubnetState {
  return {
    operationType: op,
    configuration: {
      revisionNumber: 1, requestId: '', id, updateType: 0, networkType: 0, vpcId: 'V', name: id, cidr: '10.1.0.0/24',
      tunnelId: '5001', gateway: { ipAddress: '10.1.0.1', macAddress: '6c:dd:ee:00:00:40' }, dhcpEnable: true,
      extraDhcpOptions: [], dnsEntryList: [], availabilityZone: '', ...over,
    },
  };
}

export function portState(id: string, over: Partial<NonNullable<PortState['configuration']>> = {}, op = 1): PortState {
  return {
    operationType: op,
    configuration: {
      revisionNumber: 1, requestId: '', id, updateType: 1, vpcId: 'V', name: '', deviceId: 'vm', deviceOwner: 'compute:nova',
      macAddress: 'fa:16:3e:00:00:01', adminStateUp: true, hostInfo: undefined,
      fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.5' }], allowAddressPairs: [], securityGroupIds: [], elasticIps: [], ...over,
    },
  };
}

export function neighborState(id: string, i: number, over: Partial<NonNullable<NeighborState['configuration']>> = {}, op = 1): NeighborState {
  return {
    operationType: op,
    configuration: {
      revisionNumber: 1, requestId: '', id, updateType: 0, vpcId: 'V', name: '',
      // 0x80 in the fourth octet: never a port's MAC of these helpers (one MAC, one owner).
      macAddress: `fa:16:3e:${(0x80 | ((i >> 16) & 0x7f)).toString(16)}:${((i >> 8) & 255).toString(16)}:${(i & 255).toString(16)}`,
      hostMacAddress: 'fa:16:3e:00:00:12', hostIpAddress: `10.0.${1 + ((i >> 8) & 127)}.${i & 255}`,
      fixedIps: [{ neighborType: 0, subnetId: 'S', ipAddress: `10.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`, arionGroup: '', tunnelId: 0 }],
      allowAddressPairs: [], securityGroupIds: [], ...over,
    },
  };
}

/** 1 port + N L2 neighbors in one subnet, keyed as DPM keys them. */
export function bigState(n: number, idSalt = '111111111111'): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({ hostResources: { [HOST_IP]: { resources: [] } } });
  gs.subnetStates.S = subnetState('S', { cidr: '10.0.0.0/8' });
  gs.portStates.P1 = portState('P1');
  // Another salt, other VMs: their MACs and addresses must differ too (one MAC, one owner).
  // Each salt its own block of 65,536 (62 blocks fit the address plan of neighborState).
  const offset = idSalt === '111111111111' ? 0 : (1 + (parseInt(idSalt.slice(-6), 16) % 61)) * 0x10000;
  for (let i = 0; i < n; i++) {
    const id = `${i.toString(16).padStart(8, '0')}-b718-11ea-b3de-${idSalt}`;
    gs.neighborStates[`L2/${id}`] = neighborState(id, i + offset);
  }
  return gs;
}
