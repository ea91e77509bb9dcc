// Controller states (protobuf) to normalized resources (agent/model.ts), with a reason for
// every refusal. This is the edge where protobuf types stop. Pure: the context answers the
// questions that need the store (is this subnet known?).
import {
  type Parsed, cidrContains, isMappedIPv4, isStrictIPv4, normalizeIp, normalizeMac, parseCidr, parseIp, parseIPv4, parseIPv6, parseMac, quote, reservedMac,
} from './addr.js';
import type {
  AddressPair, DestinationType, ElasticIp, ExternalGateway, Direction, EtherType, GatewayType, Kind, NeighborFixedIp,
  Neighbor, NeighborType, NetworkType, Operation, ResourceOf, Router, RoutingRule, SecurityGroupRule, SgProtocol, Subnet,
} from '../dataplane/model.js';
import { DVR_MAC_PREFIX } from '../dataplane/pipeline.js';
import { NetworkType as PbNetworkType, OperationType } from '../proto/gen/alcor/common.js';
import type { VpcState } from '../proto/gen/alcor/vpc.js';
import type { SubnetState } from '../proto/gen/alcor/subnet.js';
import type { ElasticIp as PbElasticIp, PortState } from '../proto/gen/alcor/port.js';
import { NeighborType as PbNeighborType, type NeighborState } from '../proto/gen/alcor/neighbor.js';
import type { SecurityGroupState } from '../proto/gen/alcor/securitygroup.js';
import type { DHCPState } from '../proto/gen/alcor/dhcp.js';
import type { ExternalGateway as PbExternalGateway, RouterState } from '../proto/gen/alcor/router.js';
import type { GatewayState } from '../proto/gen/alcor/gateway.js';

export interface StateOf {
  vpc: VpcState;
  subnet: SubnetState;
  port: PortState;
  neighbor: NeighborState;
  securityGroup: SecurityGroupState;
  dhcp: DHCPState;
  router: RouterState;
  gateway: GatewayState;
}

export interface NormalizeContext {
  /** This host's tunnel endpoint: neighbors hosted here are local ports. */
  hostIp: string;
  /** Known from this message (already applied) or the store. */
  subnet(id: string): Subnet | undefined;
  securityGroupKnown(id: string): boolean;
  /** Network types the dataplane carries (undefined: any). */
  networkTypes?: readonly NetworkType[];
  /** Shares repeated strings (VPC, subnet, host ids) between resources: memory at scale. */
  intern(text: string): string;
  /** Bounds on a resource's strings and lists (default LIMITS; `--max-string-length`, `--max-list-length`). */
  limits?: Limits;
  /** This host's bridge-mapping names (`--bridge-mappings`): a router's external network must be one. */
  externalNetworks?: ReadonlySet<string>;
  /** The external gateway of a router that joins the subnet (to check an elastic IP against). */
  externalGatewayOf?(subnetId: string): ExternalGateway | undefined;
}

/**
 * An interner for low-cardinality strings. Bounded: past the limit it starts over, which only
 * costs sharing, never correctness.
 */
export function createInterner(limit = 65_536): (text: string) => string {
  let table = new Map<string, string>();
  return (text) => {
    const known = table.get(text);
    if (known !== undefined) return known;
    if (table.size >= limit) table = new Map();
    table.set(text, text);
    return text;
  };
}

/** What one controller state asks of the store. */
export type Intent<K extends Kind> =
  /** `refused`: parts left out (the rest applies); the resource answers INVALID_ARG with them. */
  | { op: 'upsert'; values: ResourceOf[K][]; warnings: string[]; refused: string[] }
  | { op: 'delete'; keys: string[] }
  | { op: 'noop' }
  | { op: 'invalid'; reason: string };

export interface Normalized<K extends Kind> {
  kind: K;
  /** The configuration id (reported back in the reply). */
  id: string;
  operation: Operation | 'UNRECOGNIZED';
  /** The wire value, echoed in the reply even when unknown. */
  operationType: number;
  revision: number;
  intent: Intent<K>;
}

const OPERATIONS: Record<number, Operation> = {
  [OperationType.INFO]: 'INFO', [OperationType.CREATE]: 'CREATE', [OperationType.UPDATE]: 'UPDATE',
  [OperationType.GET]: 'GET', [OperationType.DELETE]: 'DELETE',
};

