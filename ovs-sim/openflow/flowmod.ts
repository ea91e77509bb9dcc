// Flow mods as ovs-ofctl writes them (`add-flow`, `mod-flows`, `del-flows`, `add-flows` lines):
// parsed as parse_ofp_str does (match keywords, priority, table, cookie and cookie masks,
// timeouts, flags, importance, out_port, out_group, then the actions), with the protocol families
// that can carry the result.
import { NXM_OF11_UP, NXM_OXM_ANY, OF11_UP, P_ANY, OF12_UP, OF13_UP, type Ofpact, P_TID, type ParseContext, type Usable, anyUsable, parseActions, restrict } from './actions.js';
import { CheckError, checkActions } from './check.js';
import { FieldError, type MfField, fieldByName, readField } from '../base/fields.js';
import { ETH_TYPE, W } from '../base/flow.js';
import { Match, formatFieldValue, parseFieldValue, setField } from './match.js';
import { parseSubfield, writeSubfield } from '../base/subfield.js';
import { type PortMap, keyValues, parseIntString, parsePort, parseTable } from '../base/text.js';
import type { TunTable } from '../base/tlv.js';

export type Command = 'add' | 'modify' | 'modify_strict' | 'delete' | 'delete_strict';

export const FF = { SEND_FLOW_REM: 1, CHECK_OVERLAP: 2, RESET_COUNTS: 4, NO_PKT_COUNTS: 8, NO_BYT_COUNTS: 16 } as const;

export interface FlowMod {
  command: Command;
  match: Match;
  priority: number;
  /** 255 = all tables (or "table 0" for an add). */
  table: number;
  cookie: bigint;
  cookieMask: bigint;
  /** The cookie to set; all ones = leave it. */
  newCookie: bigint;
  modifyCookie: boolean;
  idle: number;
  hard: number;
  importance: number;
  flags: number;
  outPort: number;
  outGroup: number;
  actions: Ofpact[];
  usable: Usable;
  /** A modify that selects nothing adds the flow (OpenFlow 1.0/1.1 and learn). */
  mayAdd?: boolean;
}

const ALL64 = 0xffffffffffffffffn;

const PROTOCOLS: Record<string, [number, number]> = {
  ip: [ETH_TYPE.IP, 0], ipv4: [ETH_TYPE.IP, 0], ip4: [ETH_TYPE.IP, 0], arp: [ETH_TYPE.ARP, 0], icmp: [ETH_TYPE.IP, 1],
  tcp: [ETH_TYPE.IP, 6], udp: [ETH_TYPE.IP, 17], sctp: [ETH_TYPE.IP, 132], ipv6: [ETH_TYPE.IPV6, 0], ip6: [ETH_TYPE.IPV6, 0],
  icmp6: [ETH_TYPE.IPV6, 58], tcp6: [ETH_TYPE.IPV6, 6], udp6: [ETH_TYPE.IPV6, 17], sctp6: [ETH_TYPE.IPV6, 132],
  rarp: [ETH_TYPE.RARP, 0], mpls: [ETH_TYPE.MPLS, 0], mplsm: [ETH_TYPE.MPLS_MCAST, 0],
};
export const isProtocolKeyword = (k: string): boolean => k in PROTOCOLS;

export function setProtocol(m: Match, name: string): void {
  const [dl, proto] = PROTOCOLS[name]!;
  m.flow[W.dl_type] = dl;
  m.wc[W.dl_type] = 0xffff;
  if (proto) {
    m.flow[W.nw_proto] = proto;
    m.wc[W.nw_proto] = 0xff;
  }
}

function strToU16(v: string, name: string): number {
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\s*$/.exec(v);
  const n = m ? (m[1] === '-' ? -1 : 1) * Number(/^0[xX]/.test(m[2]!) ? parseInt(m[2]!, 16) : m[2]!.length > 1 && m[2]!.startsWith('0') ? parseInt(m[2]!, 8) : m[2]) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new FieldError(`invalid ${name} "${v}"`);
  return n;
}

