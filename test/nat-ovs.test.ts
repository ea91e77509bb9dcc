// Distributed SNAT and elastic IPs on real Open vSwitch 3.1: the operator's br-ex (an uplink and
// a flow of its own) is adopted, the agent adds the patch ports and its flows; real packets
// through the dummy datapath (netdev-dummy/receive, tx_pcap) go out SNATed within this host's
// slice and their replies come back un-NATed by OVS's own conntrack; an elastic IP works both
// ways; br-ex answers ARP for the SNAT address and the elastic IP; ofproto/trace with --ct-next
// of each case prints the same on real OVS and on the simulator; the operator's flow survives;
// removing the elastic IP flushes its connections; switch == agent after each change.
import test, { type ExecutionContext } from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { resolveConfig } from '../agent/config.js';
import { startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';
import { elasticIpMac, hostExternalMac, snatMac } from '../dataplane/external.js';
import { macText } from '../dataplane/fields.js';
import { bridgeOf } from '../dataplane/flow.js';
import type { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { BRIDGE } from '../dataplane/pipeline.js';
import { arpFrame, ipv4Frame, parseFrame, udp } from '../packets/frames.js';
import { ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';
import { bridgeLine, onOvsAndSim } from './helpers/ovs-vs-sim.js';
import { readPcap } from './helpers/pcap.js';
import { switchEqualsAgent } from './helpers/switch-state.js';
import { until } from './helpers/wait.js';
import { INTERNET_HOST, NEXT_HOP, natGoalStateFor } from './helpers/nat-cloud.js';
import type { RoutedCloud } from './helpers/routed-cloud.js';

const missing = await ovsMissing();
if (missing) console.log(`nat-ovs: ${missing}`);
const maybe = missing ? test.skip : test.serial;

const HOST = '10.0.0.11';
const SNAT = '203.0.113.10';
const EIP = '203.0.113.50';
const GW_MAC = 'fa:16:3e:aa:01:01';
const A1 = { mac: 'fa:16:3e:00:0a:01', ip: '10.1.0.5' };
const E1 = { mac: 'fa:16:3e:00:0a:09', ip: '10.1.0.9' };
const CLOUD: RoutedCloud = {
  subnets: [{ id: 'S1', vpc: 'V1', cidr: '10.1.0.0/24', gw: '10.1.0.1', gwMac: GW_MAC, vni: 5001, geneve: true }],
  vms: [{ id: 'a1', ...A1, subnet: 'S1', host: HOST }, { id: 'e1', ...E1, subnet: 'S1', host: HOST }],
  routers: [{ id: 'R1', subnets: ['S1'] }],
};
const NAT = { slices: { R1: { [HOST]: [{ ip: SNAT, portMin: 1024, portMax: 2047 }] } }, eips: { e1: EIP } };

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const payload = (s: string): Uint8Array => new TextEncoder().encode(s);

maybe('distributed SNAT and elastic IPs on real OVS: real packets both ways, ARP, ct-next traces identical on the simulator; the operator\'s br-ex flows survive', async (t: ExecutionContext) => {
  const sb = await startSandbox();
  // The operator's br-ex: an uplink and a flow of its own (LLDP dropped), before the agent starts.
  await sb.vsctl('add-br', 'br-ex', '--', 'set', 'bridge', 'br-ex', 'datapath_type=dummy');
  await sb.vsctl('add-port', 'br-ex', 'eth1', '--', 'set', 'interface', 'eth1', 'type=dummy', 'ofport_request=1', `options:tx_pcap=${sb.dir}/eth1.pcap`);
  await sb.ofctl('add-flow', 'br-ex', 'priority=5,dl_type=0x88cc,actions=drop');
  const agent = await startAgent(resolveConfig({
    listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: HOST, dataplane: 'ovs', bridgeMappings: 'ext:br-ex',
    ovsDb: `unix:${sb.dbSocket}`, ovsRundir: sb.dir, ovsDatapathType: 'dummy', stateDir: 'none',
  }), silentLogger());
  const client = makeClient(`127.0.0.1:${agent.grpcPort}`);
  const dp = agent.dataplane as FlowDataplane;
  try {
    for (const [name, id, n] of [['tapa1', 'a1', 1], ['tape1', 'e1', 2]] as const) {
      await sb.vsctl('add-port', 'br-int', name, '--', 'set', 'interface', name, 'type=dummy', `ofport_request=${n}`, `external_ids:iface-id=${id}`, `options:tx_pcap=${sb.dir}/${name}.pcap`);
    }
    await until(() => dp.backend.bindings.ofport('a1') !== undefined && dp.backend.bindings.ofport('e1') !== undefined, 'taps bound');
    const [r] = await pushStream(client, [natGoalStateFor(CLOUD, NAT, HOST)]);
    t.deepEqual(r!.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS).map((s) => `${s.resourceId}: ${s.statusDetail}`), []);
    await switchEqualsAgent(t, dp, 'programming');
    t.regex(await sb.vsctl('get', 'interface', 'int-br-ex', 'options:peer'), /phy-br-ex/, 'the agent added the patch port pair');
    t.regex(await sb.ofctl('dump-flows', 'br-ex'), /priority=5,dl_type=0x88cc actions=drop/, 'the operator\'s flow is still there');

    const out = (port: string): Buffer[] => readPcap(`${sb.dir}/${port}.pcap`);
    const receive = (port: string, frame: Uint8Array): Promise<string> => sb.appctl('netdev-dummy/receive', port, hex(frame));

    // a1 → the internet: out of eth1 as the SNAT address, a port from the slice, TTL 63.
    await receive('tapa1', ipv4Frame(GW_MAC, A1.mac, A1.ip, INTERNET_HOST, 17, udp(5000, 53, payload('query'))));
    await until(() => out('eth1').some((f) => parseFrame(f)?.kind === 'udp'), 'a1\'s datagram on eth1');
    const sent = out('eth1').map(parseFrame).find((p) => p?.kind === 'udp');
    if (sent?.kind !== 'udp') throw new Error('no UDP on eth1');
    t.is(sent.ipSrc, SNAT);
    t.true(sent.srcPort >= 1024 && sent.srcPort <= 2047, `source port ${sent.srcPort} is in the slice`);
    t.is(sent.src, macText(hostExternalMac(HOST)));
    t.is(sent.dst, NEXT_HOP.mac);
    t.is(out('eth1').find((f) => parseFrame(f)?.kind === 'udp')![22], 63, 'TTL decremented');

    // The reply, to the SNAT address's MAC: un-NATed by conntrack and delivered to a1.
    await receive('eth1', ipv4Frame(macText(snatMac(SNAT)), NEXT_HOP.mac, INTERNET_HOST, SNAT, 17, udp(53, sent.srcPort, payload('answer'))));
    await until(() => out('tapa1').some((f) => parseFrame(f)?.kind === 'udp'), 'the reply at a1');
    const back = out('tapa1').map(parseFrame).find((p) => p?.kind === 'udp');
    t.like(back, { kind: 'udp', ipSrc: INTERNET_HOST, ipDst: A1.ip, dstPort: 5000, src: GW_MAC, dst: A1.mac });
    t.is(back?.kind === 'udp' ? text(back.payload) : '', 'answer');

    // The internet → the elastic IP: delivered to e1's fixed IP; e1's answer leaves as the elastic IP.
    await receive('eth1', ipv4Frame(macText(elasticIpMac(EIP)), NEXT_HOP.mac, INTERNET_HOST, EIP, 17, udp(7000, 8000, payload('hello'))));
    await until(() => out('tape1').some((f) => parseFrame(f)?.kind === 'udp'), 'the datagram at e1');
    t.like(out('tape1').map(parseFrame).find((p) => p?.kind === 'udp'), { ipSrc: INTERNET_HOST, ipDst: E1.ip, dstPort: 8000 });
    await receive('tape1', ipv4Frame(GW_MAC, E1.mac, E1.ip, INTERNET_HOST, 17, udp(8000, 7000, payload('hi back'))));
    await until(() => out('eth1').some((f) => { const p = parseFrame(f); return p?.kind === 'udp' && p.ipSrc === EIP; }), 'e1\'s answer on eth1');
    t.like(out('eth1').map(parseFrame).find((p) => p?.kind === 'udp' && p.ipSrc === EIP), { srcPort: 8000, dst: NEXT_HOP.mac, src: macText(elasticIpMac(EIP)) });

    // ARP on the external network: the SNAT address (its MAC only in the ARP body) and the elastic IP.
    for (const [ip, mac, frameSrc] of [[SNAT, snatMac(SNAT), hostExternalMac(HOST)], [EIP, elasticIpMac(EIP), elasticIpMac(EIP)]] as const) {
      await receive('eth1', arpFrame(1, NEXT_HOP.mac, NEXT_HOP.ip, '00:00:00:00:00:00', ip));
      await until(() => out('eth1').some((f) => { const p = parseFrame(f); return p?.kind === 'arp' && p.op === 2 && p.spa === ip; }), `the ARP answer for ${ip}`);
      t.like(out('eth1').map(parseFrame).find((p) => p?.kind === 'arp' && p.op === 2 && p.spa === ip), { sha: macText(mac), src: macText(frameSrc), tpa: NEXT_HOP.ip, dst: NEXT_HOP.mac });
    }

    // The same cases as ofproto/trace (--ct-next): real OVS and the simulator agree line by line.
    const egress = `in_port=1,udp,dl_src=${A1.mac},dl_dst=${GW_MAC},nw_src=${A1.ip},nw_dst=${INTERNET_HOST},nw_ttl=64,udp_src=5000,udp_dst=53`;
    const reply = `in_port=1,udp,dl_src=${NEXT_HOP.mac},dl_dst=${macText(snatMac(SNAT))},nw_src=${INTERNET_HOST},nw_dst=${SNAT},nw_ttl=64,udp_src=53,udp_dst=1024`;
    const outside = `in_port=1,udp,dl_src=${NEXT_HOP.mac},dl_dst=${macText(snatMac(SNAT))},nw_src=${INTERNET_HOST},nw_dst=${SNAT},nw_ttl=64,udp_src=53,udp_dst=3000`;
    const toEip = `in_port=1,udp,dl_src=${NEXT_HOP.mac},dl_dst=${macText(elasticIpMac(EIP))},nw_src=${INTERNET_HOST},nw_dst=${EIP},nw_ttl=64,udp_src=7000,udp_dst=8000`;
    const fromEip = `in_port=2,udp,dl_src=${E1.mac},dl_dst=${GW_MAC},nw_src=${E1.ip},nw_dst=${INTERNET_HOST},nw_ttl=64,udp_src=8000,udp_dst=7000`;
    const arpFor = (ip: string): string => `in_port=1,arp,dl_src=${NEXT_HOP.mac},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=${NEXT_HOP.ip},arp_tpa=${ip},arp_sha=${NEXT_HOP.mac}`;
    const traces = [
      `ofproto/trace br-int ${egress} --ct-next trk,new`,
      `ofproto/trace br-ex ${reply} --ct-next trk,est,rpl`,
      `ofproto/trace br-ex ${outside}`,
      `ofproto/trace br-ex ${toEip} --ct-next trk,new`,
      `ofproto/trace br-int ${fromEip} --ct-next trk,est,rpl`,
      `ofproto/trace br-ex ${arpFor(SNAT)}`,
      `ofproto/trace br-ex ${arpFor(EIP)}`,
    ];
    const onOvs = async (line: string): Promise<string> => sb.appctl(...line.split(' '));
    t.regex(await onOvs(traces[0]!), /ct\(commit,zone=\d+,nat\(src=203\.0\.113\.10:1024-2047\)\)/, 'SNAT in the router\'s zone with the slice');
    // Not this host's slice: br-ex forwards it NORMAL (the host's own business); br-int's NAT stage drops it.
    t.regex(await onOvs(traces[2]!), /NORMAL[\s\S]*bridge\("br-int"\)[\s\S]*33\. .*priority 0[^\n]*\n\s+drop/, 'a port outside this host\'s slice is not un-NATed here');
    t.regex(await onOvs(traces[3]!), /ct\(commit,zone=\d+,nat\(dst=10\.1\.0\.9\)\)/, 'DNAT of the elastic IP');
    const flows = [...dp.installed.flows.values()];
    const ext = flows.filter((f) => bridgeOf(f) !== BRIDGE);
    const sim = await onOvsAndSim(t, flows.filter((f) => bridgeOf(f) === BRIDGE), [
      `${bridgeLine([1, 2])} -- add-port br-int int-br-ex -- set interface int-br-ex type=patch options:peer=phy-br-ex ofport_request=4200`,
      // One port per command: OVS floods NORMAL in the order the ports were created, and ports
      // created in one transaction are created in the order of their (random) UUIDs.
      'ovs-vsctl add-br br-ex -- set bridge br-ex datapath_type=dummy fail-mode=secure',
      'ovs-vsctl add-port br-ex eth1 -- set interface eth1 type=dummy ofport_request=1',
      'ovs-vsctl add-port br-ex phy-br-ex -- set interface phy-br-ex type=patch options:peer=int-br-ex ofport_request=4200',
      'ovs-ofctl -O OpenFlow13 --bundle add-flows br-int flows.txt',
      'ovs-ofctl -O OpenFlow13 --bundle add-flows br-ex flows-ex.txt',
      ...traces.map((l) => `ovs-appctl ${l}`),
    ], { 'flows-ex.txt': ext });
    t.is(sim.length, traces.length + 6);

    // The elastic IP removed: its connection is flushed from the router's zone; e1 now leaves by SNAT.
    const conns = async (): Promise<string> => sb.appctl('dpctl/dump-conntrack');
    t.regex(await conns(), new RegExp(`dst=${EIP.replace(/\./g, '\\.')}`), 'the elastic IP\'s connection is tracked');
    const [r2] = await pushStream(client, [natGoalStateFor(CLOUD, { ...NAT, eips: {} }, HOST)]);
    t.deepEqual(r2!.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS).map((s) => s.statusDetail), []);
    t.notRegex(await conns(), new RegExp(`(src=${E1.ip.replace(/\./g, '\\.')}|dst=${EIP.replace(/\./g, '\\.')})`), 'its connections are flushed');
    t.regex(await conns(), new RegExp(`src=${A1.ip.replace(/\./g, '\\.')}`), 'a1\'s connection is not');
    t.notRegex(await sb.ofctl('dump-flows', 'br-ex'), /203\.0\.113\.50/, 'br-ex no longer answers for the elastic IP');
    await switchEqualsAgent(t, dp, 'removing the elastic IP');
    t.regex(await sb.ofctl('dump-flows', 'br-ex'), /priority=5,dl_type=0x88cc actions=drop/, 'the operator\'s flow is still there');
  } finally {
    client.close();
    await agent.stop();
    await sb.stop();
  }
});