const NETWORK_TYPES: Record<number, NetworkType> = {
  [PbNetworkType.VXLAN]: 'vxlan', [PbNetworkType.VLAN]: 'vlan', [PbNetworkType.GRE]: 'gre',
  [PbNetworkType.GENEVE]: 'geneve', [PbNetworkType.VXLAN_GPE]: 'vxlan_gpe',
};
const DIRECTIONS: Direction[] = ['egress', 'ingress'];
const ETHER_TYPES: EtherType[] = ['ipv4', 'ipv6'];
const SG_PROTOCOLS: SgProtocol[] = ['tcp', 'udp', 'icmp', 'http', 'arp'];
const DESTINATION_TYPES: DestinationType[] = ['INTERNET', 'VPC_GW'];
const GATEWAY_TYPES: GatewayType[] = ['DEFAULT', 'ZETA', 'TGW', 'IGW', 'NGW', 'ARION'];
const MAX_VNI = 0xffffff;
/** Shared by every resource without address pairs (most of them); never mutated. */
const NO_PAIRS: AddressPair[] = Object.freeze([]) as unknown as AddressPair[];
const NO_GROUPS: string[] = Object.freeze([]) as unknown as string[];

/** Thrown inside this module only; normalize() turns it into an `invalid` intent. */
class Invalid extends Error {}

function need<T>(parsed: Parsed<T>, field: string): T {
  if (!parsed.ok) throw new Invalid(`${field}: ${parsed.reason}`);
  return parsed.value;
}
function required(text: string, field: string): string {
  if (text === '') throw new Invalid(`${field} is empty`);
  return text;
}
function optional<T>(text: string, parse: (t: string) => Parsed<T>, field: string): T | null {
  return text === '' ? null : need(parse(text), field);
}
function enumValue<T>(table: Record<number, T> | T[], value: number, field: string): T {
  const v = (table as Record<number, T>)[value];
  if (v === undefined) throw new Invalid(`${field}: unknown value ${value}`);
  return v;
}
const mac = (text: string, field: string): string => need(parseMac(required(text, field)), field);
/** A MAC a resource may own: not broadcast, multicast or all-zero (they would capture traffic). */
function unicastMac(m: string, field: string): string {
  const why = reservedMac(m);
  if (why !== null) throw new Invalid(`${field}: ${m} is ${why}, which no port, neighbor or gateway may have`);
  return m;
}
/** A fixed IP in its subnet's family, never an IPv4 address dressed as IPv6. */
function addressIn(subnet: Subnet, family: 4 | 6, address: string, field: string): void {
  if (family === 6 && isMappedIPv4(address)) throw new Invalid(`${field}: ${address} is an IPv4-mapped IPv6 address; use the IPv4 address`);
  if (family !== subnet.cidr.family) throw new Invalid(`${field}: ${address} is IPv${family} but subnet ${subnet.id.slice(0, 64)} is IPv${subnet.cidr.family} (${subnet.cidr.address}/${subnet.cidr.prefix})`);
}
const ipAny = (text: string, field: string): string => need(parseIp(required(text, field)), field).address;
/** Neutron allows a CIDR in an allowed address pair. */
function ipOrCidr(text: string, field: string): string {
  if (text.includes('/')) {
    const c = need(parseCidr(text), field);
    return `${c.address}/${c.prefix}`;
  }
  return ipAny(text, field);
}
function addressPairs(list: { ipAddress: string; macAddress: string }[], field: string): AddressPair[] {
  return list.map((p, i) => ({
    ip: ipOrCidr(p.ipAddress, `${field}[${i}].ip_address`),
    mac: p.macAddress === '' ? null : unicastMac(mac(p.macAddress, `${field}[${i}].mac_address`), `${field}[${i}].mac_address`),
  }));
}
function uint(text: string, field: string, max: number): number {
  // uint64 fields arrive as decimal strings
  if (!/^[0-9]+$/.test(text) || text.length > 16 || Number(text) > max) {
    throw new Invalid(`${field}: ${text} is out of range 0–${max}`);
  }
  return Number(text);
}

/** Nova's tap naming: "tap" + the first 11 characters of the port id (15-char IFNAMSIZ limit). */
export function ifaceNameFor(portId: string): string {
  return `tap${portId.slice(0, 11)}`;
}

/** DHCP bindings are identified by MAC and address, never by their (random) id. */
export function dhcpKey(macAddress: string, address: string): string {
  return `${macAddress}/${address}`;
}

/**
 * The configuration id, or when a controller left it empty, the id in the V2 map key
 * (`L2/<id>`, `L3/<id>`, `<hostIp>/<id>`).
 */
export function idFromMapKey(configId: string, mapKey: string | undefined): string {
  if (configId !== '' || mapKey === undefined) return configId;
  const slash = mapKey.lastIndexOf('/');
  return slash >= 0 ? mapKey.slice(slash + 1) : mapKey;
}

type Builder<K extends Kind> = (state: StateOf[K], id: string, ctx: NormalizeContext, warnings: string[], mapKey: string | undefined) => ResourceOf[K][];

