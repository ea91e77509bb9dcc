// Matches: parse ovs-ofctl match syntax, normalize prerequisites as OVS does, test a packet,
// and print in OVS's canonical order (lib/match.c's order for the fields we know).
import { FIELDS, FieldError, type FieldName, type FieldSpec, formatValue, mask, parseValue } from './fields.js';

export interface MatchField {
  value: bigint;
  mask: bigint;
}
export type Match = Map<FieldName, MatchField>;
export type Packet = Map<FieldName, bigint>;

/** Protocol keywords and the fields they set (shared with trace's flow syntax). */
export const SHORTHANDS: Record<string, [FieldName, bigint][]> = {
  ip: [['dl_type', 0x0800n]],
  arp: [['dl_type', 0x0806n]],
  icmp: [['dl_type', 0x0800n], ['nw_proto', 1n]],
  tcp: [['dl_type', 0x0800n], ['nw_proto', 6n]],
  udp: [['dl_type', 0x0800n], ['nw_proto', 17n]],
};

function parseMasked(spec: FieldSpec, text: string): MatchField {
  const full = mask(spec.bits);
  const slash = text.indexOf('/');
  if (slash < 0) return { value: parseValue(spec, text) & full, mask: full };
  const v = parseValue(spec, text.slice(0, slash));
  const m = text.slice(slash + 1);
  let mk: bigint;
  if (spec.kind === 'ip' && /^\d+$/.test(m)) {
    const n = Number(m);
    if (n > 32) throw new FieldError(`${text}: prefix too long`);
    mk = n === 0 ? 0n : (full << BigInt(32 - n)) & full;
  } else {
    mk = parseValue(spec, m) & full;
  }
  return { value: v & mk, mask: mk };
}

/** Parse `k=v,k=v,shorthand,...`; returns the match and the normalization warnings. */
export function parseMatch(text: string): { match: Match; warnings: string[] } {
  const match: Match = new Map();
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq < 0) {
      const sh = SHORTHANDS[item];
      if (!sh) throw new FieldError(`unknown keyword ${item}`);
      for (const [f, v] of sh) match.set(f, { value: v, mask: mask(FIELDS.get(f)!.bits) });
      continue;
    }
    const name = item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (name === 'dl_vlan') {
      const vid = BigInt(value);
      match.set('vlan_tci', { value: 0x1000n | (vid & 0xfffn), mask: 0x1fffn });
      continue;
    }
    const spec = FIELDS.get(name);
    if (!spec) throw new FieldError(`unknown field ${name}`);
    match.set(spec.name, parseMasked(spec, value));
  }
  return normalize(match);
}

/** OVS drops a field whose prerequisites are not in the match (and says so). */
function normalize(match: Match): { match: Match; warnings: string[] } {
  const warnings: string[] = [];
  const dlType = match.get('dl_type');
  const nwProto = match.get('nw_proto');
  for (const [name, f] of [...match]) {
    const needs = FIELDS.get(name)!.needs;
    if (!needs) continue;
    const okType = dlType !== undefined && dlType.mask === 0xffffn && needs.dlType.includes(dlType.value);
    const okProto = !needs.nwProto || (nwProto !== undefined && nwProto.mask === 0xffn && needs.nwProto.includes(nwProto.value));
    if (!okType || !okProto) {
      match.delete(name);
      warnings.push(`${name}=${formatValue(FIELDS.get(name)!, f.value)} dropped: prerequisites not met`);
    }
  }
  return { match, warnings };
}

export function matches(m: Match, p: Packet): boolean {
  for (const [name, f] of m) if (((p.get(name) ?? 0n) & f.mask) !== f.value) return false;
  return true;
}

/** Order of fields in OVS's printed matches (regs, tunnel, metadata, in_port, L2, L3, L4). */
const ORDER: FieldName[] = [
  ...Array.from({ length: 16 }, (_, i) => `reg${i}` as FieldName),
  'tun_id', 'tun_src', 'tun_dst', 'metadata', 'in_port', 'vlan_tci', 'dl_src', 'dl_dst', 'dl_type',
  'arp_spa', 'arp_tpa', 'arp_op', 'arp_sha', 'arp_tha',
  'nw_src', 'nw_dst', 'nw_proto', 'nw_tos', 'nw_ttl', 'tp_src', 'tp_dst',
];

function formatField(name: FieldName, f: MatchField): string {
  const spec = FIELDS.get(name)!;
  const full = mask(spec.bits);
  if (name === 'vlan_tci' && f.mask === 0x1fffn && (f.value & 0x1000n) !== 0n) return `dl_vlan=${f.value & 0xfffn}`;
  if (f.mask === full) return `${name}=${formatValue(spec, f.value)}`;
  if (spec.kind === 'ip') {
    const ones = f.mask.toString(2).replace(/0+$/, '');
    if (/^1*$/.test(ones) && f.mask.toString(2).length === 32) return `${name}=${formatValue(spec, f.value)}/${ones.length}`;
  }
  return `${name}=${formatValue(spec, f.value)}/${formatValue(spec, f.mask)}`;
}

/** The shorthand OVS prints for the match's protocol, if any. */
function shorthand(m: Match): { text: string; consumed: FieldName[] } | null {
  const dl = m.get('dl_type');
  if (!dl || dl.mask !== 0xffffn) return null;
  if (dl.value === 0x0806n) return { text: 'arp', consumed: ['dl_type'] };
  if (dl.value !== 0x0800n) return null;
  const p = m.get('nw_proto');
  if (p && p.mask === 0xffn) {
    const name = p.value === 1n ? 'icmp' : p.value === 6n ? 'tcp' : p.value === 17n ? 'udp' : null;
    if (name) return { text: name, consumed: ['dl_type', 'nw_proto'] };
  }
  return { text: 'ip', consumed: ['dl_type'] };
}

export function formatMatch(m: Match): string {
  const parts: string[] = [];
  const sh = shorthand(m);
  if (sh) parts.push(sh.text);
  for (const name of ORDER) {
    if (sh?.consumed.includes(name)) continue;
    const f = m.get(name);
    if (f && f.mask !== 0n) parts.push(formatField(name, f));
  }
  return parts.join(',');
}

/** Same fields, same masks, same values. */
export function sameMatch(a: Match, b: Match): boolean {
  if (a.size !== b.size) return false;
  for (const [k, f] of a) {
    const g = b.get(k);
    if (!g || g.mask !== f.mask || g.value !== f.value) return false;
  }
  return true;
}
