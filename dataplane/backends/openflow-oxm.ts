// OXM/NXM headers for the fields of fields.ts, and matches on the wire (ofp_match, OXM type).
// A field has one header to send in matches (fields.ts: OXM where OpenFlow has one, else Nicira's)
// and, in actions that name a field (load, move, output_reg, ct zone), the header OVS itself
// uses there (NXM when the field has one). Decoding accepts every header OVS may answer with.
// tp_src/tp_dst are TCP, UDP or SCTP ports by the flow's nw_proto, and icmp_type/icmp_code
// ICMPv6's when dl_type is IPv6, as ovs-ofctl resolves them.
import { ETH_TYPE, FIELDS, FIELD_RANK, type FieldName, IP_PROTO, fullMask } from '../fields.js';
import type { Match, MatchField } from '../flow.js';
import { type Writer, portFromWire, portToWire, readUint } from './openflow-wire.js';

/** A flow the codec cannot put on the wire (the flow is wrong, not the switch). */
export class FlowEncodeError extends Error {}

export interface Header {
  readonly cls: number;
  readonly field: number;
  readonly bytes: number;
}

const OXM = 0x8000;
const NXM0 = 0x0000;
const NXM1 = 0x0001;
const IPPROTO_SCTP = 132;

const h = (cls: number, field: number, bytes: number): Header => ({ cls, field, bytes });

/** What a match or an action knows of the packet: the match's dl_type and nw_proto, if exact. */
export interface Prereqs {
  dlType?: number;
  nwProto?: number;
}

export function prereqsOf(match: Match): Prereqs {
  const p: Prereqs = {};
  for (const m of match) {
    if (m.mask !== null) continue;
    if (m.field === 'dl_type') p.dlType = Number(m.value);
    else if (m.field === 'nw_proto') p.nwProto = Number(m.value);
  }
  return p;
}

function transportHeader(field: 'tp_src' | 'tp_dst', p: Prereqs, inAction: boolean): Header {
  const dst = field === 'tp_dst' ? 1 : 0;
  // In a match the prerequisite must be there; in a group bucket (no match) TCP, as ovs-ofctl reads tp_*.
  if (p.nwProto === undefined && !inAction) throw new FlowEncodeError(`${field} needs nw_proto (tcp, udp or sctp) in the match`);
  switch (p.nwProto ?? IP_PROTO.tcp) {
    case IP_PROTO.tcp: return inAction ? h(NXM0, 9 + dst, 2) : h(OXM, 13 + dst, 2);
    case IP_PROTO.udp: return inAction ? h(NXM0, 11 + dst, 2) : h(OXM, 15 + dst, 2);
    case IPPROTO_SCTP: return h(OXM, 17 + dst, 2);
    default: throw new FlowEncodeError(`${field} needs nw_proto tcp, udp or sctp in the match (has ${p.nwProto})`);
  }
}

/**
 * Each field's header in matches (OXM where OpenFlow has one, else Nicira's), made once: a commit
 * asks for one per field of every flow.
 */
const MATCH_HEADERS = Object.fromEntries((Object.keys(FIELDS) as FieldName[]).map((n) => [n, h(FIELDS[n].oxmClass, FIELDS[n].oxmField, FIELDS[n].bytes)])) as Readonly<Record<FieldName, Header>>;

/** Nicira headers OVS puts in actions (nxm_header_from_mff: the OpenFlow 1.0 view of a field). */
const NXM_IN_ACTIONS: Partial<Record<FieldName, Header>> = {
  dl_dst: h(NXM0, 1, 6), dl_src: h(NXM0, 2, 6), dl_type: h(NXM0, 3, 2), nw_proto: h(NXM0, 6, 1),
  nw_src: h(NXM0, 7, 4), nw_dst: h(NXM0, 8, 4), arp_op: h(NXM0, 15, 2), arp_spa: h(NXM0, 16, 4), arp_tpa: h(NXM0, 17, 4),
  arp_sha: h(NXM1, 17, 6), arp_tha: h(NXM1, 18, 6), ipv6_src: h(NXM1, 19, 16), ipv6_dst: h(NXM1, 20, 16), tun_id: h(NXM1, 16, 8),
};

