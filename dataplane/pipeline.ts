// The integration-bridge pipeline, declared once: tables, registers, cookie layout, bridge and
// tunnel ports. Features refer to tables by name; docs/pipeline.md is generated from this
// module (scripts/gen-pipeline-doc.ts) and a test keeps the two in step.
import type { RegField } from './flow.js';
import type { FieldName } from './fields.js';

export const BRIDGE = 'br-int';

export interface TableSpec {
  id: number;
  name: string;
  purpose: string;
  /** What a packet that matches no flow of this table meets (each has an explicit miss flow). */
  miss: string;
  /** The fields a flow of this table may match; any other is refused when the flow is built. */
  fields: readonly FieldName[];
  /** Declared for a feature that does not program flows yet. */
  reserved?: true;
  /** The bridge whose pipeline it belongs to; absent: br-int. External bridges come with SNAT. */
  bridge?: string;
}

/**
 * Tables, in packet order. Numbers leave room between stages for features still to come, as
 * OVN and Antrea do; a stage only ever passes packets to a higher table. The L2 lookups set the
 * output register (reg5) and hand over to the policy stage and the output table, so routing,
 * security groups and NAT slot in between without reworking L2.
 */
export const TABLES = {
  CLASSIFY: {
    id: 0, name: 'classify', fields: ['in_port', 'tun_id', 'tun_src', 'dl_type', 'nw_proto', 'tp_dst'],
    purpose: 'From a local VM port: load the network (VNI) into metadata and the port into reg6. From a tunnel port: VNI from tun_id, reg6 = 0, straight to local_l2 (split horizon); Zeta OAM packets from a gateway node of the network to the agent. From the patch port of an external bridge: to nat_ingress. Anything else is dropped.',
    miss: 'drop',
  },
  PORT_SECURITY: {
    id: 10, name: 'port_security',
    fields: ['reg6', 'dl_src', 'dl_type', 'nw_src', 'ipv6_src', 'arp_spa', 'arp_sha', 'nw_proto', 'tp_src', 'tp_dst', 'icmp_type'],
    purpose: 'Anti-spoofing for ports with security groups (only they come here): the source MAC and IP must be the port\'s own (fixed IPs, allowed address pairs with their MAC), ARP included (sender MAC and IP), DHCP discovery from 0.0.0.0, IPv6 from its addresses, link-local or unspecified; router advertisements from a VM are dropped. Everything else from the port is dropped.',
    miss: 'continue to sg_egress',
  },
  SG_EGRESS: {
    id: 15, name: 'sg_egress',
    fields: ['reg6', 'metadata', 'dl_dst', 'dl_type', 'nw_proto', 'nw_dst', 'tp_src', 'tp_dst', 'icmp_type'],
    purpose: 'Security groups, egress (from a VM with groups): DHCP to the agent, IPv6 neighbor discovery and ICMP echo to a router\'s gateway (answered by flows) pass; other IP goes through conntrack in the port\'s zone (its OpenFlow port number) to sg_egress_rules. Ports without groups pass.',
    miss: 'continue to arp_responder',
  },
  SG_EGRESS_RULES: {
    id: 16, name: 'sg_egress_rules',
    fields: ['reg6', 'conj_id', 'ct_state', 'dl_type', 'nw_proto', 'nw_dst', 'ipv6_dst', 'tp_dst', 'icmp_type', 'icmp_code'],
    purpose: 'After conntrack: invalid dropped; replies and related packets of tracked connections pass; new and established packets in the original direction pass only if a rule of one of the port\'s groups allows them (committed to conntrack), so a removed rule cuts its connections. Remote-group rules are conjunctions: the port and the rule\'s protocol and ports in one dimension, the remote group\'s addresses in the other.',
    miss: 'drop',
  },
  ARP_RESPONDER: {
    id: 20, name: 'arp_responder', fields: ['reg6', 'metadata', 'dl_dst', 'dl_type', 'arp_op', 'arp_tpa'],
    purpose: 'ARP requests from local ports for any known address of the network (local ports, remote neighbors, the subnet gateway) are answered in place (output IN_PORT); requests for unknown addresses go to the agent (packet-in, userdata arp-miss); other broadcast ARP is dropped.',
    miss: 'continue to dhcp',
  },
  ARP_REPLY: {
    id: 21, name: 'arp_reply', fields: [],
    purpose: 'The rest of every answer arp_responder started (eth dst = the asker, eth src = the answered MAC): arp_op = 2, target = the asker\'s MAC and address, sender = the answered MAC and the address asked for (swapped through reg2, cleared again), out of the input port. One flow for all entries, so an entry carries only its MAC.',
    miss: 'drop (only ARP requests an entry answers come here)',
  },
  DHCP: {
    id: 25, name: 'dhcp', fields: ['reg6', 'dl_type', 'nw_proto', 'tp_src', 'tp_dst'],
    purpose: 'DHCP client→server packets go to the agent (packet-in, userdata dhcp); server→client packets from VMs (rogue servers) are dropped.',
    miss: 'continue to l3_gateway',
  },
  L3_GATEWAY: {
    id: 30, name: 'l3_gateway',
    fields: ['metadata', 'dl_dst', 'dl_type', 'nw_proto', 'nw_ttl', 'nw_dst', 'icmp_type'],
    purpose: 'Distributed routing (DVR), on the sending host. Only packets a local VM addressed to the gateway MAC of a subnet joined to a router match: ICMP echo to any gateway IP of the router is answered in place; TTL 0 or 1 is dropped; otherwise the longest prefix (then the rule priority) among the joined subnets and the routing rules picks the next hop: TTL decremented, eth src = this host\'s DVR MAC (the destination gateway MAC when the router has none), metadata = the next hop\'s network, reg2 = the next hop address (the destination itself, or the rule\'s next hop), then l3_route. SNAT and elastic IPs come here later.',
    miss: 'continue to remote_l2 (not routed: L2 as before)',
  },
  NAT_EGRESS: {
    id: 31, name: 'nat_egress', fields: ['reg3', 'nw_src'],
    purpose: 'Distributed SNAT and elastic IPs, leaving (reg3 = the router\'s conntrack zone, set by l3_gateway\'s default route): a VM with an elastic IP is source-NATed to it; any other VM to this host\'s SNAT address with a source port from this host\'s slice; both committed in the router\'s zone, then nat_output. A host with no slice drops.',
    miss: 'drop',
  },
  NAT_OUTPUT: {
    id: 32, name: 'nat_output', fields: ['reg3', 'nw_src'],
    purpose: 'After source NAT: eth src = the elastic IP\'s MAC (or this host\'s external MAC for SNAT), eth dst = the next hop\'s MAC, out of the patch port to the external bridge. Dropped while the next hop\'s MAC is not known.',
    miss: 'drop',
  },
  NAT_INGRESS: {
    id: 33, name: 'nat_ingress', fields: ['nw_dst', 'tp_dst'],
    purpose: 'From the external bridge: to an elastic IP of a local VM, destination NAT to its fixed IP (committed in the router\'s zone); to this host\'s SNAT address (TCP and UDP by the ports of a router\'s slice, ICMP by address), un-NAT of replies only (no commit); then nat_deliver.',
    miss: 'drop',
  },
  NAT_DELIVER: {
    id: 34, name: 'nat_deliver', fields: ['reg3', 'ct_state', 'nw_dst'],
    purpose: 'After un-NAT: invalid dropped; a packet now addressed to a joined subnet of the router gets TTL decremented, eth src = that subnet\'s gateway MAC, metadata = its network, reg2 = the address, then l3_route delivers it (and sg_ingress checks it). Anything still addressed to the SNAT address (no connection) is dropped.',
    miss: 'drop',
  },
  L3_ROUTE: {
    id: 35, name: 'l3_route', fields: ['metadata', 'reg2'],
    purpose: 'The next hop (reg2) in its network: a local port gets eth src = its subnet\'s gateway MAC and eth dst = its MAC, then local_l2; a remote VM (L2 or L3 neighbor) gets eth dst = its MAC and goes straight into the tunnel of its subnet (VNI and encapsulation of the destination subnet) to its host. Only subnets joined to a router have entries.',
    miss: 'drop (next hop not known on this host)',
  },
  REMOTE_L2: {
    id: 40, name: 'remote_l2', fields: ['metadata', 'dl_dst'],
    purpose: 'Traffic from local ports to remote ports: unicast per neighbor MAC (tun_id = VNI, tun_dst = host IP, reg5 = the tunnel port of the network type, then output); broadcast and multicast to every remote host with ports in the network (head-end replication), then local flooding.',
    miss: 'continue to local_l2',
  },
  FLOOD_REMOTE: {
    id: 45, name: 'flood_remote', fields: ['reg7', 'metadata', 'dl_dst'],
    purpose: 'Head-end replication beyond the first chunk of remote hosts: one flow per further chunk of a network\'s hosts (reg7 = chunk), reached by resubmit from remote_l2, so no flow outgrows an OpenFlow message.',
    miss: 'drop',
  },
  DVR_RESTORE: {
    id: 48, name: 'dvr_restore', fields: ['metadata', 'dl_src', 'dl_dst'],
    purpose: 'Traffic from a tunnel that a remote host routed (eth src in the DVR MAC prefix fe:16:11/24) to a local port of a routed subnet gets eth src = that subnet\'s gateway MAC, so a VM only ever sees its own gateway as the router. One flow per such port.',
    miss: 'continue to local_l2',
  },
  LOCAL_L2: {
    id: 50, name: 'local_l2', fields: ['metadata', 'dl_dst'],
    purpose: 'Delivery to local ports: unicast per port MAC (reg5 = the port, then sg_ingress); broadcast and multicast to every local port of the network (never back to the input port). Unknown unicast: a Zeta network\'s to zeta_direct (priority 2), any other to on_demand (priority 1).',
    miss: 'drop (no such packet: the priority-1 flow takes unknown unicast to on_demand)',
  },
  FLOOD_LOCAL: {
    id: 55, name: 'flood_local', fields: ['reg7', 'metadata', 'dl_dst'],
    purpose: 'Local flooding beyond the first chunk of ports: one flow per further chunk (reg7 = chunk), reached by resubmit from local_l2.',
    miss: 'drop',
  },
  SG_INGRESS: {
    id: 60, name: 'sg_ingress',
    fields: ['reg5', 'dl_type', 'nw_proto', 'icmp_type'],
    purpose: 'Security groups, ingress (unicast to a local VM with groups, reg5): IPv6 neighbor discovery passes; other IP goes through conntrack in the port\'s zone to sg_ingress_rules. Ports without groups, non-IP, and flooded broadcast/multicast do not come here.',
    miss: 'continue to output',
  },
  SG_INGRESS_RULES: {
    id: 61, name: 'sg_ingress_rules',
    fields: ['reg5', 'conj_id', 'ct_state', 'dl_type', 'nw_proto', 'nw_src', 'ipv6_src', 'tp_dst', 'icmp_type', 'icmp_code'],
    purpose: 'As sg_egress_rules, for the ingress rules (remote addresses are sources).',
    miss: 'drop',
  },
  OUTPUT: {
    id: 70, name: 'output', fields: ['reg5'],
    purpose: 'Out of the port the lookups chose (output:reg5); OVS never sends a packet back out of its input port this way.',
    miss: 'output to reg5',
  },
  ZETA_DIRECT: {
    id: 80, name: 'zeta_direct',
    fields: ['reg6', 'metadata', 'dl_dst', 'dl_type', 'nw_proto', 'nw_src', 'nw_dst', 'tp_src', 'tp_dst'],
    purpose: 'Zeta VPCs (docs/zeta.md): unicast to a MAC nobody local or known owns, from a local port (local_l2 sends it here). Direct paths the Zeta gateway injected by OAM (one flow per 5-tuple, idle timeout, installed by the agent, not desired state) send it straight to the instance\'s host; packets from a tunnel and multicast are dropped (split horizon: nothing goes back to the gateway).',
    miss: 'no flow, drop (only Zeta networks come here, each with its own fallthrough to zeta_gateway)',
  },
  ZETA_GATEWAY: {
    id: 81, name: 'zeta_gateway', fields: ['metadata'],
    purpose: 'Zeta VPCs: tun_id = the network\'s VNI, then the VPC\'s Zeta gateway group (select, one bucket per gateway node: eth dst and tun_dst of the node, out of the tunnel port of the subnet\'s type; OVS hashes the 5-tuple so a connection sticks to one node). ARP requests for unknown addresses of a Zeta network come here from arp_responder.',
    miss: 'drop',
  },
  ON_DEMAND: {
    id: 82, name: 'on_demand', fields: ['reg6', 'metadata', 'dl_dst', 'dl_type', 'nw_dst'],
    purpose: 'Networks without a Zeta gateway (docs/on-demand.md): unicast from a local port to a MAC nobody here knows (local_l2 sends it here) whose IPv4 destination is in the network\'s subnet goes on to on_demand_punt. From a tunnel, multicast, and anything else (addressed to a router\'s gateway MAC and not routed), dropped.',
    miss: 'drop',
  },
  ON_DEMAND_PUNT: {
    id: 83, name: 'on_demand_punt', fields: ['reg6'],
    purpose: 'Through the local port\'s punt meter to the agent (packet-in, userdata on-demand), which asks the controller and re-injects the packet once the destination is known.',
    miss: 'drop',
  },
  EXT_CLASSIFY: {
    id: 0, name: 'ext_classify', bridge: 'br-ex',
    fields: ['in_port', 'dl_type', 'arp_op', 'arp_spa', 'arp_tpa', 'nw_dst', 'nw_proto', 'tp_dst'],
    purpose: 'The external bridge of a bridge mapping (br-ex here; one per mapping), shared with the host: from br-int\'s patch port, NORMAL (a learning switch to the uplink); ARP requests for this host\'s elastic IPs and SNAT addresses answered in place; IP to them (SNAT: TCP and UDP only within this host\'s port slice, and ICMP) to br-int; ARP replies from a next hop whose MAC is being resolved also to the agent. Everything else NORMAL, so the host\'s own traffic on the bridge flows as before.',
    miss: 'NORMAL',
  },
} as const satisfies Record<string, TableSpec>;

