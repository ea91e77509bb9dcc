// Structured flows as ovs-ofctl text, for people, `aca render`, files and the text paths of the
// backends: one fixed form per flow, which ovs-ofctl and ovs-sim both parse back to the same flow.
import { CT_STATE, ETH_TYPE, FIELDS, type FieldName, IP_PROTO, fullMask, ipv4Text, macText } from './fields.js';
import type { Action, Bucket, Flow, Group, Match, MatchField, Meter, RegField, Slice } from './flow.js';
import { hex } from './flow.js';

const PROTOCOLS: [string, number, number | null][] = [
  ['arp', ETH_TYPE.arp, null], ['icmp', ETH_TYPE.ip, IP_PROTO.icmp], ['tcp', ETH_TYPE.ip, IP_PROTO.tcp], ['udp', ETH_TYPE.ip, IP_PROTO.udp],
  ['ip', ETH_TYPE.ip, null], ['icmp6', ETH_TYPE.ipv6, IP_PROTO.icmpv6], ['tcp6', ETH_TYPE.ipv6, IP_PROTO.tcp], ['udp6', ETH_TYPE.ipv6, IP_PROTO.udp],
  ['ipv6', ETH_TYPE.ipv6, null],
];

function ipv6Text(v: bigint): string {
  const parts: string[] = [];
  for (let i = 7; i >= 0; i--) parts.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  return parts.join(':');
}

/** A field value as ovs-ofctl reads it. */
export function valueText(field: FieldName, v: bigint): string {
  switch (FIELDS[field].format) {
    case 'mac': return macText(v);
    case 'ipv4': return ipv4Text(v);
    case 'ipv6': return ipv6Text(v);
    case 'hex': return hex(v);
    default: return v.toString();
  }
}

function ctStateText(value: bigint, mask: bigint): string {
  let s = '';
  for (const [name, bit] of Object.entries(CT_STATE)) {
    const b = BigInt(bit);
    if (mask & b) s += `${value & b ? '+' : '-'}${name}`;
  }
  return s;
}

function matchFieldText(m: MatchField): string {
  const field = FIELDS[m.field];
  if (field.format === 'ct_state') return `${m.field}=${ctStateText(m.value, m.mask ?? fullMask(field))}`;
  if (m.mask === null) return `${m.field}=${valueText(m.field, m.value)}`;
  if (field.format === 'ipv4') {
    // A CIDR mask prints as a prefix length, as ovs-ofctl prints it.
    const inv = ~m.mask & 0xffffffffn;
    if ((inv & (inv + 1n)) === 0n) return `${m.field}=${ipv4Text(m.value)}/${32 - inv.toString(2).replace(/^0+/, '').length}`;
  }
  const fmt = field.format === 'mac' || field.format === 'ipv4' || field.format === 'ipv6' ? (v: bigint) => valueText(m.field, v) : hex;
  return `${m.field}=${fmt(m.value)}/${fmt(m.mask)}`;
}

/** ovs-ofctl match fields, comma-separated, with the protocol shorthand first; '' matches all. */
export function matchText(match: Match): string {
  const dlType = match.find((m) => m.field === 'dl_type' && m.mask === null)?.value;
  const nwProto = match.find((m) => m.field === 'nw_proto' && m.mask === null)?.value;
  const parts: string[] = [];
  let skipProto = false;
  if (dlType !== undefined) {
    const p = PROTOCOLS.find(([, t, n]) => BigInt(t) === dlType && (n === null || (nwProto !== undefined && BigInt(n) === nwProto)));
    if (p) {
      parts.push(p[0]);
      skipProto = p[2] !== null;
    }
  }
  const shorthand = parts.length > 0;
  for (const m of match) {
    if (m.field === 'dl_type' && m.mask === null && shorthand) continue;
    if (m.field === 'nw_proto' && m.mask === null && skipProto) continue;
    parts.push(matchFieldText(m));
  }
  return parts.join(',');
}

function subfieldText(field: FieldName, ofs: number, nbits: number): string {
  const f = FIELDS[field];
  return ofs === 0 && nbits === f.bits ? `${f.nxm}[]` : `${f.nxm}[${ofs}..${ofs + nbits - 1}]`;
}

const regText = (r: RegField | Slice): string => subfieldText(r.field, r.ofs, r.nbits);

export function actionText(a: Action): string {
  switch (a.type) {
    case 'output': return a.port === 0xfffa ? 'NORMAL' : `output:${a.port}`;
    case 'output_reg': return `output:${regText(a.src)}`;
    case 'in_port': return 'IN_PORT';
    case 'resubmit': return `resubmit(,${a.table})`;
    case 'set_field': return `set_field:${valueText(a.field, a.value)}->${a.field}`;
    case 'load': return `load:${a.value <= 0xffffn ? a.value.toString() : hex(a.value)}->${regText(a.dst)}`;
    case 'move': return `move:${regText(a.src)}->${regText(a.dst)}`;
    case 'controller': return `controller(userdata=${a.userdata})`;
    case 'group': return `group:${a.id}`;
    case 'meter': return `meter:${a.id}`;
    case 'conjunction': return `conjunction(${a.id},${a.clause}/${a.nClauses})`;
    case 'ct': {
      const args: string[] = [];
      if (a.commit) args.push('commit');
      if (a.zone !== null) args.push(`zone=${typeof a.zone === 'number' ? a.zone : regText(a.zone)}`);
      if (a.table !== null) args.push(`table=${a.table}`);
      if (a.nat !== null) args.push(a.nat === '' ? 'nat' : `nat(${a.nat})`);
      return `ct(${args.join(',')})`;
    }
    case 'ct_clear': return 'ct_clear';
    case 'dec_ttl': return 'dec_ttl';
  }
}

export function actionsText(actions: readonly Action[]): string {
  return actions.length === 0 ? 'drop' : actions.map(actionText).join(',');
}

/** A flow as one `ovs-ofctl add-flows` line. */
export function formatFlow(f: Flow): string {
  const m = matchText(f.match);
  const idle = f.idleTimeout ? `,idle_timeout=${f.idleTimeout}` : '';
  return `table=${f.table},priority=${f.priority},cookie=${hex(f.cookie)}${idle}${m === '' ? '' : `,${m}`} actions=${actionsText(f.actions)}`;
}

/** The match part alone, as `ovs-ofctl del-flows --strict` wants it. */
export function formatMatch(f: Pick<Flow, 'table' | 'priority' | 'match'>): string {
  const m = matchText(f.match);
  return `table=${f.table},priority=${f.priority}${m === '' ? '' : `,${m}`}`;
}

function bucketText(b: Bucket): string {
  const head = [b.weight !== undefined ? `weight:${b.weight}` : '', b.watchPort !== undefined ? `watch_port:${b.watchPort}` : ''].filter((x) => x !== '');
  return `bucket=${[...head, `actions=${actionsText(b.actions)}`].join(',')}`;
}

/** A group as `ovs-ofctl add-group` takes it. */
export function formatGroup(g: Group): string {
  return [`group_id=${g.id}`, `type=${g.type === 'ff' ? 'fast_failover' : g.type}`, ...g.buckets.map(bucketText)].join(',');
}

/** A meter as `ovs-ofctl add-meter` takes it. */
export function formatMeter(m: Meter): string {
  return `meter=${m.id},${m.unit},burst,band=type=drop,rate=${m.rate},burst_size=${m.burst}`;
}
