// The flow model: what programmers produce and the reconciler installs. Matches and actions are
// ovs-ofctl syntax, written by the programmers in one fixed form, so equal desired flows are
// equal strings; the flow's identity is (table, priority, match), as in OpenFlow.
import { COOKIE, PROGRAMMERS, type ProgrammerName } from './pipeline.js';

export interface Flow {
  table: number;
  priority: number;
  /** ovs-ofctl match fields, comma-separated, no table/priority/cookie; '' matches everything. */
  match: string;
  /** ovs-ofctl actions; 'drop' for none. */
  actions: string;
  cookie: bigint;
}

/** OpenFlow identity of a flow: a second flow with the same key replaces the first. */
export const flowKey = (f: Pick<Flow, 'table' | 'priority' | 'match'>): string => `${f.table}/${f.priority}/${f.match}`;

export const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

/** A flow as one `ovs-ofctl add-flows` line. */
export function formatFlow(f: Flow): string {
  const head = `table=${f.table},priority=${f.priority},cookie=${hex(f.cookie)}`;
  return `${head}${f.match === '' ? '' : `,${f.match}`} actions=${f.actions}`;
}

/** The match part alone, as `ovs-ofctl del-flows --strict` wants it. */
export function formatMatch(f: Pick<Flow, 'table' | 'priority' | 'match'>): string {
  return `table=${f.table},priority=${f.priority}${f.match === '' ? '' : `,${f.match}`}`;
}

/**
 * 48-bit hash of a string: the resource part of a cookie. Two 32-bit FNV-1a lanes with
 * different offsets, in plain integer arithmetic (BigInt per character cost more than the flow
 * itself at a million neighbors).
 */
export function hash48(text: string): bigint {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  return (BigInt(a >>> 0) << 16n) ^ BigInt((b >>> 0) & 0xffff);
}

/** Cookie of the flows a programmer makes for one owner (a resource or an aggregate). */
export function cookieFor(programmer: ProgrammerName, owner: string): bigint {
  return (BigInt(PROGRAMMERS[programmer].id) << COOKIE.programmerShift) | hash48(owner);
}

export function programmerOf(cookie: bigint): ProgrammerName | undefined {
  const id = Number(cookie >> COOKIE.programmerShift);
  return (Object.keys(PROGRAMMERS) as ProgrammerName[]).find((p) => PROGRAMMERS[p].id === id);
}

/** IPv4 dotted quad as 0x-hex, for load: actions. */
export function ipv4Hex(address: string): string {
  const n = address.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  return hex(n);
}

/** MAC as 0x-hex, for load: actions. */
export function macHex(mac: string): string {
  return `0x${mac.replace(/:/g, '')}`;
}
