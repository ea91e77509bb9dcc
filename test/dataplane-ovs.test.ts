// The ovs dataplane against a real Open vSwitch 3.1 (private sandbox, dummy datapath): the
// agent creates br-int and its tunnel ports over OVSDB, installs flows in bundles, answers
// PENDING for a port whose interface is not there and programs it when it appears; traces on
// the real bridge show the ARP responder, tunnel output with the right VNI and destination, and
// DHCP to the controller.
import { readFileSync } from 'node:fs';
import test from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { resolveConfig } from '../agent/config.js';
import { startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';
import { DHCP } from '../dataplane/dhcp-server.js';
import { buildDhcpClientFrame, parseDhcpReplyFrame } from '../dataplane/dhcp-wire.js';
import { type OvsSandbox, ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';
import { readPcap } from './helpers/pcap.js';
import { until } from './helpers/wait.js';

const fixture = (name: string): GoalStateV2 =>
  GoalStateV2.fromJSON(JSON.parse(readFileSync(new URL(`./fixtures/ncm-sequence/${name}`, import.meta.url), 'utf8')));

const missing = await ovsMissing();
if (missing) console.log(`dataplane-ovs: ${missing}`);
const maybe = missing ? test.skip : test.serial;

let sb: OvsSandbox | undefined;
test.after.always(async () => { await sb?.stop(); });

maybe('ovs dataplane: bridge, PENDING until the tap appears, ARP responder, tunnel output, DHCP punt, clean baseline', async (t) => {
  sb = await startSandbox();
  const config = resolveConfig({
    listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: '10.0.0.11', dataplane: 'ovs',
    ovsDb: `unix:${sb.dbSocket}`, ovsRundir: sb.dir, ovsDatapathType: 'dummy',
  });
  const agent = await startAgent(config, silentLogger());
  const client = makeClient(`127.0.0.1:${agent.grpcPort}`);
  try {
    // The agent created br-int, secure, with both flow-based tunnel ports.
    t.is((await sb.vsctl('get', 'bridge', 'br-int', 'fail_mode')).trim(), 'secure');
    t.is((await sb.vsctl('get', 'interface', 'gnv-tun', 'type')).trim(), 'geneve');
    t.is((await sb.vsctl('get', 'interface', 'vxlan-tun', 'ofport')).trim(), '4097');
    const baseline = await sb.ofctl('-O', 'OpenFlow13', '--no-stats', 'dump-flows', 'br-int');

    // P1's tap is not plugged yet: PENDING, and no flow for it.
    const [r1] = await pushStream(client, [fixture('01-first-port.json')]);
    const p1 = r1!.operationStatuses.find((s) => s.resourceId === 'P1' && s.resourceType === 2);
    t.is(p1?.operationStatus, OperationStatus.PENDING);
    t.regex(p1?.statusDetail ?? '', /not on ovs yet/);

    // Nova plugs the tap with external_ids:iface-id=P1: the agent notices (OVSDB monitor) and programs it.
    await sb.vsctl('add-port', 'br-int', 'tapP1', '--', 'set', 'interface', 'tapP1', 'type=dummy', 'ofport_request=7', 'external_ids:iface-id=P1', `options:tx_pcap=${sb.dir}/tapP1.pcap`);
    await until(async () => (await sb!.ofctl('-O', 'OpenFlow13', 'dump-flows', 'br-int', 'table=0,in_port=7')).includes('in_port=7'), 'P1 classification flow');

    // ARP for the remote neighbor P0 is answered out of the input port, in OVS itself.
    const arp = await sb.appctl('ofproto/trace', 'br-int', 'in_port=7,arp,dl_src=00:aa:bb:15:eb:3f,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.0.5,arp_tpa=10.1.0.4,arp_sha=00:aa:bb:15:eb:3f');
    t.regex(arp, /arp_op=2,arp_sha=00:00:0a:01:02:03/);
    t.regex(arp, /Datapath actions: set\(eth\(src=00:00:0a:01:02:03,dst=00:aa:bb:15:eb:3f\)\),set\(arp\(sip=10\.1\.0\.4,tip=10\.1\.0\.5,op=2/);

    // The admin API proxies the trace to the real bridge and names the resource behind each step.
    const admin = `http://127.0.0.1:${agent.adminPort}`;
    const traced = (await (await fetch(`${admin}/v1/trace?flow=${encodeURIComponent('in_port=7,arp,dl_src=00:aa:bb:15:eb:3f,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.0.5,arp_tpa=10.1.0.4,arp_sha=00:aa:bb:15:eb:3f')}`)).json()) as { trace: string };
    t.regex(traced.trace, /cookie 0x[0-9a-f]+ \[port:P1\]/);
    t.regex(traced.trace, /cookie 0x[0-9a-f]+ \[neighbor:L2\/P0\]/);
    const flows = (await (await fetch(`${admin}/v1/flows`)).json()) as { flows: { match: string; owners: string[] }[] };
    t.deepEqual(flows.flows.find((f) => f.match === 'in_port=7')?.owners, ['port:P1']);

    // Unicast to P0 leaves on the VXLAN tunnel with VNI 5001 to P0's host.
    // (the underlay: a separate bridge holding this host's tunnel IP, as on a real host)
    await sb.vsctl('add-br', 'br-phy', '--', 'set', 'bridge', 'br-phy', 'datapath_type=dummy', '--', 'add-port', 'br-phy', 'eth0', '--', 'set', 'interface', 'eth0', 'type=dummy');
    await sb.appctl('netdev-dummy/ip4addr', 'br-phy', '10.0.0.11/24');
    await sb.appctl('ovs/route/add', '10.0.0.0/24', 'br-phy');
    await sb.appctl('tnl/arp/set', 'br-phy', '10.0.0.12', 'aa:55:aa:55:00:12');
    // (P1's group allows SSH in and nothing out: its SSH reply is what may leave.)
    const uni = await sb.appctl('ofproto/trace', 'br-int', 'in_port=7,tcp,dl_src=00:aa:bb:15:eb:3f,dl_dst=00:00:0a:01:02:03,nw_src=10.1.0.5,nw_dst=10.1.0.4,tcp_src=22,tcp_dst=40000', '--ct-next', 'trk,est,rpl');
    t.regex(uni, /tunneling to 10\.0\.0\.12/);
    t.regex(uni, /vxlan\(flags=0x8000000,vni=0x1389\)/);

    // DHCP from the VM goes to the controller (the agent).
    const dhcp = await sb.appctl('ofproto/trace', 'br-int', 'in_port=7,udp,dl_src=00:aa:bb:15:eb:3f,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=0.0.0.0,nw_dst=255.255.255.255,udp_src=68,udp_dst=67');
    t.regex(dhcp, /controller\(userdata=02\)/);

    // A real DHCP exchange through the switch: DISCOVER in on the VM's port, the agent's OFFER
    // (packet-in, packet-out) out of it; then REQUEST → ACK.
    const discover = buildDhcpClientFrame({ type: DHCP.DISCOVER, xid: 0xabcd, broadcast: false, ciaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr: '00:aa:bb:15:eb:3f', requestedIp: null, serverId: null });
    await sb.appctl('netdev-dummy/receive', 'tapP1', discover.toString('hex'));
    const pcap = `${sb.dir}/tapP1.pcap`;
    const dhcpReplies = (): ReturnType<typeof parseDhcpReplyFrame>[] => readPcap(pcap).filter((f) => f.length > 282 && f.readUInt16BE(12) === 0x0800 && f[23] === 17 && f.readUInt16BE(34) === 67).map(parseDhcpReplyFrame);
    await until(() => Promise.resolve(dhcpReplies().length >= 1), 'DHCP OFFER');
    const offer = dhcpReplies()[0]!;
    t.is(offer.type, DHCP.OFFER);
    t.is(offer.xid, 0xabcd);
    t.is(offer.yiaddr, '10.1.0.5');
    t.deepEqual([...offer.options.get(3)!], [10, 1, 0, 1]); // router = gateway
    t.deepEqual([...offer.options.get(54)!], [10, 1, 0, 1]); // server id = gateway
    t.is(offer.options.get(26)!.readUInt16BE(0), 1450); // MTU: 1500 minus VXLAN overhead
    const request = buildDhcpClientFrame({ type: DHCP.REQUEST, xid: 0xabce, broadcast: false, ciaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr: '00:aa:bb:15:eb:3f', requestedIp: '10.1.0.5', serverId: '10.1.0.1' });
    await sb.appctl('netdev-dummy/receive', 'tapP1', request.toString('hex'));
    await until(() => Promise.resolve(dhcpReplies().length >= 2), 'DHCP ACK');
    t.is(dhcpReplies()[1]!.type, DHCP.ACK);

    // Re-sending the same state changes nothing on the switch.
    const before = await sb.ofctl('-O', 'OpenFlow13', '--no-stats', 'dump-flows', 'br-int');
    const [again] = await pushStream(client, [fixture('01-first-port.json')]);
    t.true(again!.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));
    t.is(await sb.ofctl('-O', 'OpenFlow13', '--no-stats', 'dump-flows', 'br-int'), before);

    // Deleting every resource returns the table to its baseline.
    const del = fixture('01-first-port.json');
    for (const m of [del.vpcStates, del.subnetStates, del.portStates, del.dhcpStates, del.securityGroupStates, del.neighborStates]) {
      for (const s of Object.values(m)) (s as { operationType: number }).operationType = 4;
    }
    const [dr] = await pushStream(client, [del]);
    t.true(dr!.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));
    t.is(await sb.ofctl('-O', 'OpenFlow13', '--no-stats', 'dump-flows', 'br-int'), baseline);
  } finally {
    client.close();
    await agent.stop();
  }
});

maybe('an existing br-int is adopted as it is: datapath type and fail mode untouched, tunnel ports added', async (t) => {
  const own = await startSandbox();
  try {
    await own.vsctl('add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=dummy', 'fail-mode=standalone');
    const agent = await startAgent(resolveConfig({
      listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: '10.0.0.11', dataplane: 'ovs',
      ovsDb: `unix:${own.dbSocket}`, ovsRundir: own.dir, ovsDatapathType: 'netdev',
    }), silentLogger());
    try {
      t.is((await own.vsctl('get', 'bridge', 'br-int', 'datapath_type')).trim(), 'dummy');
      t.is((await own.vsctl('get', 'bridge', 'br-int', 'fail_mode')).trim(), 'standalone');
      t.is((await own.vsctl('get', 'interface', 'gnv-tun', 'ofport')).trim(), '4096');
      t.regex(await own.ofctl('-O', 'OpenFlow13', 'dump-flows', 'br-int'), /priority=0 actions=drop/);
    } finally {
      await agent.stop();
    }
  } finally {
    await own.stop();
  }
});
