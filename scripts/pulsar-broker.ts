// A real Apache Pulsar standalone broker for the MQ-path tests and `npm run bench:paths`.
//
// The jars come from Maven Central (a pom-packaged project importing the Pulsar BOM, as
// ../shared/reference/pulsar-checked.md found necessary) and are cached outside the repository,
// in $ACA_PULSAR_CACHE (default ~/.cache/aca-pulsar), so a clone, CI and the benchmarks share
// one download (242 MB of jars, about 2 minutes once). The broker runs on loopback only, on
// free ports, with its data in a directory of its own.
//
//   node dist/scripts/pulsar-broker.js fetch             download the jars (no-op when cached)
//   node dist/scripts/pulsar-broker.js start DIR         start a broker with its data in DIR,
//                                                        wait until ready, print its URLs, detach
//   node dist/scripts/pulsar-broker.js stop DIR          stop the broker started in DIR
//
// Tests call brokerForTests(): the broker named by ACA_TEST_PULSAR_DIR (started by .ci/run with
// `start`), or one of their own; a machine without Java or Maven gets a reason to print.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, closeSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const PULSAR_VERSION = '4.2.4';

const POM = `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/pulsar-broker.ts: the jars of a Pulsar standalone broker, from Maven Central. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>aca.test</groupId>
  <artifactId>pulsar-standalone-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>org.apache.pulsar</groupId>
        <artifactId>pulsar</artifactId>
        <version>${PULSAR_VERSION}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>org.apache.pulsar</groupId>
      <artifactId>pulsar-broker</artifactId>
      <version>${PULSAR_VERSION}</version>
    </dependency>
  </dependencies>
</project>
`;

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ACA_PULSAR_CACHE) return resolve(env.ACA_PULSAR_CACHE);
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'aca-pulsar');
}

/** The directory holding lib/ (the jars) for PULSAR_VERSION. */
export function jarDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheRoot(env), PULSAR_VERSION);
}

function hasCommand(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

/** Why a broker cannot be had here, or null when Java is there and the jars are (or can be) had. */
export function missingPrerequisite(env: NodeJS.ProcessEnv = process.env): string | null {
  if (!hasCommand('java', ['-version'])) return 'java is not installed (Pulsar needs Java 17; .ci/run installs openjdk-17-jre-headless)';
  if (existsSync(join(jarDir(env), 'lib', '.complete'))) return null;
  if (!hasCommand('mvn', ['-v'])) return `the Pulsar jars are not cached in ${jarDir(env)} and maven is not installed to fetch them`;
  return null;
}

/**
 * Download the broker's jars into the cache (once). Returns the lib directory. Maven's own
 * repository also lives in the cache, so nothing is written to ~/.m2.
 */
export function fetchJars(opts: { env?: NodeJS.ProcessEnv; quiet?: boolean } = {}): string {
  const env = opts.env ?? process.env;
  const dir = jarDir(env);
  const lib = join(dir, 'lib');
  if (existsSync(join(lib, '.complete'))) return lib;
  mkdirSync(dir, { recursive: true });
  // Test files that each want a broker may fetch at once on a cold cache: one fetches, the
  // others wait for it (two at once shared lib.tmp and Maven's repository, and one failed
  // copying a jar the other was still writing).
  return withLock(join(dir, 'fetch.lock'), () => (existsSync(join(lib, '.complete')) ? lib : fetchLocked(dir, lib, env, opts.quiet === true)));
}

/** A lock older than this is a fetch that died: taken over. */
const STALE_LOCK_MS = 20 * 60_000;

function withLock<T>(path: string, fn: () => T): T {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      closeSync(openSync(path, 'wx'));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let age = 0;
      try {
        age = Date.now() - statSync(path).mtimeMs;
      } catch {
        continue; // released meanwhile
      }
      if (age > STALE_LOCK_MS) rmSync(path, { force: true });
      else Atomics.wait(pause, 0, 0, 500);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(path, { force: true });
  }
}

