// `npm run bench:zeta`: how fast the in-band paths are, on the simulator (two hosts with their
// agents, a simulated Zeta gateway cluster, test/helpers/zeta-gateway.ts).
//
// 1. OAM → direct path: the gateway sends an OAM inject for a new 5-tuple; timed from the packet
//    put on the underlay until the agent has the flow confirmed by the switch (the packet-in path:
//    OVS's `learn` cannot read the OAM payload, docs/zeta.md). Baseline, same run: the controller
//    path for a comparable flow, a goal state with one new neighbor pushed over gRPC until its
//    reply (the neighbor's unicast flow installed).
// 2. Punt limits: another VM's DHCP exchange alone, and right after a storm of punts from one VM
//    (DHCP discoveries) has been put through its port's meter and the agent's token bucket.
//
// Flags: --oams N (default 300).
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { Fabric, SimVm } from '../ovs-sim/index.js';
import { neighborState, portState, subnetState } from '../test/helpers/agents.js';
import { startCloud } from '../test/helpers/sim-cloud.js';
import { ZetaGatewayStandIn, gatewayState, vpcState } from '../test/helpers/zeta-gateway.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const OAMS = flag('--oams', 300);
const A = '10.0.0.11';
const B = '10.0.0.12';
const G = [{ ip: '10.0.0.201', mac: 'fe:ee:00:00:02:01' }, { ip: '10.0.0.202', mac: 'fe:ee:00:00:02:02' }];

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const fmt = (xs: number[]): string => `p50 ${pct(xs, 50).toFixed(2)} ms, p99 ${pct(xs, 99).toFixed(2)} ms`;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

