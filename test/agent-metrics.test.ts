// GET /metrics: Prometheus text, parsed by a Prometheus text-format parser, counting what an
// agent on a simulated host really did: goal states over gRPC (stream and unary), resources by
// kind and status, apply times, installed flows by bridge, DHCP replies to a simulated VM,
// packet-ins, the build info and the process metrics.
import { readFileSync } from 'node:fs';
import test from 'ava';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { resolveConfig } from '../agent/config.js';
import { startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { AgentMetrics } from '../agent/metrics.js';
import { makeClient, pushUnary, readGoalStateFile } from '../agent/push.js';
import { VERSION } from '../agent/version.js';
import { SimBackend } from '../dataplane/backends/sim.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { Fabric, SimVm } from '../ovs-sim/index.js';
import { GoalState, GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { pushOne } from './helpers/agents.js';

interface Sample { labels?: Record<string, string>; value?: string; count?: string; buckets?: Record<string, string> }
interface Family { name: string; type: string; metrics: Sample[] }

const fixture = (name: string): string => new URL(`./fixtures/${name}`, import.meta.url).pathname;

function value(families: Family[], name: string, labels: Record<string, string> = {}): number | undefined {
  const f = families.find((x) => x.name === name);
  const m = f?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  if (!m) return undefined;
  return Number(m.value ?? m.count);
}

test('/metrics counts goal states, resources, apply times, flows, DHCP replies and packet-ins', async (t) => {
  const fabric = new Fabric();
  const host = fabric.addHost('host1', '10.0.0.11');
  const backend = new SimBackend(host);
  const metrics = new AgentMetrics();
  metrics.instrumentBackend(backend);
  const dataplane = new FlowDataplane(backend, undefined, { leaseSeconds: 3600, domain: '', dns: [], underlayMtu: 1500 });
  const agent = await startAgent(resolveConfig({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: '10.0.0.11', dataplane: 'dry-run' }), silentLogger(), dataplane, metrics);
  try {
    const vm = new SimVm('P1', '00:aa:bb:15:eb:3f');
    host.plug('br-int', vm, 'tapP1', { 'iface-id': 'P1' });
    const addr = `127.0.0.1:${agent.grpcPort}`;
    await pushOne(addr, readGoalStateFile(fixture('ncm-port-create.json'), GoalStateV2));
    await pushOne(addr, readGoalStateFile(fixture('bad-resource.json'), GoalStateV2));
    const client = makeClient(addr);
    await pushUnary(client, readGoalStateFile(fixture('v1-goalstate.json'), GoalState));
    client.close();
    vm.startDhcp();
    fabric.run();
    t.is(vm.dhcp.state, 'bound');

    const res = await fetch(`http://127.0.0.1:${agent.adminPort}/metrics`);
    t.is(res.status, 200);
    t.regex(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const families = parsePrometheusTextFormat(text) as Family[];
    t.is(value(families, 'aca_goal_states_total', { transport: 'stream', result: 'success' }), 1);
    t.is(value(families, 'aca_goal_states_total', { transport: 'stream', result: 'refused' }), 1);
    t.is(value(families, 'aca_goal_states_total', { transport: 'unary' }), 1);
    t.is(value(families, 'aca_resources_total', { kind: 'port', status: 'PENDING' }), 2, 'GOOD and P9 have no interface on this host');
    t.is(value(families, 'aca_resources_total', { kind: 'port', status: 'INVALID_ARG' }), 1);
    t.is(value(families, 'aca_resources_total', { kind: 'port', status: 'SUCCESS' }), 1, 'P1, plugged');
    t.is(value(families, 'aca_resources_total', { kind: 'neighbor', status: 'SUCCESS' }), 2);
    const apply = families.find((f) => f.name === 'aca_goal_state_apply_seconds');
    t.is(apply?.type, 'HISTOGRAM');
    // (the parser drops a histogram's labels: the counts are read from the text)
    t.regex(text, /\naca_goal_state_apply_seconds_count\{transport="stream"\} 2\n/);
    t.regex(text, /\naca_goal_state_apply_seconds_count\{transport="unary"\} 1\n/);
    const info = (await (await fetch(`http://127.0.0.1:${agent.adminPort}/v1/info`)).json()) as { flows: number };
    t.is(value(families, 'aca_flows', { bridge: 'br-int' }), info.flows);
    t.true(info.flows > 0);
    t.is(value(families, 'aca_dhcp_replies_total', { type: 'OFFER' }), 1);
    t.is(value(families, 'aca_dhcp_replies_total', { type: 'ACK' }), 1);
    t.is(value(families, 'aca_dhcp_replies_total', { type: 'NAK' }), 0);
    t.is(value(families, 'aca_packet_ins_total', { reason: 'dhcp' }), 2);
    t.is(value(families, 'aca_ovs_reconnects_total'), 0);
    t.is(value(families, 'aca_build_info', { version: VERSION }), 1);
    t.true(families.some((f) => f.name === 'process_resident_memory_bytes'));
    t.true(families.some((f) => f.name === 'nodejs_eventloop_lag_seconds'));
  } finally {
    await agent.stop();
  }
});

test('the package.json version is what /metrics and /v1/info report', (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  t.is(VERSION, pkg.version);
});
