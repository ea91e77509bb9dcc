// The OpenFlow fields the pipeline matches and writes, declared once: width, how people read a
// value, and the OXM/NXM header the wire encoding uses. Values are bigints throughout (what the
// switch holds); text is made only for people and files (flow-text.ts).

export type FieldFormat = 'decimal' | 'hex' | 'mac' | 'ipv4' | 'ipv6' | 'port' | 'ct_state';

export interface Field {
  /** ovs-ofctl's name, as `dump-flows` prints it. */
  readonly name: string;
  /** The NXM/OXM name `load:`/`move:` actions spell (ovs-ofctl accepts either). */
  readonly nxm: string;
  readonly bits: number;
  readonly format: FieldFormat;
  /** OXM class and field number (0x8000 OpenFlow basic, 0x0000/0x0001 Nicira NXM). */
  readonly oxmClass: number;
  readonly oxmField: number;
  /** Wire length of the value in bytes (tun_id is 8, in_port 4 in OXM). */
  readonly bytes: number;
  /** Prerequisites: the dl_type (and nw_proto) a match on this field needs. */
  readonly needs?: { dlType: readonly number[]; nwProto?: readonly number[] };
  /** The bits the switch keeps (ct_state: 8 flags in a 32-bit field); a mask covering them is exact. */
  readonly kept?: bigint;
}

const f = (name: string, nxm: string, bits: number, format: FieldFormat, oxmClass: number, oxmField: number, needs?: Field['needs']): Field => ({
  name, nxm, bits, format, oxmClass, oxmField, bytes: Math.ceil(bits / 8), ...(needs ? { needs } : {}),
});

const OXM = 0x8000;
const NXM0 = 0x0000;
const NXM1 = 0x0001;
export const ETH_TYPE = { ip: 0x0800, arp: 0x0806, ipv6: 0x86dd } as const;
export const IP_PROTO = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 } as const;
const IP = { dlType: [ETH_TYPE.ip] } as const;
const IP6 = { dlType: [ETH_TYPE.ipv6] } as const;
const ARP = { dlType: [ETH_TYPE.arp] } as const;
const IPANY = { dlType: [ETH_TYPE.ip, ETH_TYPE.ipv6] } as const;
const L4 = { dlType: [ETH_TYPE.ip, ETH_TYPE.ipv6], nwProto: [IP_PROTO.tcp, IP_PROTO.udp, 132] } as const;

function regs(): Record<`reg${0 | 1 | 2 | 3 | 4 | 5 | 6 | 7}`, Field> {
  const out: Record<string, Field> = {};
  for (let i = 0; i < 8; i++) out[`reg${i}`] = f(`reg${i}`, `NXM_NX_REG${i}`, 32, 'decimal', NXM1, i);
  return out;
}

/** Every field a flow of ours may use. Keys are ovs-ofctl names. */
export const FIELDS = {
  in_port: { ...f('in_port', 'OXM_OF_IN_PORT', 32, 'port', OXM, 0), bytes: 4 },
  metadata: f('metadata', 'OXM_OF_METADATA', 64, 'decimal', OXM, 2),
  dl_dst: f('dl_dst', 'NXM_OF_ETH_DST', 48, 'mac', OXM, 3),
  dl_src: f('dl_src', 'NXM_OF_ETH_SRC', 48, 'mac', OXM, 4),
  dl_type: f('dl_type', 'NXM_OF_ETH_TYPE', 16, 'hex', OXM, 5),
  nw_proto: f('nw_proto', 'NXM_OF_IP_PROTO', 8, 'decimal', OXM, 10, IPANY),
  nw_src: f('nw_src', 'NXM_OF_IP_SRC', 32, 'ipv4', OXM, 11, IP),
  nw_dst: f('nw_dst', 'NXM_OF_IP_DST', 32, 'ipv4', OXM, 12, IP),
  tp_src: f('tp_src', 'NXM_OF_TCP_SRC', 16, 'decimal', OXM, 13, L4),
  tp_dst: f('tp_dst', 'NXM_OF_TCP_DST', 16, 'decimal', OXM, 14, L4),
  // ICMPv6 too, as ovs-ofctl names it (the wire header follows dl_type: openflow-oxm.ts).
  icmp_type: f('icmp_type', 'NXM_OF_ICMP_TYPE', 8, 'decimal', OXM, 19, { dlType: [ETH_TYPE.ip, ETH_TYPE.ipv6], nwProto: [IP_PROTO.icmp, IP_PROTO.icmpv6] }),
  icmp_code: f('icmp_code', 'NXM_OF_ICMP_CODE', 8, 'decimal', OXM, 20, { dlType: [ETH_TYPE.ip, ETH_TYPE.ipv6], nwProto: [IP_PROTO.icmp, IP_PROTO.icmpv6] }),
  arp_op: f('arp_op', 'NXM_OF_ARP_OP', 16, 'decimal', OXM, 21, ARP),
  arp_spa: f('arp_spa', 'NXM_OF_ARP_SPA', 32, 'ipv4', OXM, 22, ARP),
  arp_tpa: f('arp_tpa', 'NXM_OF_ARP_TPA', 32, 'ipv4', OXM, 23, ARP),
  arp_sha: f('arp_sha', 'NXM_NX_ARP_SHA', 48, 'mac', OXM, 24, ARP),
  arp_tha: f('arp_tha', 'NXM_NX_ARP_THA', 48, 'mac', OXM, 25, ARP),
  ipv6_src: f('ipv6_src', 'NXM_NX_IPV6_SRC', 128, 'ipv6', OXM, 26, IP6),
  ipv6_dst: f('ipv6_dst', 'NXM_NX_IPV6_DST', 128, 'ipv6', OXM, 27, IP6),
  tun_id: f('tun_id', 'NXM_NX_TUN_ID', 64, 'hex', OXM, 38),
  tun_src: f('tun_src', 'NXM_NX_TUN_IPV4_SRC', 32, 'ipv4', NXM1, 31),
  tun_dst: f('tun_dst', 'NXM_NX_TUN_IPV4_DST', 32, 'ipv4', NXM1, 32),
  nw_ttl: f('nw_ttl', 'NXM_NX_IP_TTL', 8, 'decimal', NXM1, 29, IPANY),
  ct_state: { ...f('ct_state', 'NXM_NX_CT_STATE', 32, 'ct_state', NXM1, 105), kept: 0xffn },
  ct_zone: f('ct_zone', 'NXM_NX_CT_ZONE', 16, 'decimal', NXM1, 106),
  ct_mark: f('ct_mark', 'NXM_NX_CT_MARK', 32, 'hex', NXM1, 107),
  conj_id: f('conj_id', 'NXM_NX_CONJ_ID', 32, 'decimal', NXM1, 37),
  ...regs(),
  /** NXM0 is kept for completeness of the class table: no field of ours is only NXM0. */
} as const satisfies Record<string, Field>;
void NXM0;

