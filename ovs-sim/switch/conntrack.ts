// Connection tracking, as the datapath's ct() action sees it: connections per zone keyed by
// their 5-tuple, a packet classified new / established / related / reply / invalid, commit with
// ct_mark and ct_label, and NAT bindings applied to the packets of a connection. A first TCP
// packet that is not a SYN is invalid, as OVS's userspace conntrack has it; a connection is
// established once a reply has been seen. Entries expire on the datapath's clock.
import type { Nat } from '../openflow/actions.js';
import type { Clock } from './datapath.js';
import { CS, ETH_TYPE, type Flow, IPPROTO, W, getWords, setWords } from '../base/flow.js';

interface Tuple {
  src: bigint;
  dst: bigint;
  sport: number;
  dport: number;
  proto: number;
  v6: boolean;
}

interface Conn {
  zone: number;
  orig: Tuple;
  /** The tuple replies carry (after NAT). */
  reply: Tuple;
  mark: number;
  label: bigint;
  replied: boolean;
  nat: 'src' | 'dst' | null;
  expires: number;
}

export interface CtRequest {
  zone: number;
  commit: boolean;
  force: boolean;
  mark: [number, number] | null;
  label: [bigint, bigint] | null;
  nat: Nat | null;
}

const TIMEOUT_MS = { tcp: 432_000_000, udp: 30_000, icmp: 30_000, other: 30_000 };

const keyOf = (zone: number, t: Tuple): string => `${zone}|${t.proto}|${t.src}|${t.sport}|${t.dst}|${t.dport}`;

function tupleOf(f: Flow): Tuple | null {
  const dl = f[W.dl_type];
  if (dl !== ETH_TYPE.IP && dl !== ETH_TYPE.IPV6) return null;
  const v6 = dl === ETH_TYPE.IPV6;
  const proto = f[W.nw_proto]!;
  const src = v6 ? getWords(f, W.ipv6_src, 4) : BigInt(f[W.nw_src]!);
  const dst = v6 ? getWords(f, W.ipv6_dst, 4) : BigInt(f[W.nw_dst]!);
  let sport = 0;
  let dport = 0;
  if (proto === IPPROTO.TCP || proto === IPPROTO.UDP || proto === IPPROTO.SCTP) {
    sport = f[W.tp_src]!;
    dport = f[W.tp_dst]!;
  } else if (proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6) {
    // Echo request and reply share a connection: key on the type pair, not the direction.
    sport = 0;
    dport = 0;
  }
  return { src, dst, sport, dport, proto, v6 };
}

const reverse = (t: Tuple): Tuple => ({ ...t, src: t.dst, dst: t.src, sport: t.dport, dport: t.sport });

function writeTuple(f: Flow, t: Tuple): void {
  if (t.v6) {
    setWords(f, W.ipv6_src, 4, t.src);
    setWords(f, W.ipv6_dst, 4, t.dst);
  } else {
    f[W.nw_src] = Number(t.src);
    f[W.nw_dst] = Number(t.dst);
  }
  if (t.proto === IPPROTO.TCP || t.proto === IPPROTO.UDP || t.proto === IPPROTO.SCTP) {
    f[W.tp_src] = t.sport;
    f[W.tp_dst] = t.dport;
  }
}

function isNewValid(f: Flow, t: Tuple): boolean {
  if (t.proto === IPPROTO.TCP) {
    const flags = f[W.tcp_flags]!;
    return (flags & 0x002) !== 0 && (flags & 0x010) === 0; // SYN without ACK
  }
  if (t.proto === IPPROTO.ICMP) return f[W.tp_src] === 8 || f[W.tp_src] === 13 || f[W.tp_src] === 15 || f[W.tp_src] === 17;
  if (t.proto === IPPROTO.ICMPV6) return f[W.tp_src] === 128;
  return true;
}

export class Conntrack {
  private readonly conns = new Map<string, { conn: Conn; dir: 'orig' | 'reply' }>();

  constructor(private readonly clock: Clock) {}

  get size(): number {
    return new Set([...this.conns.values()].map((e) => e.conn)).size;
  }

  private lookup(zone: number, t: Tuple): { conn: Conn; dir: 'orig' | 'reply' } | undefined {
    const e = this.conns.get(keyOf(zone, t));
    if (e && e.conn.expires <= this.clock.now()) {
      this.conns.delete(keyOf(zone, e.conn.orig));
      this.conns.delete(keyOf(zone, e.conn.reply));
      return undefined;
    }
    return e;
  }

