// Translation: output to ports, flooding, tunnels and patch ports.
import { hashOrder } from '../base/hmap.js';
import { type Ofpact } from '../openflow/actions.js';
import { type Bridge, type BridgePort } from '../switch/bridge.js';
import { hashInt } from '../base/hash.js';
import { type Flow, TNL_F, W, getWords, setWords } from '../base/flow.js';
import { bitsMask } from '../base/subfield.js';
import { OFPP, hexBytes, ipText } from '../base/text.js';
import { clone, clearConntrack, clearTunnel, tunnelDstSet, Ctx } from './xlate-context.js';
import { tableAction, Xlator } from './xlate-tables.js';
import { controllerAction, xlateNormal } from './xlate-normal.js';
import { actionSetOrFreeze, doXlateActions } from './xlate-freeze.js';

// -- output --

export function port(ctx: Ctx, ofport: number): BridgePort | undefined {
  return ctx.bridge.ports.get(ofport);
}

export function outputAction(ctx: Ctx, p: number, maxLen: number, last: boolean, groupBucket: boolean): void {
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
export function flood(ctx: Ctx, all: boolean, last: boolean): void {
  const targets = hashOrder([...ctx.bridge.ports.values()], (x) => hashInt(x.ofport, 0)).filter((x) => x.ofport !== ctx.flow[W.in_port] && (all || !x.noFlood));
  targets.forEach((x, i) => composeOutput(ctx, x.ofport, last && i === targets.length - 1));
}

export function composeOutput(ctx: Ctx, ofport: number, last: boolean): void {
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

export const cloneXlateActions: Xlator = (actions, ctx, last) => {
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
