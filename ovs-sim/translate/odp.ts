// Datapath actions: what a translation asks the datapath to do, in order, printed as
// `Datapath actions:` prints them. Header changes are committed lazily, as OVS's
// commit_odp_actions does: before an output (or ct, or a packet-in), the differences between the
// flow and what the datapath's packet already looks like become set() and push/pop_vlan actions.
// Outputs, ct and packet-ins keep a copy of the flow, so a datapath can run them on a packet.
import type { Nat } from '../openflow/actions.js';
import { ETH_TYPE, FRAG, type Flow, IPPROTO, W, getWords, setWords } from '../base/flow.js';
import { ethText, ipText, ipv6Text } from '../base/text.js';

export interface ControllerCookie {
  reason: number;
  dontSend: boolean;
  continuation: boolean;
  recircId: number;
  ruleCookie: bigint;
  controllerId: number;
  maxLen: number;
}

export type OdpAction =
  | { t: 'output'; port: number; name: string; flow: Flow }
  | { t: 'set'; text: string }
  | { t: 'push_vlan'; tpid: number; tci: number }
  | { t: 'pop_vlan' }
  | { t: 'ct'; commit: boolean; force: boolean; zone: number; mark: [number, number] | null; label: [bigint, bigint] | null; helper: string | null; nat: Nat | null; flow: Flow }
  | { t: 'ct_clear' }
  | { t: 'recirc'; id: number }
  | { t: 'userspace'; pid: number; cookie: ControllerCookie; flow: Flow; userdata: Uint8Array | null; tableId: number; bridge: string }
  | { t: 'clone'; actions: OdpAction[] }
  | { t: 'meter'; id: number }
  | { t: 'trunc'; maxLen: number }
  | { t: 'hash'; alg: 'l4' | 'sym_l4'; basis: number }
  | { t: 'tunnel'; text: string }
  | { t: 'check_pkt_len'; size: number; gt: OdpAction[]; le: OdpAction[] }
  | { t: 'drop' };

function natText(n: Nat): string {
  if (!n.src && !n.dst) return 'nat';
  let s = `nat(${n.src ? 'src' : 'dst'}`;
  if (n.af !== 0) {
    const bracket = n.af === 6 && n.minPort !== 0;
    const addr = (v: bigint): string => (n.af === 4 ? ipText(v) : bracket ? `[${ipv6Text(v)}]` : ipv6Text(v));
    s += `=${addr(n.minAddr)}`;
    if (n.maxAddr !== 0n && n.maxAddr > n.minAddr) s += `-${addr(n.maxAddr)}`;
    if (n.minPort) {
      s += `:${n.minPort}`;
      if (n.maxPort && n.maxPort > n.minPort) s += `-${n.maxPort}`;
    }
  }
  s += ',';
  if (n.persistent) s += 'persistent,';
  if (n.hash) s += 'hash,';
  else if (n.random) s += 'random,';
  return `${s.slice(0, -1)})`;
}

const hex32 = (v: number): string => (v === 0 ? '0' : `0x${(v >>> 0).toString(16)}`);

