// Translation: table lookups (resubmit and goto_table, misses, depth and resubmit limits).
import { type Ofpact } from '../openflow/actions.js';
import { type Rule } from '../switch/bridge.js';
import { ETH_TYPE, FRAG, type Flow, W } from '../base/flow.js';
import { formatMatch } from '../openflow/match.js';
import { MAX_DEPTH, MAX_RESUBMITS, Ctx } from './xlate-context.js';

// -- table lookups --

/**
 * The rule a packet hits in a table (rule_dpif_lookup_from_table). With the default table-miss
 * configuration a miss does not continue to the next table, whatever the caller.
 */
export function lookupFromTable(ctx: Ctx, tableId: number, inPort: number): Rule | null {
  const f = ctx.flow;
  const oldTpSrc = f[W.tp_src]!;
  const oldTpDst = f[W.tp_dst]!;
  const oldInPort = f[W.in_port]!;
  // frag_handling "normal": fragments are looked up without transport ports.
  if (f[W.nw_frag]! & FRAG.ANY) {
    f[W.tp_src] = 0;
    f[W.tp_dst] = 0;
  }
  f[W.in_port] = inPort;
  const rule = ctx.bridge.table(tableId).lookup(f);
  f[W.tp_src] = oldTpSrc;
  f[W.tp_dst] = oldTpDst;
  f[W.in_port] = oldInPort;
  if (rule?.subtable) {
    const st = rule.subtable;
    for (let i = 0; i < st.idx.length; i++) ctx.wc[st.idx[i]!] = (ctx.wc[st.idx[i]!]! | st.mask[i]!) >>> 0;
  }
  return rule ?? null;
}

export function reportTable(ctx: Ctx, rule: Rule | null, tableId: number): void {
  if (!ctx.trace) return;
  let s = `${String(tableId).padStart(2, ' ')}. `;
  // A miss hits the bridge's internal no-packet-in rule; OVS names it "No match." only when it
  // is the first bridge's, so in a bridge reached over a patch port it prints as the rule it is.
  if (!rule) s += ctx.bridge === ctx.xin.bridge ? 'No match.' : 'reg0=0x2, priority 0';
  else {
    s += formatMatch(rule.match(), 32768, ctx.ports(), ctx.bridge.tun);
    if (!s.endsWith(' ')) s += ', ';
    s += `priority ${rule.priority}`;
    if (rule.cookie !== 0n) s += `, cookie 0x${rule.cookie.toString(16)}`;
  }
  const n = ctx.report('table', s)!;
  ctx.trace = n.subs;
}

export function creditRule(ctx: Ctx, rule: Rule): void {
  if (!ctx.xin.stats) return;
  rule.nPackets += 1;
  rule.nBytes += ctx.xin.stats.bytes;
  rule.used = ctx.bridge.now();
}

export function resourceCheck(ctx: Ctx): boolean {
  if (ctx.depth >= MAX_DEPTH) {
    ctx.report('error', `over max translation depth ${MAX_DEPTH}`);
    ctx.error = 'Recursion too deep';
  } else if (ctx.resubmits >= MAX_RESUBMITS) {
    ctx.report('error', `over ${MAX_RESUBMITS} resubmit actions`);
    ctx.error = 'Too many resubmits';
  } else {
    return true;
  }
  return false;
}

function tupleSwap(f: Flow): void {
  const swap = (a: number, b: number, n = 1): void => {
    for (let i = 0; i < n; i++) {
      const t = f[a + i]!;
      f[a + i] = f[b + i]!;
      f[b + i] = t;
    }
  };
  swap(W.nw_proto, W.ct_nw_proto);
  if (f[W.dl_type] === ETH_TYPE.IP) {
    swap(W.nw_src, W.ct_nw_src);
    swap(W.nw_dst, W.ct_nw_dst);
  } else {
    swap(W.ipv6_src, W.ct_ipv6_src, 4);
    swap(W.ipv6_dst, W.ct_ipv6_dst, 4);
  }
  swap(W.tp_src, W.ct_tp_src);
  swap(W.tp_dst, W.ct_tp_dst);
}

export function tableAction(ctx: Ctx, inPort: number, tableId: number, withCtOrig: boolean, last: boolean, xlator: Xlator): void {
  if (!resourceCheck(ctx)) return;
  const oldTable = ctx.tableId;
  ctx.tableId = tableId;
  if (withCtOrig) {
    const isIp = ctx.flow[W.dl_type] === ETH_TYPE.IP || ctx.flow[W.dl_type] === ETH_TYPE.IPV6;
    if (ctx.flow[W.ct_nw_proto] === 0 || !isIp) {
      ctx.report('error', 'resubmit(ct) with non-tracked or non-IP packet!');
      ctx.tableId = oldTable;
      return;
    }
    tupleSwap(ctx.flow);
  }
  const rule = lookupFromTable(ctx, tableId, inPort);
  if (withCtOrig) tupleSwap(ctx.flow);
  const oldTrace = ctx.trace;
  reportTable(ctx, rule, tableId);
  if (rule) creditRule(ctx, rule);
  recursively(ctx, rule, tableId <= oldTable, last, xlator);
  ctx.trace = oldTrace;
  ctx.tableId = oldTable;
}

export type Xlator = (actions: Ofpact[], ctx: Ctx, last: boolean, groupBucket: boolean) => void;

function recursively(ctx: Ctx, rule: Rule | null, deepens: boolean, last: boolean, xlator: Xlator): void {
  const oldRule = ctx.rule;
  const oldCookie = ctx.ruleCookie;
  ctx.resubmits++;
  if (deepens) ctx.depth++;
  ctx.rule = rule;
  ctx.ruleCookie = rule?.cookie ?? 0n;
  xlator(rule?.actions ?? [], ctx, last, false);
  ctx.ruleCookie = oldCookie;
  ctx.rule = oldRule;
  if (deepens) ctx.depth--;
}
