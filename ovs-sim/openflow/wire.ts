// What actions become on their way through an OpenFlow connection. OVS encodes each action in
// the form the protocol version has (mod_dl_src is OFPAT_SET_DL_SRC in OpenFlow 1.0 and a
// Set-Field in 1.2+; set_field on a register is an NXAST_REG_LOAD in 1.0), and decoding gives the
// action that form stands for. A flow's actions as stored are the parsed ones after the round
// trip of the add; as dumped, the stored ones after the round trip of the dump.
import { type Ofpact, loadSegments } from './actions.js';
import { type MfField, fieldByName } from '../base/fields.js';

export type OfVersion = 10 | 11 | 12 | 13 | 14 | 15;

const mf = (name: string): MfField => fieldByName(name)!;
const full = (f: MfField): bigint => f.valueMask;
const setField = (name: string, value: bigint): Ofpact => ({ type: 'set_field', field: mf(name), value, mask: full(mf(name)), load: false });
const load = (name: string, value: bigint): Ofpact => ({ type: 'set_field', field: mf(name), value, mask: full(mf(name)), load: true });

/** The actions after an encode and decode in OpenFlow version `v`. */
export function wire(list: Ofpact[], v: OfVersion): Ofpact[] {
  return list.flatMap((a) => wireOne(a, v));
}

function wireOne(a: Ofpact, v: OfVersion): Ofpact[] {
  switch (a.type) {
    case 'enqueue':
      if (v === 10) return [a];
      return [{ type: 'set_queue', queue: a.queue }, { type: 'output', port: a.port, maxLen: 65535 }, { type: 'pop_queue' }];
    case 'set_vlan_vid': {
      if (v === 10) return [{ ...a, push: true }];
      const push: Ofpact[] = a.push && !a.flowHasVlan ? [{ type: 'push_vlan', ethertype: 0x8100 }] : [];
      if (v === 11) return [...push, { type: 'set_vlan_vid', vid: a.vid, push: false }];
      return [...push, setField('vlan_vid', BigInt(a.vid | 0x1000))];
    }
    case 'set_vlan_pcp': {
      if (v === 10) return [{ ...a, push: true }];
      const push: Ofpact[] = a.push && !a.flowHasVlan ? [{ type: 'push_vlan', ethertype: 0x8100 }] : [];
      if (v === 11) return [...push, { type: 'set_vlan_pcp', pcp: a.pcp, push: false }];
      return [...push, setField('vlan_pcp', BigInt(a.pcp))];
    }
    case 'strip_vlan':
      return [{ type: 'strip_vlan', pop: v !== 10 }];
    case 'set_eth_src':
    case 'set_eth_dst':
      return v < 12 ? [a] : [setField(a.type === 'set_eth_src' ? 'eth_src' : 'eth_dst', a.mac)];
    case 'set_ipv4_src':
    case 'set_ipv4_dst':
      return v < 12 ? [a] : [setField(a.type === 'set_ipv4_src' ? 'ip_src' : 'ip_dst', BigInt(a.ip))];
    case 'set_ip_dscp':
      return v < 12 ? [a] : [setField('ip_dscp', BigInt(a.dscp >> 2))];
    case 'set_ip_ecn':
      if (v === 10) return [load('nw_ecn', BigInt(a.ecn))];
      return v === 11 ? [a] : [setField('nw_ecn', BigInt(a.ecn))];
    case 'set_ip_ttl':
      return v >= 11 ? [a] : [load('nw_ttl', BigInt(a.ttl))];
    case 'set_l4_src_port':
    case 'set_l4_dst_port': {
      const names: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };
      const proto = names[a.proto ?? 0];
      if (v >= 12 && proto) return [setField(`${proto}_${a.type === 'set_l4_src_port' ? 'src' : 'dst'}`, BigInt(a.port))];
      return [a];
    }
    case 'set_field':
      return wireSetField(a, v);
    case 'set_tunnel':
      return v < 12 ? [{ ...a, v64: a.v64 || a.tunId > 0xffffffffn }] : [setField('tun_id', a.tunId)];
    case 'clone':
      return [{ ...a, actions: wire(a.actions, v) }];
    case 'ct':
      return [{ ...a, actions: wire(a.actions, v) }];
    case 'nat':
      // encode_NAT sends an address range only from a nonzero minimum, and the ports and flags
      // only with it: `nat(src=0.0.0.0)` comes back as `nat(src)`.
      if (a.af === 0 || a.minAddr !== 0n) return [a];
      return [{ ...a, af: 0, minAddr: 0n, maxAddr: 0n, minPort: 0, maxPort: 0 }];
    case 'controller':
      return [{ ...a, v2: a.v2 || a.userdata !== null || a.pause || a.meterId !== null }];
    case 'push_vlan':
      // OpenFlow 1.0 has no push: the tag comes with the set_vlan_vid that follows.
      return v === 10 ? [] : [a];
    case 'goto_table':
      return v === 10 ? [{ type: 'resubmit', inPort: 0xfff8, table: a.table, ct: false, short: false }] : [a];
    case 'write_actions':
    case 'clear_actions':
    case 'meter':
      return v === 10 ? [] : a.type === 'write_actions' ? [{ ...a, actions: wire(a.actions, v) }] : [a];
    default:
      return [a];
  }
}

