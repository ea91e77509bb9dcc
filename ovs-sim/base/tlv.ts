// Geneve option mappings (ovs-ofctl add-tlv-map): which option class/type each tun_metadataN
// carries, its length, and where its bytes sit in the flow's 256-byte option space, allocated in
// 4-byte chunks first fit as OVS does. Matches and actions on tun_metadataN go through here.
import { type Flow, W, getWords, setWords } from './flow.js';
import { FieldError } from './fields.js';
import { hexBytes } from './text.js';

export interface TlvEntry {
  index: number;
  optClass: number;
  type: number;
  len: number;
  /** Byte offset in the option space. */
  offset: number;
}

export class TunTable {
  readonly entries = new Map<number, TlvEntry>();
  private readonly chunks = new Array<boolean>(64).fill(false);

  add(index: number, optClass: number, type: number, len: number): string | null {
    if (this.entries.has(index)) return 'NXTTMFC_ALREADY_MAPPED';
    if ([...this.entries.values()].some((e) => e.optClass === optClass && e.type === type)) return 'NXTTMFC_DUP_ENTRY';
    const need = len / 4;
    let start = -1;
    for (let i = 0; i + need <= 64 && start < 0; i++) if (this.chunks.slice(i, i + need).every((c) => !c)) start = i;
    if (start < 0) return 'NXTTMFC_TABLE_FULL';
    for (let i = start; i < start + need; i++) this.chunks[i] = true;
    this.entries.set(index, { index, optClass, type, len, offset: start * 4 });
    return null;
  }

  delete(index: number): void {
    const e = this.entries.get(index);
    if (!e) return;
    for (let i = e.offset / 4; i < (e.offset + e.len) / 4; i++) this.chunks[i] = false;
    this.entries.delete(index);
  }

  clear(): void {
    this.entries.clear();
    this.chunks.fill(false);
  }

  allocated(): number {
    return this.chunks.filter(Boolean).length * 4;
  }
}

const byteLen = (v: bigint): number => (v === 0n ? 0 : Math.ceil(v.toString(16).length / 2));

function readBytes(f: Flow, offset: number, len: number): bigint {
  // The option space as bytes: word k holds bytes 4k..4k+3, most significant first.
  const all = getWords(f, W.tun_md, 64);
  return (all >> BigInt(8 * (256 - offset - len))) & ((1n << BigInt(8 * len)) - 1n);
}

function writeBytes(f: Flow, offset: number, len: number, v: bigint): void {
  const all = getWords(f, W.tun_md, 64);
  const shift = BigInt(8 * (256 - offset - len));
  const m = ((1n << BigInt(8 * len)) - 1n) << shift;
  setWords(f, W.tun_md, 64, (all & ~m) | ((v << shift) & m));
}

const presentBit = (idx: number): [number, number] => [W.tun_md_present + (idx >= 32 ? 0 : 1), 1 << (idx % 32)];

/** Match tun_metadataN (value and mask as parsed, any length) through the table. */
export function tunMetadataSet(m: { flow: Flow; wc: Flow }, idx: number, value: bigint, mask: bigint, tun: TunTable | null): void {
  const e = tun?.entries.get(idx);
  if (!e) throw new FieldError('NXFMFC_INVALID_TLV_FIELD');
  const ones = (1n << BigInt(8 * e.len)) - 1n;
  const n = Math.max(byteLen(value), mask === -1n ? 0 : byteLen(mask));
  let v = value;
  let mk = mask === -1n ? ones : mask;
  if (n > e.len) {
    v >>= BigInt(8 * (n - e.len));
    if (mask !== -1n) mk >>= BigInt(8 * (n - e.len));
  }
  writeBytes(m.flow, e.offset, e.len, v & mk & ones);
  writeBytes(m.wc, e.offset, e.len, mk & ones);
  const [word, bit] = presentBit(idx);
  m.flow[word] = (m.flow[word]! | bit) >>> 0;
  m.wc[word] = (m.wc[word]! | bit) >>> 0;
}

export function tunMetadataRead(f: Flow, idx: number, tun: TunTable | null): { value: bigint; len: number } | null {
  const e = tun?.entries.get(idx);
  if (!e) return null;
  return { value: readBytes(f, e.offset, e.len), len: e.len };
}

export function tunMetadataWrite(f: Flow, idx: number, tun: TunTable | null, value: bigint, mask: bigint | null): boolean {
  const e = tun?.entries.get(idx);
  if (!e) return false;
  const ones = (1n << BigInt(8 * e.len)) - 1n;
  const mk = (mask ?? ones) & ones;
  writeBytes(f, e.offset, e.len, (readBytes(f, e.offset, e.len) & ~mk) | (value & mk));
  const [word, bit] = presentBit(idx);
  f[word] = (f[word]! | bit) >>> 0;
  return true;
}

/**
 * A tun_metadata match as ovs-ofctl decodes it from a reply: it has no TLV map, so it takes each
 * option's length from its value and mask (their significant bytes), and a mask of all ones
 * over that length is exact (0x5/0xff prints as 0x5, 0x500/0xff00 stays masked).
 */
export function tunMetadataAsClient(m: { flow: Flow; wc: Flow }, tun: TunTable | null): void {
  for (const e of tun?.entries.values() ?? []) {
    const [word, bit] = presentBit(e.index);
    if ((m.wc[word]! & bit) === 0 || (m.flow[word]! & bit) === 0) continue;
    const mk = readBytes(m.wc, e.offset, e.len);
    const n = Math.max(byteLen(readBytes(m.flow, e.offset, e.len)), byteLen(mk), 1);
    if (mk === (1n << BigInt(8 * n)) - 1n) writeBytes(m.wc, e.offset, e.len, (1n << BigInt(8 * e.len)) - 1n);
  }
}

/** tun_metadata_match_format. */
export function tunMetadataFormat(m: { flow: Flow; wc: Flow }, tun: TunTable | null): string {
  let s = '';
  for (let idx = 0; idx < 64; idx++) {
    const [word, bit] = presentBit(idx);
    if ((m.wc[word]! & bit) === 0) continue;
    const e = tun?.entries.get(idx);
    if (!e) continue;
    s += `tun_metadata${idx}`;
    const mk = readBytes(m.wc, e.offset, e.len);
    const ones = (1n << BigInt(8 * e.len)) - 1n;
    if ((m.flow[word]! & bit) === 0) s += '=NP';
    else if (mk !== 0n) {
      s += `=${hexBytes(readBytes(m.flow, e.offset, e.len))}`;
      if (mk !== ones) s += `/${hexBytes(mk)}`;
    }
    s += ',';
  }
  return s;
}
