// ovs-appctl ofproto/trace: the flow string (or in_port=N plus a hex packet, or -generate), the
// translation with its trace tree, then the recirculations it queued (conntrack with
// --ct-next states), printed in OVS's layout: Flow:, bridge("…"), the steps, Final flow:,
// Megaflow:, Datapath actions:.
import type { Bridge } from '../switch/bridge.js';
import { fieldByName, prereqsOk, writeField } from '../base/fields.js';
import { CS, ETH_TYPE, type Flow, W, flowEqual, getWords, newFlow, setWords } from '../base/flow.js';
import { isProtocolKeyword, setProtocol } from '../openflow/flowmod.js';
import { Match, flowText, formatMatch, parseFieldValue } from '../openflow/match.js';
import { formatOdpActions } from './odp.js';
import { extract } from '../packet/packet.js';
import { CT_STATE_NAMES, OFPP, flagName, formatFlags, ipText, ipv6Text, keyValues } from '../base/text.js';
import { printTrace } from './trace-tree.js';
import { type RecircNode, type Underlay, xlate } from './xlate.js';
import { composePacket } from './compose.js';
import { tunMetadataWrite } from '../base/tlv.js';

export class TraceError extends Error {}

/** parse_ofp_exact_flow: a flow string where every field is exact and its prerequisites hold. */
const FLAG_FORMATS = new Set<string>(['tun_flags', 'tcp_flags', 'ct_state']);

function parseExactFlow(s: string, bridge: Bridge): Flow {
  const f = newFlow();
  const m = new Match(f);
  const setFields = new Set<string>();
  const ports = bridge.portMap();
  for (const [key, value] of keyValues(s)) {
    if (isProtocolKeyword(key)) {
      if (f[W.dl_type]) throw new TraceError(`${s}: Ethernet type set multiple times`);
      const before = f[W.nw_proto];
      setProtocol(m, key);
      if (before && f[W.nw_proto] !== before) throw new TraceError(`${s}: network protocol set multiple times`);
      continue;
    }
    const mf = fieldByName(key);
    if (!mf) throw new TraceError(`${s}: unknown field ${key}`);
    if (!prereqsOk(mf.prereq, f)) throw new TraceError(`${s}: prerequisites not met for setting ${key}`);
    if (setFields.has(mf.name)) throw new TraceError(`${s}: field ${key} set multiple times`);
    let v;
    try {
      v = parseFieldValue(mf, value, ports);
    } catch (e) {
      throw new TraceError(`${s}: bad value for ${key} (${(e as Error).message})`);
    }
    const ones = (1n << BigInt(8 * mf.nBytes)) - 1n;
    // Flags given as +flag/-flag (or value/mask) match only some bits: a wildcard too.
    const maskedFlags = FLAG_FORMATS.has(mf.fmt) && (/^[+-]/.test(value) || value.includes('/'));
    if (maskedFlags || (v.mask !== -1n && (v.mask & mf.valueMask) !== mf.valueMask && v.mask !== ones && !(mf.fmt === 'frag' && (v.mask & 3n) === 3n))) {
      throw new TraceError(`${s}: bad value for ${key} (${value}: wildcards not allowed here)`);
    }
    setFields.add(mf.name);
    if (mf.tunMetadata !== undefined) {
      if (!tunMetadataWrite(f, mf.tunMetadata, bridge.tun, v.value, null)) throw new TraceError(`${s}: bad value for ${key}`);
      continue;
    }
    if (mf.name === 'dl_vlan') f[W.vlan0] = ((f[W.vlan0]! & ~0x1fff) | (Number(v.value) & 0xfff) | 0x1000) >>> 0;
    else if (mf.name === 'dl_vlan_pcp' || mf.name === 'vlan_pcp') f[W.vlan0] = ((f[W.vlan0]! & ~0xe000) | ((Number(v.value) & 7) << 13) | 0x1000) >>> 0;
    else writeField(f, mf, v.value);
    if (mf.name === 'vlan_tci' || mf.name === 'dl_vlan' || mf.name === 'vlan_vid' || mf.name === 'dl_vlan_pcp' || mf.name === 'vlan_pcp') {
      if (f[W.vlan0]! & 0x1000) f[W.vlan0] = ((f[W.vlan0]! & 0xffff) | (ETH_TYPE.VLAN << 16)) >>> 0;
    }
    if (mf.name.startsWith('tun_') && (mf.name === 'tun_id')) f[W.tun_flags] = f[W.tun_flags]!;
  }
  if (!f[W.in_port]) f[W.in_port] = OFPP.NONE;
  return f;
}

