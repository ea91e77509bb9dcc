// The on-demand engine on the simulator, against a controller stand-in that is a real gRPC server
// (test/helpers/fake-ncm.ts) doing what NCM does: on RequestGoalStates it pushes the goal state
// with the destination's neighbor to the agent, then answers SUCCESS (routable) or FAILURE (not
// routable). Routable ARP and UDP first packets are delivered exactly once and later packets go
// direct; not routable is dropped and cached; a slow controller holds up nothing else (another
// VM's DHCP is answered meanwhile); a controller that is down costs a drop; a punt storm from one
// VM is cut by its meter and token bucket while another VM's DHCP is answered (times printed).
import test from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import type { HostRequest } from '../proto/gen/alcor/goalstateprovisioner.js';
import { Fabric, SimVm } from '../ovs-sim/index.js';
import { freePort, neighborState, portState, subnetState } from './helpers/agents.js';
import { fakeNcm } from './helpers/fake-ncm.js';
import { type CloudHost, startCloud } from './helpers/sim-cloud.js';
import { until } from './helpers/wait.js';
import { TABLES } from '../dataplane/pipeline.js';
import { macValue } from '../dataplane/fields.js';
import { withoutMeters } from '../dataplane/backends/ovs.js';

const A = '10.0.0.11';
const B = '10.0.0.12';
const VNI = 7001;
const VMS = [
  { id: 'a1', mac: 'fa:16:3e:00:0a:01', ip: '10.1.0.5', host: A },
  { id: 'a2', mac: 'fa:16:3e:00:0a:02', ip: '10.1.0.15', host: A },
  { id: 'b1', mac: 'fa:16:3e:00:0b:01', ip: '10.1.0.6', host: B },
  { id: 'b2', mac: 'fa:16:3e:00:0b:02', ip: '10.1.0.8', host: B },
];
const vmSpec = (id: string) => VMS.find((v) => v.id === id)!;

function neighbor(id: string): GoalStateV2['neighborStates'][string] {
  const v = vmSpec(id);
  return neighborState(v.id, 0, { vpcId: 'V1', macAddress: v.mac, hostIpAddress: v.host, fixedIps: [{ neighborType: 0, subnetId: 'S1', ipAddress: v.ip, arionGroup: '', tunnelId: 0 }] });
}

/** Each host's own ports and DHCP; B knows A's VMs (its replies go direct), A knows none of B's. */
function goalState(host: string): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({ hostResources: { [host]: { resources: [] } } });
  gs.subnetStates.S1 = subnetState('S1', { vpcId: 'V1', cidr: '10.1.0.0/24', tunnelId: String(VNI), networkType: 0, gateway: { ipAddress: '10.1.0.1', macAddress: 'fa:16:3e:aa:01:01' } });
  for (const v of VMS) {
    if (v.host === host) {
      gs.portStates[v.id] = portState(v.id, { vpcId: 'V1', macAddress: v.mac, fixedIps: [{ subnetId: 'S1', ipAddress: v.ip }] });
      gs.dhcpStates[`dhcp-${v.id}`] = { operationType: 1, configuration: { revisionNumber: 1, requestId: '', id: `dhcp-${v.id}`, updateType: 0, subnetId: 'S1', macAddress: v.mac, ipv4Address: v.ip, ipv6Address: '', portHostName: v.id } };
    } else if (host === B) gs.neighborStates[`L2/${v.id}`] = neighbor(v.id);
  }
  return gs;
}

interface Setup {
  fabric: Fabric;
  a: CloudHost;
  b: CloudHost;
  vm: Map<string, SimVm>;
  requests: HostRequest[];
  stop(): Promise<void>;
}

/** Two hosts; A asks `controller` on demand; the NCM stand-in answers with `answer`. */
async function setup(answer: (req: HostRequest, a: CloudHost) => Promise<OperationStatus | void>, controller?: string): Promise<Setup> {
  let hostA: CloudHost | null = null;
  const ncm = await fakeNcm(async (req) => {
    // AGENT_RESTARTED at start: nothing to push.
    if (req.stateRequests.every((r) => r.requestType !== 0)) return;
    return answer(req, hostA!);
  });
  const fabric = new Fabric();
  const cloud = await startCloud([A, B], undefined, '', { fabric, more: { controller: controller ?? ncm.addr } });
  const [a, b] = cloud.hosts as [CloudHost, CloudHost];
  hostA = a;
  const vm = new Map<string, SimVm>();
  for (const v of VMS) {
    const m = new SimVm(v.id, v.mac, v.ip, '10.1.0.1', 24);
    vm.set(v.id, m);
    (v.host === A ? a : b).host.plug('br-int', m, `tap${v.id}`, { 'iface-id': v.id });
  }
  for (const h of [a, b]) {
    const r = await h.push(goalState(h.host.underlayIp));
    if (r.operationStatuses.some((s) => s.operationStatus !== OperationStatus.SUCCESS)) throw new Error('goal state not applied');
  }
  return {
    fabric, a, b, vm,
    requests: ncm.requests,
    stop: async () => {
      await cloud.stop();
      await ncm.stop();
    },
  };
}

