// A packet built from a flow (OVS's flow_compose), as ofproto/trace -generate builds one:
// Ethernet and VLAN tags, then ARP, or IPv4/IPv6 with TCP, UDP, SCTP, ICMP or ICMPv6 (with ND
// options), and 64 bytes of zero payload after an L4 header.
import { ETH_TYPE, FRAG, type Flow, IPPROTO, VLAN_CFI, W, getMac, getWords } from '../base/flow.js';

const L7_LEN = 64;

export function composePacket(f: Flow): Uint8Array {
  const out: number[] = [];
  const u8 = (v: number): void => { out.push(v & 255); };
  const u16 = (v: number): void => { u8(v >> 8); u8(v); };
  const u32 = (v: number): void => { u16(v >>> 16); u16(v & 0xffff); };
  const macW = (word: number): void => {
    const m = getMac(f, word);
    u16(Math.floor(m / 0x100000000));
    u32(m >>> 0);
  };
  const v128 = (v: bigint): void => {
    for (let i = 15; i >= 0; i--) u8(Number((v >> BigInt(8 * i)) & 0xffn));
  };
  macW(W.dl_dst);
  macW(W.dl_src);
  for (const w of [W.vlan0, W.vlan1]) {
    if (!(f[w]! & VLAN_CFI)) break;
    u16((f[w]! >>> 16) || ETH_TYPE.VLAN);
    u16(f[w]! & 0xffff & ~VLAN_CFI);
  }
  const dl = f[W.dl_type]!;
  u16(dl);
  const l3 = out.length;
  if (dl === ETH_TYPE.ARP || dl === ETH_TYPE.RARP) {
    u16(1); u16(ETH_TYPE.IP); u8(6); u8(4); u16(f[W.nw_proto]!);
    macW(W.arp_sha); u32(f[W.nw_src]!); macW(W.arp_tha); u32(f[W.nw_dst]!);
    return Uint8Array.from(out);
  }
  const proto = f[W.nw_proto]!;
  const later = (f[W.nw_frag]! & FRAG.LATER) !== 0;
  const l4: number[] = [];
  const p8 = (v: number): void => { l4.push(v & 255); };
  const p16 = (v: number): void => { p8(v >> 8); p8(v); };
  const p32 = (v: number): void => { p16(v >>> 16); p16(v & 0xffff); };
  if (!later) {
    if (proto === IPPROTO.TCP) {
      p16(f[W.tp_src]!); p16(f[W.tp_dst]!); p32(0); p32(0); p16((5 << 12) | (f[W.tcp_flags]! & 0x0fff)); p16(0); p16(0); p16(0);
      for (let i = 0; i < L7_LEN; i++) p8(0);
    } else if (proto === IPPROTO.UDP || proto === IPPROTO.SCTP) {
      p16(f[W.tp_src]!); p16(f[W.tp_dst]!);
      if (proto === IPPROTO.UDP) { p16(8 + L7_LEN); p16(0); } else { p32(0); p32(0); }
      for (let i = 0; i < L7_LEN; i++) p8(0);
    } else if (proto === IPPROTO.ICMP || (proto === IPPROTO.ICMPV6 && dl === ETH_TYPE.IPV6)) {
      p8(f[W.tp_src]!); p8(f[W.tp_dst]!); p16(0);
      const type = f[W.tp_src]!;
      if (proto === IPPROTO.ICMPV6 && (type === 135 || type === 136)) {
        p32(f[W.igmp_group_ip4]!);
        for (let i = 15; i >= 0; i--) p8(Number((getWords(f, W.nd_target, 4) >> BigInt(8 * i)) & 0xffn));
        const optWord = type === 135 ? W.arp_sha : W.arp_tha;
        if (getMac(f, optWord) !== 0) {
          p8(type === 135 ? 1 : 2); p8(1);
          const m = getMac(f, optWord);
          p16(Math.floor(m / 0x100000000)); p32(m >>> 0);
        }
      } else {
        for (let i = 0; i < L7_LEN; i++) p8(0);
      }
    }
  }
  if (dl === ETH_TYPE.IP) {
    u8(0x45); u8(f[W.nw_tos]!); u16(20 + l4.length); u16(0);
    const fo = (f[W.nw_frag]! & FRAG.ANY) ? (later ? 0x2000 | 100 : 0x2000) : 0;
    u16(fo); u8(f[W.nw_ttl]!); u8(proto); u16(0); u32(f[W.nw_src]!); u32(f[W.nw_dst]!);
    let s = 0;
    for (let i = l3; i < l3 + 20; i += 2) s += (out[i]! << 8) | out[i + 1]!;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    const c = ~s & 0xffff;
    out[l3 + 10] = c >> 8;
    out[l3 + 11] = c & 255;
  } else if (dl === ETH_TYPE.IPV6) {
    u32(((6 << 28) | ((f[W.nw_tos]! & 0xff) << 20) | (f[W.ipv6_label]! & 0xfffff)) >>> 0);
    u16(l4.length); u8(proto); u8(f[W.nw_ttl]!);
    v128(getWords(f, W.ipv6_src, 4));
    v128(getWords(f, W.ipv6_dst, 4));
  } else {
    return Uint8Array.from(out);
  }
  out.push(...l4);
  return Uint8Array.from(out);
}
