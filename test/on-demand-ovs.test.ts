// The on-demand path and the punt meters on real Open vSwitch 3.1 (private sandbox, dummy
// datapath), the agent asking a controller stand-in that is a real gRPC server: an ARP request
// for an unknown address, received on the VM's tap with netdev-dummy/receive, goes up through the
// port's meter; the stand-in pushes the neighbor and answers SUCCESS; the agent re-injects the
// request by packet-out to TABLE from the VM's port and the ARP responder's new entry answers it
// out of the tap (read from its pcap). A storm of unknown-destination packets from the same VM
// is cut by its meter in the datapath (meter-stats read back).
import test from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { resolveConfig } from '../agent/config.js';
import { startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';
import type { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { puntMeterId } from '../dataplane/features/on-demand.js';
import { arpFrame, ipv4Frame, udp } from '../packets/frames.js';
import { neighborState, portState, subnetState } from './helpers/agents.js';
import { fakeNcm } from './helpers/fake-ncm.js';
import { type OvsSandbox, ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';
import { readPcap } from './helpers/pcap.js';
import { until } from './helpers/wait.js';

const missing = await ovsMissing();
if (missing) console.log(`on-demand-ovs: ${missing}`);
const maybe = missing ? test.skip : test.serial;

const A = '10.0.0.11';
const A1 = { mac: 'fa:16:3e:00:0a:01', ip: '10.1.0.5' };
const B1 = { mac: 'fa:16:3e:00:0b:01', ip: '10.1.0.6' };

let sb: OvsSandbox | undefined;
test.after.always(async () => { await sb?.stop(); });

maybe('on demand on real OVS: ARP miss asked, pushed, re-injected by packet-out to TABLE and answered once; a storm cut by the port meter', async (t) => {
  sb = await startSandbox();
  let client: ReturnType<typeof makeClient> | null = null;
  const ncm = await fakeNcm(async (req) => {
    const r = req.stateRequests[0]!;
    if (r.requestType !== 0) return;
    if (r.destinationIp !== B1.ip) return OperationStatus.FAILURE;
    const gs = GoalStateV2.fromPartial({});
    gs.neighborStates['L2/b1'] = neighborState('b1', 0, { vpcId: 'V1', macAddress: B1.mac, hostIpAddress: '10.0.0.12', fixedIps: [{ neighborType: 0, subnetId: 'S1', ipAddress: B1.ip, arionGroup: '', tunnelId: 0 }] });
    await pushStream(client!, [gs]);
  });
  const agent = await startAgent(resolveConfig({
    listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: A, dataplane: 'ovs', controller: ncm.addr,
    ovsDb: `unix:${sb.dbSocket}`, ovsRundir: sb.dir, ovsDatapathType: 'dummy', stateDir: 'none',
  }), silentLogger());
  client = makeClient(`127.0.0.1:${agent.grpcPort}`);
  const dp = agent.dataplane as FlowDataplane;
  try {
    const pcap = `${sb.dir}/tapa1.pcap`;
    await sb.vsctl('add-port', 'br-int', 'tapa1', '--', 'set', 'interface', 'tapa1', 'type=dummy', 'ofport_request=1', 'external_ids:iface-id=a1', `options:tx_pcap=${pcap}`);
    await until(() => dp.backend.bindings.ofport('a1') !== undefined, 'tap bound');
    const gs = GoalStateV2.fromPartial({ hostResources: { [A]: { resources: [] } } });
    gs.subnetStates.S1 = subnetState('S1', { vpcId: 'V1', cidr: '10.1.0.0/24', tunnelId: '7001', networkType: 0, gateway: { ipAddress: '10.1.0.1', macAddress: 'fa:16:3e:aa:01:01' } });
    gs.portStates.a1 = portState('a1', { vpcId: 'V1', macAddress: A1.mac, fixedIps: [{ subnetId: 'S1', ipAddress: A1.ip }] });
    const [r] = await pushStream(client, [gs]);
    t.true(r!.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));
    t.regex(await sb.ofctl('-O', 'OpenFlow13', 'dump-meters', 'br-int'), new RegExp(`meter=${puntMeterId(1)} pktps burst bands=\\ntype=drop rate=100 burst_size=100`));

    // The ARP request: up through the meter, asked, pushed, re-injected, answered out of the tap.
    await sb.appctl('netdev-dummy/receive', 'tapa1', Buffer.from(arpFrame(1, A1.mac, A1.ip, '00:00:00:00:00:00', B1.ip)).toString('hex'));
    const replies = () => readPcap(pcap).filter((f) => f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2);
    await until(() => replies().length >= 1, 'the ARP reply after the on-demand answer').catch(async (e: unknown) => {
      t.log(JSON.stringify({ punts: dp.punts, onDemand: dp.onDemand.counters, requests: ncm.requests.length, limiter: dp.puntLimiter.dropped }), await sb!.ofctl('-O', 'OpenFlow13', 'dump-flows', 'br-int', 'table=20'));
      throw e;
    });
    const reply = replies()[0]!;
    t.is(reply.subarray(22, 28).toString('hex'), B1.mac.replaceAll(':', ''), 'sender MAC: b1, pushed by the controller');
    t.is(dp.onDemand.counters.reinjected, 1);
    t.is(ncm.requests.filter((q) => q.stateRequests[0]!.requestType === 0).length, 1);
    t.like(ncm.requests.find((q) => q.stateRequests[0]!.requestType === 0)!.stateRequests[0], { tunnelId: 7001, sourceIp: A1.ip, destinationIp: B1.ip, protocol: 4 });
    t.is(dp.onDemand.buffered, 0, 'nothing kept: the request went back once');
    t.is(replies().length, 1, 'answered exactly once');

    // The pushed neighbor is an on-demand entry: its packet counts are read from the switch
    // (flow stats filtered by table and cookie); idle for 60 s, it goes with its flows.
    t.is(dp.onDemand.counters.learned, 1);
    let now = 1_000_000;
    dp.onDemand.setClock(() => now);
    const unicastToB1 = async () => (await sb!.ofctl('-O', 'OpenFlow13', 'dump-flows', 'br-int', 'table=40')).includes(`dl_dst=${B1.mac}`);
    t.true(await unicastToB1());
    t.deepEqual(await dp.expireIdleNow(), []);
    now += 61_000;
    t.deepEqual(await dp.expireIdleNow(), ['L2/b1']);
    t.false(await unicastToB1(), 'its flow is gone from the switch');
    t.is(agent.store.get('neighbor', 'L2/b1'), undefined);

    // A storm of unknown destinations from the same VM, in one go: the meter drops most of it.
    const punted = dp.punts.onDemand + dp.punts.limited;
    const frames = Array.from({ length: 400 }, (_, i) => Buffer.from(ipv4Frame(`fa:16:3e:77:00:${(i % 200).toString(16).padStart(2, '0')}`, A1.mac, A1.ip, `10.1.0.${(i % 200) + 20}`, 17, udp(1000 + i, 53, new Uint8Array(4)))).toString('hex'));
    for (let i = 0; i < frames.length; i += 100) await sb.appctl('netdev-dummy/receive', 'tapa1', ...frames.slice(i, i + 100));
    const stats = async () => {
      const text = await sb!.ofctl('-O', 'OpenFlow13', 'meter-stats', 'br-int', `meter=${puntMeterId(1)}`);
      return { text, dropped: Number(/0: packet_count:(\d+)/.exec(text)?.[1] ?? 0), seen: Number(/packet_in_count:(\d+)/.exec(text)?.[1] ?? 0) };
    };
    await until(async () => (await stats()).seen >= 401, 'the meter saw the storm');
    const s = await stats();
    await until(() => dp.punts.onDemand + dp.punts.limited - punted >= s.seen - 1 - s.dropped, 'the packet-ins that passed the meter');
    const reached = dp.punts.onDemand + dp.punts.limited - punted;
    t.log(`real OVS: a 400-packet storm from one VM: the port's meter (100 pktps, burst 100) dropped ${s.dropped} in the datapath, ${reached} packet-ins reached the agent (${dp.punts.limited} of them cut by its token bucket), ${dp.onDemand.counters.asked} questions asked in all`);
    t.true(s.dropped > 0, 'the meter dropped part of the storm');
    t.true(reached < 400, 'the agent saw less than the storm');
  } finally {
    client.close();
    await agent.stop();
    await ncm.stop();
  }
});
