// Groups: all, select, indirect and fast_failover groups with their buckets, parsed from
// ovs-ofctl's group syntax and printed as dump-groups prints them.
import { type Ofpact, type ParseContext, anyUsable, formatActions, parseActions, strToU64 } from '../openflow/actions.js';
import { FieldError, type MfField, fieldByName, fieldOrder } from '../base/fields.js';
import { formatFieldValue, parseFieldValue } from '../openflow/match.js';
import { OFPP, type PortMap, keyValues, parsePort, portText } from '../base/text.js';
import type { TunTable } from '../base/tlv.js';
import { type OfVersion, wire } from '../openflow/wire.js';

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
  fields: HashField[];
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
  fields: HashField[];
  /** insert/remove bucket: where (first, last, or a bucket id). */
  commandBucketId: 'first' | 'last' | 'all' | number | null;
}

/** A field selection_method=hash hashes, with the mask its value is taken under. */
export interface HashField {
  field: MfField;
  mask: bigint;
}

/** fields(...) of a select group (parse_select_group_field), kept in meta-flow order. */
function parseHashFields(text: string, ports?: PortMap | null): HashField[] {
  const out: HashField[] = [];
  for (const [name, value] of keyValues(text)) {
    const mf = fieldByName(name);
    if (!mf) throw new FieldError(`${text}: unknown field ${name}`);
    if (out.some((f) => f.field === mf)) throw new FieldError(`${name}: duplicate field`);
    let mask = mf.valueMask;
    if (value !== '') {
      mask = parseFieldValue(mf, value, ports).value;
      if (mask === 0n && mf.tunMetadata === undefined) throw new FieldError(`${text}: values are wildcards here and must not be all-zeros`);
    }
    out.push({ field: mf, mask });
  }
  return out.sort((a, b) => fieldOrder(a.field) - fieldOrder(b.field));
}

function formatHashFields(fields: HashField[]): string {
  const one = (f: HashField): string => (f.mask === f.field.valueMask ? f.field.name : `${f.field.name}=${formatFieldValue(f.field, f.mask, null)}`);
  if (fields.length === 0) return '';
  return fields.length === 1 ? `,fields=${one(fields[0]!)}` : `,fields(${fields.map(one).join(',')})`;
}

const OFPG = { ALL: 0xfffffffc, ANY: 0xffffffff, MAX: 0xffffff00 } as const;
const ANY_WATCH = OFPP.NONE;

function parseGroupId(v: string): number {
  const t = v.toLowerCase();
  if (t === 'all') return OFPG.ALL;
  if (t === 'any') return OFPG.ANY;
  const n = Number(strToU64(v, 32));
  return n;
}

function parseBucket(text: string, ctx: { ports?: PortMap | null; tun?: TunTable | null }, idx: number, weight: number): Bucket {
  const b: Bucket = { id: idx, weight, watchPort: null, watchGroup: null, actions: [], packets: 0, bytes: 0 };
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
  const gm: GroupMod = { command, id: -1, type: null, buckets: [], selectionMethod: '', selectionParam: 0n, fields: [], commandBucketId: null };
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
    else if (k === 'fields') gm.fields = parseHashFields(v, ctx.ports);
    else if (k === 'command_bucket_id') gm.commandBucketId = v === 'first' ? 'first' : v === 'last' ? 'last' : v === 'all' ? 'all' : Number(v);
    else throw new FieldError(`unknown keyword ${k}`);
  }
  gm.buckets = parts.map((p, i) => parseBucket(p, ctx, i, gm.type === 'select' ? 1 : 0));
  if (gm.type === 'indirect' && gm.buckets.length > 1) throw new FieldError('Indirect groups can have at most one bucket.');
  if (gm.id < 0) throw new FieldError('must specify a group_id');
  return gm;
}

/** A group as ofp_print_group prints it for protocol version `v`. */
export function formatGroup(g: Group, v: OfVersion, ports?: PortMap | null, tun?: TunTable | null): string {
  let s = ` group_id=${g.id},type=${g.type}`;
  // The selection method is a group property of OpenFlow 1.5 (and the Nicira OpenFlow 1.0
  // extension); OpenFlow 1.1 to 1.4 replies cannot carry it.
  if (g.selectionMethod && (v === 10 || v >= 15)) {
    s += `,selection_method=${g.selectionMethod}`;
    if (g.selectionParam) s += `,selection_method_param=${g.selectionParam}`;
    s += formatHashFields(g.fields);
  }
  for (const b of g.buckets) {
    s += ',bucket=';
    // Bucket ids are in the OpenFlow 1.5 (and Nicira OpenFlow 1.0) group messages only.
    if (v === 10 || v >= 15) s += `bucket_id:${b.id},`;
    if (b.weight !== (g.type === 'select' ? 1 : 0)) s += `weight:${b.weight},`;
    if (b.watchPort !== null && b.watchPort !== ANY_WATCH) s += `watch_port:${portText(b.watchPort, ports)},`;
    if (b.watchGroup !== null && b.watchGroup !== OFPG.ANY) s += `watch_group:${b.watchGroup},`;
    s += `actions=${formatActions(wire(b.actions, v), { ports, tun })}`;
  }
  return s;
}
