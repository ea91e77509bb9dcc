// The flow fields this simulator knows, with OVS's names, widths and prerequisites. Values are
// bigints of the field's width; a flow (packet metadata + headers) is a Map from field name.

export type FieldName =
  | 'in_port' | 'metadata' | `reg${number}` | 'tun_id' | 'tun_src' | 'tun_dst'
  | 'dl_src' | 'dl_dst' | 'dl_type' | 'vlan_tci'
  | 'nw_src' | 'nw_dst' | 'nw_proto' | 'nw_tos' | 'nw_ttl'
  | 'arp_op' | 'arp_spa' | 'arp_tpa' | 'arp_sha' | 'arp_tha'
  | 'tp_src' | 'tp_dst';

export type Kind = 'int' | 'mac' | 'ip' | 'hex';

export interface FieldSpec {
  name: FieldName;
  bits: number;
  /** How OVS prints a value. */
  kind: Kind;
  /** NXM/OXM name used by load/move. */
  nxm: string;
  /** Other names accepted when parsing (set_field, match). */
  aliases: string[];
  /** Ethertypes (and IP protocols) the field needs, as OVS's prerequisites. */
  needs?: { dlType: bigint[]; nwProto?: bigint[] };
}

const IP = [0x0800n];
const ARP = [0x0806n];
const L4 = { dlType: IP, nwProto: [6n, 17n, 1n, 132n] };

const specs: FieldSpec[] = [
  { name: 'in_port', bits: 32, kind: 'int', nxm: 'NXM_OF_IN_PORT', aliases: [] },
  { name: 'metadata', bits: 64, kind: 'hex', nxm: 'OXM_OF_METADATA', aliases: [] },
  ...Array.from({ length: 16 }, (_, i): FieldSpec => ({ name: `reg${i}`, bits: 32, kind: 'hex', nxm: `NXM_NX_REG${i}`, aliases: [] })),
  { name: 'tun_id', bits: 64, kind: 'hex', nxm: 'NXM_NX_TUN_ID', aliases: ['tunnel_id'] },
  { name: 'tun_src', bits: 32, kind: 'ip', nxm: 'NXM_NX_TUN_IPV4_SRC', aliases: [] },
  { name: 'tun_dst', bits: 32, kind: 'ip', nxm: 'NXM_NX_TUN_IPV4_DST', aliases: [] },
  { name: 'dl_src', bits: 48, kind: 'mac', nxm: 'NXM_OF_ETH_SRC', aliases: ['eth_src'] },
  { name: 'dl_dst', bits: 48, kind: 'mac', nxm: 'NXM_OF_ETH_DST', aliases: ['eth_dst'] },
  { name: 'dl_type', bits: 16, kind: 'hex', nxm: 'NXM_OF_ETH_TYPE', aliases: ['eth_type'] },
  { name: 'vlan_tci', bits: 16, kind: 'hex', nxm: 'NXM_OF_VLAN_TCI', aliases: [] },
  { name: 'nw_src', bits: 32, kind: 'ip', nxm: 'NXM_OF_IP_SRC', aliases: ['ip_src'], needs: { dlType: IP } },
  { name: 'nw_dst', bits: 32, kind: 'ip', nxm: 'NXM_OF_IP_DST', aliases: ['ip_dst'], needs: { dlType: IP } },
  { name: 'nw_proto', bits: 8, kind: 'int', nxm: 'NXM_OF_IP_PROTO', aliases: ['ip_proto'], needs: { dlType: IP } },
  { name: 'nw_tos', bits: 8, kind: 'int', nxm: 'NXM_OF_IP_TOS', aliases: [], needs: { dlType: IP } },
  { name: 'nw_ttl', bits: 8, kind: 'int', nxm: 'NXM_NX_IP_TTL', aliases: [], needs: { dlType: IP } },
  { name: 'arp_op', bits: 16, kind: 'int', nxm: 'NXM_OF_ARP_OP', aliases: [], needs: { dlType: ARP } },
  { name: 'arp_spa', bits: 32, kind: 'ip', nxm: 'NXM_OF_ARP_SPA', aliases: [], needs: { dlType: ARP } },
  { name: 'arp_tpa', bits: 32, kind: 'ip', nxm: 'NXM_OF_ARP_TPA', aliases: [], needs: { dlType: ARP } },
  { name: 'arp_sha', bits: 48, kind: 'mac', nxm: 'NXM_NX_ARP_SHA', aliases: [], needs: { dlType: ARP } },
  { name: 'arp_tha', bits: 48, kind: 'mac', nxm: 'NXM_NX_ARP_THA', aliases: [], needs: { dlType: ARP } },
  { name: 'tp_src', bits: 16, kind: 'int', nxm: 'NXM_OF_TCP_SRC', aliases: ['udp_src', 'tcp_src', 'icmp_type'], needs: L4 },
  { name: 'tp_dst', bits: 16, kind: 'int', nxm: 'NXM_OF_TCP_DST', aliases: ['udp_dst', 'tcp_dst', 'icmp_code'], needs: L4 },
];

