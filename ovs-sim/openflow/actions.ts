// OpenFlow actions and instructions as OVS models them (ofpacts): parsed from ovs-ofctl syntax
// and printed as OVS prints them. How they change on their way through the wire protocol (an
// OpenFlow 1.0 mod_dl_src comes back from an OpenFlow 1.3 dump as set_field) is in wire.ts;
// what they do to a packet is in xlate.ts.
import { type BundleAction, type Multipath, formatBundle, formatMultipath, parseBundle, parseMultipath } from './multipath.js';
import { FieldError, type MfField, fieldByName } from '../base/fields.js';
import { type LearnAction, formatLearn, parseLearn } from './learn.js';
import { formatFieldValue, parseFieldValue } from './match.js';
import { type Subfield, bitsMask, fieldBits, formatSubfield, parseSubfield, parseSubfieldPrefix } from '../base/subfield.js';
import {
  OFPP, type PortMap, ipText, ipv6Text, keyValues, parseEth, parseIntString, parseIp, parseIpv6, parsePort, parseTable as parseTableText, portText,
} from '../base/text.js';
import type { TunTable } from '../base/tlv.js';

export interface Nat {
  type: 'nat';
  src: boolean;
  dst: boolean;
  persistent: boolean;
  hash: boolean;
  random: boolean;
  /** 0: no range; 4 or 6: the address family of the range. */
  af: 0 | 4 | 6;
  minAddr: bigint;
  maxAddr: bigint;
  minPort: number;
  maxPort: number;
}

export interface Ct {
  type: 'ct';
  commit: boolean;
  force: boolean;
  /** Recirculation table, or null. */
  table: number | null;
  zoneSrc: Subfield | null;
  zoneImm: number;
  alg: number;
  /** A leading nat, then the exec actions (set_field/load of ct_mark, ct_label). */
  actions: Ofpact[];
}

export interface Controller {
  type: 'controller';
  maxLen: number;
  reason: string;
  id: number;
  userdata: Uint8Array | null;
  pause: boolean;
  meterId: number | null;
  /** Came as NXAST_CONTROLLER2 (kept through the wire). */
  v2: boolean;
}

export type Ofpact =
  | Multipath
  | BundleAction
  | { type: 'output'; port: number; maxLen: number }
  | { type: 'output_reg'; src: Subfield; maxLen: number }
  | { type: 'output_trunc'; port: number; maxLen: number }
  | Controller
  | { type: 'enqueue'; port: number; queue: number }
  | { type: 'group'; groupId: number }
  | { type: 'set_vlan_vid'; vid: number; push: boolean; flowHasVlan?: boolean }
  | { type: 'set_vlan_pcp'; pcp: number; push: boolean; flowHasVlan?: boolean }
  | { type: 'strip_vlan'; pop: boolean }
  | { type: 'push_vlan'; ethertype: number }
  | { type: 'set_eth_src' | 'set_eth_dst'; mac: bigint }
  | { type: 'set_ipv4_src' | 'set_ipv4_dst'; ip: number }
  | { type: 'set_ip_dscp'; dscp: number }
  | { type: 'set_ip_ecn'; ecn: number }
  | { type: 'set_ip_ttl'; ttl: number }
  | { type: 'set_l4_src_port' | 'set_l4_dst_port'; port: number; proto?: number }
  | { type: 'set_field'; field: MfField; value: bigint; mask: bigint; load: boolean; flowHasVlan?: boolean }
  | { type: 'reg_move'; src: Subfield; dst: Subfield }
  | { type: 'stack_push' | 'stack_pop'; sf: Subfield }
  | { type: 'dec_ttl'; ids: number[] | null }
  | { type: 'set_tunnel'; tunId: bigint; v64: boolean }
  | { type: 'set_queue'; queue: number }
  | { type: 'pop_queue' }
  | { type: 'fin_timeout'; idle: number; hard: number }
  | { type: 'resubmit'; inPort: number; table: number; ct: boolean; short: boolean }
  | LearnAction
  | { type: 'conjunction'; id: number; clause: number; nClauses: number }
  | { type: 'note'; data: Uint8Array }
  | { type: 'exit' }
  /** Internal (a frozen translation's): restore the table and rule cookie packet-ins report. */
  | { type: 'unroll_xlate'; table: number; cookie: bigint }
  | { type: 'clone'; actions: Ofpact[] }
  | Ct
  | { type: 'ct_clear' }
  | Nat
  | { type: 'meter'; meterId: number }
  | { type: 'clear_actions' }
  | { type: 'write_actions'; actions: Ofpact[] }
  | { type: 'write_metadata'; metadata: bigint; mask: bigint }
  | { type: 'goto_table'; table: number }
  | { type: 'check_pkt_larger'; len: number; dst: Subfield }
  | { type: 'debug_recirc' }
  | { type: 'debug_slow' };

export type OfpactType = Ofpact['type'];

/** What the parser needs beyond the text: port names and the switch's TLV map. */
export interface ParseContext {
  ports?: PortMap | null;
  tun?: TunTable | null;
  /** Protocol families the actions can be encoded in (narrowed while parsing). */
  usable: Usable;
}

/**
 * The protocols that can carry a flow mod, as OVS narrows them while parsing (OFPUTIL_P_*: a bit
 * per OpenFlow 1.0 standard/NXM flow format, with and without table ids, and per later version).
 */
