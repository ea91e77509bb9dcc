// Translation: groups (all, select by OVS's methods, indirect, fast failover) and the action set.
import { tunMetadataRead } from '../base/tlv.js';
import { type Ofpact, formatActions } from '../openflow/actions.js';
import { flowHashSymmetricL4, hashBoolean, hashBytes, hashInt, hashUint64 } from '../base/hash.js';
import { W } from '../base/flow.js';
import { prereqsOk, readField, writeField } from '../base/fields.js';
import { type Group } from '../switch/groups.js';
import { OFPP, portText } from '../base/text.js';
import { clone, Ctx } from './xlate-context.js';
import { resourceCheck } from './xlate-tables.js';
import { port } from './xlate-output.js';
import { triggerFreeze, finishFreezing, doXlateActions } from './xlate-freeze.js';

// -- groups --

export function groupAction(ctx: Ctx, id: number, last: boolean): boolean {
  if (!resourceCheck(ctx)) return false;
  const g = ctx.bridge.groups.get(id);
  if (!g) {
    ctx.report('warn', `output to nonexistent group ${id}`);
    return true;
  }
  if (ctx.xin.stats) g.packets += 1;
  if (g.type === 'all' || g.type === 'indirect') {
    g.buckets.forEach((b, i) => {
      groupBucket(ctx, b, last && i === g.buckets.length - 1);
    });
    return false;
  }
  const bucket = g.type === 'select' ? pickSelect(ctx, g) : pickFastFailover(ctx, g);
  if (bucket) {
    ctx.report('detail', `using bucket ${bucket.id}`);
    groupBucket(ctx, bucket, last);
  } else {
    ctx.report('detail', 'no live bucket');
  }
  return false;
}

/** bucket_is_alive: a bucket with no watch is alive; else its watched port exists or its watched group has a live bucket. */
function bucketAlive(ctx: Ctx, g: Group, b: Bucket, depth = 0): boolean {
  if (depth >= 128) {
    ctx.report('error', 'bucket chaining exceeded 128 links');
    return false;
  }
  // In select groups a bucket of weight 0 is never used.
  if (g.type === 'select' && b.weight === 0) return false;
  const watchPort = b.watchPort ?? OFPP.NONE;
  const watchGroup = b.watchGroup ?? 0xffffffff;
  if (watchPort === OFPP.NONE && watchGroup === 0xffffffff) return true;
  if (watchPort !== OFPP.NONE && watchPort !== OFPP.CONTROLLER && port(ctx, watchPort)) return true;
  if (watchGroup !== 0xffffffff) {
    const wg = ctx.bridge.groups.get(watchGroup);
    if (wg && firstLiveBucket(ctx, wg, depth + 1)) return true;
  }
  // A CONTROLLER watch is alive only with a controller connected, which a simulated switch has not.
  return false;
}

/** group_first_live_bucket, saying why each bucket before it is not live. */
function firstLiveBucket(ctx: Ctx, g: Group, depth: number): Bucket | null {
  for (const b of g.buckets) {
    if (bucketAlive(ctx, g, b, depth)) return b;
    const why: string[] = [];
    if (b.watchPort !== null && b.watchPort !== OFPP.NONE) why.push(`port ${portText(b.watchPort)}`);
    // (OVS says "port" for a watched group too.)
    if (b.watchGroup !== null && b.watchGroup !== 0xffffffff) why.push(`port ${b.watchGroup}`);
    ctx.report('detail', `bucket ${b.id}: not live due to ${why.join(' and ')}`);
  }
  return null;
}

function pickFastFailover(ctx: Ctx, g: Group): Bucket | null {
  return firstLiveBucket(ctx, g, 0);
}

