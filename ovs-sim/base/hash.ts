// OVS's hash functions, bit for bit (the mhash build Debian's x86-64 packages use, and Bob
// Jenkins' lookup3 for flow_hash_symmetric_l4), so that a select group picks the bucket real
// OVS picks.
import { ETH_TYPE, type Flow, IPPROTO, W } from './flow.js';

const rot = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;
const mul = (a: number, b: number): number => Math.imul(a, b) >>> 0;

function mhashAdd(hash: number, data: number): number {
  if (data !== 0) {
    let d = mul(data, 0xcc9e2d51);
    d = rot(d, 15);
    d = mul(d, 0x1b873593);
    hash = (hash ^ d) >>> 0;
  }
  hash = rot(hash, 13);
  return (mul(hash, 5) + 0xe6546b64) >>> 0;
}

function mhashFinish(h: number): number {
  h = (h ^ (h >>> 16)) >>> 0;
  h = mul(h, 0x85ebca6b);
  h = (h ^ (h >>> 13)) >>> 0;
  h = mul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const hashFinish = (hash: number, final: number): number => mhashFinish((hash ^ final) >>> 0);

/** hash_2words(x, y). */
export const hash2Words = (x: number, y: number): number => hashFinish(mhashAdd(mhashAdd(x >>> 0, 0), y >>> 0), 8);

/** hash_int(x, basis). */
export const hashInt = (x: number, basis: number): number => hash2Words(x, basis);

function jmix(s: number[]): void {
  let [a, b, c] = s as [number, number, number];
  a = (a - c) >>> 0; a = (a ^ rot(c, 4)) >>> 0; c = (c + b) >>> 0;
  b = (b - a) >>> 0; b = (b ^ rot(a, 6)) >>> 0; a = (a + c) >>> 0;
  c = (c - b) >>> 0; c = (c ^ rot(b, 8)) >>> 0; b = (b + a) >>> 0;
  a = (a - c) >>> 0; a = (a ^ rot(c, 16)) >>> 0; c = (c + b) >>> 0;
  b = (b - a) >>> 0; b = (b ^ rot(a, 19)) >>> 0; a = (a + c) >>> 0;
  c = (c - b) >>> 0; c = (c ^ rot(b, 4)) >>> 0; b = (b + a) >>> 0;
  s[0] = a; s[1] = b; s[2] = c;
}

function jfinal(s: number[]): void {
  let [a, b, c] = s as [number, number, number];
  c = (c ^ b) >>> 0; c = (c - rot(b, 14)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rot(c, 11)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rot(a, 25)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 16)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rot(c, 4)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rot(a, 14)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 24)) >>> 0;
  s[0] = a; s[1] = b; s[2] = c;
}

/** jhash_bytes over a little-endian host's memory. */
export function jhashBytes(bytes: Uint8Array, basis: number): number {
  const n = bytes.length;
  const init = (0xdeadbeef + n + basis) >>> 0;
  const s = [init, init, init];
  const u32 = (o: number): number => ((bytes[o] ?? 0) | ((bytes[o + 1] ?? 0) << 8) | ((bytes[o + 2] ?? 0) << 16) | ((bytes[o + 3] ?? 0) << 24)) >>> 0;
  let off = 0;
  let left = n;
  while (left >= 12) {
    s[0] = (s[0]! + u32(off)) >>> 0;
    s[1] = (s[1]! + u32(off + 4)) >>> 0;
    s[2] = (s[2]! + u32(off + 8)) >>> 0;
    jmix(s);
    left -= 12;
    off += 12;
  }
  if (left) {
    const tail = new Uint8Array(12);
    tail.set(bytes.subarray(off));
    const t = (o: number): number => (tail[o]! | (tail[o + 1]! << 8) | (tail[o + 2]! << 16) | (tail[o + 3]! << 24)) >>> 0;
    s[0] = (s[0]! + t(0)) >>> 0;
    s[1] = (s[1]! + t(4)) >>> 0;
    s[2] = (s[2]! + t(8)) >>> 0;
    jfinal(s);
  }
  return s[2]!;
}