export type Usable = { p: number };
export const P = {
  OF10_STD: 1, OF10_STD_TID: 2, OF10_NXM: 4, OF10_NXM_TID: 8, OF11_STD: 16, OF12_OXM: 32, OF13_OXM: 64, OF14_OXM: 128, OF15_OXM: 256,
} as const;
export const P_ANY = 0x1ff;
export const P_OF10_STD_ANY = P.OF10_STD | P.OF10_STD_TID;
export const P_OF10_NXM_ANY = P.OF10_NXM | P.OF10_NXM_TID;
export const P_OF10_ANY = P_OF10_STD_ANY | P_OF10_NXM_ANY;
export const P_ANY_OXM = P.OF12_OXM | P.OF13_OXM | P.OF14_OXM | P.OF15_OXM;
const OF15_UP = P.OF15_OXM;
export const OF14_UP = P.OF14_OXM | OF15_UP;
export const OF13_UP = P.OF13_OXM | OF14_UP;
export const OF12_UP = P.OF12_OXM | OF13_UP;
export const OF11_UP = P.OF11_STD | P_ANY_OXM;
export const NXM_OF11_UP = P_OF10_NXM_ANY | P.OF11_STD | P_ANY_OXM;
export const NXM_OXM_ANY = P_OF10_NXM_ANY | P_ANY_OXM;
export const P_TID = P.OF10_STD_TID | P.OF10_NXM_TID | P.OF11_STD | P_ANY_OXM;
export const anyUsable = (): Usable => ({ p: P_ANY });
export function restrict(u: Usable, allowed: number): void {
  u.p &= allowed;
}

/** ofputil_protocols_to_string. */
export function protocolsText(p: number): string {
  if (p === 0) return 'none';
  const abbrevs: [number, string][] = [[P_ANY, 'any'], [P_OF10_STD_ANY, 'OpenFlow10'], [P_OF10_NXM_ANY, 'NXM'], [P_ANY_OXM, 'OXM']];
  const single: [number, string][] = [
    [P.OF10_STD, 'OpenFlow10-table_id'], [P.OF10_STD_TID, 'OpenFlow10+table_id'], [P.OF10_NXM, 'NXM-table_id'], [P.OF10_NXM_TID, 'NXM+table_id'],
    [P.OF11_STD, 'OpenFlow11'], [P.OF12_OXM, 'OXM-OpenFlow12'], [P.OF13_OXM, 'OXM-OpenFlow13'], [P.OF14_OXM, 'OXM-OpenFlow14'], [P.OF15_OXM, 'OXM-OpenFlow15'],
  ];
  const parts: string[] = [];
  while (p) {
    const a = abbrevs.find(([m]) => (p & m) === m);
    if (a) {
      parts.push(a[1]);
      p &= ~a[0];
      continue;
    }
    const s = single.find(([m]) => p & m)!;
    parts.push(s[1]);
    p &= ~s[0];
  }
  return parts.join(',');
}

// -- instructions and their order (ofpacts_verify) --

const INSTRUCTION: Partial<Record<OfpactType, number>> = { meter: 0, clear_actions: 2, write_actions: 3, write_metadata: 4, goto_table: 5 };
const INSTRUCTION_NAMES = ['meter', 'apply_actions', 'clear_actions', 'write_actions', 'write_metadata', 'goto_table'];
const instructionOf = (a: Ofpact): number => INSTRUCTION[a.type] ?? 1;

const ACTION_NAMES: Record<string, OfpactType> = {
  output: 'output', group: 'group', controller: 'controller', enqueue: 'enqueue', bundle: 'bundle', bundle_load: 'bundle', multipath: 'multipath', set_vlan_vid: 'set_vlan_vid',
  set_vlan_pcp: 'set_vlan_pcp', strip_vlan: 'strip_vlan', push_vlan: 'push_vlan', mod_dl_src: 'set_eth_src', mod_dl_dst: 'set_eth_dst',
  mod_nw_src: 'set_ipv4_src', mod_nw_dst: 'set_ipv4_dst', mod_nw_tos: 'set_ip_dscp', mod_nw_ecn: 'set_ip_ecn', mod_nw_ttl: 'set_ip_ttl',
  mod_tp_src: 'set_l4_src_port', mod_tp_dst: 'set_l4_dst_port', move: 'reg_move', set_field: 'set_field', push: 'stack_push',
  pop: 'stack_pop', dec_ttl: 'dec_ttl', set_tunnel: 'set_tunnel', set_queue: 'set_queue', pop_queue: 'pop_queue',
  fin_timeout: 'fin_timeout', resubmit: 'resubmit', learn: 'learn', conjunction: 'conjunction', note: 'note', exit: 'exit',
  clone: 'clone', ct: 'ct', ct_clear: 'ct_clear', nat: 'nat', meter: 'meter', clear_actions: 'clear_actions',
  write_actions: 'write_actions', write_metadata: 'write_metadata', goto_table: 'goto_table', check_pkt_larger: 'check_pkt_larger',
  debug_recirc: 'debug_recirc', debug_slow: 'debug_slow',
};
/** ofpact_name: the name OVS uses for a type in messages. */
function ofpactName(t: OfpactType): string {
  if (t === 'output_reg') return 'output_reg';
  if (t === 'output_trunc') return 'output_trunc';
  return Object.entries(ACTION_NAMES).find(([, v]) => v === t)?.[0] ?? t;
}

// -- numbers as ovs-ofctl reads them --

function strToInt(s: string): number | null {
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\s*$/.exec(s);
  if (!m) return null;
  const d = m[2]!;
  const v = /^0[xX]/.test(d) ? parseInt(d, 16) : d.length > 1 && d.startsWith('0') ? parseInt(d, 8) : Number(d);
  return m[1] === '-' ? -v : v;
}

/** str_to_u8 / str_to_u16: `invalid NAME "S"`. */
function strToU(s: string, name: string, max: number): number {
  const v = strToInt(s);
  if (v === null || v < 0 || v > max) throw new FieldError(`invalid ${name} "${s}"`);
  return v;
}

