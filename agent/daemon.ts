// Wires one agent together: state dir, store, dataplane, intake, gRPC server, admin API,
// controller client. Tests start agents in-process through startAgent; `aca agent` does the same.
import type { Logger } from 'winston';
import { AdminServer } from './admin.js';
import type { AgentConfig } from './config.js';
import { ControllerClient, onDemandAsk } from './controller-client.js';
import { type Dataplane, NullDataplane } from '../dataplane/api.js';
import type { DhcpSettings } from '../dataplane/dhcp-handler.js';
import { DryRunBackend, type FlowBackend } from '../dataplane/backend.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { hostNetworking, parseBridgeMappings } from '../dataplane/external.js';
import { OvsBackend } from '../dataplane/backends/ovs.js';
import { standaloneSimBackend } from '../dataplane/backends/sim.js';
import { flowJson } from './render.js';
import { GrpcServer } from './grpc-server.js';
import { Intake } from './intake.js';
import { ReloadableCertificates, clientCredentials, isLoopback, serverCredentials } from './tls.js';
import { splitHostPort } from './admin.js';
import { AgentMetrics } from './metrics.js';
import { type LoadReport, StateDir } from './state-dir.js';
import { ResourceStore } from './store.js';
import { PulsarSource } from './pulsar-source.js';
import { SubscribeServer } from './subscribe-server.js';
import { VERSION } from './version.js';
import { tuneV8 } from './v8-tuning.js';
import { OperationType } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { NeighborState } from '../proto/gen/alcor/neighbor.js';

export interface Agent {
  config: AgentConfig;
  store: ResourceStore;
  intake: Intake;
  dataplane: Dataplane;
  /** The state dir (null: the store is not kept across restarts). */
  state: StateDir | null;
  /** What start loaded from the state dir. */
  loaded: LoadReport | null;
  grpcPort: number;
  adminPort: number;
  controller: ControllerClient | null;
  metrics: AgentMetrics;
  /** The MQ path (--pulsar-url), null when off. */
  pulsar: PulsarSource | null;
  /** The port of PushNodeSubscribeInfo (0 when the MQ path is off). */
  subscribePort: number;
  /**
   * Applies what can change while running (SIGHUP re-reads the config file): the log level and
   * the DHCP settings. Says what changed, what was applied and what needs a restart.
   */
  reload(next: AgentConfig): ReloadReport;
  /** Health for the systemd watchdog: the servers listen and no dataplane commit is stuck. */
  health(): { ok: boolean; reason?: string };
  /**
   * Stops serving: gRPC calls in flight get `graceMs` to finish (then are cancelled), the admin
   * API closes, the state dir is flushed; the flows stay on the switch.
   */
  stop(graceMs?: number): Promise<void>;
}

export interface ReloadReport {
  changed: (keyof AgentConfig)[];
  applied: (keyof AgentConfig)[];
  needsRestart: (keyof AgentConfig)[];
}

/** Settings that take effect on reload, without a restart (the TLS files are re-read on every reload). */
const LIVE_TLS: readonly (keyof AgentConfig)[] = ['tlsCert', 'tlsKey', 'tlsClientCa'];
const LIVE_LOG: readonly (keyof AgentConfig)[] = ['logLevel'];
const LIVE_DHCP: readonly (keyof AgentConfig)[] = ['dhcpDns', 'dhcpDomain', 'dhcpLeaseSeconds', 'underlayMtu'];

/** A dataplane commit running longer than this makes the agent unhealthy (the watchdog stops). */
export const STUCK_COMMIT_MS = 10 * 60_000;

/** The DHCP settings of a configuration. */
export function dhcpSettings(config: AgentConfig): DhcpSettings {
  return {
    leaseSeconds: config.dhcpLeaseSeconds, domain: config.dhcpDomain, underlayMtu: config.underlayMtu,
    dns: config.dhcpDns === '' ? [] : config.dhcpDns.split(','),
  };
}

/**
 * The dataplane a configuration asks for. `dhcp` is handed to the DHCP server by reference: a
 * reload (SIGHUP) changes its fields in place and the next reply uses them.
 */
