// Agent configuration: defaults < config file (--config, JSON or YAML) < ACA_* environment <
// command-line flags. `aca agent --print-config` shows the merged result.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseIPv4 } from './addr.js';
import type { LogFormat, LogLevel } from './log.js';
import { parseBridgeMappings } from '../dataplane/external.js';

export const DATAPLANES = ['sim', 'dry-run', 'ovs', 'none'] as const;
export type DataplaneKind = (typeof DATAPLANES)[number];

export interface AgentConfig {
  /** gRPC listen address for the controllers. */
  listen: string;
  /** Admin HTTP API address (loopback by default). */
  admin: string;
  /** This host's tunnel endpoint. */
  hostIp: string;
  dataplane: DataplaneKind;
  /** NCM address for RequestGoalStates (host:port); empty = none. */
  controller: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Largest gRPC message accepted, bytes. */
  maxMessageBytes: number;
  /** Longest string a resource may carry (ids, names, any text field). */
  maxStringLength: number;
  /** Longest list a resource may carry (fixed IPs, pairs, groups, rules, ...). */
  maxListLength: number;
  /** Remembered revisions of deleted resources, per kind (oldest forgotten first). */
  maxTombstones: number;
  /** `ovs` dataplane: OVSDB address (unix:PATH or tcp:HOST:PORT). */
  ovsDb: string;
  /** `ovs` dataplane: directory holding `<bridge>.mgmt`. */
  ovsRundir: string;
  /** `ovs` dataplane: datapath type of a br-int the agent creates (an existing one is adopted as is). */
  ovsDatapathType: string;
  /** DHCP: DNS servers for subnets that list none (comma-separated). */
  dhcpDns: string;
  /** DHCP option 15. */
  dhcpDomain: string;
  /** DHCP lease, seconds (T1 = half, T2 = 7/8). */
  dhcpLeaseSeconds: number;
  /** Underlay MTU; the DHCP MTU option subtracts the encapsulation overhead. */
  underlayMtu: number;
  /**
   * Where the resource store is kept across restarts (absolute path); empty = not kept. Given as
   * a path, `none` or empty (off), or `auto`: DEFAULT_STATE_DIR with the `ovs` dataplane, off
   * with the others.
   */
  stateDir: string;
  /** The underlay interface: its address is the host IP (unless hostIp is given) and its MTU the underlay MTU (unless underlayMtu is given); empty = the default route's interface. */
  underlayInterface: string;
  /** gRPC server TLS: certificate and key files (absolute paths); empty = plaintext. */
  tlsCert: string;
  tlsKey: string;
  /** CA bundle for client certificates: mutual TLS when set. */
  tlsClientCa: string;
  /** TLS to the controller: the CA its certificate must chain to (empty = plaintext); the agent presents tlsCert/tlsKey when set. */
  controllerTlsCa: string;
  /** The MQ path: Pulsar service URL (pulsar://HOST:PORT); empty = off (docs/mq.md). */
  pulsarUrl: string;
  /** The Key_Shared subscription shared by all agents. */
  pulsarSubscription: string;
  /** Address of SubscribeInfoProvisioner (PushNodeSubscribeInfo); served only with pulsarUrl. */
  subscribeListen: string;
  /** External networks: `name:bridge[,name:bridge]` (Neutron's bridge mappings); empty = none (docs/nat.md). */
  bridgeMappings: string;
}

/** The state dir `auto` means with the `ovs` dataplane (production: the switch outlives the agent). */
export const DEFAULT_STATE_DIR = '/var/lib/aca';

/**
 * Defaults of the `aca agent` daemon on top of the built-in ones. In-process agents (tests, the
 * demo, the benchmarks start many in one process) keep no state unless given a state dir; the
 * daemon keeps it in DEFAULT_STATE_DIR when it programs a real Open vSwitch.
 */
export const DAEMON_DEFAULTS: ConfigInput = { stateDir: 'auto' };

export type ConfigInput = Partial<Record<keyof AgentConfig, string | number | undefined>>;

export const ENV_NAMES: Record<keyof AgentConfig, string> = {
  listen: 'ACA_LISTEN', admin: 'ACA_ADMIN', hostIp: 'ACA_HOST_IP', dataplane: 'ACA_DATAPLANE',
  controller: 'ACA_CONTROLLER', logLevel: 'ACA_LOG_LEVEL', logFormat: 'ACA_LOG_FORMAT',
  maxMessageBytes: 'ACA_MAX_MESSAGE_BYTES',
  maxStringLength: 'ACA_MAX_STRING_LENGTH', maxListLength: 'ACA_MAX_LIST_LENGTH', maxTombstones: 'ACA_MAX_TOMBSTONES',
  ovsDb: 'ACA_OVS_DB', ovsRundir: 'ACA_OVS_RUNDIR', ovsDatapathType: 'ACA_OVS_DATAPATH_TYPE',
  dhcpDns: 'ACA_DHCP_DNS', dhcpDomain: 'ACA_DHCP_DOMAIN', dhcpLeaseSeconds: 'ACA_DHCP_LEASE_SECONDS', underlayMtu: 'ACA_UNDERLAY_MTU',
  stateDir: 'ACA_STATE_DIR',
  underlayInterface: 'ACA_UNDERLAY_INTERFACE',
  tlsCert: 'ACA_TLS_CERT', tlsKey: 'ACA_TLS_KEY', tlsClientCa: 'ACA_TLS_CLIENT_CA', controllerTlsCa: 'ACA_CONTROLLER_TLS_CA',
  pulsarUrl: 'ACA_PULSAR_URL', pulsarSubscription: 'ACA_PULSAR_SUBSCRIPTION', subscribeListen: 'ACA_SUBSCRIBE_LISTEN',
  bridgeMappings: 'ACA_BRIDGE_MAPPINGS',
};

