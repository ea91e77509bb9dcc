// The `aca` command: `aca agent` (the daemon), `aca push` (send goal states like a controller),
// `aca ctl state` (ask a running agent).
import { Command } from 'commander';
import { STATE_NAMES } from './admin.js';
import { ConfigError, type ConfigInput, DAEMON_DEFAULTS, readConfigFile, readEnv, resolveConfig } from './config.js';
import { PushError } from './errors.js';
import { VERSION } from './version.js';

// The commands load what they need when they run (gRPC, the dataplane, the protobuf code), so
// that `aca --version` and `aca --help` start in a fraction of a second.

const program = new Command('aca')
  .description(`Alcor-compatible compute-node agent: goal states in, Open vSwitch flows out (version ${VERSION})`)
  .version(`aca ${VERSION}`, '-V, --version', 'print the version and exit')
  .showHelpAfterError();

interface AgentFlags {
  config?: string;
  printConfig?: boolean;
  listen?: string;
  admin?: string;
  hostIp?: string;
  dataplane?: string;
  controller?: string;
  logLevel?: string;
  logFormat?: string;
  maxMessageBytes?: string;
  maxStringLength?: string;
  maxListLength?: string;
  maxTombstones?: string;
  bridgeMappings?: string;
  ovsDb?: string;
  ovsRundir?: string;
  ovsDatapathType?: string;
  dhcpDns?: string;
  dhcpDomain?: string;
  dhcpLeaseSeconds?: string;
  underlayMtu?: string;
  stateDir?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  controllerTlsCa?: string;
  underlayInterface?: string;
  pulsarUrl?: string;
  pulsarSubscription?: string;
  subscribeListen?: string;
}

