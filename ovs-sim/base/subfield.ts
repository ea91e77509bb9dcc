// Subfields: `NXM_NX_REG0[0..15]`, `OXM_OF_METADATA[]`, `reg3[5]`: a bit range of a field, as
// load, move, output, learn, ct zone and check_pkt_larger name them (mf_parse_subfield and
// mf_format_subfield), and reading and writing them in a flow.
import type { Flow } from './flow.js';
import { FieldError, type MfField, fieldBySubfieldName, readField, writeField } from './fields.js';
import { type TunTable, tunMetadataRead, tunMetadataWrite } from './tlv.js';

export interface Subfield {
  field: MfField;
  ofs: number;
  nBits: number;
}

/** Width of a field as subfield syntax sees it (tun_metadataN: its mapped length). */
export function fieldBits(f: MfField, tun?: TunTable | null): number {
  if (f.tunMetadata !== undefined) return (tun?.entries.get(f.tunMetadata)?.len ?? 124) * 8;
  return f.nBits;
}

/** Parse a subfield at the start of `s`; returns it and the rest of the string. */
export function parseSubfieldPrefix(s: string, tun?: TunTable | null): { sf: Subfield; rest: string } {
  let nameLen = 0;
  while (nameLen < s.length && s[nameLen] !== '[' && s[nameLen] !== '-') nameLen++;
  let name = s.slice(0, nameLen);
  if (name.length > 2 && name.endsWith('_W')) name = name.slice(0, -2);
  const field = fieldBySubfieldName(name);
  if (!field) throw new FieldError(`${s}: unknown field \`${s.slice(0, nameLen)}'`);
  const width = fieldBits(field, tun);
  let rest = s.slice(nameLen);
  let start = 0;
  let end = width - 1;
  if (rest.startsWith('[')) {
    let m: RegExpExecArray | null;
    if (rest.startsWith('[]')) {
      rest = rest.slice(2);
    } else if ((m = /^\[\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*\]/.exec(rest))) {
      start = Number(m[1]);
      end = Number(m[2]);
      rest = rest.slice(m[0].length);
    } else if ((m = /^\[\s*(-?\d+)\s*\]/.exec(rest))) {
      start = end = Number(m[1]);
      rest = rest.slice(m[0].length);
    } else {
      throw new FieldError(`${s}: syntax error expecting [] or [<bit>] or [<start>..<end>]`);
    }
  }
  if (start > end) throw new FieldError(`${s}: starting bit ${start} is after ending bit ${end}`);
  if (start >= width) throw new FieldError(`${s}: starting bit ${start} is not valid because field is only ${width} bits wide`);
  if (end >= width) throw new FieldError(`${s}: ending bit ${end} is not valid because field is only ${width} bits wide`);
  return { sf: { field, ofs: start, nBits: end - start + 1 }, rest };
}

export function parseSubfield(s: string, tun?: TunTable | null): Subfield {
  const { sf, rest } = parseSubfieldPrefix(s, tun);
  if (rest !== '') throw new FieldError('unexpected input following field syntax');
  return sf;
}

export function formatSubfield(sf: Subfield, tun?: TunTable | null): string {
  const name = sf.field.nxm;
  if (sf.ofs === 0 && sf.nBits === fieldBits(sf.field, tun)) return `${name}[]`;
  if (sf.nBits === 1) return `${name}[${sf.ofs}]`;
  return `${name}[${sf.ofs}..${sf.ofs + sf.nBits - 1}]`;
}

export const bitsMask = (n: number): bigint => (1n << BigInt(n)) - 1n;

/** The field's whole value in a flow (tun_metadataN through the TLV map). */
export function readWhole(f: Flow, field: MfField, tun?: TunTable | null): bigint {
  if (field.tunMetadata !== undefined) return tunMetadataRead(f, field.tunMetadata, tun ?? null)?.value ?? 0n;
  return readField(f, field);
}

export function readSubfield(f: Flow, sf: Subfield, tun?: TunTable | null): bigint {
  return (readWhole(f, sf.field, tun) >> BigInt(sf.ofs)) & bitsMask(sf.nBits);
}

/** Write `value` (the subfield's width) into the subfield. */
export function writeSubfield(f: Flow, sf: Subfield, value: bigint, tun?: TunTable | null): void {
  const mask = bitsMask(sf.nBits) << BigInt(sf.ofs);
  const v = (value << BigInt(sf.ofs)) & mask;
  if (sf.field.tunMetadata !== undefined) {
    tunMetadataWrite(f, sf.field.tunMetadata, tun ?? null, v, mask);
    return;
  }
  writeField(f, sf.field, v, mask);
}
