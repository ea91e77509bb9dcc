// Matches: a flow and a mask over it (OVS's struct match). Setting fields as mf_set does (with
// the implied bits of dl_vlan and friends), parsing and printing field values as mf_parse and
// mf_format do, OVS's prerequisite normalization, and the canonical printing of lib/match.c,
// which also prints a packet's flow for ofproto/trace (flow_format).
import {
  CS, ETH_TYPE, FLOW_WORDS, FRAG, type Flow, IPPROTO, TNL_F, VLAN_CFI, W, WIDTH, getMac, getWords, newFlow,
} from '../base/flow.js';
import { FieldError, type MfField, fieldByName, readField, writeField } from '../base/fields.js';
import {
  CT_STATE_NAMES, type PortMap, TCP_FLAG_NAMES, TUN_FLAG_NAMES, ethMaskedText, flagName, formatFlags, formatFlagsMasked, hexBytes,
  ipMaskedText, ipText, ipv6MaskedText, parseEth, parseFlags, parseIntString, parseIpMasked, parseIpv6Masked, parsePort, portText,
} from '../base/text.js';
import { type TunTable, tunMetadataFormat, tunMetadataSet } from '../base/tlv.js';

export class Match {
  constructor(readonly flow: Flow = newFlow(), readonly wc: Flow = newFlow()) {}
  clone(): Match {
    return new Match(Uint32Array.from(this.flow), Uint32Array.from(this.wc));
  }
}

const fullMask = (mf: MfField): bigint => mf.valueMask;

// -- field values: parse (mf_parse) and print (mf_format) --

export interface FieldValue {
  value: bigint;
  mask: bigint;
}

const FRAGS: [string, number, number][] = [
  ['no', FRAG.ANY | FRAG.LATER, 0], ['first', FRAG.ANY | FRAG.LATER, FRAG.ANY], ['later', FRAG.ANY | FRAG.LATER, FRAG.ANY | FRAG.LATER],
  ['no', FRAG.ANY, 0], ['yes', FRAG.ANY, FRAG.ANY], ['not_later', FRAG.LATER, 0],
];

export function parseFieldValue(mf: MfField, s: string, ports?: PortMap | null): FieldValue {
  const ones = fullMask(mf);
  if (s === '*') return { value: 0n, mask: 0n };
  let r: FieldValue;
  switch (mf.fmt) {
    case 'dec':
    case 'hex':
      r = parseInteger(mf, s);
      break;
    case 'eth': {
      const slash = s.indexOf('/');
      const v = parseEth(slash < 0 ? s : s.slice(0, slash));
      const m = slash < 0 ? 0xffffffffffffn : parseEth(s.slice(slash + 1));
      if (v === null || m === null) throw new FieldError(`${s}: invalid Ethernet address`);
      r = { value: v, mask: m };
      break;
    }
    case 'ipv4':
      r = parseIpMasked(s);
      break;
    case 'ipv6':
      r = parseIpv6Masked(s);
      break;
    case 'port': {
      const p = parsePort(s, ports);
      if (p === null) throw new FieldError(`${s}: invalid or unknown port for ${mf.name}`);
      r = { value: BigInt(p), mask: ones };
      break;
    }
    case 'port32': {
      const p = parsePort(s, ports);
      if (p === null) throw new FieldError(`${s}: port value out of range for ${mf.name}`);
      r = { value: BigInt(p), mask: ones };
      break;
    }
    case 'frag': {
      const h = FRAGS.find(([n]) => n === s.toLowerCase());
      if (!h) throw new FieldError(`${s}: unknown fragment type (valid types are "no", "yes", "first", "later", "not_later"`);
      r = { value: BigInt(h[2]), mask: BigInt(h[1]) };
      break;
    }
    case 'tcp_flags': {
      const f = parseFlags(s, TCP_FLAG_NAMES, 'TCP', 0x0fff);
      r = { value: BigInt(f.value & 0xffff), mask: BigInt(f.mask & 0xffff) };
      break;
    }
    case 'tun_flags': {
      const f = parseFlags(s, TUN_FLAG_NAMES, 'tunnel', 0x1);
      r = { value: BigInt(f.value & 0xffff), mask: BigInt(f.mask & 0xffff) };
      break;
    }
    case 'ct_state': {
      const f = parseFlags(s, CT_STATE_NAMES, 'ct_state', 0xff);
      r = { value: BigInt(f.value >>> 0), mask: BigInt(f.mask >>> 0) };
      break;
    }
  }
  if (!mf.maskable && r.mask !== 0n && (r.mask & ones) !== ones && mf.fmt !== 'frag') throw new FieldError(`${s}: invalid mask for field ${mf.name}`);
  return r;
}

