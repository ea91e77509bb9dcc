// Address parsing and normalization for controller input. Every parser returns a value or a
// reason string, never throws: a bad field becomes an INVALID_ARG with that reason.
import { isIPv6 } from 'node:net';
import type { Cidr, Family } from '../dataplane/model.js';

export type { Cidr, Family };

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };
const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

/** `aa:bb:cc:dd:ee:ff` exactly: lower-case hex, colons, padded. */
function isCanonicalMac(text: string): boolean {
  if (text.length !== 17) return false;
  for (let i = 0; i < 17; i++) {
    const c = text.charCodeAt(i);
    if (i % 3 === 2) {
      if (c !== 58) return false;
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) {
      return false;
    }
  }
  return true;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}
const HEX = '0123456789abcdef';

/**
 * MACs come colon- or hyphen-separated, upper or lower case, and from the controllers' test
 * client without zero padding (`0:0:a:1:2:3`). Normalized to `00:00:0a:01:02:03`.
 * A hand-written scanner: this runs once per neighbor, a million times for a large state.
 */
/** A value quoted for a reason or a log line: at most 64 characters of it (inputs can be megabytes). */
export function quote(text: string): string {
  return text.length <= 64 ? JSON.stringify(text) : `${JSON.stringify(text.slice(0, 64))}… (${text.length} characters)`;
}

/** Why a MAC cannot be a port's, a neighbor's or a gateway's: broadcast, multicast, all-zero. */
export function reservedMac(mac: string): string | null {
  if (mac === '00:00:00:00:00:00') return 'the all-zero MAC';
  if (mac === 'ff:ff:ff:ff:ff:ff') return 'the broadcast MAC';
  if (parseInt(mac.slice(0, 2), 16) & 1) return 'a multicast MAC';
  return null;
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d): the IPv4 address in disguise. */
export const isMappedIPv4 = (address: string): boolean => /^::ffff:(\d+\.\d+\.\d+\.\d+|[0-9a-f]{1,4}:[0-9a-f]{1,4})$/i.test(address);

export function parseMac(text: string): Parsed<string> {
  const mac = normalizeMac(text);
  return mac !== null ? ok(mac) : bad(`${quote(text)} is not a MAC address (six hex octets separated by ':' or '-')`);
}

/** parseMac without the result object: the normalized MAC, or null. */
export function normalizeMac(text: string): string | null {
  if (isCanonicalMac(text)) return text;
  const n = text.length;
  if (n >= 11 && n <= 17) {
    const sep = text.includes('-') ? 45 : 58;
    let out = '';
    let octets = 0;
    let i = 0;
    let canonical = n === 17 && sep === 58;
    while (i <= n) {
      const a = hexValue(text.charCodeAt(i));
      if (a < 0) break;
      let value = a;
      let next = text.charCodeAt(i + 1);
      if (i + 1 < n && next !== sep) {
        const b = hexValue(next);
        if (b < 0) break;
        value = a * 16 + b;
        i += 1;
        next = text.charCodeAt(i + 1);
      } else {
        canonical = false;
      }
      octets += 1;
      out += (octets > 1 ? ':' : '') + HEX[value >> 4]! + HEX[value & 15]!;
      i += 2;
      if (i - 1 === n) {
        if (octets !== 6) break;
        // Already canonical: hand back the caller's string and allocate nothing.
        return canonical && out === text ? text : out;
      }
      if (next !== sep || octets === 6) break;
    }
  }
  return null;
}

/** Strict dotted quad: four decimal octets 0–255, no leading zeros (they read as octal elsewhere). */
export function parseIPv4(text: string): Parsed<string> {
  return isStrictIPv4(text) ? ok(text) : bad(`${quote(text)} is not an IPv4 address`);
}

export function isStrictIPv4(text: string): boolean {
  const n = text.length;
  if (n < 7 || n > 15) return false;
  let parts = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || value > 255) return false;
      parts += 1;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return false; // leading zero
      value = value * 10 + (c - 48);
      digits += 1;
      if (digits > 3) return false;
    } else {
      return false;
    }
  }
  return parts === 4;
}

/** IPv6 in any textual form, normalized to the RFC 5952 compressed lower-case form. */
export function parseIPv6(text: string): Parsed<string> {
  if (!isIPv6(text) || text.includes('%')) return bad(`${quote(text)} is not an IPv6 address`);
  return ok(new URL(`http://[${text}]/`).hostname.slice(1, -1));
}

export interface IpAddress {
  family: Family;
  address: string;
}

/** An IPv4 or IPv6 address, normalized, or null. */
export function normalizeIp(text: string): string | null {
  if (!text.includes(':')) return isStrictIPv4(text) ? text : null;
  const v6 = parseIPv6(text);
  return v6.ok ? v6.value : null;
}

export function parseIp(text: string): Parsed<IpAddress> {
  if (text.includes(':')) {
    const v6 = parseIPv6(text);
    return v6.ok ? ok({ family: 6, address: v6.value }) : bad(`${quote(text)} is not an IP address`);
  }
  const v4 = parseIPv4(text);
  return v4.ok ? ok({ family: 4, address: v4.value }) : bad(`${quote(text)} is not an IP address`);
}


export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

export function parseCidr(text: string): Parsed<Cidr> {
  const slash = text.indexOf('/');
  if (slash < 0) return bad(`${quote(text)} is not a CIDR (address/prefix)`);
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip.ok) return bad(`${quote(text)} is not a CIDR: bad address`);
  const max = ip.value.family === 4 ? 32 : 128;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > max) {
    return bad(`${quote(text)} is not a CIDR: prefix must be 0–${max}`);
  }
  return ok({ family: ip.value.family, address: ip.value.address, prefix: Number(prefixText) });
}

/** An IPv4 address as an unsigned 32-bit number. */
export function ipv4ToInt(address: string): number {
  const [a = 0, b = 0, c = 0, d = 0] = address.split('.').map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/** Whether an IPv4 address lies inside an IPv4 CIDR (false for any IPv6 operand). */
export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.family !== 4 || ip.family !== 4) return false;
  if (cidr.prefix === 0) return true;
  const mask = (0xffffffff << (32 - cidr.prefix)) >>> 0;
  return ((ipv4ToInt(cidr.address) & mask) >>> 0) === ((ipv4ToInt(ip.address) & mask) >>> 0);
}