function formatOdpAction(a: OdpAction, names?: Map<number, string> | null): string {
  switch (a.t) {
    case 'output':
      return names?.get(a.port) ?? String(a.port);
    case 'set':
      return a.text;
    case 'push_vlan': {
      const vid = a.tci & 0xfff;
      const pcp = a.tci >> 13;
      let s = `push_vlan(${a.tpid !== ETH_TYPE.VLAN ? `tpid=0x${a.tpid.toString(16).padStart(4, '0')},` : ''}vid=${vid},pcp=${pcp}`;
      if (!(a.tci & 0x1000)) s += ',cfi=0';
      return `${s})`;
    }
    case 'pop_vlan':
      return 'pop_vlan';
    case 'ct': {
      const parts: string[] = [];
      if (a.commit) parts.push('commit');
      if (a.force) parts.push('force_commit');
      if (a.zone) parts.push(`zone=${a.zone}`);
      if (a.mark) parts.push(`mark=${hex32(a.mark[0])}/${hex32(a.mark[1])}`);
      if (a.label) parts.push(`label=${u128Text(a.label[0], a.label[1])}`);
      if (a.helper) parts.push(`helper=${a.helper}`);
      if (a.nat) parts.push(natText(a.nat));
      return parts.length ? `ct(${parts.join(',')})` : 'ct';
    }
    case 'ct_clear':
      return 'ct_clear';
    case 'recirc':
      return `recirc(${hex32(a.id)})`;
    case 'userspace': {
      const c = a.cookie;
      return `userspace(pid=${a.pid},controller(reason=${c.reason},dont_send=${c.dontSend ? 1 : 0},continuation=${c.continuation ? 1 : 0},recirc_id=${c.recircId},rule_cookie=${c.ruleCookie === 0n ? '0' : `0x${c.ruleCookie.toString(16)}`},controller_id=${c.controllerId},max_len=${c.maxLen}))`;
    }
    case 'clone':
      return `clone(${formatOdpActions(a.actions, names)})`;
    case 'meter':
      return `meter(${a.id})`;
    case 'trunc':
      return `trunc(${a.maxLen})`;
    case 'hash':
      return `hash(${a.alg}(${a.basis}))`;
    case 'tunnel':
      return a.text;
    case 'check_pkt_len':
      return `check_pkt_len(size=${a.size},gt(${formatOdpActions(a.gt, names)}),le(${formatOdpActions(a.le, names)}))`;
    case 'drop':
      return 'drop';
  }
}

/** format_u128 with a mask, as ct labels print: value/mask in hex. */
function u128Text(v: bigint, m: bigint): string {
  const all = (1n << 128n) - 1n;
  const h = (x: bigint): string => `0x${x.toString(16)}`;
  return m === all ? h(v) : `${h(v)}/${h(m)}`;
}

export function formatOdpActions(list: OdpAction[], names?: Map<number, string> | null): string {
  return list.length === 0 ? 'drop' : list.map((a) => formatOdpAction(a, names)).join(',');
}

// -- committing header changes (commit_odp_actions) --

/**
 * One field of a datapath key. `wc` holds the bits translation has looked at or written (the
 * megaflow mask): a changed field is written with that mask, which is left out when full.
 */
interface KeyField {
  name: string;
  member: keyof typeof W;
  words: number;
  /** The field's bits in its storage word(s) (narrow fields). */
  bits: number;
  text: (v: bigint) => string;
  maskText: (v: bigint) => string;
}

const val = (f: Flow, k: KeyField): bigint => getWords(f, W[k.member], k.words) & (k.words === 1 ? BigInt(k.bits) : (1n << BigInt(32 * k.words)) - 1n);
const full = (k: KeyField): bigint => (k.words === 1 ? BigInt(k.bits) : k.member === 'dl_src' || k.member === 'dl_dst' || k.member === 'arp_sha' || k.member === 'arp_tha' ? 0xffffffffffffn : (1n << BigInt(32 * k.words)) - 1n);

const macK = (name: string, m: 'dl_src' | 'dl_dst' | 'arp_sha' | 'arp_tha'): KeyField => ({ name, member: m, words: 2, bits: 0, text: (v) => ethText(v & 0xffffffffffffn), maskText: (v) => ethText(v & 0xffffffffffffn) });
const ip4K = (name: string, m: 'nw_src' | 'nw_dst'): KeyField => ({ name, member: m, words: 1, bits: 0xffffffff, text: (v) => ipText(v), maskText: (v) => ipText(v) });
const ip6K = (name: string, m: 'ipv6_src' | 'ipv6_dst' | 'nd_target'): KeyField => ({ name, member: m, words: 4, bits: 0, text: (v) => ipv6Text(v), maskText: (v) => ipv6Text(v) });
const decK = (name: string, m: keyof typeof W, bits: number): KeyField => ({ name, member: m, words: 1, bits, text: (v) => String(v), maskText: (v) => `0x${v.toString(16)}` });
const hexK = (name: string, m: keyof typeof W, bits: number): KeyField => ({ name, member: m, words: 1, bits, text: (v) => (v === 0n ? '0' : `0x${v.toString(16)}`), maskText: (v) => (v === 0n ? '0' : `0x${v.toString(16)}`) });

