// Translation: a packet's walk through a bridge's tables, as OVS's ofproto-dpif-xlate does it.
// It runs the actions of each rule it hits on the flow, follows resubmit and goto_table (with
// OVS's miss rules and depth limits), patch ports into the peer bridge, groups, learn, conntrack
// with its recirculation, the action set; it produces the datapath actions in order and, when
// asked, the trace tree ofproto/trace prints.
import type { FlowMod } from '../openflow/flowmod.js';
import { hashOrder } from '../base/hmap.js';
import { bundleMember, hashFields, multipathLink } from '../openflow/multipath.js';
import { tunMetadataRead } from '../base/tlv.js';
import { type Ct, type Nat, type Ofpact, formatAction, formatActions } from '../openflow/actions.js';
import type { Bridge, BridgePort, Rule } from '../switch/bridge.js';
import { flowHashSymmetricL4, hashBoolean, hashBytes, hashInt, hashUint64 } from '../base/hash.js';
import { CS, ETH_TYPE, FLOW_WORDS, FRAG, type Flow, IPPROTO, TNL_F, VLAN_CFI, W, WIDTH, getWords, setWords } from '../base/flow.js';
import { fieldByName, prereqsOk, readField, writeField } from '../base/fields.js';
import type { Group } from '../switch/groups.js';
import { learnExecute } from '../openflow/learn.js';
import { Match, formatFieldValue, formatMatch } from '../openflow/match.js';
import { type OdpAction, commit } from './odp.js';
import { type Subfield, bitsMask, fieldBits, formatSubfield, readSubfield, readWhole, writeSubfield } from '../base/subfield.js';
import { OFPP, type PortMap, hexAlt, hexBytes, ipText, portText } from '../base/text.js';
import type { NodeType, TraceNode } from './trace-tree.js';

const MAX_DEPTH = 64;
const MAX_RESUBMITS = 64 * 64;
const REASON: Record<string, number> = { no_match: 0, action: 1, invalid_ttl: 2, action_set: 3, group: 4, packet_out: 5, explicit_miss: 6 };

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

const clone = (f: Flow): Flow => Uint32Array.from(f);

function clearConntrack(f: Flow): void {
  for (const m of ['ct_state', 'ct_zone', 'ct_mark', 'ct_nw_proto', 'ct_nw_src', 'ct_nw_dst', 'ct_tp_src', 'ct_tp_dst'] as const) f[W[m]] = 0;
  for (let i = 0; i < 4; i++) {
    f[W.ct_label + i] = 0;
    f[W.ct_ipv6_src + i] = 0;
    f[W.ct_ipv6_dst + i] = 0;
  }
}

function clearTunnel(f: Flow): void {
  for (let i = W.tun_dst; i < W.metadata; i++) f[i] = 0;
}

const tunnelDstSet = (f: Flow): boolean => f[W.tun_dst] !== 0 || getWords(f, W.tun_ipv6_dst, 4) !== 0n;

