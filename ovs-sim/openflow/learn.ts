// The learn action: its specs (match a field, from another field or an immediate value; load into
// the learned flow's actions; output to a port read from a field), parsed and printed as OVS does,
// and executed into the flow mod it stands for (a modify_strict, as learn_execute builds it).
import { FieldError } from '../base/fields.js';
import type { Flow } from '../base/flow.js';
import { formatFieldValue, parseFieldValue } from './match.js';
import { type Subfield, bitsMask, fieldBits, formatSubfield, parseSubfield, parseSubfieldPrefix, readSubfield } from '../base/subfield.js';
import { type PortMap, atoi, hexBytes, keyValues, parseIntString, parseTable } from '../base/text.js';
import type { TunTable } from '../base/tlv.js';

export interface LearnSpec {
  kind: 'match' | 'load' | 'output';
  /** Source field, or null for an immediate value. */
  src: Subfield | null;
  imm: bigint;
  /** Destination (match or load); null for output. */
  dst: Subfield | null;
  nBits: number;
}

export interface LearnAction {
  type: 'learn';
  table: number;
  idle: number;
  hard: number;
  finIdle: number;
  finHard: number;
  priority: number;
  cookie: bigint;
  sendFlowRem: boolean;
  deleteLearned: boolean;
  limit: number;
  resultDst: Subfield | null;
  specs: LearnSpec[];
}

interface Ctx {
  ports?: PortMap | null;
  tun?: TunTable | null;
}


function parseSpec(orig: string, name: string, value: string, ctx: Ctx): LearnSpec {
  let dst: Subfield | null = null;
  try {
    dst = parseSubfield(name, ctx.tun);
  } catch {
    dst = null;
  }
  if (dst) {
    if (value === '') return { kind: 'match', src: dst, imm: 0n, dst, nBits: dst.nBits };
    let srcErr: string | null = null;
    try {
      const src = parseSubfield(value, ctx.tun);
      if (src.nBits !== dst.nBits) throw new FieldError(`${orig}: bit widths of ${name} (${src.nBits}) and ${value} (${dst.nBits}) differ`);
      return { kind: 'match', src, imm: 0n, dst, nBits: dst.nBits };
    } catch (e) {
      if (e instanceof FieldError && e.message.includes('bit widths')) throw e;
      srcErr = (e as Error).message;
    }
    // An immediate value.
    let imm: bigint;
    try {
      if (dst.ofs === 0 && dst.nBits === fieldBits(dst.field, ctx.tun)) {
        const v = parseFieldValue(dst.field, value, ctx.ports);
        if (v.mask !== -1n && v.mask !== (1n << BigInt(8 * dst.field.nBytes)) - 1n && (v.mask & dst.field.valueMask) !== dst.field.valueMask) throw new FieldError(`${value}: wildcards not allowed here`);
        imm = v.value;
      } else {
        const v = parseIntString(value, dst.field.nBytes);
        if (v === null || v === 'range' || v.rest !== '') throw new FieldError(`${orig}: cannot parse integer value`);
        if (v.value >> BigInt(dst.nBits) !== 0n) throw new FieldError(`${orig}: value ${formatFieldValue(dst.field, v.value, null)} does not fit into ${dst.nBits} bits`);
        imm = v.value;
      }
    } catch (e) {
      throw new FieldError(`${orig}: ${name} value ${value} cannot be parsed as a subfield (${srcErr}) or an immediate value (${(e as Error).message})`);
    }
    return { kind: 'match', src: null, imm, dst, nBits: dst.nBits };
  }
  if (name === 'load') {
    const arrow = value.indexOf('->');
    if (arrow === 0) throw new FieldError(`${name}: missing source before \`->' in \`${value}'`);
    if (arrow < 0) throw new FieldError(`${name}: missing \`->' in \`${value}'`);
    const n = parseIntString(value, 16);
    if (n !== null && n !== 'range') {
      if (n.rest !== value.slice(arrow)) throw new FieldError(`${name}: garbage before \`->' in \`${value}'`);
      const d = parseSubfield(value.slice(arrow + 2), ctx.tun);
      if (n.value >> BigInt(d.nBits) !== 0n) throw new FieldError(`${value.slice(0, arrow)}: value does not fit into ${d.nBits} bits`);
      if (!d.field.writable) throw new FieldError(`${value.slice(arrow + 2)}: destination field ${d.field.name} is not writable`);
      return { kind: 'load', src: null, imm: n.value, dst: d, nBits: d.nBits };
    }
    const { sf: src, rest } = parseSubfieldPrefix(value, ctx.tun);
    if (!rest.startsWith('->')) throw new FieldError(`${value}: missing \`->' following source`);
    const d = parseSubfield(rest.slice(2), ctx.tun);
    if (src.nBits !== d.nBits) throw new FieldError(`${value}: source field is ${src.nBits} bits wide but destination is ${d.nBits} bits wide`);
    return { kind: 'load', src, imm: 0n, dst: d, nBits: src.nBits };
  }
  if (name === 'output') {
    const src = parseSubfield(value, ctx.tun);
    return { kind: 'output', src, imm: 0n, dst: null, nBits: src.nBits };
  }
  throw new FieldError(`${orig}: unknown keyword ${name}`);
}