const FRAG_NAMES = ['no', 'first', 'later'];
const fragK: KeyField = { name: 'frag', member: 'nw_frag', words: 1, bits: 3, text: (v) => FRAG_NAMES[!(Number(v) & FRAG.ANY) ? 0 : Number(v) & FRAG.LATER ? 2 : 1]!, maskText: () => '' };

const ETH_KEY: KeyField[] = [macK('src', 'dl_src'), macK('dst', 'dl_dst')];
const IPV4_KEY: KeyField[] = [ip4K('src', 'nw_src'), ip4K('dst', 'nw_dst'), decK('proto', 'nw_proto', 0xff), hexK('tos', 'nw_tos', 0xff), decK('ttl', 'nw_ttl', 0xff), fragK];
const IPV6_KEY: KeyField[] = [ip6K('src', 'ipv6_src'), ip6K('dst', 'ipv6_dst'), hexK('label', 'ipv6_label', 0xfffff), decK('proto', 'nw_proto', 0xff), hexK('tclass', 'nw_tos', 0xff), decK('hlimit', 'nw_ttl', 0xff), fragK];
const ARP_KEY: KeyField[] = [ip4K('sip', 'nw_src'), ip4K('tip', 'nw_dst'), decK('op', 'nw_proto', 0xff), macK('sha', 'arp_sha'), macK('tha', 'arp_tha')];
const ND_KEY: KeyField[] = [ip6K('target', 'nd_target'), macK('sll', 'arp_sha'), macK('tll', 'arp_tha')];
const L4_KEY: KeyField[] = [decK('src', 'tp_src', 0xffff), decK('dst', 'tp_dst', 0xffff)];
const ICMP_KEY: KeyField[] = [decK('type', 'tp_src', 0xff), decK('code', 'tp_dst', 0xff)];

function setWordsMasked(f: Flow, k: KeyField, v: bigint): void {
  const all = getWords(f, W[k.member], k.words);
  const m = full(k);
  setWords(f, W[k.member], k.words, (all & ~m) | (v & m));
}

/**
 * commit(): a set() for one key with the fields that differ; a plain set with every field when
 * all of them differ and are fully masked, else a masked set of the changed ones. The base then
 * takes the flow's values.
 */
function commitKey(key: string, fields: KeyField[], flow: Flow, base: Flow, wc: Flow | null, odp: OdpAction[], settable = fields, masked = true): boolean {
  const changed = settable.filter((k) => val(flow, k) !== val(base, k));
  if (changed.length === 0) return false;
  const maskOf = (k: KeyField): bigint => (wc ? val(wc, k) | (val(flow, k) ^ val(base, k)) : full(k)) & full(k);
  const plain = !masked || (changed.length === fields.length && changed.every((k) => maskOf(k) === full(k)));
  let text: string;
  if (plain) text = fields.map((k) => `${k.name}=${k.text(val(flow, k))}`).join(',');
  else {
    text = changed.map((k) => {
      const mk = maskOf(k);
      return mk === full(k) ? `${k.name}=${k.text(val(flow, k))}` : `${k.name}=${k.text(val(flow, k) & mk)}/${k.maskText(mk)}`;
    }).join(',');
  }
  odp.push({ t: 'set', text: `set(${key}(${text}))` });
  for (const k of changed) setWordsMasked(base, k, val(flow, k));
  return true;
}

export interface CommitResult {
  /** A set the datapath cannot do itself (ARP, ND, ICMP): the flow takes the slow path. */
  slowAction: boolean;
}