const STATE_NAMES = new Map(CT_STATE_NAMES);

/** --ct-next STATE: flag names split at commas and spaces, validated as validate_ct_state does. */
function parseCtNext(s: string): number {
  let state = 0;
  for (const part of s.split(/[, ]+/).filter((p) => p !== '')) {
    const bit = STATE_NAMES.get(part);
    if (bit === undefined) throw new TraceError(`${part}: unknown connection tracking state flag`);
    state |= bit;
  }
  const text = formatFlags(state, flagName(CT_STATE_NAMES), '|');
  const errors: string[] = [];
  if (state && !(state & CS.TRACKED)) errors.push('If "trk" is unset, no other flags are set');
  if (state & CS.INVALID && state & ~(CS.TRACKED | CS.INVALID)) errors.push('when "inv" is set, only "trk" may also be set');
  if (state & CS.NEW && state & CS.ESTABLISHED) errors.push('"new" and "est" are mutually exclusive');
  if (state & CS.NEW && state & CS.REPLY_DIR) errors.push('"new" and "rpy" are mutually exclusive');
  if (errors.length) throw new TraceError(errors.map((e) => `${text}: invalid connection state: ${e}`).join('\n'));
  return state;
}

function hexPacket(s: string): Uint8Array | null {
  const t = s.replace(/\s+/g, '');
  if (!/^[0-9a-fA-F]*$/.test(t)) return null;
  return Uint8Array.from(Buffer.from(t.length % 2 ? t.slice(0, -1) : t, 'hex'));
}

export interface TraceOptions {
  underlay?: Underlay | null;
}