/** selection_method=hash with fields: hash the fields' masked values (pick_hash_fields_select_group). */
function hashFieldsBasis(ctx: Ctx, g: Group): number {
  let basis = hashUint64(g.selectionParam);
  for (const { field, mask } of g.fields) {
    if (!prereqsOk(field.prereq, ctx.flow)) continue;
    const v = readField(ctx.flow, field) & mask;
    const bytes = new Uint8Array(field.nBytes);
    for (let i = 0; i < field.nBytes; i++) bytes[i] = Number((v >> BigInt(8 * (field.nBytes - 1 - i))) & 0xffn);
    basis = hashBytes(bytes, basis);
    if (field.tunMetadata !== undefined) basis = hashBoolean(tunMetadataRead(ctx.flow, field.tunMetadata, ctx.bridge.tun) !== null, basis);
    writeField(ctx.wc, field, readField(ctx.wc, field) | mask);
  }
  return basis;
}

export type Bucket = Group['buckets'][number];

/**
 * group_setup_dp_hash_table: spread 16 or more hash values over the buckets by weight (Webster's
 * method); null when that needs more than `max` values (or 256), or no bucket has weight.
 */
function dpHashTable(g: Group, max: number): Bucket[] | null {
  if (g.buckets.length === 0) return null;
  let total = 0;
  let minWeight = 0xffff;
  for (const b of g.buckets) {
    if (b.weight > 0 && b.weight < minWeight) minWeight = b.weight;
    total += b.weight;
  }
  if (total === 0) return null;
  const minSlots = Math.ceil(total / minWeight);
  let pow2 = 1;
  while (pow2 < minSlots) pow2 *= 2;
  const nHash = Math.max(16, pow2);
  if (nHash > 256 || (max !== 0 && nHash > max)) return null;
  const web = g.buckets.map((b) => ({ b, divisor: 1, value: b.weight }));
  const map: Bucket[] = [];
  for (let h = 0; h < nHash; h++) {
    let winner = web[0]!;
    for (let i = 1; i < web.length; i++) if (web[i]!.value > winner.value) winner = web[i]!;
    winner.divisor += 2;
    winner.value = winner.b.weight / winner.divisor;
    map.push(winner.b);
  }
  return map;
}

/** group_set_selection_method: without a method, dp_hash when 64 hash values will do. */
function selectMethod(g: Group): { kind: 'default' | 'hash' } | { kind: 'dp_hash'; alg: 'l4' | 'sym_l4'; basis: number; map: Bucket[] } {
  if (g.selectionMethod === '') {
    const map = dpHashTable(g, 64);
    return map ? { kind: 'dp_hash', alg: 'sym_l4', basis: 0, map } : { kind: 'default' };
  }
  if (g.selectionMethod === 'dp_hash') {
    const map = dpHashTable(g, 0);
    const alg = Number(g.selectionParam >> 32n) === 1 ? 'sym_l4' : 'l4';
    return map ? { kind: 'dp_hash', alg, basis: Number(g.selectionParam & 0xffffffffn), map } : { kind: 'default' };
  }
  return { kind: g.fields.length > 0 ? 'hash' : 'default' };
}

function pickSelect(ctx: Ctx, g: Group): Bucket | null {
  const method = selectMethod(g);
  if (method.kind === 'dp_hash') {
    const h = ctx.flow[W.dp_hash]!;
    // No hash yet: have the datapath compute one and recirculate (the group runs again then).
    if (h === 0) {
      ctx.freezeHash = { alg: method.alg, basis: method.basis };
      triggerFreeze(ctx);
      return null;
    }
    const mask = method.map.length - 1;
    ctx.wc[W.dp_hash] = (ctx.wc[W.dp_hash]! | mask) >>> 0;
    for (let i = 0; i <= mask; i++) {
      const b = method.map[(h + i) & mask]!;
      if (bucketAlive(ctx, g, b)) return b;
    }
    return null;
  }
  const basis = method.kind === 'hash' ? hashFieldsBasis(ctx, g) : flowHashSymmetricL4(ctx.flow, 0);
  let best: Group['buckets'][number] | null = null;
  let bestScore = 0;
  for (const b of g.buckets) {
    if (bucketAlive(ctx, g, b)) {
      const score = (hashInt(b.id, basis) & 0xffff) * b.weight;
      if (score >= bestScore) {
        best = b;
        bestScore = score;
      }
      ctx.report('detail', `bucket ${b.id}: score ${score}`);
    } else {
      ctx.report('detail', `bucket ${b.id}: not live due to watch_port`);
    }
  }
  return best;
}