export const FIELDS = new Map<string, FieldSpec>();
for (const s of specs) {
  FIELDS.set(s.name, s);
  for (const a of s.aliases) FIELDS.set(a, s);
}
/** By NXM/OXM name (NXM_OF_UDP_SRC etc. map onto the same transport fields). */
export const BY_NXM = new Map<string, FieldSpec>(specs.map((s) => [s.nxm, s]));
BY_NXM.set('NXM_OF_UDP_SRC', FIELDS.get('tp_src')!);
BY_NXM.set('NXM_OF_UDP_DST', FIELDS.get('tp_dst')!);
BY_NXM.set('NXM_OF_ICMP_TYPE', FIELDS.get('tp_src')!);
BY_NXM.set('NXM_OF_ICMP_CODE', FIELDS.get('tp_dst')!);

export const mask = (bits: number): bigint => (1n << BigInt(bits)) - 1n;

export class FieldError extends Error {}

export function parseValue(spec: FieldSpec, text: string): bigint {
  const t = text.trim();
  if (spec.kind === 'mac' || (t.includes(':') && /^[0-9a-fA-F:]+$/.test(t) && t.split(':').length === 6)) {
    const parts = t.split(':');
    if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) throw new FieldError(`${t}: invalid Ethernet address`);
    return parts.reduce((acc, p) => (acc << 8n) | BigInt(parseInt(p, 16)), 0n);
  }
  if (spec.kind === 'ip' && t.includes('.')) {
    const parts = t.split('.');
    if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) throw new FieldError(`${t}: invalid IP address`);
    return parts.reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n);
  }
  if (/^0x[0-9a-fA-F]+$/.test(t)) return BigInt(t);
  if (/^\d+$/.test(t)) return BigInt(t);
  throw new FieldError(`${spec.name}: "${t}" is not a valid value`);
}

export function formatValue(spec: FieldSpec, v: bigint): string {
  if (spec.kind === 'mac') return Array.from({ length: 6 }, (_, i) => ((v >> BigInt(8 * (5 - i))) & 0xffn).toString(16).padStart(2, '0')).join(':');
  if (spec.kind === 'ip') return Array.from({ length: 4 }, (_, i) => ((v >> BigInt(8 * (3 - i))) & 0xffn).toString()).join('.');
  if (spec.kind === 'hex') return `0x${v.toString(16)}`;
  return v.toString();
}

/** Bits a[b..c] of a NXM field reference, e.g. NXM_NX_REG6[] or NXM_NX_TUN_ID[0..23]. */
export interface FieldRef {
  spec: FieldSpec;
  ofs: number;
  nBits: number;
}

export function parseFieldRef(text: string): FieldRef {
  const m = /^([A-Za-z0-9_]+)\[(?:(\d+)(?:\.\.(\d+))?)?\]$/.exec(text.trim());
  if (!m) throw new FieldError(`${text}: bad field reference`);
  const spec = BY_NXM.get(m[1]!) ?? FIELDS.get(m[1]!);
  if (!spec) throw new FieldError(`${m[1]}: unknown field`);
  if (m[2] === undefined) return { spec, ofs: 0, nBits: spec.bits };
  const start = Number(m[2]);
  const end = m[3] === undefined ? start : Number(m[3]);
  if (end < start || end >= spec.bits) throw new FieldError(`${text}: bit range out of field`);
  return { spec, ofs: start, nBits: end - start + 1 };
}

export function formatFieldRef(r: FieldRef): string {
  if (r.ofs === 0 && r.nBits === r.spec.bits) return `${r.spec.nxm}[]`;
  return `${r.spec.nxm}[${r.ofs}..${r.ofs + r.nBits - 1}]`;
}