/** NCM's answer for a routable destination: push its neighbor to the asking host, then SUCCESS. */
const pushNeighbor = async (req: HostRequest, a: CloudHost): Promise<void> => {
  const dst = req.stateRequests[0]!.destinationIp;
  const v = VMS.find((x) => x.ip === dst && x.host === B);
  if (!v) return;
  const gs = GoalStateV2.fromPartial({});
  gs.neighborStates[`L2/${v.id}`] = neighbor(v.id);
  await a.push(gs);
};

/** Run the fabric until `done` (re-injections arrive asynchronously, after the controller answers). */
const settle = (s: Setup, done: () => boolean, what: string) => until(() => {
  s.fabric.run();
  return done();
}, what);

const onDemand = (req: HostRequest[]) => req.flatMap((r) => r.stateRequests.filter((x) => x.requestType === 0));

test('on demand, routable: the first packet (ARP, then UDP) delivered exactly once, later packets direct', async (t) => {
  const requests: HostRequest[] = [];
  const s = await setup(async (req, a) => {
    requests.push(req);
    await pushNeighbor(req, a);
  });
  try {
    const engine = s.a.dataplane.onDemand;
    // ARP for b1, unknown on A: asked about, answered by the flows the push installed.
    const a1 = s.vm.get('a1')!;
    const seq = a1.ping('10.1.0.6');
    await settle(s, () => a1.pings.get(seq)!.state === 'replied', 'the ping through on-demand ARP');
    const asked = onDemand(requests);
    t.is(asked.length, 1);
    t.like(asked[0], { tunnelId: VNI, sourceIp: '10.1.0.5', destinationIp: '10.1.0.6', protocol: 4 /* ARP */ });
    t.is(engine.counters.reinjected, 1);
    const arpReplies = a1.received.filter((f) => f[12] === 0x08 && f[13] === 0x06 && f[21] === 2);
    t.is(arpReplies.length, 1, 'the ARP request was answered exactly once');

    // UDP to b2, whose MAC a1 knows but A does not: the first packet kept, asked, delivered once.
    a1.sendUdp('10.1.0.8', vmSpec('b2').mac, 3333, 4444, new Uint8Array([1]));
    const b2 = s.vm.get('b2')!;
    await settle(s, () => b2.udpReceived.length === 1, 'the first UDP packet after the answer');
    const second = onDemand(requests)[1]!;
    t.like(second, { tunnelId: VNI, sourceIp: '10.1.0.5', destinationIp: '10.1.0.8', sourcePort: 3333, destinationPort: 4444, protocol: 1 /* UDP */ });
    t.is(engine.counters.reinjected, 2);
    // Later packets: direct, no question.
    for (let i = 0; i < 5; i++) a1.sendUdp('10.1.0.8', vmSpec('b2').mac, 3333, 4444, new Uint8Array([2 + i]));
    s.fabric.run();
    t.is(b2.udpReceived.length, 6, 'each delivered once');
    t.is(onDemand(requests).length, 2, 'no more questions');
    t.is(engine.buffered, 0);
  } finally {
    await s.stop();
  }
});