const builders: { [K in Kind]: Builder<K> } = {
  vpc(state, id) {
    const c = state.configuration!;
    return [{
      key: id, id, revision: c.revisionNumber,
      projectId: c.projectId, name: c.name,
      cidr: optional(c.cidr, parseCidr, 'cidr'),
      tunnelId: vniOf(String(c.tunnelId), 'tunnel_id'),
      gatewayIds: c.gatewayIds.filter((g) => g !== ''),
    }];
  },

  subnet(state, id, ctx) {
    const c = state.configuration!;
    const networkType = enumValue(NETWORK_TYPES, c.networkType, 'network_type');
    const tunnelId = uint(c.tunnelId, 'tunnel_id', 0xffffffff);
    if (networkType === 'vlan') {
      if (tunnelId < 1 || tunnelId > 4094) throw new Invalid(`tunnel_id: VLAN id ${tunnelId} is out of range 1–4094`);
    } else if (tunnelId > MAX_VNI) {
      throw new Invalid(`tunnel_id: VNI ${tunnelId} does not fit in 24 bits for ${networkType.toUpperCase()}`);
    }
    if (ctx.networkTypes && !ctx.networkTypes.includes(networkType)) {
      throw new Invalid(`network_type ${networkType.toUpperCase()} is not carried by this agent's dataplane (it carries ${ctx.networkTypes.map((n) => n.toUpperCase()).join(', ')}); refused rather than carried over another encapsulation`);
    }
    const cidr = need(parseCidr(required(c.cidr, 'cidr')), 'cidr');
    const gw = c.gateway;
    return [{
      key: id, id, revision: c.revisionNumber,
      vpcId: c.vpcId, name: c.name, cidr, networkType, tunnelId,
      gateway: {
        ip: gw ? optional(gw.ipAddress, (t) => parseIp(t), 'gateway.ip_address')?.address ?? null : null,
        mac: gw && gw.macAddress !== '' ? unicastMac(mac(gw.macAddress, 'gateway.mac_address'), 'gateway.mac_address') : null,
      },
      dhcpEnable: c.dhcpEnable,
      dnsServers: c.dnsEntryList.filter((d) => d.entry !== '').map((d, i) => ipAny(d.entry, `dns_entry_list[${i}]`)),
      extraDhcpOptions: c.extraDhcpOptions.map((o) => ({ name: o.name, value: o.value })),
      availabilityZone: c.availabilityZone,
    }];
  },

  port(state, id, ctx, warnings) {
    const c = state.configuration!;
    const fixedIps = c.fixedIps.map((f, i) => {
      const subnetId = required(f.subnetId, `fixed_ips[${i}].subnet_id`);
      const subnet = ctx.subnet(subnetId);
      if (!subnet) throw new Invalid(`fixed_ips[${i}].subnet_id: subnet ${subnetId} is not known`);
      const ip = need(parseIp(required(f.ipAddress, `fixed_ips[${i}].ip_address`)), `fixed_ips[${i}].ip_address`);
      addressIn(subnet, ip.family, ip.address, `fixed_ips[${i}].ip_address`);
      if (ip.family === 4 && subnet.cidr.family === 4 && !cidrContains(subnet.cidr, ip)) {
        // The controllers' own test client does this; warn, don't refuse.
        warnings.push(`fixed_ips[${i}]: ${ip.address} is outside subnet ${subnetId} (${subnet.cidr.address}/${subnet.cidr.prefix})`);
      }
      return { subnetId, ip: ip.address };
    });
    const securityGroupIds = c.securityGroupIds.map((s) => s.id).filter((s) => s !== '');
    const unknown = securityGroupIds.filter((sg) => !ctx.securityGroupKnown(sg));
    if (unknown.length > 0) {
      // At most a few named: a reason stays short whatever the list.
      const named = unknown.slice(0, 3).map((sg) => sg.slice(0, 64)).join(', ');
      const more = unknown.length > 3 ? ` and ${unknown.length - 3} more` : '';
      warnings.push(`security group${unknown.length > 1 ? 's' : ''} ${named}${more} ${unknown.length > 1 ? 'are' : 'is'} not known (accepted; enforced once its SecurityGroupState arrives)`);
    }
    return [{
      key: id, id, revision: c.revisionNumber,
      vpcId: c.vpcId, name: c.name, deviceId: c.deviceId, deviceOwner: c.deviceOwner,
      mac: unicastMac(mac(c.macAddress, 'mac_address'), 'mac_address'),
      adminStateUp: c.adminStateUp,
      hostIp: c.hostInfo ? optional(c.hostInfo.ipAddress, parseIp, 'host_info.ip_address')?.address ?? null : null,
      fixedIps,
      allowedAddressPairs: addressPairs(c.allowAddressPairs, 'allow_address_pairs'),
      securityGroupIds,
      elasticIps: elasticIps(c.elasticIps, fixedIps, ctx),
      ifaceName: ifaceNameFor(id),
    }];
  },

  // The hot path of a large state (a million neighbors): no field-name strings, closures or
  // result objects unless something is wrong.
  neighbor(state, id, ctx, _warnings, mapKey) {
    const c = state.configuration!;
    if (!isStrictIPv4(c.hostIpAddress)) throw new Invalid(`host_ip_address: ${quote(c.hostIpAddress)} is not an IPv4 address`);
    const hostIp = ctx.intern(c.hostIpAddress);
    if (c.fixedIps.length === 0) throw new Invalid('fixed_ips is empty');
    let l2: NeighborFixedIp[] | null = null;
    let l3: NeighborFixedIp[] | null = null;
    for (let i = 0; i < c.fixedIps.length; i++) {
      const f = c.fixedIps[i]!;
      if (f.neighborType !== PbNeighborType.L2 && f.neighborType !== PbNeighborType.L3) {
        throw new Invalid(`fixed_ips[${i}].neighbor_type: unknown value ${f.neighborType}`);
      }
      if (f.subnetId === '') throw new Invalid(`fixed_ips[${i}].subnet_id is empty`);
      const subnet = ctx.subnet(f.subnetId);
      if (!subnet) throw new Invalid(`fixed_ips[${i}].subnet_id: subnet ${quote(f.subnetId)} is not known`);
      const ip = normalizeIp(f.ipAddress);
      if (ip === null) throw new Invalid(`fixed_ips[${i}].ip_address: ${quote(f.ipAddress)} is not an IP address`);
      const v6 = ip.includes(':');
      if (v6 || subnet.cidr.family !== 4) addressIn(subnet, v6 ? 6 : 4, ip, `fixed_ips[${i}].ip_address`);
      if (f.tunnelId > MAX_VNI) throw new Invalid(`fixed_ips[${i}].tunnel_id: ${f.tunnelId} is out of range 0–${MAX_VNI}`);
      const entry: NeighborFixedIp = { subnetId: ctx.intern(f.subnetId), ip, arionGroup: f.arionGroup === '' ? '' : ctx.intern(f.arionGroup), tunnelId: f.tunnelId };
      // Arrays of exactly their size: a pushed-to [] keeps room for 17 entries, per neighbor.
      if (f.neighborType === PbNeighborType.L2) l2 = l2 === null ? [entry] : [...l2, entry];
      else l3 = l3 === null ? [entry] : [...l3, entry];
    }
    const macAddress = normalizeMac(c.macAddress);
    if (macAddress === null) throw new Invalid(`mac_address: ${quote(c.macAddress)} is not a MAC address (six hex octets separated by ':' or '-')`);
    unicastMac(macAddress, 'mac_address');
    let hostMac: string | null = null;
    if (c.hostMacAddress !== '') {
      hostMac = normalizeMac(c.hostMacAddress);
      if (hostMac === null) throw new Invalid(`host_mac_address: ${quote(c.hostMacAddress)} is not a MAC address`);
      hostMac = ctx.intern(hostMac);
    }
    const pairs = c.allowAddressPairs.length === 0 ? NO_PAIRS : addressPairs(c.allowAddressPairs, 'allow_address_pairs');
    const vpcId = ctx.intern(c.vpcId);
    const local = hostIp === ctx.hostIp;
    const groups = c.securityGroupIds.length === 0 ? NO_GROUPS : [...new Set(c.securityGroupIds.map((g, i) => ctx.intern(required(g, `security_group_ids[${i}]`))))].sort();
    // No closure and no growing array per neighbor: this runs a million times for a large state.
    const a = l2 === null ? null : neighborEntry('L2', id, mapKey, c.revisionNumber, vpcId, c.name, macAddress, hostIp, hostMac, local, l2, pairs, groups);
    const b = l3 === null ? null : neighborEntry('L3', id, mapKey, c.revisionNumber, vpcId, c.name, macAddress, hostIp, hostMac, local, l3, pairs, groups);
    return a === null ? [b!] : b === null ? [a] : [a, b];
  },

  securityGroup(state, id) {
    const c = state.configuration!;
    const rules = c.securityGroupRules.map((r, i): SecurityGroupRule => {
      const f = `security_group_rules[${i}]`;
      const etherType = enumValue(ETHER_TYPES, r.ethertype, `${f}.ethertype`);
      const min = r.portRangeMin;
      const max = r.portRangeMax;
      if (min > 65535 || max > 65535) throw new Invalid(`${f}: port range ${min}–${max} exceeds 65535`);
      if (max !== 0 && min > max) throw new Invalid(`${f}: port_range_min ${min} > port_range_max ${max}`);
      const remote = optional(r.remoteIpPrefix, parseCidr, `${f}.remote_ip_prefix`);
      if (remote && remote.family !== (etherType === 'ipv4' ? 4 : 6)) {
        throw new Invalid(`${f}.remote_ip_prefix: ${r.remoteIpPrefix} is not ${etherType.toUpperCase()}`);
      }
      return {
        id: r.id,
        direction: enumValue(DIRECTIONS, r.direction, `${f}.direction`),
        etherType,
        protocol: enumValue(SG_PROTOCOLS, r.protocol, `${f}.protocol`),
        portRangeMin: min, portRangeMax: max,
        remoteIpPrefix: remote,
        remoteGroupId: r.remoteGroupId,
      };
    });
    return [{ key: id, id, revision: c.revisionNumber, vpcId: c.vpcId, name: c.name, rules }];
  },

  dhcp(state, _id, ctx) {
    const c = state.configuration!;
    const macAddress = unicastMac(mac(c.macAddress, 'mac_address'), 'mac_address');
    const v4 = optional(c.ipv4Address, parseIPv4, 'ipv4_address');
    const v6 = optional(c.ipv6Address, parseIPv6, 'ipv6_address');
    if (v4 === null && v6 === null) throw new Invalid('neither ipv4_address nor ipv6_address is set');
    const subnetId = required(c.subnetId, 'subnet_id');
    if (!ctx.subnet(subnetId)) throw new Invalid(`subnet_id: subnet ${subnetId} is not known`);
    return [{
      key: dhcpKey(macAddress, v4 ?? v6 ?? ''), id: c.id, revision: c.revisionNumber,
      subnetId, mac: macAddress, ipv4: v4, ipv6: v6, hostName: c.portHostName,
    }];
  },

  router(state, id, ctx, warnings) {
    const c = state.configuration!;
    const dvr = optional(c.hostDvrMacAddress, parseMac, 'host_dvr_mac_address');
    if (dvr !== null && !dvr.startsWith(`${DVR_MAC_PREFIX.text}:`)) {
      throw new Invalid(`host_dvr_mac_address ${dvr} does not start with ${DVR_MAC_PREFIX.text}, the DVR MAC prefix every host restores routed packets by`);
    }
    const tables: Router['subnetRoutingTables'] = [];
    for (const [i, t] of c.subnetRoutingTables.entries()) {
      const subnetId = required(t.subnetId, `subnet_routing_tables[${i}].subnet_id`);
      const subnet = ctx.subnet(subnetId);
      if (subnet?.cidr.family === 6) {
        refusedParts.push(`subnet ${subnetId} (${subnet.cidr.address}/${subnet.cidr.prefix}): IPv6 routing is not supported`);
        continue;
      }
      if (!subnet) warnings.push(`subnet ${subnetId} is not known yet: routed when its SubnetState arrives`);
      else if (subnet.gateway.ip === null || subnet.gateway.mac === null) warnings.push(`subnet ${subnetId} has no gateway IP and MAC: not routed`);
      const rules: RoutingRule[] = [];
      for (const [j, r] of t.routingRules.entries()) {
        const f = `subnet_routing_tables[${i}].routing_rules[${j}]`;
        const extra = r.routingRuleExtraInfo;
        const rule: RoutingRule = {
          id: r.id, name: r.name,
          destination: need(parseCidr(required(r.destination, `${f}.destination`)), `${f}.destination`),
          nextHopIp: optional(r.nextHopIp, parseIp, `${f}.next_hop_ip`)?.address ?? null,
          priority: r.priority,
          destinationType: enumValue(DESTINATION_TYPES, extra?.destinationType ?? 0, `${f}.destination_type`),
          nextHopMac: extra ? optional(extra.nextHopMac, parseMac, `${f}.next_hop_mac`) : null,
        };
        if (rule.destination.family === 6 || rule.nextHopIp?.includes(':')) {
          refusedParts.push(`${f} (${r.destination} via ${r.nextHopIp || 'nothing'}): IPv6 routing is not supported`);
          continue;
        }
        rules.push(rule);
      }
      tables.push({ subnetId, rules });
    }
    return [{ key: id, id, revision: c.revisionNumber, hostDvrMac: dvr, subnetRoutingTables: tables, externalGateway: externalGateway(c.externalGateway, ctx) }];
  },

  gateway(state, id) {
    const c = state.configuration!;
    const extra = c.extraInfo;
    return [{
      key: id, id, revision: c.revisionNumber,
      type: enumValue(GATEWAY_TYPES, c.gatewayType, 'gateway_type'),
      destinations: c.destinations.map((d, i) => ({
        ip: ipAny(d.ipAddress, `destinations[${i}].ip_address`),
        mac: mac(d.macAddress, `destinations[${i}].mac_address`),
      })),
      zeta: extra?.$case === 'zetaInfo' ? { portInbandOperation: extra.value.portInbandOperation } : null,
      arion: extra?.$case === 'arionInfo'
        ? { vpcId: extra.value.vpcId, vni: vniOf(String(extra.value.vni), 'arion_info.vni'),
            subnetId: extra.value.subnetId, portInbandOperation: extra.value.portInbandOperation }
        : null,
    }];
  },
};

