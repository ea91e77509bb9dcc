// Translation: packet-ins, and the NORMAL action's L2 learning switch.
import { type Rule } from '../switch/bridge.js';
import { VLAN_CFI, W, getWords } from '../base/flow.js';
import { OFPP } from '../base/text.js';
import { REASON, clone, Ctx } from './xlate-context.js';
import { port, composeOutput } from './xlate-output.js';

// -- packet-ins --

export function controllerAction(ctx: Ctx, maxLen: number, reason: string, controllerId: number, userdata: Uint8Array | null): void {
  ctx.commit();
  if (reason === 'action' && ctx.rule && isTableMiss(ctx.rule)) reason = 'explicit_miss';
  const recircId = ctx.recircFor(ctx.tableId, `controller:${userdata ? Buffer.from(userdata).toString('hex') : ''}`);
  ctx.odp.push({
    t: 'userspace', pid: 0, cookie: {
      reason: REASON[reason] ?? 1, dontSend: !ctx.xin.packet, continuation: false, recircId, ruleCookie: ctx.ruleCookie, controllerId, maxLen,
    }, flow: clone(ctx.flow), userdata, tableId: ctx.tableId, bridge: ctx.bridge.name,
  });
}

/** A table-miss rule: priority 0 and a catch-all match. */
function isTableMiss(r: Rule): boolean {
  return r.priority === 0 && (r.subtable?.idx.length ?? 0) === 0;
}

// -- L2 learning switch (the NORMAL action), for bridges that use it --

/** eth_addr_is_reserved: STP and other IEEE 802.1D, Extreme and Cisco protocol addresses. */
const RESERVED_MACS = new Set<bigint>([
  ...Array.from({ length: 16 }, (_, i) => 0x0180c2000000n + BigInt(i)),
  0x00e02b000000n, 0x00e02b000004n, 0x00e02b000006n,
  0x01000c000000n, 0x01000cccccccn, 0x01000ccccccdn, 0x01000ccdcdcdn,
  ...Array.from({ length: 8 }, (_, i) => 0x01000cccccc0n + BigInt(i)),
]);

export function xlateNormal(ctx: Ctx): void {
  const inNo = ctx.flow[W.in_port]!;
  // A controller sourcing traffic (packet-out from CONTROLLER or NONE) gets OVS's "none"
  // bundle: nothing is learned from it and what it sends is forwarded or flooded as usual.
  const fromController = inNo === OFPP.CONTROLLER || inNo === OFPP.NONE;
  const inPort = fromController ? { ofport: -1, name: 'CONTROLLER' } : port(ctx, inNo);
  if (!inPort) {
    ctx.report('warn', 'no input bundle, dropping');
    return;
  }
  const f = ctx.flow;
  const dst = getWords(f, W.dl_dst, 2) & 0xffffffffffffn;
  const mac = ctx.bridge.macTable;
  const vlan = (f[W.vlan0]! & VLAN_CFI) ? f[W.vlan0]! & 0xfff : 0;
  const src = getWords(f, W.dl_src, 2) & 0xffffffffffffn;
  if (RESERVED_MACS.has(dst)) {
    ctx.report('detail', 'packet has reserved destination MAC, dropping');
    return;
  }
  // Learning is a side effect: only a packet (not a plain trace) learns, and says so.
  if (!fromController && !(src >> 40n & 1n) && ctx.xin.packet && mac.get(`${vlan}/${src}`) !== inPort.ofport) {
    mac.set(`${vlan}/${src}`, inPort.ofport);
    ctx.report('detail', `learned that ${ethStr(src)} is on port ${inPort.name} in VLAN ${vlan}`);
  }
  const learned = (dst >> 40n) & 1n ? undefined : mac.get(`${vlan}/${dst}`);
  if (learned !== undefined && port(ctx, learned)) {
    if (learned === inPort.ofport) {
      ctx.report('detail', 'learned port is input port, dropping');
      return;
    }
    ctx.report('detail', 'forwarding to learned port');
    composeOutput(ctx, learned, false);
    return;
  }
  // (OVS says "multicast traffic" only with multicast snooping on, which the model has not.)
  ctx.report('detail', 'no learned MAC for destination, flooding');
  // xlate_normal_flood walks the bundles in creation order.
  // Patch ports are bundles like any other: flooding crosses into the peer bridge.
  const targets = [...ctx.bridge.ports.values()].filter((x) => x.ofport !== inPort.ofport && !x.noFlood);
  for (const t of targets) composeOutput(ctx, t.ofport, false);
}

const ethStr = (v: bigint): string => Array.from({ length: 6 }, (_, i) => ((v >> BigInt(8 * (5 - i))) & 0xffn).toString(16).padStart(2, '0')).join(':');
