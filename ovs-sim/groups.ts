// Groups: all, select, indirect and fast_failover groups with their buckets, parsed from
// ovs-ofctl's group syntax and printed as dump-groups prints them.
import { type Ofpact, type ParseContext, anyUsable, formatActions, parseActions, strToU64 } from './actions.js';
import { FieldError } from './fields.js';
import { OFPP, type PortMap, keyValues, parsePort, portText } from './text.js';
import type { TunTable } from './tlv.js';
import { type OfVersion, wire } from './wire.js';

export type GroupType = 'all' | 'select' | 'indirect' | 'ff';

export interface Bucket {
  id: number;
  weight: number;
  watchPort: number | null;
  watchGroup: number | null;
  actions: Ofpact[];
  packets: number;
  bytes: number;
}

export interface Group {
  id: number;
  type: GroupType;
  buckets: Bucket[];
  selectionMethod: string;
  selectionParam: bigint;
  fields: string;
  packets: number;
  bytes: number;
  created: number;
}

export type GroupCommand = 'add' | 'modify' | 'add_or_mod' | 'delete' | 'insert_bucket' | 'remove_bucket';

export interface GroupMod {
  command: GroupCommand;
  id: number;
  type: GroupType | null;
  buckets: Bucket[];
  selectionMethod: string;
  selectionParam: bigint;
  fields: string;
  /** insert/remove bucket: where (first, last, or a bucket id). */
  commandBucketId: 'first' | 'last' | 'all' | number | null;
}

export const OFPG = { ALL: 0xfffffffc, ANY: 0xffffffff, MAX: 0xffffff00 } as const;
export const ANY_WATCH = OFPP.NONE;

function parseGroupId(v: string): number {
  const t = v.toLowerCase();
  if (t === 'all') return OFPG.ALL;
  if (t === 'any') return OFPG.ANY;
  const n = Number(strToU64(v, 32));
  return n;
}

function parseBucket(text: string, ctx: { ports?: PortMap | null; tun?: TunTable | null }, idx: number): Bucket {
  const b: Bucket = { id: idx, weight: 1, watchPort: null, watchGroup: null, actions: [], packets: 0, bytes: 0 };
  // Everything up to "actions=" (or the first action keyword) is bucket properties.
  let actText = text;
  const m = /(^|,)\s*actions=/.exec(text);
  let props: [string, string][] = [];
  if (m) {
    props = keyValues(text.slice(0, m.index));
    actText = text.slice(m.index + m[0].length);
  } else {
    const kv = keyValues(text);
    const pk = ['bucket_id', 'weight', 'watch_port', 'watch_group'];
    props = kv.filter(([k]) => pk.includes(k));
    const rest = kv.filter(([k]) => !pk.includes(k));
    actText = rest.map(([k, v]) => (v === '' ? k : `${k}${/^[a-z_]+$/.test(k) && !['output', 'set_field', 'load', 'move', 'mod_dl_src', 'mod_dl_dst'].includes(k) ? `(${v})` : `:${v}`}`)).join(',');
    actText = text.split(',').filter((x) => !pk.some((p) => x.trim().startsWith(`${p}=`) || x.trim().startsWith(`${p}:`))).join(',');
  }
  for (const [k, v] of props) {
    if (k === 'bucket_id') b.id = Number(strToU64(v, 32));
    else if (k === 'weight') b.weight = Number(v);
    else if (k === 'watch_port') {
      const p = parsePort(v, ctx.ports);
      if (p === null) throw new FieldError(`${v}: invalid watch_port`);
      b.watchPort = p;
    } else if (k === 'watch_group') b.watchGroup = parseGroupId(v);
  }
  const pctx: ParseContext = { ports: ctx.ports, tun: ctx.tun, usable: anyUsable() };
  b.actions = parseActions(actText, pctx, false);
  return b;
}

/** One group line: `group_id=1,type=select,bucket=...,bucket=...`. */
export function parseGroupMod(text: string, command: GroupCommand, ctx: { ports?: PortMap | null; tun?: TunTable | null } = {}): GroupMod {
  const gm: GroupMod = { command, id: -1, type: null, buckets: [], selectionMethod: '', selectionParam: 0n, fields: '', commandBucketId: null };
  // Buckets run to the next "bucket=" at the top level.
  const parts = text.split(/,?\s*bucket=/);
  const head = parts.shift() ?? '';
  for (const [k, v] of keyValues(head)) {
    if (k === 'group_id') gm.id = parseGroupId(v);
    else if (k === 'type') {
      const t = ({ all: 'all', select: 'select', indirect: 'indirect', ff: 'ff', fast_failover: 'ff' } as Record<string, GroupType>)[v];
      if (!t) throw new FieldError(`${v}: unknown group type`);
      gm.type = t;
    } else if (k === 'selection_method') gm.selectionMethod = v;
    else if (k === 'selection_method_param') gm.selectionParam = strToU64(v);
    else if (k === 'fields') gm.fields = v;
    else if (k === 'command_bucket_id') gm.commandBucketId = v === 'first' ? 'first' : v === 'last' ? 'last' : v === 'all' ? 'all' : Number(v);
    else throw new FieldError(`unknown keyword ${k}`);
  }
  gm.buckets = parts.map((p, i) => parseBucket(p, ctx, i));
  if (gm.id < 0) throw new FieldError('must specify a group_id');
  return gm;
}

export function formatGroup(g: Group, v: OfVersion, ports?: PortMap | null, tun?: TunTable | null): string {
  let s = ` group_id=${g.id},type=${g.type === 'ff' ? 'fast_failover' : g.type}`;
  if (g.selectionMethod) s += `,selection_method=${g.selectionMethod}`;
  for (const b of g.buckets) {
    s += ',bucket=';
    const props: string[] = [];
    if (v >= 15) props.push(`bucket_id:${b.id}`);
    if (g.type === 'select' && b.weight !== 1) props.push(`weight:${b.weight}`);
    if (b.watchPort !== null && b.watchPort !== ANY_WATCH) props.push(`watch_port:${portText(b.watchPort, ports)}`);
    if (b.watchGroup !== null && b.watchGroup !== OFPG.ANY) props.push(`watch_group:${b.watchGroup}`);
    s += props.length ? `${props.join(',')},` : '';
    s += `actions=${formatActions(wire(b.actions, v), { ports, tun })}`;
  }
  return s;
}
