// Packet bytes and flows. extract() parses a frame into a flow as OVS's flow_extract does
// (Ethernet, up to two VLAN tags, ARP/RARP, IPv4 with fragments, IPv6 with extension headers,
// TCP with flags, UDP, SCTP, ICMP, ICMPv6 with neighbour discovery, IGMP). writeBack() applies
// a flow's header fields to a copy of the frame the way a datapath commits set actions (VLAN
// tags pushed and popped, checksums fixed). encapsulate()/decapsulate() put a frame in a VXLAN or
// Geneve packet and take it out again, with the tunnel metadata (Geneve options as tun_metadata).
import { ETH_TYPE, FRAG, type Flow, IPPROTO, TNL_F, VLAN_CFI, W, getWords, newFlow, setMac, setWords } from '../base/flow.js';
import type { TunTable } from '../base/tlv.js';

export class PacketError extends Error {}

const u16 = (b: Uint8Array, o: number): number => ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
const u32 = (b: Uint8Array, o: number): number => (((b[o] ?? 0) << 24) | ((b[o + 1] ?? 0) << 16) | ((b[o + 2] ?? 0) << 8) | (b[o + 3] ?? 0)) >>> 0;
const put16 = (b: Uint8Array, o: number, v: number): void => {
  b[o] = (v >> 8) & 255;
  b[o + 1] = v & 255;
};
const put32 = (b: Uint8Array, o: number, v: number): void => {
  b[o] = (v >>> 24) & 255;
  b[o + 1] = (v >>> 16) & 255;
  b[o + 2] = (v >>> 8) & 255;
  b[o + 3] = v & 255;
};
const mac = (b: Uint8Array, o: number): number => u16(b, o) * 0x100000000 + u32(b, o + 2);
const putMac = (b: Uint8Array, o: number, v: number): void => {
  put16(b, o, Math.floor(v / 0x100000000) & 0xffff);
  put32(b, o + 2, v >>> 0);
};
const big128 = (b: Uint8Array, o: number): bigint => {
  let v = 0n;
  for (let i = 0; i < 16; i++) v = (v << 8n) | BigInt(b[o + i] ?? 0);
  return v;
};
const put128 = (b: Uint8Array, o: number, v: bigint): void => {
  for (let i = 15; i >= 0; i--) {
    b[o + i] = Number(v & 0xffn);
    v >>= 8n;
  }
};

/** Where the headers of a frame are. */
export interface Layout {
  /** End of the L2 header (after VLAN tags): the L3 header starts here. */
  l3: number;
  l4: number;
  dlType: number;
  proto: number;
  vlans: number;
  later: boolean;
}

function parseL2(b: Uint8Array, vlanLimit = 1): { vlans: number[]; dlType: number; l3: number } {
  if (b.length < 14) throw new PacketError('frame shorter than an Ethernet header');
  let off = 12;
  const vlans: number[] = [];
  let et = u16(b, off);
  while ((et === ETH_TYPE.VLAN || et === ETH_TYPE.VLAN_8021AD) && vlans.length < Math.min(2, vlanLimit)) {
    if (b.length < off + 6) break;
    vlans.push(((et << 16) | u16(b, off + 2) | VLAN_CFI) >>> 0);
    off += 4;
    et = u16(b, off);
  }
  let dlType = et;
  let l3 = off + 2;
  if (et < 0x600) {
    // 802.2 LLC: a SNAP header with OUI 0 carries an Ethertype; anything else has none.
    dlType = 0x05ff;
    if (b.length >= l3 + 8 && b[l3] === 0xaa && b[l3 + 1] === 0xaa && b[l3 + 2] === 0x03 && b[l3 + 3] === 0 && b[l3 + 4] === 0 && b[l3 + 5] === 0) {
      dlType = u16(b, l3 + 6);
      l3 += 8;
    }
  }
  return { vlans, dlType, l3 };
}

