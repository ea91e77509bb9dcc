// The MACs of external next hops a controller did not give (`next_hop_mac` empty): the agent asks
// by ARP out of the external bridge (from this host's external MAC) and learns the reply, which
// the bridge sends up while the MAC is wanted (docs/nat.md). Requests repeat with backoff until
// answered; a learned MAC is kept while wanted and re-learned from any later reply (the upstream
// router changed). What is learned is an input of the owners that read it (`arp:<ip>`).
import { arpFrame, ipText, macText as macAt } from '../packets/frames.js';
import type { PacketIo } from './backend.js';
import { macText } from './fields.js';
import type { DataplaneLog } from './flow-dataplane.js';
import { OFPP_NORMAL } from './pipeline.js';

const ETH_ARP = 0x0806;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

interface Wanted {
  bridge: string;
  senderIp: string;
  senderMac: bigint;
  delay: number;
  timer: NodeJS.Timeout | null;
}

/** An ARP request for `target` from `senderMac`/`senderIp`, broadcast. */
export const arpRequest = (senderMac: bigint, senderIp: string, target: string): Buffer =>
  Buffer.from(arpFrame(1, macText(senderMac), senderIp, '00:00:00:00:00:00', target));

/** A gratuitous ARP (a request for its own address) announcing `ip` at `mac`. */
export const gratuitousArp = (mac: bigint, ip: string): Buffer => arpRequest(mac, ip, ip);

export class NextHopResolver {
  /** Next hop IP → its MAC, as learned. */
  readonly resolved = new Map<string, string>();
  private readonly wanted = new Map<string, Wanted>();
  private io: PacketIo | undefined;
  /** ARP replies taken and requests sent, for tests and metrics. */
  readonly counts = { requests: 0, learned: 0, ignored: 0 };

  constructor(private readonly changed: (ips: string[]) => void, private readonly log?: DataplaneLog) {}

  attach(io: PacketIo | undefined): void {
    this.io = io;
  }

  /** Resolve `ip` on `bridge`, asking as `senderIp`; nothing when already wanted. */
  want(ip: string, bridge: string, senderIp: string, senderMac: bigint): void {
    const w = this.wanted.get(ip);
    if (w && w.bridge === bridge && w.senderIp === senderIp) return;
    if (w?.timer) clearTimeout(w.timer);
    const fresh: Wanted = { bridge, senderIp, senderMac, delay: RETRY_MIN_MS, timer: null };
    this.wanted.set(ip, fresh);
    if (!this.resolved.has(ip)) this.ask(ip, fresh);
  }

  /** No longer needed: forget it (a later want asks again). */
  drop(ip: string): void {
    const w = this.wanted.get(ip);
    if (w?.timer) clearTimeout(w.timer);
    this.wanted.delete(ip);
    if (this.resolved.delete(ip)) this.changed([ip]);
  }

  private ask(ip: string, w: Wanted): void {
    if (this.wanted.get(ip) !== w || this.resolved.has(ip)) return;
    try {
      this.io?.packetOut(OFPP_NORMAL, arpRequest(w.senderMac, w.senderIp, ip), w.bridge);
      this.counts.requests += 1;
    } catch (e) {
      this.log?.warn('could not send an ARP request for an external next hop', { ip, bridge: w.bridge, error: String(e) });
    }
    w.timer = setTimeout(() => this.ask(ip, w), w.delay);
    w.timer.unref();
    w.delay = Math.min(w.delay * 2, RETRY_MAX_MS);
  }

  /** An ARP reply the external bridge sent up: learned when it answers for a wanted next hop. */
  learn(frame: Buffer): void {
    if (frame.length < 42 || frame.readUInt16BE(12) !== ETH_ARP || frame.readUInt16BE(20) !== 2) {
      this.counts.ignored += 1;
      return;
    }
    const ip = ipText(frame, 28);
    const mac = macAt(frame, 22);
    const w = this.wanted.get(ip);
    if (!w || (frame[22]! & 1) === 1 || mac === '00:00:00:00:00:00') {
      this.counts.ignored += 1;
      return;
    }
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    if (this.resolved.get(ip) === mac) return;
    this.resolved.set(ip, mac);
    this.counts.learned += 1;
    this.log?.info('external next hop resolved by ARP', { ip, mac, bridge: w.bridge });
    this.changed([ip]);
  }

  close(): void {
    for (const w of this.wanted.values()) if (w.timer) clearTimeout(w.timer);
    this.wanted.clear();
  }
}
