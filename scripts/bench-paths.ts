// `npm run bench:paths`: the fast path (gRPC) beside the MQ path (Pulsar), and the hash-key
// collision figures (docs/mq.md).
//
// 1. Collisions: for n hosts of one VPC keyed by IP, the birthday bound and the measured share of
//    random host sets with a collision (and how many hosts lose their slot), then the salted
//    keys (agent/pulsar-keys.ts assignKeys): collisions left and salts tried.
// 2. Paths: N in-process agents (dry-run dataplane: intake, store and flow computation, no
//    switch) on one real Pulsar standalone broker; each round sends every agent one goal state of
//    P ports, over gRPC (one stream per push, the reply = applied) and over Pulsar (one topic,
//    keyed by host; applied = the agent's apply finished). Latency p50/p99 from send until
//    applied, throughput, broker and agent-process memory. Writes bench-paths.svg.
//
// Flags: --quick (fewer sizes), --agents N (default 20), --rounds R (default 5), --sizes 1,100,... (ports
// per goal state). Every goal state holds new ports only, and the last column counts ports that
// were not applied (refused), which must be 0 for a row to mean anything.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../agent/config.js';
import { type Agent, startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';
import { PulsarClient } from '../agent/pulsar-client.js';
import { assignKeys, collisionProbability } from '../agent/pulsar-keys.js';
import { keySlot } from '../agent/pulsar-proto.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { portState, subnetState } from '../test/helpers/agents.js';
import { missingPrerequisite, startBroker } from './pulsar-broker.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function collisions(): void {
  console.log('\n== Hash-key collisions: n hosts of one VPC (topic), keys = host IPs, 65,536 slots (slot 0 folded into 1)');
  console.log('hosts | birthday bound P(any collision) | measured P (trials) | hosts without their slot (mean) | salted keys: collisions | salts tried (mean/host)');
  const rand = rng(14);
  for (const n of [10, 50, 100, 300, 1000, 3000, 10000]) {
    const trials = n >= 3000 ? 20 : 200;
    let any = 0;
    let lost = 0;
    let saltTries = 0;
    let saltedCollisions = 0;
    for (let t = 0; t < trials; t++) {
      const hosts = new Set<string>();
      while (hosts.size < n) hosts.add(`10.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${1 + Math.floor(rand() * 254)}`);
      const seen = new Set<number>();
      let lostHere = 0;
      for (const h of hosts) {
        const s = keySlot(h);
        if (seen.has(s)) lostHere += 1;
        seen.add(s);
      }
      if (lostHere > 0) any += 1;
      lost += lostHere;
      const keys = assignKeys([...hosts]);
      const slots = new Set([...keys.values()].map(keySlot));
      saltedCollisions += n - slots.size;
      for (const k of keys.values()) saltTries += k.includes('#') ? Number(k.split('#')[1]) : 0;
    }
    console.log(`${String(n).padStart(5)} | ${(collisionProbability(n) * 100).toFixed(2).padStart(8)} % | ${((any / trials) * 100).toFixed(1).padStart(6)} % (${trials}) | ${(lost / trials).toFixed(2).padStart(7)} | ${saltedCollisions} | ${(saltTries / (trials * n)).toFixed(4)}`);
  }
}

/**
 * One goal state of `ports` new ports for a host. Every port of an agent is new (its own id, MAC
 * and address, from the agent's counter `first`): a port reusing another's MAC or address is
 * refused by the intake (INVALID_ARG, nearly free) and a goal state sent again changes nothing,
 * and neither would measure an apply. Addresses skip the subnet's gateway (10.1.0.1).
 */
function goalState(host: string, ports: number, first: number, tag: string): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({ formatVersion: 102, hostResources: { [host]: { resources: [] } } });
  gs.subnetStates.S = subnetState('S', { cidr: '10.0.0.0/8' });
  for (let i = 0; i < ports; i++) {
    const n = first + i;
    const id = `p-${tag}-${n}`;
    const rest = Math.floor(n / 250);
    gs.portStates[id] = portState(id, {
      macAddress: `fa:16:3e:${((n >> 16) & 255).toString(16).padStart(2, '0')}:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`,
      fixedIps: [{ subnetId: 'S', ipAddress: `10.${2 + (rest >> 8)}.${rest & 255}.${1 + (n % 250)}` }],
    });
  }
  return gs;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function rssMiB(pid: number): number {
  try {
    return Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) / 1024;
  } catch {
    return NaN;
  }
}