/** Flow fields of a frame arriving on `inPort` (flow_extract). */
export function extract(b: Uint8Array, inPort: number, base?: Flow, vlanLimit = 1): Flow {
  const f = base ? Uint32Array.from(base) : newFlow();
  f[W.in_port] = inPort;
  const { vlans, dlType, l3 } = parseL2(b, vlanLimit);
  setMac(f, W.dl_dst, mac(b, 0));
  setMac(f, W.dl_src, mac(b, 6));
  f[W.vlan0] = vlans[0] ?? 0;
  f[W.vlan1] = vlans[1] ?? 0;
  f[W.dl_type] = dlType;
  if ((dlType === ETH_TYPE.ARP || dlType === ETH_TYPE.RARP) && b.length >= l3 + 28) {
    if (u16(b, l3) === 1 && u16(b, l3 + 2) === ETH_TYPE.IP && b[l3 + 4] === 6 && b[l3 + 5] === 4) {
      const op = u16(b, l3 + 6);
      f[W.nw_proto] = op <= 0xff ? op : 0;
      setMac(f, W.arp_sha, mac(b, l3 + 8));
      f[W.nw_src] = u32(b, l3 + 14);
      setMac(f, W.arp_tha, mac(b, l3 + 18));
      f[W.nw_dst] = u32(b, l3 + 24);
    }
    return f;
  }
  if (dlType === ETH_TYPE.IP) {
    if (b.length < l3 + 20) return f;
    const ihl = (b[l3]! & 15) * 4;
    const total = u16(b, l3 + 2);
    // ipv4_sanity_check: a header that claims more than the frame holds is no IPv4 header.
    if (b[l3]! >> 4 !== 4 || ihl < 20 || b.length < l3 + ihl || total < ihl || total > b.length - l3) return f;
    f[W.nw_src] = u32(b, l3 + 12);
    f[W.nw_dst] = u32(b, l3 + 16);
    f[W.nw_proto] = b[l3 + 9]!;
    f[W.nw_tos] = b[l3 + 1]!;
    f[W.nw_ttl] = b[l3 + 8]!;
    const fragOff = u16(b, l3 + 6);
    if (fragOff & 0x3fff) {
      f[W.nw_frag] = FRAG.ANY;
      if (fragOff & 0x1fff) {
        f[W.nw_frag] = FRAG.ANY | FRAG.LATER;
        return f;
      }
    }
    extractL4(b, l3 + ihl, Math.min(b.length, l3 + total), f, false);
    return f;
  }
  if (dlType === ETH_TYPE.IPV6) {
    if (b.length < l3 + 40) return f;
    const vtcfl = u32(b, l3);
    // ipv6_sanity_check: the payload must fit in the frame.
    if (vtcfl >>> 28 !== 6 || 40 + u16(b, l3 + 4) > b.length - l3) return f;
    f[W.nw_tos] = (vtcfl >>> 20) & 0xff;
    f[W.ipv6_label] = vtcfl & 0xfffff;
    f[W.nw_ttl] = b[l3 + 7]!;
    setWords(f, W.ipv6_src, 4, big128(b, l3 + 8));
    setWords(f, W.ipv6_dst, 4, big128(b, l3 + 24));
    let next = b[l3 + 6]!;
    let off = l3 + 40;
    const end = Math.min(b.length, l3 + 40 + u16(b, l3 + 4));
    // Extension headers: hop-by-hop, routing, destination options, fragment.
    for (let guard = 0; guard < 8; guard++) {
      if (next === 0 || next === 43 || next === 60) {
        if (end < off + 8) return f;
        next = b[off]!;
        off += (b[off + 1]! + 1) * 8;
      } else if (next === 44) {
        if (end < off + 8) return f;
        const fo = u16(b, off + 2);
        next = b[off]!;
        f[W.nw_frag] = FRAG.ANY;
        if (fo & 0xfff8) {
          f[W.nw_frag] = FRAG.ANY | FRAG.LATER;
          f[W.nw_proto] = next;
          return f;
        }
        off += 8;
      } else break;
    }
    f[W.nw_proto] = next;
    extractL4(b, off, end, f, true);
  }
  return f;
}

