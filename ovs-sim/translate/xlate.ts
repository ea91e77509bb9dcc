// Translation: a packet's walk through a bridge's tables, as OVS's ofproto-dpif-xlate does it.
// It runs the actions of each rule it hits on the flow, follows resubmit and goto_table (with
// OVS's miss rules and depth limits), patch ports into the peer bridge, groups, learn, conntrack
// with its recirculation, the action set; it produces the datapath actions in order and, when
// asked, the trace tree ofproto/trace prints.
import { type Ofpact, formatActions } from '../openflow/actions.js';
import { CS, ETH_TYPE, FLOW_WORDS, FRAG, type Flow, IPPROTO, TNL_F, VLAN_CFI, W, WIDTH } from '../base/flow.js';
import { readField } from '../base/fields.js';
import { OFPP } from '../base/text.js';
import { XlateIn, XlateOut, clearConntrack, Ctx } from './xlate-context.js';
import { lookupFromTable, reportTable, creditRule } from './xlate-tables.js';
import { writeActions } from './xlate-groups.js';
import { actionSetOrFreeze, doXlateActions } from './xlate-freeze.js';

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

export function finish(ctx: Ctx): XlateOut {
  for (const fm of ctx.learned) ctx.bridge.learn(fm);
  ctx.learned = [];
  // A failed translation drops the packet: none of its datapath actions run.
  return { trace: ctx.top, odp: ctx.error ? [] : ctx.odp, flow: ctx.flow, wc: wcFinish(ctx), slowAction: ctx.slowAction, error: ctx.error };
}

export { FLOW_WORDS, IPPROTO, readField };
export type { FrozenState, RecircNode, Underlay, XlateIn, XlateOut } from './xlate-context.js';