const LOG_LEVELS: LogLevel[] = ['error', 'warn', 'info', 'debug'];
const LOG_FORMATS: LogFormat[] = ['json', 'text', 'journal'];

export class ConfigError extends Error {}

/**
 * The first non-internal IPv4 address of this machine, or 127.0.0.1 when there is none: the
 * fallback when `aca agent` cannot ask netlink (agent/host-discovery.ts), and what in-process
 * agents get without a host IP.
 */
export function defaultHostIp(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

function defaults(): AgentConfig {
  return {
    listen: '0.0.0.0:50001', admin: '127.0.0.1:50080', hostIp: '', dataplane: 'sim',
    controller: '', logLevel: 'info', logFormat: 'text', maxMessageBytes: 512 * 1024 * 1024,
    maxStringLength: 1024, maxListLength: 4096, maxTombstones: 100_000,
    ovsDb: 'unix:/var/run/openvswitch/db.sock', ovsRundir: '/var/run/openvswitch', ovsDatapathType: 'system',
    dhcpDns: '', dhcpDomain: '', dhcpLeaseSeconds: 86400, underlayMtu: 1500, stateDir: 'none',
    underlayInterface: '', tlsCert: '', tlsKey: '', tlsClientCa: '', controllerTlsCa: '',
    pulsarUrl: '', pulsarSubscription: 'alcor-agents', subscribeListen: '0.0.0.0:50002', bridgeMappings: '',
  };
}

/** Sizes as bytes or with a unit: 512MB, 1GiB, 4096. */
export function parseSize(text: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmg]i?b?|b)?\s*$/i.exec(text);
  if (!m) throw new ConfigError(`"${text}" is not a size (e.g. 536870912, 512MB, 1GiB)`);
  const unit = (m[2] ?? 'b').toLowerCase()[0];
  const scale = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Math.floor(Number(m[1]) * scale);
}

/** Read a JSON or YAML config file; keys are the config names (camelCase or kebab-case). */
export function readConfigFile(path: string): ConfigInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(`config file ${path} must hold a mapping`);
  const out: ConfigInput = {};
  const known = Object.keys(defaults());
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    const name = k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!known.includes(name)) throw new ConfigError(`config file ${path}: unknown setting "${k}"`);
    if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(`config file ${path}: "${k}" must be a string or number`);
    out[name as keyof AgentConfig] = v;
  }
  return out;
}

export function readEnv(env: NodeJS.ProcessEnv): ConfigInput {
  const out: ConfigInput = {};
  for (const [name, envName] of Object.entries(ENV_NAMES)) {
    const v = env[envName];
    // Empty means unset, except for the state dir, where it means off.
    if (v !== undefined && (v !== '' || name === 'stateDir')) out[name as keyof AgentConfig] = v;
  }
  return out;
}

function validAddress(text: string, what: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):([0-9]{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535) throw new ConfigError(`${what}: "${text}" is not host:port`);
  return text;
}

