// The flow model's actions on the wire (OpenFlow 1.4 with Nicira extensions), both ways, encoded
// the way ovs-ofctl encodes the same text so the switch keeps (and dumps) the same thing:
//   output         OFPAT_OUTPUT              in_port     OFPAT_OUTPUT to OFPP_IN_PORT
//   output_reg     NXAST_OUTPUT_REG          resubmit    NXAST_RESUBMIT_TABLE (in_port OFPP_IN_PORT)
//   set_field      OFPAT_SET_FIELD (OXM)     load        NXAST_REG_LOAD (64 bits a piece)
//   move           NXAST_REG_MOVE            controller  NXAST_CONTROLLER2 with userdata (none: output to CONTROLLER)
//   group          OFPAT_GROUP               meter       the OFPIT_METER instruction (first, as OpenFlow 1.4 wants)
//   conjunction    NXAST_CONJUNCTION         ct          NXAST_CT, nat inside as NXAST_NAT
//   ct_clear       NXAST_CT_CLEAR            dec_ttl     OFPAT_DEC_NW_TTL
// Decoding gives back the same model values; what it cannot express comes back as a reason.
import { FIELDS, type FieldName } from '../fields.js';
import type { Action, RegField, Slice } from '../flow.js';
import { REGISTERS } from '../pipeline.js';
import { NAT_R, type NatSpec, formatNat, parseNat, userdataBytes, userdataText } from './openflow-args.js';
import { FlowEncodeError, type Prereqs, decodeHeader, headerOf, headerWord } from './openflow-oxm.js';
import { NX_VENDOR, OFPP, type Writer, portFromWire, portToWire, readUint } from './openflow-wire.js';

const AT = { OUTPUT: 0, GROUP: 22, DEC_NW_TTL: 24, SET_FIELD: 25, EXPERIMENTER: 0xffff } as const;
const NXAST = {
  RESUBMIT: 1, REG_MOVE: 6, REG_LOAD: 7, RESUBMIT_TABLE: 14, OUTPUT_REG: 15, OUTPUT_REG2: 32, REG_LOAD2: 33,
  CONJUNCTION: 34, CT: 35, NAT: 36, CONTROLLER2: 37, CT_CLEAR: 43,
} as const;
const IT = { GOTO_TABLE: 1, WRITE_METADATA: 2, WRITE_ACTIONS: 3, APPLY_ACTIONS: 4, CLEAR_ACTIONS: 5, METER: 6 } as const;
const OFPP10_IN_PORT = 0xfff8;
const CT_COMMIT = 1;
const CT_RECIRC_NONE = 0xff;
const NXAC2PT_USERDATA = 3;

const ofsNbits = (ofs: number, nbits: number): number => (ofs << 6) | (nbits - 1);

// ---- declared registers: a slice read back is the RegField pipeline.ts declares for it ----

const DECLARED = new Map<string, RegField>(Object.values(REGISTERS).map((r) => [`${r.field}/${r.ofs}/${r.nbits}`, r]));

export function regFieldOf(field: FieldName, ofs: number, nbits: number): RegField {
  return DECLARED.get(`${field}/${ofs}/${nbits}`)
    ?? { name: `${FIELDS[field].nxm}[${ofs}..${ofs + nbits - 1}]`, field, ofs, nbits, purpose: 'read back from the switch' };
}

// ---- encoding ----

function nxHeader(w: Writer, subtype: number): number {
  const at = w.len;
  w.u16(AT.EXPERIMENTER);
  w.u16(0);
  w.u32(NX_VENDOR);
  w.u16(subtype);
  return at;
}

const endAction = (w: Writer, at: number): void => {
  w.pad8(at);
  w.patch16(at + 2, w.len - at);
};

function sliceHeader(s: Slice | RegField, p: Prereqs): number {
  const f = FIELDS[s.field];
  if (s.nbits < 1 || s.ofs < 0 || s.ofs + s.nbits > f.bits) throw new FlowEncodeError(`${s.field}[${s.ofs}..${s.ofs + s.nbits - 1}] is outside the ${f.bits}-bit field`);
  return headerWord(headerOf(s.field, p, true));
}

function writeOutput(w: Writer, port: number, maxLen = 0): void {
  w.u16(AT.OUTPUT);
  w.u16(16);
  w.u32(port);
  w.u16(maxLen);
  w.zeros(6);
}

