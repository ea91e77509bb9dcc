// Actions: parse ovs-ofctl action syntax and print it as OVS 3.1 dumps it over OpenFlow 1.3.
// Execution lives in bridge.ts (it needs tables and ports).
import { FIELDS, FieldError, type FieldRef, type FieldSpec, formatFieldRef, formatValue, mask, parseFieldRef, parseValue } from './fields.js';

export type Action =
  | { type: 'output'; port: number | string }
  | { type: 'in_port' }
  | { type: 'resubmit'; port: number | null; table: number | null }
  | { type: 'goto_table'; table: number }
  | { type: 'set_field'; spec: FieldSpec; value: bigint }
  | { type: 'load'; dst: FieldRef; value: bigint }
  | { type: 'move'; src: FieldRef; dst: FieldRef }
  | { type: 'controller'; userdata: string | null; maxLen: number }
  | { type: 'dec_ttl' };

/** Split on commas that are not inside parentheses. */
export function splitTop(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 40) depth += 1; // (
    else if (c === 41) depth -= 1; // )
    else if (c === 44 && depth === 0) { // ,
      const part = text.slice(start, i).trim();
      if (part !== '') out.push(part);
      start = i + 1;
    }
  }
  const last = text.slice(start).trim();
  if (last !== '') out.push(last);
  return out;
}

const portOf = (t: string): number | string => (/^\d+$/.test(t) ? Number(t) : t);

export function parseActions(text: string): Action[] {
  const t = text.trim();
  if (t === '' || t === 'drop') return [];
  return splitTop(t).map(parseAction);
}

function parseAction(a: string): Action {
  // The common ones first: a flow table is mostly set_field, output, load, move and resubmit.
  let m = /^set_field:(.+)->([a-z_0-9]+)$/.exec(a);
  if (m) {
    const spec = FIELDS.get(m[2]!);
    if (!spec) throw new FieldError(`${m[2]}: unknown field for set_field`);
    return { type: 'set_field', spec, value: parseValue(spec, m[1]!) & mask(spec.bits) };
  }
  if (a.startsWith('output:')) return { type: 'output', port: portOf(a.slice(7)) };
  const lower = a.toLowerCase();
  if (lower === 'in_port') return { type: 'in_port' };
  if (lower === 'drop') throw new FieldError('drop must be the only action');
  if (lower === 'dec_ttl') return { type: 'dec_ttl' };
  if (lower === 'controller') return { type: 'controller', userdata: null, maxLen: 65535 };
  m = /^controller:(\d+)$/i.exec(a);
  if (m) return { type: 'controller', userdata: null, maxLen: Number(m[1]) };
  m = /^controller\((.*)\)$/i.exec(a);
  if (m) {
    let userdata: string | null = null;
    let maxLen = 65535;
    for (const kv of splitTop(m[1]!)) {
      const [k, v = ''] = kv.split('=');
      if (k === 'userdata') userdata = v;
      else if (k === 'max_len') maxLen = Number(v);
    }
    return { type: 'controller', userdata, maxLen };
  }
  m = /^output:(.+)$/i.exec(a);
  if (m) return { type: 'output', port: portOf(m[1]!) };
  if (/^\d+$/.test(a)) return { type: 'output', port: Number(a) };
  m = /^resubmit\(([^,]*),([^,)]*)\)$/.exec(a);
  if (m) return { type: 'resubmit', port: m[1] === '' ? null : Number(m[1]), table: m[2] === '' ? null : Number(m[2]) };
  m = /^resubmit:(\d+)$/.exec(a);
  if (m) return { type: 'resubmit', port: Number(m[1]), table: null };
  m = /^goto_table:(\d+)$/.exec(a);
  if (m) return { type: 'goto_table', table: Number(m[1]) };
  m = /^mod_dl_(src|dst):(.+)$/.exec(a);
  if (m) {
    const spec = FIELDS.get(`dl_${m[1]}`)!;
    return { type: 'set_field', spec, value: parseValue(spec, m[2]!) };
  }
  m = /^load:([^-]+)->(.+)$/.exec(a);
  if (m) {
    const dst = parseFieldRef(m[2]!);
    return { type: 'load', dst, value: BigInt(m[1]!) & mask(dst.nBits) };
  }
  m = /^move:(.+)->(.+)$/.exec(a);
  if (m) {
    const src = parseFieldRef(m[1]!);
    const dst = parseFieldRef(m[2]!);
    if (src.nBits !== dst.nBits) throw new FieldError(`${a}: source and destination sizes differ`);
    return { type: 'move', src, dst };
  }
  throw new FieldError(`unknown action ${a}`);
}

/** OXM names OVS prints in set_field. */
const OXM_NAME: Partial<Record<string, string>> = { dl_src: 'eth_src', dl_dst: 'eth_dst', nw_src: 'ip_src', nw_dst: 'ip_dst' };

export function formatAction(a: Action): string {
  switch (a.type) {
    case 'output':
      return `output:${a.port}`;
    case 'in_port':
      return 'IN_PORT';
    case 'resubmit':
      return `resubmit(${a.port ?? ''},${a.table ?? ''})`;
    case 'goto_table':
      return `goto_table:${a.table}`;
    case 'set_field':
      return `set_field:${formatValue(a.spec, a.value)}->${OXM_NAME[a.spec.name] ?? a.spec.name}`;
    case 'load':
      return `load:0x${a.value.toString(16)}->${formatFieldRef(a.dst)}`;
    case 'move':
      return `move:${formatFieldRef(a.src)}->${formatFieldRef(a.dst)}`;
    case 'controller':
      if (a.userdata === null) return `CONTROLLER:${a.maxLen}`;
      return `controller(${a.maxLen !== 65535 ? `max_len=${a.maxLen},` : ''}userdata=${a.userdata})`;
    case 'dec_ttl':
      return 'dec_ttl';
  }
}

export function formatActions(list: Action[]): string {
  return list.length === 0 ? 'drop' : list.map(formatAction).join(',');
}
