// The translation's state (OVS's struct xlate_ctx) and what goes in and out of a translation.
import { type FlowMod } from '../openflow/flowmod.js';
import { type Nat, type Ofpact, formatActions } from '../openflow/actions.js';
import { type Bridge, type Rule } from '../switch/bridge.js';
import { FLOW_WORDS, type Flow, W, getWords } from '../base/flow.js';
import { type OdpAction, commit } from './odp.js';
import { OFPP, type PortMap } from '../base/text.js';
import { type NodeType, type TraceNode } from './trace-tree.js';


export const MAX_DEPTH = 64;
export const MAX_RESUBMITS = 64 * 64;
export const REASON: Record<string, number> = { no_match: 0, action: 1, invalid_ttl: 2, action_set: 3, group: 4, packet_out: 5, explicit_miss: 6 };

/** How a tunnel output reaches its destination: a fabric's underlay, or nothing (no route). */
export interface Underlay {
  /** Can this host reach the tunnel destination? (the kernel-style tunnel output is used) */
  route(dst: number): boolean;
}

/** What a recirculation resumes with (OVS's frozen state). */
export interface FrozenState {
  bridge: Bridge;
  table: number;
  conntracked: boolean;
  actionSet: Ofpact[];
  stack: bigint[];
  /** The flow when frozen: its tunnel, metadata, registers and in_port come back on thaw. */
  flow: Flow;
  /** The rest of the translation, when it was frozen mid-way (else the thaw looks up `table`). */
  actions?: Ofpact[] | null;
}

export interface RecircNode {
  id: number;
  kind: 'conntrack' | 'other';
  flow: Flow;
  nat: Nat | null;
  zone: number;
}

export interface XlateIn {
  bridge: Bridge;
  flow: Flow;
  /** A real packet: side effects (learn, packet-ins sent, counters) happen. */
  packet: boolean;
  trace: boolean;
  /** Count rule and group hits (a packet of this many bytes). */
  stats?: { bytes: number } | null;
  /** Packet-out: these actions instead of a table lookup. */
  actions?: Ofpact[] | null;
  names?: boolean;
  underlay?: Underlay | null;
  /** Resume a recirculation (its frozen state is in the datapath, by flow recirc_id). */
  frozen?: FrozenState | null;
  /** The recirculations a trace will follow (ofproto/trace's queue). */
  recircQueue?: RecircNode[] | null;
  packetLength?: number;
}

export interface XlateOut {
  trace: TraceNode[];
  odp: OdpAction[];
  flow: Flow;
  /** The megaflow's mask: what the translation looked at (xlate_wc_init .. xlate_wc_finish). */
  wc: Flow;
  slowAction: boolean;
  error: string | null;
}

export const clone = (f: Flow): Flow => Uint32Array.from(f);

export function clearConntrack(f: Flow): void {
  for (const m of ['ct_state', 'ct_zone', 'ct_mark', 'ct_nw_proto', 'ct_nw_src', 'ct_nw_dst', 'ct_tp_src', 'ct_tp_dst'] as const) f[W[m]] = 0;
  for (let i = 0; i < 4; i++) {
    f[W.ct_label + i] = 0;
    f[W.ct_ipv6_src + i] = 0;
    f[W.ct_ipv6_dst + i] = 0;
  }
}

export function clearTunnel(f: Flow): void {
  for (let i = W.tun_dst; i < W.metadata; i++) f[i] = 0;
}

export const tunnelDstSet = (f: Flow): boolean => f[W.tun_dst] !== 0 || getWords(f, W.tun_ipv6_dst, 4) !== 0n;

export class Ctx {
  flow: Flow;
  base: Flow;
  odp: OdpAction[] = [];
  trace: TraceNode[] | null;
  readonly top: TraceNode[] = [];
  bridge: Bridge;
  tableId = 0;
  depth = 0;
  resubmits = 0;
  exit = false;
  error: string | null = null;
  conntracked = false;
  rule: Rule | null = null;
  ruleCookie = 0n;
  actionSet: Ofpact[] = [];
  actionSetHasGroup = false;
  inActionSet = false;
  stack: bigint[] = [];
  natAction: Nat | null = null;
  slowAction = false;
  /** ct_mark / ct_label bits set inside a ct action's exec (for the datapath ct action). */
  ctMarkMask = 0;
  ctLabelMask = 0n;
  readonly origSkbPriority: number;
  /** Bits looked at or written so far (the megaflow mask); set() actions are masked by it. */
  wc: Flow = new Uint32Array(FLOW_WORDS);
  /**
   * Freezing (ctx->freezing): a select group waiting for a datapath hash, or controller(pause),
   * stops the translation; what is left of it is saved as frozen actions for a recirculation.
   */
  freezing = false;
  /** Flows learned during the translation, installed after it. */
  learned: FlowMod[] = [];
  frozenActions: Ofpact[] = [];
  lastUnroll: Extract<Ofpact, { type: 'unroll_xlate' }> | null = null;
  freezeHash: { alg: 'l4' | 'sym_l4'; basis: number } | null = null;
  pause: Extract<Ofpact, { type: 'controller' }> | null = null;
  /** Recirculation ids this translation holds, by frozen state: identical states share one. */
  private readonly recircIds = new Map<string, number>();

  constructor(readonly xin: XlateIn) {
    this.bridge = xin.bridge;
    this.flow = clone(xin.flow);
    this.flow[W.actset_output] = OFPP.UNSET;
    this.base = clone(this.flow);
    clearTunnel(this.base);
    this.trace = xin.trace ? this.top : null;
    this.origSkbPriority = this.flow[W.skb_priority]!;
  }

  report(type: NodeType, text: string): TraceNode | null {
    if (!this.trace) return null;
    const n: TraceNode = { type, text, subs: [] };
    this.trace.push(n);
    return n;
  }

  ports(): PortMap | null {
    return this.xin.names ? this.bridge.portMap() : null;
  }

  /** recirc_alloc_id_ctx: an id for this frozen state (the same state gets the same id). */
  recircFor(table: number, extra = ''): number {
    const f = this.flow;
    const key = [this.bridge.name, table, this.conntracked, f.subarray(W.tun_dst, W.skb_priority).join('.'), f[W.in_port], this.stack.join('.'), formatActions(this.actionSet), extra].join('|');
    let id = this.recircIds.get(key);
    if (id === undefined) {
      id = this.bridge.datapath.allocRecirc();
      this.recircIds.set(key, id);
    }
    return id;
  }

  commit(): void {
    if (commit(this.flow, this.base, this.odp, this.wc).slowAction) this.slowAction = true;
  }

  /** Mark bits of a field as looked at or written. */
  touch(member: keyof typeof W, bits: number, words = 1): void {
    for (let i = 0; i < words; i++) this.wc[W[member] + i] = (this.wc[W[member] + i]! | bits) >>> 0;
  }
}