export function createDataplane(config: AgentConfig, log: Logger, dhcp: DhcpSettings = dhcpSettings(config), metrics?: AgentMetrics): Dataplane {
  const on = <B extends FlowBackend>(backend: B): B => {
    metrics?.instrumentBackend(backend);
    return backend;
  };
  const host = hostNetworking(config.hostIp, parseBridgeMappings(config.bridgeMappings));
  switch (config.dataplane) {
    case 'sim':
      // A standalone simulated host (ports plugged as they appear): flows can be listed and
      // traced. Tests and the demo put several hosts on one simulated underlay instead.
      return new FlowDataplane(on(standaloneSimBackend(config.hostIp)), log, dhcp, undefined, undefined, host);
    case 'dry-run':
      return new FlowDataplane(on(new DryRunBackend()), log, dhcp, undefined, undefined, host);
    case 'ovs':
      return new FlowDataplane(on(new OvsBackend({ db: config.ovsDb, rundir: config.ovsRundir, datapathType: config.ovsDatapathType, log })), log, dhcp, undefined, undefined, host);
    case 'none':
      return new NullDataplane();
  }
}

export async function startAgent(config: AgentConfig, log: Logger, given?: Dataplane, metrics = new AgentMetrics()): Promise<Agent> {
  tuneV8();
  config = { ...config };
  // The DHCP settings object is shared with the DHCP server, so a reload can change it in place
  // (only when the dataplane is ours to make).
  const dhcp = given ? null : dhcpSettings(config);
  const dataplane = given ?? createDataplane(config, log, dhcp ?? undefined, metrics);
  metrics.watch(dataplane);
  log.info('aca starting', { version: VERSION, node: process.version, pid: process.pid, dataplane: config.dataplane, hostIp: config.hostIp });
  const store = new ResourceStore(config.maxTombstones);
  // The desired state saved by the previous run goes into the store before the dataplane starts,
  // so that the dataplane's start sees all of it.
  let state: StateDir | null = null;
  let loaded: LoadReport | null = null;
  if (config.stateDir !== '') ({ state, report: loaded } = await StateDir.open(config.stateDir, store, log));
  try {
    await dataplane.start(store);
  } catch (e) {
    await state?.close();
    throw e;
  }
  const intake = new Intake(store, dataplane, log, config.hostIp, state, { maxStringLength: config.maxStringLength, maxListLength: config.maxListLength });
  let certs: ReloadableCertificates | null = null;
  let controllerCredentials;
  try {
    certs = config.tlsCert === '' ? null : new ReloadableCertificates({ cert: config.tlsCert, key: config.tlsKey, clientCa: config.tlsClientCa });
    controllerCredentials = clientCredentials({ ca: config.controllerTlsCa, cert: config.controllerTlsCa ? config.tlsCert : '', key: config.controllerTlsCa ? config.tlsKey : '' });
  } catch (e) {
    await state?.close();
    await dataplane.close();
    throw e;
  }
  if (!certs && !isLoopback(splitHostPort(config.listen).host)) {
    log.warn('gRPC listens beyond loopback without TLS: anyone who reaches this host can push goal states (give --tls-cert and --tls-key, and --tls-client-ca for mutual TLS)', { listen: config.listen });
  }
  const grpcServer = new GrpcServer(intake, log, { listen: config.listen, maxMessageBytes: config.maxMessageBytes, metrics, credentials: serverCredentials(certs) });
  let ready = false;
  const startedAt = new Date().toISOString();
  const admin = new AdminServer({
    store,
    ready: () => ready,
    metrics: async () => ({ contentType: metrics.contentType, text: await metrics.text() }),
    info: () => ({
      version: VERSION, node: process.version, hostIp: config.hostIp, dataplane: dataplane.name, startedAt,
      hostIpMismatches: { resources: intake.hostIpMismatches.resources, lastIp: intake.hostIpMismatches.lastIp }, grpcPort: grpcServer.port, state: state?.info() ?? null,
      ...(pulsar ? { pulsar: { url: config.pulsarUrl, subscription: config.pulsarSubscription, subscribePort: subscribeServer?.port ?? 0, messages: { ...pulsar.totals }, topics: pulsar.list() } } : {}),
      ...(dataplane instanceof FlowDataplane ? { flows: dataplane.installed.size, punts: dataplane.punts, dhcp: dataplane.dhcp.counters } : {}),
    }),
    ...(dataplane instanceof FlowDataplane
      ? {
          flows: () => dataplane.flows().map((f) => flowJson(f, dataplane.flowOwners(f))),
          bridges: () => dataplane.bridges,
          trace: (spec: string) => dataplane.trace(spec),
        }
      : {}),
  }, log);
  let adminPort: number;
  let grpcPort: number;
  try {
    adminPort = await admin.start(config.admin);
    try {
      grpcPort = await grpcServer.start();
    } catch (e) {
      await admin.stop();
      throw e;
    }
  } catch (e) {
    await state?.close();
    await dataplane.close();
    throw e;
  }
  let pulsar: PulsarSource | null = null;
  let subscribeServer: SubscribeServer | null = null;
  if (config.pulsarUrl !== '') {
    try {
      pulsar = new PulsarSource({ url: config.pulsarUrl, subscription: config.pulsarSubscription, hostIp: config.hostIp, stateDir: config.stateDir, intake, log, metrics });
      pulsar.registerMetrics(metrics.registry);
      pulsar.start();
      subscribeServer = new SubscribeServer(pulsar, log, config.subscribeListen, serverCredentials(certs));
      await subscribeServer.start();
    } catch (e) {
      await pulsar?.close();
      await grpcServer.stop(0);
      await admin.stop();
      await state?.close();
      await dataplane.close();
      throw e;
    }
  }
  ready = true;
  const controller = config.controller === '' ? null : new ControllerClient(config.controller, log, controllerCredentials);
  if (controller) void controller.announceRestart(config.hostIp);
  if (controller && dataplane instanceof FlowDataplane) {
    dataplane.onDemand.setController(onDemandAsk(controller));
    // On-demand entries idle for 60 s go: their neighbors are deleted as a controller would.
    dataplane.expireOnDemand((keys) => forgetNeighbors(intake, store, keys, log));
  }
  log.info('agent ready', { version: VERSION, hostIp: config.hostIp, dataplane: dataplane.name, grpc: grpcPort, admin: adminPort, stateDir: config.stateDir || 'none' });
  return {
    config, store, intake, dataplane, state, loaded, grpcPort, adminPort, controller, metrics, pulsar, subscribePort: subscribeServer?.port ?? 0,
    reload(next: AgentConfig): ReloadReport {
      const report: ReloadReport = { changed: [], applied: [], needsRestart: [] };
      // The certificate files are read again even when their paths did not change (renewed in
      // place). TLS on or off, or mutual TLS on or off, needs a restart; so does a file that
      // cannot be used (then nothing of this reload applies).
      const tlsLive = certs !== null && next.tlsCert !== '' && (next.tlsClientCa === '') === (config.tlsClientCa === '');
      if (tlsLive) certs!.reload({ cert: next.tlsCert, key: next.tlsKey, clientCa: next.tlsClientCa });
      for (const key of Object.keys(next) as (keyof AgentConfig)[]) {
        if (next[key] === config[key]) continue;
        report.changed.push(key);
        if (LIVE_LOG.includes(key) || (dhcp && LIVE_DHCP.includes(key)) || (tlsLive && LIVE_TLS.includes(key))) {
          (config as unknown as Record<string, unknown>)[key] = next[key];
          report.applied.push(key);
        } else {
          report.needsRestart.push(key);
        }
      }
      log.level = config.logLevel;
      if (dhcp) Object.assign(dhcp, dhcpSettings(config));
      if (tlsLive) log.info('TLS certificates re-read', { cert: config.tlsCert, clientCa: config.tlsClientCa || 'none' });
      return report;
    },
    health() {
      if (!ready) return { ok: false, reason: 'not serving' };
      const stuck = intake.commitRunningMs;
      if (stuck > STUCK_COMMIT_MS) return { ok: false, reason: `a dataplane commit has been running for ${Math.round(stuck / 1000)} s` };
      return { ok: true };
    },
    async stop(graceMs?: number) {
      ready = false;
      await subscribeServer?.stop(graceMs);
      await pulsar?.close();
      await grpcServer.stop(graceMs);
      await admin.stop();
      controller?.close();
      await state?.close();
      await dataplane.close();
      log.info('agent stopped');
    },
  };
}

/** Delete neighbors from the store through the intake (their flows go with them), as a DELETE from the controller would. */
async function forgetNeighbors(intake: Intake, store: ResourceStore, keys: string[], log: Logger): Promise<void> {
  const gs = GoalStateV2.fromPartial({});
  for (const key of keys) {
    const n = store.get('neighbor', key);
    if (!n) continue;
    gs.neighborStates[key] = NeighborState.fromPartial({ operationType: OperationType.DELETE, configuration: { id: n.id, revisionNumber: 0, fixedIps: [] } });
  }
  if (Object.keys(gs.neighborStates).length === 0) return;
  await intake.apply({ v2: gs });
  log.info('on-demand entries idle: neighbors removed', { neighbors: Object.keys(gs.neighborStates).slice(0, 20), count: Object.keys(gs.neighborStates).length });
}
