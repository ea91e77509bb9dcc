// Translation: ct and its recirculation.
import { type Ct } from '../openflow/actions.js';
import { W, getWords } from '../base/flow.js';
import { readSubfield } from '../base/subfield.js';
import { FrozenState, clone, clearConntrack, Ctx } from './xlate-context.js';
import { doXlateActions } from './xlate-freeze.js';

// -- conntrack --

export function conntrackAction(ctx: Ctx, ct: Ct, last: boolean): void {
  const zone = ct.zoneSrc ? Number(readSubfield(ctx.flow, ct.zoneSrc, ctx.bridge.tun)) : ct.zoneImm;
  ctx.commit();
  ctx.natAction = null;
  ctx.ctMarkMask = 0;
  ctx.ctLabelMask = 0n;
  doXlateActions(ct.actions, ctx, last, false);
  const f = ctx.flow;
  const label = getWords(f, W.ct_label, 4);
  ctx.odp.push({
    t: 'ct', commit: ct.commit && !ct.force, force: ct.force, zone,
    mark: ctx.ctMarkMask ? [(f[W.ct_mark]! & ctx.ctMarkMask) >>> 0, ctx.ctMarkMask >>> 0] : null,
    label: ctx.ctLabelMask ? [label & ctx.ctLabelMask, ctx.ctLabelMask] : null,
    helper: ct.alg === 21 ? 'ftp' : ct.alg === 69 ? 'tftp' : null, nat: ctx.natAction, flow: clone(f),
  });
  if (ct.table !== null) {
    ctx.conntracked = true;
    recirculate(ctx, ct.table, zone, 'conntrack');
  }
  ctx.natAction = null;
  clearConntrack(ctx.flow);
  ctx.report('detail', 'Sets the packet to an untracked state, and clears all the conntrack fields.');
  ctx.conntracked = false;
}

export function recirculate(ctx: Ctx, table: number, zone: number, kind: 'conntrack' | 'other'): void {
  const id = ctx.recircFor(table, `${kind}:${zone}:${ctx.odp.length}`);
  const state: FrozenState = { bridge: ctx.bridge, table, conntracked: ctx.conntracked, actionSet: [...ctx.actionSet], stack: [...ctx.stack], flow: clone(ctx.flow) };
  ctx.bridge.datapath.frozen.set(id, state);
  ctx.odp.push({ t: 'recirc', id });
  if (ctx.xin.recircQueue) {
    const f = clone(ctx.flow);
    f[W.recirc_id] = id;
    f[W.ct_zone] = zone;
    ctx.xin.recircQueue.push({ id, kind, flow: f, nat: ctx.natAction, zone });
    if (kind === 'conntrack') ctx.report('detail', `A clone of the packet is forked to recirculate. The forked pipeline will be resumed at table ${table}.`);
  }
}
