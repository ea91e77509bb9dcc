// npm run bench:intake [-- --sizes 10000,100000,1000000] [--quick]
// Intake figures for the issue's targets, each beside a floor measured in the same run:
//  1. 1 port + N neighbors (NCM shape) pushed over gRPC on loopback to an agent in its own
//     process (`--dataplane none`: decode + validate + store, nothing programmed): round trip,
//     the agent's own message_total_operation_time, and the agent's peak RSS (VmHWM). Floors:
//     the generated decoder alone on the same bytes, and a grpc-js server that answers the same
//     message without looking at it.
//     With a state dir (`--state-dir`, the default for `--dataplane ovs`; `--no-state` skips it):
//     the same message to an agent that saves it (journal record written and fdatasync'ed before
//     the reply), beside the figure without one from the same run; the save alone, the background
//     compaction into a snapshot, and the restart of an agent on that dir (load, then ready).
//  2. Per-message round trip for a small state (1 port + 1 neighbor): sequential on one stream,
//     one stream per message (NCM's way) and unary, against the agent on its default dataplane
//     (dry-run) and against the same grpc-js no-op server.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type ResultPromise, execa } from 'execa';
import { GoalState, GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { GoalStateOperationReply, GoalStateProvisionerClient } from '../proto/gen/alcor/goalstateprovisioner.js';
import { bigState, freePort, neighborState, portState, subnetState } from '../test/helpers/agents.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const sizesArg = args[args.indexOf('--sizes') + 1];
const sizes = args.includes('--sizes') && sizesArg ? sizesArg.split(',').map(Number) : quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000];
const SMALL_N = quick ? 500 : 2000;
const withState = !args.includes('--no-state');

// bin/aca.mjs, from the compiled dist/scripts/ (npm run bench:intake) or from scripts/ (tsx).
const aca = new URL(import.meta.url.includes('/dist/scripts/') ? '../../bin/aca.mjs' : '../bin/aca.mjs', import.meta.url).pathname;
const ms = (ns: bigint): number => Number(ns) / 1e6;
const now = (): bigint => process.hrtime.bigint();
const fmt = (n: number, d = 1): string => n.toFixed(d);

interface AgentChild {
  proc: ResultPromise;
  grpc: string;
  admin: string;
  /** JSON log lines (info level) when started with a state dir. */
  logs: Record<string, unknown>[];
  stop(): Promise<number>;
}

