// The fields a match, set_field, load, move or learn can name: OVS's meta-flow table (names,
// aliases, NXM/OXM names, widths, prerequisites, read-only or writable), each mapped onto the
// flow member that stores it. Several fields share a member, as in OVS: arp_spa is nw_src,
// icmp_type is tp_src, nd_sll is arp_sha, xreg0 is reg0 and reg1, dl_vlan is part of vlan_tci.
import { CS, ETH_TYPE, FRAG, type Flow, IPPROTO, type Member, VLAN_CFI, W, WIDTH, getWords, setWords } from './flow.js';

export type Prereq =
  | 'none' | 'eth' | 'arp' | 'ipv4' | 'ipv6' | 'ip_any' | 'vlan_vid' | 'mpls' | 'tcp' | 'udp' | 'sctp'
  | 'icmpv4' | 'icmpv6' | 'nd' | 'nd_solicit' | 'nd_advert' | 'ct';

export type Fmt = 'dec' | 'hex' | 'eth' | 'ipv4' | 'ipv6' | 'port' | 'port32' | 'frag' | 'tun_flags' | 'tcp_flags' | 'ct_state';

export interface MfField {
  /** OVS's name for the field (set_field prints it). */
  name: string;
  aliases: string[];
  /** Width of the field's value on the wire, in bytes (parsing range, hex printing). */
  nBytes: number;
  /** Width in bits (subfield ranges, `[]`). */
  nBits: number;
  /** The bits of a value that exist (vlan_vid also carries the CFI bit, as OVS does). */
  valueMask: bigint;
  member: Member;
  /** First word and number of words of the storage this field uses within its member. */
  word: number;
  nWords: number;
  /** The value is stored at (value << shift) & storeMask within those words. */
  shift: number;
  storeMask: bigint;
  maskable: boolean;
  writable: boolean;
  prereq: Prereq;
  fmt: Fmt;
  /** The name load/move/learn print for it: its NXM name, else its OXM name, else its name. */
  nxm: string;
  /** Other NXM/OXM names accepted in subfield syntax. */
  nxmAliases: string[];
  /** Whether OpenFlow 1.2+ set_field can carry it as a standard OXM. */
  oxm: boolean;
  /** For tun_metadataN: the option index. */
  tunMetadata?: number;
}

const all: MfField[] = [];

/** A field's place in meta-flow's order (enum mf_field_id): field arrays print and hash in it. */
export const fieldOrder = (f: MfField): number => all.indexOf(f);
const full = (bits: number): bigint => (1n << BigInt(bits)) - 1n;

interface Opt {
  aliases?: string[];
  nBits?: number;
  valueMask?: bigint;
  member?: Member;
  wordOffset?: number;
  nWords?: number;
  shift?: number;
  storeMask?: bigint;
  maskable?: boolean;
  writable?: boolean;
  prereq?: Prereq;
  nxm?: string;
  nxmAliases?: string[];
  oxm?: boolean;
}

function def(name: string, nBytes: number, fmt: Fmt, o: Opt = {}): MfField {
  const member = o.member ?? (name as Member);
  const nBits = o.nBits ?? nBytes * 8;
  const f: MfField = {
    name, aliases: o.aliases ?? [], nBytes, nBits, valueMask: o.valueMask ?? full(nBits), member,
    word: W[member] + (o.wordOffset ?? 0), nWords: o.nWords ?? WIDTH[member], shift: o.shift ?? 0,
    storeMask: o.storeMask ?? ((o.valueMask ?? full(nBits)) << BigInt(o.shift ?? 0)),
    maskable: o.maskable ?? true, writable: o.writable ?? true, prereq: o.prereq ?? 'none', fmt,
    nxm: o.nxm ?? name, nxmAliases: o.nxmAliases ?? [], oxm: o.oxm ?? false,
  };
  all.push(f);
  return f;
}

const ro = { writable: false };
const exact = { maskable: false };

