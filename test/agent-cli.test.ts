// Every CLI command as a user runs it: `bin/aca.mjs` in child processes (argument arrays, no
// shell), against an agent started the same way on loopback.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { type ResultPromise, execa } from 'execa';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { freePort } from './helpers/agents.js';
import { until } from './helpers/wait.js';
import { natGoalStateFor } from './helpers/nat-cloud.js';
import type { RoutedCloud } from './helpers/routed-cloud.js';

const aca = new URL('../bin/aca.mjs', import.meta.url).pathname;
const fixture = (name: string): string => new URL(`./fixtures/${name}`, import.meta.url).pathname;
const run = (args: string[], env: Record<string, string> = {}) => execa(process.execPath, [aca, ...args], { reject: false, env });

let daemon: ResultPromise | undefined;
let grpcAddr = '';
let adminAddr = '';

test.before(async () => {
  const [g, a] = [await freePort(), await freePort()];
  grpcAddr = `127.0.0.1:${g}`;
  adminAddr = `127.0.0.1:${a}`;
  daemon = execa(process.execPath, [aca, 'agent', '--listen', grpcAddr, '--admin', adminAddr, '--host-ip', '10.0.0.11', '--log-format', 'json'], { reject: false });
  // Generous: a loaded machine starts a child slowly; a hang is what this catches.
  await until(() => fetch(`http://${adminAddr}/readyz`).then((r) => r.status === 200, () => false), 'the agent to be ready', 120_000);
});

test.after.always(() => { daemon?.kill('SIGKILL'); });

test.serial('aca push: one stream per file, a readable table, exit 0', async (t) => {
  const r = await run(['push', fixture('ncm-port-create.json'), '--agent', grpcAddr]);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /ncm-port-create\.json: 7 resources, \d+ µs/);
  t.regex(r.stdout, /TYPE\s+ID\s+OP\s+STATUS\s+µs\s+DETAIL/);
  t.regex(r.stdout, /PORT\s+P1\s+CREATE\s+SUCCESS/);
  t.regex(r.stdout, /NEIGHBOR\s+P0\s+CREATE\s+SUCCESS/);
});

test.serial('aca push: a bad resource exits 1 and shows INVALID_ARG with the reason; the good one applied', async (t) => {
  const r = await run(['push', fixture('bad-resource.json'), '--agent', grpcAddr]);
  t.is(r.exitCode, 1);
  t.regex(r.stdout, /PORT\s+BAD\s+CREATE\s+INVALID_ARG\s+\d+\s+mac_address: "fa:16:3e:00:00" is not a MAC address/);
  t.regex(r.stdout, /PORT\s+GOOD\s+CREATE\s+SUCCESS/);
});

test.serial('aca push --json, --v1, and a binary file', async (t) => {
  const json = await run(['push', fixture('ncm-port-create.json'), '--agent', grpcAddr, '--json']);
  t.is(json.exitCode, 0);
  const parsed = JSON.parse(json.stdout) as { file: string; reply: { operationStatuses: { resourceId: string }[] } }[];
  t.is(parsed[0]!.reply.operationStatuses.length, 7);
  const v1 = await run(['push', '--v1', fixture('v1-goalstate.json'), '--agent', grpcAddr]);
  t.is(v1.exitCode, 0, v1.stdout);
  t.regex(v1.stdout, /PORT\s+P9\s+CREATE\s+SUCCESS/);
  const dir = mkdtempSync(join(tmpdir(), 'aca-cli-'));
  const bin = join(dir, 'state.bin');
  writeFileSync(bin, GoalStateV2.encode(GoalStateV2.fromJSON({ subnetStates: { SB: { operationType: 'INFO', configuration: { id: 'SB', cidr: '10.2.0.0/24', tunnelId: '7' } } } })).finish());
  const b = await run(['push', bin, '--agent', grpcAddr]);
  t.is(b.exitCode, 0, b.stdout);
  t.regex(b.stdout, /SUBNET\s+SB\s+INFO\s+SUCCESS/);
});