export type TableName = keyof typeof TABLES;

const regField = (name: string, field: FieldName, ofs: number, nbits: number, purpose: string): RegField => ({ name, field, ofs, nbits, purpose });

/**
 * Registers and metadata, declared once (as Antrea's RegField): features match and load them
 * through these, never by field name.
 */
export const REGISTERS = {
  network: regField('network', 'metadata', 0, 64, 'the network (VNI, 24 bits; the rest of metadata stays 0, so matches are exact) the packet belongs to, set at classification'),
  inPort: regField('inPort', 'reg6', 0, 32, 'the local input port (OpenFlow port number); 0 when the packet came from a tunnel'),
  outPort: regField('outPort', 'reg5', 0, 32, 'the port the L2 lookups chose: a local VM port or a tunnel port; the output table sends the packet there'),
  floodChunk: regField('floodChunk', 'reg7', 0, 32, 'which chunk of a long flood list a flood_remote or flood_local flow holds'),
  egressZone: regField('egressZone', 'reg6', 0, 16, 'the conntrack zone of a packet from a VM with security groups: its OpenFlow port (the low 16 bits of inPort)'),
  ingressZone: regField('ingressZone', 'reg5', 0, 16, 'the conntrack zone of a packet to a VM with security groups: its OpenFlow port (the low 16 bits of outPort)'),
  nextHop: regField('nextHop', 'reg2', 0, 32, 'the IPv4 next hop l3_gateway chose (the destination, or a routing rule\'s next hop); l3_route looks it up'),
  arpTarget: regField('arpTarget', 'reg2', 0, 32, 'arp_reply only: the address asked for, held while the sender and target addresses swap, then 0 again (the reply leaves at once; reg2 is otherwise nextHop, chosen later in the pipeline)'),
  natZone: regField('natZone', 'reg3', 0, 16, 'the conntrack zone of the router whose SNAT or elastic IP a packet goes through (one per router with an external gateway)'),
} as const satisfies Record<string, RegField>;

