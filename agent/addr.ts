// Address parsing and normalization for controller input. Every parser returns a value or a
// reason string, never throws: a bad field becomes an INVALID_ARG with that reason.
import { isIPv6 } from 'node:net';

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };
const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

const MAC_OCTET = /^[0-9a-fA-F]{1,2}$/;

/**
 * MACs come colon- or hyphen-separated, upper or lower case, and from the controllers' test
 * client without zero padding (`0:0:a:1:2:3`). Normalized to `00:00:0a:01:02:03`.
 */
export function parseMac(text: string): Parsed<string> {
  const parts = text.split(text.includes('-') ? '-' : ':');
  if (parts.length !== 6 || !parts.every((p) => MAC_OCTET.test(p))) {
    return bad(`"${text}" is not a MAC address (six hex octets separated by ':' or '-')`);
  }
  return ok(parts.map((p) => p.toLowerCase().padStart(2, '0')).join(':'));
}

/** Strict dotted quad: four decimal octets 0–255, no leading zeros (they read as octal elsewhere). */
export function parseIPv4(text: string): Parsed<string> {
  const parts = text.split('.');
  if (parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) {
    return ok(text);
  }
  return bad(`"${text}" is not an IPv4 address`);
}

/** IPv6 in any textual form, normalized to the RFC 5952 compressed lower-case form. */
export function parseIPv6(text: string): Parsed<string> {
  if (!isIPv6(text) || text.includes('%')) return bad(`"${text}" is not an IPv6 address`);
  return ok(new URL(`http://[${text}]/`).hostname.slice(1, -1));
}

export type Family = 4 | 6;
export interface IpAddress {
  family: Family;
  address: string;
}

export function parseIp(text: string): Parsed<IpAddress> {
  if (text.includes(':')) {
    const v6 = parseIPv6(text);
    return v6.ok ? ok({ family: 6, address: v6.value }) : bad(`"${text}" is not an IP address`);
  }
  const v4 = parseIPv4(text);
  return v4.ok ? ok({ family: 4, address: v4.value }) : bad(`"${text}" is not an IP address`);
}

export interface Cidr {
  family: Family;
  /** The address as written (normalized), which may have host bits set. */
  address: string;
  prefix: number;
}

export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

export function parseCidr(text: string): Parsed<Cidr> {
  const slash = text.indexOf('/');
  if (slash < 0) return bad(`"${text}" is not a CIDR (address/prefix)`);
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip.ok) return bad(`"${text}" is not a CIDR: bad address`);
  const max = ip.value.family === 4 ? 32 : 128;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > max) {
    return bad(`"${text}" is not a CIDR: prefix must be 0–${max}`);
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
