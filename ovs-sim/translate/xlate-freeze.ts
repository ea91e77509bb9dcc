// Translation: freezing and recirculation, and the loop over a rule's actions (do_xlate_actions).
import { bundleMember, hashFields, multipathLink } from '../openflow/multipath.js';
import { type Ofpact, formatAction, formatActions } from '../openflow/actions.js';
import { ETH_TYPE, FRAG, VLAN_CFI, W, getWords, setWords } from '../base/flow.js';
import { fieldByName } from '../base/fields.js';
import { type OdpAction } from './odp.js';
import { bitsMask, readSubfield, writeSubfield } from '../base/subfield.js';
import { OFPP, hexAlt } from '../base/text.js';
import { REASON, clone, clearConntrack, Ctx } from './xlate-context.js';
import { tableAction } from './xlate-tables.js';
import { port, outputAction, composeOutput, cloneXlateActions } from './xlate-output.js';
import { controllerAction } from './xlate-normal.js';
import { groupAction, writeActions, reportActionSet, actionSet } from './xlate-groups.js';
import { conntrackAction, recirculate } from './xlate-conntrack.js';
import { reportSubfield, isIpAny, decTtl, learnAction, setFieldAction, moveAction, popVlan, pushVlan } from './xlate-actions.js';
import { meterDatapathId } from '../switch/meters.js';

// -- freezing --

export function triggerFreeze(ctx: Ctx): void {
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
export function finishFreezing(ctx: Ctx): void {
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
export function actionSetOrFreeze(ctx: Ctx): void {
  if (!ctx.freezing) actionSet(ctx);
  if (ctx.freezing) finishFreezing(ctx);
}

export function doXlateActions(list: Ofpact[], ctx: Ctx, isLast: boolean, groupBucket: boolean): void {
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
      case 'meter': {
        // xlate_meter_action: the datapath's meter id, where the instruction stands.
        const dp = meterDatapathId(ctx.bridge, a.meterId);
        if (dp !== undefined) ctx.odp.push({ t: 'meter', id: dp });
        break;
      }
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
