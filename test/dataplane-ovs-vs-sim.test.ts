// The simulator held to real OVS 3.1 on the agent's own flows: the same command lines (build
// br-int, bundle the rendered flows, dump them, trace packets) run against a private OVS sandbox
// and against ovs-sim, and every output must agree after the corpus's one normalization.
import test from 'ava';
import { render } from '../agent/render.js';
import { ovsMissing } from './helpers/ovs-sandbox.js';
import { bridgeLine, onOvsAndSim } from './helpers/ovs-vs-sim.js';

const missing = await ovsMissing();
if (missing) console.log(`dataplane-ovs-vs-sim: ${missing}`);
const maybe = missing ? test.skip : test;

const fixtures = ['01-first-port.json', '02-remote-neighbor-only.json', '03-second-local-port.json', '04-router-attach.json']
  .map((f) => new URL(`./fixtures/ncm-sequence/${f}`, import.meta.url).pathname);

// P1 (00:aa:bb:15:eb:3f, 10.1.0.5) is on OpenFlow port 1, P3 (fa:16:3e:5a:00:03, 10.1.0.7) on 2;
// P0 (10.1.0.4) is behind 10.0.0.12 and P2 (10.1.0.6) behind 10.0.0.13, VNI 5001 over VXLAN.
const PACKETS: Record<string, string> = {
  'ARP for a remote neighbor': 'in_port=1,arp,dl_src=00:aa:bb:15:eb:3f,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.0.5,arp_tpa=10.1.0.4,arp_sha=00:aa:bb:15:eb:3f',
  'ARP for the gateway': 'in_port=2,arp,dl_src=fa:16:3e:5a:00:03,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.0.7,arp_tpa=10.1.0.1,arp_sha=fa:16:3e:5a:00:03',
  'ARP for an unknown address': 'in_port=1,arp,dl_src=00:aa:bb:15:eb:3f,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.0.5,arp_tpa=10.1.0.99',
  'ARP probe for its own address': 'in_port=1,arp,dl_src=00:aa:bb:15:eb:3f,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=0.0.0.0,arp_tpa=10.1.0.5',
  'gratuitous ARP reply': 'in_port=1,arp,dl_src=00:aa:bb:15:eb:3f,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=2,arp_spa=10.1.0.5,arp_tpa=10.1.0.5',
  'unicast to a local port': 'in_port=1,ip,dl_src=00:aa:bb:15:eb:3f,dl_dst=fa:16:3e:5a:00:03,nw_src=10.1.0.5,nw_dst=10.1.0.7',
  'unicast to a remote port': 'in_port=1,ip,dl_src=00:aa:bb:15:eb:3f,dl_dst=fa:16:3e:5a:00:02,nw_src=10.1.0.5,nw_dst=10.1.0.6',
  'broadcast from a local port': 'in_port=1,ip,dl_src=00:aa:bb:15:eb:3f,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.1.0.5,nw_dst=10.1.0.255',
  'DHCP discover': 'in_port=2,udp,dl_src=fa:16:3e:5a:00:03,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=0.0.0.0,nw_dst=255.255.255.255,udp_src=68,udp_dst=67',
  'rogue DHCP server': 'in_port=2,udp,dl_src=fa:16:3e:5a:00:03,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.1.0.7,nw_dst=255.255.255.255,udp_src=67,udp_dst=68',
  'from the VXLAN tunnel to a local port': 'in_port=4097,tun_id=0x1389,tun_src=10.0.0.12,tun_dst=10.0.0.11,ip,dl_src=00:00:0a:01:02:03,dl_dst=00:aa:bb:15:eb:3f,nw_src=10.1.0.4,nw_dst=10.1.0.5',
  'broadcast from the tunnel': 'in_port=4097,tun_id=0x1389,tun_src=10.0.0.12,tun_dst=10.0.0.11,ip,dl_src=00:00:0a:01:02:03,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.1.0.4,nw_dst=10.1.0.255',
  'from an unknown port': 'in_port=9,ip,dl_src=00:11:22:33:44:55,dl_dst=fa:16:3e:5a:00:03,nw_src=10.9.9.9,nw_dst=10.1.0.7',
};


maybe('dump-flows and ofproto/trace match real OVS 3.1 on the agent\'s flows', async (t) => {
  const r = await render(fixtures, '10.0.0.11');
  const flows = r.flows();
  t.true(flows.length > 20);
  const out = await onOvsAndSim(t, flows, [
    bridgeLine([1, 2, 9]),
    'ovs-ofctl -O OpenFlow13 --bundle add-flows br-int flows.txt',
    'ovs-ofctl -O OpenFlow13 --no-stats dump-flows br-int',
    ...Object.values(PACKETS).map((p) => `ovs-appctl ofproto/trace br-int ${p}`),
  ]);
  t.true(out[2]!.split('\n').length > 20);
});

maybe('a network of 600 remote hosts and 300 local ports: flood flows fit OpenFlow messages, and OVS and the simulator flood alike', async (t) => {
  const { Renderer } = await import('../agent/render.js');
  const { GoalStateV2 } = await import('../proto/gen/alcor/goalstate.js');
  const { neighborState, portState, subnetState } = await import('./helpers/agents.js');
  const r = new Renderer('10.0.0.11');
  await r.start();
  // The gateway out of the ports' way (one address, one owner).
  const gs = GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S', { cidr: '10.0.0.0/8', gateway: { ipAddress: '10.200.0.1', macAddress: '6c:dd:ee:00:00:40' } }) } });
  for (let i = 0; i < 300; i++) gs.portStates[`P${i}`] = portState(`P${i}`, { macAddress: `fa:16:3e:00:${(i >> 8).toString(16)}:${(i & 255).toString(16)}`, fixedIps: [{ subnetId: 'S', ipAddress: `10.1.${i >> 8}.${i & 255}` }] });
  for (let i = 0; i < 600; i++) gs.neighborStates[`L2/N${i}`] = neighborState(`N${i}`, i, { hostIpAddress: `10.0.${1 + (i >> 8)}.${i & 255}` });
  await r.intakeFor(gs);
  const flows = r.flows();
  t.true(flows.some((f) => f.table === 45), 'remote flooding spilled into flood_remote');
  t.true(flows.some((f) => f.table === 55), 'local flooding spilled into flood_local');
  const packet = 'in_port=1,ip,dl_src=fa:16:3e:00:00:00,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.1.0.0,nw_dst=10.255.255.255';
  const out = await onOvsAndSim(t, flows, [
    bridgeLine(Array.from({ length: 300 }, (_, i) => i + 1)),
    'ovs-ofctl -O OpenFlow13 --bundle add-flows br-int flows.txt',
    'ovs-ofctl -O OpenFlow13 --no-stats dump-flows br-int',
    `ovs-appctl ofproto/trace br-int ${packet}`,
  ]);
  const trace = out[3]!.split('\n');
  t.is(trace.filter((l) => l.trim() === 'output:4097').length, 600);
  t.is(trace.filter((l) => /^\s*output:\d+$/.test(l) && !l.includes('4097')).length, 300);
});
