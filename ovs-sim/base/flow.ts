// The flow: everything OVS knows about a packet (tunnel metadata, registers, conntrack state,
// headers), laid out as OVS's `struct flow` is, as 32-bit words of a Uint32Array. A match is the
// same layout twice (values and a mask), so classifying, hashing and copying are word loops.
// Multi-word members are big-endian: the first word holds the most significant bits. A MAC takes
// two words (the high 16 bits, then the low 32), an IPv6 address or a 128-bit label four.

const members = [
  ['tun_dst', 1], ['tun_ipv6_dst', 4], ['tun_src', 1], ['tun_ipv6_src', 4], ['tun_id', 2],
  ['tun_flags', 1], ['tun_tos', 1], ['tun_ttl', 1], ['tun_tp_src', 1], ['tun_tp_dst', 1],
  ['tun_gbp_id', 1], ['tun_gbp_flags', 1], ['tun_erspan_ver', 1], ['tun_gtpu_flags', 1], ['tun_gtpu_msgtype', 1],
  // Geneve options: which tun_metadataN are present (64 bits), and 256 bytes of option data
  // where the bridge's TLV map places each option.
  ['tun_md_present', 2], ['tun_md', 64],
  ['metadata', 2], ['regs', 16], ['skb_priority', 1], ['pkt_mark', 1], ['dp_hash', 1], ['in_port', 1],
  ['recirc_id', 1], ['ct_state', 1], ['ct_nw_proto', 1], ['ct_zone', 1], ['ct_mark', 1], ['packet_type', 1],
  ['ct_label', 4], ['conj_id', 1], ['actset_output', 1],
  ['dl_dst', 2], ['dl_src', 2], ['dl_type', 1], ['vlan0', 1], ['vlan1', 1],
  ['nw_src', 1], ['nw_dst', 1], ['ct_nw_src', 1], ['ct_nw_dst', 1],
  ['ipv6_src', 4], ['ipv6_dst', 4], ['ct_ipv6_src', 4], ['ct_ipv6_dst', 4],
  ['ipv6_label', 1], ['nw_frag', 1], ['nw_tos', 1], ['nw_ttl', 1], ['nw_proto', 1],
  ['nd_target', 4], ['arp_sha', 2], ['arp_tha', 2], ['tcp_flags', 1],
  ['tp_src', 1], ['tp_dst', 1], ['ct_tp_src', 1], ['ct_tp_dst', 1], ['igmp_group_ip4', 1],
] as const;

export type Member = (typeof members)[number][0];

/** Word offset of each member. */
export const W = {} as Record<Member, number>;
/** Width in words of each member. */
export const WIDTH = {} as Record<Member, number>;
let at = 0;
for (const [name, n] of members) {
  W[name] = at;
  WIDTH[name] = n;
  at += n;
}
export const FLOW_WORDS = at;

export type Flow = Uint32Array;
export const newFlow = (): Flow => new Uint32Array(FLOW_WORDS);

// Constants OVS uses for these members.
export const ETH_TYPE = { IP: 0x0800, ARP: 0x0806, RARP: 0x8035, IPV6: 0x86dd, VLAN: 0x8100, VLAN_8021AD: 0x88a8, MPLS: 0x8847, MPLS_MCAST: 0x8848 } as const;
export const IPPROTO = { ICMP: 1, IGMP: 2, TCP: 6, UDP: 17, ICMPV6: 58, SCTP: 132 } as const;
export const VLAN_CFI = 0x1000;
export const FRAG = { ANY: 1, LATER: 2 } as const;
export const CS = { NEW: 0x01, ESTABLISHED: 0x02, RELATED: 0x04, REPLY_DIR: 0x08, INVALID: 0x10, TRACKED: 0x20, SRC_NAT: 0x40, DST_NAT: 0x80 } as const;
export const TNL_F = { OAM: 1, DONT_FRAGMENT: 2, CSUM: 4, KEY: 8 } as const;

// -- reading and writing members as bigints (parse, print and actions; not the hot path) --

export function getWords(f: Uint32Array, word: number, n: number): bigint {
  let v = 0n;
  for (let i = 0; i < n; i++) v = (v << 32n) | BigInt(f[word + i]!);
  return v;
}

export function setWords(f: Uint32Array, word: number, n: number, v: bigint): void {
  for (let i = n - 1; i >= 0; i--) {
    f[word + i] = Number(v & 0xffffffffn);
    v >>= 32n;
  }
}

export const get = (f: Uint32Array, m: Member): bigint => getWords(f, W[m], WIDTH[m]);
export const set = (f: Uint32Array, m: Member, v: bigint): void => setWords(f, W[m], WIDTH[m], v);

/** A MAC member as a number (48 bits fit a double exactly). */
export const getMac = (f: Uint32Array, word: number): number => (f[word]! & 0xffff) * 0x100000000 + f[word + 1]!;
export function setMac(f: Uint32Array, word: number, v: number): void {
  f[word] = Math.floor(v / 0x100000000) & 0xffff;
  f[word + 1] = v >>> 0;
}

// VLAN headers: each word is TPID << 16 | TCI.

export function flowEqual(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < FLOW_WORDS; i++) if (a[i] !== b[i]) return false;
  return true;
}

export const isIpAny = (f: Uint32Array): boolean => f[W.dl_type] === ETH_TYPE.IP || f[W.dl_type] === ETH_TYPE.IPV6;