function parseInteger(mf: MfField, s: string): FieldValue {
  const bytes = mf.tunMetadata !== undefined ? 124 : mf.nBytes;
  const v = parseIntString(s, bytes);
  if (v === 'range') throw new FieldError(`${s}: value too large for ${bytes}-byte field ${mf.name}`);
  if (v === null || (v.rest !== '' && !v.rest.startsWith('/'))) throw new FieldError(`${s}: bad syntax for ${mf.name} value`);
  if (v.rest === '') return { value: v.value, mask: mf.tunMetadata !== undefined ? -1n : (1n << BigInt(8 * bytes)) - 1n };
  const m = parseIntString(v.rest.slice(1), bytes);
  if (m === 'range') throw new FieldError(`${s}: mask too large for ${bytes}-byte field ${mf.name}`);
  if (m === null || m.rest !== '') throw new FieldError(`${s}: bad syntax for ${mf.name} mask`);
  return { value: v.value, mask: m.value };
}

/** mf_format: how set_field, learn and traces print a field's value. */
export function formatFieldValue(mf: MfField, value: bigint, mask: bigint | null, ports?: PortMap | null): string {
  const ones = (1n << BigInt(8 * mf.nBytes)) - 1n;
  if (mask !== null) {
    if (mask === 0n) return 'ANY';
    if (mask === ones || (mask & fullMask(mf)) === fullMask(mf)) mask = null;
  }
  switch (mf.fmt) {
    case 'port':
    case 'port32':
      if (mask === null) return portText(Number(value), ports);
      return integerText(mf, value, mask);
    case 'dec':
    case 'hex':
      return integerText(mf, value, mask);
    case 'ct_state':
      return formatFlagsMasked(Number(value), mask === null ? 0xffffffff : Number(mask), 0xffff, flagName(CT_STATE_NAMES));
    case 'eth':
      return ethMaskedText(value, mask);
    case 'ipv4':
      return ipMaskedText(value, mask);
    case 'ipv6':
      return ipv6MaskedText(value, mask);
    case 'frag': {
      const m = Number(mask ?? 0xffn) & 3;
      const v = Number(value) & m;
      return FRAGS.find(([, hm, hv]) => hm === m && hv === v)?.[0] ?? '<error>';
    }
    case 'tun_flags':
      return formatFlagsMasked(Number(value), Number(mask ?? 0xffffn) & 1, 1, flagName(TUN_FLAG_NAMES));
    case 'tcp_flags':
      return formatFlagsMasked(Number(value), Number(mask ?? 0xffffn) & 0xfff, 0xfff, flagName(TCP_FLAG_NAMES));
  }
}

function integerText(mf: MfField, value: bigint, mask: bigint | null): string {
  const v = mf.fmt === 'hex' ? hexBytes(value) : value.toString();
  return mask === null ? v : `${v}/${hexBytes(mask)}`;
}

/** put_u16_masked: `*` when wild, a value above 9 in hex, with /mask unless exact. */
function ptMasked(v: number, m: number): string {
  if (m === 0) return '*';
  return `${v > 9 ? `0x${v.toString(16)}` : v}${m === 0xffff ? '' : `/0x${m.toString(16)}`}`;
}

// -- setting fields in a match (mf_set, mf_set_wild) --

