// Text forms OVS reads and prints: MAC, IPv4 and IPv6 addresses (with masks), hex byte strings,
// flag sets, port numbers, and the key=value tokenizer of ovs-ofctl's flow and action syntax.
import { FieldError } from './fields.js';
import { warn } from './log.js';

// -- Ethernet --

export function ethText(v: number | bigint): string {
  const n = BigInt(v);
  let s = '';
  for (let i = 5; i >= 0; i--) s += `${i < 5 ? ':' : ''}${((n >> BigInt(8 * i)) & 0xffn).toString(16).padStart(2, '0')}`;
  return s;
}

// ETH_SCAN_FMT: six hex numbers, each kept to its low 8 bits as ovs_scan's %hhx does.
const ETH_RE = /^([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+)$/;
export function parseEth(s: string): bigint | null {
  const m = ETH_RE.exec(s);
  if (!m) return null;
  let v = 0n;
  for (let i = 1; i <= 6; i++) v = (v << 8n) | (BigInt(`0x${m[i]!}`) & 0xffn);
  return v;
}

export function ethMaskedText(v: bigint, mask: bigint | null): string {
  return mask === null || mask === 0xffffffffffffn ? ethText(v) : `${ethText(v)}/${ethText(mask)}`;
}

// -- IPv4 --

export const ipText = (v: number | bigint): string => {
  const n = Number(v) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
};

/** IP_SCAN_FMT: four decimal numbers, each kept to its low 8 bits as ovs_scan's %hhu does (10.0.0.256 is 10.0.0.0). */
export function parseIp(s: string): number | null {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (!m) return null;
  const b = m.slice(1, 5).map((x) => Number(BigInt(x) & 0xffn));
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

const prefixMask32 = (n: number): number => (n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0);

/** Contiguous leading ones? Then the prefix length, else -1. */
function cidrBits(mask: bigint, width: number): number {
  let ones = 0;
  for (let i = width - 1; i >= 0 && ((mask >> BigInt(i)) & 1n) === 1n; i--) ones++;
  const expect = ones === 0 ? 0n : ((1n << BigInt(ones)) - 1n) << BigInt(width - ones);
  return expect === mask ? ones : -1;
}

export function ipMaskedText(v: number | bigint, mask: number | bigint | null): string {
  if (mask === null || Number(mask) >>> 0 === 0xffffffff) return ipText(v);
  const bits = cidrBits(BigInt(Number(mask) >>> 0), 32);
  return `${ipText(v)}/${bits >= 0 ? bits : ipText(mask)}`;
}

/** ip_parse_masked. */
export function parseIpMasked(s: string): { value: bigint; mask: bigint } {
  const slash = s.indexOf('/');
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (ip === null) throw new FieldError(`${s}: invalid IP address`);
  if (slash < 0) return { value: BigInt(ip), mask: 0xffffffffn };
  const rest = s.slice(slash + 1);
  const asIp = parseIp(rest);
  if (asIp !== null) return { value: BigInt(ip), mask: BigInt(asIp) };
  if (/^-?\d+$/.test(rest)) {
    const n = Number(rest);
    if (n < 0 || n > 32) throw new FieldError(`${s}: IPv4 network prefix bits not between 0 and 32, inclusive`);
    return { value: BigInt(ip), mask: BigInt(prefixMask32(n)) };
  }
  throw new FieldError(`${s}: invalid IP address`);
}

// -- IPv6 --

/** inet_ntop(AF_INET6): the longest run of two or more zero groups becomes `::`. */
export function ipv6Text(v: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((v >> BigInt(16 * i)) & 0xffffn));
  // IPv4-compatible and IPv4-mapped forms, as glibc prints them.
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && (g[5] === 0xffff || (g[5] === 0 && (g[6] !== 0 || g[7]! > 1)))) {
    const v4 = `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
    return g[5] === 0xffff ? `::ffff:${v4}` : `::${v4}`;
  }
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (bestLen < 2) return g.map((x) => x.toString(16)).join(':');
  const head = g.slice(0, best).map((x) => x.toString(16)).join(':');
  const tail = g.slice(best + bestLen).map((x) => x.toString(16)).join(':');
  return `${head}::${tail}`;
}

export function parseIpv6(s: string): bigint | null {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return null;
  let text = s;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const ip = parseIp(text.slice(lastColon + 1));
    if (ip === null || lastColon < 0) return null;
    text = `${text.slice(0, lastColon + 1)}${(ip >>> 16).toString(16)}:${(ip & 0xffff).toString(16)}`;
  }
  const dbl = text.indexOf('::');
  if (dbl >= 0 && text.indexOf('::', dbl + 1) >= 0) return null;
  const part = (t: string): number[] | null => {
    if (t === '') return [];
    const out: number[] = [];
    for (const h of t.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(h)) return null;
      out.push(parseInt(h, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl >= 0) {
    const a = part(text.slice(0, dbl));
    const b = part(text.slice(dbl + 2));
    if (!a || !b) return null;
    const fill = 8 - a.length - b.length;
    if (fill < 1) return null;
    groups = [...a, ...new Array<number>(fill).fill(0), ...b];
  } else {
    const a = part(text);
    if (!a) return null;
    groups = a;
    if (groups.length !== 8) return null;
  }
  return groups.reduce((acc, x) => (acc << 16n) | BigInt(x), 0n);
}

const prefixMask128 = (n: number): bigint => (n === 0 ? 0n : (((1n << BigInt(n)) - 1n) << BigInt(128 - n)));
const ALL128 = (1n << 128n) - 1n;

export function ipv6MaskedText(v: bigint, mask: bigint | null): string {
  if (mask === null || mask === ALL128) return ipv6Text(v);
  const bits = cidrBits(mask, 128);
  return `${ipv6Text(v)}/${bits >= 0 ? bits : ipv6Text(mask)}`;
}

/** ipv6_parse_masked. */
export function parseIpv6Masked(s: string): { value: bigint; mask: bigint } {
  const slash = s.indexOf('/');
  const ip = parseIpv6(slash < 0 ? s : s.slice(0, slash));
  if (ip === null) throw new FieldError(`${s}: invalid IPv6 address`);
  if (slash < 0) return { value: ip, mask: ALL128 };
  const rest = s.slice(slash + 1);
  if (/^-?\d+$/.test(rest)) {
    const n = Number(rest);
    if (n < 0 || n > 128) throw new FieldError(`${s}: IPv6 network prefix bits not between 0 and 128, inclusive`);
    return { value: ip, mask: prefixMask128(n) };
  }
  const m = parseIpv6(rest);
  if (m === null) throw new FieldError(`${s}: Invalid IPv6 mask`);
  return { value: ip, mask: m };
}

// -- integers --

/** ds_put_hex: the value's bytes in hex without leading zero bytes; `0` for zero. */
export function hexBytes(v: bigint): string {
  if (v === 0n) return '0';
  const h = v.toString(16);
  return `0x${h.length % 2 === 1 ? h : h.replace(/^0/, '')}`;
}

/** parse_int_string: decimal (strtoull, base 0) or 0x hex of any length into nBytes. */
export function parseIntString(s: string, nBytes: number): { value: bigint; rest: string } | 'range' | null {
  const max = (1n << BigInt(8 * nBytes)) - 1n;
  if (/^0[xX]/.test(s)) {
    let i = 2;
    let digits = '';
    while (i < s.length && /[0-9a-fA-F \t\r\n]/.test(s[i]!)) {
      if (!/\s/.test(s[i]!)) digits += s[i];
      i++;
    }
    const stripped = digits.replace(/^0+/, '');
    if (Math.ceil(stripped.length / 2) > nBytes) return 'range';
    return { value: stripped === '' ? 0n : BigInt(`0x${stripped}`), rest: s.slice(i) };
  }
  const m = /^\s*([+-]?)(0[0-7]*|[1-9][0-9]*)/.exec(s);
  if (!m) return null;
  let v = BigInt(m[2]!.length > 1 && m[2]!.startsWith('0') ? `0o${m[2]!.slice(1)}` : m[2]!);
  if (v > 0xffffffffffffffffn) return 'range';
  if (m[1] === '-') v = (1n << 64n) - v;
  if (v > max) return 'range';
  return { value: v, rest: s.slice(m[0].length) };
}

// -- flags --

/** format_flags: names of set bits, low bit first, joined by `del`. */
export function formatFlags(flags: number, name: (bit: number) => string | null, del: string): string {
  if (flags === 0) return '0';
  const parts: string[] = [];
  let bad = 0;
  for (let bit = 1; bit !== 0 && bit <= flags; bit = (bit << 1) >>> 0) {
    if ((flags & bit) === 0) continue;
    const s = name(bit);
    if (s) parts.push(s);
    else bad |= bit;
  }
  if (bad) parts.push(`0x${bad.toString(16)}`);
  return parts.join(del);
}

/** format_flags_masked: `+name-name…` for masked bits, or `a|b` when the mask is all of them. */
export function formatFlagsMasked(flags: number, mask: number, maxMask: number, name: (bit: number) => string | null): string {
  if (mask === maxMask) return formatFlags(flags, name, '|');
  if (mask === 0) return '0/0';
  let out = '';
  for (let bit = 1; bit !== 0 && bit <= mask; bit = (bit << 1) >>> 0) {
    if ((mask & bit) === 0) continue;
    out += `${(flags & bit) !== 0 ? '+' : '-'}${name(bit) ?? '[Unknown]'}`;
  }
  return out;
}

/** parse_flags: `v/m` numbers, `+a-b` (masked) or `a|b|0x4` (exact); errors as OVS words them. */
export function parseFlags(s: string, names: [string, number][], fieldName: string, allowed: number): { value: number; mask: number } {
  const unknown = (rest: string): never => {
    throw new FieldError(`${rest}: unknown ${fieldName} flag(s)`);
  };
  const num = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\/(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(s);
  const toNum = (t: string): number => (/^0[xX]/.test(t) ? parseInt(t, 16) : t.length > 1 && t.startsWith('0') ? parseInt(t, 8) : Number(t));
  if (num) {
    const value = toNum(num[1]!) >>> 0;
    const mask = toNum(num[2]!) >>> 0;
    if (value & ~allowed || mask & ~allowed) unknown(s);
    return { value, mask };
  }
  const sorted = [...names].sort((a, b) => a[1] - b[1]);
  if (s.startsWith('+') || s.startsWith('-')) {
    let value = 0;
    let mask = 0;
    let rest = s;
    while (rest !== '') {
      const set = rest[0] === '+';
      if (rest[0] !== '+' && rest[0] !== '-') throw new FieldError(`${rest}: ${fieldName} must be preceded by '+' (for SET) or '-' (NOT SET)`);
      rest = rest.slice(1);
      const hit = sorted.find(([n]) => rest.startsWith(n) && (rest.length === n.length || rest[n.length] === '+' || rest[n.length] === '-'));
      if (!hit) unknown(rest);
      const [n, bit] = hit!;
      if (mask & bit) throw new FieldError(`${rest}: Each ${fieldName} flag can be specified only once`);
      if (!(bit & allowed)) unknown(rest);
      if (set) value |= bit;
      mask |= bit;
      rest = rest.slice(n.length);
    }
    return { value, mask };
  }
  let value = 0;
  let i = 0;
  while (i < s.length) {
    const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(s.slice(i));
    if (m) {
      const v = toNum(m[1]!);
      if (v & ~allowed) unknown(s);
      value |= v;
      i += m[1]!.length + (s[i + m[1]!.length] === '|' ? 1 : 0);
      continue;
    }
    const hit = sorted.find(([n]) => s.startsWith(n, i) && (s[i + n.length] === '|' || i + n.length === s.length));
    if (!hit) unknown(s);
    if (!(hit![1] & allowed)) unknown(s);
    value |= hit![1];
    i += hit![0].length + (s[i + hit![0].length] === '|' ? 1 : 0);
  }
  return { value, mask: 0xffffffff };
}

export const CT_STATE_NAMES: [string, number][] = [['new', 0x01], ['est', 0x02], ['rel', 0x04], ['rpl', 0x08], ['inv', 0x10], ['trk', 0x20], ['snat', 0x40], ['dnat', 0x80]];
export const TCP_FLAG_NAMES: [string, number][] = [['fin', 0x001], ['syn', 0x002], ['rst', 0x004], ['psh', 0x008], ['ack', 0x010], ['urg', 0x020], ['ece', 0x040], ['cwr', 0x080], ['ns', 0x100], ['[200]', 0x200], ['[400]', 0x400], ['[800]', 0x800]];
export const TUN_FLAG_NAMES: [string, number][] = [['oam', 0x1], ['df', 0x2], ['csum', 0x4], ['key', 0x8]];
export const flagName = (names: [string, number][]) => (bit: number): string | null => names.find(([, b]) => b === bit)?.[0] ?? null;

// -- ports --

export const OFPP = { MAX: 0xff00, UNSET: 0xfff7, IN_PORT: 0xfff8, TABLE: 0xfff9, NORMAL: 0xfffa, FLOOD: 0xfffb, ALL: 0xfffc, CONTROLLER: 0xfffd, LOCAL: 0xfffe, NONE: 0xffff } as const;
const RESERVED: [string, number][] = [['UNSET', OFPP.UNSET], ['IN_PORT', OFPP.IN_PORT], ['TABLE', OFPP.TABLE], ['NORMAL', OFPP.NORMAL], ['FLOOD', OFPP.FLOOD], ['ALL', OFPP.ALL], ['CONTROLLER', OFPP.CONTROLLER], ['LOCAL', OFPP.LOCAL], ['ANY', OFPP.NONE]];

/** Port names for printing (`--names`) and parsing: name ↔ OpenFlow port number. */
export interface PortMap {
  byName: Map<string, number>;
  byNumber: Map<number, string>;
}

/** name_needs_quotes: a name is printed bare only when it is a letter then letters and digits. */
const needsQuotes = (name: string): boolean => !/^[A-Za-z][A-Za-z0-9]*$/.test(name);

/** ofputil_format_port: a reserved port by its name, else the port's name (quoted as JSON when needed), else its number. */
export function portText(port: number, map?: PortMap | null): string {
  const r = RESERVED.find(([, n]) => n === port);
  if (r) return r[0];
  const name = map?.byNumber.get(port);
  if (name !== undefined) return needsQuotes(name) ? JSON.stringify(name) : name;
  return String(port);
}

/** ofputil_port_from_string: a number, a reserved name, or a port name from the map. */
export function parsePort(s: string, map?: PortMap | null): number | null {
  if (s.startsWith('-')) {
    warn('ofp_port', `Negative value ${s} is not a valid port number.`);
    return null;
  }
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n > 0xffffffff) return null;
    if (n < OFPP.MAX) return n;
    if (n < 0xfff8) {
      warn('ofp_port', `port ${n} is a reserved OF1.0 port number that will be translated to ${n + 0xffff0000} when talking to an OF1.1 or later controller`);
      return n;
    }
    if (n <= 0xffff) {
      warn('ofp_port', `referring to port ${portText(n)} as ${n} is deprecated for compatibility with OpenFlow 1.1 and later`);
      return n;
    }
    if (n < 0xffffff00) {
      warn('ofp_port', `port ${n} is outside the supported range 0 through ffff or 0xffffff00 through 0xffffffff`);
      return null;
    }
    return n - 0xffff0000;
  }
  const r = RESERVED.find(([n]) => n === s.toUpperCase());
  if (r) return r[1];
  if (s.toUpperCase() === 'NONE') return OFPP.NONE;
  let name = s;
  if (s.startsWith('"')) {
    if (s.length < 2 || !s.endsWith('"')) return null;
    name = s.slice(1, -1);
  }
  return map?.byName.get(name) ?? null;
}

/** ofputil_table_from_string: a table number 0..255. */
export function parseTable(s: string): number | null {
  if (s.startsWith('-')) {
    warn('ofp_table', `Negative value ${s} is not a valid table number.`);
    return null;
  }
  if (!/^\d+$/.test(s)) return null;
  const n = Number(s);
  if (n > 255) {
    warn('ofp_table', `table ${n} is outside the supported range 0 through 255`);
    return null;
  }
  return n;
}

// -- the key=value tokenizer (ofputil_parse_key_value) --

function valueLength(s: string, from: number, delims: string): number {
  let n = from;
  while (n < s.length && !delims.includes(s[n]!)) {
    if (s[n] === '(') {
      let level = 0;
      do {
        if (n >= s.length) return n - from;
        if (s[n] === '(') level++;
        else if (s[n] === ')') level--;
        n++;
      } while (level > 0);
    } else {
      n++;
    }
  }
  return n - from;
}

/** Split `k=v, k:v, k(v), k` items the way ovs-ofctl does. */
export function keyValues(s: string): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  for (;;) {
    while (i < s.length && ', \t\r\n'.includes(s[i]!)) i++;
    if (i >= s.length) return out;
    let j = i;
    while (j < s.length && !':=(, \t\r\n'.includes(s[j]!)) j++;
    const key = s.slice(i, j);
    const delim = j < s.length ? s[j]! : '';
    i = j + (delim !== '' ? 1 : 0);
    let delims: string;
    if (delim === ':' || delim === '=') delims = ', \t\r\n';
    else if (delim === '(') delims = ')';
    else {
      out.push([key, '']);
      continue;
    }
    let len = valueLength(s, i, delims);
    // The special form "(x)->y": the value runs on to the next delimiter.
    if (delim === '(' && s[i + len] === ')' && s[i + len + 1] === '-' && s[i + len + 2] === '>') len += valueLength(s, i + len, ', \t\r\n');
    const value = s.slice(i, i + len);
    i += len + (i + len < s.length ? 1 : 0);
    out.push([key, value]);
  }
}

/** printf's %#x: 0x-prefixed hex, but a plain 0. */
export const hexAlt = (v: number): string => (v === 0 ? '0' : `0x${v.toString(16)}`);

/** C's atoi: an optional sign and leading digits after blanks, 0 when there are none (an int). */
export function atoi(s: string | undefined): number {
  const m = /^\s*([+-]?\d+)/.exec(s ?? '');
  return m ? Number(m[1]) | 0 : 0;
}
