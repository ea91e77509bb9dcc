// What a match becomes on its way to the switch as NXM (OpenFlow 1.0 with Nicira extensions) or
// OXM (OpenFlow 1.2+), as nx_put_raw encodes it: a field whose prerequisites the match's values
// do not meet is simply not sent (nw_src without dl_type=ip, tp_dst without nw_proto, nd_sll
// outside a neighbour solicitation), some fields go exact (IP protocol, TTL, DSCP, ICMP type),
// fields OpenFlow cannot carry (skb_priority, tun_tos, a second VLAN) vanish, and OXM carries
// the VLAN as VID+present bit and PCP, so a PCP without a VID is lost.
import { ETH_TYPE, type Flow, IPPROTO, type Member, W, WIDTH } from '../base/flow.js';
import { Match } from './match.js';

const VID_CFI = 0x1fff;

/** Copy a member's value and mask as they are (an nxm_put_*m). */
function copy(dst: Match, src: Match, m: Member): void {
  for (let i = 0; i < WIDTH[m]; i++) {
    const w = W[m] + i;
    dst.wc[w] = src.wc[w]!;
    dst.flow[w] = (src.flow[w]! & src.wc[w]!) >>> 0;
  }
}

/** An exact match on the low `bits` of a member (an nxm_put_N without a mask). */
function exact(dst: Match, m: Member, value: number, mask: number): void {
  dst.flow[W[m]] = (value & mask) >>> 0;
  dst.wc[W[m]] = mask >>> 0;
}

const isIcmp = (f: Flow): boolean => f[W.dl_type] === ETH_TYPE.IP && f[W.nw_proto] === IPPROTO.ICMP;
const isIcmp6 = (f: Flow): boolean => f[W.dl_type] === ETH_TYPE.IPV6 && f[W.nw_proto] === IPPROTO.ICMPV6;
const isNd = (f: Flow): boolean => isIcmp6(f) && f[W.tp_dst] === 0 && (f[W.tp_src] === 135 || f[W.tp_src] === 136);

/** The match the switch decodes from this one sent as NXM (`oxm` false) or OXM. */
export function nxRoundTrip(m: Match, oxm: boolean): Match {
  const out = new Match();
  const f = m.flow;
  const wc = m.wc;
  for (const k of ['packet_type', 'dp_hash'] as const) copy(out, m, k);
  for (const k of ['recirc_id', 'conj_id', 'in_port', 'actset_output'] as const) if (wc[W[k]]) exact(out, k, f[W[k]]!, 0xffffffff >>> (k === 'in_port' ? 16 : 0));
  for (const k of ['dl_src', 'dl_dst', 'dl_type'] as const) copy(out, m, k);

  const tci = f[W.vlan0]! & 0xffff;
  const tciMask = wc[W.vlan0]! & 0xffff;
  if (!oxm) {
    exact(out, 'vlan0', tci, tciMask);
  } else {
    // OXM_OF_VLAN_VID (VID and present bit) and OXM_OF_VLAN_PCP only when a VID is present.
    let value = tci & tciMask & VID_CFI;
    let mask = tciMask & VID_CFI;
    if ((tci & VID_CFI) !== 0 && (tciMask & 0xe000) !== 0) {
      value |= (tci & 0xe000) | 0x1000;
      mask |= 0xe000 | 0x1000;
    }
    exact(out, 'vlan0', value, mask);
  }

  const dlType = f[W.dl_type]!;
  if (dlType === ETH_TYPE.IP || dlType === ETH_TYPE.IPV6) {
    if (dlType === ETH_TYPE.IP) {
      copy(out, m, 'nw_src');
      copy(out, m, 'nw_dst');
    } else {
      copy(out, m, 'ipv6_src');
      copy(out, m, 'ipv6_dst');
    }
    const fragMask = wc[W.nw_frag]! & 3;
    exact(out, 'nw_frag', f[W.nw_frag]!, fragMask);
    let tosMask = 0;
    if (wc[W.nw_tos]! & 0xfc) tosMask |= 0xfc;
    if (wc[W.nw_tos]! & 0x03) tosMask |= 0x03;
    exact(out, 'nw_tos', f[W.nw_tos]!, tosMask);
    if (wc[W.nw_ttl]) exact(out, 'nw_ttl', f[W.nw_ttl]!, 0xff);
    copy(out, m, 'ipv6_label');
    if (wc[W.nw_proto]) {
      exact(out, 'nw_proto', f[W.nw_proto]!, 0xff);
      const proto = f[W.nw_proto]!;
      if (proto === IPPROTO.TCP || proto === IPPROTO.UDP || proto === IPPROTO.SCTP) {
        copy(out, m, 'tp_src');
        copy(out, m, 'tp_dst');
        if (proto === IPPROTO.TCP) copy(out, m, 'tcp_flags');
      } else if (isIcmp(f) || isIcmp6(f)) {
        // ICMP type and code are 8-bit fields: sent exact.
        if (wc[W.tp_src]) exact(out, 'tp_src', f[W.tp_src]! & 0xff, 0xffff);
        if (wc[W.tp_dst]) exact(out, 'tp_dst', f[W.tp_dst]! & 0xff, 0xffff);
        if (isNd(f)) {
          if (wc[W.igmp_group_ip4]) exact(out, 'igmp_group_ip4', f[W.igmp_group_ip4]!, 0xffffffff);
          copy(out, m, 'nd_target');
          if (wc[W.tcp_flags]) exact(out, 'tcp_flags', f[W.tcp_flags]! & 0xff, 0xffff);
          if (f[W.tp_src] === 135) copy(out, m, 'arp_sha');
          if (f[W.tp_src] === 136) copy(out, m, 'arp_tha');
        }
      }
    }
  } else if (dlType === ETH_TYPE.ARP || dlType === ETH_TYPE.RARP) {
    if (wc[W.nw_proto]) exact(out, 'nw_proto', f[W.nw_proto]!, 0xff);
    for (const k of ['nw_src', 'nw_dst', 'arp_sha', 'arp_tha'] as const) copy(out, m, k);
  }

  for (const k of ['tun_id', 'tun_flags', 'tun_src', 'tun_dst', 'tun_ipv6_src', 'tun_ipv6_dst', 'tun_gbp_id', 'tun_gbp_flags', 'tun_md_present', 'tun_md',
    'tun_erspan_ver', 'tun_gtpu_flags', 'tun_gtpu_msgtype', 'regs', 'pkt_mark', 'ct_state', 'ct_zone', 'ct_mark', 'ct_label', 'ct_nw_src', 'ct_ipv6_src',
    'ct_nw_dst', 'ct_ipv6_dst'] as const) copy(out, m, k);
  if (f[W.ct_nw_proto]) for (const k of ['ct_nw_proto', 'ct_tp_src', 'ct_tp_dst'] as const) copy(out, m, k);
  copy(out, m, 'metadata');
  return out;
}