function fetchLocked(dir: string, lib: string, env: NodeJS.ProcessEnv, quiet: boolean): string {
  writeFileSync(join(dir, 'pom.xml'), POM);
  const tmp = join(dir, 'lib.tmp');
  rmSync(tmp, { recursive: true, force: true });
  if (!quiet) process.stderr.write(`pulsar: fetching Pulsar ${PULSAR_VERSION} jars from Maven Central into ${dir} (about 250 MB, once)\n`);
  const r = spawnSync('mvn', [
    '-q', '-B', `-Dmaven.repo.local=${join(cacheRoot(env), 'm2')}`, '-f', join(dir, 'pom.xml'),
    'dependency:copy-dependencies', `-DoutputDirectory=${tmp}`, '-DincludeScope=runtime',
  ], { cwd: dir, stdio: quiet ? 'pipe' : ['ignore', 'inherit', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`mvn dependency:copy-dependencies failed (exit ${r.status ?? r.signal}): ${(r.stdout ?? '').slice(-2000)}${(r.stderr ?? '').slice(-2000)}`);
  }
  rmSync(lib, { recursive: true, force: true });
  renameSync(tmp, lib);
  writeFileSync(join(lib, '.complete'), `${PULSAR_VERSION}\n`);
  return lib;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePort(port));
    });
  });
}

function standaloneConf(ports: BrokerPorts): string {
  const settings: Record<string, string | number | boolean> = {
    clusterName: 'standalone',
    metadataStoreUrl: '', configurationMetadataStoreUrl: '',
    brokerServicePort: ports.broker, webServicePort: ports.web,
    bindAddress: '127.0.0.1', advertisedAddress: '127.0.0.1',
    numIOThreads: 2, numHttpServerThreads: 4, numOrderedExecutorThreads: 2, numExecutorThreadPoolSize: 2,
    numCacheExecutorThreadPoolSize: 2, managedLedgerNumSchedulerThreads: 2, numWorkerThreadsForNonPersistentTopic: 2,
    loadManagerClassName: 'org.apache.pulsar.broker.loadbalance.NoopLoadManager', loadBalancerEnabled: false,
    managedLedgerDefaultEnsembleSize: 1, managedLedgerDefaultWriteQuorum: 1, managedLedgerDefaultAckQuorum: 1,
    managedLedgerCacheSizeMB: 32, bookkeeperUseV2WireProtocol: true,
    allowAutoTopicCreation: true, allowAutoTopicCreationType: 'non-partitioned', allowAutoSubscriptionCreation: true,
    brokerDeleteInactiveTopicsEnabled: false, systemTopicEnabled: true, topicLevelPoliciesEnabled: true,
    transactionCoordinatorEnabled: false, webSocketServiceEnabled: false, functionsWorkerEnabled: false, statusFilePath: '',
    authenticationEnabled: false, authorizationEnabled: false,
    ledgerStorageClass: 'org.apache.bookkeeper.bookie.storage.ldb.DbLedgerStorage', listeningInterface: 'lo',
    dbStorage_writeCacheMaxSizeMb: 16, dbStorage_readAheadCacheMaxSizeMb: 16, dbStorage_rocksDB_blockCacheSize: 16 * 1024 * 1024,
    journalMaxGroupWaitMSec: 1, journalSyncData: false, allowLoopback: true,
    diskUsageThreshold: 0.99, diskUsageWarnThreshold: 0.99, nettyMaxFrameSizeBytes: 5253120,
  };
  return `${Object.entries(settings).map(([k, v]) => `${k}=${String(v)}`).join('\n')}\n`;
}

export interface BrokerPorts { broker: number; web: number; bookie: number }

export interface BrokerInfo {
  serviceUrl: string;
  webUrl: string;
  pid: number;
  dataDir: string;
  ports: BrokerPorts;
}

const STATE_FILE = 'broker.json';