program.command('agent')
  .description('run the agent daemon')
  .option('--config <file>', 'configuration file, JSON or YAML (env ACA_CONFIG)')
  .option('--print-config', 'print the merged configuration and exit')
  .option('--listen <host:port>', 'gRPC address for the controllers [0.0.0.0:50001] (env ACA_LISTEN)')
  .option('--admin <host:port>', 'admin HTTP API address [127.0.0.1:50080] (env ACA_ADMIN)')
  .option('--host-ip <ip>', "this host's tunnel endpoint [the address of the default route's interface, found with netlink] (env ACA_HOST_IP)")
  .option('--dataplane <kind>', 'dataplane backend: sim, dry-run, ovs or none [sim] (env ACA_DATAPLANE)')
  .option('--controller <host:port>', 'controller (NCM) for RequestGoalStates [none] (env ACA_CONTROLLER)')
  .option('--log-level <level>', 'error|warn|info|debug [info] (env ACA_LOG_LEVEL)')
  .option('--log-format <format>', 'text, json, or journal (for journald: no timestamp, <N> priority prefixes) [text] (env ACA_LOG_FORMAT)')
  .option('--max-message-bytes <size>', 'largest gRPC message accepted [512MB] (env ACA_MAX_MESSAGE_BYTES)')
  .option('--max-string-length <n>', 'longest string a resource may carry; longer: INVALID_ARG [1024] (env ACA_MAX_STRING_LENGTH)')
  .option('--max-list-length <n>', 'longest list a resource may carry; longer: INVALID_ARG [4096] (env ACA_MAX_LIST_LENGTH)')
  .option('--max-tombstones <n>', 'revisions of deleted resources remembered per kind, oldest forgotten first [100000] (env ACA_MAX_TOMBSTONES)')
  .option('--ovs-db <address>', 'ovs dataplane: OVSDB address [unix:/var/run/openvswitch/db.sock] (env ACA_OVS_DB)')
  .option('--ovs-rundir <dir>', 'ovs dataplane: directory of <bridge>.mgmt [/var/run/openvswitch] (env ACA_OVS_RUNDIR)')
  .option('--dhcp-dns <ips>', 'DHCP: DNS servers for subnets that list none, comma-separated [none] (env ACA_DHCP_DNS)')
  .option('--dhcp-domain <domain>', 'DHCP: domain name option [none] (env ACA_DHCP_DOMAIN)')
  .option('--dhcp-lease-seconds <n>', 'DHCP: lease time [86400] (env ACA_DHCP_LEASE_SECONDS)')
  .option('--underlay-mtu <n>', 'MTU of the underlay; DHCP hands out this minus the encapsulation overhead [1500] (env ACA_UNDERLAY_MTU)')
  .option('--ovs-datapath-type <type>', 'ovs dataplane: datapath type of a br-int the agent creates: system, netdev, dummy [system] (env ACA_OVS_DATAPATH_TYPE)')
  .option('--state-dir <dir>', 'keep the resource store here across restarts; none (or empty) = off; auto = /var/lib/aca with --dataplane ovs, off otherwise [auto] (env ACA_STATE_DIR)')
  .option('--underlay-interface <name>', "the underlay interface: its IPv4 address is the host IP and its MTU the underlay MTU unless given [the default route's] (env ACA_UNDERLAY_INTERFACE)")
  .option('--tls-cert <file>', 'gRPC server TLS certificate (PEM); plaintext without it (env ACA_TLS_CERT)')
  .option('--tls-key <file>', 'key of --tls-cert (PEM) (env ACA_TLS_KEY)')
  .option('--tls-client-ca <file>', 'mutual TLS: clients must present a certificate this CA bundle signed (env ACA_TLS_CLIENT_CA)')
  .option('--controller-tls-ca <file>', "TLS to --controller: its certificate must chain to this CA bundle; the agent presents --tls-cert as its client certificate (env ACA_CONTROLLER_TLS_CA)")
  .option('--pulsar-url <url>', 'the MQ path: consume goal states from this Pulsar broker, pulsar://HOST:PORT [off] (env ACA_PULSAR_URL)')
  .option('--pulsar-subscription <name>', 'Key_Shared subscription shared by all agents [alcor-agents] (env ACA_PULSAR_SUBSCRIPTION)')
  .option('--subscribe-listen <host:port>', 'SubscribeInfoProvisioner (PushNodeSubscribeInfo) address, served with --pulsar-url [0.0.0.0:50002] (env ACA_SUBSCRIBE_LISTEN)')
  .option('--bridge-mappings <list>', 'external networks for SNAT and elastic IPs: name:bridge[,name:bridge], e.g. ext:br-ex; the operator creates the bridge with its uplink, the agent adds the patch ports [none] (env ACA_BRIDGE_MAPPINGS)')
  .action(async (flags: AgentFlags) => {
    const configFile = flags.config ?? process.env.ACA_CONFIG;
    const fromFlags: ConfigInput = {
      listen: flags.listen, admin: flags.admin, hostIp: flags.hostIp, dataplane: flags.dataplane,
      controller: flags.controller, logLevel: flags.logLevel, logFormat: flags.logFormat,
      maxMessageBytes: flags.maxMessageBytes, ovsDb: flags.ovsDb, ovsRundir: flags.ovsRundir,
      maxStringLength: flags.maxStringLength, maxListLength: flags.maxListLength, maxTombstones: flags.maxTombstones,
      ovsDatapathType: flags.ovsDatapathType, dhcpDns: flags.dhcpDns, dhcpDomain: flags.dhcpDomain,
      dhcpLeaseSeconds: flags.dhcpLeaseSeconds, underlayMtu: flags.underlayMtu, stateDir: flags.stateDir,
      tlsCert: flags.tlsCert, tlsKey: flags.tlsKey, tlsClientCa: flags.tlsClientCa, controllerTlsCa: flags.controllerTlsCa,
      underlayInterface: flags.underlayInterface,
      pulsarUrl: flags.pulsarUrl, pulsarSubscription: flags.pulsarSubscription, subscribeListen: flags.subscribeListen,
      bridgeMappings: flags.bridgeMappings,
    };
    const env = readEnv(process.env);
    const file = configFile ? readConfigFile(configFile) : {};
    // Host discovery (netlink), below everything given: the host IP unless one is given, the
    // MTU of the underlay interface unless --underlay-mtu is.
    const given = (k: keyof ConfigInput): string => String([fromFlags[k], env[k], file[k]].find((v) => v !== undefined && v !== '') ?? '');
    const iface = given('underlayInterface');
    let discovered: ConfigInput = {};
    let discovery: { level: 'info' | 'warn'; message: string; meta: Record<string, unknown> } | null = null;
    if (given('hostIp') === '' || iface !== '') {
      const { discoverUnderlay } = await import('./host-discovery.js');
      try {
        const u = await discoverUnderlay(iface);
        discovered = { ...(given('hostIp') === '' ? { hostIp: u.ip } : {}), underlayMtu: Math.min(u.mtu, 65535) };
        discovery = { level: 'info', message: 'underlay found with netlink', meta: { ...u } };
      } catch (e) {
        if (iface !== '') throw new ConfigError(`underlayInterface: ${(e as Error).message}`);
        discovery = { level: 'warn', message: 'host discovery with netlink failed: the host IP is the first non-loopback IPv4 address; give --host-ip', meta: { error: (e as Error).message } };
      }
    }
    // Read again on SIGHUP: the file may have changed; the environment, the flags and what
    // discovery found at start have not.
    const load = () => resolveConfig(DAEMON_DEFAULTS, discovered, configFile ? readConfigFile(configFile) : {}, env, fromFlags);
    const config = resolveConfig(DAEMON_DEFAULTS, discovered, file, env, fromFlags);
    if (flags.printConfig) {
      process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
      return;
    }
    const { createLogger } = await import('./log.js');
    const { runService } = await import('./service.js');
    const log = createLogger(config.logLevel, config.logFormat);
    if (discovery) log[discovery.level](discovery.message, discovery.meta);
    await runService(config, log, { reloadConfig: load, onStopped: (code) => process.exit(code) });
  });