/** The header of a field in a match (OXM where it exists) or in an action (as OVS writes it). */
export function headerOf(name: FieldName, p: Prereqs, inAction = false): Header {
  if (name === 'tp_src' || name === 'tp_dst') return transportHeader(name, p, inAction);
  if ((name === 'icmp_type' || name === 'icmp_code') && p.dlType === ETH_TYPE.ipv6) {
    const code = name === 'icmp_code' ? 1 : 0;
    return inAction ? h(NXM1, 21 + code, 1) : h(OXM, 29 + code, 1);
  }
  if (inAction) {
    if (name === 'icmp_type') return h(NXM0, 13, 1);
    if (name === 'icmp_code') return h(NXM0, 14, 1);
    const nx = NXM_IN_ACTIONS[name];
    if (nx) return nx;
  }
  return MATCH_HEADERS[name];
}

export const headerWord = (hd: Header, masked = false): number =>
  (hd.cls * 0x10000 + (hd.field << 9) + (masked ? 0x100 : 0) + (masked ? hd.bytes * 2 : hd.bytes)) >>> 0;

/** What a header read from the switch means: a field of ours, and how many bytes it carries. */
export interface KnownHeader {
  readonly name: FieldName;
  readonly bytes: number;
}

const DECODE = new Map<number, KnownHeader>();
const key = (cls: number, field: number): number => cls * 128 + field;
for (const [name, f] of Object.entries(FIELDS) as [FieldName, (typeof FIELDS)[FieldName]][]) DECODE.set(key(f.oxmClass, f.oxmField), { name, bytes: f.bytes });
for (const [name, hd] of Object.entries(NXM_IN_ACTIONS) as [FieldName, Header][]) DECODE.set(key(hd.cls, hd.field), { name, bytes: hd.bytes });
for (const [cls, field, name, bytes] of [
  [NXM0, 0, 'in_port', 2], [OXM, 15, 'tp_src', 2], [OXM, 16, 'tp_dst', 2], [OXM, 17, 'tp_src', 2], [OXM, 18, 'tp_dst', 2],
  [NXM0, 9, 'tp_src', 2], [NXM0, 10, 'tp_dst', 2], [NXM0, 11, 'tp_src', 2], [NXM0, 12, 'tp_dst', 2],
  [NXM0, 13, 'icmp_type', 1], [NXM0, 14, 'icmp_code', 1], [OXM, 29, 'icmp_type', 1], [OXM, 30, 'icmp_code', 1],
  [NXM1, 21, 'icmp_type', 1], [NXM1, 22, 'icmp_code', 1],
] as const) DECODE.set(key(cls, field), { name, bytes });

/** A 32-bit header word → the field it names (null: not a field of ours). */
export function decodeHeader(word: number): KnownHeader | null {
  const cls = word >>> 16;
  const field = (word >>> 9) & 0x7f;
  return DECODE.get(key(cls, field)) ?? null;
}

// ---- matches ----

/**
 * The bits of a field the switch keeps: ct_state travels as 32 bits but only its 8 flags
 * exist, so OVS answers an exact ct_state match with mask 0xff.
 */
const KEPT_BITS: Partial<Record<FieldName, bigint>> = { ct_state: 0xffn };
const keptMask = (name: FieldName): bigint => KEPT_BITS[name] ?? fullMask(FIELDS[name]);

/**
 * ofp_match (OXM) for a match: prerequisites first (dl_type, then nw_proto, then the rest in
 * their order), masks applied, all-zero masks left out. Three passes rather than a sorted copy:
 * a commit writes a match per flow, mostly in code V8 has not optimized yet.
 */