test('on demand: an entry idle for 60 s goes (its neighbor deleted, its flows with it); the next packet asks again', async (t) => {
  const requests: HostRequest[] = [];
  const s = await setup(async (req, a) => {
    requests.push(req);
    await pushNeighbor(req, a);
  });
  try {
    const dp = s.a.dataplane;
    let now = 1_000_000;
    dp.onDemand.setClock(() => now);
    const a1 = s.vm.get('a1')!;
    const b2 = s.vm.get('b2')!;
    const send = (n: number) => {
      for (let i = 0; i < n; i++) a1.sendUdp('10.1.0.8', vmSpec('b2').mac, 3333, 4444, new Uint8Array([i]));
      s.fabric.run();
    };
    send(1);
    await settle(s, () => b2.udpReceived.length === 1, 'the first packet');
    t.is(dp.onDemand.counters.learned, 1, 'the pushed neighbor is an on-demand entry');
    const toB2 = () => [...dp.installed.flows.values()].some((f) => f.table === TABLES.REMOTE_L2.id && f.match.some((m) => m.field === 'dl_dst' && m.value === macValue(vmSpec('b2').mac)));
    t.true(toB2(), 'its unicast flow is installed');
    t.truthy(s.a.agent.store.get('neighbor', 'L2/b2'));
    // Used: it stays, however long.
    t.deepEqual(await dp.expireIdleNow(), []);
    for (let round = 0; round < 3; round++) {
      now += 50_000;
      send(2);
      t.deepEqual(await dp.expireIdleNow(), [], `in use, round ${round}`);
    }
    // Idle for the idle time: it goes, and so do its flows.
    now += 30_000;
    t.deepEqual(await dp.expireIdleNow(), []);
    now += 31_000;
    t.deepEqual(await dp.expireIdleNow(), ['L2/b2']);
    t.is(s.a.agent.store.get('neighbor', 'L2/b2'), undefined, 'deleted from the store');
    t.false(toB2(), 'its unicast flow is gone');
    t.is(dp.onDemand.counters.expired, 1);
    // The next packet is a first packet again: asked, delivered once.
    const asked = onDemand(requests).length;
    send(1);
    await settle(s, () => b2.udpReceived.length === 8, 'the packet after expiry');
    t.is(onDemand(requests).length, asked + 1);
  } finally {
    await s.stop();
  }
});

test('on demand, not routable: dropped and remembered; a scanning VM asks once per destination', async (t) => {
  const requests: HostRequest[] = [];
  const s = await setup((req) => {
    requests.push(req);
    return Promise.resolve(OperationStatus.FAILURE);
  });
  try {
    const engine = s.a.dataplane.onDemand;
    const a1 = s.vm.get('a1')!;
    a1.sendUdp('10.1.0.99', 'fa:16:3e:99:99:99', 1, 2, new Uint8Array([1]));
    s.fabric.run();
    await until(() => engine.counters.notRoutable === 1, 'the not-routable answer');
    for (let i = 0; i < 20; i++) a1.sendUdp('10.1.0.99', 'fa:16:3e:99:99:99', 1, 2 + i, new Uint8Array([1]));
    s.fabric.run();
    t.is(onDemand(requests).length, 1, 'asked once');
    t.is(engine.counters.negative, 20, 'the rest dropped by the negative cache');
    t.is(engine.counters.reinjected, 0);
    // An address outside the subnet (not routed, no router) is not asked about at all.
    const punted = s.a.dataplane.punts.onDemand;
    a1.sendUdp('192.168.7.7', 'fa:16:3e:99:99:98', 1, 2, new Uint8Array([1]));
    s.fabric.run();
    t.is(s.a.dataplane.punts.onDemand, punted);
  } finally {
    await s.stop();
  }
});

test('on demand, slow controller: nothing else waits; the kept packet is delivered once when the answer comes', async (t) => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => { release = r; });
  const s = await setup(async (req, a) => {
    await gate;
    await pushNeighbor(req, a);
  });
  try {
    const engine = s.a.dataplane.onDemand;
    const a1 = s.vm.get('a1')!;
    const a2 = s.vm.get('a2')!;
    a1.sendUdp('10.1.0.6', vmSpec('b1').mac, 5, 6, new Uint8Array([1]));
    s.fabric.run();
    await until(() => engine.counters.asked === 1, 'the question');
    // While it is open: more packets to the same destination are not kept twice, and another
    // VM's DHCP is answered.
    for (let i = 0; i < 3; i++) a1.sendUdp('10.1.0.6', vmSpec('b1').mac, 5, 6, new Uint8Array([9]));
    a2.startDhcp();
    await settle(s, () => a2.dhcp.state === 'bound', 'a2 DHCP while the controller is slow');
    t.is(engine.counters.coalesced, 3);
    t.is(engine.buffered, 1);
    release();
    const b1 = s.vm.get('b1')!;
    await settle(s, () => b1.udpReceived.length === 1, 'the kept packet');
    s.fabric.run();
    t.is(b1.udpReceived.length, 1, 'exactly once');
    t.deepEqual([...b1.udpReceived[0]!.payload], [1], 'the first packet, not a later one');
  } finally {
    await s.stop();
  }
});

test('on demand, controller down: the packet is dropped, counted, not asked again at once', async (t) => {
  const closed = `127.0.0.1:${await freePort()}`;
  const s = await setup(() => Promise.resolve(), closed);
  try {
    const engine = s.a.dataplane.onDemand;
    const a1 = s.vm.get('a1')!;
    a1.sendUdp('10.1.0.6', vmSpec('b1').mac, 5, 6, new Uint8Array([1]));
    s.fabric.run();
    await until(() => engine.counters.failed === 1, 'the failed question', 120_000);
    a1.sendUdp('10.1.0.6', vmSpec('b1').mac, 5, 6, new Uint8Array([2]));
    s.fabric.run();
    t.is(engine.counters.asked, 1);
    t.is(engine.counters.negative, 1, 'not asked again right away');
    t.is(s.vm.get('b1')!.udpReceived.length, 0);
    // The agent is still fine: a2's DHCP works.
    s.vm.get('a2')!.startDhcp();
    await settle(s, () => s.vm.get('a2')!.dhcp.state === 'bound', 'DHCP after the failure');
  } finally {
    await s.stop();
  }
});