export function setField(m: Match, mf: MfField, value: bigint, mask: bigint, tun?: TunTable | null): void {
  if (mf.tunMetadata !== undefined) {
    tunMetadataSet(m, mf.tunMetadata, value, mask, tun ?? null);
    return;
  }
  const ones = fullMask(mf);
  const exact = (mask & ones) === ones || (mf.fmt === 'frag' && mask === 0xffn);
  const f = m.flow;
  const wc = m.wc;
  const tci = (): number => f[W.vlan0]! & 0xffff;
  const setTci = (v: number, mk: number): void => {
    f[W.vlan0] = (f[W.vlan0]! & 0xffff0000) | (v & 0xffff);
    wc[W.vlan0] = (wc[W.vlan0]! & 0xffff0000) | (mk & 0xffff);
  };
  if ((mask & ones) === 0n) {
    // mf_set_wild: forget the field (with the implied bits of the VLAN fields).
    if (mf.name === 'dl_vlan' || mf.name === 'vlan_vid') setTci(tci() & ~0x1fff, (wc[W.vlan0]! & 0xffff) & ~0x1fff);
    else if (mf.name === 'dl_vlan_pcp' || mf.name === 'vlan_pcp') setTci(tci() & ~0xe000, (wc[W.vlan0]! & 0xffff) & ~0xe000);
    else {
      writeField(wc, mf, 0n);
      writeField(f, mf, 0n);
    }
    return;
  }
  switch (mf.name) {
    case 'dl_vlan': {
      const vid = Number(value);
      if (vid === 0xffff) setTci(0, 0xffff); // OFP10_VLAN_NONE: no tag
      else setTci((tci() & ~0x0fff) | (vid & 0x0fff) | VLAN_CFI, (wc[W.vlan0]! & 0xffff) | 0x1fff);
      return;
    }
    case 'dl_vlan_pcp':
    case 'vlan_pcp':
      setTci((tci() & ~0xe000) | ((Number(value) & 7) << 13) | VLAN_CFI, (wc[W.vlan0]! & 0xffff) | 0xe000 | VLAN_CFI);
      return;
    case 'vlan_vid': {
      const mk = Number(exact ? 0x1fffn : mask) & 0x1fff;
      setTci((tci() & ~mk) | (Number(value) & mk), ((wc[W.vlan0]! & 0xffff) & ~0x1fff) | mk);
      return;
    }
  }
  const mk = exact ? ones : mask & ones;
  // match_set_icmp_type/code: an exact ICMP type or code matches all 16 bits of tp_src/tp_dst.
  if (exact && ICMP_FIELDS.has(mf.name)) wc[W[mf.member as 'tp_src']] = 0xffff;
  else writeField(wc, mf, mk, ones);
  writeField(f, mf, value & mk, ones);
}

const ICMP_FIELDS = new Set(['icmp_type', 'icmp_code', 'icmpv6_type', 'icmpv6_code']);

// -- prerequisite normalization (ofputil_normalize_match) --

const clear = (m: Match, member: keyof typeof W): void => {
  for (let i = 0; i < WIDTH[member]; i++) {
    m.wc[W[member] + i] = 0;
    m.flow[W[member] + i] = 0;
  }
};

/** Drops the fields whose prerequisites the match lacks; returns the match text before and after, or null when nothing changed. */
export function normalizeMatch(m: Match, tun?: TunTable | null): { pre: string; post: string } | null {
  const f = m.flow;
  const dlType = m.wc[W.dl_type] ? f[W.dl_type]! : 0;
  const proto = f[W.nw_proto]!;
  let nwAddr = false, tpAddr = false, nwProto = false, ipvx = false, arpSha = false, arpTha = false, ipv6 = false, ndTarget = false;
  if (dlType === ETH_TYPE.IP) {
    nwProto = ipvx = nwAddr = true;
    tpAddr = proto === IPPROTO.TCP || proto === IPPROTO.UDP || proto === IPPROTO.SCTP || proto === IPPROTO.ICMP;
  } else if (dlType === ETH_TYPE.IPV6) {
    nwProto = ipvx = ipv6 = true;
    if (proto === IPPROTO.TCP || proto === IPPROTO.UDP || proto === IPPROTO.SCTP) tpAddr = true;
    else if (proto === IPPROTO.ICMPV6) {
      tpAddr = true;
      if (f[W.tp_src] === 135) ndTarget = arpSha = true;
      else if (f[W.tp_src] === 136) ndTarget = arpTha = true;
    }
  } else if (dlType === ETH_TYPE.ARP || dlType === ETH_TYPE.RARP) {
    nwProto = nwAddr = arpSha = arpTha = true;
  }
  const before = m.clone();
  if (!nwAddr) { clear(m, 'nw_src'); clear(m, 'nw_dst'); }
  if (!tpAddr) { clear(m, 'tp_src'); clear(m, 'tp_dst'); }
  if (!nwProto) clear(m, 'nw_proto');
  if (!ipvx) { clear(m, 'nw_tos'); clear(m, 'nw_ttl'); }
  if (!arpSha) clear(m, 'arp_sha');
  if (!arpTha) clear(m, 'arp_tha');
  if (!ipv6) { clear(m, 'ipv6_src'); clear(m, 'ipv6_dst'); clear(m, 'ipv6_label'); }
  if (!ndTarget) clear(m, 'nd_target');
  for (let i = 0; i < FLOW_WORDS; i++) {
    if (m.wc[i] !== before.wc[i]) return { pre: formatMatch(before, 32768, null, tun), post: formatMatch(m, 32768, null, tun) };
  }
  return null;
}