def('dp_hash', 4, 'hex', { ...ro, nxm: 'NXM_NX_DP_HASH' });
def('recirc_id', 4, 'dec', { ...ro, ...exact, nxm: 'NXM_NX_RECIRC_ID' });
def('conj_id', 4, 'dec', { ...ro, ...exact, nxm: 'NXM_NX_CONJ_ID' });
def('tun_id', 8, 'hex', { aliases: ['tunnel_id'], nxm: 'NXM_NX_TUN_ID', nxmAliases: ['OXM_OF_TUNNEL_ID'], oxm: true });
def('tun_src', 4, 'ipv4', { nxm: 'NXM_NX_TUN_IPV4_SRC' });
def('tun_dst', 4, 'ipv4', { nxm: 'NXM_NX_TUN_IPV4_DST' });
def('tun_ipv6_src', 16, 'ipv6', { nxm: 'NXM_NX_TUN_IPV6_SRC' });
def('tun_ipv6_dst', 16, 'ipv6', { nxm: 'NXM_NX_TUN_IPV6_DST' });
def('tun_flags', 2, 'tun_flags', { nBits: 1, nxm: 'NXM_NX_TUN_FLAGS' });
def('tun_ttl', 1, 'dec', { ...ro, ...exact });
def('tun_tos', 1, 'dec', { ...ro, ...exact });
def('tun_gbp_id', 2, 'dec', { nxm: 'NXM_NX_TUN_GBP_ID' });
def('tun_gbp_flags', 1, 'hex', { nxm: 'NXM_NX_TUN_GBP_FLAGS' });
def('tun_erspan_ver', 1, 'dec', { nBits: 4, nxm: 'NXOXM_ET_ERSPAN_VER' });
def('tun_gtpu_flags', 1, 'hex', { ...ro, nxm: 'NXOXM_ET_GTPU_FLAGS' });
def('tun_gtpu_msgtype', 1, 'dec', { ...ro, nxm: 'NXOXM_ET_GTPU_MSGTYPE' });
// tun_metadata0..63: storage and width come from the bridge's TLV map (see tunMetadataField).
for (let i = 0; i < 64; i++) {
  const f = def(`tun_metadata${i}`, 124, 'hex', { member: 'tun_md', nxm: `NXM_NX_TUN_METADATA${i}` });
  f.tunMetadata = i;
}
def('metadata', 8, 'hex', { nxm: 'OXM_OF_METADATA', oxm: true });
def('in_port', 2, 'port', { ...exact, nxm: 'NXM_OF_IN_PORT' });
def('in_port_oxm', 4, 'port32', { ...exact, member: 'in_port', nBits: 32, storeMask: 0xffffn, nxm: 'OXM_OF_IN_PORT', oxm: true });
def('actset_output', 4, 'port32', { ...ro, ...exact, storeMask: 0xffffn, nxm: 'ONFOXM_ET_ACTSET_OUTPUT' });
def('skb_priority', 4, 'hex', { ...ro, ...exact });
def('pkt_mark', 4, 'hex', { nxm: 'NXM_NX_PKT_MARK' });
def('ct_state', 4, 'ct_state', { ...ro, storeMask: 0xffn, valueMask: 0xffn, nBits: 32, nxm: 'NXM_NX_CT_STATE' });
def('ct_zone', 2, 'hex', { ...ro, ...exact, nxm: 'NXM_NX_CT_ZONE' });
def('ct_mark', 4, 'hex', { nxm: 'NXM_NX_CT_MARK' });
def('ct_label', 16, 'hex', { nxm: 'NXM_NX_CT_LABEL' });
def('ct_nw_proto', 1, 'dec', { ...ro, ...exact, prereq: 'ct', nxm: 'NXM_NX_CT_NW_PROTO' });
def('ct_nw_src', 4, 'ipv4', { ...ro, prereq: 'ct', nxm: 'NXM_NX_CT_NW_SRC' });
def('ct_nw_dst', 4, 'ipv4', { ...ro, prereq: 'ct', nxm: 'NXM_NX_CT_NW_DST' });
def('ct_ipv6_src', 16, 'ipv6', { ...ro, prereq: 'ct', nxm: 'NXM_NX_CT_IPV6_SRC' });
def('ct_ipv6_dst', 16, 'ipv6', { ...ro, prereq: 'ct', nxm: 'NXM_NX_CT_IPV6_DST' });
def('ct_tp_src', 2, 'dec', { ...ro, prereq: 'ct', nxm: 'NXM_NX_CT_TP_SRC' });
def('ct_tp_dst', 2, 'dec', { ...ro, prereq: 'ct', nxm: 'NXM_NX_CT_TP_DST' });
for (let i = 0; i < 16; i++) def(`reg${i}`, 4, 'hex', { member: 'regs', wordOffset: i, nWords: 1, nxm: `NXM_NX_REG${i}` });
for (let i = 0; i < 8; i++) def(`xreg${i}`, 8, 'hex', { member: 'regs', wordOffset: 2 * i, nWords: 2, nxm: `OXM_OF_PKT_REG${i}`, oxm: true });
for (let i = 0; i < 4; i++) def(`xxreg${i}`, 16, 'hex', { member: 'regs', wordOffset: 4 * i, nWords: 4, nxm: `NXM_NX_XXREG${i}` });
def('eth_src', 6, 'eth', { aliases: ['dl_src'], member: 'dl_src', prereq: 'eth', nxm: 'NXM_OF_ETH_SRC', nxmAliases: ['OXM_OF_ETH_SRC'], oxm: true });
def('eth_dst', 6, 'eth', { aliases: ['dl_dst'], member: 'dl_dst', prereq: 'eth', nxm: 'NXM_OF_ETH_DST', nxmAliases: ['OXM_OF_ETH_DST'], oxm: true });
def('eth_type', 2, 'hex', { aliases: ['dl_type'], member: 'dl_type', ...ro, ...exact, prereq: 'eth', nxm: 'NXM_OF_ETH_TYPE', nxmAliases: ['OXM_OF_ETH_TYPE'], oxm: true });
def('vlan_tci', 2, 'hex', { member: 'vlan0', storeMask: 0xffffn, prereq: 'eth', nxm: 'NXM_OF_VLAN_TCI' });
def('dl_vlan', 2, 'dec', { member: 'vlan0', nBits: 12, ...exact, prereq: 'eth' });
def('vlan_vid', 2, 'dec', { member: 'vlan0', nBits: 12, valueMask: 0x1fffn, prereq: 'eth', nxm: 'OXM_OF_VLAN_VID', oxm: true });
def('dl_vlan_pcp', 1, 'dec', { member: 'vlan0', nBits: 3, shift: 13, ...exact, prereq: 'eth' });
def('vlan_pcp', 1, 'dec', { member: 'vlan0', nBits: 3, shift: 13, ...exact, prereq: 'vlan_vid', nxm: 'OXM_OF_VLAN_PCP', oxm: true });
def('ip_src', 4, 'ipv4', { aliases: ['nw_src'], member: 'nw_src', prereq: 'ipv4', nxm: 'NXM_OF_IP_SRC', nxmAliases: ['OXM_OF_IPV4_SRC'], oxm: true });
def('ip_dst', 4, 'ipv4', { aliases: ['nw_dst'], member: 'nw_dst', prereq: 'ipv4', nxm: 'NXM_OF_IP_DST', nxmAliases: ['OXM_OF_IPV4_DST'], oxm: true });
def('ipv6_src', 16, 'ipv6', { prereq: 'ipv6', nxm: 'NXM_NX_IPV6_SRC', nxmAliases: ['OXM_OF_IPV6_SRC'], oxm: true });
def('ipv6_dst', 16, 'ipv6', { prereq: 'ipv6', nxm: 'NXM_NX_IPV6_DST', nxmAliases: ['OXM_OF_IPV6_DST'], oxm: true });
def('ipv6_label', 4, 'hex', { nBits: 20, prereq: 'ipv6', nxm: 'NXM_NX_IPV6_LABEL', nxmAliases: ['OXM_OF_IPV6_FLABEL'], oxm: true });
def('nw_proto', 1, 'dec', { aliases: ['ip_proto'], ...ro, ...exact, prereq: 'ip_any', nxm: 'NXM_OF_IP_PROTO', nxmAliases: ['OXM_OF_IP_PROTO'], oxm: true });
def('nw_tos', 1, 'dec', { ...exact, valueMask: 0xfcn, prereq: 'ip_any', nxm: 'NXM_OF_IP_TOS' });
def('ip_dscp', 1, 'dec', { member: 'nw_tos', nBits: 6, shift: 2, ...exact, prereq: 'ip_any', nxm: 'OXM_OF_IP_DSCP', oxm: true });
def('nw_ecn', 1, 'dec', { aliases: ['ip_ecn'], member: 'nw_tos', nBits: 2, ...exact, prereq: 'ip_any', nxm: 'NXM_NX_IP_ECN', nxmAliases: ['OXM_OF_IP_ECN'], oxm: true });
def('nw_ttl', 1, 'dec', { ...exact, prereq: 'ip_any', nxm: 'NXM_NX_IP_TTL' });
def('ip_frag', 1, 'frag', { aliases: ['nw_frag'], member: 'nw_frag', nBits: 2, ...ro, prereq: 'ip_any', nxm: 'NXM_NX_IP_FRAG' });
def('arp_op', 2, 'dec', { member: 'nw_proto', storeMask: 0xffn, ...exact, prereq: 'arp', nxm: 'NXM_OF_ARP_OP', nxmAliases: ['OXM_OF_ARP_OP'], oxm: true });
def('arp_spa', 4, 'ipv4', { member: 'nw_src', prereq: 'arp', nxm: 'NXM_OF_ARP_SPA', nxmAliases: ['OXM_OF_ARP_SPA'], oxm: true });
def('arp_tpa', 4, 'ipv4', { member: 'nw_dst', prereq: 'arp', nxm: 'NXM_OF_ARP_TPA', nxmAliases: ['OXM_OF_ARP_TPA'], oxm: true });
def('arp_sha', 6, 'eth', { prereq: 'arp', nxm: 'NXM_NX_ARP_SHA', nxmAliases: ['OXM_OF_ARP_SHA'], oxm: true });
def('arp_tha', 6, 'eth', { prereq: 'arp', nxm: 'NXM_NX_ARP_THA', nxmAliases: ['OXM_OF_ARP_THA'], oxm: true });
def('tcp_src', 2, 'dec', { aliases: ['tp_src'], member: 'tp_src', prereq: 'tcp', nxm: 'NXM_OF_TCP_SRC', nxmAliases: ['OXM_OF_TCP_SRC'], oxm: true });
def('tcp_dst', 2, 'dec', { aliases: ['tp_dst'], member: 'tp_dst', prereq: 'tcp', nxm: 'NXM_OF_TCP_DST', nxmAliases: ['OXM_OF_TCP_DST'], oxm: true });
def('tcp_flags', 2, 'tcp_flags', { nBits: 12, ...ro, prereq: 'tcp', nxm: 'NXM_NX_TCP_FLAGS', nxmAliases: ['ONFOXM_ET_TCP_FLAGS'] });
def('udp_src', 2, 'dec', { member: 'tp_src', prereq: 'udp', nxm: 'NXM_OF_UDP_SRC', nxmAliases: ['OXM_OF_UDP_SRC'], oxm: true });
def('udp_dst', 2, 'dec', { member: 'tp_dst', prereq: 'udp', nxm: 'NXM_OF_UDP_DST', nxmAliases: ['OXM_OF_UDP_DST'], oxm: true });
def('sctp_src', 2, 'dec', { member: 'tp_src', prereq: 'sctp', nxm: 'OXM_OF_SCTP_SRC', oxm: true });
def('sctp_dst', 2, 'dec', { member: 'tp_dst', prereq: 'sctp', nxm: 'OXM_OF_SCTP_DST', oxm: true });
def('icmp_type', 1, 'dec', { member: 'tp_src', ...exact, prereq: 'icmpv4', nxm: 'NXM_OF_ICMP_TYPE', nxmAliases: ['OXM_OF_ICMPV4_TYPE'], oxm: true });
def('icmp_code', 1, 'dec', { member: 'tp_dst', ...exact, prereq: 'icmpv4', nxm: 'NXM_OF_ICMP_CODE', nxmAliases: ['OXM_OF_ICMPV4_CODE'], oxm: true });
def('icmpv6_type', 1, 'dec', { member: 'tp_src', ...exact, prereq: 'icmpv6', nxm: 'NXM_NX_ICMPV6_TYPE', nxmAliases: ['OXM_OF_ICMPV6_TYPE'], oxm: true });
def('icmpv6_code', 1, 'dec', { member: 'tp_dst', ...exact, prereq: 'icmpv6', nxm: 'NXM_NX_ICMPV6_CODE', nxmAliases: ['OXM_OF_ICMPV6_CODE'], oxm: true });
def('nd_target', 16, 'ipv6', { prereq: 'nd', nxm: 'NXM_NX_ND_TARGET', nxmAliases: ['OXM_OF_IPV6_ND_TARGET'], oxm: true });
def('nd_sll', 6, 'eth', { member: 'arp_sha', prereq: 'nd_solicit', nxm: 'NXM_NX_ND_SLL', nxmAliases: ['OXM_OF_IPV6_ND_SLL'], oxm: true });
def('nd_tll', 6, 'eth', { member: 'arp_tha', prereq: 'nd_advert', nxm: 'NXM_NX_ND_TLL', nxmAliases: ['OXM_OF_IPV6_ND_TLL'], oxm: true });
def('nd_reserved', 4, 'dec', { member: 'igmp_group_ip4', ...exact, prereq: 'nd', nxm: 'ERICOXM_OF_ICMPV6_ND_RESERVED' });
def('nd_options_type', 1, 'dec', { member: 'tcp_flags', ...exact, prereq: 'nd', nxm: 'ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE' });

