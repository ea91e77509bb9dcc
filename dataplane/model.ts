// The normalized resource model: what the agent's store keeps and the dataplane programs from.
// Protobuf types stop at the agent's intake (agent/normalize.ts); nothing here knows them.
// Every value is validated: MACs are lower-case colon form, addresses are parsed.

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** The address as written (normalized), which may have host bits set. */
  address: string;
  prefix: number;
}

export const KINDS = ['vpc', 'subnet', 'securityGroup', 'gateway', 'router', 'port', 'neighbor', 'dhcp'] as const;
/** Resource kinds, in the order a goal state is applied (referenced kinds first). */
export type Kind = (typeof KINDS)[number];

export type NetworkType = 'vxlan' | 'vlan' | 'gre' | 'geneve' | 'vxlan_gpe';
export type Operation = 'INFO' | 'CREATE' | 'UPDATE' | 'GET' | 'DELETE';

interface Versioned {
  /** Store key: unique per kind (see `keyOf` in store.ts). */
  key: string;
  /** The controller's configuration id. */
  id: string;
  /** 0 = unversioned. */
  revision: number;
}

export interface Vpc extends Versioned {
  projectId: string;
  name: string;
  cidr: Cidr | null;
  /** 0 when unset, as DPM v2 sends it; the subnet's VNI is the one that counts. */
  tunnelId: number;
  gatewayIds: string[];
}

export interface Subnet extends Versioned {
  vpcId: string;
  name: string;
  cidr: Cidr;
  networkType: NetworkType;
  /** VNI (VXLAN/GENEVE/GRE/VXLAN_GPE) or VLAN id. */
  tunnelId: number;
  gateway: { ip: string | null; mac: string | null };
  dhcpEnable: boolean;
  dnsServers: string[];
  extraDhcpOptions: { name: string; value: string }[];
  availabilityZone: string;
}

export interface FixedIp {
  subnetId: string;
  ip: string;
}

export interface AddressPair {
  /** An address or a CIDR, as Neutron allows. */
  ip: string;
  mac: string | null;
}

export interface Port extends Versioned {
  vpcId: string;
  name: string;
  deviceId: string;
  deviceOwner: string;
  mac: string;
  adminStateUp: boolean;
  hostIp: string | null;
  fixedIps: FixedIp[];
  allowedAddressPairs: AddressPair[];
  securityGroupIds: string[];
  /** Our extension (field 100): 1:1 NAT of a fixed IP of the port to an external address. */
  elasticIps: ElasticIp[];
  /** The OVS interface name by Nova's convention: `tap` + the first 11 characters of the id. */
  ifaceName: string;
}

export type NeighborType = 'L2' | 'L3';

export interface NeighborFixedIp {
  subnetId: string;
  ip: string;
  arionGroup: string;
  tunnelId: number;
}

/**
 * A remote (or local) port as seen by this host. One controller NeighborState whose fixed IPs
 * are of both types becomes two entries: `L2/<id>` and `L3/<id>`, since DPM sends them as
 * separate states with the same configuration id and each must be replaceable on its own.
 */
export interface Neighbor extends Versioned {
  type: NeighborType;
  vpcId: string;
  name: string;
  mac: string;
  hostIp: string;
  hostMac: string | null;
  /** The neighbor's host is this host: a local port, never a tunnel destination. */
  local: boolean;
  fixedIps: NeighborFixedIp[];
  allowedAddressPairs: AddressPair[];
  /** Security groups of the port (our extension, field 100): remote-group membership. */
  securityGroupIds: string[];
}

export type Direction = 'ingress' | 'egress';
export type EtherType = 'ipv4' | 'ipv6';
export type SgProtocol = 'tcp' | 'udp' | 'icmp' | 'http' | 'arp';

export interface SecurityGroupRule {
  id: string;
  direction: Direction;
  etherType: EtherType;
  protocol: SgProtocol;
  portRangeMin: number;
  portRangeMax: number;
  remoteIpPrefix: Cidr | null;
  remoteGroupId: string;
}

export interface SecurityGroup extends Versioned {
  vpcId: string;
  name: string;
  rules: SecurityGroupRule[];
}

/** Keyed by MAC + address: DPM gives every DHCP state a fresh random id on every send. */
export interface DhcpBinding extends Versioned {
  subnetId: string;
  mac: string;
  ipv4: string | null;
  ipv6: string | null;
  hostName: string;
}

export type DestinationType = 'INTERNET' | 'VPC_GW';

export interface RoutingRule {
  id: string;
  name: string;
  destination: Cidr;
  nextHopIp: string | null;
  priority: number;
  destinationType: DestinationType;
  nextHopMac: string | null;
}

export interface ElasticIp {
  elasticIp: string;
  fixedIp: string;
}

/** This host's share of a router's SNAT address: source ports portMin–portMax of `ip`. */
export interface SnatSlice {
  ip: string;
  portMin: number;
  portMax: number;
}

/** A router's way to the internet (our extension, field 100; docs/nat.md). */
export interface ExternalGateway {
  /** A bridge-mapping name on this host (validated against the host's mappings at intake). */
  network: string;
  cidr: Cidr;
  nextHopIp: string;
  /** null: resolved by ARP from the host. */
  nextHopMac: string | null;
  snat: SnatSlice[];
}

export interface Router extends Versioned {
  hostDvrMac: string | null;
  subnetRoutingTables: { subnetId: string; rules: RoutingRule[] }[];
  externalGateway: ExternalGateway | null;
}

export type GatewayType = 'DEFAULT' | 'ZETA' | 'TGW' | 'IGW' | 'NGW' | 'ARION';

export interface Gateway extends Versioned {
  type: GatewayType;
  destinations: { ip: string; mac: string }[];
  zeta: { portInbandOperation: number } | null;
  arion: { vpcId: string; vni: number; subnetId: string; portInbandOperation: number } | null;
}

export interface ResourceOf {
  vpc: Vpc;
  subnet: Subnet;
  port: Port;
  neighbor: Neighbor;
  securityGroup: SecurityGroup;
  dhcp: DhcpBinding;
  router: Router;
  gateway: Gateway;
}
export type Resource = ResourceOf[Kind];

/** What changed in the store, one event per resource key. */
export type ResourceEvent = {
  [K in Kind]:
    | { type: 'added'; kind: K; key: string; after: ResourceOf[K] }
    | { type: 'changed'; kind: K; key: string; before: ResourceOf[K]; after: ResourceOf[K] }
    | { type: 'removed'; kind: K; key: string; before: ResourceOf[K] };
}[Kind];

/** Read access to the desired state, as the dataplane sees the agent's store. */
export interface ResourceView {
  get<K extends Kind>(kind: K, key: string): ResourceOf[K] | undefined;
  list<K extends Kind>(kind: K): IterableIterator<ResourceOf[K]>;
  count(kind: Kind): number;
}
