// The honest reconciler against a real Open vSwitch 3.1 (private sandbox, dummy datapath), the
// whole agent in process: a table the switch keeps full refuses one resource's flows (FAILURE with
// the switch's reason) while every other resource installs and later goal states keep answering
// SUCCESS; once the limit is lifted the switch converges by itself. The switch equals what the
// agent believes after every step of a scripted sequence (read back over OpenFlow and with
// ovs-ofctl). ovs-vswitchd restarts: the agent notices, answers honestly meanwhile, and puts
// every flow back without a push.
import test from 'ava';
import { execa } from 'execa';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { resolveConfig } from '../agent/config.js';
import { type Agent, startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';
import type { GoalStateOperationReply } from '../proto/gen/alcor/goalstateprovisioner.js';
import type { OvsBackend } from '../dataplane/backends/ovs.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { TABLES } from '../dataplane/pipeline.js';
import { neighborState, portState, subnetState } from './helpers/agents.js';
import { type OvsSandbox, ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';
import { comparable } from './helpers/switch-state.js';
import { until } from './helpers/wait.js';

const missing = await ovsMissing();
if (missing) console.log(`dataplane-ovs-lifecycle: ${missing}`);
const maybe = missing ? test.skip : test.serial;

async function agentOn(sb: OvsSandbox): Promise<{ agent: Agent; dp: FlowDataplane; push(gs: GoalStateV2): Promise<GoalStateOperationReply>; close(): Promise<void> }> {
  const agent = await startAgent(resolveConfig({
    listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: '10.0.0.11', dataplane: 'ovs',
    ovsDb: `unix:${sb.dbSocket}`, ovsRundir: sb.dir, ovsDatapathType: 'dummy', stateDir: 'none',
  }), silentLogger());
  const client = makeClient(`127.0.0.1:${agent.grpcPort}`);
  return {
    agent, dp: agent.dataplane as FlowDataplane,
    push: async (gs) => (await pushStream(client, [gs]))[0]!,
    async close() {
      client.close();
      await agent.stop();
    },
  };
}

const statusOf = (r: GoalStateOperationReply, id: string): { status: number; detail: string } => {
  const s = r.operationStatuses.find((x) => x.resourceId === id);
  return { status: s?.operationStatus ?? -1, detail: s?.statusDetail ?? '' };
};

/** The switch, read back over OpenFlow and counted by ovs-ofctl, equals what the agent believes. */
async function switchEqualsAgent(t: { deepEqual(a: unknown, b: unknown, m?: string): void; is(a: unknown, b: unknown, m?: string): void }, sb: OvsSandbox, dp: FlowDataplane, step: string): Promise<void> {
  // Switch and agent read with no commit in between: a refused owner's retry may be due at any moment.
  const { held, believed, dumped, size } = await dp.exclusive(async () => ({
    held: await (dp.backend as OvsBackend).readBack(), believed: comparable(dp.installed.flows.values()),
    dumped: (await sb.ofctl('-O', 'OpenFlow14', '--no-stats', 'dump-flows', 'br-int')).split('\n').filter((l) => l.includes('actions=')), size: dp.installed.size,
  }));
  t.deepEqual(held.foreign.flows.length, 0, `no foreign flows after ${step}`);
  t.deepEqual(comparable(held.flows), believed, `switch == agent after ${step}`);
  t.is(dumped.length, size, `ovs-ofctl counts what the agent believes after ${step}`);
}

const neighbors = (from: number, to: number): GoalStateV2 => {
  const gs = GoalStateV2.fromPartial({});
  for (let i = from; i <= to; i++) gs.neighborStates[`L2/N${i}`] = neighborState(`N${i}`, i);
  return gs;
};

maybe('a full table refuses one resource\'s flows: FAILURE with the switch\'s reason for it alone, later goal states unaffected, convergence once the limit is lifted', async (t) => {
  const sb = await startSandbox();
  const a = await agentOn(sb);
  try {
    await sb.vsctl('add-port', 'br-int', 'tapP1', '--', 'set', 'interface', 'tapP1', 'type=dummy', 'external_ids:iface-id=P1');
    const r0 = await a.push(GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, portStates: { P1: portState('P1') }, neighborStates: neighbors(1, 3).neighborStates }));
    t.true(r0.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS), JSON.stringify(r0.operationStatuses));
    // remote_l2 keeps what it has now, and refuses more (OVS's flow_limit, overflow_policy=refuse).
    const inRemote = [...a.dp.installed.flows.values()].filter((f) => f.table === TABLES.REMOTE_L2.id).length;
    await sb.vsctl('--', '--id=@ft', 'create', 'Flow_Table', `flow_limit=${inRemote}`, 'overflow_policy=refuse', '--', 'set', 'Bridge', 'br-int', `flow_tables:${TABLES.REMOTE_L2.id}=@ft`);

    // A new neighbor needs a remote_l2 flow: refused, with the switch's reason.
    const r1 = await a.push(neighbors(4, 4));
    t.is(statusOf(r1, 'N4').status, OperationStatus.FAILURE);
    t.regex(statusOf(r1, 'N4').detail, /OFPFMFC_TABLE_FULL/);
    await switchEqualsAgent(t, sb, a.dp, 'the refusal');

    // Unrelated goal states keep answering SUCCESS and are installed: a second port (other tables)...
    await sb.vsctl('add-port', 'br-int', 'tapP2', '--', 'set', 'interface', 'tapP2', 'type=dummy', 'external_ids:iface-id=P2');
    const r2 = await a.push(GoalStateV2.fromPartial({ portStates: { P2: portState('P2', { macAddress: 'fa:16:3e:00:00:02', fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.6' }] }) } }));
    t.is(statusOf(r2, 'P2').status, OperationStatus.SUCCESS, statusOf(r2, 'P2').detail);
    t.regex(await sb.ofctl('-O', 'OpenFlow14', 'dump-flows', 'br-int', 'table=50'), /dl_dst=fa:16:3e:00:00:02/);
    // ...and a neighbor delete (it frees a remote_l2 slot; the refused one is not in the bundle).
    const del = GoalStateV2.fromPartial({ neighborStates: { 'L2/N1': neighborState('N1', 1, {}, 4) } });
    const r3 = await a.push(del);
    t.is(statusOf(r3, 'N1').status, OperationStatus.SUCCESS, statusOf(r3, 'N1').detail);
    await switchEqualsAgent(t, sb, a.dp, 'later goal states');

    // Lift the limit: the agent retries and the switch converges to the full desired state, no push.
    await sb.vsctl('clear', 'Bridge', 'br-int', 'flow_tables');
    const ms = await until(() => a.dp.refused.size === 0, 'the refused neighbor to be installed');
    t.log(`converged ${ms} ms after the limit was lifted`);
    t.regex(await sb.ofctl('-O', 'OpenFlow14', 'dump-flows', 'br-int', `table=${TABLES.REMOTE_L2.id}`), /dl_dst=fa:16:3e:80:0:4\b|dl_dst=fa:16:3e:80:00:04/);
    const full = FlowDataplane.recompute(a.agent.store, a.dp.backend.bindings);
    t.deepEqual(comparable(a.dp.installed.flows.values()), comparable(full.activeFlows()), 'installed == the full desired state');
    await switchEqualsAgent(t, sb, a.dp, 'convergence');
  } finally {
    await a.close();
    await sb.stop();
  }
});

maybe('switch == agent after every step of a long scripted sequence on real OVS', async (t) => {
  const sb = await startSandbox();
  const a = await agentOn(sb);
  try {
    await sb.vsctl('add-port', 'br-int', 'tapP1', '--', 'set', 'interface', 'tapP1', 'type=dummy', 'external_ids:iface-id=P1');
    const T = subnetState('T', { tunnelId: '5002', networkType: 3, cidr: '10.2.0.0/24', gateway: { ipAddress: '10.2.0.1', macAddress: '6c:dd:ee:00:00:41' } });
    const steps: [string, GoalStateV2][] = [
      ['subnets and a port', GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S'), T }, portStates: { P1: portState('P1') } })],
      ['300 neighbors', neighbors(1, 300)],
      ['a neighbor moves host', GoalStateV2.fromPartial({ neighborStates: { 'L2/N1': neighborState('N1', 1, { hostIpAddress: '10.0.9.9', revisionNumber: 2 }) } })],
      ['neighbors move to the geneve subnet', GoalStateV2.fromPartial({ neighborStates: { 'L2/N2': neighborState('N2', 2, { revisionNumber: 2, fixedIps: [{ neighborType: 0, subnetId: 'T', ipAddress: '10.2.0.7', arionGroup: '', tunnelId: 0 }] }) } })],
      // The port's VM also seen on another host (a migration under way): its address gets a
      // second owner (the intake refuses another VM taking it).
      ['the port\'s VM seen remotely too (owner change)', GoalStateV2.fromPartial({ neighborStates: { 'L2/P1': neighborState('P1', 3, { macAddress: 'fa:16:3e:00:00:01', fixedIps: [{ neighborType: 0, subnetId: 'S', ipAddress: '10.1.0.5', arionGroup: '', tunnelId: 0 }] }) } })],
      ['a subnet changes VNI', GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S', { tunnelId: '6001', revisionNumber: 2 }, 2) } })],
      ['the port goes down', GoalStateV2.fromPartial({ portStates: { P1: portState('P1', { adminStateUp: false, revisionNumber: 3 }, 2) } })],
      ['half the neighbors leave', (() => {
        const gs = GoalStateV2.fromPartial({});
        for (let i = 150; i <= 300; i++) gs.neighborStates[`L2/N${i}`] = neighborState(`N${i}`, i, {}, 4);
        return gs;
      })()],
    ];
    for (const [name, gs] of steps) {
      const r = await a.push(gs);
      for (const s of r.operationStatuses) t.is(s.operationStatus, OperationStatus.SUCCESS, `${name}: ${s.resourceId} ${s.statusDetail}`);
      await switchEqualsAgent(t, sb, a.dp, name);
    }
  } finally {
    await a.close();
    await sb.stop();
  }
});

maybe('ovs-vswitchd restarts: the agent answers honestly meanwhile and puts every flow back without a push', async (t) => {
  const sb = await startSandbox();
  const a = await agentOn(sb);
  try {
    await sb.vsctl('add-port', 'br-int', 'tapP1', '--', 'set', 'interface', 'tapP1', 'type=dummy', 'external_ids:iface-id=P1');
    await a.push(GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, portStates: { P1: portState('P1') }, neighborStates: neighbors(1, 200).neighborStates }));
    const want = a.dp.installed.size;
    t.true(want > 400);

    await sb.stopVswitchd();
    // While it is down, a push is not SUCCESS.
    const during = await a.push(neighbors(201, 201));
    t.not(statusOf(during, 'N201').status, OperationStatus.SUCCESS);
    t.log(`during the outage: ${statusOf(during, 'N201').detail}`);

    const started = Date.now();
    await sb.startVswitchd();
    const count = async (): Promise<number> => {
      const r = await execa('ovs-ofctl', ['-O', 'OpenFlow14', '--no-stats', 'dump-flows', 'br-int'], { env: sb.env, reject: false });
      return r.exitCode === 0 ? r.stdout.split('\n').filter((l) => l.includes('actions=')).length : 0;
    };
    // Everything comes back, N201 included (the push that failed is part of the desired state).
    await until(async () => (await count()) === want + 2, 'every flow back after the restart');
    t.log(`flows back ${Date.now() - started} ms after ovs-vswitchd started`);
    await until(() => a.dp.installed.size === want + 2, 'the agent to record them');
    await switchEqualsAgent(t, sb, a.dp, 'the restart');
    // A push right after is honest and installed.
    const after = await a.push(neighbors(202, 202));
    t.is(statusOf(after, 'N202').status, OperationStatus.SUCCESS, statusOf(after, 'N202').detail);
    await switchEqualsAgent(t, sb, a.dp, 'a push after the restart');
  } finally {
    await a.close();
    await sb.stop();
  }
});
