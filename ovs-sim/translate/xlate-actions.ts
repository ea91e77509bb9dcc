// Translation: the actions that rewrite the flow (set_field, move, dec_ttl, learn, VLAN push/pop).
import { type Ofpact, formatActions } from '../openflow/actions.js';
import { ETH_TYPE, type Flow, VLAN_CFI, W } from '../base/flow.js';
import { prereqsOk, writeField } from '../base/fields.js';
import { learnExecute } from '../openflow/learn.js';
import { Match, formatFieldValue, formatMatch } from '../openflow/match.js';
import { type Subfield, bitsMask, fieldBits, formatSubfield, readSubfield, readWhole, writeSubfield } from '../base/subfield.js';
import { OFPP, hexBytes } from '../base/text.js';
import { Classifier } from '../switch/classifier.js';
import { Ctx } from './xlate-context.js';
import { controllerAction } from './xlate-normal.js';

// -- the actions --

export function reportSubfield(ctx: Ctx, sf: Subfield): void {
  if (!ctx.trace) return;
  let v: string;
  if (sf.ofs === 0 && sf.nBits >= fieldBits(sf.field, ctx.bridge.tun)) v = formatFieldValue(sf.field, readWhole(ctx.flow, sf.field, ctx.bridge.tun), null);
  else v = hexBytes(readSubfield(ctx.flow, sf, ctx.bridge.tun));
  ctx.report('detail', `${formatSubfield(sf, ctx.bridge.tun)} is now ${v}`);
}

export const isIpAny = (f: Flow): boolean => f[W.dl_type] === ETH_TYPE.IP || f[W.dl_type] === ETH_TYPE.IPV6;

export function decTtl(ctx: Ctx, ids: number[] | null): boolean {
  const f = ctx.flow;
  if (!isIpAny(f)) return false;
  ctx.touch('nw_ttl', 0xff);
  if (f[W.nw_ttl]! > 1) {
    f[W.nw_ttl] = f[W.nw_ttl]! - 1;
    return false;
  }
  for (const id of ids ?? [0]) controllerAction(ctx, 65535, 'invalid_ttl', id, null);
  ctx.report('warn', `IPv${f[W.dl_type] === ETH_TYPE.IP ? 4 : 6} decrement TTL exception`);
  return true;
}

export function learnAction(ctx: Ctx, l: Extract<Ofpact, { type: 'learn' }>): void {
  // learn_mask: the fields a learn reads are part of the megaflow, learning or not.
  for (const sp of l.specs) if (sp.src) writeSubfield(ctx.wc, sp.src, bitsMask(sp.src.nBits), ctx.bridge.tun);
  if (!ctx.xin.packet) {
    ctx.report('warn', 'suppressing side effects, so learn action ignored');
    return;
  }
  const tun = ctx.bridge.tun;
  const learned = learnExecute(l, ctx.flow, tun);
  const m = new Match();
  for (const s of learned.matchSets) {
    writeSubfield(m.flow, s.dst, s.value, tun);
    writeSubfield(m.wc, s.dst, bitsMask(s.dst.nBits), tun);
  }
  // match_add_ethernet_prereq is implicit: packet_type is always Ethernet here.
  const actions: Ofpact[] = [];
  if (l.finIdle || l.finHard) actions.push({ type: 'fin_timeout', idle: l.finIdle, hard: l.finHard });
  for (const ld of learned.loads) {
    actions.push({ type: 'set_field', field: ld.dst.field, value: ld.value << BigInt(ld.dst.ofs), mask: bitsMask(ld.dst.nBits) << BigInt(ld.dst.ofs), load: true });
  }
  for (const p of learned.outputs) actions.push({ type: 'output', port: p, maxLen: 0 });
  if (ctx.trace) {
    let s = `table=${l.table} ${formatMatch(m, 32768, null, tun)}`.replace(/ $/, '');
    s += ` priority=${l.priority}`;
    if (l.cookie) s += ` cookie=0x${l.cookie.toString(16)}`;
    if (l.idle) s += ` idle=${l.idle}`;
    if (l.hard) s += ` hard=${l.hard}`;
    if (l.sendFlowRem) s += ' send_flow_rem';
    s += ` actions=${formatActions(actions)}`;
    ctx.report('detail', s);
  }
  let success = true;
  const t = ctx.bridge.table(l.table);
  if (l.limit) {
    const st = t.subtableFor(m.wc);
    const existing = [...t.rules()].filter((r) => r.cookie === l.cookie).length;
    if (existing >= l.limit && !t.findExact(st, Classifier.valsOf(st, m.flow), l.priority)) success = false;
  }
  if (success) {
    // Installed when the translation ends: this translation looks at the tables as they were
    // when it started (OVS's tables version), so a flow learned now is not visible to it.
    ctx.learned.push({
      command: 'modify_strict', match: m, priority: l.priority, table: l.table, cookie: 0n, cookieMask: 0n, newCookie: l.cookie,
      modifyCookie: true, mayAdd: true, idle: l.idle, hard: l.hard, importance: 0, flags: l.sendFlowRem ? 1 : 0,
      outPort: OFPP.NONE, outGroup: 0xffffffff, actions, usable: { p: 0x1ff },
    });
  }
  if (l.resultDst) {
    writeSubfield(ctx.flow, l.resultDst, success ? 1n : 0n, tun);
    reportSubfield(ctx, l.resultDst);
  }
  if (ctx.trace && !success) ctx.report('detail', 'Limit exceeded, learn failed');
}