// -- printing (match_format) --

const w = (f: Flow, member: keyof typeof W): number => f[W[member]]!;
const big = (f: Flow, member: keyof typeof W): bigint => getWords(f, W[member], WIDTH[member]);
const nonzero = (f: Flow, member: keyof typeof W): boolean => {
  for (let i = 0; i < WIDTH[member]; i++) if (f[W[member] + i] !== 0) return true;
  return false;
};

/** format_uint32_masked and format_be64_masked: `%#x`, with `/%#x` unless exact. */
const hexMasked = (name: string, v: bigint, mk: bigint, ones: bigint): string => `${name}=${v === 0n ? '0' : `0x${v.toString(16)}`}${mk === ones ? '' : `/${mk === 0n ? '0' : `0x${mk.toString(16)}`}`},`;
/** format_be16_masked: decimal when exact, else hex. */
const be16Masked = (name: string, v: number, mk: number): string => (mk === 0 ? '' : mk === 0xffff ? `${name}=${v},` : `${name}=0x${v.toString(16)}/0x${mk.toString(16)},`);
const u16Masked = be16Masked;

export function formatMatch(m: { flow: Flow; wc: Flow }, priority: number, ports?: PortMap | null, tun?: TunTable | null): string {
  const f = m.flow;
  const wc = m.wc;
  let s = '';
  if (priority !== 32768) s += `priority=${priority},`;
  const u32 = (name: string, member: keyof typeof W): void => {
    if (w(wc, member)) s += hexMasked(name, BigInt(w(f, member)), BigInt(w(wc, member)), 0xffffffffn);
  };
  u32('pkt_mark', 'pkt_mark');
  if (w(wc, 'recirc_id')) s += hexMasked('recirc_id', BigInt(w(f, 'recirc_id')), BigInt(w(wc, 'recirc_id')), 0xffffffffn);
  u32('dp_hash', 'dp_hash');
  if (w(wc, 'conj_id')) s += `conj_id=${w(f, 'conj_id')},`;
  if (w(wc, 'skb_priority')) s += `skb_priority=0x${w(f, 'skb_priority').toString(16)},`;
  if (w(wc, 'actset_output')) s += `actset_output=${portText(w(f, 'actset_output'), ports)},`;
  if (w(wc, 'ct_state')) {
    const st = w(f, 'ct_state');
    const mk = w(wc, 'ct_state');
    s += `ct_state=${mk === 0xff ? (st ? formatFlags(st, flagName(CT_STATE_NAMES), '|') : '0') : formatFlagsMasked(st, mk, 0xff, flagName(CT_STATE_NAMES))},`;
  }
  if (w(wc, 'ct_zone')) s += u16Masked('ct_zone', w(f, 'ct_zone'), w(wc, 'ct_zone'));
  u32('ct_mark', 'ct_mark');
  if (nonzero(wc, 'ct_label')) {
    const mk = big(wc, 'ct_label');
    s += `ct_label=${hexBytes(big(f, 'ct_label'))}${mk === (1n << 128n) - 1n ? '' : `/${hexBytes(mk)}`},`;
  }
  if (w(wc, 'ct_nw_src')) s += `ct_nw_src=${ipMaskedText(w(f, 'ct_nw_src'), w(wc, 'ct_nw_src'))},`;
  if (nonzero(wc, 'ct_ipv6_src')) s += `ct_ipv6_src=${ipv6MaskedText(big(f, 'ct_ipv6_src'), big(wc, 'ct_ipv6_src'))},`;
  if (w(wc, 'ct_nw_dst')) s += `ct_nw_dst=${ipMaskedText(w(f, 'ct_nw_dst'), w(wc, 'ct_nw_dst'))},`;
  if (nonzero(wc, 'ct_ipv6_dst')) s += `ct_ipv6_dst=${ipv6MaskedText(big(f, 'ct_ipv6_dst'), big(wc, 'ct_ipv6_dst'))},`;
  if (w(wc, 'ct_nw_proto')) {
    s += `ct_nw_proto=${w(f, 'ct_nw_proto')},`;
    s += be16Masked('ct_tp_src', w(f, 'ct_tp_src'), w(wc, 'ct_tp_src'));
    s += be16Masked('ct_tp_dst', w(f, 'ct_tp_dst'), w(wc, 'ct_tp_dst'));
  }
  // The packet type shows when it is not the default (Ethernet) or in a megaflow (recirc_id matched).
  if (w(wc, 'packet_type')) {
    const pt = w(f, 'packet_type');
    const ptMask = w(wc, 'packet_type');
    if (pt !== 0 || ptMask !== 0xffffffff || w(wc, 'recirc_id')) {
      if (pt === 0 && ptMask === 0xffffffff) s += 'eth,';
      else s += `packet_type=(${ptMasked(pt >>> 16, ptMask >>> 16)},${ptMasked(pt & 0xffff, ptMask & 0xffff)}),`;
    }
  }
  const dlType = w(f, 'dl_type');
  let skipType = false;
  let skipProto = false;
  if (w(wc, 'dl_type')) {
    skipType = true;
    const proto = w(wc, 'nw_proto') ? w(f, 'nw_proto') : -1;
    if (dlType === ETH_TYPE.IP || dlType === ETH_TYPE.IPV6) {
      const v6 = dlType === ETH_TYPE.IPV6;
      const names: Record<number, string> = v6 ? { [IPPROTO.ICMPV6]: 'icmp6', [IPPROTO.TCP]: 'tcp6', [IPPROTO.UDP]: 'udp6', [IPPROTO.SCTP]: 'sctp6' } : { [IPPROTO.ICMP]: 'icmp', [IPPROTO.TCP]: 'tcp', [IPPROTO.UDP]: 'udp', [IPPROTO.SCTP]: 'sctp' };
      if (proto >= 0 && names[proto]) {
        s += `${names[proto]},`;
        skipProto = true;
      } else {
        s += `${v6 ? 'ipv6' : 'ip'},`;
      }
    } else if (dlType === ETH_TYPE.ARP) s += 'arp,';
    else if (dlType === ETH_TYPE.RARP) s += 'rarp,';
    else if (dlType === ETH_TYPE.MPLS) s += 'mpls,';
    else if (dlType === ETH_TYPE.MPLS_MCAST) s += 'mplsm,';
    else skipType = false;
  }
  for (let i = 0; i < 16; i++) {
    if (wc[W.regs + i]) s += hexMasked(`reg${i}`, BigInt(f[W.regs + i]!), BigInt(wc[W.regs + i]!), 0xffffffffn);
  }
  s += formatTunnel(m, tun);
  if (nonzero(wc, 'metadata')) s += hexMasked('metadata', big(f, 'metadata'), big(wc, 'metadata'), 0xffffffffffffffffn);
  if (w(wc, 'in_port')) s += `in_port=${portText(w(f, 'in_port'), ports)},`;
  for (let i = 0; i < 2; i++) {
    const mk = wc[W.vlan0 + i]! & 0xffff;
    if (!mk) break;
    const tci = f[W.vlan0 + i]! & 0xffff;
    const sfx = i === 0 ? '' : String(i);
    const vid = mk & 0x0fff;
    const pcp = mk & 0xe000;
    if ((mk & VLAN_CFI) && (tci & VLAN_CFI) && (!vid || vid === 0x0fff) && (!pcp || pcp === 0xe000) && (vid || pcp)) {
      if (vid) s += `dl_vlan${sfx}=${tci & 0xfff},`;
      if (pcp) s += `dl_vlan_pcp${sfx}=${tci >> 13},`;
    } else if (mk === 0xffff) {
      s += `vlan_tci${sfx}=0x${tci.toString(16).padStart(4, '0')},`;
    } else {
      s += `vlan_tci${sfx}=0x${tci.toString(16).padStart(4, '0')}/0x${mk.toString(16).padStart(4, '0')},`;
    }
  }
  const eth = (name: string, member: 'dl_src' | 'dl_dst' | 'arp_sha' | 'arp_tha'): void => {
    const mk = getMac(wc, W[member]);
    if (mk) s += `${name}=${ethMaskedText(BigInt(getMac(f, W[member])), BigInt(mk))},`;
  };
  eth('dl_src', 'dl_src');
  eth('dl_dst', 'dl_dst');
  if (!skipType && w(wc, 'dl_type')) s += `dl_type=0x${dlType.toString(16).padStart(4, '0')},`;
  const ip = (name: string, member: 'nw_src' | 'nw_dst'): void => {
    if (w(wc, member)) s += `${name}=${ipMaskedText(w(f, member), w(wc, member))},`;
  };
  const ip6 = (name: string, member: 'ipv6_src' | 'ipv6_dst' | 'nd_target'): void => {
    if (nonzero(wc, member)) s += `${name}=${ipv6MaskedText(big(f, member), big(wc, member))},`;
  };
  const arpLike = dlType === ETH_TYPE.ARP || dlType === ETH_TYPE.RARP;
  if (dlType === ETH_TYPE.IPV6) {
    ip6('ipv6_src', 'ipv6_src');
    ip6('ipv6_dst', 'ipv6_dst');
    if (w(wc, 'ipv6_label')) {
      const lm = w(wc, 'ipv6_label');
      s += `ipv6_label=0x${w(f, 'ipv6_label').toString(16).padStart(5, '0')}${lm === 0xffffffff || lm === 0xfffff ? '' : `/0x${lm.toString(16).padStart(5, '0')}`},`;
    }
  } else if (arpLike) {
    ip('arp_spa', 'nw_src');
    ip('arp_tpa', 'nw_dst');
  } else {
    ip('nw_src', 'nw_src');
    ip('nw_dst', 'nw_dst');
  }
  if (!skipProto && w(wc, 'nw_proto')) s += `${arpLike ? 'arp_op' : 'nw_proto'}=${w(f, 'nw_proto')},`;
  if (arpLike) {
    eth('arp_sha', 'arp_sha');
    eth('arp_tha', 'arp_tha');
  }
  if (w(wc, 'nw_tos') & 0xfc) s += `nw_tos=${w(f, 'nw_tos') & 0xfc},`;
  if (w(wc, 'nw_tos') & 0x03) s += `nw_ecn=${w(f, 'nw_tos') & 0x03},`;
  if (w(wc, 'nw_ttl')) s += `nw_ttl=${w(f, 'nw_ttl')},`;
  const fragMask = w(wc, 'nw_frag') & 3;
  const frag = w(f, 'nw_frag');
  if (fragMask === 3) s += `nw_frag=${frag & FRAG.ANY ? (frag & FRAG.LATER ? 'later' : 'first') : frag & FRAG.LATER ? '<error>' : 'no'},`;
  else if (fragMask === FRAG.ANY) s += `nw_frag=${frag & FRAG.ANY ? 'yes' : 'no'},`;
  else if (fragMask === FRAG.LATER) s += `nw_frag=${frag & FRAG.LATER ? 'later' : 'not_later'},`;
  const proto = w(f, 'nw_proto');
  if (dlType === ETH_TYPE.IP && proto === IPPROTO.ICMP) {
    s += be16Masked('icmp_type', w(f, 'tp_src'), w(wc, 'tp_src'));
    s += be16Masked('icmp_code', w(f, 'tp_dst'), w(wc, 'tp_dst'));
  } else if (dlType === ETH_TYPE.IPV6 && proto === IPPROTO.ICMPV6) {
    s += be16Masked('icmp_type', w(f, 'tp_src'), w(wc, 'tp_src'));
    s += be16Masked('icmp_code', w(f, 'tp_dst'), w(wc, 'tp_dst'));
    ip6('nd_target', 'nd_target');
    eth('nd_sll', 'arp_sha');
    eth('nd_tll', 'arp_tha');
    if (w(wc, 'igmp_group_ip4')) s += `nd_reserved=${w(wc, 'igmp_group_ip4') === 0xffffffff ? w(f, 'igmp_group_ip4') : `0x${w(f, 'igmp_group_ip4').toString(16).padStart(8, '0')}/0x${w(wc, 'igmp_group_ip4').toString(16).padStart(8, '0')}`},`;
    if (w(wc, 'tcp_flags')) s += be16Masked('nd_options_type', w(f, 'tcp_flags'), w(wc, 'tcp_flags'));
  } else {
    s += be16Masked('tp_src', w(f, 'tp_src'), w(wc, 'tp_src'));
    s += be16Masked('tp_dst', w(f, 'tp_dst'), w(wc, 'tp_dst'));
  }
  if ((dlType === ETH_TYPE.IP || dlType === ETH_TYPE.IPV6) && proto === IPPROTO.TCP && (w(wc, 'tcp_flags') & 0x0fff)) {
    s += `tcp_flags=${formatFlagsMasked(w(f, 'tcp_flags'), w(wc, 'tcp_flags') & 0x0fff, 0x0fff, flagName(TCP_FLAG_NAMES))},`;
  }
  return s.endsWith(',') ? s.slice(0, -1) : s;
}