  /**
   * Run a packet (its flow) through ct(): sets ct_state, ct_zone, ct_mark, ct_label and the
   * original-direction tuple, applies NAT to the headers, commits when asked.
   */
  execute(f: Flow, req: CtRequest): void {
    const t = tupleOf(f);
    f[W.ct_zone] = req.zone;
    if (!t) {
      f[W.ct_state] = CS.TRACKED | CS.INVALID;
      return;
    }
    let e = this.lookup(req.zone, t);
    let state: number = CS.TRACKED;
    if (!e) {
      if (!isNewValid(f, t)) {
        f[W.ct_state] = CS.TRACKED | CS.INVALID;
        return;
      }
      state |= CS.NEW;
      if (req.commit) {
        const conn: Conn = { zone: req.zone, orig: t, reply: reverse(t), mark: 0, label: 0n, replied: false, nat: null, expires: 0 };
        if (req.nat && (req.nat.src || req.nat.dst) && req.nat.af !== 0) {
          // NAT: the first address of the range, and its first port whose reply tuple no other
          // connection of the zone has (the first connection gets the first port, as OVS's
          // trace assumes; later ones the next free, as the datapath's conntrack does).
          const natted = { ...t };
          const { minPort, maxPort } = req.nat;
          const ported = minPort !== 0 && (t.proto === IPPROTO.TCP || t.proto === IPPROTO.UDP || t.proto === IPPROTO.SCTP);
          if (req.nat.src) {
            natted.src = req.nat.minAddr;
            if (ported) natted.sport = minPort;
            conn.nat = 'src';
          } else {
            natted.dst = req.nat.minAddr;
            if (ported) natted.dport = minPort;
            conn.nat = 'dst';
          }
          if (ported) {
            const last = Math.max(minPort, maxPort || minPort);
            const side = req.nat.src ? 'sport' : 'dport';
            while (natted[side] < last && this.conns.has(keyOf(req.zone, reverse(natted)))) natted[side] += 1;
          }
          conn.reply = reverse(natted);
        }
        this.conns.set(keyOf(req.zone, conn.orig), { conn, dir: 'orig' });
        this.conns.set(keyOf(req.zone, conn.reply), { conn, dir: 'reply' });
        e = { conn, dir: 'orig' };
      }
    } else if (e.dir === 'reply') {
      e.conn.replied = true;
      state |= CS.ESTABLISHED | CS.REPLY_DIR;
    } else {
      state |= e.conn.replied ? CS.ESTABLISHED : CS.NEW;
    }
    if (e) {
      const c = e.conn;
      if (req.commit) {
        if (req.mark) c.mark = ((c.mark & ~req.mark[1]) | (req.mark[0] & req.mark[1])) >>> 0;
        if (req.label) c.label = (c.label & ~req.label[1]) | (req.label[0] & req.label[1]);
      }
      const timeout = t.proto === IPPROTO.TCP ? TIMEOUT_MS.tcp : t.proto === IPPROTO.UDP ? TIMEOUT_MS.udp : t.proto === IPPROTO.ICMP || t.proto === IPPROTO.ICMPV6 ? TIMEOUT_MS.icmp : TIMEOUT_MS.other;
      c.expires = this.clock.now() + timeout;
      // NAT is applied when the ct action asks for it (nat, with or without a range).
      if (req.nat && c.nat) {
        if (e.dir === 'orig') writeTuple(f, reverse(c.reply));
        else writeTuple(f, reverse(c.orig));
        state |= c.nat === 'src' ? CS.SRC_NAT : CS.DST_NAT;
      }
      f[W.ct_mark] = c.mark;
      setWords(f, W.ct_label, 4, c.label);
      f[W.ct_nw_proto] = c.orig.proto;
      if (c.orig.v6) {
        setWords(f, W.ct_ipv6_src, 4, c.orig.src);
        setWords(f, W.ct_ipv6_dst, 4, c.orig.dst);
      } else {
        f[W.ct_nw_src] = Number(c.orig.src);
        f[W.ct_nw_dst] = Number(c.orig.dst);
      }
      f[W.ct_tp_src] = c.orig.sport;
      f[W.ct_tp_dst] = c.orig.dport;
    }
    f[W.ct_state] = state;
  }

  /** Forget every connection (ovs-appctl dpctl/flush-conntrack). */
  flush(): void {
    this.conns.clear();
  }

  /**
   * Forget the connections of a zone whose original-direction tuple matches (IPv4 source and
   * destination; absent: any), as `dpctl/flush-conntrack zone=N ct_nw_src=… ct_nw_dst=…` does.
   */
  flushZone(zone: number, filter: { src?: number; dst?: number } = {}): number {
    let n = 0;
    for (const [k, e] of this.conns) {
      const o = e.conn.orig;
      if (e.conn.zone !== zone || o.v6) continue;
      if (filter.src !== undefined && o.src !== BigInt(filter.src)) continue;
      if (filter.dst !== undefined && o.dst !== BigInt(filter.dst)) continue;
      this.conns.delete(k);
      if (e.dir === 'orig') n += 1;
    }
    return n;
  }
}