const vlanCount = (f: Flow): number => ((f[W.vlan0]! & 0x1000) ? ((f[W.vlan1]! & 0x1000) ? 2 : 1) : 0);

/** Commit the differences between `flow` and `base` as datapath actions; `base` becomes `flow`. */
export function commit(flow: Flow, base: Flow, odp: OdpAction[], wc: Flow | null = null): CommitResult {
  let slow = false;
  commitKey('eth', ETH_KEY, flow, base, wc, odp);
  const dl = base[W.dl_type]!;
  const proto = flow[W.nw_proto]!;
  // No L3 set for a packet without an L3 protocol (commit_set_nw_action).
  if (proto !== 0) {
    if (dl === ETH_TYPE.IP) {
      commitKey('ipv4', IPV4_KEY, flow, base, wc, odp, IPV4_KEY.filter((k) => k.name !== 'proto' && k.name !== 'frag'));
    } else if (dl === ETH_TYPE.IPV6) {
      commitKey('ipv6', IPV6_KEY, flow, base, wc, odp, IPV6_KEY.filter((k) => k.name !== 'proto' && k.name !== 'frag'));
      if (base[W.nw_proto] === IPPROTO.ICMPV6 && commitKey('nd', ND_KEY, flow, base, wc, odp)) slow = true;
    } else if (dl === ETH_TYPE.ARP) {
      if (commitKey('arp', ARP_KEY, flow, base, wc, odp)) slow = true;
    }
  }
  const fdl = flow[W.dl_type]!;
  const isIp = fdl === ETH_TYPE.IP || fdl === ETH_TYPE.IPV6;
  const laterFrag = (flow[W.nw_frag]! & FRAG.LATER) !== 0;
  if (isIp && !laterFrag && (proto === IPPROTO.TCP || proto === IPPROTO.UDP || proto === IPPROTO.SCTP)) {
    commitKey(proto === IPPROTO.TCP ? 'tcp' : proto === IPPROTO.UDP ? 'udp' : 'sctp', L4_KEY, flow, base, wc, odp);
  }
  if ((fdl === ETH_TYPE.IP && proto === IPPROTO.ICMP) || (fdl === ETH_TYPE.IPV6 && proto === IPPROTO.ICMPV6)) {
    if (commitKey(fdl === ETH_TYPE.IP ? 'icmp' : 'icmpv6', ICMP_KEY, flow, base, wc, odp, ICMP_KEY, false)) slow = true;
  }
  commitVlan(flow, base, odp);
  if (flow[W.skb_priority] !== base[W.skb_priority]) {
    odp.push({ t: 'set', text: `set(skb_priority(${hex32(flow[W.skb_priority]!)}))` });
    base[W.skb_priority] = flow[W.skb_priority]!;
  }
  if (flow[W.pkt_mark] !== base[W.pkt_mark]) {
    odp.push({ t: 'set', text: `set(skb_mark(${hex32(flow[W.pkt_mark]!)}))` });
    base[W.pkt_mark] = flow[W.pkt_mark]!;
  }
  return { slowAction: slow };
}

/** Pop the base's VLAN headers that differ from the flow's, push the flow's. */
function commitVlan(flow: Flow, base: Flow, odp: OdpAction[]): void {
  let bn = vlanCount(base) - 1;
  let fn = vlanCount(flow) - 1;
  // Skip the common headers, innermost first.
  const bv = (i: number): number => base[W.vlan0 + i]!;
  const fv = (i: number): number => flow[W.vlan0 + i]!;
  while (bn >= 0 && fn >= 0 && bv(bn) === fv(fn)) {
    bn--;
    fn--;
  }
  for (; bn >= 0; bn--) odp.push({ t: 'pop_vlan' });
  for (; fn >= 0; fn--) odp.push({ t: 'push_vlan', tpid: fv(fn) >>> 16, tci: fv(fn) & 0xffff });
  base[W.vlan0] = flow[W.vlan0]!;
  base[W.vlan1] = flow[W.vlan1]!;
}