export function writeMatch(w: Writer, match: Match, p: Prereqs): void {
  const start = w.len;
  w.u16(1); // OFPMT_OXM
  w.u16(0);
  for (let i = 0; i < match.length; i++) if (match[i]!.field === 'dl_type') writeEntry(w, match[i]!, p);
  for (let i = 0; i < match.length; i++) if (match[i]!.field === 'nw_proto') writeEntry(w, match[i]!, p);
  for (let i = 0; i < match.length; i++) {
    const f = match[i]!.field;
    if (f !== 'dl_type' && f !== 'nw_proto') writeEntry(w, match[i]!, p);
  }
  w.patch16(start + 2, w.len - start);
  w.pad8(start);
}

/** Each field's whole mask, made once. */
const FULL_MASKS = new Map<FieldName, bigint>((Object.keys(FIELDS) as FieldName[]).map((n) => [n, fullMask(FIELDS[n])]));

function writeEntry(w: Writer, m: MatchField, p: Prereqs): void {
  const hd = headerOf(m.field, p);
  const full = FULL_MASKS.get(m.field)!;
  const mask = m.mask === null ? full : m.mask & full;
  if (mask === 0n) return;
  let value = m.value & mask;
  if (m.field === 'in_port') value = BigInt(portToWire(Number(value)));
  if (mask === full) {
    w.u32(headerWord(hd));
    w.uint(value, hd.bytes);
  } else {
    w.u32(headerWord(hd, true));
    w.uint(value, hd.bytes);
    w.uint(mask, hd.bytes);
  }
}

export interface DecodedMatch {
  match: MatchField[];
  /** Fields the match holds that are not ours (as `class:field`); the flow is then foreign. */
  unknown: string[];
}

/** An ofp_match at `off`; returns the match and the offset after it (padding included). */
export function readMatch(b: Buffer, off: number): { decoded: DecodedMatch; next: number } {
  const type = b.readUInt16BE(off);
  const len = b.readUInt16BE(off + 2);
  const next = off + Math.ceil(len / 8) * 8;
  const decoded: DecodedMatch = { match: [], unknown: [] };
  if (type !== 1) {
    decoded.unknown.push(`match type ${type}`);
    return { decoded, next };
  }
  for (let at = off + 4; at + 4 <= off + len;) {
    const word = b.readUInt32BE(at);
    const hasMask = (word & 0x100) !== 0;
    const n = word & 0xff;
    const known = decodeHeader(word);
    const bytes = hasMask ? n / 2 : n;
    if (!known || known.bytes !== bytes || (known.name === 'in_port' && bytes !== 4)) {
      decoded.unknown.push(`${(word >>> 16).toString(16)}:${(word >>> 9) & 0x7f}`);
    } else {
      let value = readUint(b, at + 4, bytes);
      const mask = hasMask ? readUint(b, at + 4 + bytes, bytes) : null;
      if (known.name === 'in_port') value = BigInt(portFromWire(Number(value)));
      const kept = keptMask(known.name);
      decoded.match.push({ field: known.name, value, mask: mask === null || (mask & kept) === kept ? null : mask });
    }
    at += 4 + n;
  }
  decoded.match.sort((x, y) => FIELD_RANK[x.field] - FIELD_RANK[y.field]);
  return { decoded, next };
}

/** The match as the switch keeps it: masks applied, full masks exact, empty masks gone, canonical order. */
export function canonicalMatch(match: Match): Match {
  const out: MatchField[] = [];
  for (const m of match) {
    const full = keptMask(m.field);
    const mask = m.mask === null ? full : m.mask & full;
    if (mask === 0n) continue;
    out.push(mask === full ? { field: m.field, value: m.value & full, mask: null } : { field: m.field, value: m.value & mask, mask });
  }
  return out.sort((x, y) => FIELD_RANK[x.field] - FIELD_RANK[y.field]);
}
