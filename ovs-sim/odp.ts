// Datapath actions: what a translation asks the datapath to do, in order, printed as
// `Datapath actions:` prints them. Header changes are committed lazily, as OVS's
// commit_odp_actions does: before an output (or ct, or a packet-in), the differences between the
// flow and what the datapath's packet already looks like become set() and push/pop_vlan actions.
// Outputs, ct and packet-ins keep a copy of the flow, so a datapath can run them on a packet.
import type { Nat } from './actions.js';
import { ETH_TYPE, FRAG, type Flow, IPPROTO, W, getMac, getWords } from './flow.js';
import { ethText, formatFlags, hexBytes, ipText, ipv6Text, TCP_FLAG_NAMES, flagName } from './text.js';

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
  | { t: 'hash'; text: string }
  | { t: 'tunnel'; text: string }
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

export function formatOdpAction(a: OdpAction, names?: Map<number, string> | null): string {
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
    case 'tunnel':
      return a.text;
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

interface KeyField {
  name: string;
  /** Value text, changed?, mask text when partial. */
  text: (f: Flow) => string;
  differs: (a: Flow, b: Flow) => boolean;
  /** The bits of this field written by actions, if partial (null: whole field). */
  partial?: (wc: Flow) => string | null;
  copy: (from: Flow, to: Flow) => void;
}

const word = (m: keyof typeof W, n = 1, bits = 0xffffffff): Pick<KeyField, 'differs' | 'copy'> => ({
  differs: (a, b) => {
    for (let i = 0; i < n; i++) if (((a[W[m] + i]! ^ b[W[m] + i]!) & bits) !== 0) return true;
    return false;
  },
  copy: (from, to) => {
    for (let i = 0; i < n; i++) to[W[m] + i] = ((to[W[m] + i]! & ~bits) | (from[W[m] + i]! & bits)) >>> 0;
  },
});

const macField = (name: string, m: 'dl_src' | 'dl_dst' | 'arp_sha' | 'arp_tha'): KeyField => ({
  name, text: (f) => ethText(getMac(f, W[m])), ...word(m, 2),
});
const ip4Field = (name: string, m: 'nw_src' | 'nw_dst'): KeyField => ({ name, text: (f) => ipText(f[W[m]]!), ...word(m) });
const ip6Field = (name: string, m: 'ipv6_src' | 'ipv6_dst' | 'nd_target'): KeyField => ({ name, text: (f) => ipv6Text(getWords(f, W[m], 4)), ...word(m, 4) });
const decField = (name: string, m: keyof typeof W, bits = 0xffffffff): KeyField => ({ name, text: (f) => String(f[W[m]]! & bits), ...word(m, 1, bits) });

/**
 * Emit one set() for a key: the fields that differ (all of them, as a plain set, when every
 * field differs), then make the base equal to the flow for those fields.
 */
function commitKey(key: string, fields: KeyField[], flow: Flow, base: Flow, odp: OdpAction[], settable = fields, alwaysFull = false): boolean {
  const changed = settable.filter((k) => k.differs(flow, base));
  if (changed.length === 0) return false;
  const full = alwaysFull || changed.length === fields.length;
  const shown = full ? fields : changed;
  odp.push({ t: 'set', text: `set(${key}(${shown.map((k) => `${k.name}=${k.text(flow)}`).join(',')}))` });
  for (const k of changed) k.copy(flow, base);
  return true;
}

const FRAG_NAMES = ['no', 'first', 'later'];
const fragText = (f: Flow): string => {
  const v = f[W.nw_frag]!;
  return FRAG_NAMES[!(v & FRAG.ANY) ? 0 : v & FRAG.LATER ? 2 : 1]!;
};

export const ETH_KEY: KeyField[] = [macField('src', 'dl_src'), macField('dst', 'dl_dst')];

const IPV4_KEY: KeyField[] = [
  ip4Field('src', 'nw_src'), ip4Field('dst', 'nw_dst'), decField('proto', 'nw_proto'),
  { name: 'tos', text: (f) => hex8(f[W.nw_tos]!), ...word('nw_tos', 1, 0xff) }, decField('ttl', 'nw_ttl'),
  { name: 'frag', text: fragText, ...word('nw_frag', 1, 3) },
];
const hex8 = (v: number): string => (v === 0 ? '0' : `0x${v.toString(16)}`);
const IPV6_KEY: KeyField[] = [
  ip6Field('src', 'ipv6_src'), ip6Field('dst', 'ipv6_dst'),
  { name: 'label', text: (f) => hex32(f[W.ipv6_label]!), ...word('ipv6_label', 1, 0xfffff) }, decField('proto', 'nw_proto'),
  { name: 'tclass', text: (f) => hex8(f[W.nw_tos]!), ...word('nw_tos', 1, 0xff) }, decField('hlimit', 'nw_ttl'),
  { name: 'frag', text: fragText, ...word('nw_frag', 1, 3) },
];
const ARP_KEY: KeyField[] = [
  ip4Field('sip', 'nw_src'), ip4Field('tip', 'nw_dst'), decField('op', 'nw_proto'), macField('sha', 'arp_sha'), macField('tha', 'arp_tha'),
];
const ND_KEY: KeyField[] = [ip6Field('target', 'nd_target'), macField('sll', 'arp_sha'), macField('tll', 'arp_tha')];
const L4_KEY: KeyField[] = [decField('src', 'tp_src', 0xffff), decField('dst', 'tp_dst', 0xffff)];
const ICMP_KEY: KeyField[] = [decField('type', 'tp_src', 0xff), decField('code', 'tp_dst', 0xff)];

export interface CommitResult {
  /** A set the datapath cannot do itself (ARP, ND, ICMP): the flow takes the slow path. */
  slowAction: boolean;
}

const vlanCount = (f: Flow): number => ((f[W.vlan0]! & 0x1000) ? ((f[W.vlan1]! & 0x1000) ? 2 : 1) : 0);

/** Commit the differences between `flow` and `base` as datapath actions; `base` becomes `flow`. */
export function commit(flow: Flow, base: Flow, odp: OdpAction[]): CommitResult {
  let slow = false;
  commitKey('eth', ETH_KEY, flow, base, odp);
  const dl = flow[W.dl_type]!;
  if (dl === ETH_TYPE.IP && base[W.dl_type] === ETH_TYPE.IP) {
    commitKey('ipv4', IPV4_KEY, flow, base, odp, IPV4_KEY.filter((k) => k.name !== 'proto' && k.name !== 'frag'));
  } else if (dl === ETH_TYPE.IPV6 && base[W.dl_type] === ETH_TYPE.IPV6) {
    commitKey('ipv6', IPV6_KEY, flow, base, odp, IPV6_KEY.filter((k) => k.name !== 'proto' && k.name !== 'frag'));
    const p = flow[W.nw_proto];
    if (p === IPPROTO.ICMPV6 && flow[W.tp_dst] === 0 && (flow[W.tp_src] === 135 || flow[W.tp_src] === 136)) {
      if (commitKey('nd', ND_KEY, flow, base, odp)) slow = true;
    }
  } else if ((dl === ETH_TYPE.ARP || dl === ETH_TYPE.RARP) && base[W.dl_type] === dl) {
    if (commitKey('arp', ARP_KEY, flow, base, odp)) slow = true;
  }
  const isIp = dl === ETH_TYPE.IP || dl === ETH_TYPE.IPV6;
  const proto = flow[W.nw_proto]!;
  const laterFrag = (flow[W.nw_frag]! & FRAG.LATER) !== 0;
  if (isIp && !laterFrag && (proto === IPPROTO.TCP || proto === IPPROTO.UDP || proto === IPPROTO.SCTP)) {
    commitKey(proto === IPPROTO.TCP ? 'tcp' : proto === IPPROTO.UDP ? 'udp' : 'sctp', L4_KEY, flow, base, odp);
  }
  if ((dl === ETH_TYPE.IP && proto === IPPROTO.ICMP) || (dl === ETH_TYPE.IPV6 && proto === IPPROTO.ICMPV6)) {
    if (commitKey(dl === ETH_TYPE.IP ? 'icmp' : 'icmpv6', ICMP_KEY, flow, base, odp, ICMP_KEY, true)) slow = true;
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
  // Skip common headers, innermost first.
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

export { formatFlags, hexBytes, TCP_FLAG_NAMES, flagName };