async function startAgentChild(dataplane: string, stateDir = ''): Promise<AgentChild> {
  const [g, a] = [await freePort(), await freePort()];
  const logArgs = stateDir === '' ? ['--log-level', 'error'] : ['--state-dir', stateDir, '--log-level', 'info', '--log-format', 'json'];
  const proc = execa(process.execPath, [aca, 'agent', '--listen', `127.0.0.1:${g}`, '--admin', `127.0.0.1:${a}`, '--host-ip', '10.0.0.11', '--dataplane', dataplane, ...logArgs], {
    reject: false, env: { NODE_OPTIONS: '--max-old-space-size=4096' }, buffer: false,
  });
  const logs: Record<string, unknown>[] = [];
  let partial = '';
  proc.stderr?.on('data', (d: Buffer) => {
    const lines = (partial + d.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      try { logs.push(JSON.parse(l) as Record<string, unknown>); } catch { /* not a JSON line */ }
    }
  });
  for (let i = 0; i < 400; i++) {
    if (await fetch(`http://127.0.0.1:${a}/readyz`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc, grpc: `127.0.0.1:${g}`, admin: `127.0.0.1:${a}`, logs,
    async stop() {
      // Peak resident set of the agent process, read before it exits.
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
      proc.kill('SIGTERM');
      await proc;
      return Number(hwm?.[1] ?? 0) / 1024;
    },
  };
}

function client(addr: string): GoalStateProvisionerClient {
  return new GoalStateProvisionerClient(addr, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
}

function streamOnce(c: GoalStateProvisionerClient, gs: GoalStateV2): Promise<GoalStateOperationReply> {
  return new Promise((resolve, reject) => {
    const call = c.pushGoalStatesStream();
    let reply: GoalStateOperationReply | undefined;
    call.on('data', (r: GoalStateOperationReply) => { reply = r; });
    call.on('error', reject);
    call.on('end', () => (reply ? resolve(reply) : reject(new Error('no reply'))));
    call.write(gs);
    call.end();
  });
}

/** A grpc-js server that answers every message at once with an empty reply: the transport floor. */
async function noopServer(): Promise<{ addr: string; stop(): void }> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': -1 });
  const empty = GoalStateOperationReply.encode(GoalStateOperationReply.fromPartial({})).finish();
  const raw = (b: Buffer): Buffer => b;
  server.addService({
    PushNetworkResourceStates: { path: '/alcor.schema.GoalStateProvisioner/PushNetworkResourceStates', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
    PushGoalStatesStream: { path: '/alcor.schema.GoalStateProvisioner/PushGoalStatesStream', requestStream: true, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
  }, {
    PushNetworkResourceStates: (_c: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(empty)),
    PushGoalStatesStream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', () => call.write(Buffer.from(empty)));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { addr: `127.0.0.1:${port}`, stop: () => server.forceShutdown() };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * The first 10,000 VMs' id salt: other VMs, whose MACs and addresses lie in address block 61 of
 * bigState's plan, clear of the million VMs of the timed state (blocks 0 to 15). The salt 'cold'
 * put them in block 13: at a million their addresses were the timed state's, which the conflict
 * rules rightly refused.
 */
const COLD_SALT = '00000000003c';

/** The same state to an agent with a state dir; then a new agent on that dir. One table row. */
async function persisted(n: number, gs: GoalStateV2, baselineMs: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'aca-bench-state-'));
  try {
    const agent = await startAgentChild('none', dir);
    const c = client(agent.grpc);
    await streamOnce(c, bigState(Math.min(n, 10_000), COLD_SALT));
    const t0 = now();
    const reply = await streamOnce(c, gs);
    const rtMs = ms(now() - t0);
    c.close();
    const bad = reply.operationStatuses.filter((s) => s.operationStatus !== 0).length;
    if (bad > 0) throw new Error(`with a state dir: ${bad} not SUCCESS`);
    // The journal outgrew the (empty) snapshot: a compaction runs in the background; wait for it.
    for (let i = 0; i < 1200; i++) {
      const info = await fetch(`http://${agent.admin}/v1/info`).then((r) => r.json() as Promise<{ state?: { compacting?: boolean } }>);
      if (!info.state?.compacting) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const applied = agent.logs.filter((l) => l.message === 'goal state applied').at(-1);
    const compacted = agent.logs.find((l) => l.message === 'state compacted');
    const rss = await agent.stop();
    const t1 = now();
    const again = await startAgentChild('none', dir);
    const readyMs = ms(now() - t1);
    const loaded = again.logs.find((l) => l.message === 'state loaded');
    const rss2 = await again.stop();
    const savedMs = Number(applied?.savedUs ?? 0) / 1000;
    return `| ${n.toLocaleString('en')} | ${fmt(baselineMs)} ms | ${fmt(reply.messageTotalOperationTime / 1000)} ms (round trip ${fmt(rtMs)} ms) | ${fmt(savedMs)} ms | ${fmt((reply.messageTotalOperationTime / 1000) - baselineMs)} ms | ${compacted ? `${fmt(Number(compacted.ms), 0)} ms, ${fmt(Number(compacted.snapshotBytes) / 1e6)} MB` : 'none'} | ${fmt(Number(loaded?.ms ?? 0), 0)} ms (ready after ${fmt(readyMs, 0)} ms) | ${fmt(rss, 0)} MB / ${fmt(rss2, 0)} MB |`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function large(): Promise<void> {
  const stateRows: string[] = [];
  console.log('\n## 1 port + N neighbors over gRPC (agent in its own process, --dataplane none)\n');
  console.log('| neighbors | message | round trip | agent total (decode+validate+store+reply) | agent peak RSS | floor: generated decode | floor: grpc no-op round trip | target | C++ agent |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const n of sizes) {
    const gs = bigState(n);
    const bytes = GoalStateV2.encode(gs).finish();
    let t0 = now();
    GoalStateV2.decode(bytes);
    const decodeMs = ms(now() - t0);
    const noop = await noopServer();
    const nc = client(noop.addr);
    t0 = now();
    await streamOnce(nc, gs);
    const floorMs = ms(now() - t0);
    nc.close();
    noop.stop();
    const agent = await startAgentChild('none');
    const c = client(agent.grpc);
    // First contact on a fresh process: includes JIT warm-up.
    const coldGs = bigState(Math.min(n, 10_000), COLD_SALT);
    t0 = now();
    const cold = await streamOnce(c, coldGs);
    const coldMs = ms(now() - t0);
    t0 = now();
    const reply = await streamOnce(c, gs);
    const rtMs = ms(now() - t0);
    c.close();
    const rss = await agent.stop();
    const bad = reply.operationStatuses.filter((s) => s.operationStatus !== 0).length;
    if (bad > 0 || reply.operationStatuses.length !== n + 2) throw new Error(`unexpected reply: ${bad} not SUCCESS of ${reply.operationStatuses.length}`);
    const target = n === 10_000 ? '≤ 50 ms' : n === 1_000_000 ? '≤ 5 s, ≤ 1.5 GB' : '';
    const cpp = n === 10_000 ? '237 s' : '';
    if (withState) stateRows.push(await persisted(n, gs, reply.messageTotalOperationTime / 1000));
    console.log(`| ${n.toLocaleString('en')} | ${fmt(bytes.length / 1e6)} MB | ${fmt(rtMs)} ms | ${fmt(reply.messageTotalOperationTime / 1000)} ms (cold first ${Math.min(n, 10_000).toLocaleString('en')}: ${fmt(cold.messageTotalOperationTime / 1000)} ms, round trip ${fmt(coldMs)} ms) | ${fmt(rss, 0)} MB | ${fmt(decodeMs)} ms | ${fmt(floorMs)} ms | ${target} | ${cpp} |`);
  }
  if (stateRows.length === 0) return;
  console.log('\n## The same states saved in a state dir (--state-dir; the agent answers once the journal record is fdatasync\'ed)\n');
  console.log('| neighbors | agent total, no state dir (above) | agent total, with state dir | of which saving (journal write + fdatasync) | difference | background compaction (snapshot) | restart on the dir: load | peak RSS: saving / restarted |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const row of stateRows) console.log(row);
}

async function small(): Promise<void> {
  const gs = (i: number): GoalStateV2 => GoalStateV2.fromPartial({
    subnetStates: { S: subnetState('S') },
    portStates: { [`P${i}`]: portState(`P${i}`, { macAddress: `fa:16:3e:10:${((i >> 8) & 255).toString(16)}:${(i & 255).toString(16)}`, fixedIps: [{ subnetId: 'S', ipAddress: `10.1.${(i >> 8) & 255}.${i & 255}` }] }) },
    // Remote neighbors live on a pool of 50 hosts, as in a real region.
    neighborStates: { [`L2/N${i}`]: neighborState(`N${i}`, i, { hostIpAddress: `10.0.9.${1 + (i % 50)}` }) },
  });
  const v1 = (i: number): GoalState => {
    const g = gs(i);
    return GoalState.fromPartial({ subnetStates: Object.values(g.subnetStates), portStates: Object.values(g.portStates), neighborStates: Object.values(g.neighborStates) });
  };
  const measure = async (addr: string): Promise<Record<string, number[]>> => {
    const c = client(addr);
    const out: Record<string, number[]> = { 'one stream, sequential': [], 'one stream per message (NCM)': [], unary: [] };
    for (let i = 0; i < 50; i++) await streamOnce(c, gs(i)); // warm-up
    await new Promise<void>((resolve, reject) => {
      const call = c.pushGoalStatesStream();
      let i = 0;
      let t = now();
      call.on('data', () => {
        out['one stream, sequential']!.push(ms(now() - t));
        if (++i === SMALL_N) { call.end(); return; }
        t = now();
        call.write(gs(1000 + i));
      });
      call.on('error', reject);
      call.on('end', () => resolve());
      call.write(gs(1000));
    });
    for (let i = 0; i < SMALL_N; i++) {
      const t = now();
      await streamOnce(c, gs(5000 + i));
      out['one stream per message (NCM)']!.push(ms(now() - t));
    }
    for (let i = 0; i < SMALL_N; i++) {
      const t = now();
      await new Promise((res, rej) => c.pushNetworkResourceStates(v1(9000 + i), (e, r) => (e ? rej(e) : res(r))));
      out.unary!.push(ms(now() - t));
    }
    c.close();
    return out;
  };
  const noop = await noopServer();
  const floor = await measure(noop.addr);
  noop.stop();
  const cpp: Record<string, string> = { 'one stream, sequential': '1.3 ms', 'one stream per message (NCM)': '1.3 ms', unary: '3.7 ms' };
  for (const dataplane of ['none', 'dry-run']) {
    const agent = await startAgentChild(dataplane);
    const got = await measure(agent.grpc);
    await agent.stop();
    console.log(`\n## Small state (1 new port + 1 neighbor each), ${SMALL_N} messages per mode, --dataplane ${dataplane}${dataplane === 'none' ? ' (intake alone)' : ' (intake + flows computed and diffed; ports accumulate in one network)'}\n`);
    console.log('| mode | mean | p50 | p99 | floor (grpc no-op) p50 | agent overhead p50 | target | C++ agent |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const [mode, xs] of Object.entries(got)) {
      const s = [...xs].sort((a, b) => a - b);
      const f = [...floor[mode]!].sort((a, b) => a - b);
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      console.log(`| ${mode} | ${fmt(mean, 3)} ms | ${fmt(percentile(s, 50), 3)} ms | ${fmt(percentile(s, 99), 3)} ms | ${fmt(percentile(f, 50), 3)} ms | ${fmt(percentile(s, 50) - percentile(f, 50), 3)} ms | ≤ 0.5 ms overhead | ${cpp[mode]} (×${fmt(Number.parseFloat(cpp[mode]!) / percentile(s, 50), 1)} faster) |`);
    }
  }
}

console.log(`# bench:intake (${new Date().toISOString()}, node ${process.version}, ${quick ? 'quick' : 'full'})`);
await large();
await small();