/** str_to_u32 / str_to_u64. */
export function strToU64(s: string, bits = 64): bigint {
  if (s === '') throw new FieldError('missing required numeric argument');
  const m = /^\s*(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) throw new FieldError(`invalid numeric format ${s}`);
  const d = m[1]!;
  const v = BigInt(/^0[xX]/.test(d) ? d : d.length > 1 && d.startsWith('0') ? `0o${d.slice(1)}` : d);
  if (v >= 1n << BigInt(bits)) throw new FieldError(`invalid numeric format ${s}`);
  return v;
}

function parseHex(s: string, what: string): Uint8Array {
  const t = s.replace(/[.\s]/g, '');
  if (!/^[0-9a-fA-F]*$/.test(t) || t.length % 2 !== 0) throw new FieldError(`bad hex digit in ${what}`);
  return Uint8Array.from(Buffer.from(t, 'hex'));
}

const hexArg = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join('.');

// -- parsing --

/** Parse an action list (with instructions when `instructions`), as ofpacts_parse does. */
export function parseActions(text: string, ctx: ParseContext, instructions = true, outer: OfpactType | null = null): Ofpact[] {
  const out: Ofpact[] = [];
  let drop = false;
  for (const [key, value] of keyValues(text)) {
    // Action names are case-insensitive (ofpact_type_from_name uses strcasecmp).
    const lower = key.toLowerCase();
    const type = ACTION_NAMES[lower];
    if (type) {
      parseOne(type, lower, value, ctx, out);
      if (type === 'meter' && !instructions) restrict(ctx.usable, OF15_UP);
    } else if (key.toLowerCase() === 'mod_vlan_vid') out.push(parseVlanVid(value, true));
    else if (key.toLowerCase() === 'mod_vlan_pcp') out.push(parseVlanPcp(value, true));
    else if (key.toLowerCase() === 'set_nw_ttl') out.push({ type: 'set_ip_ttl', ttl: strToU(value, 'TTL', 255) });
    else if (key.toLowerCase() === 'pop_vlan') out.push({ type: 'strip_vlan', pop: true });
    else if (key.toLowerCase() === 'set_tunnel64') out.push({ type: 'set_tunnel', tunId: strToU64(value), v64: true });
    else if (key.toLowerCase() === 'load') out.push(parseLoad(value, ctx));
    else if (key.toLowerCase() === 'drop') drop = true;
    else if (key.toLowerCase() === 'apply_actions') throw new FieldError('apply_actions is the default instruction');
    else {
      const port = parsePort(key, ctx.ports);
      if (port === null) throw new FieldError(`unknown action ${key}`);
      out.push({ type: 'output', port, maxLen: port === OFPP.CONTROLLER ? 65535 : 0 });
    }
  }
  if (drop && out.length > 0) throw new FieldError('"drop" must not be accompanied by any other action or instruction');
  verify(out, instructions, outer);
  return out;
}

/** The ofpacts_verify ordering complaint about a decoded action list, if it has one. */
export function instructionOrderProblem(list: Ofpact[]): string | null {
  let inst = 0;
  for (let i = 0; i < list.length; i++) {
    const next = instructionOf(list[i]!);
    if (i > 0 && (inst === 1 ? next < inst : next <= inst)) {
      if (next === inst) return `duplicate ${INSTRUCTION_NAMES[inst]} instruction not allowed, for OpenFlow 1.1+ compatibility`;
      return `invalid instruction ordering: ${INSTRUCTION_NAMES[next]} must appear before ${INSTRUCTION_NAMES[inst]}, for OpenFlow 1.1+ compatibility`;
    }
    inst = next;
  }
  return null;
}

function verify(list: Ofpact[], instructions: boolean, outer: OfpactType | null): void {
  let inst = 0;
  list.forEach((a, i) => {
    if (a.type === 'conjunction') {
      const other = list.find((b) => b.type !== 'conjunction' && b.type !== 'note');
      if (other) throw new FieldError(`"conjunction" actions may be used along with "note" but not any other kind of action (such as the "${ofpactName(other.type)}" action used here)`);
    }
    verifyNested(a, outer);
    const next = instructionOf(a);
    if (i > 0 && (inst === 1 ? next < inst : next <= inst)) {
      if (next === inst) throw new FieldError(`duplicate ${INSTRUCTION_NAMES[inst]} instruction not allowed, for OpenFlow 1.1+ compatibility`);
      throw new FieldError(`invalid instruction ordering: ${INSTRUCTION_NAMES[next]} must appear before ${INSTRUCTION_NAMES[inst]}, for OpenFlow 1.1+ compatibility`);
    }
    if (!instructions && next !== 1 && next !== 0) throw new FieldError(`${INSTRUCTION_NAMES[next]} instruction not allowed here`);
    inst = next;
  });
}

const CT_FIELDS = new Set(['ct_mark', 'ct_label']);
const dstField = (a: Ofpact): MfField | null => (a.type === 'set_field' ? a.field : a.type === 'reg_move' ? a.dst.field : a.type === 'stack_pop' ? a.sf.field : null);

function verifyNested(a: Ofpact, outer: OfpactType | null): void {
  const f = dstField(a);
  if (f && CT_FIELDS.has(f.name) && outer !== 'ct') throw new FieldError('cannot set CT fields outside of ct action');
  if (a.type === 'nat') {
    if (outer !== 'ct') throw new FieldError('Cannot have NAT action outside of "ct" action');
    return;
  }
  if (outer === 'ct') {
    if (!f) throw new FieldError(`${ofpactName(a.type)} action not allowed inside ct`);
    if (!CT_FIELDS.has(f.name)) throw new FieldError(`ct action doesn't support nested modification of ${f.name}`);
  }
  if (outer && a.type === 'meter') throw new FieldError(`meter action not allowed inside ${ofpactName(outer)}`);
}