export function parseLearn(arg: string, ctx: Ctx): LearnAction {
  const l: LearnAction = {
    type: 'learn', table: 1, idle: 0, hard: 0, finIdle: 0, finHard: 0, priority: 32768, cookie: 0n,
    sendFlowRem: false, deleteLearned: false, limit: 0, resultDst: null, specs: [],
  };
  for (const [name, value] of keyValues(arg)) {
    if (name === 'table') {
      // ofputil_table_from_string: a number above 255 is logged, then refused.
      const t = parseTable(value) ?? -1;
      if (t < 0) throw new FieldError(`unknown table "${value}"`);
      if (t === 255) throw new FieldError(`${arg}: table id 255 not valid for \`learn' action`);
      l.table = t;
    } else if (name === 'priority') l.priority = atoi(value) & 0xffff;
    else if (name === 'idle_timeout') l.idle = atoi(value) & 0xffff;
    else if (name === 'hard_timeout') l.hard = atoi(value) & 0xffff;
    else if (name === 'fin_idle_timeout') l.finIdle = atoi(value) & 0xffff;
    else if (name === 'fin_hard_timeout') l.finHard = atoi(value) & 0xffff;
    else if (name === 'cookie') {
      const m = /^\s*(0[xX][0-9a-fA-F]+|\d+)/.exec(value);
      l.cookie = m ? BigInt(m[1]!) & 0xffffffffffffffffn : 0n;
    } else if (name === 'send_flow_rem') l.sendFlowRem = true;
    else if (name === 'delete_learned') l.deleteLearned = true;
    else if (name === 'limit') l.limit = atoi(value) >>> 0;
    else if (name === 'result_dst') {
      const sf = parseSubfield(value, ctx.tun);
      if (!sf.field.writable) throw new FieldError(`${value} is read-only`);
      if (sf.nBits !== 1) throw new FieldError("result_dst in 'learn' action must be a single bit");
      l.resultDst = sf;
    } else {
      l.specs.push(parseSpec(arg, name, value, ctx));
    }
  }
  return l;
}

export function formatLearn(l: LearnAction, ctx: Ctx = {}): string {
  let s = `learn(table=${l.table}`;
  if (l.idle) s += `,idle_timeout=${l.idle}`;
  if (l.hard) s += `,hard_timeout=${l.hard}`;
  if (l.finIdle) s += `,fin_idle_timeout=${l.finIdle}`;
  if (l.finHard) s += `,fin_hard_timeout=${l.finHard}`;
  if (l.priority !== 32768) s += `,priority=${l.priority}`;
  if (l.sendFlowRem) s += ',send_flow_rem';
  if (l.deleteLearned) s += ',delete_learned';
  if (l.cookie !== 0n) s += `,cookie=0x${l.cookie.toString(16)}`;
  if (l.limit) s += `,limit=${l.limit}`;
  if (l.resultDst) s += `,result_dst=${formatSubfield(l.resultDst, ctx.tun)}`;
  for (const sp of l.specs) {
    s += ',';
    const immHex = (): string => hexBytes(sp.imm & bitsMask(Math.ceil(sp.nBits / 8) * 8));
    if (sp.kind === 'match' && sp.src === null) {
      const d = sp.dst!;
      if (d.ofs === 0 && d.nBits === fieldBits(d.field, ctx.tun)) s += `${d.field.name}=${formatFieldValue(d.field, sp.imm, null, ctx.ports)}`;
      else s += `${formatSubfield(d, ctx.tun)}=${immHex()}`;
    } else if (sp.kind === 'match') {
      s += formatSubfield(sp.dst!, ctx.tun);
      if (sp.src!.field !== sp.dst!.field || sp.src!.ofs !== sp.dst!.ofs) s += `=${formatSubfield(sp.src!, ctx.tun)}`;
    } else if (sp.kind === 'load' && sp.src === null) {
      s += `load:${immHex()}->${formatSubfield(sp.dst!, ctx.tun)}`;
    } else if (sp.kind === 'load') {
      s += `load:${formatSubfield(sp.src!, ctx.tun)}->${formatSubfield(sp.dst!, ctx.tun)}`;
    } else {
      s += `output:${formatSubfield(sp.src!, ctx.tun)}`;
    }
  }
  return `${s})`;
}

/** What executing a learn action produces: the pieces of a modify_strict flow mod. */
export interface Learned {
  matchSets: { dst: Subfield; value: bigint }[];
  loads: { dst: Subfield; value: bigint }[];
  outputs: number[];
}

export function learnExecute(l: LearnAction, flow: Flow, tun?: TunTable | null): Learned {
  const out: Learned = { matchSets: [], loads: [], outputs: [] };
  for (const sp of l.specs) {
    const value = sp.src ? readSubfield(flow, sp.src, tun) : sp.imm & bitsMask(sp.nBits);
    if (sp.kind === 'match') out.matchSets.push({ dst: sp.dst!, value });
    else if (sp.kind === 'load') out.loads.push({ dst: sp.dst!, value });
    else {
      if (sp.nBits <= 16 || value >> 16n === 0n) {
        const port = Number(value & 0xffffn);
        if (port < 0xff00 || port === 0xfff8 || port === 0xfffb || port === 0xfffe || port === 0xfffc) out.outputs.push(port);
      }
    }
  }
  return out;
}