function extractL4(b: Uint8Array, l4: number, end: number, f: Flow, v6: boolean): void {
  const proto = f[W.nw_proto]!;
  if (proto === IPPROTO.TCP && end >= l4 + 20) {
    f[W.tp_src] = u16(b, l4);
    f[W.tp_dst] = u16(b, l4 + 2);
    f[W.tcp_flags] = u16(b, l4 + 12) & 0x0fff;
  } else if ((proto === IPPROTO.UDP || proto === IPPROTO.SCTP) && end >= l4 + 8) {
    f[W.tp_src] = u16(b, l4);
    f[W.tp_dst] = u16(b, l4 + 2);
  } else if (!v6 && proto === IPPROTO.ICMP && end >= l4 + 4) {
    f[W.tp_src] = b[l4]!;
    f[W.tp_dst] = b[l4 + 1]!;
  } else if (!v6 && proto === IPPROTO.IGMP && end >= l4 + 8) {
    f[W.tp_src] = b[l4]!;
    f[W.tp_dst] = b[l4 + 1]!;
    f[W.igmp_group_ip4] = u32(b, l4 + 4);
  } else if (v6 && proto === IPPROTO.ICMPV6 && end >= l4 + 4) {
    const type = b[l4]!;
    const code = b[l4 + 1]!;
    f[W.tp_src] = type;
    f[W.tp_dst] = code;
    if (code === 0 && (type === 135 || type === 136) && end >= l4 + 24) {
      f[W.igmp_group_ip4] = u32(b, l4 + 4);
      setWords(f, W.nd_target, 4, big128(b, l4 + 8));
      let o = l4 + 24;
      let first = true;
      while (o + 8 <= end) {
        const ot = b[o]!;
        const len = b[o + 1]! * 8;
        if (len === 0 || o + len > end) break;
        if (first) f[W.tcp_flags] = ot;
        first = false;
        if (ot === 1 && type === 135 && len === 8) setMac(f, W.arp_sha, mac(b, o + 2));
        else if (ot === 2 && type === 136 && len === 8) setMac(f, W.arp_tha, mac(b, o + 2));
        o += len;
      }
    }
  }
}

/** Where a frame's headers sit (the L2 header before any rewrite). */
export function layout(b: Uint8Array, vlanLimit = 1): Layout {
  const { vlans, dlType, l3 } = parseL2(b, vlanLimit);
  let l4 = -1;
  let proto = 0;
  let later = false;
  if (dlType === ETH_TYPE.IP && b.length >= l3 + 20) {
    proto = b[l3 + 9]!;
    l4 = l3 + (b[l3]! & 15) * 4;
    later = (u16(b, l3 + 6) & 0x1fff) !== 0;
  } else if (dlType === ETH_TYPE.IPV6 && b.length >= l3 + 40) {
    proto = b[l3 + 6]!;
    l4 = l3 + 40;
    while ((proto === 0 || proto === 43 || proto === 60 || proto === 44) && b.length >= l4 + 8) {
      const n = b[l4]!;
      if (proto === 44) {
        later = (u16(b, l4 + 2) & 0xfff8) !== 0;
        l4 += 8;
      } else l4 += (b[l4 + 1]! + 1) * 8;
      proto = n;
    }
  }
  return { l3, l4, dlType, proto, vlans: vlans.length, later };
}

function sum16(b: Uint8Array, start: number, end: number, initial = 0): number {
  let s = initial;
  for (let i = start; i < end; i += 2) s += ((b[i] ?? 0) << 8) | (i + 1 < end ? b[i + 1] ?? 0 : 0);
  return s;
}
const fold = (s: number): number => {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
};

function l4Checksum(b: Uint8Array, l3: number, l4: number, end: number, proto: number, v6: boolean, csumOff: number): void {
  put16(b, l4 + csumOff, 0);
  let s = 0;
  const len = end - l4;
  if (v6) {
    s = sum16(b, l3 + 8, l3 + 40);
    s += (len >>> 16) + (len & 0xffff) + proto;
  } else {
    s = sum16(b, l3 + 12, l3 + 20);
    s += proto + len;
  }
  s = sum16(b, l4, end, s);
  let c = fold(s);
  if (proto === IPPROTO.UDP && c === 0) c = 0xffff;
  put16(b, l4 + csumOff, c);
}

