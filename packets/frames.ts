// Building and reading frames: Ethernet, ARP, IPv4 with ICMP echo and UDP, BOOTP/DHCP. A neutral
// module that imports nothing: the simulator's endpoints and the agent's DHCP server both use it,
// so production code never reaches into ovs-sim for it. Checksums are computed, so real OVS and
// the simulator can be fed the same bytes.

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

export const macBytes = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));
export const ipBytes = (ip: string): number[] => ip.split('.').map(Number);
export const macText = (b: Uint8Array, off: number): string => [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
export const ipText = (b: Uint8Array, off: number): string => `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;

export function checksum(b: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  for (let i = start; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if ((end - start) % 2 === 1) sum += b[end - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function eth(dst: string, src: string, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(macBytes(dst), 0);
  f.set(macBytes(src), 6);
  f[12] = type >> 8;
  f[13] = type & 255;
  f.set(payload, 14);
  return f;
}

export function arpFrame(op: 1 | 2, sha: string, spa: string, tha: string, tpa: string, dst = op === 1 ? BROADCAST_MAC : tha): Uint8Array {
  const a = new Uint8Array(28);
  a.set([0, 1, 8, 0, 6, 4, 0, op]);
  a.set(macBytes(sha), 8);
  a.set(ipBytes(spa), 14);
  a.set(macBytes(tha), 18);
  a.set(ipBytes(tpa), 24);
  return eth(dst, sha, 0x0806, a);
}

export function ipv4Frame(dstMac: string, srcMac: string, src: string, dst: string, proto: number, l4: Uint8Array, ttl = 64): Uint8Array {
  const ip = new Uint8Array(20 + l4.length);
  ip[0] = 0x45;
  ip[2] = ip.length >> 8;
  ip[3] = ip.length & 255;
  ip[8] = ttl;
  ip[9] = proto;
  ip.set(ipBytes(src), 12);
  ip.set(ipBytes(dst), 16);
  const c = checksum(ip, 0, 20);
  ip[10] = c >> 8;
  ip[11] = c & 255;
  ip.set(l4, 20);
  if (proto === 17) {
    // UDP checksum over the pseudo-header
    const pseudo = ((ip[12]! << 8) | ip[13]!) + ((ip[14]! << 8) | ip[15]!) + ((ip[16]! << 8) | ip[17]!) + ((ip[18]! << 8) | ip[19]!) + 17 + l4.length;
    const u = checksum(ip, 20, ip.length, pseudo);
    ip[26] = (u === 0 ? 0xffff : u) >> 8;
    ip[27] = (u === 0 ? 0xffff : u) & 255;
  }
  return eth(dstMac, srcMac, 0x0800, ip);
}

export function icmpEcho(type: 0 | 8, id: number, seq: number, data: Uint8Array = new Uint8Array(8)): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m[0] = type;
  m[4] = id >> 8;
  m[5] = id & 255;
  m[6] = seq >> 8;
  m[7] = seq & 255;
  m.set(data, 8);
  const c = checksum(m, 0, m.length);
  m[2] = c >> 8;
  m[3] = c & 255;
  return m;
}

export function udp(srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  u[0] = srcPort >> 8;
  u[1] = srcPort & 255;
  u[2] = dstPort >> 8;
  u[3] = dstPort & 255;
  u[4] = u.length >> 8;
  u[5] = u.length & 255;
  u.set(payload, 8);
  return u;
}

export type Parsed =
  | { kind: 'arp'; dst: string; src: string; op: number; sha: string; spa: string; tha: string; tpa: string }
  | { kind: 'icmp'; dst: string; src: string; ipSrc: string; ipDst: string; ttl: number; type: number; id: number; seq: number }
  | { kind: 'udp'; dst: string; src: string; ipSrc: string; ipDst: string; srcPort: number; dstPort: number; payload: Uint8Array }
  | { kind: 'other'; dst: string; src: string; type: number };

/** A frame as an endpoint sees it; anything it does not understand is `other`. */
export function parseFrame(f: Uint8Array): Parsed | null {
  if (f.length < 14) return null;
  const dst = macText(f, 0);
  const src = macText(f, 6);
  const type = (f[12]! << 8) | f[13]!;
  if (type === 0x0806 && f.length >= 42) {
    return { kind: 'arp', dst, src, op: (f[20]! << 8) | f[21]!, sha: macText(f, 22), spa: ipText(f, 28), tha: macText(f, 32), tpa: ipText(f, 38) };
  }
  if (type === 0x0800 && f.length >= 34) {
    const ihl = (f[14]! & 15) * 4;
    const l4 = 14 + ihl;
    const proto = f[23]!;
    const ipSrc = ipText(f, 26);
    const ipDst = ipText(f, 30);
    if (proto === 1 && f.length >= l4 + 8) {
      return { kind: 'icmp', dst, src, ipSrc, ipDst, ttl: f[22]!, type: f[l4]!, id: (f[l4 + 4]! << 8) | f[l4 + 5]!, seq: (f[l4 + 6]! << 8) | f[l4 + 7]! };
    }
    if (proto === 17 && f.length >= l4 + 8) {
      const len = (f[l4 + 4]! << 8) | f[l4 + 5]!;
      return { kind: 'udp', dst, src, ipSrc, ipDst, srcPort: (f[l4]! << 8) | f[l4 + 1]!, dstPort: (f[l4 + 2]! << 8) | f[l4 + 3]!, payload: f.subarray(l4 + 8, Math.min(f.length, l4 + len)) };
    }
  }
  return { kind: 'other', dst, src, type };
}

// -- DHCP, client side --

const MAGIC = [0x63, 0x82, 0x53, 0x63];

export interface DhcpRequestSpec {
  type: number;
  xid: number;
  mac: string;
  ciaddr?: string;
  requestedIp?: string;
  serverId?: string;
  broadcast?: boolean;
}

export interface BootpFields {
  /** 1 BOOTREQUEST, 2 BOOTREPLY */
  op: 1 | 2;
  xid: number;
  broadcast: boolean;
  ciaddr?: string;
  yiaddr?: string;
  siaddr?: string;
  giaddr?: string;
  chaddr: string;
  /** Encoded options, END included. */
  options: number[];
}

/** A BOOTP/DHCP message (RFC 2131 layout, Ethernet hardware, padded to 300 bytes). */
export function bootp(f: BootpFields): Uint8Array {
  const b = new Uint8Array(Math.max(240 + f.options.length, 300));
  b.set([f.op, 1, 6, 0]);
  b[4] = (f.xid >>> 24) & 255;
  b[5] = (f.xid >>> 16) & 255;
  b[6] = (f.xid >>> 8) & 255;
  b[7] = f.xid & 255;
  if (f.broadcast) b[10] = 0x80;
  b.set(ipBytes(f.ciaddr ?? '0.0.0.0'), 12);
  b.set(ipBytes(f.yiaddr ?? '0.0.0.0'), 16);
  b.set(ipBytes(f.siaddr ?? '0.0.0.0'), 20);
  b.set(ipBytes(f.giaddr ?? '0.0.0.0'), 24);
  b.set(macBytes(f.chaddr), 28);
  b.set(MAGIC, 236);
  b.set(f.options, 240);
  return b;
}

export function dhcpClientPayload(s: DhcpRequestSpec): Uint8Array {
  const opts = [53, 1, s.type];
  if (s.requestedIp) opts.push(50, 4, ...ipBytes(s.requestedIp));
  if (s.serverId) opts.push(54, 4, ...ipBytes(s.serverId));
  opts.push(55, 7, 1, 3, 6, 12, 15, 26, 51, 255);
  return bootp({ op: 1, xid: s.xid, broadcast: s.broadcast ?? false, ciaddr: s.ciaddr, chaddr: s.mac, options: opts });
}

export interface DhcpServerMessage {
  type: number;
  xid: number;
  yiaddr: string;
  options: Map<number, Uint8Array>;
}

export function parseDhcpServerPayload(b: Uint8Array): DhcpServerMessage | null {
  if (b.length < 240 || b[0] !== 2 || b[236] !== 0x63 || b[237] !== 0x82 || b[238] !== 0x53 || b[239] !== 0x63) return null;
  const options = new Map<number, Uint8Array>();
  for (let i = 240; i < b.length && b[i] !== 255;) {
    if (b[i] === 0) { i += 1; continue; }
    const len = b[i + 1] ?? 0;
    if (i + 2 + len > b.length) return null;
    options.set(b[i]!, b.subarray(i + 2, i + 2 + len));
    i += 2 + len;
  }
  const t = options.get(53);
  if (!t || t.length !== 1) return null;
  return { type: t[0]!, xid: ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0, yiaddr: ipText(b, 16), options };
}