export function groupBucket(ctx: Ctx, b: Bucket, last: boolean): void {
  const oldTrace = ctx.trace;
  const n = ctx.report('bucket', `bucket ${b.id}`);
  if (n) ctx.trace = n.subs;
  const oldFlow = clone(ctx.flow);
  b.packets += ctx.xin.stats ? 1 : 0;
  ctx.depth++;
  doXlateActions(actionSetOrder(b.actions), ctx, last, true);
  ctx.depth--;
  if (ctx.freezing) finishFreezing(ctx);
  ctx.flow = oldFlow;
  ctx.exit = false;
  ctx.trace = oldTrace;
}

/** An action set's actions in the order OpenFlow executes them (ofpacts_execute_action_set). */
function actionSetOrder(set: Ofpact[]): Ofpact[] {
  const order: Ofpact['type'][][] = [
    ['strip_vlan'], ['push_vlan'], ['dec_ttl'], ['set_vlan_vid', 'set_vlan_pcp', 'set_eth_src', 'set_eth_dst', 'set_ipv4_src', 'set_ipv4_dst', 'set_ip_dscp', 'set_ip_ecn', 'set_ip_ttl', 'set_l4_src_port', 'set_l4_dst_port', 'set_field', 'set_tunnel', 'reg_move'],
    ['set_queue'],
  ];
  const out: Ofpact[] = [];
  for (const types of order) out.push(...set.filter((a) => types.includes(a.type)));
  const group = set.find((a) => a.type === 'group');
  const output: Ofpact[] = set.filter((a) => a.type === 'output' || a.type === 'output_reg' || a.type === 'output_trunc' || a.type === 'controller' || a.type === 'enqueue');
  const rest = set.filter((a) => !order.flat().includes(a.type) && a.type !== 'group' && !output.includes(a));
  out.push(...rest);
  if (group) out.push(group);
  else if (output.length) out.push(output[output.length - 1]!);
  return out;
}

export function writeActions(ctx: Ctx, actions: Ofpact[]): void {
  if (!ctx.actionSetHasGroup) {
    for (const a of actions) {
      if (a.type === 'output') ctx.flow[W.actset_output] = a.port;
      else if (a.type === 'group') {
        ctx.flow[W.actset_output] = OFPP.UNSET;
        ctx.actionSetHasGroup = true;
        break;
      }
    }
  }
  // Later writes of the same kind replace earlier ones.
  for (const a of actions) {
    const same = (b: Ofpact): boolean => b.type === a.type && (a.type !== 'set_field' || (b as typeof a).field === a.field);
    ctx.actionSet = ctx.actionSet.filter((b) => !same(b));
    ctx.actionSet.push(a);
  }
}

export function reportActionSet(ctx: Ctx, verb: string): void {
  if (!ctx.trace) return;
  const list = actionSetOrder(ctx.actionSet);
  ctx.report('detail', list.length ? `action set ${verb}: ${formatActions(list)}` : `action set ${verb} empty`);
}

export function actionSet(ctx: Ctx): void {
  const list = actionSetOrder(ctx.actionSet);
  ctx.actionSet = [];
  if (list.length === 0) return;
  ctx.inActionSet = true;
  const oldTrace = ctx.trace;
  const n = ctx.report('table', '--. Executing action set:');
  if (n) ctx.trace = n.subs;
  doXlateActions(list, ctx, true, false);
  ctx.trace = oldTrace;
  ctx.inActionSet = false;
}