program.command('push')
  .description('send goal states to an agent as a controller does (one GoalStateV2 per stream), or publish them on Pulsar as DPM does (--pulsar)')
  .argument('<files...>', 'goal states: proto3 JSON or binary')
  .option('--agent <host:port>', 'agent address', '127.0.0.1:50001')
  .option('--pulsar <url>', 'the MQ path: publish each file as one message (raw GoalStateV2 bytes) to this broker, pulsar://HOST:PORT, instead of sending to an agent')
  .option('--topic <vpc>', 'with --pulsar: the topic, one per VPC (a short name is persistent://public/default/<name>)')
  .option('--key <host>', "with --pulsar: the message key, the host's IP (or its salted key IP#n)")
  .option('--v1', 'files are V1 GoalState, sent with the unary PushNetworkResourceStates')
  .option('--one-stream', 'send all files on one stream instead of one stream each')
  .option('--json', 'print the replies as JSON')
  .option('--tls-ca <file>', "speak TLS; the agent's certificate must chain to this CA bundle")
  .option('--tls-cert <file>', 'client certificate for mutual TLS (with --tls-key)')
  .option('--tls-key <file>', 'key of the client certificate')
  .option('--connect-timeout <seconds>', 'give up when the agent cannot be reached within this time', '10')
  .action(async (files: string[], opts: { agent: string; v1?: boolean; oneStream?: boolean; json?: boolean; tlsCa?: string; tlsCert?: string; tlsKey?: string; connectTimeout: string; pulsar?: string; topic?: string; key?: string }) => {
    const { GoalState, GoalStateV2 } = await import('../proto/gen/alcor/goalstate.js');
    if (opts.pulsar !== undefined || opts.topic !== undefined || opts.key !== undefined) {
      if (opts.pulsar === undefined) throw new PushError('--topic and --key go with --pulsar URL');
      if (opts.topic === undefined || opts.key === undefined) throw new PushError('--pulsar needs --topic VPC and --key HOST');
      const other = opts.v1 ? '--v1 (DPM publishes GoalStateV2 only)' : opts.oneStream ? '--one-stream' : opts.tlsCa ?? opts.tlsCert ?? opts.tlsKey ? 'the TLS options' : '';
      if (other !== '') throw new PushError(`--pulsar does not go with ${other}`);
      const timeout = Number(opts.connectTimeout);
      if (!Number.isFinite(timeout) || timeout <= 0) throw new PushError(`--connect-timeout must be a number of seconds above 0, not ${opts.connectTimeout}`);
      const { formatPublished, publishPulsar, readGoalStateFile } = await import('./push.js');
      // Every file is read and checked before anything is published.
      const states = files.map((f) => {
        try {
          return { file: f, bytes: GoalStateV2.encode(readGoalStateFile(f, GoalStateV2, 'GoalStateV2')).finish() };
        } catch (e) {
          if (e instanceof PushError) throw new PushError(e.message.replace(/: push it with --v1$/, ', which DPM does not publish'));
          throw e;
        }
      });
      const published = await publishPulsar(opts.pulsar, opts.topic, opts.key, states, timeout * 1000);
      process.stdout.write(opts.json ? `${JSON.stringify(published, null, 2)}\n` : `${published.map(formatPublished).join('\n')}\n`);
      return;
    }
    const { GoalStateOperationReply } = await import('../proto/gen/alcor/goalstateprovisioner.js');
    const { allSucceeded, connect, formatReply, makeClient, pushStream, pushUnary, readGoalStateFile } = await import('./push.js');
    const { clientCredentials, TlsError } = await import('./tls.js');
    // grpc-js names an IP target as the TLS server name, which Node reports as deprecated
    // (DEP0123) on every push to an address; the certificate is still checked against the IP.
    const emitWarning = process.emitWarning.bind(process);
    process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
      const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
      if (code === 'DEP0123') return;
      (emitWarning as (w: string | Error, ...r: unknown[]) => void)(warning, ...rest);
    });
    const timeout = Number(opts.connectTimeout);
    if (!Number.isFinite(timeout) || timeout <= 0) throw new PushError(`--connect-timeout must be a number of seconds above 0, not ${opts.connectTimeout}`);
    // Every file is read and checked before anything is sent.
    const v1 = opts.v1 ? files.map((f) => readGoalStateFile(f, GoalState, 'GoalState')) : [];
    const v2 = opts.v1 ? [] : files.map((f) => readGoalStateFile(f, GoalStateV2, 'GoalStateV2'));
    let credentials;
    try {
      credentials = clientCredentials({ ca: opts.tlsCa ?? '', cert: opts.tlsCert, key: opts.tlsKey });
    } catch (e) {
      if (e instanceof TlsError) throw new PushError(e.message);
      throw e;
    }
    const client = makeClient(opts.agent, credentials);
    const replies: { file: string; reply: import('../proto/gen/alcor/goalstateprovisioner.js').GoalStateOperationReply }[] = [];
    try {
      await connect(client, opts.agent, timeout * 1000);
      if (opts.v1) {
        for (const [i, f] of files.entries()) replies.push({ file: f, reply: await pushUnary(client, v1[i]!) });
      } else if (opts.oneStream) {
        const got = await pushStream(client, v2);
        got.forEach((reply, i) => replies.push({ file: files[i] ?? '?', reply }));
      } else {
        for (const [i, f] of files.entries()) {
          const [reply] = await pushStream(client, [v2[i]!]);
          if (!reply) throw new PushError(`${f}: the agent closed the stream without a reply`);
          replies.push({ file: f, reply });
        }
      }
    } finally {
      client.close();
    }
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(replies.map((r) => ({ file: r.file, reply: GoalStateOperationReply.toJSON(r.reply) })), null, 2)}\n`);
    } else {
      process.stdout.write(`${replies.map((r) => formatReply(r.file, r.reply)).join('\n\n')}\n`);
    }
    if (!allSucceeded(replies.map((r) => r.reply))) process.exitCode = 1;
  });

program.command('render')
  .description('print the flows goal states produce on a host (no switch touched), or the change to --diff states')
  .argument('<files...>', 'goal states (GoalStateV2, proto3 JSON or binary), applied in order')
  .option('--host-ip <ip>', "this host's tunnel endpoint", '10.0.0.11')
  .option('--format <format>', 'ofctl or json', 'ofctl')
  .option('--diff <files...>', 'goal states applied after FILES: print only the change they make')
  .option('--bridge-mappings <list>', 'the host\'s external networks (name:bridge[,…]), for routers\' external gateways and elastic IPs', '')
  .action(async (files: string[], opts: { hostIp: string; format: string; diff?: string[]; bridgeMappings: string }) => {
    if (opts.format !== 'ofctl' && opts.format !== 'json') throw new PushError(`--format must be ofctl or json, not ${opts.format}`);
    const { diffFlows, flowJson, formatChanges, formatOfctl, render } = await import('./render.js');
    const r = await render(files, opts.hostIp, opts.bridgeMappings);
    const owners = (f: import('../dataplane/flow.js').Flow): string[] => r.dataplane.flowOwners(f);
    if (opts.diff) {
      const before = r.flows();
      for (const f of opts.diff) await r.applyFile(f);
      const changes = diffFlows(before, r.flows());
      process.stdout.write(opts.format === 'json'
        ? `${JSON.stringify({ add: changes.add.map((f) => flowJson(f, owners(f))), modify: changes.modify.map((f) => flowJson(f, owners(f))), remove: changes.remove.map((f) => flowJson(f)) }, null, 2)}\n`
        : `${formatChanges(changes)}\n`);
    } else {
      const flows = r.flows();
      process.stdout.write(opts.format === 'json' ? `${JSON.stringify(flows.map((f) => flowJson(f, owners(f))), null, 2)}\n` : `${formatOfctl(flows)}\n`);
    }
    for (const p of r.problems) process.stderr.write(`aca render: ${p}\n`);
    if (r.problems.length > 0) process.exitCode = 1;
  });

/** GET from the admin API; its JSON errors become our errors. */
async function adminGet(admin: string, path: string): Promise<unknown> {
  const res = await fetch(`http://${admin}${path}`).catch((e: unknown) => {
    throw new PushError(`cannot reach the admin API at ${admin}: ${(e as Error).message}`);
  });
  const body = (await res.json()) as { error?: string };
  if (!res.ok) throw new PushError(`${path}: ${body.error ?? res.statusText}`);
  return body;
}