function integerIn(value: string | number | undefined, min: number, max: number, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${what}: "${String(value)}" is not an integer in ${min}–${max}`);
  return n;
}

function dnsList(text: string): string {
  const list = text.split(',').map((x) => x.trim()).filter((x) => x !== '');
  for (const ip of list) if (!parseIPv4(ip).ok) throw new ConfigError(`dhcpDns: "${ip}" is not an IPv4 address`);
  return list.join(',');
}

function ovsdbAddress(text: string): string {
  if (!/^(unix:.+|tcp:.+:[0-9]{1,5})$/.test(text)) throw new ConfigError(`ovsDb: "${text}" is not unix:PATH or tcp:HOST:PORT`);
  return text;
}

function stateDirOf(text: string, dataplane: string): string {
  if (text === '' || text === 'none') return '';
  if (text === 'auto') return dataplane === 'ovs' ? DEFAULT_STATE_DIR : '';
  if (text.includes('\0')) throw new ConfigError('stateDir: the path holds a NUL character');
  return resolvePath(text);
}

function oneOf<T extends string>(value: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`${what}: "${value}" is not one of ${allowed.join(', ')}`);
  }
  return value as T;
}

/** Merge layers (lowest precedence first) and validate. */
export function resolveConfig(...layers: ConfigInput[]): AgentConfig {
  const merged: Record<string, string | number> = { ...defaults() };
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) if (v !== undefined) merged[k] = v;
  }
  const s = (k: keyof AgentConfig): string => String(merged[k]);
  const hostIp = s('hostIp') === '' ? defaultHostIp() : s('hostIp');
  if (!parseIPv4(hostIp).ok) throw new ConfigError(`hostIp: "${hostIp}" is not an IPv4 address`);
  const size = typeof merged.maxMessageBytes === 'number' ? merged.maxMessageBytes : parseSize(s('maxMessageBytes'));
  if (!Number.isInteger(size) || size < 1024) throw new ConfigError(`maxMessageBytes: ${size} is below 1024 bytes`);
  const dataplane = oneOf(s('dataplane'), DATAPLANES, 'dataplane');
  return {
    listen: validAddress(s('listen'), 'listen'),
    admin: validAddress(s('admin'), 'admin'),
    hostIp,
    dataplane,
    controller: s('controller') === '' ? '' : validAddress(s('controller'), 'controller'),
    logLevel: oneOf(s('logLevel'), LOG_LEVELS, 'logLevel'),
    logFormat: oneOf(s('logFormat'), LOG_FORMATS, 'logFormat'),
    maxMessageBytes: Math.min(size, 0x7fffffff),
    maxStringLength: integerIn(merged.maxStringLength, 64, 16 * 1024 * 1024, 'maxStringLength'),
    maxListLength: integerIn(merged.maxListLength, 16, 16 * 1024 * 1024, 'maxListLength'),
    maxTombstones: integerIn(merged.maxTombstones, 0, 0x7fffffff, 'maxTombstones'),
    ovsDb: ovsdbAddress(s('ovsDb')),
    ovsRundir: s('ovsRundir'),
    ovsDatapathType: oneOf(s('ovsDatapathType'), ['system', 'netdev', 'dummy'] as const, 'ovsDatapathType'),
    dhcpDns: dnsList(s('dhcpDns')),
    dhcpDomain: s('dhcpDomain'),
    dhcpLeaseSeconds: integerIn(merged.dhcpLeaseSeconds, 60, 0x7fffffff, 'dhcpLeaseSeconds'),
    underlayMtu: integerIn(merged.underlayMtu, 576, 65535, 'underlayMtu'),
    stateDir: stateDirOf(s('stateDir'), dataplane),
    underlayInterface: interfaceName(s('underlayInterface')),
    ...tlsOf(s('tlsCert'), s('tlsKey'), s('tlsClientCa'), s('controllerTlsCa')),
    pulsarUrl: pulsarUrlOf(s('pulsarUrl')),
    pulsarSubscription: subscriptionName(s('pulsarSubscription')),
    subscribeListen: validAddress(s('subscribeListen'), 'subscribeListen'),
    bridgeMappings: bridgeMappingsOf(s('bridgeMappings')),
  };
}

/** Checked here (a bad mapping stops the agent at start) and kept as given, normalized. */
function bridgeMappingsOf(text: string): string {
  try {
    return parseBridgeMappings(text).map((m) => `${m.name}:${m.bridge}`).join(',');
  } catch (e) {
    throw new ConfigError(`bridgeMappings: ${(e as Error).message}`);
  }
}

function pulsarUrlOf(text: string): string {
  if (text !== '' && !/^pulsar:\/\/(\[[0-9a-fA-F:.]+\]|[^:/\s]+)(:[0-9]{1,5})?\/?$/.test(text)) throw new ConfigError(`pulsarUrl: "${text}" is not pulsar://HOST:PORT`);
  return text;
}

function subscriptionName(text: string): string {
  if (!/^[A-Za-z0-9._:=-]{1,200}$/.test(text)) throw new ConfigError(`pulsarSubscription: "${text}" is not a subscription name (letters, digits, . _ : = -)`);
  return text;
}

function interfaceName(text: string): string {
  if (text !== '' && !/^[A-Za-z0-9._@:-]{1,15}$/.test(text)) throw new ConfigError(`underlayInterface: "${text}" is not an interface name`);
  return text;
}

function tlsOf(cert: string, key: string, clientCa: string, controllerCa: string): Pick<AgentConfig, 'tlsCert' | 'tlsKey' | 'tlsClientCa' | 'controllerTlsCa'> {
  if ((cert === '') !== (key === '')) throw new ConfigError('tlsCert and tlsKey go together: give both or neither');
  if (clientCa !== '' && cert === '') throw new ConfigError('tlsClientCa (mutual TLS) needs tlsCert and tlsKey');
  const path = (p: string): string => (p === '' ? '' : resolvePath(p));
  return { tlsCert: path(cert), tlsKey: path(key), tlsClientCa: path(clientCa), controllerTlsCa: path(controllerCa) };
}