interface Row { path: string; ports: number; agents: number; p50: number; p99: number; perSec: number; brokerMiB: number; agentsMiB: number; missing: number }

async function paths(): Promise<Row[]> {
  const missing = missingPrerequisite();
  if (missing) {
    console.log(`\npaths: skipped: ${missing}`);
    return [];
  }
  const nAgents = flag('--agents', 20);
  const rounds = flag('--rounds', quick ? 3 : 5);
  const sizesFlag = args.indexOf('--sizes');
  const sizes = sizesFlag >= 0 ? args[sizesFlag + 1]!.split(',').map(Number) : quick ? [1, 100, 1000] : [1, 10, 100, 1000, 10000];
  const dir = mkdtempSync(join(tmpdir(), 'aca-bench-paths-'));
  const t0 = Date.now();
  const broker = await startBroker({ dataDir: dir });
  console.log(`\n== Paths: ${nAgents} agents (dry-run dataplane, one process), ${rounds} rounds per size; broker ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${broker.serviceUrl})`);
  const agents: Agent[] = [];
  const rows: Row[] = [];
  const client = new PulsarClient(broker.serviceUrl);
  try {
    for (let i = 0; i < nAgents; i++) {
      const hostIp = `10.200.${i >> 8}.${(i & 255) + 1}`;
      agents.push(await startAgent(resolveConfig({
        listen: '127.0.0.1:0', admin: '127.0.0.1:0', subscribeListen: '127.0.0.1:0', hostIp, dataplane: 'dry-run', pulsarUrl: broker.serviceUrl,
      }), silentLogger()));
    }
    const keys = assignKeys(agents.map((a) => a.config.hostIp));
    const topic = `bench-${process.pid}`;
    for (const a of agents) await a.pulsar!.subscribe(topic, keys.get(a.config.hostIp)!);
    const producer = await client.createProducer(topic);
    const grpcClients = agents.map((a) => makeClient(`127.0.0.1:${a.grpcPort}`));
    console.log('path   | ports/state | agents | p50 ms | p99 ms | goal states/s | broker RSS MiB | agents RSS MiB (process) | ports not applied');
    const next = agents.map(() => 0);
    for (const ports of sizes) {
      for (const path of ['grpc', 'pulsar'] as const) {
        // Fresh ports for each path and round (see goalState); encoded before the clock starts.
        const states = agents.map((a, i) => Array.from({ length: rounds }, () => {
          const g = goalState(a.config.hostIp, ports, next[i]!, path);
          next[i]! += ports;
          return g;
        }));
        const bytes = path === 'pulsar' ? states.map((l) => l.map((g) => GoalStateV2.encode(g).finish())) : [];
        const before = agents.reduce((n, a) => n + a.store.counts().port, 0);
        const lat: number[] = [];
        const start = performance.now();
        for (let r = 0; r < rounds; r++) {
          await Promise.all(agents.map(async (a, i) => {
            const sent = performance.now();
            if (path === 'grpc') {
              const replies = await pushStream(grpcClients[i]!, [states[i]![r]!]);
              if (replies.length !== 1) throw new Error('no reply');
            } else {
              const applied = new Promise<void>((res) => a.pulsar!.once('applied', () => res()));
              await producer.send(bytes[i]![r]!, { key: keys.get(a.config.hostIp)! });
              await applied;
            }
            lat.push(performance.now() - sent);
          }));
        }
        const secs = (performance.now() - start) / 1000;
        lat.sort((x, y) => x - y);
        const row: Row = {
          path, ports, agents: nAgents, p50: pct(lat, 50), p99: pct(lat, 99), perSec: (rounds * nAgents) / secs,
          brokerMiB: rssMiB(broker.pid), agentsMiB: process.memoryUsage().rss / 2 ** 20,
          missing: rounds * nAgents * ports - (agents.reduce((n, a) => n + a.store.counts().port, 0) - before),
        };
        rows.push(row);
        console.log(`${path.padEnd(6)} | ${String(ports).padStart(11)} | ${String(nAgents).padStart(6)} | ${row.p50.toFixed(1).padStart(6)} | ${row.p99.toFixed(1).padStart(6)} | ${row.perSec.toFixed(1).padStart(13)} | ${row.brokerMiB.toFixed(0).padStart(14)} | ${row.agentsMiB.toFixed(0).padStart(24)} | ${row.missing}`);
      }
    }
    for (const c of grpcClients) c.close();
    await producer.close();
  } finally {
    client.close();
    for (const a of agents) await a.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

function svg(rows: Row[]): string {
  const W = 640;
  const H = 360;
  const m = { l: 60, r: 20, t: 30, b: 50 };
  const sizes = [...new Set(rows.map((r) => r.ports))];
  const maxY = Math.max(1, ...rows.map((r) => r.p99));
  const x = (i: number): number => m.l + (i * (W - m.l - m.r)) / Math.max(1, sizes.length - 1);
  const y = (v: number): number => H - m.b - (Math.log10(1 + v) / Math.log10(1 + maxY)) * (H - m.t - m.b);
  const line = (path: string, key: 'p50' | 'p99', color: string, dash: string): string => {
    const pts = sizes.map((s, i) => `${x(i).toFixed(1)},${y(rows.find((r) => r.path === path && r.ports === s)?.[key] ?? 0).toFixed(1)}`).join(' ');
    return `<polyline fill="none" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''} points="${pts}"/>`;
  };
  const labels = sizes.map((s, i) => `<text x="${x(i)}" y="${H - m.b + 18}" font-size="11" text-anchor="middle">${s}</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<text x="${W / 2}" y="18" font-size="13" text-anchor="middle">goal state until applied, ${rows[0]?.agents ?? 0} agents: gRPC (blue) vs Pulsar (red); solid p50, dashed p99 (ms, log)</text>
<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="#000"/><line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="#000"/>
${labels}<text x="${W / 2}" y="${H - 12}" font-size="11" text-anchor="middle">ports per goal state</text>
<text x="12" y="${m.t + 10}" font-size="11">${maxY.toFixed(0)} ms</text>
${line('grpc', 'p50', '#1f5fbf', '')}${line('grpc', 'p99', '#1f5fbf', '5,4')}${line('pulsar', 'p50', '#c0392b', '')}${line('pulsar', 'p99', '#c0392b', '5,4')}
</svg>
`;
}

/** The rows of a printed table (the lines `path | ports | agents | p50 | p99 | per s | ...`), e.g. kept in docs/mq.md. */
function rowsFromText(text: string): Row[] {
  const rows: Row[] = [];
  for (const line of text.split('\n')) {
    const c = line.split('|').map((x) => x.trim());
    if (c.length < 9 || (c[0] !== 'grpc' && c[0] !== 'pulsar')) continue;
    const n = c.slice(1).map(Number);
    rows.push({ path: c[0], ports: n[0]!, agents: n[1]!, p50: n[2]!, p99: n[3]!, perSec: n[4]!, brokerMiB: n[5]!, agentsMiB: n[6]!, missing: n[7]! });
  }
  return rows;
}

async function main(): Promise<void> {
  // --chart-from FILE OUT: draw the chart of figures printed earlier (a run can take an hour).
  const at = process.argv.indexOf('--chart-from');
  if (at >= 0) {
    const rows = rowsFromText(readFileSync(process.argv[at + 1]!, 'utf8'));
    writeFileSync(process.argv[at + 2] ?? 'bench-paths.svg', svg(rows));
    console.log(`chart of ${rows.length} rows written to ${process.argv[at + 2] ?? 'bench-paths.svg'}`);
    return;
  }
  collisions();
  const rows = await paths();
  if (rows.length > 0) {
    writeFileSync('bench-paths.svg', svg(rows));
    console.log('\nchart written to bench-paths.svg');
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