/** A copy of the frame with the flow's (possibly modified) header fields written in. */
export function writeBack(original: Uint8Array, f: Flow, vlanLimit = 1): Uint8Array {
  const L = layout(original, vlanLimit);
  // The L2 header: MACs, then the flow's VLAN tags, then the rest of the frame from the
  // original Ethertype on.
  const tags: number[] = [];
  if (f[W.vlan0]! & VLAN_CFI) tags.push(f[W.vlan0]!);
  if ((f[W.vlan0]! & VLAN_CFI) && (f[W.vlan1]! & VLAN_CFI)) tags.push(f[W.vlan1]!);
  const restStart = 12 + 4 * L.vlans;
  const b = new Uint8Array(12 + 4 * tags.length + (original.length - restStart));
  b.set(original.subarray(restStart), 12 + 4 * tags.length);
  putMac(b, 0, getMacBig(f, W.dl_dst));
  putMac(b, 6, getMacBig(f, W.dl_src));
  tags.forEach((t, i) => {
    put16(b, 12 + 4 * i, (t >>> 16) || ETH_TYPE.VLAN);
    put16(b, 14 + 4 * i, t & 0xffff & ~VLAN_CFI);
  });
  const shift = 4 * (tags.length - L.vlans);
  const l3 = L.l3 + shift;
  const l4 = L.l4 >= 0 ? L.l4 + shift : -1;
  if ((L.dlType === ETH_TYPE.ARP || L.dlType === ETH_TYPE.RARP) && b.length >= l3 + 28) {
    put16(b, l3 + 6, f[W.nw_proto]!);
    putMac(b, l3 + 8, getMacBig(f, W.arp_sha));
    put32(b, l3 + 14, f[W.nw_src]!);
    putMac(b, l3 + 18, getMacBig(f, W.arp_tha));
    put32(b, l3 + 24, f[W.nw_dst]!);
    return b;
  }
  if (L.dlType === ETH_TYPE.IP && l4 > 0 && b.length >= l4) {
    b[l3 + 1] = f[W.nw_tos]!;
    b[l3 + 8] = f[W.nw_ttl]!;
    put32(b, l3 + 12, f[W.nw_src]!);
    put32(b, l3 + 16, f[W.nw_dst]!);
    put16(b, l3 + 10, 0);
    put16(b, l3 + 10, fold(sum16(b, l3, l4)));
    const end = Math.min(b.length, l3 + u16(b, l3 + 2));
    if (!L.later) writeL4(b, l3, l4, end, L.proto, f, false);
    return b;
  }
  if (L.dlType === ETH_TYPE.IPV6 && l4 > 0 && b.length >= l4) {
    put32(b, l3, ((6 << 28) | ((f[W.nw_tos]! & 0xff) << 20) | (f[W.ipv6_label]! & 0xfffff)) >>> 0);
    b[l3 + 7] = f[W.nw_ttl]!;
    put128(b, l3 + 8, getWords(f, W.ipv6_src, 4));
    put128(b, l3 + 24, getWords(f, W.ipv6_dst, 4));
    const end = Math.min(b.length, l3 + 40 + u16(b, l3 + 4));
    if (!L.later) writeL4(b, l3, l4, end, L.proto, f, true);
  }
  return b;
}

const getMacBig = (f: Flow, word: number): number => (f[word]! & 0xffff) * 0x100000000 + f[word + 1]!;