function writeNat(w: Writer, text: string): void {
  const spec = parseNat(text);
  const at = nxHeader(w, NXAST.NAT);
  w.zeros(2);
  w.u16(spec.flags);
  const presentAt = w.len;
  w.u16(0);
  let present = 0;
  if (spec.af === 4) {
    if (spec.min !== 0n) { w.u32(Number(spec.min)); present |= NAT_R.V4_MIN; }
    if (spec.max !== 0n) { w.u32(Number(spec.max)); present |= NAT_R.V4_MAX; }
  } else if (spec.af === 6) {
    if (spec.min !== 0n) { w.uint(spec.min, 16); present |= NAT_R.V6_MIN; }
    if (spec.max !== 0n) { w.uint(spec.max, 16); present |= NAT_R.V6_MAX; }
  }
  if (spec.af !== null) {
    if (spec.portMin !== 0) { w.u16(spec.portMin); present |= NAT_R.P_MIN; }
    if (spec.portMax !== 0) { w.u16(spec.portMax); present |= NAT_R.P_MAX; }
  }
  w.patch16(presentAt, present);
  endAction(w, at);
}

function writeLoad(w: Writer, dst: RegField, value: bigint, p: Prereqs): void {
  sliceHeader(dst, p);
  const hdr = headerWord(headerOf(dst.field, p, true));
  // As OVS's next_load_segment: at most 64 bits per NXAST_REG_LOAD.
  for (let done = 0; done < dst.nbits; done += 64) {
    const n = Math.min(64, dst.nbits - done);
    const at = nxHeader(w, NXAST.REG_LOAD);
    w.u16(ofsNbits(dst.ofs + done, n));
    w.u32(hdr);
    w.u64((value >> BigInt(done)) & ((1n << BigInt(n)) - 1n));
    endAction(w, at);
  }
}

function writeAction(w: Writer, a: Action, p: Prereqs): void {
  switch (a.type) {
    case 'output':
      writeOutput(w, portToWire(a.port));
      return;
    case 'in_port':
      writeOutput(w, OFPP.IN_PORT);
      return;
    case 'output_reg': {
      const at = nxHeader(w, NXAST.OUTPUT_REG);
      const hdr = sliceHeader(a.src, p);
      w.u16(ofsNbits(a.src.ofs, a.src.nbits));
      w.u32(hdr);
      w.u16(0xffff);
      endAction(w, at);
      return;
    }
    case 'resubmit': {
      if (a.table < 0 || a.table > 254) throw new FlowEncodeError(`resubmit to table ${a.table}`);
      const at = nxHeader(w, NXAST.RESUBMIT_TABLE);
      w.u16(OFPP10_IN_PORT);
      w.u8(a.table);
      endAction(w, at);
      return;
    }
    case 'set_field': {
      const at = w.len;
      w.u16(AT.SET_FIELD);
      w.u16(0);
      const hd = headerOf(a.field, p);
      w.u32(headerWord(hd));
      w.uint(a.field === 'in_port' ? BigInt(portToWire(Number(a.value))) : a.value, hd.bytes);
      endAction(w, at);
      return;
    }
    case 'load':
      writeLoad(w, a.dst, a.value, p);
      return;
    case 'move': {
      if (a.src.nbits !== a.dst.nbits) throw new FlowEncodeError(`move of ${a.src.nbits} bits into ${a.dst.nbits} bits`);
      const at = nxHeader(w, NXAST.REG_MOVE);
      const src = sliceHeader(a.src, p);
      const dst = sliceHeader(a.dst, p);
      w.u16(a.src.nbits);
      w.u16(a.src.ofs);
      w.u16(a.dst.ofs);
      w.u32(src);
      w.u32(dst);
      endAction(w, at);
      return;
    }
    case 'controller': {
      const data = userdataBytes(a.userdata);
      if (data.length === 0) {
        writeOutput(w, OFPP.CONTROLLER, 0xffff);
        return;
      }
      const at = nxHeader(w, NXAST.CONTROLLER2);
      w.zeros(6);
      const prop = w.len;
      w.u16(NXAC2PT_USERDATA);
      w.u16(4 + data.length);
      w.bytes(data);
      w.pad8(prop);
      endAction(w, at);
      return;
    }
    case 'group':
      w.u16(AT.GROUP);
      w.u16(8);
      w.u32(a.id);
      return;
    case 'meter':
      throw new FlowEncodeError('meter must be the first action (OpenFlow 1.4 meters are an instruction before the actions), and cannot be in a group bucket');
    case 'conjunction': {
      if (a.nClauses < 2 || a.nClauses > 64 || a.clause < 1 || a.clause > a.nClauses) {
        throw new FlowEncodeError(`conjunction(${a.id},${a.clause}/${a.nClauses}): clause must be 1..n and n 2..64`);
      }
      const at = nxHeader(w, NXAST.CONJUNCTION);
      w.u8(a.clause - 1);
      w.u8(a.nClauses);
      w.u32(a.id);
      endAction(w, at);
      return;
    }
    case 'ct': {
      const at = nxHeader(w, NXAST.CT);
      w.u16(a.commit ? CT_COMMIT : 0);
      if (a.zone === null || typeof a.zone === 'number') {
        w.u32(0);
        w.u16(a.zone ?? 0);
      } else {
        if (a.zone.nbits !== 16) throw new FlowEncodeError(`ct zone from ${a.zone.name} must be 16 bits (is ${a.zone.nbits})`);
        w.u32(sliceHeader(a.zone, p));
        w.u16(ofsNbits(a.zone.ofs, a.zone.nbits));
      }
      w.u8(a.table ?? CT_RECIRC_NONE);
      w.zeros(3);
      w.u16(0); // alg
      if (a.nat !== null) writeNat(w, a.nat);
      w.patch16(at + 2, w.len - at);
      return;
    }
    case 'ct_clear': {
      const at = nxHeader(w, NXAST.CT_CLEAR);
      endAction(w, at);
      return;
    }
    case 'dec_ttl':
      w.u16(AT.DEC_NW_TTL);
      w.u16(8);
      w.zeros(4);
      return;
  }
}

