// The shapes real Alcor controllers send (wire-contract reference §6.5 items 1–5), pushed over
// real gRPC the way NCM does it (one new stream per goal state), against an agent on the
// dry-run dataplane with host IP 10.0.0.11.
import { readFileSync, readdirSync } from 'node:fs';
import test from 'ava';
import { OperationStatus, OperationType } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { resolveConfig } from '../agent/config.js';
import { startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';

const dir = new URL('./fixtures/ncm-sequence/', import.meta.url);
const sequence = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

async function withAgent<T>(fn: (addr: string, agent: Awaited<ReturnType<typeof startAgent>>) => Promise<T>): Promise<T> {
  const agent = await startAgent(resolveConfig({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: '10.0.0.11' }), silentLogger());
  try {
    return await fn(`127.0.0.1:${agent.grpcPort}`, agent);
  } finally {
    await agent.stop();
  }
}

test('the NCM port lifecycle sequence applies resource by resource', async (t) => {
  t.is(sequence.length, 6);
  await withAgent(async (addr, agent) => {
    const client = makeClient(addr);
    for (const file of sequence) {
      const gs = GoalStateV2.fromJSON(JSON.parse(readFileSync(new URL(file, dir), 'utf8')));
      const [reply] = await pushStream(client, [gs]);
      t.truthy(reply, file);
      const bad = reply!.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS);
      t.deepEqual(bad, [], file);
      const expected = Object.keys(gs.vpcStates).length + Object.keys(gs.subnetStates).length + Object.keys(gs.portStates).length
        + Object.keys(gs.neighborStates).length + Object.keys(gs.dhcpStates).length + Object.keys(gs.securityGroupStates).length
        + Object.keys(gs.routerStates).length;
      t.is(reply!.operationStatuses.length, expected, `${file}: one status per resource`);
    }
    client.close();
    const s = agent.store;
    // After 06 deleted P3 (port, DHCP by a fresh random id, neighbor), P1 remains.
    t.deepEqual([...s.list('port')].map((p) => p.id), ['P1']);
    t.deepEqual([...s.list('dhcp')].map((d) => d.key), ['00:aa:bb:15:eb:3f/10.1.0.5']);
    t.deepEqual([...s.list('neighbor')].map((n) => n.key).sort(), ['L2/P0', 'L2/P1', 'L2/P2', 'L3/Q1']);
    // The router arrived with its operation unset (INFO) and was applied.
    const router = s.get('router', 'R');
    t.is(router?.hostDvrMac, 'fe:16:11:00:00:00');
    t.is(router?.subnetRoutingTables[0]?.rules[0]?.destinationType, 'VPC_GW');
    // Neighbors on this host are local ports; others are tunnel destinations.
    t.true(s.get('neighbor', 'L2/P1')?.local);
    t.false(s.get('neighbor', 'L2/P0')?.local);
    t.is(s.get('neighbor', 'L2/P0')?.mac, '00:00:0a:01:02:03');
    // The SG update (revision 2) replaced the rules.
    t.is(s.get('securityGroup', 'SG')?.rules.length, 3);
    t.is(s.get('securityGroup', 'SG')?.revision, 2);
  });
});

/** The controllers' Test Controller payload: 10 VPCs × 2 subnets × N ports, unpadded MACs. */
function testControllerState(hostIp: string, portsPerSubnet: number): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({ hostResources: { [hostIp]: { resources: [] } } });
  const hex = (n: number): string => n.toString(16);
  for (let vpc = 1; vpc <= 10; vpc++) {
    const n = String(vpc).padStart(3, '0');
    const vpcId = `2b08a5bc-b718-11ea-b3de-111111111${n}`;
    gs.vpcStates[vpcId] = { operationType: OperationType.INFO, configuration: {
      revisionNumber: 2, requestId: '', id: vpcId, updateType: 0, projectId: 'alcor_testing_project', name: `vpc${vpc}`,
      cidr: '10.0.0.0/16', tunnelId: 20 + vpc, gatewayIds: [] } };
    for (const [si, prefix] of [[0, 10], [1, 11]] as const) {
      const subnetId = `27330ae4-b718-11ea-b3df-111111111${n}${si}`;
      gs.subnetStates[subnetId] = { operationType: OperationType.INFO, configuration: {
        revisionNumber: 2, requestId: '', id: subnetId, updateType: 0, networkType: 0, vpcId, name: `subnet${si}`,
        cidr: `${prefix}.0.0.0/24`, tunnelId: String(20 + vpc), gateway: { ipAddress: '0.0.0.0', macAddress: '6c:dd:ee:0:0:40' },
        dhcpEnable: false, extraDhcpOptions: [], dnsEntryList: [], availabilityZone: '' } };
      for (let i = 2; i < portsPerSubnet + 2; i++) {
        const ip = `${prefix}.0.${Math.floor(i / 100)}.${i % 100}`;
        const portId = `${hex(vpc)}${si}111111-b718-11ea-b3de-${String(i).padStart(12, '0')}`;
        const mac = `${hex(Math.floor(vpc / 10000))}:${hex(Math.floor((vpc % 10000) / 100))}:${hex(prefix)}:${hex(0)}:${hex(Math.floor(i / 256))}:${hex(i % 256)}`;
        gs.portStates[portId] = { operationType: OperationType.CREATE, configuration: {
          revisionNumber: 2, requestId: '', id: portId, updateType: 1, vpcId, name: `tap${portId}`.slice(0, 14), deviceId: '', deviceOwner: '',
          macAddress: mac, adminStateUp: true, hostInfo: undefined, fixedIps: [{ subnetId, ipAddress: ip }], elasticIps: [],
          allowAddressPairs: [], securityGroupIds: [{ id: '2' }] } };
        gs.neighborStates[`${portId}_n`] = { operationType: OperationType.CREATE, configuration: {
          revisionNumber: 2, requestId: '', id: `${portId}_n`, updateType: 0, vpcId, name: '', macAddress: mac,
          hostMacAddress: '6c:dd:ee:0:0:11', hostIpAddress: hostIp,
          fixedIps: [{ neighborType: 0, subnetId, ipAddress: ip, arionGroup: 'group1', tunnelId: 20 + vpc }], allowAddressPairs: [], securityGroupIds: [] } };
      }
    }
  }
  return gs;
}

test('the Test Controller multi-VPC payload (hundreds of ports, unpadded MACs, dangling SG "2") applies', async (t) => {
  await withAgent(async (addr, agent) => {
    const gs = testControllerState('10.0.0.11', 30);
    const client = makeClient(addr);
    const [reply] = await pushStream(client, [gs]);
    client.close();
    const statuses = reply!.operationStatuses;
    t.is(statuses.length, 10 + 20 + 600 + 600);
    t.deepEqual(statuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS), []);
    t.is(agent.store.count('port'), 600);
    // Every neighbor is this host's own port: local, never a tunnel.
    t.true([...agent.store.list('neighbor')].every((nb) => nb.local));
    // Unpadded MACs are normalized; the dangling SG reference is a warning, not a refusal.
    const port = agent.store.get('port', Object.keys(gs.portStates)[0]!)!;
    t.regex(port.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    t.regex(statuses.find((s) => s.resourceType === 2)!.statusDetail, /security group 2 is not known/);
    // Re-sending the identical state is SUCCESS and changes nothing.
    let events = 0;
    agent.store.subscribe((e) => { events += e.length; });
    const again = makeClient(addr);
    const [second] = await pushStream(again, [gs]);
    again.close();
    t.true(second!.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));
    t.is(events, 0);
  });
});