/**
 * Cookie layout: the top byte names the programmer, the low 48 bits hash the resource (or
 * aggregate) that made the flow. The dataplane keeps the reverse index, so a trace can name the
 * port, neighbor or subnet behind each flow.
 */
export const COOKIE = {
  programmerShift: 56n,
  resourceMask: (1n << 48n) - 1n,
} as const;

export const PROGRAMMERS = {
  pipeline: { id: 0x01, purpose: 'fixed flows of the pipeline: table misses and stage links' },
  port: { id: 0x02, purpose: 'classification of, and delivery to, a local VM port' },
  tunnel: { id: 0x03, purpose: 'classification of traffic arriving from a tunnel port' },
  neighbor: { id: 0x04, purpose: 'unicast to a remote neighbor over its tunnel' },
  arp: { id: 0x05, purpose: 'ARP responder entries' },
  dhcp: { id: 0x06, purpose: 'DHCP punt to the agent' },
  flood: { id: 0x07, purpose: 'broadcast and multicast per network: head-end replication and local flooding' },
  router: { id: 0x08, purpose: 'distributed routing: gateway ping, TTL guard, routes and routing rules of a router' },
  portsec: { id: 0x0a, purpose: 'port security (anti-spoofing) of a port with security groups' },
  sg: { id: 0x0b, purpose: 'security groups: a port\'s conntrack entry and rules, and the addresses of remote groups' },
  nat: { id: 0x0c, purpose: 'distributed SNAT of a router with an external gateway: its default route, this host\'s SNAT slice, un-NAT and delivery, and the external bridge\'s answers for the SNAT addresses' },
  eip: { id: 0x0d, purpose: 'elastic IPs of a local port: 1:1 NAT both ways and the external bridge\'s answers for them' },
  zeta: { id: 0x10, purpose: 'Zeta gateway path of a subnet in a VPC with a ZETA gateway: its group, unknown unicast and ARP to it, the OAM punt' },
  onDemand: { id: 0x12, purpose: 'on-demand punts of unknown destinations, and each local port\'s punt meter with the metered punts (ARP miss, DHCP, on-demand) of that port' },
  zetaPath: { id: 0x11, purpose: 'Zeta direct paths injected by OAM (transient: idle timeout, installed by the agent outside the desired state)' },
  route: { id: 0x09, purpose: 'next-hop entries of routed VMs (a local port or a neighbor), in l3_route, and the DVR MAC restore of a routed local port' },
} as const;