/** Actions as an action list (group buckets). */
export function writeActionList(w: Writer, actions: readonly Action[], p: Prereqs): void {
  for (const a of actions) writeAction(w, a, p);
}

/** A flow's actions as OpenFlow 1.4 instructions: meter (if first), then apply-actions; none for drop. */
export function writeInstructions(w: Writer, actions: readonly Action[], p: Prereqs): void {
  let i = 0;
  const first = actions[0];
  if (first?.type === 'meter') {
    w.u16(IT.METER);
    w.u16(8);
    w.u32(first.id);
    i = 1;
  }
  if (i >= actions.length) return;
  const at = w.len;
  w.u16(IT.APPLY_ACTIONS);
  w.u16(0);
  w.zeros(4);
  for (; i < actions.length; i++) writeAction(w, actions[i]!, p);
  w.patch16(at + 2, w.len - at);
}

// ---- decoding ----

/** Actions read back, or why they are not ours (then the flow or group is foreign). */
export interface DecodedActions {
  actions: Action[];
  unknown: string | null;
}

function sliceFrom(word: number, ofs: number, nbits: number): Slice | string {
  const known = decodeHeader(word);
  if (!known) return `field ${(word >>> 16).toString(16)}:${(word >>> 9) & 0x7f}`;
  if (known.name === 'in_port' && known.bytes === 2 && ofs + nbits > 16) return 'in_port slice';
  return { field: known.name, ofs, nbits };
}

function decodeNat(b: Buffer, off: number, len: number): string | null {
  const flags = b.readUInt16BE(off + 12);
  const present = b.readUInt16BE(off + 14);
  const spec: NatSpec = { flags, af: null, min: 0n, max: 0n, portMin: 0, portMax: 0 };
  let at = off + 16;
  const end = off + len;
  const take = (n: number): bigint | null => {
    if (at + n > end) return null;
    const v = readUint(b, at, n);
    at += n;
    return v;
  };
  if (present & NAT_R.V4_MIN) { spec.af = 4; spec.min = take(4) ?? -1n; }
  if (present & NAT_R.V4_MAX) spec.max = take(4) ?? -1n;
  if (present & NAT_R.V6_MIN) { spec.af = 6; spec.min = take(16) ?? -1n; }
  if (present & NAT_R.V6_MAX) spec.max = take(16) ?? -1n;
  if (present & NAT_R.P_MIN) spec.portMin = Number(take(2) ?? -1n);
  if (present & NAT_R.P_MAX) spec.portMax = Number(take(2) ?? -1n);
  if (spec.min < 0n || spec.max < 0n || spec.portMin < 0 || spec.portMax < 0) return null;
  return formatNat(spec);
}