/** flow_hash_symmetric_l4: the same hash for both directions of a connection. */
export function flowHashSymmetricL4(f: Flow, basis: number): number {
  const b = new Uint8Array(32);
  const putBe16 = (o: number, v: number): void => {
    b[o] = (v >> 8) & 255;
    b[o + 1] = v & 255;
  };
  const putBe32 = (o: number, v: number): void => {
    b[o] = (v >>> 24) & 255;
    b[o + 1] = (v >>> 16) & 255;
    b[o + 2] = (v >>> 8) & 255;
    b[o + 3] = v & 255;
  };
  // eth_addr at 22: dl_src ^ dl_dst.
  putBe16(22, (f[W.dl_src]! ^ f[W.dl_dst]!) & 0xffff);
  putBe32(24, (f[W.dl_src + 1]! ^ f[W.dl_dst + 1]!) >>> 0);
  putBe16(18, ((f[W.vlan0]! & 0xfff) ^ (f[W.vlan1]! & 0xfff)) & 0xffff);
  const dl = f[W.dl_type]!;
  putBe16(16, dl);
  const proto = f[W.nw_proto]!;
  if (dl === ETH_TYPE.IP) {
    putBe32(0, (f[W.nw_src]! ^ f[W.nw_dst]!) >>> 0);
    b[28] = proto;
    if (proto === IPPROTO.TCP || proto === IPPROTO.SCTP) putBe16(20, (f[W.tp_src]! ^ f[W.tp_dst]!) & 0xffff);
  } else if (dl === ETH_TYPE.IPV6) {
    for (let i = 0; i < 4; i++) putBe32(4 * i, (f[W.ipv6_src + i]! ^ f[W.ipv6_dst + i]!) >>> 0);
    b[28] = proto;
    if (proto === IPPROTO.TCP || proto === IPPROTO.SCTP) putBe16(20, (f[W.tp_src]! ^ f[W.tp_dst]!) & 0xffff);
  }
  return jhashBytes(b, basis);
}

/** hash_bytes(p, n, basis) as a little-endian host computes it (words read in host order). */
export function hashBytes(bytes: Uint8Array, basis: number): number {
  let hash = basis >>> 0;
  let i = 0;
  for (; i + 4 <= bytes.length; i += 4) hash = mhashAdd(hash, (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) >>> 0);
  if (i < bytes.length) {
    let tmp = 0;
    for (let k = 0; i + k < bytes.length; k++) tmp |= bytes[i + k]! << (8 * k);
    hash = mhashAdd(hash, tmp >>> 0);
  }
  return hashFinish(hash, bytes.length);
}

/** hash_string(s, basis): an shash's hash of a name. */
export const hashString = (s: string, basis = 0): number => hashBytes(new TextEncoder().encode(s), basis);

/** hash_uint64_basis(x, basis). */
export const hashUint64 = (x: bigint, basis = 0): number =>
  hashFinish(mhashAdd(mhashAdd(basis >>> 0, Number(x & 0xffffffffn)), Number((x >> 32n) & 0xffffffffn)), 8);

/** hash_boolean(x, basis). */
export const hashBoolean = (x: boolean, basis: number): number => ((x ? 0xc2b73583 : 0xe90f1258) ^ rot(basis >>> 0, 1)) >>> 0;

const bswap32 = (v: number): number => (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
const bswap16 = (v: number): number => ((v & 0xff) << 8) | ((v >> 8) & 0xff);

/** flow_hash_symmetric_l2 (words as a little-endian host reads the big-endian fields). */
function flowHashSymmetricL2(f: Flow, basis: number): number {
  if (f[W.packet_type] !== 0) return 0;
  const tci = ((f[W.vlan0]! ^ f[W.vlan1]!) & 0xfff);
  const b = new Uint8Array(12);
  b[0] = f[W.dl_type]! >> 8; b[1] = f[W.dl_type]! & 255; b[2] = tci >> 8; b[3] = tci & 255;
  const x = [(f[W.dl_src]! ^ f[W.dl_dst]!) & 0xffff, (f[W.dl_src + 1]! ^ f[W.dl_dst + 1]!) >>> 0];
  b[4] = x[0]! >> 8; b[5] = x[0]! & 255; b[6] = x[1]! >>> 24; b[7] = (x[1]! >>> 16) & 255; b[8] = (x[1]! >>> 8) & 255; b[9] = x[1]! & 255;
  let hash = basis >>> 0;
  for (let i = 0; i < 12; i += 4) hash = mhashAdd(hash, (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0);
  return hashFinish(hash, basis);
}

/** flow_hash_symmetric_l3l4. */
export function flowHashSymmetricL3L4(f: Flow, basis: number, withUdp: boolean): number {
  let hash = basis >>> 0;
  const dl = f[W.dl_type]!;
  if (dl === ETH_TYPE.IP) hash = mhashAdd(hash, bswap32((f[W.nw_src]! ^ f[W.nw_dst]!) >>> 0));
  else if (dl === ETH_TYPE.IPV6) {
    for (let i = 0; i < 4; i++) hash = mhashAdd(hash, bswap32((f[W.ipv6_src + i]! ^ f[W.ipv6_dst + i]!) >>> 0));
  } else return flowHashSymmetricL2(f, basis);
  const proto = f[W.nw_proto]!;
  hash = mhashAdd(hash, proto);
  if (!(f[W.nw_frag]! & 3) && (proto === IPPROTO.TCP || proto === IPPROTO.SCTP || (withUdp && proto === IPPROTO.UDP))) hash = mhashAdd(hash, bswap16((f[W.tp_src]! ^ f[W.tp_dst]!) & 0xffff));
  return hashFinish(hash, basis);
}
