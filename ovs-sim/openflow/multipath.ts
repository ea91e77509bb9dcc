// multipath and bundle/bundle_load (Nicira actions): hash a packet's fields (flow_hash_fields),
// then pick a link (multipath: modulo_n, hash_threshold, hrw, iter_hash, stored in a subfield) or a
// live member port (bundle: active_backup, hrw; bundle_load stores it). Parsed, printed and run
// as OVS's lib/multipath.c and lib/bundle.c do.
import { FieldError } from '../base/fields.js';
import { ETH_TYPE, type Flow, W } from '../base/flow.js';
import { flowHashSymmetricL3L4, flowHashSymmetricL4, hash2Words, jhashBytes } from '../base/hash.js';
import { type Subfield, formatSubfield, parseSubfield } from '../base/subfield.js';
import { OFPP, type PortMap, atoi, parsePort, portText } from '../base/text.js';
import type { TunTable } from '../base/tlv.js';

const HASH_FIELDS = ['eth_src', 'symmetric_l4', 'symmetric_l3l4', 'symmetric_l3l4+udp', 'nw_src', 'nw_dst', 'symmetric_l3'] as const;
export type HashFields = (typeof HASH_FIELDS)[number];
export type MultipathAlgorithm = 'modulo_n' | 'hash_threshold' | 'hrw' | 'iter_hash';

export interface Multipath {
  type: 'multipath';
  fields: HashFields;
  basis: number;
  algorithm: MultipathAlgorithm;
  nLinks: number;
  arg: number;
  dst: Subfield;
}

export interface BundleAction {
  type: 'bundle';
  fields: HashFields;
  basis: number;
  algorithm: 'active_backup' | 'hrw';
  members: number[];
  /** bundle_load: where the chosen port goes (else it is output to). */
  dst: Subfield | null;
}


const fieldsOf = (s: string, arg: string): HashFields => {
  const f = HASH_FIELDS.find((x) => x === s.toLowerCase());
  if (!f) throw new FieldError(`${arg}: unknown fields \`${s}'`);
  return f;
};

/** multipath(fields, basis, algorithm, n_links, arg, dst). */
export function parseMultipath(arg: string, tun?: TunTable | null): Multipath {
  const t = arg.split(/[, ]+/).filter((x) => x !== '');
  if (t.length < 6) throw new FieldError(`${arg}: not enough arguments to multipath action`);
  const fields = fieldsOf(t[0]!, arg);
  const algorithm = (['modulo_n', 'hash_threshold', 'hrw', 'iter_hash'] as const).find((a) => a === t[2]!.toLowerCase());
  if (!algorithm) throw new FieldError(`${arg}: unknown algorithm \`${t[2]}'`);
  const nLinks = atoi(t[3]);
  if (nLinks < 1 || nLinks > 65536) throw new FieldError(`${arg}: n_links ${nLinks} is not in valid range 1 to 65536`);
  const dst = parseSubfield(t[5]!, tun);
  if (dst.nBits < 16 && nLinks > 2 ** dst.nBits) {
    throw new FieldError(`${arg}: ${dst.nBits}-bit destination field has ${2 ** dst.nBits} possible values, less than specified n_links ${nLinks}`);
  }
  return { type: 'multipath', fields, basis: atoi(t[1]) & 0xffff, algorithm, nLinks, arg: atoi(t[4]) & 0xffff, dst };
}

/** bundle(fields, basis, algorithm, ofport, members:p,...) or bundle_load(..., dst, members:...). */
export function parseBundle(arg: string, load: boolean, ports?: PortMap | null, tun?: TunTable | null): BundleAction {
  const head = arg.split(/:/)[0]!.split(/[, ]+/).filter((x) => x !== '');
  const need = load ? 6 : 5;
  if (head.length < need) throw new FieldError(`${arg}: not enough arguments to bundle action`);
  const delim = head[need - 1]!;
  if (!['members', 'slaves'].includes(delim.toLowerCase())) throw new FieldError(`${arg}: missing member delimiter, expected \`members', got \`${delim}'`);
  const colon = arg.indexOf(':');
  const members: number[] = [];
  for (const m of (colon >= 0 ? arg.slice(colon + 1) : '').split(/[, [\]]+/).filter((x) => x !== '')) {
    if (members.length >= 2048) break;
    const p = parsePort(m, ports);
    if (p === null) throw new FieldError(`${m}: bad port number`);
    members.push(p);
  }
  const fields = fieldsOf(head[0]!, arg);
  const algorithm = (['active_backup', 'hrw'] as const).find((a) => a === head[2]!.toLowerCase());
  if (!algorithm) throw new FieldError(`${arg}: unknown algorithm \`${head[2]}'`);
  if (head[3]!.toLowerCase() !== 'ofport') throw new FieldError(`${arg}: unknown member_type \`${head[3]}'`);
  return { type: 'bundle', fields, basis: atoi(head[1]) & 0xffff, algorithm, members, dst: load ? parseSubfield(head[4]!, tun) : null };
}