/**
 * `<type>/<id>`. DPM's V2 map key is exactly that: reuse it rather than compose a new string per
 * neighbor (at a million neighbors each composed key is two more objects to trace and re-hash).
 */
function keyOf(type: NeighborType, id: string, mapKey: string | undefined): string {
  if (mapKey !== undefined && mapKey.length === id.length + 3 && mapKey.startsWith(type) && mapKey.charCodeAt(2) === 47 && mapKey.endsWith(id)) return mapKey;
  return `${type}/${id}`;
}

/**
 * The id as a slice of its key (keyOf's key is always `<type>/<id>`): V8 keeps a slice of 13
 * characters or more as a reference into the key, about 32 bytes instead of a 36-character
 * copy's 56, a million times.
 */
const idIn = (key: string): string => key.slice(3);

/** A neighbor's L2 or L3 entry, keyed by its type and id (the map key's when it has one). */
function neighborEntry(
  type: NeighborType, stateId: string, mapKey: string | undefined, revision: number, vpcId: string, name: string, macAddress: string,
  hostIp: string, hostMac: string | null, local: boolean, fixedIps: NeighborFixedIp[], allowedAddressPairs: AddressPair[], securityGroupIds: string[],
): Neighbor {
  const key = keyOf(type, stateId, mapKey);
  return { key, id: idIn(key), revision, type, vpcId, name, mac: macAddress, hostIp, hostMac, local, fixedIps, allowedAddressPairs, securityGroupIds };
}