function parseVlanVid(value: string, push: boolean): Ofpact {
  const vid = strToU(value, 'VLAN VID', 65535);
  if (vid & ~0xfff) throw new FieldError(`${value}: not a valid VLAN VID`);
  return { type: 'set_vlan_vid', vid, push };
}

function parseVlanPcp(value: string, push: boolean): Ofpact {
  const pcp = strToU(value, 'VLAN PCP', 255);
  if (pcp & ~7) throw new FieldError(`${value}: not a valid VLAN PCP`);
  return { type: 'set_vlan_pcp', pcp, push };
}

/** `value->field` of set_field and load. */
function splitArrow(arg: string): { value: string; key: string } {
  const i = arg.indexOf('->');
  if (i < 0) throw new FieldError(`${arg}: missing \`->'`);
  if (arg.length - i <= 2) throw new FieldError(`${arg}: missing field name following \`->'`);
  return { value: arg.slice(0, i), key: arg.slice(i + 2) };
}

function parseLoad(arg: string, ctx: ParseContext): Ofpact {
  const { value, key } = splitArrow(arg);
  const dst = parseSubfield(key, ctx.tun);
  const bytes = dst.field.tunMetadata !== undefined ? Math.ceil(fieldBits(dst.field, ctx.tun) / 8) : dst.field.nBytes;
  const v = parseIntString(value, bytes);
  if (v === null || v === 'range' || v.rest !== '') throw new FieldError(`${arg}: cannot parse integer value`);
  if (v.value >> BigInt(dst.nBits) !== 0n) {
    throw new FieldError(`${arg}: value ${formatFieldValue(dst.field, v.value, null)} does not fit into ${dst.nBits} bits`);
  }
  return { type: 'set_field', field: dst.field, value: v.value << BigInt(dst.ofs), mask: bitsMask(dst.nBits) << BigInt(dst.ofs), load: true };
}

function parseSetField(arg: string, ctx: ParseContext): Ofpact {
  const { value, key } = splitArrow(arg);
  const mf = fieldByName(key);
  if (!mf) throw new FieldError(`${key} is not a valid OXM field name`);
  if (!mf.writable) throw new FieldError(`${key} is read-only`);
  const v = parseFieldValue(mf, value, ctx.ports);
  if ((v.value & ~mf.valueMask) !== 0n && mf.tunMetadata === undefined) throw new FieldError(`${value} is not a valid value for field ${key}`);
  if (mf.name === 'vlan_vid' && (v.value & ~0x1fffn) !== 0n) throw new FieldError(`${value} is not a valid value for field ${key}`);
  let mask = v.mask === -1n ? mf.valueMask : v.mask & (mf.tunMetadata !== undefined ? v.mask : mf.valueMask);
  // A whole-field mask is the field's own (shared) value: one less number per action kept.
  if (mask === mf.valueMask) mask = mf.valueMask;
  const masked = v.value & mask;
  return { type: 'set_field', field: mf, value: masked === v.value ? v.value : masked, mask, load: false };
}

function parseNatRange(s: string, n: Nat): void {
  const bad = (): never => {
    throw new FieldError(`invalid nat range "${s}"`);
  };
  // str_to_nat_range scans with ovs_scan: an address's octets as %hhu and ports as %hu, each
  // number kept modulo its width (300 is 44, 70000 is 4464).
  const ipv4 = (t: string): [bigint, number] | null => {
    const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)/.exec(t);
    if (!m) return null;
    const v = m.slice(1, 5).reduce((acc, o) => acc * 256 + (Number(BigInt(o) % 256n)), 0);
    return [BigInt(v), m[0].length];
  };
  const port = (t: string): [number, number] | null => {
    const m = /^\d+/.exec(t);
    return m ? [Number(BigInt(m[0]) % 65536n), m[0].length] : null;
  };
  let rest = s;
  let m: RegExpExecArray | null;
  const v4 = ipv4(rest);
  if (v4) {
    n.af = 4;
    n.minAddr = v4[0];
    rest = rest.slice(v4[1]);
    if (rest.startsWith('-')) {
      const max = ipv4(rest.slice(1));
      if (!max || max[0] < n.minAddr) bad();
      n.maxAddr = max![0];
      rest = rest.slice(1 + max![1]);
    }
  } else if ((m = /^\[?([0-9a-fA-F:.]*:[0-9a-fA-F:.]*)\]?/.exec(rest)) && parseIpv6(m[1]!) !== null) {
    n.af = 6;
    n.minAddr = parseIpv6(m[1]!)!;
    rest = rest.slice(m[0].length);
    if (rest.startsWith('-')) {
      m = /^-\[?([0-9a-fA-F:.]*:[0-9a-fA-F:.]*)\]?/.exec(rest);
      if (!m || parseIpv6(m[1]!) === null) bad();
      n.maxAddr = parseIpv6(m![1]!)!;
      if (n.maxAddr < n.minAddr) bad();
      rest = rest.slice(m![0].length);
    }
  }
  if (n.af !== 0 && rest.startsWith(':')) {
    const min = port(rest.slice(1));
    if (!min) bad();
    n.minPort = min![0];
    rest = rest.slice(1 + min![1]);
    if (rest.startsWith('-')) {
      const max = port(rest.slice(1));
      if (!max || max[0] < n.minPort) bad();
      n.maxPort = max![0];
      rest = rest.slice(1 + max![1]);
    }
  }
  if (rest !== '') throw new FieldError(`garbage (${rest}) after nat range "${s}" (pos: ${s.length - rest.length})`);
}