type SetField = Extract<Ofpact, { type: 'set_field' }>;

/**
 * NXAST_REG_LOAD: one action per contiguous run of the mask (at most 64 bits each), which the
 * switch decodes as that many actions.
 */
function regLoads(a: SetField): Ofpact[] {
  // Variable-length fields (tun_metadata) go as NXAST_REG_LOAD2, which decodes as a set_field.
  if (a.field.tunMetadata !== undefined) return [{ ...a, load: false }];
  return loadSegments(a).map(([sf, value]) => {
    const at = BigInt(sf.ofs);
    return { ...a, load: true, value: value << at, mask: ((1n << BigInt(sf.nBits)) - 1n) << at };
  });
}

function wireSetField(a: SetField, v: OfVersion): Ofpact[] {
  if (v >= 15) return [{ ...a, load: false }];
  if (a.load) return regLoads(a);
  if (v >= 12) return (a.mask & full(a.field)) === full(a.field) || a.field.tunMetadata !== undefined ? [a] : regLoads(a);
  // OpenFlow 1.0 and 1.1: the legacy action for the field, else NXAST_REG_LOAD.
  const name = a.field.name;
  const n = Number(a.value);
  switch (name) {
    case 'vlan_tci': {
      const cfi = (n & 0x1000) !== 0;
      if (!cfi) return [{ type: 'strip_vlan', pop: v !== 10 }];
      const push: Ofpact[] = v === 11 && !a.flowHasVlan ? [{ type: 'push_vlan', ethertype: 0x8100 }] : [];
      return [...push, { type: 'set_vlan_vid', vid: n & 0xfff, push: v === 10 }, { type: 'set_vlan_pcp', pcp: n >> 13, push: v === 10 }];
    }
    case 'vlan_vid':
      return [{ type: 'set_vlan_vid', vid: n & 0xfff, push: v === 10 }];
    case 'vlan_pcp':
      return [{ type: 'set_vlan_pcp', pcp: n & 7, push: v === 10 }];
    case 'eth_src':
    case 'eth_dst':
      return [{ type: name === 'eth_src' ? 'set_eth_src' : 'set_eth_dst', mac: a.value }];
    case 'ip_src':
    case 'ip_dst':
      return [{ type: name === 'ip_src' ? 'set_ipv4_src' : 'set_ipv4_dst', ip: n }];
    case 'nw_tos':
      return [{ type: 'set_ip_dscp', dscp: n & 0xfc }];
    case 'ip_dscp':
      return [{ type: 'set_ip_dscp', dscp: (n << 2) & 0xfc }];
    case 'nw_ecn':
      return v === 10 ? regLoads(a) : [{ type: 'set_ip_ecn', ecn: n }];
    case 'tcp_src':
    case 'udp_src':
      return [{ type: 'set_l4_src_port', port: n }];
    case 'tcp_dst':
    case 'udp_dst':
      return [{ type: 'set_l4_dst_port', port: n }];
    default:
      return regLoads(a);
  }
}