function vniOf(text: string, field: string): number {
  return uint(text, field, MAX_VNI);
}

/** Store keys a DELETE removes. Only identity fields are needed, so deletes stay lenient. */
function deleteKeys(kind: Kind, state: StateOf[Kind], id: string, mapKey: string | undefined): string[] {
  if (kind === 'neighbor') {
    const c = (state as NeighborState).configuration!;
    const types = new Set<NeighborType>();
    for (const f of c.fixedIps) {
      if (f.neighborType === PbNeighborType.L2) types.add('L2');
      if (f.neighborType === PbNeighborType.L3) types.add('L3');
    }
    if (types.size === 0 && mapKey?.startsWith('L2/')) types.add('L2');
    if (types.size === 0 && mapKey?.startsWith('L3/')) types.add('L3');
    if (types.size === 0) types.add('L2').add('L3');
    return [...types].map((t) => `${t}/${id}`);
  }
  if (kind === 'dhcp') {
    const c = (state as DHCPState).configuration!;
    const macAddress = mac(c.macAddress, 'mac_address');
    const v4 = optional(c.ipv4Address, parseIPv4, 'ipv4_address');
    const v6 = optional(c.ipv6Address, parseIPv6, 'ipv6_address');
    if (v4 === null && v6 === null) throw new Invalid('neither ipv4_address nor ipv6_address is set');
    return [dhcpKey(macAddress, v4 ?? v6 ?? '')];
  }
  return [id];
}