export type FieldName = keyof typeof FIELDS;

/** The order fields appear in a canonical match (prerequisites first; ARP fields as ovs-ofctl prints them). */
export const FIELD_ORDER: readonly FieldName[] = [
  'in_port', 'reg0', 'reg1', 'reg2', 'reg3', 'reg4', 'reg5', 'reg6', 'reg7', 'metadata', 'conj_id', 'ct_state', 'ct_zone', 'ct_mark',
  'tun_id', 'tun_src', 'tun_dst', 'dl_src', 'dl_dst', 'dl_type', 'nw_proto', 'nw_src', 'nw_dst', 'ipv6_src', 'ipv6_dst', 'nw_ttl',
  'arp_spa', 'arp_tpa', 'arp_op', 'arp_sha', 'arp_tha', 'tp_src', 'tp_dst', 'icmp_type', 'icmp_code',
];
export const FIELD_RANK: Readonly<Record<FieldName, number>> = Object.fromEntries(FIELD_ORDER.map((n, i) => [n, i])) as Record<FieldName, number>;

export const fullMask = (field: Field): bigint => (1n << BigInt(field.bits)) - 1n;

/** The mask of a prefix length on an address of `bits` bits (IPv4 by default; /0 is 0). */
export const prefixMask = (prefix: number, bits = 32): bigint => (prefix === 0 ? 0n : ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n));

/** MAC text (validated upstream: colon form) as a number: 48 bits fit a double exactly. */
export function macNumber(mac: string): number {
  let n = 0;
  for (let i = 0; i < mac.length; i++) {
    const c = mac.charCodeAt(i);
    if (c === 58) continue; // ':'
    n = n * 16 + (c <= 57 ? c - 48 : (c | 0x20) - 87);
  }
  return n;
}

/** MAC text to its 48-bit value (one BigInt at the end: hot at a million neighbors). */
export function macValue(mac: string): bigint {
  return BigInt(macNumber(mac));
}

export function macText(v: bigint): string {
  const h = v.toString(16).padStart(12, '0');
  return `${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}:${h.slice(6, 8)}:${h.slice(8, 10)}:${h.slice(10, 12)}`;
}

/** Dotted-quad IPv4 text (validated upstream) as a number. */
export function ipv4Number(address: string): number {
  let n = 0;
  let octet = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 46) { // '.'
      n = n * 256 + octet;
      octet = 0;
    } else octet = octet * 10 + (c - 48);
  }
  return n * 256 + octet;
}

export function ipv4Value(address: string): bigint {
  return BigInt(ipv4Number(address));
}

export function ipv4Text(v: bigint): string {
  const n = Number(v);
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** CT state bits, as ovs-ofctl names them. */
export const CT_STATE = { new: 0x01, est: 0x02, rel: 0x04, rpl: 0x08, inv: 0x10, trk: 0x20, snat: 0x40, dnat: 0x80 } as const;