class Ctx {
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

// -- table lookups --

/**
 * The rule a packet hits in a table (rule_dpif_lookup_from_table). With the default table-miss
 * configuration a miss does not continue to the next table, whatever the caller.
 */
function lookupFromTable(ctx: Ctx, tableId: number, inPort: number): Rule | null {
  const f = ctx.flow;
  const oldTpSrc = f[W.tp_src]!;
  const oldTpDst = f[W.tp_dst]!;
  const oldInPort = f[W.in_port]!;
  // frag_handling "normal": fragments are looked up without transport ports.
  if (f[W.nw_frag]! & FRAG.ANY) {
    f[W.tp_src] = 0;
    f[W.tp_dst] = 0;
  }
  f[W.in_port] = inPort;
  const rule = ctx.bridge.table(tableId).lookup(f);
  f[W.tp_src] = oldTpSrc;
  f[W.tp_dst] = oldTpDst;
  f[W.in_port] = oldInPort;
  if (rule?.subtable) {
    const st = rule.subtable;
    for (let i = 0; i < st.idx.length; i++) ctx.wc[st.idx[i]!] = (ctx.wc[st.idx[i]!]! | st.mask[i]!) >>> 0;
  }
  return rule ?? null;
}

function reportTable(ctx: Ctx, rule: Rule | null, tableId: number): void {
  if (!ctx.trace) return;
  let s = `${String(tableId).padStart(2, ' ')}. `;
  // A miss hits the bridge's internal no-packet-in rule; OVS names it "No match." only when it
  // is the first bridge's, so in a bridge reached over a patch port it prints as the rule it is.
  if (!rule) s += ctx.bridge === ctx.xin.bridge ? 'No match.' : 'reg0=0x2, priority 0';
  else {
    s += formatMatch(rule.match(), 32768, ctx.ports(), ctx.bridge.tun);
    if (!s.endsWith(' ')) s += ', ';
    s += `priority ${rule.priority}`;
    if (rule.cookie !== 0n) s += `, cookie 0x${rule.cookie.toString(16)}`;
  }
  const n = ctx.report('table', s)!;
  ctx.trace = n.subs;
}

function creditRule(ctx: Ctx, rule: Rule): void {
  if (!ctx.xin.stats) return;
  rule.nPackets += 1;
  rule.nBytes += ctx.xin.stats.bytes;
  rule.used = ctx.bridge.now();
}

function resourceCheck(ctx: Ctx): boolean {
  if (ctx.depth >= MAX_DEPTH) {
    ctx.report('error', `over max translation depth ${MAX_DEPTH}`);
    ctx.error = 'Recursion too deep';
  } else if (ctx.resubmits >= MAX_RESUBMITS) {
    ctx.report('error', `over ${MAX_RESUBMITS} resubmit actions`);
    ctx.error = 'Too many resubmits';
  } else {
    return true;
  }
  return false;
}

function tupleSwap(f: Flow): void {
  const swap = (a: number, b: number, n = 1): void => {
    for (let i = 0; i < n; i++) {
      const t = f[a + i]!;
      f[a + i] = f[b + i]!;
      f[b + i] = t;
    }
  };
  swap(W.nw_proto, W.ct_nw_proto);
  if (f[W.dl_type] === ETH_TYPE.IP) {
    swap(W.nw_src, W.ct_nw_src);
    swap(W.nw_dst, W.ct_nw_dst);
  } else {
    swap(W.ipv6_src, W.ct_ipv6_src, 4);
    swap(W.ipv6_dst, W.ct_ipv6_dst, 4);
  }
  swap(W.tp_src, W.ct_tp_src);
  swap(W.tp_dst, W.ct_tp_dst);
}

function tableAction(ctx: Ctx, inPort: number, tableId: number, withCtOrig: boolean, last: boolean, xlator: Xlator): void {
  if (!resourceCheck(ctx)) return;
  const oldTable = ctx.tableId;
  ctx.tableId = tableId;
  if (withCtOrig) {
    const isIp = ctx.flow[W.dl_type] === ETH_TYPE.IP || ctx.flow[W.dl_type] === ETH_TYPE.IPV6;
    if (ctx.flow[W.ct_nw_proto] === 0 || !isIp) {
      ctx.report('error', 'resubmit(ct) with non-tracked or non-IP packet!');
      ctx.tableId = oldTable;
      return;
    }
    tupleSwap(ctx.flow);
  }
  const rule = lookupFromTable(ctx, tableId, inPort);
  if (withCtOrig) tupleSwap(ctx.flow);
  const oldTrace = ctx.trace;
  reportTable(ctx, rule, tableId);
  if (rule) creditRule(ctx, rule);
  recursively(ctx, rule, tableId <= oldTable, last, xlator);
  ctx.trace = oldTrace;
  ctx.tableId = oldTable;
}

type Xlator = (actions: Ofpact[], ctx: Ctx, last: boolean, groupBucket: boolean) => void;

function recursively(ctx: Ctx, rule: Rule | null, deepens: boolean, last: boolean, xlator: Xlator): void {
  const oldRule = ctx.rule;
  const oldCookie = ctx.ruleCookie;
  ctx.resubmits++;
  if (deepens) ctx.depth++;
  ctx.rule = rule;
  ctx.ruleCookie = rule?.cookie ?? 0n;
  xlator(rule?.actions ?? [], ctx, last, false);
  ctx.ruleCookie = oldCookie;
  ctx.rule = oldRule;
  if (deepens) ctx.depth--;
}

// -- output --

function port(ctx: Ctx, ofport: number): BridgePort | undefined {
  return ctx.bridge.ports.get(ofport);
}

function outputAction(ctx: Ctx, p: number, maxLen: number, last: boolean, groupBucket: boolean): void {
  switch (p) {
    case OFPP.IN_PORT:
      composeOutput(ctx, ctx.flow[W.in_port]!, last);
      break;
    case OFPP.TABLE:
      tableAction(ctx, ctx.flow[W.in_port]!, 0, false, false, doXlateActions);
      break;
    case OFPP.NORMAL:
      xlateNormal(ctx);
      break;
    case OFPP.FLOOD:
    case OFPP.ALL:
      flood(ctx, p === OFPP.ALL, last);
      break;
    case OFPP.CONTROLLER:
      controllerAction(ctx, maxLen, ctx.xin.actions && !ctx.rule ? 'packet_out' : groupBucket ? 'group' : ctx.inActionSet ? 'action_set' : 'action', 0, null);
      break;
    case OFPP.NONE:
      break;
    default:
      if (p !== ctx.flow[W.in_port]) composeOutput(ctx, p, last);
      else ctx.report('warn', 'skipping output to input port');
  }
}

/** FLOOD and ALL walk the bridge's xports hmap (hashed by OpenFlow port, filled in creation order). */
function flood(ctx: Ctx, all: boolean, last: boolean): void {
  const targets = hashOrder([...ctx.bridge.ports.values()], (x) => hashInt(x.ofport, 0)).filter((x) => x.ofport !== ctx.flow[W.in_port] && (all || !x.noFlood));
  targets.forEach((x, i) => composeOutput(ctx, x.ofport, last && i === targets.length - 1));
}

function composeOutput(ctx: Ctx, ofport: number, last: boolean): void {
  const xport = port(ctx, ofport);
  if (!xport) {
    ctx.report('warn', 'Nonexistent output port');
    return;
  }
  if (xport.noFwd) {
    ctx.report('detail', 'OFPPC_NO_FWD set, skipping output');
    return;
  }
  if (xport.type === 'patch') {
    patchOutput(ctx, xport, last);
    return;
  }
  const f = ctx.flow;
  if (xport.type === 'vxlan' || xport.type === 'geneve' || xport.type === 'gre') {
    const saved = getTunnel(f);
    if (!tunnelSend(ctx, xport)) {
      ctx.report('warn', 'Tunneling decided against output');
      setTunnel(f, saved);
      return;
    }
    const underlay = ctx.xin.underlay;
    if (!underlay) {
      // compose_output_action__ commits pending header changes before it builds the tunnel
      // push, so they stay in the datapath actions even when the route lookup then fails.
      ctx.commit();
      ctx.report('detail', 'output to native tunnel');
      ctx.report('warn', 'native tunnel routing failed');
      setTunnel(f, saved);
      return;
    }
    // A host on a simulated underlay: the kernel-tunnel form, set(tunnel(...)) then the vport.
    ctx.report('detail', 'output to kernel tunnel');
    if (!underlay.route(f[W.tun_dst]!)) {
      ctx.report('warn', 'native tunnel routing failed');
      setTunnel(f, saved);
      return;
    }
    ctx.odp.push({ t: 'tunnel', text: `set(${tunnelText(f, ctx)})` });
    ctx.commit();
    ctx.odp.push({ t: 'output', port: xport.odpPort!, name: xport.name, flow: clone(f) });
    setTunnel(f, saved);
    return;
  }
  ctx.commit();
  ctx.odp.push({ t: 'output', port: xport.odpPort!, name: xport.name, flow: clone(f) });
}

function getTunnel(f: Flow): Uint32Array {
  return f.slice(W.tun_dst, W.metadata);
}
function setTunnel(f: Flow, t: Uint32Array): void {
  f.set(t, W.tun_dst);
}

/** tnl_port_send: fill in the tunnel header fields from the port's options. */
function tunnelSend(ctx: Ctx, p: BridgePort): boolean {
  const f = ctx.flow;
  const opt = (k: string): string | undefined => p.options.get(k);
  const remote = opt('remote_ip');
  if (remote && remote !== 'flow') {
    const ip = remote.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    f[W.tun_dst] = ip >>> 0;
  }
  const local = opt('local_ip');
  if (local && local !== 'flow') f[W.tun_src] = local.split('.').reduce((a, o) => a * 256 + Number(o), 0) >>> 0;
  const key = opt('out_key') ?? opt('key');
  if (key && key !== 'flow') setWords(f, W.tun_id, 2, BigInt(key));
  if (!tunnelDstSet(f)) return false;
  let flags = TNL_F.DONT_FRAGMENT;
  if (p.type !== 'geneve' || key !== undefined) flags |= TNL_F.KEY;
  if (p.type === 'geneve') flags |= TNL_F.KEY;
  if (opt('csum') === 'true') flags |= TNL_F.CSUM;
  f[W.tun_flags] = (f[W.tun_flags]! & TNL_F.OAM) | flags;
  if (!f[W.tun_ttl]) f[W.tun_ttl] = 64;
  f[W.tun_tp_dst] = Number(opt('dst_port') ?? (p.type === 'vxlan' ? 4789 : p.type === 'geneve' ? 6081 : 0));
  return true;
}

function tunnelText(f: Flow, ctx: Ctx): string {
  const parts: string[] = [];
  const id = getWords(f, W.tun_id, 2);
  if (f[W.tun_flags]! & TNL_F.KEY) parts.push(`tun_id=${hexBytes(id)}`);
  if (f[W.tun_src]) parts.push(`src=${ipText(f[W.tun_src]!)}`);
  parts.push(`dst=${ipText(f[W.tun_dst]!)}`);
  if (f[W.tun_tos]) parts.push(`tos=0x${f[W.tun_tos]!.toString(16)}`);
  parts.push(`ttl=${f[W.tun_ttl]}`);
  if (f[W.tun_tp_dst]) parts.push(`tp_dst=${f[W.tun_tp_dst]}`);
  const md = [...ctx.bridge.tun.entries.values()].filter((e) => {
    const word = W.tun_md_present + (e.index >= 32 ? 0 : 1);
    return (f[word]! & (1 << (e.index % 32))) !== 0;
  });
  if (md.length) {
    const all = getWords(f, W.tun_md, 64);
    parts.push(`geneve(${md.map((e) => `{class=0x${e.optClass.toString(16)},type=0x${e.type.toString(16)},len=${e.len},0x${((all >> BigInt(8 * (256 - e.offset - e.len))) & bitsMask(8 * e.len)).toString(16)}}`).join('')})`);
  }
  const fl: string[] = [];
  if (f[W.tun_flags]! & TNL_F.DONT_FRAGMENT) fl.push('df');
  if (f[W.tun_flags]! & TNL_F.CSUM) fl.push('csum');
  if (f[W.tun_flags]! & TNL_F.KEY) fl.push('key');
  parts.push(`flags(${fl.join('|')})`);
  return `tunnel(${parts.join(',')})`;
}

function patchOutput(ctx: Ctx, inDev: BridgePort, last: boolean): void {
  const peerName = inDev.options.get('peer');
  const peerBridge = peerName ? findPeerBridge(ctx, peerName) : null;
  const outDev = peerBridge?.portByName(peerName!);
  // A patch port whose peer does not exist has no datapath port: the output goes nowhere, silently.
  if (!peerBridge || !outDev) return;
  const f = ctx.flow;
  const oldFlow = clone(f);
  const oldStack = ctx.stack;
  const oldActionSet = ctx.actionSet;
  const oldTrace = ctx.trace;
  const oldBridge = ctx.bridge;
  const oldConntracked = ctx.conntracked;
  ctx.stack = [];
  ctx.actionSet = [];
  f[W.in_port] = outDev.ofport;
  f[W.metadata] = 0;
  f[W.metadata + 1] = 0;
  clearTunnel(f);
  for (let i = 0; i < 16; i++) f[W.regs + i] = 0;
  f[W.actset_output] = OFPP.UNSET;
  ctx.conntracked = false;
  clearConntrack(f);
  const n = ctx.report('bridge', `bridge("${peerBridge.name}")`);
  if (n) ctx.trace = n.subs;
  ctx.bridge = peerBridge;
  tableAction(ctx, f[W.in_port]!, 0, false, last, cloneXlateActions);
  actionSetOrFreeze(ctx);
  ctx.trace = oldTrace;
  ctx.flow = oldFlow;
  ctx.bridge = oldBridge;
  ctx.actionSet = oldActionSet;
  ctx.stack = oldStack;
  ctx.conntracked = oldConntracked;
  ctx.exit = false;
  ctx.error = null;
}

function findPeerBridge(ctx: Ctx, portName: string): Bridge | null {
  const host = ctx.bridge.host;
  if (!host) return null;
  for (const b of host.bridges.values()) {
    const p = b.portByName(portName);
    if (p && p.type === 'patch') return b;
  }
  return null;
}

/** Actions whose effect can be undone by restoring the flow (no datapath clone needed). */
function reversible(actions: Ofpact[]): boolean {
  return actions.every((a) => !['ct', 'meter', 'nat', 'output_trunc'].includes(a.type));
}

const cloneXlateActions: Xlator = (actions, ctx, last) => {
  const oldStack = [...ctx.stack];
  const oldSet = [...ctx.actionSet];
  const oldFlow = clone(ctx.flow);
  if (reversible(actions) || last) {
    doXlateActions(actions, ctx, last, false);
    actionSetOrFreeze(ctx);
  } else {
    ctx.commit();
    const oldBase = clone(ctx.base);
    const oldConntracked = ctx.conntracked;
    const outer = ctx.odp;
    ctx.odp = [];
    doXlateActions(actions, ctx, true, false);
    actionSetOrFreeze(ctx);
    const inner = ctx.odp;
    ctx.odp = outer;
    if (inner.length) ctx.odp.push({ t: 'clone', actions: inner });
    ctx.conntracked = oldConntracked;
    ctx.base = oldBase;
  }
  ctx.actionSet = oldSet;
  ctx.stack = oldStack;
  ctx.flow = oldFlow;
};

// -- packet-ins --

function controllerAction(ctx: Ctx, maxLen: number, reason: string, controllerId: number, userdata: Uint8Array | null): void {
  ctx.commit();
  if (reason === 'action' && ctx.rule && isTableMiss(ctx.rule)) reason = 'explicit_miss';
  const recircId = ctx.recircFor(ctx.tableId, `controller:${userdata ? Buffer.from(userdata).toString('hex') : ''}`);
  ctx.odp.push({
    t: 'userspace', pid: 0, cookie: {
      reason: REASON[reason] ?? 1, dontSend: !ctx.xin.packet, continuation: false, recircId, ruleCookie: ctx.ruleCookie, controllerId, maxLen,
    }, flow: clone(ctx.flow), userdata, tableId: ctx.tableId, bridge: ctx.bridge.name,
  });
}

/** A table-miss rule: priority 0 and a catch-all match. */
function isTableMiss(r: Rule): boolean {
  return r.priority === 0 && (r.subtable?.idx.length ?? 0) === 0;
}

// -- L2 learning switch (the NORMAL action), for bridges that use it --

/** eth_addr_is_reserved: STP and other IEEE 802.1D, Extreme and Cisco protocol addresses. */
const RESERVED_MACS = new Set<bigint>([
  ...Array.from({ length: 16 }, (_, i) => 0x0180c2000000n + BigInt(i)),
  0x00e02b000000n, 0x00e02b000004n, 0x00e02b000006n,
  0x01000c000000n, 0x01000cccccccn, 0x01000ccccccdn, 0x01000ccdcdcdn,
  ...Array.from({ length: 8 }, (_, i) => 0x01000cccccc0n + BigInt(i)),
]);

function xlateNormal(ctx: Ctx): void {
  const inPort = port(ctx, ctx.flow[W.in_port]!);
  if (!inPort) {
    ctx.report('warn', 'no input bundle, dropping');
    return;
  }
  const f = ctx.flow;
  const dst = getWords(f, W.dl_dst, 2) & 0xffffffffffffn;
  const mac = ctx.bridge.macTable;
  const vlan = (f[W.vlan0]! & VLAN_CFI) ? f[W.vlan0]! & 0xfff : 0;
  const src = getWords(f, W.dl_src, 2) & 0xffffffffffffn;
  if (RESERVED_MACS.has(dst)) {
    ctx.report('detail', 'packet has reserved destination MAC, dropping');
    return;
  }
  // Learning is a side effect: only a packet (not a plain trace) learns, and says so.
  if (!(src >> 40n & 1n) && ctx.xin.packet && mac.get(`${vlan}/${src}`) !== inPort.ofport) {
    mac.set(`${vlan}/${src}`, inPort.ofport);
    ctx.report('detail', `learned that ${ethStr(src)} is on port ${inPort.name} in VLAN ${vlan}`);
  }
  const learned = (dst >> 40n) & 1n ? undefined : mac.get(`${vlan}/${dst}`);
  if (learned !== undefined && port(ctx, learned)) {
    if (learned === inPort.ofport) {
      ctx.report('detail', 'learned port is input port, dropping');
      return;
    }
    ctx.report('detail', 'forwarding to learned port');
    composeOutput(ctx, learned, false);
    return;
  }
  // (OVS says "multicast traffic" only with multicast snooping on, which the model has not.)
  ctx.report('detail', 'no learned MAC for destination, flooding');
  // xlate_normal_flood walks the bundles in creation order.
  const targets = [...ctx.bridge.ports.values()].filter((x) => x.ofport !== inPort.ofport && !x.noFlood && x.type !== 'patch');
  for (const t of targets) composeOutput(ctx, t.ofport, false);
}

const ethStr = (v: bigint): string => Array.from({ length: 6 }, (_, i) => ((v >> BigInt(8 * (5 - i))) & 0xffn).toString(16).padStart(2, '0')).join(':');

// -- groups --

function groupAction(ctx: Ctx, id: number, last: boolean): boolean {
  if (!resourceCheck(ctx)) return false;
  const g = ctx.bridge.groups.get(id);
  if (!g) {
    ctx.report('warn', `output to nonexistent group ${id}`);
    return true;
  }
  if (ctx.xin.stats) g.packets += 1;
  if (g.type === 'all' || g.type === 'indirect') {
    g.buckets.forEach((b, i) => {
      groupBucket(ctx, b, last && i === g.buckets.length - 1);
    });
    return false;
  }
  const bucket = g.type === 'select' ? pickSelect(ctx, g) : pickFastFailover(ctx, g);
  if (bucket) {
    ctx.report('detail', `using bucket ${bucket.id}`);
    groupBucket(ctx, bucket, last);
  } else {
    ctx.report('detail', 'no live bucket');
  }
  return false;
}

/** bucket_is_alive: a bucket with no watch is alive; else its watched port exists or its watched group has a live bucket. */
function bucketAlive(ctx: Ctx, g: Group, b: Bucket, depth = 0): boolean {
  if (depth >= 128) {
    ctx.report('error', 'bucket chaining exceeded 128 links');
    return false;
  }
  // In select groups a bucket of weight 0 is never used.
  if (g.type === 'select' && b.weight === 0) return false;
  const watchPort = b.watchPort ?? OFPP.NONE;
  const watchGroup = b.watchGroup ?? 0xffffffff;
  if (watchPort === OFPP.NONE && watchGroup === 0xffffffff) return true;
  if (watchPort !== OFPP.NONE && watchPort !== OFPP.CONTROLLER && port(ctx, watchPort)) return true;
  if (watchGroup !== 0xffffffff) {
    const wg = ctx.bridge.groups.get(watchGroup);
    if (wg && firstLiveBucket(ctx, wg, depth + 1)) return true;
  }
  // A CONTROLLER watch is alive only with a controller connected, which a simulated switch has not.
  return false;
}

/** group_first_live_bucket, saying why each bucket before it is not live. */
function firstLiveBucket(ctx: Ctx, g: Group, depth: number): Bucket | null {
  for (const b of g.buckets) {
    if (bucketAlive(ctx, g, b, depth)) return b;
    const why: string[] = [];
    if (b.watchPort !== null && b.watchPort !== OFPP.NONE) why.push(`port ${portText(b.watchPort)}`);
    // (OVS says "port" for a watched group too.)
    if (b.watchGroup !== null && b.watchGroup !== 0xffffffff) why.push(`port ${b.watchGroup}`);
    ctx.report('detail', `bucket ${b.id}: not live due to ${why.join(' and ')}`);
  }
  return null;
}

function pickFastFailover(ctx: Ctx, g: Group): Bucket | null {
  return firstLiveBucket(ctx, g, 0);
}

/** selection_method=hash with fields: hash the fields' masked values (pick_hash_fields_select_group). */
function hashFieldsBasis(ctx: Ctx, g: Group): number {
  let basis = hashUint64(g.selectionParam);
  for (const { field, mask } of g.fields) {
    if (!prereqsOk(field.prereq, ctx.flow)) continue;
    const v = readField(ctx.flow, field) & mask;
    const bytes = new Uint8Array(field.nBytes);
    for (let i = 0; i < field.nBytes; i++) bytes[i] = Number((v >> BigInt(8 * (field.nBytes - 1 - i))) & 0xffn);
    basis = hashBytes(bytes, basis);
    if (field.tunMetadata !== undefined) basis = hashBoolean(tunMetadataRead(ctx.flow, field.tunMetadata, ctx.bridge.tun) !== null, basis);
    writeField(ctx.wc, field, readField(ctx.wc, field) | mask);
  }
  return basis;
}

type Bucket = Group['buckets'][number];

/**
 * group_setup_dp_hash_table: spread 16 or more hash values over the buckets by weight (Webster's
 * method); null when that needs more than `max` values (or 256), or no bucket has weight.
 */
function dpHashTable(g: Group, max: number): Bucket[] | null {
  if (g.buckets.length === 0) return null;
  let total = 0;
  let minWeight = 0xffff;
  for (const b of g.buckets) {
    if (b.weight > 0 && b.weight < minWeight) minWeight = b.weight;
    total += b.weight;
  }
  if (total === 0) return null;
  const minSlots = Math.ceil(total / minWeight);
  let pow2 = 1;
  while (pow2 < minSlots) pow2 *= 2;
  const nHash = Math.max(16, pow2);
  if (nHash > 256 || (max !== 0 && nHash > max)) return null;
  const web = g.buckets.map((b) => ({ b, divisor: 1, value: b.weight }));
  const map: Bucket[] = [];
  for (let h = 0; h < nHash; h++) {
    let winner = web[0]!;
    for (let i = 1; i < web.length; i++) if (web[i]!.value > winner.value) winner = web[i]!;
    winner.divisor += 2;
    winner.value = winner.b.weight / winner.divisor;
    map.push(winner.b);
  }
  return map;
}

/** group_set_selection_method: without a method, dp_hash when 64 hash values will do. */
function selectMethod(g: Group): { kind: 'default' | 'hash' } | { kind: 'dp_hash'; alg: 'l4' | 'sym_l4'; basis: number; map: Bucket[] } {
  if (g.selectionMethod === '') {
    const map = dpHashTable(g, 64);
    return map ? { kind: 'dp_hash', alg: 'sym_l4', basis: 0, map } : { kind: 'default' };
  }
  if (g.selectionMethod === 'dp_hash') {
    const map = dpHashTable(g, 0);
    const alg = Number(g.selectionParam >> 32n) === 1 ? 'sym_l4' : 'l4';
    return map ? { kind: 'dp_hash', alg, basis: Number(g.selectionParam & 0xffffffffn), map } : { kind: 'default' };
  }
  return { kind: g.fields.length > 0 ? 'hash' : 'default' };
}

function pickSelect(ctx: Ctx, g: Group): Bucket | null {
  const method = selectMethod(g);
  if (method.kind === 'dp_hash') {
    const h = ctx.flow[W.dp_hash]!;
    // No hash yet: have the datapath compute one and recirculate (the group runs again then).
    if (h === 0) {
      ctx.freezeHash = { alg: method.alg, basis: method.basis };
      triggerFreeze(ctx);
      return null;
    }
    const mask = method.map.length - 1;
    ctx.wc[W.dp_hash] = (ctx.wc[W.dp_hash]! | mask) >>> 0;
    for (let i = 0; i <= mask; i++) {
      const b = method.map[(h + i) & mask]!;
      if (bucketAlive(ctx, g, b)) return b;
    }
    return null;
  }
  const basis = method.kind === 'hash' ? hashFieldsBasis(ctx, g) : flowHashSymmetricL4(ctx.flow, 0);
  let best: Group['buckets'][number] | null = null;
  let bestScore = 0;
  for (const b of g.buckets) {
    if (bucketAlive(ctx, g, b)) {
      const score = (hashInt(b.id, basis) & 0xffff) * b.weight;
      if (score >= bestScore) {
        best = b;
        bestScore = score;
      }
      ctx.report('detail', `bucket ${b.id}: score ${score}`);
    } else {
      ctx.report('detail', `bucket ${b.id}: not live due to watch_port`);
    }
  }
  return best;
}

function groupBucket(ctx: Ctx, b: Bucket, last: boolean): void {
  const oldTrace = ctx.trace;
  const n = ctx.report('bucket', `bucket ${b.id}`);
  if (n) ctx.trace = n.subs;
  const oldFlow = clone(ctx.flow);
  b.packets += ctx.xin.stats ? 1 : 0;
  ctx.depth++;
  doXlateActions(actionSetOrder(b.actions), ctx, last, true);
  ctx.depth--;
  if (ctx.freezing) finishFreezing(ctx);
  ctx.flow = oldFlow;
  ctx.exit = false;
  ctx.trace = oldTrace;
}

/** An action set's actions in the order OpenFlow executes them (ofpacts_execute_action_set). */
function actionSetOrder(set: Ofpact[]): Ofpact[] {
  const order: Ofpact['type'][][] = [
    ['strip_vlan'], ['push_vlan'], ['dec_ttl'], ['set_vlan_vid', 'set_vlan_pcp', 'set_eth_src', 'set_eth_dst', 'set_ipv4_src', 'set_ipv4_dst', 'set_ip_dscp', 'set_ip_ecn', 'set_ip_ttl', 'set_l4_src_port', 'set_l4_dst_port', 'set_field', 'set_tunnel', 'reg_move'],
    ['set_queue'],
  ];
  const out: Ofpact[] = [];
  for (const types of order) out.push(...set.filter((a) => types.includes(a.type)));
  const group = set.find((a) => a.type === 'group');
  const output: Ofpact[] = set.filter((a) => a.type === 'output' || a.type === 'output_reg' || a.type === 'output_trunc' || a.type === 'controller' || a.type === 'enqueue');
  const rest = set.filter((a) => !order.flat().includes(a.type) && a.type !== 'group' && !output.includes(a));
  out.push(...rest);
  if (group) out.push(group);
  else if (output.length) out.push(output[output.length - 1]!);
  return out;
}

function writeActions(ctx: Ctx, actions: Ofpact[]): void {
  if (!ctx.actionSetHasGroup) {
    for (const a of actions) {
      if (a.type === 'output') ctx.flow[W.actset_output] = a.port;
      else if (a.type === 'group') {
        ctx.flow[W.actset_output] = OFPP.UNSET;
        ctx.actionSetHasGroup = true;
        break;
      }
    }
  }
  // Later writes of the same kind replace earlier ones.
  for (const a of actions) {
    const same = (b: Ofpact): boolean => b.type === a.type && (a.type !== 'set_field' || (b as typeof a).field === a.field);
    ctx.actionSet = ctx.actionSet.filter((b) => !same(b));
    ctx.actionSet.push(a);
  }
}

function reportActionSet(ctx: Ctx, verb: string): void {
  if (!ctx.trace) return;
  const list = actionSetOrder(ctx.actionSet);
  ctx.report('detail', list.length ? `action set ${verb}: ${formatActions(list)}` : `action set ${verb} empty`);
}

function actionSet(ctx: Ctx): void {
  const list = actionSetOrder(ctx.actionSet);
  ctx.actionSet = [];
  if (list.length === 0) return;
  ctx.inActionSet = true;
  const oldTrace = ctx.trace;
  const n = ctx.report('table', '--. Executing action set:');
  if (n) ctx.trace = n.subs;
  doXlateActions(list, ctx, true, false);
  ctx.trace = oldTrace;
  ctx.inActionSet = false;
}

// -- conntrack --

function conntrackAction(ctx: Ctx, ct: Ct, last: boolean): void {
  const zone = ct.zoneSrc ? Number(readSubfield(ctx.flow, ct.zoneSrc, ctx.bridge.tun)) : ct.zoneImm;
  ctx.commit();
  ctx.natAction = null;
  ctx.ctMarkMask = 0;
  ctx.ctLabelMask = 0n;
  doXlateActions(ct.actions, ctx, last, false);
  const f = ctx.flow;
  const label = getWords(f, W.ct_label, 4);
  ctx.odp.push({
    t: 'ct', commit: ct.commit && !ct.force, force: ct.force, zone,
    mark: ctx.ctMarkMask ? [(f[W.ct_mark]! & ctx.ctMarkMask) >>> 0, ctx.ctMarkMask >>> 0] : null,
    label: ctx.ctLabelMask ? [label & ctx.ctLabelMask, ctx.ctLabelMask] : null,
    helper: ct.alg === 21 ? 'ftp' : ct.alg === 69 ? 'tftp' : null, nat: ctx.natAction, flow: clone(f),
  });
  if (ct.table !== null) {
    ctx.conntracked = true;
    recirculate(ctx, ct.table, zone, 'conntrack');
  }
  ctx.natAction = null;
  clearConntrack(ctx.flow);
  ctx.report('detail', 'Sets the packet to an untracked state, and clears all the conntrack fields.');
  ctx.conntracked = false;
}

function recirculate(ctx: Ctx, table: number, zone: number, kind: 'conntrack' | 'other'): void {
  const id = ctx.recircFor(table, `${kind}:${zone}:${ctx.odp.length}`);
  const state: FrozenState = { bridge: ctx.bridge, table, conntracked: ctx.conntracked, actionSet: [...ctx.actionSet], stack: [...ctx.stack], flow: clone(ctx.flow) };
  ctx.bridge.datapath.frozen.set(id, state);
  ctx.odp.push({ t: 'recirc', id });
  if (ctx.xin.recircQueue) {
    const f = clone(ctx.flow);
    f[W.recirc_id] = id;
    f[W.ct_zone] = zone;
    ctx.xin.recircQueue.push({ id, kind, flow: f, nat: ctx.natAction, zone });
    if (kind === 'conntrack') ctx.report('detail', `A clone of the packet is forked to recirculate. The forked pipeline will be resumed at table ${table}.`);
  }
}

// -- the actions --

function reportSubfield(ctx: Ctx, sf: Subfield): void {
  if (!ctx.trace) return;
  let v: string;
  if (sf.ofs === 0 && sf.nBits >= fieldBits(sf.field, ctx.bridge.tun)) v = formatFieldValue(sf.field, readWhole(ctx.flow, sf.field, ctx.bridge.tun), null);
  else v = hexBytes(readSubfield(ctx.flow, sf, ctx.bridge.tun));
  ctx.report('detail', `${formatSubfield(sf, ctx.bridge.tun)} is now ${v}`);
}

const isIpAny = (f: Flow): boolean => f[W.dl_type] === ETH_TYPE.IP || f[W.dl_type] === ETH_TYPE.IPV6;

function decTtl(ctx: Ctx, ids: number[] | null): boolean {
  const f = ctx.flow;
  if (!isIpAny(f)) return false;
  ctx.touch('nw_ttl', 0xff);
  if (f[W.nw_ttl]! > 1) {
    f[W.nw_ttl] = f[W.nw_ttl]! - 1;
    return false;
  }
  for (const id of ids ?? [0]) controllerAction(ctx, 65535, 'invalid_ttl', id, null);
  ctx.report('warn', `IPv${f[W.dl_type] === ETH_TYPE.IP ? 4 : 6} decrement TTL exception`);
  return true;
}

function learnAction(ctx: Ctx, l: Extract<Ofpact, { type: 'learn' }>): void {
  // learn_mask: the fields a learn reads are part of the megaflow, learning or not.
  for (const sp of l.specs) if (sp.src) writeSubfield(ctx.wc, sp.src, bitsMask(sp.src.nBits), ctx.bridge.tun);
  if (!ctx.xin.packet) {
    ctx.report('warn', 'suppressing side effects, so learn action ignored');
    return;
  }
  const tun = ctx.bridge.tun;
  const learned = learnExecute(l, ctx.flow, tun);
  const m = new Match();
  for (const s of learned.matchSets) {
    writeSubfield(m.flow, s.dst, s.value, tun);
    writeSubfield(m.wc, s.dst, bitsMask(s.dst.nBits), tun);
  }
  // match_add_ethernet_prereq is implicit: packet_type is always Ethernet here.
  const actions: Ofpact[] = [];
  if (l.finIdle || l.finHard) actions.push({ type: 'fin_timeout', idle: l.finIdle, hard: l.finHard });
  for (const ld of learned.loads) {
    actions.push({ type: 'set_field', field: ld.dst.field, value: ld.value << BigInt(ld.dst.ofs), mask: bitsMask(ld.dst.nBits) << BigInt(ld.dst.ofs), load: true });
  }
  for (const p of learned.outputs) actions.push({ type: 'output', port: p, maxLen: 0 });
  if (ctx.trace) {
    let s = `table=${l.table} ${formatMatch(m, 32768, null, tun)}`.replace(/ $/, '');
    s += ` priority=${l.priority}`;
    if (l.cookie) s += ` cookie=0x${l.cookie.toString(16)}`;
    if (l.idle) s += ` idle=${l.idle}`;
    if (l.hard) s += ` hard=${l.hard}`;
    if (l.sendFlowRem) s += ' send_flow_rem';
    s += ` actions=${formatActions(actions)}`;
    ctx.report('detail', s);
  }
  let success = true;
  const t = ctx.bridge.table(l.table);
  if (l.limit) {
    const st = t.subtableFor(m.wc);
    const existing = [...t.rules()].filter((r) => r.cookie === l.cookie).length;
    if (existing >= l.limit && !t.findExact(st, [...st.idx].map((i, k) => (m.flow[i]! & st.mask[k]!) >>> 0), l.priority)) success = false;
  }
  if (success) {
    // Installed when the translation ends: this translation looks at the tables as they were
    // when it started (OVS's tables version), so a flow learned now is not visible to it.
    ctx.learned.push({
      command: 'modify_strict', match: m, priority: l.priority, table: l.table, cookie: 0n, cookieMask: 0n, newCookie: l.cookie,
      modifyCookie: true, mayAdd: true, idle: l.idle, hard: l.hard, importance: 0, flags: l.sendFlowRem ? 1 : 0,
      outPort: OFPP.NONE, outGroup: 0xffffffff, actions, usable: { p: 0x1ff },
    });
  }
  if (l.resultDst) {
    writeSubfield(ctx.flow, l.resultDst, success ? 1n : 0n, tun);
    reportSubfield(ctx, l.resultDst);
  }
  if (ctx.trace && !success) ctx.report('detail', 'Limit exceeded, learn failed');
}

function setFieldAction(ctx: Ctx, a: Extract<Ofpact, { type: 'set_field' }>): void {
  const f = ctx.flow;
  const mf = a.field;
  if (!prereqsOk(mf.prereq, f)) {
    ctx.report('warn', `unmet prerequisites for ${mf.name}, set_field ignored`);
    return;
  }
  if (mf.tunMetadata !== undefined) {
    writeSubfield(f, { field: mf, ofs: 0, nBits: fieldBits(mf, ctx.bridge.tun) }, a.value & a.mask, ctx.bridge.tun);
    return;
  }
  if (mf.name === 'vlan_vid' || mf.name === 'vlan_tci' || mf.name === 'vlan_pcp' || mf.name === 'dl_vlan' || mf.name === 'dl_vlan_pcp') {
    if (!f[W.vlan0]! || (f[W.vlan0]! >>> 16) === 0) f[W.vlan0] = (f[W.vlan0]! & 0xffff) | (ETH_TYPE.VLAN << 16);
  }
  if (mf.name === 'ct_mark') ctx.ctMarkMask |= Number(a.mask);
  if (mf.name === 'ct_label') ctx.ctLabelMask |= a.mask;
  writeField(f, mf, a.value, a.mask);
  writeField(ctx.wc, mf, a.mask, a.mask);
  if (mf.name === 'vlan_tci' && (Number(a.value & a.mask) & VLAN_CFI) === 0 && (Number(a.mask) & VLAN_CFI)) {
    // A TCI without CFI means no tag.
    f[W.vlan0] = f[W.vlan1]!;
    f[W.vlan1] = 0;
  }
}

function moveAction(ctx: Ctx, a: Extract<Ofpact, { type: 'reg_move' }>): void {
  const tun = ctx.bridge.tun;
  const v = readSubfield(ctx.flow, a.src, tun);
  if (a.dst.field.name === 'ct_mark') ctx.ctMarkMask |= Number(bitsMask(a.dst.nBits) << BigInt(a.dst.ofs));
  if (a.dst.field.name === 'ct_label') ctx.ctLabelMask |= bitsMask(a.dst.nBits) << BigInt(a.dst.ofs);
  writeSubfield(ctx.flow, a.dst, v, tun);
  writeSubfield(ctx.wc, a.dst, bitsMask(a.dst.nBits), tun);
  writeSubfield(ctx.wc, a.src, bitsMask(a.src.nBits), tun);
  reportSubfield(ctx, a.dst);
}

function popVlan(f: Flow): void {
  f[W.vlan0] = f[W.vlan1]!;
  f[W.vlan1] = 0;
}

function pushVlan(f: Flow, tpid: number): void {
  f[W.vlan1] = f[W.vlan0]!;
  f[W.vlan0] = ((tpid << 16) | VLAN_CFI) >>> 0;
}

// -- freezing --

function triggerFreeze(ctx: Ctx): void {
  ctx.exit = true;
  ctx.freezing = true;
}

function cancelFreeze(ctx: Ctx): void {
  ctx.freezing = false;
  ctx.frozenActions = [];
  ctx.lastUnroll = null;
  ctx.freezeHash = null;
  ctx.pause = null;
}

/** freeze_unroll_actions: keep the actions from `from` on, with the table and cookie packet-ins need. */
function freezeUnroll(ctx: Ctx, list: Ofpact[], from: number): void {
  const unroll = (): void => {
    if (ctx.lastUnroll && ctx.lastUnroll.table === ctx.tableId && ctx.lastUnroll.cookie === ctx.ruleCookie) return;
    ctx.lastUnroll = { type: 'unroll_xlate', table: ctx.tableId, cookie: ctx.ruleCookie };
    ctx.frozenActions.push(ctx.lastUnroll);
  };
  for (let j = from; j < list.length; j++) {
    const a = list[j]!;
    switch (a.type) {
      case 'output': case 'output_reg': case 'output_trunc': case 'group': case 'controller': case 'dec_ttl':
        unroll();
        break;
      case 'resubmit':
        if (a.table === 255) unroll();
        break;
      case 'goto_table':
        ctx.frozenActions.push({ type: 'resubmit', inPort: OFPP.IN_PORT, table: a.table, ct: false, short: false });
        continue;
      case 'write_metadata': {
        const mf = fieldByName('metadata')!;
        ctx.frozenActions.push({ type: 'set_field', field: mf, value: a.metadata, mask: a.mask, load: false });
        continue;
      }
      case 'note': case 'conjunction':
        continue;
      default:
        break;
    }
    ctx.frozenActions.push(a);
  }
}

/** finish_freezing: commit, then recirculate (after a hash, or as a paused packet-in) into the frozen actions. */
function finishFreezing(ctx: Ctx): void {
  ctx.commit();
  const actions = [...ctx.frozenActions];
  const id = ctx.recircFor(0, `frozen:${formatActions(actions)}:${ctx.pause ? 'pause' : ''}`);
  ctx.bridge.datapath.frozen.set(id, { bridge: ctx.bridge, table: 0, conntracked: ctx.conntracked, actionSet: [...ctx.actionSet], stack: [...ctx.stack], flow: clone(ctx.flow), actions });
  if (ctx.pause) {
    // A paused packet-in is a side effect: a plain trace sends nothing.
    if (ctx.xin.packet) {
      const p = ctx.pause;
      ctx.odp.push({
        t: 'userspace', pid: 0, cookie: {
          reason: REASON[p.reason] ?? 1, dontSend: false, continuation: true, recircId: id, ruleCookie: ctx.ruleCookie, controllerId: p.id, maxLen: p.maxLen,
        }, flow: clone(ctx.flow), userdata: p.userdata, tableId: ctx.tableId, bridge: ctx.bridge.name,
      });
    }
  } else {
    if (ctx.freezeHash) ctx.odp.push({ t: 'hash', ...ctx.freezeHash });
    ctx.odp.push({ t: 'recirc', id });
  }
  cancelFreeze(ctx);
}

/** The action set at the end of a pipeline, unless the translation froze (then it is frozen too). */
function actionSetOrFreeze(ctx: Ctx): void {
  if (!ctx.freezing) actionSet(ctx);
  if (ctx.freezing) finishFreezing(ctx);
}

function doXlateActions(list: Ofpact[], ctx: Ctx, isLast: boolean, groupBucket: boolean): void {
  if (list.length === 0) {
    ctx.report('action', 'drop');
    return;
  }
  for (let i = 0; i < list.length; i++) {
    const a = list[i]!;
    const flow = ctx.flow;
    const last = isLast && i === list.length - 1 && ctx.actionSet.length === 0;
    if (ctx.error) break;
    if (ctx.exit) {
      if (ctx.freezing) freezeUnroll(ctx, list, i);
      break;
    }
    if (ctx.trace) ctx.report('action', formatAction(a, { ports: ctx.ports(), tun: ctx.bridge.tun }));
    let next = i;
    switch (a.type) {
      case 'output':
        outputAction(ctx, a.port, a.maxLen, last, groupBucket);
        break;
      case 'output_reg': {
        const p = readSubfield(flow, a.src, ctx.bridge.tun);
        if (p <= 0xffffn) {
          ctx.report('detail', `output port is ${p}`);
          outputAction(ctx, Number(p), a.maxLen, last, groupBucket);
        } else {
          ctx.report('warn', `output port ${p} is out of range`);
        }
        break;
      }
      case 'output_trunc':
        if ([OFPP.TABLE, OFPP.NORMAL, OFPP.FLOOD, OFPP.ALL, OFPP.CONTROLLER, OFPP.NONE].includes(a.port as never)) {
          ctx.report('warn', `output_trunc does not support port: ${a.port}`);
        } else {
          const p = a.port === OFPP.IN_PORT ? flow[W.in_port]! : a.port;
          const xp = port(ctx, p);
          if (xp && xp.type === 'patch') ctx.report('error', `output_trunc does not support patch port ${xp.name}`);
          else if (p !== flow[W.in_port] || a.port === OFPP.IN_PORT) {
            ctx.commit();
            ctx.odp.push({ t: 'trunc', maxLen: a.maxLen });
            composeOutput(ctx, p, last);
          }
        }
        break;
      case 'group':
        if (groupAction(ctx, a.groupId, last)) return;
        break;
      case 'controller':
        if (a.pause) {
          ctx.pause = a;
          triggerFreeze(ctx);
          next = i + 1;
        } else {
          controllerAction(ctx, a.maxLen, a.reason, a.id, a.userdata);
        }
        break;
      case 'unroll_xlate':
        ctx.tableId = a.table;
        ctx.ruleCookie = a.cookie;
        break;
      case 'enqueue': {
        const p = a.port === OFPP.IN_PORT ? flow[W.in_port]! : a.port;
        if (a.port !== OFPP.IN_PORT && a.port === flow[W.in_port]) break;
        const saved = flow[W.skb_priority]!;
        flow[W.skb_priority] = a.queue;
        composeOutput(ctx, p, last);
        ctx.flow[W.skb_priority] = saved;
        break;
      }
      case 'set_vlan_vid':
        if ((flow[W.vlan0]! & VLAN_CFI) || a.push) {
          if (!(flow[W.vlan0]! >>> 16)) flow[W.vlan0] = (flow[W.vlan0]! & 0xffff) | (ETH_TYPE.VLAN << 16);
          flow[W.vlan0] = ((flow[W.vlan0]! & ~0x0fff) | a.vid | VLAN_CFI) >>> 0;
        }
        break;
      case 'set_vlan_pcp':
        if ((flow[W.vlan0]! & VLAN_CFI) || a.push) {
          if (!(flow[W.vlan0]! >>> 16)) flow[W.vlan0] = (flow[W.vlan0]! & 0xffff) | (ETH_TYPE.VLAN << 16);
          flow[W.vlan0] = ((flow[W.vlan0]! & ~0xe000) | (a.pcp << 13) | VLAN_CFI) >>> 0;
        }
        break;
      case 'strip_vlan':
        popVlan(flow);
        break;
      case 'push_vlan':
        pushVlan(flow, a.ethertype);
        break;
      case 'set_eth_src':
        setWords(flow, W.dl_src, 2, a.mac);
        ctx.touch('dl_src', 0xffffffff, 2);
        break;
      case 'set_eth_dst':
        setWords(flow, W.dl_dst, 2, a.mac);
        ctx.touch('dl_dst', 0xffffffff, 2);
        break;
      case 'set_ipv4_src':
        if (flow[W.dl_type] === ETH_TYPE.IP) { flow[W.nw_src] = a.ip; ctx.touch('nw_src', 0xffffffff); }
        break;
      case 'set_ipv4_dst':
        if (flow[W.dl_type] === ETH_TYPE.IP) { flow[W.nw_dst] = a.ip; ctx.touch('nw_dst', 0xffffffff); }
        break;
      case 'set_ip_dscp':
        if (isIpAny(flow)) { flow[W.nw_tos] = (flow[W.nw_tos]! & 0x03) | a.dscp; ctx.touch('nw_tos', 0xfc); }
        break;
      case 'set_ip_ecn':
        if (isIpAny(flow)) { flow[W.nw_tos] = (flow[W.nw_tos]! & 0xfc) | a.ecn; ctx.touch('nw_tos', 0x03); }
        break;
      case 'set_ip_ttl':
        if (isIpAny(flow)) { flow[W.nw_ttl] = a.ttl; ctx.touch('nw_ttl', 0xff); }
        break;
      case 'set_l4_src_port':
      case 'set_l4_dst_port':
        if (isIpAny(flow) && !(flow[W.nw_frag]! & FRAG.LATER)) {
          flow[a.type === 'set_l4_src_port' ? W.tp_src : W.tp_dst] = a.port;
          ctx.touch(a.type === 'set_l4_src_port' ? 'tp_src' : 'tp_dst', 0xffff);
          ctx.touch('nw_proto', 0xff);
        }
        break;
      case 'resubmit': {
        const inPort = a.inPort === OFPP.IN_PORT ? flow[W.in_port]! : a.inPort;
        const table = a.table === 255 ? ctx.tableId : a.table;
        tableAction(ctx, inPort, table, a.ct, last, doXlateActions);
        continue;
      }
      case 'goto_table':
        tableAction(ctx, flow[W.in_port]!, a.table, false, last, doXlateActions);
        continue;
      case 'set_tunnel':
        setWords(flow, W.tun_id, 2, a.tunId);
        break;
      case 'set_queue':
        flow[W.skb_priority] = a.queue;
        break;
      case 'pop_queue':
        if (flow[W.skb_priority] !== ctx.origSkbPriority) {
          flow[W.skb_priority] = ctx.origSkbPriority;
          ctx.report('detail', `queue = ${hexAlt(ctx.origSkbPriority)}`);
        }
        break;
      case 'reg_move':
        moveAction(ctx, a);
        break;
      case 'set_field':
        setFieldAction(ctx, a);
        break;
      case 'stack_push':
        ctx.stack.push(readSubfield(flow, a.sf, ctx.bridge.tun));
        break;
      case 'stack_pop': {
        const v = ctx.stack.pop();
        if (v === undefined) ctx.report('error', 'stack underflow');
        else {
          writeSubfield(flow, a.sf, v, ctx.bridge.tun);
          reportSubfield(ctx, a.sf);
        }
        break;
      }
      case 'dec_ttl':
        if (decTtl(ctx, a.ids)) return;
        break;
      case 'note':
      case 'fin_timeout':
        break;
      case 'learn':
        learnAction(ctx, a);
        break;
      case 'conjunction':
        ctx.report('error', 'executing no-op conjunction action');
        break;
      case 'exit':
        ctx.exit = true;
        break;
      case 'clear_actions':
        reportActionSet(ctx, 'was');
        ctx.actionSet = [];
        flow[W.actset_output] = OFPP.UNSET;
        ctx.actionSetHasGroup = false;
        break;
      case 'write_actions':
        writeActions(ctx, a.actions);
        reportActionSet(ctx, 'is');
        break;
      case 'write_metadata': {
        const md = getWords(flow, W.metadata, 2);
        setWords(flow, W.metadata, 2, (md & ~a.mask) | (a.metadata & a.mask));
        break;
      }
      case 'meter':
        break;
      case 'clone':
        cloneXlateActions(a.actions, ctx, last, false);
        break;
      case 'ct':
        conntrackAction(ctx, a, last);
        break;
      case 'ct_clear':
        if (ctx.conntracked) {
          ctx.conntracked = false;
          clearConntrack(ctx.flow);
          ctx.odp.push({ t: 'ct_clear' });
        }
        break;
      case 'nat':
        ctx.natAction = a;
        break;
      case 'debug_recirc':
        recirculate(ctx, ctx.tableId, 0, 'other');
        return;
      case 'debug_slow':
        ctx.slowAction = true;
        break;
      case 'multipath': {
        const link = multipathLink(hashFields(flow, a.fields, a.basis), a.algorithm, a.nLinks, a.arg);
        writeSubfield(flow, a.dst, BigInt(link), ctx.bridge.tun);
        writeSubfield(ctx.wc, a.dst, bitsMask(a.dst.nBits), ctx.bridge.tun);
        reportSubfield(ctx, a.dst);
        break;
      }
      case 'bundle': {
        // A member is live when its port exists (dummy ports are always up).
        const member = bundleMember(a, flow, (p) => port(ctx, p) !== undefined);
        if (a.dst) {
          writeSubfield(flow, a.dst, BigInt(member), ctx.bridge.tun);
          writeSubfield(ctx.wc, a.dst, bitsMask(a.dst.nBits), ctx.bridge.tun);
          reportSubfield(ctx, a.dst);
        } else if (member !== OFPP.NONE) {
          outputAction(ctx, member, 0, last, groupBucket);
        }
        break;
      }
      case 'check_pkt_larger':
        checkPktLarger(ctx, a, list.slice(i + 1));
        return;
    }
    // The action that froze the translation, or the ones after it, are kept for the thaw.
    if (!ctx.error && ctx.exit && ctx.freezing && ctx.frozenActions.length === 0) {
      freezeUnroll(ctx, list, next);
      break;
    }
  }
}

/**
 * check_pkt_larger with a datapath that can check lengths: the rest of the actions translated
 * twice, with the bit set and clear, into check_pkt_len(size=N,gt(...),le(...)).
 */
function checkPktLarger(ctx: Ctx, a: Extract<Ofpact, { type: 'check_pkt_larger' }>, rest: Ofpact[]): void {
  const oldFlow = clone(ctx.flow);
  const oldStack = [...ctx.stack];
  const oldSet = [...ctx.actionSet];
  ctx.commit();
  const oldBase = clone(ctx.base);
  const oldConntracked = ctx.conntracked;
  const outer = ctx.odp;
  const branch = (bit: bigint): OdpAction[] => {
    ctx.odp = [];
    ctx.stack = [...oldStack];
    ctx.actionSet = [...oldSet];
    writeSubfield(ctx.flow, a.dst, bit, ctx.bridge.tun);
    doXlateActions(rest, ctx, true, false);
    actionSet(ctx);
    const got = ctx.odp;
    ctx.base = clone(oldBase);
    ctx.conntracked = oldConntracked;
    ctx.flow = clone(oldFlow);
    ctx.exit = false;
    return got;
  };
  const gt = branch(1n);
  const le = branch(0n);
  ctx.odp = outer;
  ctx.odp.push({ t: 'check_pkt_len', size: a.len, gt, le });
  ctx.exit = true;
}

// -- the entry point --

export function xlate(xin: XlateIn): XlateOut {
  const ctx = new Ctx(xin);
  wcInit(ctx);
  const f = ctx.flow;
  const bridgeNode = ctx.report('bridge', `bridge("${ctx.bridge.name}")`);
  if (bridgeNode) ctx.trace = bridgeNode.subs;
  const frozen = xin.frozen ?? null;
  if (frozen) {
    const old = ctx.trace;
    const thaw = ctx.report('thaw', 'thaw');
    if (thaw) ctx.trace = thaw.subs;
    ctx.bridge = frozen.bridge;
    ctx.tableId = frozen.table;
    ctx.report('thaw', `Resuming from table ${frozen.table}`);
    ctx.conntracked = frozen.conntracked;
    if (!frozen.conntracked) clearConntrack(f);
    // Restore the pipeline metadata (tunnel, metadata, registers, in_port).
    f.set(frozen.flow.subarray(W.tun_dst, W.skb_priority), W.tun_dst);
    f[W.in_port] = frozen.flow[W.in_port]!;
    ctx.stack = [...frozen.stack];
    if (frozen.actionSet.length) {
      ctx.report('thaw', `Restoring action set: ${formatActions(frozen.actionSet)}`);
      f[W.actset_output] = OFPP.UNSET;
      writeActions(ctx, frozen.actionSet);
    }
    ctx.trace = old;
  } else if (f[W.recirc_id]) {
    ctx.report('error', `Recirculation context not found for ID ${f[W.recirc_id]!.toString(16)}`);
    ctx.error = 'Recirculation context not found';
    return finish(ctx);
  }
  if (!frozen && (f[W.ct_state]! & CS.TRACKED)) ctx.conntracked = true;
  let actions: Ofpact[];
  if (xin.actions) {
    actions = xin.actions;
  } else if (frozen?.actions) {
    actions = frozen.actions;
  } else {
    const rule = lookupFromTable(ctx, ctx.tableId, f[W.in_port]!);
    ctx.rule = rule;
    if (rule) creditRule(ctx, rule);
    reportTable(ctx, rule, ctx.tableId);
    actions = rule?.actions ?? [];
    ctx.ruleCookie = rule?.cookie ?? 0n;
  }
  doXlateActions(actions, ctx, true, false);
  if (!ctx.error) actionSetOrFreeze(ctx);
  return finish(ctx);
}

/** xlate_wc_init: what every datapath flow matches on. */
function wcInit(ctx: Ctx): void {
  const f = ctx.xin.flow;
  const wc = ctx.wc;
  for (const m of ['packet_type', 'in_port', 'dl_type', 'recirc_id'] as const) wc[W[m]] = 0xffffffff;
  if (f[W.dl_type] === ETH_TYPE.IP || f[W.dl_type] === ETH_TYPE.IPV6) wc[W.nw_frag] = (wc[W.nw_frag]! | FRAG.ANY | FRAG.LATER) >>> 0;
  // tnl_wc_init: a packet from a tunnel matches its id, addresses, flags and TOS.
  if (f[W.tun_dst] !== 0) {
    wc[W.tun_id] = wc[W.tun_id + 1] = 0xffffffff;
    wc[W.tun_src] = wc[W.tun_dst] = 0xffffffff;
    wc[W.tun_flags] = (wc[W.tun_flags]! | TNL_F.DONT_FRAGMENT | TNL_F.CSUM | TNL_F.KEY) >>> 0;
    wc[W.tun_tos] = 0xff;
  }
}

/** xlate_wc_finish: no metadata or registers in a datapath flow, ICMP type/code as 8 bits, ... */
function wcFinish(ctx: Ctx): Flow {
  const f = ctx.xin.flow;
  const wc = Uint32Array.from(ctx.wc);
  for (const m of ['metadata', 'regs', 'actset_output', 'conj_id'] as const) wc.fill(0, W[m], W[m] + WIDTH[m]);
  const icmp = (f[W.dl_type] === ETH_TYPE.IP && f[W.nw_proto] === IPPROTO.ICMP) || (f[W.dl_type] === ETH_TYPE.IPV6 && f[W.nw_proto] === IPPROTO.ICMPV6);
  if (icmp) {
    wc[W.tp_src] = wc[W.tp_src]! & 0xff;
    wc[W.tp_dst] = wc[W.tp_dst]! & 0xff;
  }
  for (const v of [W.vlan0, W.vlan1]) if (wc[v]! & 0xffff) wc[v] = (wc[v]! | VLAN_CFI) >>> 0;
  if (f[W.nw_frag]! & FRAG.LATER) wc[W.tp_src] = wc[W.tp_dst] = 0;
  // Nothing of headers the packet did not come with (a VLAN pushed, a tunnel set).
  if (!(f[W.vlan0]! & VLAN_CFI)) wc[W.vlan0] = 0;
  if (!(f[W.vlan1]! & VLAN_CFI)) wc[W.vlan1] = 0;
  if (f[W.tun_dst] === 0) wc.fill(0, W.tun_dst, W.tun_md + WIDTH.tun_md);
  return wc;
}

function finish(ctx: Ctx): XlateOut {
  for (const fm of ctx.learned) ctx.bridge.learn(fm);
  ctx.learned = [];
  // A failed translation drops the packet: none of its datapath actions run.
  return { trace: ctx.top, odp: ctx.error ? [] : ctx.odp, flow: ctx.flow, wc: wcFinish(ctx), slowAction: ctx.slowAction, error: ctx.error };
}

export { FLOW_WORDS, IPPROTO, readField };