/**
 * Bounds on what one resource may carry, so no controller (or fuzzer) can make the agent store
 * 10 MB names or walk 100k-element lists: strings (ids, names, any text field) and lists (fixed
 * IPs, address pairs, groups, rules, routing tables, destinations). docs/intake.md.
 */
export interface Limits { readonly maxStringLength: number; readonly maxListLength: number }
export const LIMITS: Limits = { maxStringLength: 1024, maxListLength: 4096 };

/**
 * The first string or list of a configuration over the limits, as a reason; null when none is.
 * Walks the object generically; neighbors (a million at a time) are checked field by field in
 * their builder instead.
 */
function overLimits(value: unknown, path: string, limits: Limits, depth = 0): string | null {
  if (typeof value === 'string') {
    return value.length > limits.maxStringLength ? `${path}: ${value.length} characters is more than ${limits.maxStringLength} (${quote(value)})` : null;
  }
  if (Array.isArray(value)) {
    if (value.length > limits.maxListLength) return `${path}: ${value.length} entries is more than ${limits.maxListLength}`;
    for (let i = 0; i < value.length; i++) {
      const r = overLimits(value[i], `${path}[${i}]`, limits, depth + 1);
      if (r) return r;
    }
    return null;
  }
  if (value !== null && typeof value === 'object' && depth < 8) {
    for (const [k, v] of Object.entries(value)) {
      // Fields named as the .proto spells them.
      const field = k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      const r = overLimits(v, path === '' ? field : `${path}.${field}`, limits, depth + 1);
      if (r) return r;
    }
  }
  return null;
}