export function parseNat(arg: string): Nat {
  const n: Nat = { type: 'nat', src: false, dst: false, persistent: false, hash: false, random: false, af: 0, minAddr: 0n, maxAddr: 0n, minPort: 0, maxPort: 0 };
  for (const [key, value] of keyValues(arg)) {
    if (key === 'src') { n.src = true; parseNatRange(value, n); }
    else if (key === 'dst') { n.dst = true; parseNatRange(value, n); }
    else if (key === 'persistent') n.persistent = true;
    else if (key === 'hash') n.hash = true;
    else if (key === 'random') n.random = true;
    else throw new FieldError(`invalid key "${key}" in "nat" argument`);
  }
  if (n.src && n.dst) throw new FieldError('May only specify one of "src" or "dst".');
  if (!n.src && !n.dst) {
    if (n.persistent || n.hash || n.random) throw new FieldError('Flags allowed only with "src" or "dst".');
    if (n.af !== 0) throw new FieldError('Range allowed only with "src" or "dst".');
  }
  if (n.hash && n.random) throw new FieldError('Both "hash" and "random" are not allowed.');
  return n;
}

const REASONS = ['no_match', 'action', 'invalid_ttl', 'action_set', 'group', 'packet_out'];

function parseController(arg: string): Ofpact {
  let reason = 'action';
  let maxLen = 65535;
  let id = 0;
  let userdata: Uint8Array | null = null;
  let pause = false;
  let meterId: number | null = null;
  if (arg === '') {
    // defaults
  } else if (/^[0-9]+$/.test(arg)) {
    maxLen = strToU(arg, 'max_len', 65535);
  } else {
    for (const [name, value] of keyValues(arg)) {
      if (name === 'reason') {
        if (!REASONS.includes(value)) throw new FieldError(`unknown reason "${value}"`);
        reason = value;
      } else if (name === 'max_len') maxLen = strToU(value, 'max_len', 65535);
      else if (name === 'id') id = strToU(value, 'id', 65535);
      else if (name === 'userdata') userdata = parseHex(value, "`controller' action `userdata'");
      else if (name === 'pause') pause = true;
      else if (name === 'meter_id') meterId = Number(strToU64(value, 32));
      else throw new FieldError(`unknown key "${name}" parsing controller action`);
    }
  }
  if (reason === 'action' && id === 0 && !userdata && !pause && meterId === null) return { type: 'output', port: OFPP.CONTROLLER, maxLen };
  return { type: 'controller', maxLen, reason, id, userdata, pause, meterId, v2: false };
}

function parseTable(s: string, err: string): number {
  const v = parseTableText(s);
  if (v === null) throw new FieldError(err);
  return v;
}

