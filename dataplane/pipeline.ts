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
    id: 0, name: 'classify', fields: ['in_port'],
    purpose: 'From a local VM port: load the network (VNI) into metadata and the port into reg6. From a tunnel port: VNI from tun_id, reg6 = 0, straight to local_l2 (split horizon). Anything else is dropped.',
    miss: 'drop',
  },
  PORT_SECURITY: {
    id: 10, name: 'port_security', reserved: true,
    fields: ['reg6', 'metadata', 'dl_src', 'dl_type', 'nw_src', 'ipv6_src', 'arp_spa', 'arp_sha', 'nw_proto', 'tp_src', 'tp_dst'],
    purpose: 'Anti-spoofing: source MAC/IP must belong to the port or its allowed address pairs (with security groups).',
    miss: 'continue to sg_egress',
  },
  SG_EGRESS: {
    id: 15, name: 'sg_egress', reserved: true,
    fields: ['reg6', 'metadata', 'conj_id', 'ct_state', 'ct_zone', 'ct_mark', 'dl_type', 'nw_proto', 'nw_src', 'nw_dst', 'ipv6_src', 'ipv6_dst', 'tp_src', 'tp_dst', 'icmp_type', 'icmp_code'],
    purpose: 'Security groups, egress direction (from the VM), conntrack and conjunctive matches.',
    miss: 'continue to arp_responder',
  },
  ARP_RESPONDER: {
    id: 20, name: 'arp_responder', fields: ['reg6', 'metadata', 'dl_dst', 'dl_type', 'arp_op', 'arp_tpa'],
    purpose: 'ARP requests from local ports for any known address of the network (local ports, remote neighbors, the subnet gateway) are answered in place (output IN_PORT); requests for unknown addresses go to the agent (packet-in, userdata arp-miss); other broadcast ARP is dropped.',
    miss: 'continue to dhcp',
  },
  DHCP: {
    id: 25, name: 'dhcp', fields: ['dl_type', 'nw_proto', 'tp_src', 'tp_dst'],
    purpose: 'DHCP client→server packets go to the agent (packet-in, userdata dhcp); server→client packets from VMs (rogue servers) are dropped.',
    miss: 'continue to l3_gateway',
  },
  L3_GATEWAY: {
    id: 30, name: 'l3_gateway', reserved: true,
    fields: ['reg6', 'metadata', 'dl_dst', 'dl_type', 'nw_proto', 'nw_src', 'nw_dst', 'ipv6_dst', 'icmp_type', 'icmp_code', 'ct_state', 'ct_mark', 'arp_op', 'arp_tpa'],
    purpose: 'Distributed routing (DVR), gateway ping responder, SNAT and elastic IPs: rewrite and move the packet into the destination network, then the L2 lookups.',
    miss: 'continue to remote_l2',
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
  LOCAL_L2: {
    id: 50, name: 'local_l2', fields: ['metadata', 'dl_dst'],
    purpose: 'Delivery to local ports: unicast per port MAC (reg5 = the port, then sg_ingress); broadcast and multicast to every local port of the network (never back to the input port).',
    miss: 'drop',
  },
  FLOOD_LOCAL: {
    id: 55, name: 'flood_local', fields: ['reg7', 'metadata', 'dl_dst'],
    purpose: 'Local flooding beyond the first chunk of ports: one flow per further chunk (reg7 = chunk), reached by resubmit from local_l2.',
    miss: 'drop',
  },
  SG_INGRESS: {
    id: 60, name: 'sg_ingress', reserved: true,
    fields: ['reg5', 'reg6', 'metadata', 'conj_id', 'ct_state', 'ct_zone', 'ct_mark', 'dl_type', 'nw_proto', 'nw_src', 'nw_dst', 'ipv6_src', 'ipv6_dst', 'tp_src', 'tp_dst', 'icmp_type', 'icmp_code'],
    purpose: 'Security groups, ingress direction (to a local VM, reg5), conntrack and conjunctive matches.',
    miss: 'continue to output',
  },
  OUTPUT: {
    id: 70, name: 'output', fields: ['reg5'],
    purpose: 'Out of the port the lookups chose (output:reg5); OVS never sends a packet back out of its input port this way.',
    miss: 'output to reg5',
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
} as const;

export type ProgrammerName = keyof typeof PROGRAMMERS;

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
} as const;

/** Priorities used across tables, named so their order is visible in one place. */
export const PRIORITY = {
  miss: 0,
  fallthrough: 1,
  broadcast: 50,
  match: 100,
  punt: 90,
  guard: 110,
} as const;