/** The neighbor's strings and lists over the limits (its hot path: no generic walk). */
const tooLong = (field: string, v: string, max: number): string => `${field}: ${v.length} characters is more than ${max} (${quote(v)})`;
const tooMany = (field: string, n: number, max: number): string => `${field}: ${n} entries is more than ${max}`;

function neighborOverLimits(c: NonNullable<NeighborState['configuration']>, limits: Limits): string | null {
  const max = limits.maxStringLength;
  // Field by field, no arrays or closures: this runs once per neighbor, a million times for a large state.
  if (c.id.length > max) return tooLong('id', c.id, max);
  if (c.name.length > max) return tooLong('name', c.name, max);
  if (c.vpcId.length > max) return tooLong('vpc_id', c.vpcId, max);
  if (c.requestId.length > max) return tooLong('request_id', c.requestId, max);
  const maxList = limits.maxListLength;
  if (c.fixedIps.length > maxList) return tooMany('fixed_ips', c.fixedIps.length, maxList);
  if (c.allowAddressPairs.length > maxList) return tooMany('allow_address_pairs', c.allowAddressPairs.length, maxList);
  if (c.securityGroupIds.length > maxList) return tooMany('security_group_ids', c.securityGroupIds.length, maxList);
  for (let i = 0; i < c.fixedIps.length; i++) {
    const f = c.fixedIps[i]!;
    if (f.subnetId.length > max || f.arionGroup.length > max) return `fixed_ips[${i}]: a string is more than ${max} characters`;
  }
  for (let i = 0; i < c.securityGroupIds.length; i++) if (c.securityGroupIds[i]!.length > max) return `security_group_ids[${i}]: more than ${max} characters`;
  return null;
}

/** SNAT source ports: below 1024 are the well-known ports a host's own services may use. */
export const SNAT_PORTS = { min: 1024, max: 65535 } as const;

/**
 * A router's external gateway (our extension). A bad one is left out with its reason (the router
 * answers INVALID_ARG and routes as before); slices that are wrong are left out one by one.
 */
function externalGateway(g: PbExternalGateway | undefined, ctx: NormalizeContext): ExternalGateway | null {
  if (!g) return null;
  const f = 'external_gateway';
  try {
    const network = required(g.externalNetwork, `${f}.external_network`);
    if (ctx.externalNetworks && !ctx.externalNetworks.has(network)) {
      const known = [...ctx.externalNetworks].map((n) => quote(n)).join(', ') || 'none';
      throw new Invalid(`${f}.external_network: ${quote(network)} is not a bridge mapping of this host (it has ${known}; --bridge-mappings)`);
    }
    const cidr = need(parseCidr(required(g.externalCidr, `${f}.external_cidr`)), `${f}.external_cidr`);
    if (cidr.family !== 4) throw new Invalid(`${f}.external_cidr: ${quote(g.externalCidr)} is not IPv4 (IPv6 NAT is not supported)`);
    const nextHop = need(parseIPv4(required(g.nextHopIp, `${f}.next_hop_ip`)), `${f}.next_hop_ip`);
    if (!cidrContains(cidr, { family: 4, address: nextHop })) throw new Invalid(`${f}.next_hop_ip: ${nextHop} is outside external_cidr ${cidr.address}/${cidr.prefix}`);
    const nextHopMac = g.nextHopMac === '' ? null : unicastMac(mac(g.nextHopMac, `${f}.next_hop_mac`), `${f}.next_hop_mac`);
    const snat: ExternalGateway['snat'] = [];
    for (const [i, sl] of g.snat.entries()) {
      const at = `${f}.snat[${i}]`;
      try {
        const ip = need(parseIPv4(required(sl.ip, `${at}.ip`)), `${at}.ip`);
        if (!cidrContains(cidr, { family: 4, address: ip })) throw new Invalid(`${at}.ip: ${ip} is outside external_cidr ${cidr.address}/${cidr.prefix}`);
        if (sl.portMin < SNAT_PORTS.min || sl.portMax > SNAT_PORTS.max || sl.portMin > sl.portMax) {
          throw new Invalid(`${at}: port range ${sl.portMin}–${sl.portMax} is not within ${SNAT_PORTS.min}–${SNAT_PORTS.max} or is inverted`);
        }
        if (snat.some((o) => o.ip === ip && o.portMin <= sl.portMax && sl.portMin <= o.portMax)) throw new Invalid(`${at}: ${ip} ports ${sl.portMin}–${sl.portMax} overlap another slice`);
        snat.push({ ip, portMin: sl.portMin, portMax: sl.portMax });
      } catch (e) {
        if (!(e instanceof Invalid)) throw e;
        refusedParts.push(e.message);
      }
    }
    return { network, cidr, nextHopIp: nextHop, nextHopMac, snat };
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    refusedParts.push(`${e.message} (the router is applied without its external gateway)`);
    return null;
  }
}