function decodeNx(b: Buffer, off: number, len: number, out: Action[]): string | null {
  const subtype = b.readUInt16BE(off + 8);
  switch (subtype) {
    case NXAST.RESUBMIT_TABLE: {
      const inPort = b.readUInt16BE(off + 10);
      const table = b[off + 12]!;
      if (inPort !== OFPP10_IN_PORT || table === 0xff) return 'resubmit with an in_port';
      out.push({ type: 'resubmit', table });
      return null;
    }
    case NXAST.REG_LOAD: {
      const on = b.readUInt16BE(off + 10);
      const s = sliceFrom(b.readUInt32BE(off + 12), on >> 6, (on & 0x3f) + 1);
      if (typeof s === 'string') return `load into ${s}`;
      const value = b.readBigUInt64BE(off + 16);
      const prev = out[out.length - 1];
      // The second 64-bit piece of a wider load (see writeLoad) joins the first.
      if (prev?.type === 'load' && prev.dst.field === s.field && prev.dst.nbits % 64 === 0 && prev.dst.ofs + prev.dst.nbits === s.ofs) {
        out[out.length - 1] = { type: 'load', dst: regFieldOf(s.field, prev.dst.ofs, prev.dst.nbits + s.nbits), value: prev.value | (value << BigInt(prev.dst.nbits)) };
      } else {
        out.push({ type: 'load', dst: regFieldOf(s.field, s.ofs, s.nbits), value });
      }
      return null;
    }
    case NXAST.REG_MOVE: {
      const nbits = b.readUInt16BE(off + 10);
      const src = sliceFrom(b.readUInt32BE(off + 16), b.readUInt16BE(off + 12), nbits);
      const dst = sliceFrom(b.readUInt32BE(off + 20), b.readUInt16BE(off + 14), nbits);
      if (typeof src === 'string') return `move from ${src}`;
      if (typeof dst === 'string') return `move into ${dst}`;
      out.push({ type: 'move', src, dst });
      return null;
    }
    case NXAST.OUTPUT_REG:
    case NXAST.OUTPUT_REG2: {
      const on = b.readUInt16BE(off + 10);
      const word = subtype === NXAST.OUTPUT_REG ? b.readUInt32BE(off + 12) : b.readUInt32BE(off + 14);
      const maxLen = subtype === NXAST.OUTPUT_REG ? b.readUInt16BE(off + 16) : b.readUInt16BE(off + 12);
      const s = sliceFrom(word, on >> 6, (on & 0x3f) + 1);
      if (typeof s === 'string') return `output from ${s}`;
      if (maxLen !== 0xffff) return 'output_reg with max_len';
      out.push({ type: 'output_reg', src: regFieldOf(s.field, s.ofs, s.nbits) });
      return null;
    }
    case NXAST.CONJUNCTION:
      out.push({ type: 'conjunction', clause: b[off + 10]! + 1, nClauses: b[off + 11]!, id: b.readUInt32BE(off + 12) });
      return null;
    case NXAST.CONTROLLER2: {
      let userdata: string | null = null;
      for (let at = off + 16; at + 4 <= off + len;) {
        const type = b.readUInt16BE(at);
        const plen = b.readUInt16BE(at + 2);
        if (plen < 4) return 'controller property';
        if (type !== NXAC2PT_USERDATA) return `controller property ${type}`;
        userdata = userdataText(b.subarray(at + 4, at + plen));
        at += Math.ceil(plen / 8) * 8;
      }
      if (userdata === null) return 'controller without userdata';
      out.push({ type: 'controller', userdata });
      return null;
    }
    case NXAST.CT: {
      const flags = b.readUInt16BE(off + 10);
      const zoneSrc = b.readUInt32BE(off + 12);
      const zoneWord = b.readUInt16BE(off + 16);
      const recirc = b[off + 18]!;
      const alg = b.readUInt16BE(off + 22);
      if (flags & ~CT_COMMIT) return 'ct force';
      if (alg !== 0) return 'ct alg';
      let zone: number | RegField = zoneWord;
      if (zoneSrc !== 0) {
        const s = sliceFrom(zoneSrc, zoneWord >> 6, (zoneWord & 0x3f) + 1);
        if (typeof s === 'string') return `ct zone from ${s}`;
        zone = regFieldOf(s.field, s.ofs, s.nbits);
      }
      let nat: string | null = null;
      for (let at = off + 24; at + 10 <= off + len;) {
        const alen = b.readUInt16BE(at + 2);
        if (alen < 8 || b.readUInt16BE(at) !== AT.EXPERIMENTER || b.readUInt32BE(at + 4) !== NX_VENDOR || b.readUInt16BE(at + 8) !== NXAST.NAT || nat !== null) {
          return 'ct with actions other than nat';
        }
        nat = decodeNat(b, at, alen);
        if (nat === null) return 'nat range';
        at += alen;
      }
      // ct(zone=0) and ct() are the same action; the model writes the zone only when it is set.
      out.push({ type: 'ct', commit: (flags & CT_COMMIT) !== 0, zone: zone === 0 ? null : zone, table: recirc === CT_RECIRC_NONE ? null : recirc, nat });
      return null;
    }
    case NXAST.CT_CLEAR:
      out.push({ type: 'ct_clear' });
      return null;
    default:
      return `Nicira action ${subtype}`;
  }
}