const byName = new Map<string, MfField>();
const bySubfieldName = new Map<string, MfField>();
for (const f of all) {
  byName.set(f.name, f);
  for (const a of f.aliases) byName.set(a, f);
  bySubfieldName.set(f.nxm, f);
  for (const a of f.nxmAliases) bySubfieldName.set(a, f);
}

/** A field by its OVS name or alias (`dl_src`, `eth_src`, `reg0`, `tun_metadata3`). */
export const fieldByName = (name: string): MfField | undefined => byName.get(name);
/** A field by the name used in `NAME[a..b]` subfield syntax: NXM/OXM names, then OVS names. */
export const fieldBySubfieldName = (name: string): MfField | undefined => bySubfieldName.get(name) ?? byName.get(name);

export class FieldError extends Error {}

// -- values in storage --

/** The field's value in a flow. */
export function readField(f: Flow, mf: MfField): bigint {
  return (getWords(f, mf.word, mf.nWords) & mf.storeMask) >> BigInt(mf.shift);
}

/** Write a value (its `mask` bits only) into a flow. */
export function writeField(f: Flow, mf: MfField, value: bigint, mask: bigint = mf.valueMask): void {
  const m = (mask << BigInt(mf.shift)) & mf.storeMask;
  const cur = getWords(f, mf.word, mf.nWords);
  setWords(f, mf.word, mf.nWords, (cur & ~m) | ((value << BigInt(mf.shift)) & m));
}