function writeL4(b: Uint8Array, l3: number, l4: number, end: number, proto: number, f: Flow, v6: boolean): void {
  if (proto === IPPROTO.TCP && end >= l4 + 20) {
    put16(b, l4, f[W.tp_src]!);
    put16(b, l4 + 2, f[W.tp_dst]!);
    l4Checksum(b, l3, l4, end, proto, v6, 16);
  } else if (proto === IPPROTO.UDP && end >= l4 + 8) {
    put16(b, l4, f[W.tp_src]!);
    put16(b, l4 + 2, f[W.tp_dst]!);
    // IPv4 allows "no checksum"; keep it so, else recompute.
    if (v6 || u16(b, l4 + 6) !== 0) l4Checksum(b, l3, l4, end, proto, v6, 6);
  } else if (proto === IPPROTO.SCTP && end >= l4 + 8) {
    put16(b, l4, f[W.tp_src]!);
    put16(b, l4 + 2, f[W.tp_dst]!);
  } else if (!v6 && proto === IPPROTO.ICMP && end >= l4 + 4) {
    b[l4] = f[W.tp_src]!;
    b[l4 + 1] = f[W.tp_dst]!;
    put16(b, l4 + 2, 0);
    put16(b, l4 + 2, fold(sum16(b, l4, end)));
  } else if (v6 && proto === IPPROTO.ICMPV6 && end >= l4 + 4) {
    b[l4] = f[W.tp_src]!;
    b[l4 + 1] = f[W.tp_dst]!;
    const type = b[l4];
    if ((type === 135 || type === 136) && end >= l4 + 24) {
      put128(b, l4 + 8, getWords(f, W.nd_target, 4));
      let o = l4 + 24;
      while (o + 8 <= end) {
        const len = b[o + 1]! * 8;
        if (len === 0 || o + len > end) break;
        if (b[o] === 1 && type === 135 && len === 8) putMac(b, o + 2, getMacBig(f, W.arp_sha));
        if (b[o] === 2 && type === 136 && len === 8) putMac(b, o + 2, getMacBig(f, W.arp_tha));
        o += len;
      }
    }
    l4Checksum(b, l3, l4, end, proto, true, 2);
  }
}

// -- tunnels --

export type TunnelType = 'vxlan' | 'geneve';

export interface UnderlayHop {
  srcMac: number;
  dstMac: number;
}

/** The inner frame in a VXLAN or Geneve packet to the flow's tun_dst, from tun_src. */
export function encapsulate(inner: Uint8Array, f: Flow, type: TunnelType, u: UnderlayHop, tun?: TunTable | null): Uint8Array {
  const vni = Number(getWords(f, W.tun_id, 2) & 0xffffffn);
  let opts = new Uint8Array(0);
  if (type === 'geneve' && tun) {
    const parts: Uint8Array[] = [];
    const all = getWords(f, W.tun_md, 64);
    for (const e of [...tun.entries.values()].sort((a, b) => a.index - b.index)) {
      const word = W.tun_md_present + (e.index >= 32 ? 0 : 1);
      if ((f[word]! & (1 << (e.index % 32))) === 0) continue;
      const o = new Uint8Array(4 + e.len);
      put16(o, 0, e.optClass);
      o[2] = e.type;
      o[3] = e.len / 4;
      let v = (all >> BigInt(8 * (256 - e.offset - e.len))) & ((1n << BigInt(8 * e.len)) - 1n);
      for (let i = e.len - 1; i >= 0; i--) {
        o[4 + i] = Number(v & 0xffn);
        v >>= 8n;
      }
      parts.push(o);
    }
    opts = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      opts.set(p, at);
      at += p.length;
    }
  }
  const tunHdr = type === 'vxlan' ? 8 : 8 + opts.length;
  const total = 14 + 20 + 8 + tunHdr + inner.length;
  const b = new Uint8Array(total);
  putMac(b, 0, u.dstMac);
  putMac(b, 6, u.srcMac);
  put16(b, 12, ETH_TYPE.IP);
  const ip = 14;
  b[ip] = 0x45;
  b[ip + 1] = f[W.tun_tos]!;
  put16(b, ip + 2, total - 14);
  put16(b, ip + 6, f[W.tun_flags]! & TNL_F.DONT_FRAGMENT ? 0x4000 : 0);
  b[ip + 8] = f[W.tun_ttl]! || 64;
  b[ip + 9] = IPPROTO.UDP;
  put32(b, ip + 12, f[W.tun_src]!);
  put32(b, ip + 16, f[W.tun_dst]!);
  put16(b, ip + 10, fold(sum16(b, ip, ip + 20)));
  const udp = ip + 20;
  // Source port from a hash of the inner flow, as OVS does for entropy.
  put16(b, udp, 49152 + (vni ^ inner.length) % 16384);
  put16(b, udp + 2, f[W.tun_tp_dst]! || (type === 'vxlan' ? 4789 : 6081));
  put16(b, udp + 4, total - 14 - 20);
  const h = udp + 8;
  if (type === 'vxlan') {
    b[h] = 0x08;
    put32(b, h + 4, (vni << 8) >>> 0);
  } else {
    b[h] = opts.length / 4;
    b[h + 1] = f[W.tun_flags]! & TNL_F.OAM ? 0x80 : 0;
    put16(b, h + 2, 0x6558);
    put32(b, h + 4, (vni << 8) >>> 0);
    b.set(opts, h + 8);
  }
  b.set(inner, h + tunHdr);
  return b;
}

