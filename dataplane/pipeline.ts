// The integration-bridge pipeline, declared once: tables, registers, cookie layout, bridge and
// tunnel ports. Programmers refer to tables by name; docs/pipeline.md is generated from this
// module (scripts/gen-pipeline-doc.ts) and a test keeps the two in step.

export const BRIDGE = 'br-int';

export interface TableSpec {
  id: number;
  name: string;
  purpose: string;
  /** What a packet that matches no flow of this table meets (each has an explicit miss flow). */
  miss: string;
  /** Declared for a feature that does not program flows yet. */
  reserved?: true;
}

/**
 * Tables, in packet order. Numbers leave room between stages for features still to come, as
 * OVN and Antrea do; a stage only ever passes packets to a higher table.
 */
export const TABLES = {
  CLASSIFY: {
    id: 0, name: 'classify',
    purpose: 'From a local VM port: load the network (VNI) into metadata and the port into reg6. From a tunnel port: VNI from tun_id, reg6 = 0. Anything else is dropped.',
    miss: 'drop',
  },
  PORT_SECURITY: {
    id: 10, name: 'port_security', reserved: true,
    purpose: 'Anti-spoofing: source MAC/IP must belong to the port or its allowed address pairs (with security groups).',
    miss: 'continue to arp_responder',
  },
  SG_EGRESS: {
    id: 15, name: 'sg_egress', reserved: true,
    purpose: 'Security groups, egress direction, conntrack and conjunctive matches.',
    miss: 'continue to arp_responder',
  },
  ARP_RESPONDER: {
    id: 20, name: 'arp_responder',
    purpose: 'ARP requests from local ports for any known address of the network (local ports, remote neighbors, the subnet gateway) are answered in place (output IN_PORT); requests for unknown addresses go to the agent (packet-in, userdata arp-miss); other broadcast ARP is dropped.',
    miss: 'continue to dhcp',
  },
  DHCP: {
    id: 25, name: 'dhcp',
    purpose: 'DHCP client→server packets go to the agent (packet-in, userdata dhcp); server→client packets from VMs (rogue servers) are dropped.',
    miss: 'continue to l3_gateway',
  },
  L3_GATEWAY: {
    id: 30, name: 'l3_gateway', reserved: true,
    purpose: 'Distributed routing (DVR), gateway ping responder, SNAT and elastic IPs.',
    miss: 'continue to remote_l2',
  },
  REMOTE_L2: {
    id: 40, name: 'remote_l2',
    purpose: 'Traffic from local ports to remote ports: unicast per neighbor MAC to its host (tun_id = VNI, tun_dst = host IP, out the tunnel port of the network type); broadcast and multicast to every remote host with ports in the network (head-end replication), then local flooding.',
    miss: 'continue to local_l2',
  },
  FLOOD_REMOTE: {
    id: 45, name: 'flood_remote',
    purpose: 'Head-end replication beyond the first chunk of remote hosts: one flow per further chunk of a network\'s hosts (reg7 = chunk), reached by resubmit from remote_l2, so no flow outgrows an OpenFlow message.',
    miss: 'drop',
  },
  LOCAL_L2: {
    id: 50, name: 'local_l2',
    purpose: 'Delivery to local ports: unicast per port MAC, broadcast and multicast to every local port of the network (never back to the input port).',
    miss: 'drop',
  },
  FLOOD_LOCAL: {
    id: 55, name: 'flood_local',
    purpose: 'Local flooding beyond the first chunk of ports: one flow per further chunk (reg7 = chunk), reached by resubmit from local_l2.',
    miss: 'drop',
  },
} as const satisfies Record<string, TableSpec>;

export type TableName = keyof typeof TABLES;

/** Registers and metadata. */
export const REGISTERS = {
  network: { field: 'metadata', bits: '0..23', purpose: 'the network (VNI) the packet belongs to, set at classification' },
  inPort: { field: 'reg6', bits: '0..31', purpose: 'the local input port (OpenFlow port number); 0 when the packet came from a tunnel' },
  floodChunk: { field: 'reg7', bits: '0..31', purpose: 'which chunk of a long flood list a flood_remote or flood_local flow holds' },
} as const;

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
