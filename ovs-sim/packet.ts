// Packet bytes ↔ flow fields, for the headers the simulator models: Ethernet, one 802.1Q tag,
// ARP, IPv4, and UDP/TCP ports or ICMP type/code. Writing back applies modified header fields to
// a copy of the frame, fixing the IPv4 header checksum (and zeroing a stale UDP checksum, which
// IPv4 allows) the way a datapath commits set actions.
import type { FieldName } from './fields.js';
import type { Packet } from './match.js';

export class PacketError extends Error {}

const be = (b: Uint8Array, off: number, n: number): bigint => {
  let v = 0n;
  for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(b[off + i] ?? 0);
  return v;
};
const put = (b: Uint8Array, off: number, n: number, v: bigint): void => {
  for (let i = n - 1; i >= 0; i--) {
    b[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
};

interface Layout {
  l3: number;
  l4: number;
  dlType: bigint;
  proto: bigint;
}

function layout(b: Uint8Array): Layout {
  if (b.length < 14) throw new PacketError('frame shorter than an Ethernet header');
  let off = 12;
  let dlType = be(b, off, 2);
  if (dlType === 0x8100n) {
    if (b.length < 18) throw new PacketError('truncated VLAN tag');
    off += 4;
    dlType = be(b, off, 2);
  }
  const l3 = off + 2;
  let l4 = -1;
  let proto = 0n;
  if (dlType === 0x0800n && b.length >= l3 + 20) {
    proto = BigInt(b[l3 + 9]!);
    l4 = l3 + (b[l3]! & 15) * 4;
  }
  return { l3, l4, dlType, proto };
}

/** Flow fields of a frame arriving on `inPort`. */
export function extract(b: Uint8Array, inPort: number): Packet {
  const p: Packet = new Map();
  p.set('in_port', BigInt(inPort));
  const L = layout(b);
  p.set('dl_dst', be(b, 0, 6));
  p.set('dl_src', be(b, 6, 6));
  p.set('vlan_tci', be(b, 12, 2) === 0x8100n ? be(b, 14, 2) | 0x1000n : 0n);
  p.set('dl_type', L.dlType);
  if (L.dlType === 0x0806n && b.length >= L.l3 + 28) {
    p.set('arp_op', be(b, L.l3 + 6, 2));
    p.set('arp_sha', be(b, L.l3 + 8, 6));
    p.set('arp_spa', be(b, L.l3 + 14, 4));
    p.set('arp_tha', be(b, L.l3 + 18, 6));
    p.set('arp_tpa', be(b, L.l3 + 24, 4));
  } else if (L.dlType === 0x0800n && L.l4 > 0) {
    p.set('nw_tos', BigInt(b[L.l3 + 1]!));
    p.set('nw_ttl', BigInt(b[L.l3 + 8]!));
    p.set('nw_proto', L.proto);
    p.set('nw_src', be(b, L.l3 + 12, 4));
    p.set('nw_dst', be(b, L.l3 + 16, 4));
    if ((L.proto === 6n || L.proto === 17n) && b.length >= L.l4 + 4) {
      p.set('tp_src', be(b, L.l4, 2));
      p.set('tp_dst', be(b, L.l4 + 2, 2));
    } else if (L.proto === 1n && b.length >= L.l4 + 2) {
      p.set('tp_src', BigInt(b[L.l4]!));
      p.set('tp_dst', BigInt(b[L.l4 + 1]!));
    }
  }
  return p;
}

function ipChecksum(b: Uint8Array, off: number): void {
  b[off + 10] = 0;
  b[off + 11] = 0;
  let sum = 0;
  const len = (b[off]! & 15) * 4;
  for (let i = 0; i < len; i += 2) sum += (b[off + i]! << 8) | b[off + i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const c = ~sum & 0xffff;
  b[off + 10] = c >> 8;
  b[off + 11] = c & 255;
}

/** A copy of the frame with the packet's (possibly modified) header fields written in. */
export function writeBack(original: Uint8Array, p: Packet): Uint8Array {
  const b = Uint8Array.from(original);
  const L = layout(b);
  const get = (f: FieldName): bigint => p.get(f) ?? 0n;
  put(b, 0, 6, get('dl_dst'));
  put(b, 6, 6, get('dl_src'));
  if (L.dlType === 0x0806n && b.length >= L.l3 + 28) {
    put(b, L.l3 + 6, 2, get('arp_op'));
    put(b, L.l3 + 8, 6, get('arp_sha'));
    put(b, L.l3 + 14, 4, get('arp_spa'));
    put(b, L.l3 + 18, 6, get('arp_tha'));
    put(b, L.l3 + 24, 4, get('arp_tpa'));
  } else if (L.dlType === 0x0800n && L.l4 > 0) {
    const changed = get('nw_src') !== be(b, L.l3 + 12, 4) || get('nw_dst') !== be(b, L.l3 + 16, 4);
    b[L.l3 + 1] = Number(get('nw_tos'));
    b[L.l3 + 8] = Number(get('nw_ttl'));
    put(b, L.l3 + 12, 4, get('nw_src'));
    put(b, L.l3 + 16, 4, get('nw_dst'));
    ipChecksum(b, L.l3);
    if ((L.proto === 6n || L.proto === 17n) && b.length >= L.l4 + 4) {
      const portsChanged = get('tp_src') !== be(b, L.l4, 2) || get('tp_dst') !== be(b, L.l4 + 2, 2);
      put(b, L.l4, 2, get('tp_src'));
      put(b, L.l4 + 2, 2, get('tp_dst'));
      if (L.proto === 17n && (changed || portsChanged) && b.length >= L.l4 + 8) put(b, L.l4 + 6, 2, 0n);
    }
  }
  return b;
}
