// Distributed routing on real Open vSwitch 3.1: two private sandboxes (two hosts), the agent on
// each, goal states shaped as DPM sends them. ofproto/trace on each live switch shows what
// leaves it (tunnel, VNI, MACs, TTL, output port); the same traces over the agents' flows give
// identical output on real OVS and on the simulator; after every update and delete the switch
// equals what the agent believes.
import test, { type ExecutionContext } from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { resolveConfig } from '../agent/config.js';
import { startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';
import type { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { TABLES } from '../dataplane/pipeline.js';
import { type OvsSandbox, ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';
import { bridgeLine, onOvsAndSim } from './helpers/ovs-vs-sim.js';
import { type RoutedCloud, dvrMacOf, goalStateFor, routerState } from './helpers/routed-cloud.js';
import { switchEqualsAgent as switchHolds } from './helpers/switch-state.js';
import { until } from './helpers/wait.js';

const missing = await ovsMissing();
if (missing) console.log(`routing-ovs: ${missing}`);
const maybe = missing ? test.skip : test.serial;

const A = '10.0.0.11';
const B = '10.0.0.12';
const GW1 = 'fa:16:3e:aa:01:01';
const GW2 = 'fa:16:3e:aa:02:01';
const CLOUD: RoutedCloud = {
  subnets: [
    { id: 'S1', vpc: 'V1', cidr: '10.1.0.0/24', gw: '10.1.0.1', gwMac: GW1, vni: 5001, geneve: true },
    { id: 'S2', vpc: 'V1', cidr: '10.2.0.0/24', gw: '10.2.0.1', gwMac: GW2, vni: 6001, geneve: false },
  ],
  vms: [
    { id: 'a1', mac: 'fa:16:3e:00:0a:01', ip: '10.1.0.5', subnet: 'S1', host: A },
    { id: 'a2', mac: 'fa:16:3e:00:0a:02', ip: '10.2.0.5', subnet: 'S2', host: A },
    { id: 'b2', mac: 'fa:16:3e:00:0b:02', ip: '10.2.0.6', subnet: 'S2', host: B },
    { id: 'b1', mac: 'fa:16:3e:00:0b:01', ip: '10.1.0.6', subnet: 'S1', host: B },
  ],
  routers: [{ id: 'R1', subnets: ['S1', 'S2'], rules: { S1: [{ id: 'via-b2', destination: '192.168.50.0/24', nextHop: '10.2.0.6' }] } }],
};
/** OpenFlow ports of the taps, in the order of CLOUD.vms per host. */
const ofportOf = (id: string): number => {
  const v = CLOUD.vms.find((x) => x.id === id)!;
  return CLOUD.vms.filter((x) => x.host === v.host).findIndex((x) => x.id === id) + 1;
};

interface Host { sb: OvsSandbox; dp: FlowDataplane; push(gs: GoalStateV2): Promise<void>; close(): Promise<void> }

async function hostOn(t: ExecutionContext, ip: string): Promise<Host> {
  const sb = await startSandbox();
  const agent = await startAgent(resolveConfig({
    listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: ip, dataplane: 'ovs',
    ovsDb: `unix:${sb.dbSocket}`, ovsRundir: sb.dir, ovsDatapathType: 'dummy', stateDir: 'none',
  }), silentLogger());
  const client = makeClient(`127.0.0.1:${agent.grpcPort}`);
  for (const v of CLOUD.vms.filter((x) => x.host === ip)) {
    await sb.vsctl('add-port', 'br-int', `tap${v.id}`, '--', 'set', 'interface', `tap${v.id}`, 'type=dummy', `ofport_request=${ofportOf(v.id)}`, `external_ids:iface-id=${v.id}`);
  }
  // The underlay: this host's tunnel IP on a separate bridge, the peer's MAC known.
  await sb.vsctl('add-br', 'br-phy', '--', 'set', 'bridge', 'br-phy', 'datapath_type=dummy', '--', 'add-port', 'br-phy', 'eth0', '--', 'set', 'interface', 'eth0', 'type=dummy');
  await sb.appctl('netdev-dummy/ip4addr', 'br-phy', `${ip}/24`);
  await sb.appctl('ovs/route/add', '10.0.0.0/24', 'br-phy');
  for (const peer of [A, B].filter((x) => x !== ip)) await sb.appctl('tnl/arp/set', 'br-phy', peer, 'aa:55:aa:55:00:99');
  const dp = agent.dataplane as FlowDataplane;
  await until(() => CLOUD.vms.filter((x) => x.host === ip).every((v) => dp.backend.bindings.ofport(v.id) !== undefined), `taps bound on ${ip}`);
  return {
    sb, dp,
    async push(gs) {
      const [r] = await pushStream(client, [gs]);
      t.deepEqual(r!.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS).map((s) => `${s.resourceId}: ${s.statusDetail}`), [], `push to ${ip}`);
    },
    async close() {
      client.close();
      await agent.stop();
      await sb.stop();
    },
  };
}

const switchEqualsAgent = (t: ExecutionContext, h: Host, step: string): Promise<void> => switchHolds(t, h.dp, step);

const vm = (id: string) => CLOUD.vms.find((v) => v.id === id)!;
/** A packet from a local VM to its gateway MAC, for `ip`. */
const routed = (from: string, dst: string, proto = 'udp', l4 = 'udp_src=5000,udp_dst=7000', ttl = 64): string => {
  const v = vm(from);
  const gw = CLOUD.subnets.find((s) => s.id === v.subnet)!.gwMac;
  return `in_port=${ofportOf(from)},${proto},dl_src=${v.mac},dl_dst=${gw},nw_src=${v.ip},nw_dst=${dst},nw_ttl=${ttl},${l4}`;
};
const TRACES_A = {
  sameHost: routed('a1', '10.2.0.5'),
  remote: routed('a1', '10.2.0.6'),
  rule: routed('a1', '192.168.50.9'),
  gatewayPing: routed('a1', '10.2.0.1', 'icmp', 'icmp_type=8,icmp_code=0'),
  ttl1: routed('a1', '10.2.0.6', 'udp', 'udp_src=5000,udp_dst=7000', 1),
  noRoute: routed('a1', '8.8.8.8'),
};
const TRACES_B = {
  arrival: `in_port=4097,tun_id=0x1771,tun_src=${A},tun_dst=${B},udp,dl_src=${dvrMacOf(A)},dl_dst=${vm('b2').mac},nw_src=10.1.0.5,nw_dst=10.2.0.6,nw_ttl=63,udp_src=5000,udp_dst=7000`,
  replyRouted: routed('b2', '10.1.0.5'),
};

maybe('DVR on real OVS: traces of routed traffic on two hosts, identical on the simulator; exact updates and deletes', async (t) => {
  const ha = await hostOn(t, A);
  const hb = await hostOn(t, B);
  try {
    await ha.push(goalStateFor(CLOUD, A));
    await hb.push(goalStateFor(CLOUD, B));
    await switchEqualsAgent(t, ha, 'programming A');
    await switchEqualsAgent(t, hb, 'programming B');
    const trace = (h: Host, spec: string) => h.sb.appctl('ofproto/trace', 'br-int', spec);
    const actions = (text: string) => /Datapath actions: (.*)/.exec(text)?.[1] ?? '';

    // Same host, other subnet: the destination subnet's gateway MAC as source, TTL 63, its port.
    const sameHost = await trace(ha, TRACES_A.sameHost);
    t.regex(actions(sameHost), new RegExp(`^set\\(eth\\(src=${GW2},dst=${vm('a2').mac}\\)\\),set\\(ipv4\\(ttl=63\\)\\),\\d+$`));
    t.regex(sameHost, new RegExp(`-> output port is ${ofportOf('a2')}\\b`));
    // Remote: the destination subnet's VXLAN VNI to b2's host, this host's DVR MAC, TTL 63.
    const remote = await trace(ha, TRACES_A.remote);
    t.regex(remote, /tunneling to 10\.0\.0\.12/);
    t.regex(actions(remote), new RegExp(`set\\(eth\\(src=${dvrMacOf(A)},dst=${vm('b2').mac}\\)\\),set\\(ipv4\\(ttl=63\\)\\),tnl_push\\(tnl_port\\(4789\\),header\\(.*vxlan\\(flags=0x8000000,vni=0x1771\\)`));
    // The routing rule: to its next hop b2 (MAC and host), the IP destination unchanged.
    const rule = await trace(ha, TRACES_A.rule);
    t.regex(actions(rule), new RegExp(`set\\(eth\\(src=${dvrMacOf(A)},dst=${vm('b2').mac}\\)\\),set\\(ipv4\\(ttl=63\\)\\),tnl_push.*dst=10\\.0\\.0\\.12.*vni=0x1771`));
    // Ping to another joined subnet's gateway: answered in place, from that gateway IP.
    const echo = await trace(ha, TRACES_A.gatewayPing);
    t.regex(actions(echo), new RegExp(`^set\\(eth\\(src=${GW1},dst=${vm('a1').mac}\\)\\),set\\(ipv4\\(src=10\\.2\\.0\\.1,dst=10\\.1\\.0\\.5\\)\\),set\\(icmp\\(type=0,code=0\\)\\),\\d+$`));
    t.regex(echo, /IN_PORT/);
    t.is(actions(await trace(ha, TRACES_A.ttl1)), 'drop');
    t.is(actions(await trace(ha, TRACES_A.noRoute)), 'drop');
    // Host B: a routed arrival gets its gateway MAC back; B routes the reply itself over Geneve.
    const arrival = await trace(hb, TRACES_B.arrival);
    t.regex(actions(arrival), new RegExp(`^set\\(eth\\(src=${GW2}\\)\\),\\d+$`));
    t.regex(arrival, new RegExp(`-> output port is ${ofportOf('b2')}\\b`));
    t.regex(actions(await trace(hb, TRACES_B.replyRouted)), new RegExp(`set\\(eth\\(src=${dvrMacOf(B)},dst=${vm('a1').mac}\\)\\),set\\(ipv4\\(ttl=63\\)\\),tnl_push\\(tnl_port\\(6081\\).*dst=10\\.0\\.0\\.11.*geneve\\(vni=0x1389\\)`));

    // The same traces over the agents' flows: real OVS and the simulator print the same.
    for (const [h, traces] of [[ha, TRACES_A], [hb, TRACES_B]] as const) {
      const flows = [...h.dp.installed.flows.values()];
      const out = await onOvsAndSim(t, flows, [
        bridgeLine([1, 2]),
        'ovs-ofctl -O OpenFlow13 --bundle add-flows br-int flows.txt',
        'ovs-ofctl -O OpenFlow13 --no-stats dump-flows br-int',
        ...Object.values(traces).map((p) => `ovs-appctl ofproto/trace br-int ${p}`),
      ]);
      t.true(out[2]!.includes('table=30'));
    }

    // Updates and deletes are exact on the switch.
    const r1 = CLOUD.routers[0]!;
    const routerOnA = (r: typeof r1, op = 0) => GoalStateV2.fromPartial({ routerStates: { [`${A}/R1`]: routerState(r, op, dvrMacOf(A)) } });
    await ha.push(routerOnA({ ...r1, rules: {} }));
    t.is(actions(await trace(ha, TRACES_A.rule)), 'drop', 'the rule is gone');
    await switchEqualsAgent(t, ha, 'a rule removed');
    await ha.push(routerOnA({ ...r1, subnets: ['S1'], rules: {} }));
    t.is(actions(await trace(ha, TRACES_A.remote)), 'drop', 'S2 is no longer routed');
    t.is(actions(await trace(ha, TRACES_A.gatewayPing)), 'drop');
    await switchEqualsAgent(t, ha, 'a subnet removed from the router');
    await ha.push(routerOnA(r1));
    t.regex(actions(await trace(ha, TRACES_A.rule)), /vni=0x1771/);
    await ha.push(routerOnA(r1, 4));
    await switchEqualsAgent(t, ha, 'the router deleted');
    const left = (await ha.sb.ofctl('-O', 'OpenFlow13', '--no-stats', 'dump-flows', 'br-int')).split('\n')
      .filter((l) => [TABLES.L3_GATEWAY.id, TABLES.L3_ROUTE.id, TABLES.DVR_RESTORE.id].some((id) => l.includes(`table=${id},`)) && !l.includes('priority=0'));
    t.deepEqual(left, [], 'no routing flow left');
  } finally {
    await ha.close();
    await hb.close();
  }
});