function strToU64(v: string): bigint {
  if (v === '') throw new FieldError('missing required numeric argument');
  const m = /^\s*(-?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(v);
  if (!m) throw new FieldError(`invalid numeric format ${v}`);
  let n = BigInt(/^0[xX]/.test(m[2]!) ? m[2]! : m[2]!.length > 1 && m[2]!.startsWith('0') ? `0o${m[2]!.slice(1)}` : m[2]!);
  if (n > ALL64) throw new FieldError(`invalid numeric format ${v}`);
  if (m[1] === '-') n = (ALL64 + 1n - n) & ALL64;
  return n;
}

/**
 * What OpenFlow 1.0 and 1.1's standard matches can carry of a field (meta-flow's "OF1.0:" and
 * "OF1.1:"); the rest needs NXM or OXM, and a field with neither (skb_priority, tun_tos,
 * tun_ttl) cannot be matched from a controller at all.
 */
const STD_MATCH: Record<string, [of10: 'exact' | 'cidr' | null, of11: 'exact' | 'bitwise' | null]> = {
  metadata: [null, 'bitwise'], in_port: ['exact', 'exact'], in_port_oxm: [null, 'exact'], eth_src: ['exact', 'bitwise'], eth_dst: ['exact', 'bitwise'],
  eth_type: ['exact', 'exact'], vlan_tci: ['exact', 'exact'], dl_vlan: ['exact', 'exact'], vlan_vid: ['exact', 'exact'], dl_vlan_pcp: ['exact', 'exact'],
  vlan_pcp: ['exact', 'exact'], mpls_label: [null, 'exact'], mpls_tc: [null, 'exact'], ip_src: ['cidr', 'bitwise'], ip_dst: ['cidr', 'bitwise'],
  nw_proto: ['exact', 'exact'], nw_tos: ['exact', 'exact'], ip_dscp: ['exact', 'exact'], nw_ecn: [null, 'exact'], arp_op: ['exact', 'exact'],
  arp_spa: ['cidr', 'bitwise'], arp_tpa: ['cidr', 'bitwise'], tcp_src: ['exact', 'exact'], tcp_dst: ['exact', 'exact'], udp_src: ['exact', 'exact'],
  udp_dst: ['exact', 'exact'], sctp_src: [null, 'exact'], sctp_dst: [null, 'exact'], icmp_type: ['exact', 'exact'], icmp_code: ['exact', 'exact'],
};

/** The protocols that can carry a match on `mf` under `mask` (mf_set's return value). */
function fieldUsable(mf: MfField, mask: bigint): number {
  const [of10, of11] = STD_MATCH[mf.name] ?? [null, null];
  // dl_vlan and dl_vlan_pcp have no NXM/OXM of their own but every protocol can say them.
  const nx = /^(NXM|OXM|ONFOXM|NXOXM|ERICOXM)/.test(mf.nxm) || mf.name === 'dl_vlan' || mf.name === 'dl_vlan_pcp';
  const set = (a10: boolean, a11: boolean): number => {
    if (!nx) return 0;
    if (a10 && a11) return P_ANY;
    return a11 ? NXM_OF11_UP : NXM_OXM_ANY;
  };
  const all = mf.valueMask;
  if ((mask & all) === all) return set(of10 !== null, of11 !== null);
  if ((mask & all) === 0n && mf.tunMetadata === undefined) return P_ANY;
  if (!mf.maskable) return 0;
  const cidr = set(of10 === 'cidr', of11 === 'bitwise');
  const bitwise = set(false, of11 === 'bitwise');
  if (cidr === bitwise) return cidr;
  // A CIDR mask: ones then zeros.
  const inv = ~mask & all;
  return (inv & (inv + 1n)) === 0n ? cidr : bitwise;
}

/** match_set_default_packet_type: Ethernet, exactly (what a protocol or an L2+ field implies). */
function setDefaultPacketType(m: Match): void {
  m.flow[W.packet_type] = 0;
  m.wc[W.packet_type] = 0xffffffff;
}

export interface FlowModContext {
  ports?: PortMap | null;
  tun?: TunTable | null;
  /** Where ovs-ofctl's warnings go (deprecated port numbers, ...). */
  warn?: (line: string) => void;
}

/** A table name or number (ofputil_table_from_string). */
export const parseTableId = parseTable;

/**
 * Parse one flow-mod text. `command` null means the line may start with a command word
 * (add-flows/--bundle syntax); 'match' parses a match alone (dump-flows filters: out_port etc.).
 */
export function parseFlowMod(text: string, command: Command | null | 'match', ctx: FlowModContext = {}): FlowMod {
  let s = text;
  let cmd: Command | 'match';
  if (command === null) {
    const t = s.replace(/^[ \t\r\n]+/, '');
    const len = t.search(/[, \t\r\n]|$/);
    const word = t.slice(0, len);
    const words: Command[] = ['add', 'delete', 'delete_strict', 'modify', 'modify_strict'];
    // strncmp(string, "add", len): any prefix of a command word selects it, in this order.
    const hit = len > 0 ? words.find((w) => w.startsWith(word)) : undefined;
    if (hit && word !== '') {
      cmd = hit;
      s = t.slice(len);
    } else {
      cmd = 'add';
      s = t;
    }
  } else {
    cmd = command;
  }
  const fields = {
    outPort: cmd === 'match' || cmd === 'delete' || cmd === 'delete_strict',
    actions: cmd === 'add' || cmd === 'modify' || cmd === 'modify_strict',
    importance: cmd === 'add',
    timeout: cmd === 'add' || cmd === 'modify' || cmd === 'modify_strict',
    priority: cmd !== 'delete' && cmd !== 'match',
    flags: cmd === 'add' || cmd === 'modify' || cmd === 'modify_strict',
  };
  const fm: FlowMod = {
    command: cmd === 'match' ? 'delete' : cmd, match: new Match(), priority: 32768, table: 255, cookie: 0n, cookieMask: 0n,
    newCookie: cmd === 'modify' || cmd === 'modify_strict' ? ALL64 : 0n, modifyCookie: false, idle: 0, hard: 0, importance: 0,
    flags: 0, outPort: 0xffff, outGroup: 0xffffffff, actions: [], usable: anyUsable(),
  };
  let actText: string | null = null;
  if (fields.actions) {
    const i = s.indexOf('action');
    if (i < 0) throw new FieldError('must specify an action');
    const eq = s.indexOf('=', i + 1);
    if (eq < 0) throw new FieldError('must specify an action');
    actText = s.slice(eq + 1);
    s = s.slice(0, i);
  }
  const m = fm.match;
  for (const [name, value] of keyValues(s)) {
    const mf = fieldByName(name);
    if (isProtocolKeyword(name)) {
      setProtocol(m, name);
      setDefaultPacketType(m);
    } else if (name === 'eth') setDefaultPacketType(m);
    else if (fields.flags && name === 'send_flow_rem') fm.flags |= FF.SEND_FLOW_REM;
    else if (fields.flags && name === 'check_overlap') fm.flags |= FF.CHECK_OVERLAP;
    else if (fields.flags && name === 'reset_counts') { fm.flags |= FF.RESET_COUNTS; restrict(fm.usable, OF12_UP); }
    else if (fields.flags && name === 'no_packet_counts') { fm.flags |= FF.NO_PKT_COUNTS; restrict(fm.usable, OF13_UP); }
    else if (fields.flags && name === 'no_byte_counts') { fm.flags |= FF.NO_BYT_COUNTS; restrict(fm.usable, OF13_UP); }
    else if (name === 'no_readonly_table' || name === 'allow_hidden_fields') { /* ignored, as OVS does */ }
    else if (mf) {
      const v = parseFieldValue(mf, value === '' ? '0/0' : value, ctx.ports);
      setField(m, mf, v.value, v.mask, ctx.tun);
      fm.usable.p &= fieldUsable(mf, v.mask);
      if (mf.prereq !== 'none') setDefaultPacketType(m);
      if (mf.name === 'dl_vlan' || mf.name === 'dl_vlan_pcp') { /* usable everywhere */ }
    } else if (name.includes('[')) {
      // NXM_NX_REG0[0..3]=5: match on part of a field.
      const sf = parseSubfield(name, ctx.tun);
      // parse_subfield: an integer of the field's width, which must fit the subfield's bits.
      const parsed = parseIntString(value, sf.field.nBytes);
      if (parsed === null || parsed === 'range' || parsed.rest !== '') throw new FieldError(`${name}: cannot parse integer value: ${value}`);
      const v = parsed.value;
      if (v >> BigInt(sf.nBits) !== 0n) throw new FieldError(`${name}: value ${formatFieldValue(sf.field, v, null)} does not fit into ${sf.nBits} bits`);
      writeSubfield(m.flow, sf, v, ctx.tun);
      writeSubfield(m.wc, sf, (1n << BigInt(sf.nBits)) - 1n, ctx.tun);
      fm.usable.p &= fieldUsable(sf.field, readField(m.wc, sf.field));
      if (sf.field.prereq !== 'none') setDefaultPacketType(m);
    } else {
      if (value === '') throw new FieldError(`field ${name} missing value`);
      if (name === 'table') {
        const t = parseTableId(value);
        if (t === null) throw new FieldError(`unknown table "${value}"`);
        fm.table = t;
      } else if (fields.outPort && name === 'out_port') {
        const p = parsePort(value, ctx.ports);
        if (p === null) throw new FieldError(`${value} is not a valid OpenFlow port`);
        fm.outPort = p;
      } else if (fields.outPort && name === 'out_group') {
        restrict(fm.usable, OF11_UP);
        const g = /^\d+$/.test(value) ? Number(value) : value.toLowerCase() === 'all' ? 0xfffffffc : value.toLowerCase() === 'any' ? 0xffffffff : NaN;
        if (!Number.isFinite(g) || g > 0xffffffff) throw new FieldError(`${value} is not a valid OpenFlow group`);
        fm.outGroup = g;
      } else if (fields.priority && name === 'priority') fm.priority = strToU16(value, name);
      else if (fields.timeout && name === 'idle_timeout') fm.idle = strToU16(value, name);
      else if (fields.timeout && name === 'hard_timeout') fm.hard = strToU16(value, name);
      else if (fields.importance && name === 'importance') fm.importance = strToU16(value, name);
      else if (name === 'cookie') {
        const slash = value.indexOf('/');
        if (slash >= 0) {
          if (cmd === 'add') throw new FieldError('flow additions cannot use a cookie mask');
          fm.cookie = strToU64(value.slice(0, slash));
          fm.cookieMask = strToU64(value.slice(slash + 1));
          if (fm.cookieMask !== 0n) restrict(fm.usable, NXM_OF11_UP);
        } else {
          if (cmd !== 'add' && cmd !== 'modify' && cmd !== 'modify_strict') throw new FieldError(`cannot set cookie (to match on a cookie, specify a mask, e.g. cookie=${value}/-1)`);
          fm.newCookie = strToU64(value);
          fm.modifyCookie = true;
        }
      } else if (['duration', 'n_packets', 'n_bytes', 'idle_age', 'hard_age'].includes(name)) {
        // Ignored so that dump-flows output can be fed back.
      } else {
        throw new FieldError(`unknown keyword ${name}`);
      }
    }
  }
  // IPv6 L3/L4 matches need NXM or OXM.
  if (fm.table !== 255) restrict(fm.usable, P_TID);
  if (m.flow[W.dl_type] === ETH_TYPE.IPV6 && (m.wc[W.nw_proto] || m.wc[W.nw_tos] || m.wc[W.tp_src] || m.wc[W.tp_dst])) restrict(fm.usable, NXM_OXM_ANY);
  if (fm.cookieMask === 0n && fm.newCookie === ALL64 && (cmd === 'modify' || cmd === 'modify_strict')) fm.newCookie = 0n;
  if (actText !== null) {
    const pctx: ParseContext = { ports: ctx.ports, tun: ctx.tun, usable: anyUsable() };
    fm.actions = parseActions(actText, pctx, true);
    fm.usable.p &= pctx.usable.p;
    try {
      checkActions(fm.actions, m, fm.table, fm.usable);
    } catch (e) {
      if (e instanceof CheckError) throw new FieldError(`actions are invalid with specified match (${e.code})`);
      throw e;
    }
    if (fm.usable.p === 0) throw new FieldError('actions are invalid with specified match (OFPBAC_MATCH_INCONSISTENT)');
  }
  return fm;
}