function formatTunnel(m: { flow: Flow; wc: Flow }, tun?: TunTable | null): string {
  const f = m.flow;
  const wc = m.wc;
  let s = '';
  if (nonzero(wc, 'tun_id')) s += hexMasked('tun_id', big(f, 'tun_id'), big(wc, 'tun_id'), 0xffffffffffffffffn);
  if (w(wc, 'tun_src')) s += `tun_src=${ipMaskedText(w(f, 'tun_src'), w(wc, 'tun_src'))},`;
  if (w(wc, 'tun_dst')) s += `tun_dst=${ipMaskedText(w(f, 'tun_dst'), w(wc, 'tun_dst'))},`;
  if (nonzero(wc, 'tun_ipv6_src')) s += `tun_ipv6_src=${ipv6MaskedText(big(f, 'tun_ipv6_src'), big(wc, 'tun_ipv6_src'))},`;
  if (nonzero(wc, 'tun_ipv6_dst')) s += `tun_ipv6_dst=${ipv6MaskedText(big(f, 'tun_ipv6_dst'), big(wc, 'tun_ipv6_dst'))},`;
  if (w(wc, 'tun_gbp_id')) s += be16Masked('tun_gbp_id', w(f, 'tun_gbp_id'), w(wc, 'tun_gbp_id'));
  if (w(wc, 'tun_gbp_flags')) s += `tun_gbp_flags=0x${w(f, 'tun_gbp_flags').toString(16)},`.replace('=0x0,', '=0,');
  if (w(wc, 'tun_tos')) s += `tun_tos=${w(f, 'tun_tos').toString(16)},`;
  if (w(wc, 'tun_ttl')) s += `tun_ttl=${w(f, 'tun_ttl')},`;
  if (w(wc, 'tun_erspan_ver')) s += `tun_erspan_ver=${w(f, 'tun_erspan_ver')},`;
  if (w(wc, 'tun_gtpu_flags')) s += `gtpu_flags=0x${w(f, 'tun_gtpu_flags').toString(16)},`.replace('=0x0,', '=0,');
  if (w(wc, 'tun_gtpu_msgtype')) s += `gtpu_msgtype=${w(f, 'tun_gtpu_msgtype')},`;
  const flagsMask = w(wc, 'tun_flags') & 0xf;
  if (flagsMask) s += `tun_flags=${formatFlagsMasked(w(f, 'tun_flags') & 0xf, flagsMask, 0xf, flagName(TUN_FLAG_NAMES))},`;
  s += tunMetadataFormat(m, tun ?? null);
  return s;
}

