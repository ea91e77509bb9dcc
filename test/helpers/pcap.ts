// Reads the frames of a classic pcap file (what netdev-dummy writes with options:tx_pcap).
import { existsSync, readFileSync } from 'node:fs';

export function readPcap(path: string): Buffer[] {
  if (!existsSync(path)) return [];
  const b = readFileSync(path);
  if (b.length < 24) return [];
  const le = b.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (off: number): number => (le ? b.readUInt32LE(off) : b.readUInt32BE(off));
  const frames: Buffer[] = [];
  for (let off = 24; off + 16 <= b.length;) {
    const len = u32(off + 8);
    if (off + 16 + len > b.length) break;
    frames.push(Buffer.from(b.subarray(off + 16, off + 16 + len)));
    off += 16 + len;
  }
  return frames;
}