/** Run `ofproto/trace BRIDGE FLOW [PACKET]` with its options; returns the text. */
export function traceCommand(args: string[], bridges: Map<string, Bridge>, opts: TraceOptions = {}): string {
  const positional: string[] = [];
  const ctNext: number[] = [];
  let generate = false;
  let names = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-generate' || a === '--generate') generate = true;
    else if (a === '--ct-next') {
      const v = args[++i];
      if (v === undefined) throw new TraceError('Missing argument for option --ct-next');
      ctNext.push(parseCtNext(v));
    } else if (a === '-names' || a === '--names') names = true;
    else if (a === '--l7' || a === '--l7-len') i++;
    else if (a.startsWith('-')) throw new TraceError(`${a}: unknown option`);
    else if (positional.length >= 3) throw new TraceError('too many arguments');
    else positional.push(a);
  }
  let packet: Uint8Array | null = null;
  if (!generate && positional.length > 1) {
    const last = positional[positional.length - 1]!;
    const p = hexPacket(last);
    if (p && !last.includes('=')) {
      if (last.replace(/\s+/g, '').length % 2) {
        if (positional.length > 2) throw new TraceError('Trailing garbage in packet data');
      } else if (p.length < 14) {
        if (positional.length > 2) throw new TraceError('Packet data too short for Ethernet');
      } else {
        packet = p;
        positional.pop();
      }
    } else if (positional.length > 2) {
      throw new TraceError(/^[0-9a-fA-F]/.test(last) ? 'Trailing garbage in packet data' : 'Trailing garbage in packet data');
    }
  }
  if (positional.length !== 2) {
    if (positional.length === 1) throw new TraceError(`syntax error at ${positional[0]} (or the bridge name was omitted)`);
    throw new TraceError('Syntax error');
  }
  const bridge = bridges.get(positional[0]!);
  if (!bridge) throw new TraceError(`${positional[0]}: unknown bridge`);
  let flow: Flow;
  try {
    flow = parseExactFlow(positional[1]!, bridge);
  } catch (e) {
    throw new TraceError(`Bad openflow flow syntax: ${(e as Error).message}`);
  }
  if (packet) {
    // The flow string gives the metadata; the packet gives the headers.
    const meta = newFlow();
    for (const m of ['in_port', 'skb_priority', 'pkt_mark', 'recirc_id', 'dp_hash', 'ct_state', 'ct_zone', 'ct_mark'] as const) meta[W[m]] = flow[W[m]]!;
    meta.set(flow.subarray(W.tun_dst, W.metadata), W.tun_dst);
    meta.set(flow.subarray(W.ct_label, W.ct_label + 4), W.ct_label);
    flow = extract(packet, flow[W.in_port]!, meta, bridge.vlanLimit);
  }
  const sideEffects = packet !== null || generate;
  const packetLength = packet ? packet.length : generate ? composePacket(flow).length : 0;
  const out: string[] = [];
  const queue: RecircNode[] = [];
  runOne(bridge, flow, sideEffects, names, queue, out, opts, packetLength);
  while (queue.length > 0) {
    const node = queue.shift()!;
    const f = node.flow;
    out.push('', '='.repeat(79));
    let head = `recirc(0x${node.id.toString(16)})`;
    if (node.kind === 'conntrack') {
      let state: number;
      if (ctNext.length === 0) {
        state = CS.TRACKED | CS.NEW;
        head += ' - resume conntrack with default ct_state=trk|new (use --ct-next to customize)';
      } else {
        state = ctNext.shift()!;
        head += ` - resume conntrack with ct_state=${formatFlags(state, flagName(CT_STATE_NAMES), '|')}`;
      }
      f[W.ct_state] = state;
    }
    out.push(head);
    if (node.nat) {
      const n = node.nat;
      const v6 = n.af === 6;
      const ipFlow = (): string => v6
        ? `ipv6_src=[${ipv6Text(getWords(f, W.ipv6_src, 4))}],tp_src=${f[W.tp_src]},ipv6_dst=[${ipv6Text(getWords(f, W.ipv6_dst, 4))}],tp_dst=${f[W.tp_dst]}`
        : n.af === 4 ? `nw_src=${ipText(f[W.nw_src]!)},tp_src=${f[W.tp_src]},nw_dst=${ipText(f[W.nw_dst]!)},tp_dst=${f[W.tp_dst]}` : '';
      out.push('Replacing src/dst IP/ports to simulate NAT:', ` Initial flow: ${ipFlow()}`);
      if (n.src || n.dst) {
        const which = n.src ? 'src' : 'dst';
        if (n.af === 4) f[W[which === 'src' ? 'nw_src' : 'nw_dst']] = Number(n.minAddr);
        else if (n.af === 6) setWords(f, W[which === 'src' ? 'ipv6_src' : 'ipv6_dst'], 4, n.minAddr);
        if (n.af !== 0 && n.minPort) f[W[which === 'src' ? 'tp_src' : 'tp_dst']] = n.minPort;
      }
      out.push(` Modified flow: ${ipFlow()}`);
    }
    out.push('='.repeat(79), '');
    runOne(bridge, f, sideEffects, names, queue, out, opts, packetLength);
  }
  return out.join('\n');
}

function runOne(bridge: Bridge, flow: Flow, packet: boolean, names: boolean, queue: RecircNode[], out: string[], opts: TraceOptions, packetLength: number): void {
  const frozen = flow[W.recirc_id] ? (bridge.datapath.frozen.get(flow[W.recirc_id]!) as never) ?? null : null;
  const ports = names ? bridge.portMap() : null;
  const initial = Uint32Array.from(flow);
  initial[W.actset_output] = OFPP.UNSET;
  out.push(`Flow: ${flowText(initial, ports, bridge.tun)}`);
  const r = xlate({ bridge, flow, packet, trace: true, names, underlay: opts.underlay ?? null, frozen, recircQueue: queue, packetLength });
  out.push(...printTrace(r.trace));
  out.push('');
  out.push(`Final flow: ${flowEqual(initial, r.flow) ? 'unchanged' : flowText(r.flow, ports, bridge.tun)}`);
  out.push(`Megaflow: ${formatMatch({ flow: initial, wc: r.wc }, 32768, ports, bridge.tun)}`);
  out.push(`Datapath actions: ${formatOdpActions(r.odp, names ? bridge.datapath.names() : null)}`);
  if (r.error) out.push(`Translation failed (${r.error}), packet is dropped.`);
  else if (r.slowAction) out.push('This flow is handled by the userspace slow path because it:', '  - Uses action(s) not supported by datapath.');
}