/** Take the inner frame out of a VXLAN or Geneve packet; the flow gets the tunnel metadata. */
export function decapsulate(b: Uint8Array, tun?: TunTable | null): { inner: Uint8Array; type: TunnelType; meta: Flow } | null {
  if (b.length < 14 + 20 + 8 + 8 || u16(b, 12) !== ETH_TYPE.IP) return null;
  const ip = 14;
  const ihl = (b[ip]! & 15) * 4;
  if (b[ip + 9] !== IPPROTO.UDP) return null;
  const udp = ip + ihl;
  const dport = u16(b, udp + 2);
  const h = udp + 8;
  const meta = newFlow();
  meta[W.tun_src] = u32(b, ip + 12);
  meta[W.tun_dst] = u32(b, ip + 16);
  meta[W.tun_tos] = b[ip + 1]!;
  meta[W.tun_ttl] = b[ip + 8]!;
  meta[W.tun_tp_src] = u16(b, udp);
  meta[W.tun_tp_dst] = dport;
  let flags = TNL_F.KEY;
  if (u16(b, ip + 6) & 0x4000) flags |= TNL_F.DONT_FRAGMENT;
  if (u16(b, udp + 6) !== 0) flags |= TNL_F.CSUM;
  if (dport === 4789) {
    if (b.length < h + 8) return null;
    setWords(meta, W.tun_id, 2, BigInt(u32(b, h + 4) >>> 8));
    meta[W.tun_flags] = flags;
    return { inner: b.slice(h + 8), type: 'vxlan', meta };
  }
  if (dport === 6081) {
    const optLen = (b[h]! & 0x3f) * 4;
    if (b.length < h + 8 + optLen) return null;
    if (b[h + 1]! & 0x80) flags |= TNL_F.OAM;
    setWords(meta, W.tun_id, 2, BigInt(u32(b, h + 4) >>> 8));
    meta[W.tun_flags] = flags;
    let o = h + 8;
    while (o + 4 <= h + 8 + optLen) {
      const cls = u16(b, o);
      const type = b[o + 2]!;
      const len = (b[o + 3]! & 0x1f) * 4;
      const e = tun ? [...tun.entries.values()].find((x) => x.optClass === cls && x.type === type) : undefined;
      if (e && e.len === len) {
        let v = 0n;
        for (let i = 0; i < len; i++) v = (v << 8n) | BigInt(b[o + 4 + i]!);
        const all = getWords(meta, W.tun_md, 64);
        const shift = BigInt(8 * (256 - e.offset - e.len));
        const m = ((1n << BigInt(8 * e.len)) - 1n) << shift;
        setWords(meta, W.tun_md, 64, (all & ~m) | (v << shift));
        const word = W.tun_md_present + (e.index >= 32 ? 0 : 1);
        meta[word] = (meta[word]! | (1 << (e.index % 32))) >>> 0;
      }
      o += 4 + len;
    }
    return { inner: b.slice(h + 8 + optLen), type: 'geneve', meta };
  }
  return null;
}