function javaArgs(lib: string, dataDir: string, ports: BrokerPorts): string[] {
  return [
    '-Xms128m', '-Xmx512m', '-XX:MaxDirectMemorySize=512m', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC',
    '-Dpulsar.allocator.exit_on_oom=true', '-Dio.netty.leakDetection.level=disabled',
    '-cp', `${lib}/*`, 'org.apache.pulsar.PulsarStandaloneStarter',
    '--config', join(dataDir, 'standalone.conf'), '--no-functions-worker', '--no-stream-storage',
    '--bookkeeper-port', String(ports.bookie),
  ];
}

async function get(url: string, method = 'GET'): Promise<{ status: number; text: string }> {
  const r = await fetch(url, { method, signal: AbortSignal.timeout(30_000) });
  return { status: r.status, text: await r.text() };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Wait until the broker serves: the binary port accepts, the admin API lists the `standalone`
 * cluster and the `public/default` namespace, and a throwaway topic was created and deleted (the
 * first topic of a namespace also creates `__change_events`, 13 s on a cold broker).
 */
async function waitReady(info: BrokerInfo, child: ChildProcess | null, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const step = async (what: string, check: () => Promise<boolean>): Promise<void> => {
    for (;;) {
      if (!alive(info.pid) || (child && child.exitCode !== null)) {
        throw new Error(`the broker exited while starting (${what}); its log: ${logFile}\n${tail(logFile)}`);
      }
      if (await check().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`the broker was not ready within ${timeoutMs / 1000} s (${what}); its log: ${logFile}\n${tail(logFile)}`);
      await sleep(500);
    }
  };
  await step('binary port', () => portOpen(info.ports.broker));
  await step('clusters', async () => (await get(`${info.webUrl}/admin/v2/clusters`)).text.includes('"standalone"'));
  await step('namespace public/default', async () => (await get(`${info.webUrl}/admin/v2/namespaces/public`)).text.includes('"public/default"'));
  const warm = `${info.webUrl}/admin/v2/persistent/public/default/aca-warmup-${process.pid}`;
  await step('warm-up topic', async () => {
    const r = await get(warm, 'PUT');
    return r.status === 204 || r.status === 409;
  });
  await step('warm-up topic deletion', async () => [204, 404].includes((await get(`${warm}?force=true`, 'DELETE')).status));
}

function tail(file: string): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface StartOptions {
  dataDir: string;
  /** Ports to reuse (a restart keeps them); free ones otherwise. */
  ports?: BrokerPorts;
  readyTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Keep running after this process exits (the `start` command); otherwise killed with it. */
  detach?: boolean;
}

export interface Broker extends BrokerInfo {
  /** SIGTERM, then SIGKILL after 20 s; the data directory stays. */
  stop(): Promise<void>;
  /** Stop and start again on the same ports and data (the topics and cursors survive). */
  restart(): Promise<void>;
}

/** Start a standalone broker with its data in `dataDir` and wait until it is ready. */
export async function startBroker(opts: StartOptions): Promise<Broker> {
  const lib = fetchJars({ env: opts.env, quiet: true });
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const ports = opts.ports ?? { broker: await freePort(), web: await freePort(), bookie: await freePort() };
  writeFileSync(join(dataDir, 'standalone.conf'), standaloneConf(ports));
  const logFile = join(dataDir, 'broker.log');
  const out = openSync(logFile, 'a');
  const child = spawn('java', javaArgs(lib, dataDir, ports), { cwd: dataDir, stdio: ['ignore', out, out], detached: opts.detach === true });
  closeSync(out);
  if (child.pid === undefined) throw new Error('java could not be started');
  const info: BrokerInfo = {
    serviceUrl: `pulsar://127.0.0.1:${ports.broker}`, webUrl: `http://127.0.0.1:${ports.web}`, pid: child.pid, dataDir, ports,
  };
  let exitHook: (() => void) | null = null;
  if (opts.detach) {
    child.unref();
  } else {
    exitHook = () => { try { process.kill(info.pid, 'SIGKILL'); } catch { /* gone */ } };
    process.once('exit', exitHook);
  }
  try {
    await waitReady(info, child, opts.readyTimeoutMs ?? 240_000, logFile);
  } catch (e) {
    await stopPid(info.pid);
    throw e;
  }
  writeFileSync(join(dataDir, STATE_FILE), `${JSON.stringify(info, null, 2)}\n`);
  return handle(info, opts, () => { if (exitHook) process.off('exit', exitHook); });
}

function handle(info: BrokerInfo, opts: StartOptions, onStop: () => void): Broker {
  const broker: Broker = {
    ...info,
    async stop() {
      await stopPid(broker.pid);
      onStop();
    },
    async restart() {
      await broker.stop();
      const next = await startBroker({ ...opts, dataDir: info.dataDir, ports: info.ports });
      broker.pid = next.pid;
      broker.stop = () => next.stop();
    },
  };
  return broker;
}

async function stopPid(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 20_000;
  while (alive(pid) && Date.now() < deadline) await sleep(200);
  if (alive(pid)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    while (alive(pid)) await sleep(100);
  }
}

/** A broker started by `start DIR` (its broker.json), if it still runs. */
export function runningBroker(dataDir: string, env: NodeJS.ProcessEnv = process.env): Broker | null {
  const file = join(resolve(dataDir), STATE_FILE);
  if (!existsSync(file)) return null;
  const info = JSON.parse(readFileSync(file, 'utf8')) as BrokerInfo;
  if (!alive(info.pid)) return null;
  return handle(info, { dataDir: info.dataDir, ports: info.ports, detach: true, env }, () => undefined);
}

export type TestBroker = { broker: Broker; own: boolean } | { skip: string };

/**
 * The broker for a test file: the one .ci/run started (ACA_TEST_PULSAR_DIR), or a fresh one in
 * `fallbackDir`; `{ skip }` with the reason when Java or the jars cannot be had.
 */
export async function brokerForTests(fallbackDir: string, env: NodeJS.ProcessEnv = process.env): Promise<TestBroker> {
  if (env.ACA_TEST_PULSAR_DIR) {
    const b = runningBroker(env.ACA_TEST_PULSAR_DIR, env);
    if (b) return { broker: b, own: false };
  }
  const missing = missingPrerequisite(env);
  if (missing) return { skip: missing };
  rmSync(fallbackDir, { recursive: true, force: true });
  return { broker: await startBroker({ dataDir: fallbackDir, env }), own: true };
}

async function main(argv: string[]): Promise<number> {
  const [cmd, dir] = argv;
  if (cmd === 'fetch') {
    const missing = missingPrerequisite();
    if (missing) {
      process.stderr.write(`pulsar: ${missing}\n`);
      return 1;
    }
    process.stdout.write(`${fetchJars()}\n`);
    return 0;
  }
  if ((cmd === 'start' || cmd === 'stop') && dir) {
    const running = runningBroker(dir);
    if (cmd === 'stop') {
      if (running) await running.stop();
      process.stdout.write(running ? `stopped the broker (pid ${running.pid})\n` : 'no broker runs there\n');
      return 0;
    }
    if (running) {
      process.stdout.write(`${running.serviceUrl} ${running.webUrl} (already running, pid ${running.pid})\n`);
      return 0;
    }
    const missing = missingPrerequisite();
    if (missing) {
      process.stderr.write(`pulsar: ${missing}\n`);
      return 1;
    }
    const t0 = Date.now();
    rmSync(resolve(dir), { recursive: true, force: true });
    const b = await startBroker({ dataDir: dir, detach: true });
    process.stdout.write(`${b.serviceUrl} ${b.webUrl} (pid ${b.pid}, ready in ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
    return 0;
  }
  process.stderr.write('usage: pulsar-broker fetch | start DIR | stop DIR\n');
  return 2;
}

if (process.argv[1] && /pulsar-broker\.(ts|js)$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e: unknown) => {
    process.stderr.write(`pulsar: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