// -- prerequisites (mf_are_prereqs_ok) --

export function prereqsOk(p: Prereq, f: Flow): boolean {
  const dlType = f[W.dl_type]!;
  const ipAny = dlType === ETH_TYPE.IP || dlType === ETH_TYPE.IPV6;
  const proto = f[W.nw_proto]!;
  const notLater = (f[W.nw_frag]! & FRAG.LATER) === 0;
  const nd = dlType === ETH_TYPE.IPV6 && proto === IPPROTO.ICMPV6 && f[W.tp_dst] === 0 && (f[W.tp_src] === 135 || f[W.tp_src] === 136);
  switch (p) {
    case 'none': case 'eth': return true;
    case 'arp': return dlType === ETH_TYPE.ARP || dlType === ETH_TYPE.RARP;
    case 'ipv4': return dlType === ETH_TYPE.IP;
    case 'ipv6': return dlType === ETH_TYPE.IPV6;
    case 'ip_any': return ipAny;
    case 'vlan_vid': return (f[W.vlan0]! & VLAN_CFI) !== 0;
    case 'mpls': return dlType === ETH_TYPE.MPLS || dlType === ETH_TYPE.MPLS_MCAST;
    case 'tcp': return ipAny && proto === IPPROTO.TCP && notLater;
    case 'udp': return ipAny && proto === IPPROTO.UDP && notLater;
    case 'sctp': return ipAny && proto === IPPROTO.SCTP && notLater;
    case 'icmpv4': return dlType === ETH_TYPE.IP && proto === IPPROTO.ICMP;
    case 'icmpv6': return dlType === ETH_TYPE.IPV6 && proto === IPPROTO.ICMPV6;
    case 'nd': return nd;
    case 'nd_solicit': return nd && f[W.tp_src] === 135;
    case 'nd_advert': return nd && f[W.tp_src] === 136;
    case 'ct': return (f[W.ct_state]! & (CS.NEW | CS.ESTABLISHED | CS.REPLY_DIR)) !== 0;
  }
}

/** Prerequisites of a match (values and mask), as a match checks them (is_ct_valid with a mask). */
export function matchPrereqsOk(p: Prereq, flow: Flow, mask: Flow): boolean {
  if (p !== 'ct') return prereqsOk(p, flow);
  const st = flow[W.ct_state]!;
  return (st & (CS.NEW | CS.ESTABLISHED | CS.RELATED | CS.REPLY_DIR | CS.SRC_NAT | CS.DST_NAT)) !== 0
    || ((st & CS.TRACKED) !== 0 && (mask[W.ct_state]! & CS.INVALID) !== 0 && (st & CS.INVALID) === 0);
}
