// Several hosts, each with its own agent on the embedded simulator, on one simulated underlay,
// driven only through gRPC goal states: DHCP, pings on a host, across hosts over Geneve and over
// VXLAN, ARP answered without leaving the host, overlapping VPCs isolated, neighbor deletion,
// and delete-all back to the baseline.
import test from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { SimVm } from '../ovs-sim/index.js';
import { neighborState, portState, subnetState } from './helpers/agents.js';
import { asDelete, startCloud } from './helpers/sim-cloud.js';
import { formatFlow } from '../dataplane/flow-text.js';

const A = '10.0.0.11';
const B = '10.0.0.12';

interface VmSpec { id: string; mac: string; ip: string; subnet: string; vpc: string; host: string }
const vms: VmSpec[] = [
  { id: 'pa1', mac: 'fa:16:3e:00:0a:01', ip: '10.1.0.5', subnet: 'S', vpc: 'V1', host: A },
  { id: 'pa2', mac: 'fa:16:3e:00:0a:02', ip: '10.1.0.6', subnet: 'S', vpc: 'V1', host: A },
  { id: 'pb1', mac: 'fa:16:3e:00:0b:01', ip: '10.1.0.7', subnet: 'S', vpc: 'V1', host: B },
  { id: 'pax', mac: 'fa:16:3e:00:0a:10', ip: '10.2.0.5', subnet: 'X', vpc: 'V1', host: A },
  { id: 'pbx', mac: 'fa:16:3e:00:0b:10', ip: '10.2.0.7', subnet: 'X', vpc: 'V1', host: B },
  // A second VPC reusing the same addresses.
  { id: 'qa1', mac: 'fa:16:3e:00:1a:01', ip: '10.1.0.5', subnet: 'S2', vpc: 'V2', host: A },
  { id: 'qb1', mac: 'fa:16:3e:00:1b:01', ip: '10.1.0.7', subnet: 'S2', vpc: 'V2', host: B },
];

const subnets = {
  S: subnetState('S', { vpcId: 'V1', networkType: 3, tunnelId: '5001', cidr: '10.1.0.0/24', gateway: { ipAddress: '10.1.0.1', macAddress: 'fe:00:00:00:01:01' }, dnsEntryList: [{ entry: '10.1.0.2' }] }),
  X: subnetState('X', { vpcId: 'V1', networkType: 0, tunnelId: '6001', cidr: '10.2.0.0/24', gateway: { ipAddress: '10.2.0.1', macAddress: 'fe:00:00:00:02:01' } }),
  S2: subnetState('S2', { vpcId: 'V2', networkType: 3, tunnelId: '7001', cidr: '10.1.0.0/24', gateway: { ipAddress: '10.1.0.1', macAddress: 'fe:00:00:00:03:01' } }),
};

/** What NCM sends a host: its own ports with DHCP, and the neighbor list of their subnets. */
function goalStateFor(host: string, hostName = 'vm'): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({ hostResources: { [host]: { resources: [] } }, subnetStates: subnets });
  for (const v of vms) {
    if (v.host === host) {
      gs.portStates[v.id] = portState(v.id, { vpcId: v.vpc, macAddress: v.mac, fixedIps: [{ subnetId: v.subnet, ipAddress: v.ip }] });
      gs.dhcpStates[`dhcp-${v.id}`] = { operationType: 1, configuration: { revisionNumber: 1, requestId: '', id: `dhcp-${v.id}`, updateType: 0, subnetId: v.subnet, macAddress: v.mac, ipv4Address: v.ip, ipv6Address: '', portHostName: `${hostName}-${v.id}` } };
    }
    gs.neighborStates[`L2/${v.id}`] = neighborState(v.id, 0, { vpcId: v.vpc, macAddress: v.mac, hostIpAddress: v.host, fixedIps: [{ neighborType: 0, subnetId: v.subnet, ipAddress: v.ip, arionGroup: '', tunnelId: 0 }] });
  }
  return gs;
}