export function setFieldAction(ctx: Ctx, a: Extract<Ofpact, { type: 'set_field' }>): void {
  const f = ctx.flow;
  const mf = a.field;
  if (!prereqsOk(mf.prereq, f)) {
    ctx.report('warn', `unmet prerequisites for ${mf.name}, set_field ignored`);
    return;
  }
  if (mf.tunMetadata !== undefined) {
    writeSubfield(f, { field: mf, ofs: 0, nBits: fieldBits(mf, ctx.bridge.tun) }, a.value & a.mask, ctx.bridge.tun);
    return;
  }
  if (mf.name === 'vlan_vid' || mf.name === 'vlan_tci' || mf.name === 'vlan_pcp' || mf.name === 'dl_vlan' || mf.name === 'dl_vlan_pcp') {
    if (!f[W.vlan0]! || (f[W.vlan0]! >>> 16) === 0) f[W.vlan0] = (f[W.vlan0]! & 0xffff) | (ETH_TYPE.VLAN << 16);
  }
  if (mf.name === 'ct_mark') ctx.ctMarkMask |= Number(a.mask);
  if (mf.name === 'ct_label') ctx.ctLabelMask |= a.mask;
  writeField(f, mf, a.value, a.mask);
  writeField(ctx.wc, mf, a.mask, a.mask);
  if (mf.name === 'vlan_tci' && (Number(a.value & a.mask) & VLAN_CFI) === 0 && (Number(a.mask) & VLAN_CFI)) {
    // A TCI without CFI means no tag.
    f[W.vlan0] = f[W.vlan1]!;
    f[W.vlan1] = 0;
  }
}

export function moveAction(ctx: Ctx, a: Extract<Ofpact, { type: 'reg_move' }>): void {
  const tun = ctx.bridge.tun;
  const v = readSubfield(ctx.flow, a.src, tun);
  if (a.dst.field.name === 'ct_mark') ctx.ctMarkMask |= Number(bitsMask(a.dst.nBits) << BigInt(a.dst.ofs));
  if (a.dst.field.name === 'ct_label') ctx.ctLabelMask |= bitsMask(a.dst.nBits) << BigInt(a.dst.ofs);
  writeSubfield(ctx.flow, a.dst, v, tun);
  writeSubfield(ctx.wc, a.dst, bitsMask(a.dst.nBits), tun);
  writeSubfield(ctx.wc, a.src, bitsMask(a.src.nBits), tun);
  reportSubfield(ctx, a.dst);
}

export function popVlan(f: Flow): void {
  f[W.vlan0] = f[W.vlan1]!;
  f[W.vlan1] = 0;
}

export function pushVlan(f: Flow, tpid: number): void {
  f[W.vlan1] = f[W.vlan0]!;
  f[W.vlan0] = ((tpid << 16) | VLAN_CFI) >>> 0;
}