export type ProgrammerName = keyof typeof PROGRAMMERS;

/** OpenFlow's NORMAL port (the switch's own MAC-learning forwarding), used on external bridges only. */
export const OFPP_NORMAL = 0xfffa;

/** Flow-based tunnel ports on br-int, one per encapsulation we carry. */
export const TUNNEL_PORTS = {
  geneve: { name: 'gnv-tun', type: 'geneve', ofport: 4096 },
  vxlan: { name: 'vxlan-tun', type: 'vxlan', ofport: 4097 },
} as const;

export type Encapsulation = keyof typeof TUNNEL_PORTS;

/**
 * Outputs per flood flow. An OpenFlow message is at most 64 KB; a tunnel copy costs 32 bytes of
 * actions and a local one 16, so 256 per flow keeps every flow far below it at any scale.
 */
export const FLOOD_CHUNK = 256;

/** Packet-in userdata, so the agent knows why a packet came up. */
export const PUNT = {
  arpMiss: '0x01',
  dhcp: '0x02',
  /** Zeta OAM packets from a gateway node of the network's Zeta gateway. */
  zetaOam: '0x10',
  /** Unicast to an unknown destination (the on-demand engine). */
  onDemand: '0x11',
  /** An ARP reply from an external next hop whose MAC the agent is resolving. */
  nextHopArp: '0x03',
} as const;