function parseOne(type: OfpactType, key: string, value: string, ctx: ParseContext, out: Ofpact[]): void {
  switch (type) {
    case 'output': {
      if (value.includes('port') && value.includes('max_len')) {
        let port = 0;
        let maxLen = 0;
        for (const [k, v] of keyValues(value)) {
          if (k === 'port') {
            const p = parsePort(v, ctx.ports);
            if (p === null) throw new FieldError(`output to unknown truncate port: ${v}`);
            if (p > OFPP.MAX && p !== OFPP.LOCAL && p !== OFPP.IN_PORT) throw new FieldError(`output to unsupported truncate port: ${v}`);
            port = p;
          } else if (k === 'max_len') {
            maxLen = Number(strToU64(v, 32));
            if (maxLen < 14) throw new FieldError(`max_len ${maxLen} is less than the minimum value 14`);
          } else throw new FieldError(`invalid key '${k}' in output_trunc argument`);
        }
        out.push({ type: 'output_trunc', port, maxLen });
        return;
      }
      const port = parsePort(value, ctx.ports);
      if (port !== null) {
        out.push({ type: 'output', port, maxLen: port === OFPP.CONTROLLER ? 65535 : 0 });
        return;
      }
      try {
        out.push({ type: 'output_reg', src: parseSubfield(value, ctx.tun), maxLen: 65535 });
      } catch {
        throw new FieldError(`${value}: output to unknown port`);
      }
      return;
    }
    case 'group':
      out.push({ type: 'group', groupId: Number(strToU64(value, 32)) });
      return;
    case 'controller':
      out.push(parseController(value));
      return;
    case 'enqueue': {
      const parts = value.split(/[:q,]+/).filter((p) => p !== '');
      if (parts.length < 2) throw new FieldError('"enqueue" syntax is "enqueue:PORT:QUEUE" or "enqueue(PORT,QUEUE)"');
      const port = parsePort(parts[0]!, ctx.ports);
      if (port === null) throw new FieldError(`${parts[0]}: enqueue to unknown port`);
      out.push({ type: 'enqueue', port, queue: Number(strToU64(parts.slice(1).join(':'), 32)) });
      return;
    }
    case 'set_vlan_vid':
      out.push(parseVlanVid(value, false));
      return;
    case 'set_vlan_pcp':
      out.push(parseVlanPcp(value, false));
      return;
    case 'strip_vlan':
      out.push({ type: 'strip_vlan', pop: false });
      return;
    case 'push_vlan': {
      restrict(ctx.usable, OF11_UP);
      const et = strToU(value, 'ethertype', 65535);
      if (et !== 0x8100 && et !== 0x88a8) throw new FieldError(`${value}: not a valid VLAN ethertype`);
      out.push({ type: 'push_vlan', ethertype: et });
      return;
    }
    case 'set_eth_src':
    case 'set_eth_dst': {
      const mac = parseEth(value);
      if (mac === null) throw new FieldError(`invalid mac address ${value}`);
      out.push({ type, mac });
      return;
    }
    case 'set_ipv4_src':
    case 'set_ipv4_dst': {
      const ip = parseIp(value);
      if (ip === null) throw new FieldError(`${value}: could not convert to IP address`);
      out.push({ type, ip });
      return;
    }
    case 'set_ip_dscp': {
      const tos = strToU(value, 'TOS', 255);
      if (tos & ~0xfc) throw new FieldError(`${value}: not a valid TOS`);
      out.push({ type, dscp: tos });
      return;
    }
    case 'set_ip_ecn': {
      const ecn = strToU(value, 'ECN', 255);
      if (ecn > 3) throw new FieldError(`${value}: not a valid ECN`);
      out.push({ type, ecn });
      return;
    }
    case 'set_ip_ttl':
      out.push({ type, ttl: strToU(value, 'TTL', 255) });
      return;
    case 'set_l4_src_port':
      out.push({ type, port: strToU(value, 'source port', 65535) });
      return;
    case 'set_l4_dst_port':
      out.push({ type, port: strToU(value, 'destination port', 65535) });
      return;
    case 'reg_move': {
      const { sf: src, rest } = parseSubfieldPrefix(value, ctx.tun);
      if (!rest.startsWith('->')) throw new FieldError(`${value}: missing \`->' following source`);
      const dst = parseSubfield(rest.slice(2), ctx.tun);
      if (src.nBits !== dst.nBits) throw new FieldError(`${value}: source field is ${src.nBits} bits wide but destination is ${dst.nBits} bits wide`);
      out.push({ type, src, dst });
      return;
    }
    case 'set_field':
      out.push(parseSetField(value, ctx));
      return;
    case 'stack_push':
    case 'stack_pop':
      out.push({ type, sf: parseSubfield(value, ctx.tun) });
      return;
    case 'dec_ttl': {
      if (value === '') {
        out.push({ type, ids: null });
        return;
      }
      const ids = value.split(/[, ]+/).filter((x) => x !== '').map((x) => (Number.parseInt(x, 10) || 0) & 0xffff);
      if (ids.length === 0) throw new FieldError('dec_ttl_cnt_ids: expected at least one controller id.');
      out.push({ type, ids });
      return;
    }
    case 'set_tunnel':
      out.push({ type, tunId: strToU64(value), v64: false });
      return;
    case 'set_queue':
      out.push({ type, queue: Number(strToU64(value, 32)) });
      return;
    case 'pop_queue':
      out.push({ type });
      return;
    case 'fin_timeout': {
      let idle = 0;
      let hard = 0;
      for (const [k, v] of keyValues(value)) {
        if (k === 'idle_timeout') idle = strToU(v, k, 65535);
        else if (k === 'hard_timeout') hard = strToU(v, k, 65535);
        else throw new FieldError(`invalid key '${k}' in 'fin_timeout' argument`);
      }
      out.push({ type, idle, hard });
      return;
    }
    case 'resubmit': {
      // resubmit:PORT (short form) or resubmit(PORT,TABLE[,ct]).
      const short = !value.includes(',') && key === 'resubmit' && !/^\(/.test(value) && value !== '';
      const parts = value.split(',');
      const inPortS = parts[0] ?? '';
      const tableS = parts[1] ?? '';
      const ctS = parts[2] ?? '';
      let inPort: number = OFPP.IN_PORT;
      if (inPortS !== '') {
        const p = parsePort(inPortS, ctx.ports);
        if (p === null) throw new FieldError(`${inPortS}: resubmit to unknown port`);
        inPort = p;
      }
      const table = tableS !== '' ? parseTable(tableS, `${tableS}: resubmit to unknown table`) : 255;
      if (ctS !== '' && ctS !== 'ct') throw new FieldError(`${ctS}: unknown parameter`);
      if (inPort === OFPP.IN_PORT && table === 255) throw new FieldError('at least one "in_port" or "table" must be specified on resubmit');
      out.push({ type, inPort, table, ct: ctS === 'ct', short: short && table === 255 });
      return;
    }
    case 'learn':
      out.push(parseLearn(value, ctx));
      return;
    case 'conjunction': {
      const m = /^\s*(0[xX][0-9a-fA-F]+|\d+)\s*,\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(value);
      if (!m || Number(m[2]) > 255 || Number(m[3]) > 255) throw new FieldError('"conjunction" syntax is "conjunction(id,i/n)"');
      const clause = Number(m[2]);
      const n = Number(m[3]);
      if (n < 2) throw new FieldError('conjunction must have at least 2 clauses');
      if (n > 64) throw new FieldError('conjunction must have at most 64 clauses');
      if (clause < 1) throw new FieldError('clause index must be positive');
      if (clause > n) throw new FieldError('clause index must be less than or equal to number of clauses');
      out.push({ type, id: Number(BigInt(m[1]!) & 0xffffffffn), clause: clause - 1, nClauses: n });
      return;
    }
    case 'note': {
      // The NX action is padded to a multiple of 8 bytes (10 bytes of header): the note with it.
      const data = parseHex(value, "`note' argument");
      const padded = new Uint8Array(Math.ceil((10 + data.length) / 8) * 8 - 10);
      padded.set(data);
      out.push({ type, data: padded });
      return;
    }
    case 'exit':
    case 'ct_clear':
    case 'clear_actions':
    case 'debug_recirc':
    case 'debug_slow':
      out.push({ type });
      return;
    case 'multipath':
      out.push(parseMultipath(value, ctx.tun));
      return;
    case 'bundle':
      out.push(parseBundle(value, key === 'bundle_load', ctx.ports, ctx.tun));
      return;
    case 'clone':
      out.push({ type, actions: parseActions(value, ctx, false, 'clone') });
      return;
    case 'ct':
      out.push(parseCt(value, ctx));
      return;
    case 'nat':
      out.push(parseNat(value));
      return;
    case 'meter':
      restrict(ctx.usable, OF13_UP);
      out.push({ type, meterId: Number(strToU64(value, 32)) });
      return;
    case 'write_actions':
      out.push({ type, actions: parseActions(value, ctx, false, 'write_actions') });
      return;
    case 'write_metadata': {
      restrict(ctx.usable, NXM_OF11_UP);
      const slash = value.indexOf('/');
      const mask = slash < 0 ? 0xffffffffffffffffn : strToU64(value.slice(slash + 1));
      out.push({ type, metadata: strToU64(slash < 0 ? value : value.slice(0, slash)), mask });
      return;
    }
    case 'goto_table':
      out.push({ type, table: parseTable(value, `unknown table "${value}"`) });
      return;
    case 'check_pkt_larger': {
      const { value: v, key: k } = splitArrow(value);
      const dst = parseSubfield(k, ctx.tun);
      if (dst.nBits !== 1) throw new FieldError('Only 1-bit destination field is allowed');
      const len = v.endsWith(')') ? v.slice(0, -1) : v;
      out.push({ type, len: strToU(len, '(null)', 65535), dst });
      return;
    }
    default:
      throw new FieldError(`unknown action ${key}`);
  }
}

function parseCt(arg: string, ctx: ParseContext): Ct {
  const ct: Ct = { type: 'ct', commit: false, force: false, table: null, zoneSrc: null, zoneImm: 0, alg: 0, actions: [] };
  for (const [key, value] of keyValues(arg)) {
    if (key === 'commit') ct.commit = true;
    else if (key === 'force') ct.force = true;
    else if (key === 'table') {
      const t = strToInt(value);
      if (t === null || t < 0 || t > 255) throw new FieldError(`unknown table ${value}`);
      if (t === 255) throw new FieldError(`invalid table 0xff`);
      ct.table = t;
    } else if (key === 'zone') {
      const z = strToInt(value);
      if (z !== null && z >= 0 && z <= 65535) ct.zoneImm = z;
      else ct.zoneSrc = parseSubfield(value, ctx.tun);
    } else if (key === 'alg') {
      if (value === 'ftp') ct.alg = 21;
      else if (value === 'tftp') ct.alg = 69;
      else throw new FieldError(`${value}: unknown connection helper`);
    } else if (key === 'nat') ct.actions.push(parseNat(value));
    else if (key === 'exec') ct.actions.push(...parseActions(value, ctx, false, 'ct'));
    else throw new FieldError(`invalid argument to "ct" action: \`${key}'`);
  }
  if (ct.force && !ct.commit) throw new FieldError('"force" flag requires "commit" flag.');
  return ct;
}

// -- printing (ofpacts_format) --

export interface FormatContext {
  ports?: PortMap | null;
  tun?: TunTable | null;
}

export function formatActions(list: Ofpact[], ctx: FormatContext = {}): string {
  return list.length === 0 ? 'drop' : list.map((a) => formatAction(a, ctx)).join(',');
}

function formatNat(n: Nat): string {
  if (!n.src && !n.dst) return 'nat';
  let s = `nat(${n.src ? 'src' : 'dst'}`;
  if (n.af !== 0) {
    s += '=';
    const bracket = n.af === 6 && n.minPort !== 0;
    const addr = (v: bigint): string => (n.af === 4 ? ipText(v) : bracket ? `[${ipv6Text(v)}]` : ipv6Text(v));
    s += addr(n.minAddr);
    if (n.maxAddr !== 0n && n.maxAddr !== n.minAddr) s += `-${addr(n.maxAddr)}`;
    if (n.minPort) {
      s += `:${n.minPort}`;
      if (n.maxPort && n.maxPort !== n.minPort) s += `-${n.maxPort}`;
    }
    s += ',';
    if (n.persistent) s += 'persistent,';
    if (n.hash) s += 'hash,';
    if (n.random) s += 'random,';
  }
  if (s.endsWith(',')) s = s.slice(0, -1);
  return `${s})`;
}

export function formatAction(a: Ofpact, ctx: FormatContext = {}): string {
  const port = (p: number): string => portText(p, ctx.ports);
  switch (a.type) {
    case 'output':
      return `${a.port < OFPP.MAX ? 'output:' : ''}${port(a.port)}${a.port === OFPP.CONTROLLER ? `:${a.maxLen}` : ''}`;
    case 'output_reg':
      return `output:${formatSubfield(a.src, ctx.tun)}`;
    case 'output_trunc':
      return `output(port=${port(a.port)},max_len=${a.maxLen})`;
    case 'controller': {
      if (a.reason === 'action' && !a.id && !a.userdata && !a.pause && a.meterId === null) return `CONTROLLER:${a.maxLen}`;
      let s = 'controller(';
      if (a.reason !== 'action') s += `reason=${a.reason},`;
      if (a.maxLen !== 65535) s += `max_len=${a.maxLen},`;
      if (a.id) s += `id=${a.id},`;
      if (a.userdata && a.userdata.length) s += `userdata=${hexArg(a.userdata)},`;
      if (a.pause) s += 'pause,';
      if (a.meterId !== null) s += `meter_id=${a.meterId},`;
      if (s.endsWith(',')) s = s.slice(0, -1);
      return `${s})`;
    }
    case 'enqueue':
      return `enqueue:${port(a.port)}:${a.queue}`;
    case 'group':
      return `group:${a.groupId}`;
    case 'set_vlan_vid':
      return `${a.push ? 'mod_vlan_vid' : 'set_vlan_vid'}:${a.vid}`;
    case 'set_vlan_pcp':
      return `${a.push ? 'mod_vlan_pcp' : 'set_vlan_pcp'}:${a.pcp}`;
    case 'strip_vlan':
      return a.pop ? 'pop_vlan' : 'strip_vlan';
    case 'push_vlan':
      return `push_vlan:0x${a.ethertype.toString(16)}`;
    case 'set_eth_src':
      return `mod_dl_src:${formatFieldValue(fieldByName('eth_src')!, a.mac, null)}`;
    case 'set_eth_dst':
      return `mod_dl_dst:${formatFieldValue(fieldByName('eth_dst')!, a.mac, null)}`;
    case 'set_ipv4_src':
      return `mod_nw_src:${ipText(a.ip)}`;
    case 'set_ipv4_dst':
      return `mod_nw_dst:${ipText(a.ip)}`;
    case 'set_ip_dscp':
      return `mod_nw_tos:${a.dscp}`;
    case 'set_ip_ecn':
      return `mod_nw_ecn:${a.ecn}`;
    case 'set_ip_ttl':
      return `mod_nw_ttl:${a.ttl}`;
    case 'set_l4_src_port':
      return `mod_tp_src:${a.port}`;
    case 'set_l4_dst_port':
      return `mod_tp_dst:${a.port}`;
    case 'set_field':
      if (a.load) return loadSegments(a).map(([sf, v]) => `load:${v === 0n ? '0' : `0x${v.toString(16)}`}->${formatSubfield(sf, ctx.tun)}`).join(',');
      return `set_field:${formatFieldValue(a.field, a.value, a.mask, ctx.ports)}->${a.field.name}`;
    case 'reg_move':
      return `move:${formatSubfield(a.src, ctx.tun)}->${formatSubfield(a.dst, ctx.tun)}`;
    case 'stack_push':
      return `push:${formatSubfield(a.sf, ctx.tun)}`;
    case 'stack_pop':
      return `pop:${formatSubfield(a.sf, ctx.tun)}`;
    case 'dec_ttl':
      return a.ids === null ? 'dec_ttl' : `dec_ttl(${a.ids.join(',')})`;
    case 'set_tunnel':
      return `set_tunnel${a.tunId > 0xffffffffn || a.v64 ? '64' : ''}:${a.tunId === 0n ? '0' : `0x${a.tunId.toString(16)}`}`;
    case 'set_queue':
      return `set_queue:${a.queue}`;
    case 'pop_queue':
      return 'pop_queue';
    case 'fin_timeout': {
      const parts = [a.idle ? `idle_timeout=${a.idle}` : '', a.hard ? `hard_timeout=${a.hard}` : ''].filter(Boolean);
      return `fin_timeout(${parts.join(',')})`;
    }
    case 'resubmit':
      if (a.inPort !== OFPP.IN_PORT && a.table === 255) return `resubmit:${port(a.inPort)}`;
      return `resubmit(${a.inPort !== OFPP.IN_PORT ? port(a.inPort) : ''},${a.table !== 255 ? a.table : ''}${a.ct ? ',ct' : ''})`;
    case 'learn':
      return formatLearn(a, ctx);
    case 'conjunction':
      return `conjunction(${a.id},${a.clause + 1}/${a.nClauses})`;
    case 'note':
      return `note:${hexArg(a.data)}`;
    case 'exit':
      return 'exit';
    case 'unroll_xlate':
      return `unroll_xlate(table=${a.table}, cookie=${a.cookie})`;
    case 'clone':
      return `clone(${formatActions(a.actions, ctx)})`;
    case 'ct': {
      let s = 'ct(';
      if (a.commit) s += 'commit,';
      if (a.force) s += 'force,';
      if (a.table !== null) s += `table=${a.table},`;
      if (a.zoneSrc) s += `zone=${formatSubfield(a.zoneSrc, ctx.tun)},`;
      else if (a.zoneImm) s += `zone=${a.zoneImm},`;
      let rest = a.actions;
      if (rest[0]?.type === 'nat') {
        s += `${formatNat(rest[0])},`;
        rest = rest.slice(1);
      }
      if (rest.length > 0) s += `exec(${rest.map((x) => formatAction(x, ctx)).join(',')}),`;
      if (a.alg === 21) s += 'alg=ftp,';
      else if (a.alg === 69) s += 'alg=tftp,';
      else if (a.alg) s += `alg=${a.alg},`;
      if (s.endsWith(',')) s = s.slice(0, -1);
      return `${s})`;
    }
    case 'ct_clear':
      return 'ct_clear';
    case 'nat':
      return formatNat(a);
    case 'meter':
      return `meter:${a.meterId}`;
    case 'clear_actions':
      return 'clear_actions';
    case 'write_actions':
      return `write_actions(${formatActions(a.actions, ctx)})`;
    case 'write_metadata':
      return `write_metadata:${a.metadata === 0n ? '0' : `0x${a.metadata.toString(16)}`}${a.mask !== 0xffffffffffffffffn ? `/${a.mask === 0n ? '0' : `0x${a.mask.toString(16)}`}` : ''}`;
    case 'goto_table':
      return `goto_table:${a.table}`;
    case 'check_pkt_larger':
      return `check_pkt_larger(${a.len})->${formatSubfield(a.dst, ctx.tun)}`;
    case 'debug_recirc':
      return 'debug_recirc';
    case 'debug_slow':
      return 'debug_slow';
    case 'multipath':
      return formatMultipath(a, ctx.tun);
    case 'bundle':
      return formatBundle(a, ctx.ports, ctx.tun);
  }
}

/** A load's mask split into contiguous runs (next_load_segment), each with its value. */
export function loadSegments(a: { field: MfField; value: bigint; mask: bigint }): [Subfield, bigint][] {
  const out: [Subfield, bigint][] = [];
  let m = a.mask;
  let ofs = 0;
  while (m !== 0n) {
    while (((m >> BigInt(ofs)) & 1n) === 0n) ofs++;
    let n = 0;
    // NXAST_REG_LOAD carries at most 64 bits: a longer run is two loads.
    while (((m >> BigInt(ofs + n)) & 1n) === 1n && n < 64) n++;
    out.push([{ field: a.field, ofs, nBits: n }, (a.value >> BigInt(ofs)) & bitsMask(n)]);
    m &= ~(bitsMask(n) << BigInt(ofs));
    ofs += n;
  }
  return out;
}