export function formatMultipath(a: Multipath, tun?: TunTable | null): string {
  return `multipath(${a.fields},${a.basis},${a.algorithm},${a.nLinks},${a.arg},${formatSubfield(a.dst, tun)})`;
}

export function formatBundle(a: BundleAction, ports?: PortMap | null, tun?: TunTable | null): string {
  const dst = a.dst ? `${formatSubfield(a.dst, tun)},` : '';
  return `${a.dst ? 'bundle_load' : 'bundle'}(${a.fields},${a.basis},${a.algorithm},ofport,${dst}members:${a.members.map((p) => portText(p, ports)).join(',')})`;
}

/** A member port a bundle may not use (bundle_check): a reserved port other than the usual outputs, or the controller. */
export function bundleMemberProblem(a: BundleAction): number | null {
  for (const p of a.members) if (p === OFPP.CONTROLLER || (p !== OFPP.NONE && p >= OFPP.MAX && ![OFPP.IN_PORT, OFPP.TABLE, OFPP.NORMAL, OFPP.FLOOD, OFPP.ALL, OFPP.LOCAL].includes(p as never))) return p;
  return null;
}

const be32 = (v: number): Uint8Array => Uint8Array.of(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
const wordsBytes = (f: Flow, word: number, n: number): Uint8Array => {
  const out = new Uint8Array(4 * n);
  for (let i = 0; i < n; i++) out.set(be32(f[word + i]!), 4 * i);
  return out;
};

/** flow_hash_fields. */
export function hashFields(f: Flow, fields: HashFields, basis: number): number {
  const dl = f[W.dl_type]!;
  switch (fields) {
    case 'eth_src':
      return jhashBytes(wordsBytes(f, W.dl_src, 2).subarray(2), basis);
    case 'symmetric_l4':
      return flowHashSymmetricL4(f, basis);
    case 'symmetric_l3l4':
      return flowHashSymmetricL3L4(f, basis, false);
    case 'symmetric_l3l4+udp':
      return flowHashSymmetricL3L4(f, basis, true);
    case 'nw_src':
    case 'nw_dst': {
      const src = fields === 'nw_src';
      if (dl === ETH_TYPE.IP) return jhashBytes(be32(f[src ? W.nw_src : W.nw_dst]!), basis);
      if (dl === ETH_TYPE.IPV6) return jhashBytes(wordsBytes(f, src ? W.ipv6_src : W.ipv6_dst, 4), basis);
      return basis >>> 0;
    }
    case 'symmetric_l3': {
      // { union { be32 ipv4; in6_addr ipv6; }; be16 eth_type; } padded to 20 bytes.
      const b = new Uint8Array(20);
      if (dl === ETH_TYPE.IP) b.set(be32((f[W.nw_src]! ^ f[W.nw_dst]!) >>> 0));
      else if (dl === ETH_TYPE.IPV6) for (let i = 0; i < 4; i++) b.set(be32((f[W.ipv6_src + i]! ^ f[W.ipv6_dst + i]!) >>> 0), 4 * i);
      b[16] = dl >> 8;
      b[17] = dl & 255;
      return jhashBytes(b, basis);
    }
  }
}

const roundUpPow2 = (n: number): number => {
  let p = 1;
  while (p < n) p *= 2;
  return p;
};

/** multipath_algorithm: the link (0..n_links-1) for a hash. */
export function multipathLink(hash: number, algorithm: MultipathAlgorithm, nLinks: number, arg: number): number {
  const iterHash = (modulo: number): number => {
    if (modulo < nLinks || modulo / 2 > nLinks) modulo = roundUpPow2(nLinks);
    let i = 0;
    let link: number;
    do link = hash2Words(hash, i++) % modulo;
    while (link >= nLinks);
    return link;
  };
  switch (algorithm) {
    case 'modulo_n':
      return (hash >>> 0) % nLinks;
    case 'hash_threshold':
      return nLinks === 1 ? 0 : Math.floor((hash >>> 0) / (Math.floor(0xffffffff / nLinks) + 1));
    case 'hrw': {
      if (nLinks > 64) return iterHash(0);
      let best = 0;
      let bestWeight = hash2Words(hash, 0);
      for (let link = 1; link < nLinks; link++) {
        const w = hash2Words(hash, link);
        if (w > bestWeight) {
          best = link;
          bestWeight = w;
        }
      }
      return best;
    }
    case 'iter_hash':
      return iterHash(arg);
  }
}

/** bundle_execute: the chosen member port, or OFPP_NONE when no member is live. */
export function bundleMember(a: BundleAction, f: Flow, live: (port: number) => boolean): number {
  if (a.algorithm === 'active_backup') return a.members.find((p) => live(p)) ?? OFPP.NONE;
  const h = hashFields(f, a.fields, a.basis);
  let best = -1;
  let bestHash = 0;
  a.members.forEach((p, i) => {
    if (!live(p)) return;
    const w = hash2Words(i, h);
    if (best < 0 || w > bestHash) {
      best = i;
      bestHash = w;
    }
  });
  return best >= 0 ? a.members[best]! : OFPP.NONE;
}