// -- a packet's flow as ofproto/trace prints it (flow_format) --

/** flow_wildcards_init_for_packet, without the context fields that are zero. */
function packetWildcards(f: Flow): Flow {
  const wc = newFlow();
  const mask = (member: keyof typeof W): void => {
    for (let i = 0; i < WIDTH[member]; i++) wc[W[member] + i] = 0xffffffff;
  };
  const tunDst = f[W.tun_dst] !== 0 || nonzero(f, 'tun_ipv6_dst');
  if (tunDst) {
    if (f[W.tun_flags]! & TNL_F.KEY) mask('tun_id');
    for (const mb of ['tun_src', 'tun_dst', 'tun_ipv6_src', 'tun_ipv6_dst', 'tun_flags', 'tun_tos', 'tun_ttl', 'tun_tp_src', 'tun_tp_dst', 'tun_gbp_id', 'tun_gbp_flags', 'tun_erspan_ver', 'tun_gtpu_flags', 'tun_gtpu_msgtype'] as const) mask(mb);
    if (nonzero(f, 'tun_md_present')) {
      wc[W.tun_md_present] = f[W.tun_md_present]!;
      wc[W.tun_md_present + 1] = f[W.tun_md_present + 1]!;
      mask('tun_md');
    }
  } else if (nonzero(f, 'tun_id')) {
    mask('tun_id');
  }
  for (const mb of ['packet_type', 'skb_priority', 'pkt_mark', 'ct_state', 'ct_zone', 'ct_mark', 'ct_label', 'recirc_id', 'dp_hash', 'in_port', 'dl_dst', 'dl_src', 'dl_type'] as const) mask(mb);
  wc[W.vlan0] = 0xffffffff;
  if ((f[W.vlan0]! & 0xffff) !== 0) wc[W.vlan1] = 0xffffffff;
  const dlType = f[W.dl_type]!;
  let l4 = false;
  if (dlType === ETH_TYPE.IP) {
    mask('nw_src'); mask('nw_dst'); mask('ct_nw_src'); mask('ct_nw_dst');
    l4 = true;
  } else if (dlType === ETH_TYPE.IPV6) {
    mask('ipv6_src'); mask('ipv6_dst'); mask('ipv6_label');
    const nd = f[W.nw_proto] === IPPROTO.ICMPV6 && f[W.tp_dst] === 0 && (f[W.tp_src] === 135 || f[W.tp_src] === 136);
    if (nd) { mask('arp_sha'); mask('arp_tha'); mask('nd_target'); } else { mask('ct_ipv6_src'); mask('ct_ipv6_dst'); }
    l4 = true;
  } else if (dlType === ETH_TYPE.ARP || dlType === ETH_TYPE.RARP) {
    mask('nw_src'); mask('nw_dst'); mask('nw_proto'); mask('arp_sha'); mask('arp_tha');
  }
  if (l4) {
    wc[W.nw_frag] = 3;
    mask('nw_tos'); mask('nw_ttl'); mask('nw_proto'); mask('ct_nw_proto'); mask('ct_tp_src'); mask('ct_tp_dst');
    const p = f[W.nw_proto]!;
    if (!(f[W.nw_frag]! & FRAG.LATER) && (p === IPPROTO.ICMP || p === IPPROTO.ICMPV6 || p === IPPROTO.TCP || p === IPPROTO.UDP || p === IPPROTO.SCTP || p === IPPROTO.IGMP)) {
      mask('tp_src'); mask('tp_dst');
      if (p === IPPROTO.TCP) mask('tcp_flags');
      else if (p === IPPROTO.IGMP) mask('igmp_group_ip4');
    }
  }
  // flow_format leaves out context fields that are zero.
  for (const mb of ['in_port', 'skb_priority', 'pkt_mark', 'recirc_id', 'dp_hash', 'ct_state', 'ct_zone', 'ct_mark', 'ct_label', 'metadata'] as const) if (!nonzero(f, mb)) for (let i = 0; i < WIDTH[mb]; i++) wc[W[mb] + i] = 0;
  const ctValid = (f[W.ct_state]! & (CS.NEW | CS.ESTABLISHED | CS.REPLY_DIR)) !== 0;
  if (!ctValid || !f[W.ct_nw_proto]) {
    for (const mb of ['ct_nw_proto', 'ct_tp_src', 'ct_tp_dst'] as const) wc[W[mb]] = 0;
    if (dlType === ETH_TYPE.IP) { wc[W.ct_nw_src] = 0; wc[W.ct_nw_dst] = 0; }
    else if (dlType === ETH_TYPE.IPV6) for (let i = 0; i < 4; i++) { wc[W.ct_ipv6_src + i] = 0; wc[W.ct_ipv6_dst + i] = 0; }
  }
  for (let i = 0; i < 16; i++) wc[W.regs + i] = f[W.regs + i] ? 0xffffffff : 0;
  if (nonzero(f, 'metadata')) mask('metadata');
  // Members narrower than a word: only their bits.
  narrow(wc);
  return wc;
}

