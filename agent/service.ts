// `aca agent` as a service: starts the agent, speaks the systemd notify protocol (READY=1 once
// gRPC listens and the dataplane's first reconcile is done, STATUS= lines, WATCHDOG=1 while
// healthy, RELOADING=1/READY=1 around a reload, STOPPING=1), re-reads the config file on SIGHUP
// and stops gracefully on SIGTERM/SIGINT (gRPC calls in flight finish, the flows stay on the
// switch).
import type { Logger } from 'winston';
import type { AgentConfig } from './config.js';
import { type Agent, type ReloadReport, startAgent } from './daemon.js';
import { SdNotify, monotonicUsec } from './systemd.js';

/** How long gRPC calls in flight get to finish on SIGTERM before they are cancelled. */
export const STOP_GRACE_MS = 10_000;

export interface ServiceOptions {
  /** Reads the configuration again (the config file, the environment, the flags), for SIGHUP. */
  reloadConfig: () => AgentConfig;
  env?: NodeJS.ProcessEnv;
  /** Called once the agent stopped (the CLI exits the process). */
  onStopped: (code: number) => void;
}

function statusLine(agent: Agent): string {
  const c = agent.store.counts();
  return `serving: ${c.port} ports, ${c.neighbor} neighbors, ${c.subnet} subnets; gRPC :${agent.grpcPort}, dataplane ${agent.dataplane.name}`;
}

export async function runService(config: AgentConfig, log: Logger, opts: ServiceOptions): Promise<Agent> {
  const sd = new SdNotify(opts.env ?? process.env, log);
  if (sd.enabled) await sd.notify({ STATUS: 'starting: loading the state and reconciling the switch' });
  let agent: Agent;
  try {
    agent = await startAgent(config, log);
  } catch (e) {
    await sd.notify({ STATUS: `failed to start: ${(e as Error).message}`, ERRNO: 1 });
    sd.close();
    throw e;
  }
  await sd.notify({ READY: 1, STATUS: statusLine(agent), MAINPID: process.pid });
  sd.startWatchdog(() => agent.health(), () => statusLine(agent));

  let stopping = false;
  let reloading: Promise<void> | null = null;
  const reload = async (): Promise<void> => {
    await sd.notify({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec(), STATUS: 'reloading the configuration' });
    let status: string;
    try {
      const next = opts.reloadConfig();
      const report: ReloadReport = agent.reload(next);
      log.info('configuration reloaded', { ...report });
      if (report.needsRestart.length > 0) {
        log.warn('changed settings need a restart to take effect', { settings: report.needsRestart });
        status = `${statusLine(agent)}; reloaded; needs a restart for: ${report.needsRestart.join(', ')}`;
      } else {
        status = `${statusLine(agent)}; reloaded`;
      }
    } catch (e) {
      log.error('reload failed; the running configuration is kept', { error: (e as Error).message });
      status = `${statusLine(agent)}; reload failed: ${(e as Error).message}`;
    }
    await sd.notify({ READY: 1, STATUS: status });
  };
  const onHup = (): void => {
    if (stopping) return;
    log.info('SIGHUP: reloading the configuration');
    reloading = (reloading ?? Promise.resolve()).then(reload);
  };
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal, graceMs: STOP_GRACE_MS });
    sd.stopWatchdog();
    void (async () => {
      await sd.notify({ STOPPING: 1, STATUS: `stopping (${signal}): draining gRPC calls; flows stay on the switch` });
      await reloading;
      let code = 0;
      try {
        await agent.stop(STOP_GRACE_MS);
      } catch (e) {
        log.error('stop failed', { error: (e as Error).message });
        code = 1;
      }
      sd.close();
      process.off('SIGHUP', onHup);
      opts.onStopped(code);
    })();
  };
  process.on('SIGHUP', onHup);
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  return agent;
}
