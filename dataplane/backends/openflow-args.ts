// The two actions whose arguments are text in the model: controller userdata (hex bytes) and
// nat(...) (flags and an address/port range), parsed as ovs-ofctl parses them and printed as OVS
// prints them, so what is sent, what the text path sends and what is read back agree.
import { FlowEncodeError } from './openflow-oxm.js';

// ---- controller userdata: hex bytes as ovs-ofctl reads them ("01", "01.02", "0102") ----

export function userdataBytes(text: string): Buffer {
  const digits = text.replace(/[\s.]/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(digits)) {
    throw new FlowEncodeError(`controller userdata "${text}" is not hex bytes (ovs-ofctl syntax: 01.02 or 0102)`);
  }
  return Buffer.from(digits, 'hex');
}

/** Userdata as ovs-ofctl prints it: two hex digits a byte, dot-separated. */
export const userdataText = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join('.');

// ---- nat(...) arguments: parsed and printed as OVS does (parse_NAT, format_NAT) ----

const NAT_F = { SRC: 1, DST: 2, PERSISTENT: 4, HASH: 8, RANDOM: 16 } as const;
export const NAT_R = { V4_MIN: 1, V4_MAX: 2, V6_MIN: 4, V6_MAX: 8, P_MIN: 16, P_MAX: 32 } as const;

export interface NatSpec {
  flags: number;
  af: 4 | 6 | null;
  min: bigint;
  max: bigint;
  portMin: number;
  portMax: number;
}

function ipv4Parse(s: string): bigint | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) return null;
  return BigInt(((Number(m[1]) << 24) >>> 0) + (Number(m[2]) << 16) + (Number(m[3]) << 8) + Number(m[4]));
}

const ipv4Format = (v: bigint): string => [24, 16, 8, 0].map((s) => Number((v >> BigInt(s)) & 0xffn)).join('.');

function ipv6Parse(s: string): bigint | null {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.split('::').length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (i === items.length - 1 && it.includes('.')) {
        const v4 = ipv4Parse(it);
        if (v4 === null) return null;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else if (/^[0-9a-fA-F]{1,4}$/.test(it)) {
        out.push(parseInt(it, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const [head, tail] = s.split('::') as [string, string | undefined];
  const a = groups(head);
  const b = tail === undefined ? [] : groups(tail);
  if (!a || !b) return null;
  const missing = 8 - a.length - b.length;
  if ((tail === undefined && missing !== 0) || (tail !== undefined && missing < 1)) return null;
  let v = 0n;
  for (const g of [...a, ...new Array<number>(tail === undefined ? 0 : missing).fill(0), ...b]) v = (v << 16n) | BigInt(g);
  return v;
}

/** IPv6 text as inet_ntop writes it (the longest run of two or more zero groups as ::). */
function ipv6Format(v: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((v >> BigInt(16 * i)) & 0xffffn));
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (bestLen < 2) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

function natRange(text: string, spec: NatSpec, whole: string): void {
  const bad = (): never => { throw new FlowEncodeError(`invalid nat range "${text}" in nat(${whole})`); };
  let rest = text;
  const addr = (): [bigint, 4 | 6] => {
    if (rest.startsWith('[')) {
      const end = rest.indexOf(']');
      const v = end < 0 ? null : ipv6Parse(rest.slice(1, end));
      if (v === null) return bad();
      rest = rest.slice(end + 1);
      return [v, 6];
    }
    const v4m = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/.exec(rest);
    if (v4m) {
      rest = rest.slice(v4m[0].length);
      return [ipv4Parse(v4m[0]) ?? bad(), 4];
    }
    // A bare IPv6 address runs over every hex digit, colon and dot (OVS's IPV6_SCAN_FMT), so it
    // cannot carry a port: that needs the [addr] form.
    const s = /^[0-9a-fA-F:.]*/.exec(rest)![0];
    const v = ipv6Parse(s);
    if (v === null) return bad();
    rest = rest.slice(s.length);
    return [v, 6];
  };
  const [min, af] = addr();
  spec.af = af;
  spec.min = min;
  if (rest.startsWith('-')) {
    rest = rest.slice(1);
    const [max, af2] = addr();
    if (af2 !== af || max < min) bad();
    spec.max = max;
  }
  if (rest.startsWith(':')) {
    const m = /^:(\d+)(?:-(\d+))?$/.exec(rest);
    if (!m) return bad();
    spec.portMin = Number(m[1]);
    spec.portMax = m[2] === undefined ? 0 : Number(m[2]);
    if (spec.portMin > 0xffff || spec.portMax > 0xffff || (m[2] !== undefined && spec.portMax < spec.portMin)) bad();
    rest = '';
  }
  if (rest !== '') bad();
}

/** The argument of `nat(...)` as the model holds it ('' for a bare `nat`). */
export function parseNat(text: string): NatSpec {
  const spec: NatSpec = { flags: 0, af: null, min: 0n, max: 0n, portMin: 0, portMax: 0 };
  for (const item of text === '' ? [] : text.split(',')) {
    const eq = item.indexOf('=');
    const k = (eq < 0 ? item : item.slice(0, eq)).trim();
    const v = eq < 0 ? null : item.slice(eq + 1).trim();
    if (k === 'src' || k === 'dst') {
      spec.flags |= k === 'src' ? NAT_F.SRC : NAT_F.DST;
      if (v !== null) natRange(v, spec, text);
    } else if (k === 'persistent' || k === 'hash' || k === 'random') {
      spec.flags |= k === 'persistent' ? NAT_F.PERSISTENT : k === 'hash' ? NAT_F.HASH : NAT_F.RANDOM;
    } else {
      throw new FlowEncodeError(`invalid key "${k}" in nat(${text})`);
    }
  }
  if ((spec.flags & NAT_F.SRC) && (spec.flags & NAT_F.DST)) throw new FlowEncodeError(`nat(${text}): only one of src and dst`);
  if (!(spec.flags & (NAT_F.SRC | NAT_F.DST)) && (spec.flags !== 0 || spec.af !== null)) throw new FlowEncodeError(`nat(${text}): flags and ranges need src or dst`);
  if ((spec.flags & NAT_F.HASH) && (spec.flags & NAT_F.RANDOM)) throw new FlowEncodeError(`nat(${text}): hash and random exclude each other`);
  return spec;
}

/** The argument of `nat(...)` as OVS prints it (flags appear only with a range, as format_NAT does). */
export function formatNat(spec: NatSpec): string {
  if (!(spec.flags & (NAT_F.SRC | NAT_F.DST))) return '';
  let s = spec.flags & NAT_F.SRC ? 'src' : 'dst';
  if (spec.af === null) return s;
  const bracket = spec.af === 6 && spec.portMin !== 0;
  const addr = (v: bigint): string => (spec.af === 4 ? ipv4Format(v) : bracket ? `[${ipv6Format(v)}]` : ipv6Format(v));
  s += `=${addr(spec.min)}`;
  if (spec.max !== 0n && spec.max !== spec.min) s += `-${addr(spec.max)}`;
  if (spec.portMin !== 0) {
    s += `:${spec.portMin}`;
    if (spec.portMax !== 0 && spec.portMax !== spec.portMin) s += `-${spec.portMax}`;
  }
  if (spec.flags & NAT_F.PERSISTENT) s += ',persistent';
  if (spec.flags & NAT_F.HASH) s += ',hash';
  if (spec.flags & NAT_F.RANDOM) s += ',random';
  return s;
}

export const canonicalNat = (text: string): string => formatNat(parseNat(text));