/** Keep a wildcard within the bits each member really has. */
function narrow(wc: Flow): void {
  const bits: [keyof typeof W, number][] = [
    ['in_port', 0xffff], ['ct_state', 0xff], ['ct_zone', 0xffff], ['ct_nw_proto', 0xff], ['dl_type', 0xffff], ['nw_frag', 3],
    ['nw_tos', 0xff], ['nw_ttl', 0xff], ['nw_proto', 0xff], ['tcp_flags', 0x0fff], ['tp_src', 0xffff], ['tp_dst', 0xffff],
    ['ct_tp_src', 0xffff], ['ct_tp_dst', 0xffff], ['ipv6_label', 0xfffff], ['tun_flags', 0xf], ['tun_tos', 0xff], ['tun_ttl', 0xff],
    ['tun_tp_src', 0xffff], ['tun_tp_dst', 0xffff], ['tun_gbp_id', 0xffff], ['tun_gbp_flags', 0xff], ['tun_erspan_ver', 0xf],
    ['tun_gtpu_flags', 0xff], ['tun_gtpu_msgtype', 0xff], ['actset_output', 0xffff],
  ];
  for (const [mb, m] of bits) wc[W[mb]] = wc[W[mb]]! & m;
  wc[W.dl_src] = wc[W.dl_src]! & 0xffff;
  wc[W.dl_dst] = wc[W.dl_dst]! & 0xffff;
  wc[W.arp_sha] = wc[W.arp_sha]! & 0xffff;
  wc[W.arp_tha] = wc[W.arp_tha]! & 0xffff;
}

/** The flow as `Flow:` and `Final flow:` print it. */
export function flowText(f: Flow, ports?: PortMap | null, tun?: TunTable | null): string {
  return formatMatch({ flow: f, wc: packetWildcards(f) }, 32768, ports, tun);
}

export { fieldByName, readField, ipText };