/** An action list (apply-actions or a bucket) from `off` to `end`. */
export function readActionList(b: Buffer, off: number, end: number, out: Action[]): string | null {
  for (let at = off; at + 4 <= end;) {
    const type = b.readUInt16BE(at);
    const len = b.readUInt16BE(at + 2);
    if (len < 8 || at + len > end) return 'action length';
    let unknown: string | null = null;
    switch (type) {
      case AT.OUTPUT: {
        const port = b.readUInt32BE(at + 4);
        const maxLen = b.readUInt16BE(at + 8);
        if (port === OFPP.IN_PORT) out.push({ type: 'in_port' });
        else if (port === OFPP.CONTROLLER) {
          if (maxLen === 0xffff) out.push({ type: 'controller', userdata: '' });
          else unknown = 'output to CONTROLLER with max_len';
        } else out.push({ type: 'output', port: portFromWire(port) });
        break;
      }
      case AT.GROUP:
        out.push({ type: 'group', id: b.readUInt32BE(at + 4) });
        break;
      case AT.DEC_NW_TTL:
        out.push({ type: 'dec_ttl' });
        break;
      case AT.SET_FIELD: {
        const word = b.readUInt32BE(at + 4);
        const known = decodeHeader(word);
        const bytes = word & 0xff;
        if (!known || known.bytes !== bytes || (word & 0x100) !== 0) {
          unknown = 'set_field of a field not ours';
          break;
        }
        const value = readUint(b, at + 8, bytes);
        out.push({ type: 'set_field', field: known.name, value: known.name === 'in_port' ? BigInt(portFromWire(Number(value))) : value });
        break;
      }
      case AT.EXPERIMENTER:
        unknown = len >= 10 && b.readUInt32BE(at + 4) === NX_VENDOR ? decodeNx(b, at, len, out) : 'experimenter action';
        break;
      default:
        unknown = `action type ${type}`;
    }
    if (unknown !== null) return unknown;
    at += len;
  }
  return null;
}

/** A flow's instructions (from a flow-stats entry) back to the model's action list. */
export function readInstructions(b: Buffer, off: number, end: number): DecodedActions {
  const actions: Action[] = [];
  let meter: Action | null = null;
  for (let at = off; at + 4 <= end;) {
    const type = b.readUInt16BE(at);
    const len = b.readUInt16BE(at + 2);
    if (len < 4 || at + len > end) return { actions, unknown: 'instruction length' };
    if (type === IT.METER) {
      meter = { type: 'meter', id: b.readUInt32BE(at + 4) };
    } else if (type === IT.APPLY_ACTIONS) {
      const unknown = readActionList(b, at + 8, at + len, actions);
      if (unknown !== null) return { actions, unknown };
    } else {
      const name = Object.entries(IT).find(([, v]) => v === type)?.[0] ?? String(type);
      return { actions, unknown: `instruction ${name}` };
    }
    at += len;
  }
  return { actions: meter ? [meter, ...actions] : actions, unknown: null };
}