/** Priorities used across tables, named so their order is visible in one place. */
export const PRIORITY = {
  miss: 0,
  fallthrough: 1,
  broadcast: 50,
  match: 100,
  punt: 90,
  guard: 110,
  /** l3_gateway: ICMP echo to a gateway IP, above the TTL guard (TTL 1 still reaches the gateway). */
  gatewayEcho: 40_000,
  /** Conntrack verdicts in the rules tables: invalid first, then replies and related. */
  ctInvalid: 300,
  ctReply: 200,
  ttlGuard: 30_000,
  /** l3_gateway: the default route to the external gateway, below every route (>= 1000). */
  externalRoute: 999,
  /** An elastic IP's flows beat its router's SNAT flows. */
  eip: 200,
  /** External bridge: what came from br-int goes out first. */
  fromIntegration: 200,
  /** arp_responder: an ARP request in a Zeta network that no entry answered goes to the gateway (above the punt). */
  zetaArp: 95,
  /** local_l2: unknown unicast of a Zeta network, above the on-demand catch-all (fallthrough). */
  zetaUnknown: 2,
  /** A port's metered punts, above the shared punt of their table (arp_responder 90, dhcp 100). */
  arpPuntMetered: 91,
  dhcpPuntMetered: 101,
} as const;

/**
 * Punt limits per local port: an OpenFlow meter on the port's punts (the switch drops above it),
 * and a token bucket in the agent (whatever reaches it beyond that is dropped unhandled).
 */
export const PUNT_LIMITS = {
  meterPktps: 100,
  meterBurst: 100,
  /** Meter ids of ports: 0x12 (the programmer) in the top byte, the OpenFlow port below. */
  meterBase: 0x12_00_00_00,
} as const;

/** The prefix of every host's DVR MAC (Alcor's HOST_DVR_MAC_PREFIX): routed arrivals carry it. */
export const DVR_MAC_PREFIX = { value: 0xfe_16_11_00_00_00n, mask: 0xff_ff_ff_00_00_00n, text: 'fe:16:11' } as const;

/**
 * l3_gateway priority of a route: longer prefixes first, then (for routing rules) the smaller
 * rule priority number; a joined subnet's own route beats a rule of the same prefix.
 */
export function routePriority(prefix: number, rulePriority: number | null): number {
  const rank = rulePriority === null ? 255 : 254 - Math.min(rulePriority, 254);
  return 1000 + prefix * 256 + rank;
}