test('punt storm from one VM: cut by its meter and token bucket; another VM\'s DHCP answered (times printed)', async (t) => {
  const requests: HostRequest[] = [];
  const s = await setup((req) => {
    requests.push(req);
    return Promise.resolve(OperationStatus.FAILURE);
  });
  try {
    const a2 = s.vm.get('a2')!;
    const dhcpTime = async (what: string): Promise<number> => {
      a2.dhcp = { state: 'init', xid: 0, naks: 0 };
      const start = performance.now();
      a2.startDhcp();
      await settle(s, () => a2.dhcp.state === 'bound', what);
      return performance.now() - start;
    };
    const quiet = await dhcpTime('DHCP without a storm');
    const a1 = s.vm.get('a1')!;
    const dp = s.a.dataplane;
    const engine = dp.onDemand;
    const STORM = 3000;
    /** A scanning VM: every packet to another address of the subnet (250 of them), each one a question. */
    const storm = (round: number) => {
      for (let i = 0; i < STORM; i++) a1.sendUdp(`10.1.0.${(i % 250) + 2}`, `fa:16:3e:77:${round.toString(16).padStart(2, '0')}:${(i % 250).toString(16).padStart(2, '0')}`, 1000 + i, 53, new Uint8Array([1]));
    };
    // The first storm: what the meter and the token bucket let through.
    storm(0);
    s.fabric.run();
    const handled = dp.punts.onDemand;
    const limited = dp.punts.limited;
    // The simulator's own cost for a storm (one FIFO for every port of the fabric), warmed up.
    let start = performance.now();
    storm(1);
    s.fabric.run();
    const stormAlone = performance.now() - start;
    // The storm again, with the other VM's DHCP queued behind it.
    start = performance.now();
    storm(2);
    const during = await dhcpTime('DHCP during the storm');
    const total = performance.now() - start;
    const meterDrops = 3 * STORM - dp.punts.onDemand - dp.punts.limited;
    t.log(`DHCP of another VM: ${quiet.toFixed(1)} ms alone; during a ${STORM}-packet punt storm ${during.toFixed(1)} ms, of which the simulator translating the storm (one FIFO for all ports) takes about ${stormAlone.toFixed(0)} ms (the storm alone), so DHCP is delayed by ${Math.max(0, total - stormAlone - quiet).toFixed(1)} ms beyond the simulator's cost`);
    t.log(`first storm: ${STORM - handled - limited} of ${STORM} dropped by the port's meter (${'100 pktps, burst 100'}), ${limited} by the agent's token bucket (50/s, burst 100), ${handled} handled; questions to the controller over the three storms: ${engine.counters.asked} (the rest: ${engine.counters.negative} negative cache, ${engine.counters.coalesced} coalesced)`);
    t.true(meterDrops > 0, 'the meter dropped part of the storm');
    t.true(handled <= 150, 'the agent handled about the meter\'s burst, not the storm');
    t.true(engine.counters.asked <= 250, 'at most one question per destination');
    t.is(a2.dhcp.state, 'bound');
  } finally {
    await s.stop();
  }
});

test('a datapath without meters gets the punt flows without their meter instruction and no meters', (t) => {
  const meterFlow = { table: 83, priority: 100, match: [], actions: [{ type: 'meter' as const, id: 7 }, { type: 'controller' as const, userdata: '11' }], cookie: 1n };
  const plain = { table: 0, priority: 0, match: [], actions: [], cookie: 2n };
  const c = withoutMeters({ add: [meterFlow, plain], modify: [meterFlow], remove: [meterFlow], groups: { add: [], modify: [], remove: [] }, meters: { add: [{ id: 7, unit: 'pktps', rate: 1, burst: 1 }], modify: [], remove: [] } });
  t.deepEqual(c.add.map((f) => f.actions.map((a) => a.type)), [['controller'], []]);
  t.deepEqual(c.modify[0]!.actions.map((a) => a.type), ['controller']);
  t.is(c.add[1], plain, 'flows without meters unchanged');
  t.is(c.remove[0], meterFlow, 'removes go as they are (delete_strict matches only)');
  t.is(c.meters.add.length, 0);
});
