// Agent restart without loss, on a real Open vSwitch 3.1 (private sandbox, dummy datapath): the
// agent runs as users run it (`bin/aca.mjs agent --dataplane ovs --state-dir DIR`), is killed
// with SIGKILL, and started again on the same state dir. It reloads its store, reads br-int back
// and adopts its own flows: zero churn (no flow re-added: durations keep running, cookies kept),
// the flow count never dips while it is down or starting, and deletes still work afterwards.
// With the switch changed while the agent was down (a flow of ours deleted, a stranger's added),
// only the difference is repaired.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { type ResultPromise, execa } from 'execa';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { freePort, neighborState, portState, pushOne, subnetState } from './helpers/agents.js';
import { type OvsSandbox, ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';

const missing = await ovsMissing();
if (missing) console.log(`agent-restart-ovs: ${missing}`);
const maybe = missing ? test.skip : test.serial;

const aca = new URL('../bin/aca.mjs', import.meta.url).pathname;

interface Running {
  proc: ResultPromise;
  grpc: string;
  admin: string;
}

async function startAgentProcess(sb: OvsSandbox, stateDir: string): Promise<Running> {
  const [g, a] = [await freePort(), await freePort()];
  const grpc = `127.0.0.1:${g}`;
  const admin = `127.0.0.1:${a}`;
  const proc = execa(process.execPath, [aca, 'agent', '--listen', grpc, '--admin', admin, '--host-ip', '10.0.0.11', '--dataplane', 'ovs',
    '--ovs-db', `unix:${sb.dbSocket}`, '--ovs-rundir', sb.dir, '--ovs-datapath-type', 'dummy', '--state-dir', stateDir, '--log-format', 'json'], { reject: false });
  for (let i = 0; i < 1200; i++) {
    if (proc.exitCode !== null) throw new Error(`agent exited: ${String((await proc).stderr)}`);
    if (await fetch(`http://${admin}/readyz`).then((r) => r.status === 200, () => false)) return { proc, grpc, admin };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('agent did not become ready');
}

/** br-int's flows with their stats: match → { cookie, duration seconds }. */
async function flows(sb: OvsSandbox): Promise<Map<string, { cookie: string; duration: number; actions: string }>> {
  const out = new Map<string, { cookie: string; duration: number; actions: string }>();
  for (const line of (await sb.ofctl('-O', 'OpenFlow14', 'dump-flows', 'br-int')).split('\n')) {
    const m = /cookie=(0x[0-9a-f]+), duration=([\d.]+)s, table=(\d+), n_packets=\d+, n_bytes=\d+, (?:idle_age=\d+, )?priority=(\d+)(?:,(\S+))? actions=(\S+)/.exec(line.trim());
    if (m) out.set(`${m[3]}/${m[4]}/${m[5] ?? ''}`, { cookie: m[1]!, duration: Number(m[2]), actions: m[6]! });
  }
  return out;
}

async function countFlows(sb: OvsSandbox): Promise<number> {
  const r = await execa('ovs-ofctl', ['-O', 'OpenFlow14', '--no-stats', 'dump-flows', 'br-int'], { env: sb.env, reject: false });
  return r.exitCode === 0 ? r.stdout.split('\n').filter((l) => l.includes('actions=')).length : -1;
}

/** Samples the flow count until stopped; returns the smallest it saw. */
function watchCount(sb: OvsSandbox): { stop(): Promise<{ min: number; samples: number }> } {
  let running = true;
  let min = Number.MAX_SAFE_INTEGER;
  let samples = 0;
  const loop = (async () => {
    while (running) {
      const n = await countFlows(sb);
      if (n >= 0) {
        min = Math.min(min, n);
        samples += 1;
      }
    }
  })();
  return { async stop() { running = false; await loop; return { min, samples }; } };
}

function state(n: number): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, portStates: { P1: portState('P1') } });
  for (let i = 1; i <= n; i++) gs.neighborStates[`L2/N${i}`] = neighborState(`N${i}`, i);
  return gs;
}

maybe('kill -9 and restart on the same state dir: zero churn, no dip, deletes still work; a switch changed meanwhile gets only the difference', async (t) => {
  const sb = await startSandbox();
  const stateDir = mkdtempSync(join(tmpdir(), 'aca-state-'));
  let agent: Running | undefined;
  try {
    await sb.vsctl('add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=dummy', 'fail-mode=secure');
    await sb.vsctl('add-port', 'br-int', 'tapP1', '--', 'set', 'interface', 'tapP1', 'type=dummy', 'external_ids:iface-id=P1');
    agent = await startAgentProcess(sb, stateDir);
    const r = await pushOne(agent.grpc, state(100));
    t.true(r.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS), JSON.stringify(r.operationStatuses.filter((s) => s.operationStatus !== 0)));
    const before = await flows(sb);
    t.true(before.size > 200);

    // SIGKILL: no goodbye. The flows stay in OVS; the count never dips while the agent is gone
    // and while the new one starts, reloads and adopts.
    const watch = watchCount(sb);
    agent.proc.kill('SIGKILL');
    await agent.proc;
    agent = await startAgentProcess(sb, stateDir);
    const { min, samples } = await watch.stop();
    t.log(`${samples} samples of the flow count during the restart; smallest ${min} of ${before.size}`);
    t.is(min, before.size, 'the flow count never dipped');
    const after = await flows(sb);
    t.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), 'the same flows');
    for (const [k, f] of after) {
      const b = before.get(k)!;
      t.is(f.cookie, b.cookie, `cookie kept: ${k}`);
      t.true(f.duration >= b.duration, `not re-added (duration ${b.duration}s → ${f.duration}s): ${k}`);
    }
    // The reloaded store knows its resources: a delete still removes their flows.
    const del = await pushOne(agent.grpc, GoalStateV2.fromPartial({ neighborStates: { 'L2/N7': neighborState('N7', 7, {}, 4) } }));
    t.is(del.operationStatuses[0]?.operationStatus, OperationStatus.SUCCESS, del.operationStatuses[0]?.statusDetail);
    t.false((await sb.ofctl('-O', 'OpenFlow14', 'dump-flows', 'br-int')).includes('dl_dst=fa:16:3e:80:00:07'));
    const state2 = await flows(sb);

    // Down again; meanwhile the switch changes under it: one of our flows deleted, a stranger's added.
    agent.proc.kill('SIGKILL');
    await agent.proc;
    const victim = [...state2.keys()].find((k) => k.startsWith('40/100/') && k.includes('dl_dst=fa:16:3e:80:00:08'))!;
    t.truthy(victim);
    await sb.ofctl('-O', 'OpenFlow14', 'del-flows', 'br-int', '--strict', `table=40,priority=100,${victim.split('/')[2]}`);
    await sb.ofctl('-O', 'OpenFlow14', 'add-flow', 'br-int', 'table=40,priority=7,dl_dst=02:00:00:00:00:99,actions=drop');
    agent = await startAgentProcess(sb, stateDir);
    const repaired = await flows(sb);
    t.deepEqual([...repaired.keys()].sort(), [...state2.keys()].sort(), 'the deleted flow is back, the stranger gone');
    for (const [k, f] of repaired) {
      if (k === victim) continue;
      t.true(f.duration >= state2.get(k)!.duration, `untouched by the repair: ${k}`);
    }
    const oldest = Math.min(...[...repaired].filter(([k]) => k !== victim).map(([, f]) => f.duration));
    t.true(repaired.get(victim)!.duration <= oldest, 'the deleted flow was added again, after every other one');
  } finally {
    agent?.proc.kill('SIGKILL');
    await agent?.proc;
    await sb.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});