/** A port's elastic IPs: each must map one of the port's own IPv4 addresses, inside its router's external CIDR. */
function elasticIps(list: PbElasticIp[], fixedIps: { subnetId: string; ip: string }[], ctx: NormalizeContext): ElasticIp[] {
  const out: ElasticIp[] = [];
  for (const [i, e] of list.entries()) {
    const f = `elastic_ips[${i}]`;
    try {
      const eip = need(parseIPv4(required(e.elasticIp, `${f}.elastic_ip`)), `${f}.elastic_ip`);
      const fixed = need(parseIPv4(required(e.fixedIp, `${f}.fixed_ip`)), `${f}.fixed_ip`);
      const own = fixedIps.find((x) => x.ip === fixed);
      if (!own) throw new Invalid(`${f}.fixed_ip: ${fixed} is not an address of this port`);
      if (out.some((o) => o.fixedIp === fixed)) throw new Invalid(`${f}.fixed_ip: ${fixed} already has an elastic IP`);
      if (out.some((o) => o.elasticIp === eip)) throw new Invalid(`${f}.elastic_ip: ${eip} is given twice`);
      const gw = ctx.externalGatewayOf?.(own.subnetId);
      if (gw && !cidrContains(gw.cidr, { family: 4, address: eip })) {
        throw new Invalid(`${f}.elastic_ip: ${eip} is outside the external CIDR ${gw.cidr.address}/${gw.cidr.prefix} of the router of subnet ${quote(own.subnetId)}`);
      }
      out.push({ elasticIp: eip, fixedIp: fixed });
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      refusedParts.push(`${err.message} (the port is applied without it)`);
    }
  }
  return out.length === 0 ? NO_EIPS : out;
}
const NO_EIPS: ElasticIp[] = Object.freeze([]) as unknown as ElasticIp[];

const NO_WARNINGS: string[] = Object.freeze([]) as unknown as string[];
/** Builders push warnings (and parts they leave out) here; normalize() hands out copies only when there are any. */
const scratchWarnings: string[] = [];
const refusedParts: string[] = [];

function intentOf<K extends Kind>(
  kind: K, state: StateOf[K], id: string, operation: Operation | 'UNRECOGNIZED', mapKey: string | undefined, ctx: NormalizeContext,
): Intent<K> {
  if (operation === 'UNRECOGNIZED') return { op: 'invalid', reason: `operation_type: unknown value ${state.operationType}` };
  if (operation === 'GET') return { op: 'noop' };
  if (!state.configuration) return { op: 'invalid', reason: 'configuration is missing' };
  if (id === '' && kind !== 'dhcp') return { op: 'invalid', reason: 'configuration.id is empty' };
  const limits = ctx.limits ?? LIMITS;
  const tooBig = kind === 'neighbor' ? neighborOverLimits((state as NeighborState).configuration!, limits) : overLimits(state.configuration, '', limits);
  if (tooBig !== null) return { op: 'invalid', reason: tooBig };
  try {
    if (operation === 'DELETE') return { op: 'delete', keys: deleteKeys(kind, state, id, mapKey) };
    scratchWarnings.length = 0;
    refusedParts.length = 0;
    const values = builders[kind](state, id, ctx, scratchWarnings, mapKey);
    return {
      op: 'upsert', values, warnings: scratchWarnings.length === 0 ? NO_WARNINGS : [...scratchWarnings],
      refused: refusedParts.length === 0 ? NO_WARNINGS : [...refusedParts],
    };
  } catch (e) {
    if (e instanceof Invalid) return { op: 'invalid', reason: e.message };
    // A bug here must not take the agent down with it; report it against this resource.
    return { op: 'invalid', reason: `internal error while validating: ${String(e)}` };
  }
}

/** One controller state to what it asks of the store. Never throws. */
export function normalize<K extends Kind>(
  kind: K, state: StateOf[K], mapKey: string | undefined, ctx: NormalizeContext,
): Normalized<K> {
  const c = state.configuration;
  const id = idFromMapKey(c ? c.id : '', mapKey);
  const operation = OPERATIONS[state.operationType] ?? 'UNRECOGNIZED';
  const intent = intentOf(kind, state, id, operation, mapKey, ctx);
  return {
    kind, id: storedId(intent, id), operation, operationType: state.operationType, revision: c ? c.revisionNumber : 0, intent,
  };
}

/**
 * The id the reply reports, as the one stored value spells it when they are equal: the reply's
 * table then holds the stored string (a neighbor's is a slice of its key) instead of the decoded
 * copy, which a million-neighbor state would otherwise keep until its reply is sent.
 */
function storedId<K extends Kind>(intent: Intent<K>, id: string): string {
  if (intent.op !== 'upsert' || intent.values.length !== 1) return id;
  const stored = (intent.values[0] as { id?: unknown }).id;
  return stored === id ? stored : id;
}