const fabric = new Fabric();
const cloud = await startCloud([A, B], undefined, '', { fabric });
const [ha, hb] = cloud.hosts as [(typeof cloud.hosts)[number], (typeof cloud.hosts)[number]];
const gateway = new ZetaGatewayStandIn(fabric, G, []);
// The VMs' taps are there before their ports arrive (Nova plugs them first).
const a1 = new SimVm('a1', 'fa:16:3e:00:0a:01', '10.1.0.5', '10.1.0.1', 16);
const a2 = new SimVm('a2', 'fa:16:3e:00:0a:02', null, null, 16);
ha.host.plug('br-int', a1, 'tapa1', { 'iface-id': 'a1' });
ha.host.plug('br-int', a2, 'tapa2', { 'iface-id': 'a2' });
hb.host.plug('br-int', new SimVm('b1', 'fa:16:3e:00:0b:01', '10.1.1.5', '10.1.0.1', 16), 'tapb1', { 'iface-id': 'b1' });
try {
  for (const h of [ha, hb]) {
    const gs = GoalStateV2.fromPartial({ hostResources: { [h.host.underlayIp]: { resources: [] } } });
    gs.vpcStates.V1 = vpcState(['ZG1']);
    gs.gatewayStates.ZG1 = gatewayState(G);
    gs.subnetStates.S1 = subnetState('S1', { vpcId: 'V1', cidr: '10.1.0.0/16', tunnelId: '5001', networkType: 3, gateway: { ipAddress: '10.1.0.1', macAddress: 'fa:16:3e:aa:01:01' } });
    const own = h === ha ? ['a1', 'a2'] : ['b1'];
    own.forEach((id, i) => { gs.portStates[id] = portState(id, { vpcId: 'V1', macAddress: `fa:16:3e:00:0${h === ha ? 'a' : 'b'}:0${i + 1}`, fixedIps: [{ subnetId: 'S1', ipAddress: `10.1.${h === ha ? 0 : 1}.${i + 5}` }] }); });
    // A neighbor on the other host: it is a known host for OAM node addresses.
    gs.neighborStates['L2/k'] = neighborState('k', 0, { vpcId: 'V1', macAddress: 'fa:16:3e:00:0c:01', hostIpAddress: h === ha ? B : A, fixedIps: [{ neighborType: 0, subnetId: 'S1', ipAddress: '10.1.9.9', arionGroup: '', tunnelId: 0 }] });
    const r = await h.push(gs);
    const bad = r.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS);
    if (bad.length > 0) throw new Error(`goal state refused: ${bad.map((s) => `${s.resourceId}: ${s.statusDetail}`).join('; ')}`);
  }

  // 1. OAM → direct path, and the controller path as the baseline.
  const oam: number[] = [];
  for (let i = 0; i < OAMS; i++) {
    const before = ha.dataplane.zetaOam.counters.injected;
    const t0 = performance.now();
    gateway.oam(G[i % 2]!, A, 'geneve', {
      op: 0, innerSrcIp: '10.1.0.5', innerDstIp: `10.1.1.${(i % 200) + 20}`, srcPort: 10_000 + i, dstPort: 80, proto: 6, vni: 5001,
      instIp: `10.1.1.${(i % 200) + 20}`, nodeIp: B, instMac: 'fa:16:3e:00:0b:01', nodeMac: '02:00:0a:00:00:0c', idleTimeout: 60,
    });
    fabric.run();
    while (ha.dataplane.zetaOam.counters.injected === before) await tick();
    oam.push(performance.now() - t0);
  }
  const pushed: number[] = [];
  for (let i = 0; i < OAMS; i++) {
    const gs = GoalStateV2.fromPartial({});
    gs.neighborStates[`L2/n${i}`] = neighborState(`n${i}`, 0, { vpcId: 'V1', macAddress: `fa:16:3e:01:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, hostIpAddress: B, fixedIps: [{ neighborType: 0, subnetId: 'S1', ipAddress: `10.1.${100 + (i >> 8)}.${i & 255}`, arionGroup: '', tunnelId: 0 }] });
    const t0 = performance.now();
    const r = await ha.push(gs);
    pushed.push(performance.now() - t0);
    if (r.operationStatuses.some((s) => s.operationStatus !== OperationStatus.SUCCESS)) throw new Error('neighbor refused');
  }
  console.log(`OAM → direct path (${OAMS} injects, each a new 5-tuple): ${fmt(oam)}`);
  console.log(`baseline, a goal state with one new neighbor over gRPC until its reply (${OAMS}): ${fmt(pushed)}`);
  console.log(`ratio (p50, controller path / OAM path): ${(pct(pushed, 50) / pct(oam, 50)).toFixed(1)}×`);
  console.log(`direct paths held: ${ha.dataplane.zetaOam.size}; dropped: ${JSON.stringify(ha.dataplane.zetaOam.counters.dropped)}`);

  // 2. Punt limits: DHCP of a2 alone, then right after a storm from a1.
  const dhcp = GoalStateV2.fromPartial({});
  dhcp.dhcpStates.d2 = { operationType: 1, configuration: { revisionNumber: 1, requestId: '', id: 'd2', updateType: 0, subnetId: 'S1', macAddress: 'fa:16:3e:00:0a:02', ipv4Address: '10.1.0.6', ipv6Address: '', portHostName: 'a2' } };
  await ha.push(dhcp);
  const dhcpTime = async (): Promise<number> => {
    a2.dhcp = { state: 'init', xid: 0, naks: 0 };
    const t0 = performance.now();
    a2.startDhcp();
    const bound = (): boolean => a2.dhcp.state === 'bound';
    while (!bound()) {
      fabric.run();
      if (!bound()) await tick();
    }
    return performance.now() - t0;
  };
  const alone: number[] = [];
  for (let i = 0; i < 20; i++) alone.push(await dhcpTime());
  const after: number[] = [];
  const STORM = 2000;
  for (let i = 0; i < 20; i++) {
    // DHCP discoveries from a1, again and again: each one a punt from a1's port.
    for (let k = 0; k < STORM; k++) a1.startDhcp();
    fabric.run();
    after.push(await dhcpTime());
  }
  const dp = ha.dataplane;
  console.log(`DHCP of a2 alone: ${fmt(alone)}; right after a ${STORM}-punt storm from a1 (×20): ${fmt(after)}; ratio (p50) ${(pct(after, 50) / pct(alone, 50)).toFixed(2)}×`);
  console.log(`storm punts reaching the agent: ${dp.punts.dhcp} DHCP punts handled (a2's included), ${dp.punts.limited} cut by the ports' token buckets; the rest (of ${20 * STORM}) dropped by a1's meter in the datapath`);
} finally {
  await cloud.stop();
}