test('a simulated cloud: DHCP, same-host and cross-host pings over Geneve and VXLAN, ARP kept local, VPCs isolated, deletes', async (t) => {
  const cloud = await startCloud([A, B]);
  const [ha, hb] = cloud.hosts as [typeof cloud.hosts[0], typeof cloud.hosts[0]];
  try {
    const baseline = ha.dataplane.flows().length;
    // VMs boot and Nova plugs their taps (external_ids:iface-id = port id).
    const vm = new Map<string, SimVm>();
    for (const v of vms) {
      const m = new SimVm(v.id, v.mac);
      vm.set(v.id, m);
      (v.host === A ? ha : hb).host.plug('br-int', m, `tap${v.id}`, { 'iface-id': v.id });
    }
    for (const h of [ha, hb]) {
      const r = await h.push(goalStateFor(h.host.underlayIp));
      t.deepEqual(r.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS), [], h.host.name);
    }

    // DHCP: every VM gets address, mask, gateway, DNS, MTU, hostname, lease timers.
    for (const m of vm.values()) m.startDhcp();
    cloud.fabric.run();
    const a1 = vm.get('pa1')!;
    t.is(a1.dhcp.state, 'bound');
    t.like(a1.dhcp.config, { ip: '10.1.0.5', mask: '255.255.255.0', router: '10.1.0.1', dns: ['10.1.0.2'], mtu: 1442, hostName: 'vm-pa1', domain: 'cloud.internal', lease: 3600, renewal: 1800, rebinding: 3150, serverId: '10.1.0.1' });
    t.like(vm.get('pax')!.dhcp.config, { ip: '10.2.0.5', dns: ['10.9.9.9'], mtu: 1450 });
    for (const m of vm.values()) t.is(m.dhcp.state, 'bound', m.name);
    // Renewal: unicast to the gateway address, answered by the agent.
    a1.renew();
    cloud.fabric.run();
    t.is(a1.dhcp.state, 'bound');

    // ARP for a remote VM is answered on this host: nothing crosses the underlay.
    const before = cloud.fabric.delivered;
    a1.arpFor('10.1.0.7');
    cloud.fabric.run();
    t.is(a1.arp.get('10.1.0.7'), 'fa:16:3e:00:0b:01');
    t.is(cloud.fabric.delivered, before);

    const ping = (from: string, to: string): string => {
      const m = vm.get(from)!;
      const seq = m.ping(to);
      cloud.fabric.run();
      return m.pings.get(seq)!.state;
    };
    t.is(ping('pa1', '10.1.0.6'), 'replied', 'same host');
    t.is(ping('pa1', '10.1.0.7'), 'replied', 'across hosts over Geneve');
    t.is(ping('pax', '10.2.0.7'), 'replied', 'across hosts over VXLAN');
    t.true(cloud.fabric.delivered > before);

    // Overlapping VPCs: the same addresses reach their own VPC's VM only.
    const echoesAt = (id: string): number => vm.get(id)!.received.filter((f) => f.length > 34 && f[23] === 1 && f[34] === 8).length;
    const b1Before = echoesAt('pb1');
    t.is(ping('qa1', '10.1.0.7'), 'replied', 'VPC 2 reaches its own 10.1.0.7');
    t.is(echoesAt('pb1'), b1Before, "VPC 1's 10.1.0.7 saw nothing from VPC 2");
    t.true(echoesAt('qb1') > 0);

    // Deleting a neighbor stops traffic to it.
    const del = GoalStateV2.fromPartial({ subnetStates: { S: subnets.S }, neighborStates: { 'L2/pb1': { ...neighborState('pb1', 0, { macAddress: 'fa:16:3e:00:0b:01', hostIpAddress: B, fixedIps: [{ neighborType: 0, subnetId: 'S', ipAddress: '10.1.0.7', arionGroup: '', tunnelId: 0 }] }), operationType: 4 } } });
    t.true((await ha.push(del)).operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));
    a1.arp.delete('10.1.0.7');
    t.not(ping('pa1', '10.1.0.7'), 'replied');
    t.true(ha.dataplane.punts.arpMiss > 0, 'the ARP for the deleted neighbor went to the agent');

    // Re-sending a goal state changes nothing; deleting everything returns to the baseline.
    const full = goalStateFor(A);
    await ha.push(full);
    const flowsNow = ha.dataplane.flows().map(formatFlow);
    // Count what reaches the switch: an identical re-send must send nothing at all.
    let commits = 0;
    const commit = ha.dataplane.backend.commit.bind(ha.dataplane.backend);
    ha.dataplane.backend.commit = (c) => { commits += 1; return commit(c); };
    await ha.push(full);
    t.deepEqual(ha.dataplane.flows().map(formatFlow), flowsNow);
    t.is(commits, 0, 'no commit for an identical re-send');
    const gone = asDelete(full);
    const first = GoalStateV2.fromPartial({ portStates: gone.portStates, dhcpStates: gone.dhcpStates, neighborStates: gone.neighborStates });
    await ha.push(first);
    await ha.push(GoalStateV2.fromPartial({ subnetStates: gone.subnetStates }));
    t.is(ha.dataplane.flows().length, baseline);
  } finally {
    await cloud.stop();
  }
});