test.serial('aca ctl state, the admin API and aca ctl flows show what was pushed', async (t) => {
  const state = await run(['ctl', 'state', '--admin', adminAddr]);
  t.is(state.exitCode, 0, state.stderr);
  t.regex(state.stdout, /ports: 3\n {2}P1\n {2}GOOD\n {2}P9/);
  t.regex(state.stdout, /dhcp: 1\n {2}00:aa:bb:15:eb:3f\/10\.1\.0\.5/);
  const json = JSON.parse((await run(['ctl', 'state', '--admin', adminAddr, '--json'])).stdout) as Record<string, { id: string }[]>;
  t.deepEqual(Object.keys(json).sort(), ['dhcp', 'gateways', 'neighbors', 'ports', 'routers', 'securityGroups', 'subnets', 'vpcs']);
  t.is(json.neighbors!.length, 2);
  t.true(json.ports!.every((p) => typeof p.id === 'string'));
  t.is((await fetch(`http://${adminAddr}/healthz`)).status, 200);
  t.is((await fetch(`http://${adminAddr}/nope`)).status, 404);
  const flows = await run(['ctl', 'flows', '--admin', adminAddr]);
  t.regex(flows.stdout, /table=20,priority=100,cookie=0x[0-9a-f]+,arp,metadata=5001,arp_tpa=10\.1\.0\.4,arp_op=1 actions=/);
  // The default dataplane is the embedded simulator (a standalone host plugs ports as they
  // appear; P1 came first, so OpenFlow port 1): P1's ARP for P0 is answered by the flow P0's
  // neighbor entry made, and the trace names both resources. P1 has a security group, so port
  // security passes only ARP from its own MAC (arp_sha).
  const trace = await run(['ctl', 'trace', 'br-int', 'in_port=1,arp,dl_src=00:aa:bb:15:eb:3f,arp_op=1,arp_spa=10.1.0.5,arp_tpa=10.1.0.4,arp_sha=00:aa:bb:15:eb:3f', '--admin', adminAddr]);
  t.is(trace.exitCode, 0, trace.stderr);
  t.regex(trace.stdout, /^Flow: arp,in_port=1,/);
  t.regex(trace.stdout, / 0\. in_port=1, priority 100, cookie 0x[0-9a-f]+ \[port:P1\]/);
  t.regex(trace.stdout, /20\. arp,metadata=0x1389,arp_tpa=10\.1\.0\.4,arp_op=1, priority 100, cookie 0x[0-9a-f]+ \[neighbor:L2\/P0\]/);
  t.regex(trace.stdout, /Final flow: arp,reg6=0x1,metadata=0x1389,in_port=1,.*arp_op=2,arp_sha=00:00:0a:01:02:03/);
  // Datapath port numbers are the dummy datapath's (br-int, no digits in its name, took 1, so
  // tapP1 gets 2), and rewriting an ARP header is a slow-path action, as in OVS.
  t.regex(trace.stdout, /Datapath actions: set\(eth\(src=00:00:0a:01:02:03,dst=00:aa:bb:15:eb:3f\)\),set\(arp\(sip=10\.1\.0\.4,tip=10\.1\.0\.5,op=2,sha=00:00:0a:01:02:03,tha=00:aa:bb:15:eb:3f\)\),2\n/);
  t.regex(trace.stdout, /handled by the userspace slow path/);
  const bad = await run(['ctl', 'trace', 'br-int', 'in_port=1,bogus=3', '--admin', adminAddr]);
  t.is(bad.exitCode, 2);
  t.regex(bad.stderr, /Bad openflow flow syntax: in_port=1,bogus=3: unknown field bogus/);
});

test.serial('aca render prints flows, json with owners, and the minimal change of a second state', async (t) => {
  const seq = ['01-first-port.json', '02-remote-neighbor-only.json'].map((f) => fixture(`ncm-sequence/${f}`));
  const r = await run(['render', ...seq, '--host-ip', '10.0.0.11']);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /^# bridge br-int: \d+ flows/);
  // P1 is local (ofport 1); P0 and P2 are behind VXLAN tunnels to their hosts.
  t.regex(r.stdout, /in_port=1 actions=set_field:5001->metadata/);
  // Remote unicast: tunnel fields, the VXLAN port into the output register, then the output table.
  t.regex(r.stdout, /dl_dst=00:00:0a:01:02:03 actions=set_field:0x1389->tun_id,set_field:10\.0\.0\.12->tun_dst,load:4097->NXM_NX_REG5\[\],resubmit\(,70\)/);
  t.regex(r.stdout, /dl_dst=fa:16:3e:5a:00:02 actions=set_field:0x1389->tun_id,set_field:10\.0\.0\.13->tun_dst,load:4097->NXM_NX_REG5\[\],resubmit\(,70\)/);
  t.regex(r.stdout, /table=70,priority=0,cookie=0x[0-9a-f]+ actions=output:NXM_NX_REG5\[\]/);
  t.notRegex(r.stdout, /NORMAL/);
  const j = JSON.parse((await run(['render', ...seq, '--format', 'json'])).stdout) as { owners: string[]; match: string }[];
  t.deepEqual(j.find((f) => f.match === 'metadata=5001,dl_dst=fa:16:3e:5a:00:02')?.owners, ['neighbor:L2/P2']);
  const d = await run(['render', seq[0]!, '--diff', seq[1]!]);
  t.is(d.exitCode, 0, d.stderr);
  t.regex(d.stdout, /^# bridge br-int: \+2 ~1 -0/);
  t.regex(d.stdout, /\nmodify_strict table=40,priority=50,.*set_field:10\.0\.0\.13->tun_dst/);
  t.regex(d.stdout, /\nadd table=40,priority=100,.*dl_dst=fa:16:3e:5a:00:02/);
  const bad = await run(['render', fixture('bad-resource.json')]);
  t.is(bad.exitCode, 1);
  t.regex(bad.stderr, /port BAD: INVALID_ARG/);
});

test('aca agent --print-config merges file < env < flags', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aca-cli-'));
  const file = join(dir, 'aca.yaml');
  writeFileSync(file, 'listen: 127.0.0.1:1111\nadmin: 127.0.0.1:2222\nhost-ip: 10.1.1.1\n');
  const r = await run(['agent', '--config', file, '--print-config', '--admin', '127.0.0.1:3333'], { ACA_LISTEN: '127.0.0.1:4444' });
  t.is(r.exitCode, 0, r.stderr);
  const c = JSON.parse(r.stdout) as Record<string, unknown>;
  t.is(c.listen, '127.0.0.1:4444');
  t.is(c.admin, '127.0.0.1:3333');
  t.is(c.hostIp, '10.1.1.1');
  const bad = await run(['agent', '--print-config', '--dataplane', 'magic']);
  t.is(bad.exitCode, 2);
  t.regex(bad.stderr, /dataplane: "magic" is not one of/);
});