const ctl = program.command('ctl').description('ask a running agent (admin API)');
ctl.command('state')
  .description("print the running agent's resource store")
  .option('--admin <host:port>', 'admin API address', process.env.ACA_ADMIN ?? '127.0.0.1:50080')
  .option('--json', 'print the raw JSON')
  .action(async (opts: { admin: string; json?: boolean }) => {
    const body = (await adminGet(opts.admin, '/v1/state')) as Record<string, { key?: string; id: string }[]>;
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      return;
    }
    for (const name of Object.values(STATE_NAMES)) {
      const items = body[name] ?? [];
      process.stdout.write(`${name}: ${items.length}\n`);
      for (const item of items) process.stdout.write(`  ${item.key ?? item.id}\n`);
    }
  });

ctl.command('flows')
  .description("print the running agent's installed flows")
  .option('--admin <host:port>', 'admin API address', process.env.ACA_ADMIN ?? '127.0.0.1:50080')
  .option('--bridge <bridge>', 'only this bridge')
  .option('--json', 'print the raw JSON (with the owners of each flow)')
  .action(async (opts: { admin: string; bridge?: string; json?: boolean }) => {
    const q = opts.bridge ? `?bridge=${encodeURIComponent(opts.bridge)}` : '';
    const body = (await adminGet(opts.admin, `/v1/flows${q}`)) as { flows: { bridge: string; table: number; priority: number; cookie: string; match: string; actions: string }[] };
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      return;
    }
    for (const f of body.flows) {
      process.stdout.write(`table=${f.table},priority=${f.priority},cookie=${f.cookie}${f.match ? `,${f.match}` : ''} actions=${f.actions}\n`);
    }
  });

ctl.command('trace')
  .description("trace a packet through the agent's switch; each step names the resource behind its flow")
  .argument('<bridge>', 'bridge (br-int)')
  .argument('<flow>', 'a flow string, or in_port=N,HEX for a raw packet')
  .option('--admin <host:port>', 'admin API address', process.env.ACA_ADMIN ?? '127.0.0.1:50080')
  .action(async (bridge: string, flow: string, opts: { admin: string }) => {
    if (bridge !== 'br-int') throw new PushError(`the agent has one bridge, br-int, not ${bridge}`);
    const body = (await adminGet(opts.admin, `/v1/trace?flow=${encodeURIComponent(flow)}`)) as { trace: string };
    process.stdout.write(`${body.trace}\n`);
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof ConfigError || e instanceof PushError) {
    process.stderr.write(`aca: ${e.message}\n`);
    process.exit(2);
  }
  const err = e as { code?: number; details?: string; message?: string };
  if (typeof err.code === 'number' && err.details !== undefined) {
    process.stderr.write(`aca: gRPC error ${err.code}: ${err.details}\n`);
    process.exit(2);
  }
  process.stderr.write(`aca: ${err.message ?? String(e)}\n`);
  process.exit(2);
});