test('aca agent stops on SIGTERM with exit code 0', async (t) => {
  const [g, a] = [await freePort(), await freePort()];
  const child = execa(process.execPath, [aca, 'agent', '--listen', `127.0.0.1:${g}`, '--admin', `127.0.0.1:${a}`, '--host-ip', '10.0.0.11'], { reject: false });
  await until(() => fetch(`http://127.0.0.1:${a}/readyz`).then((r) => r.ok, () => false), 'the agent to be ready', 120_000);
  child.kill('SIGTERM');
  const r = await child;
  t.is(r.exitCode, 0);
  t.regex(r.stderr, /stopping.*SIGTERM/);
  t.regex(r.stderr, /agent stopped/);
});

test.serial('aca render --bridge-mappings renders the north-south flows on br-int and the external bridge; agent --print-config takes ACA_BRIDGE_MAPPINGS and refuses a bad mapping', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aca-cli-'));
  const file = join(dir, 'nat.json');
  const cloud: RoutedCloud = {
    subnets: [{ id: 'S1', vpc: 'V1', cidr: '10.1.0.0/24', gw: '10.1.0.1', gwMac: 'fa:16:3e:aa:01:01', vni: 5001, geneve: true }],
    vms: [{ id: 'e1', mac: 'fa:16:3e:00:0a:09', ip: '10.1.0.9', subnet: 'S1', host: '10.0.0.11' }],
    routers: [{ id: 'R1', subnets: ['S1'] }],
  };
  writeFileSync(file, JSON.stringify(GoalStateV2.toJSON(natGoalStateFor(cloud, { slices: { R1: { '10.0.0.11': [{ ip: '203.0.113.10', portMin: 1024, portMax: 2047 }] } }, eips: { e1: '203.0.113.50' } }, '10.0.0.11'))));
  const r = await run(['render', file, '--host-ip', '10.0.0.11', '--bridge-mappings', 'ext:br-ex']);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /ct\(commit,zone=\d+,table=32,nat\(src=203\.0\.113\.10:1024-2047\)\)/);
  t.regex(r.stdout, /\n# bridge br-ex: \d+ flows[\s\S]*arp_tpa=203\.0\.113\.50/);
  const without = await run(['render', file, '--host-ip', '10.0.0.11']);
  t.is(without.exitCode, 1, 'without the mapping the router\'s external gateway is refused');
  t.regex(without.stderr, /"ext" is not a bridge mapping of this host/);
  const bad = await run(['render', file, '--bridge-mappings', 'ext']);
  t.not(bad.exitCode, 0);
  t.regex(bad.stderr, /is not <network>:<bridge>/);
  const conf = await run(['agent', '--print-config'], { ACA_BRIDGE_MAPPINGS: 'ext:br-ex, other:br-other' });
  t.is(conf.exitCode, 0, conf.stderr);
  t.is((JSON.parse(conf.stdout) as { bridgeMappings: string }).bridgeMappings, 'ext:br-ex,other:br-other');
  const twice = await run(['agent', '--print-config', '--bridge-mappings', 'ext:br-ex,ext:br-two']);
  t.not(twice.exitCode, 0);
  t.regex(twice.stderr, /bridge mapping ext is given twice/);
});
