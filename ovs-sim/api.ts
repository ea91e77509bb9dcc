// The simulator's public entry for programs that drive a bridge directly (a controller handing it
// structured flow mods rather than ovs-ofctl text): the flow-mod, match and action model, the
// wire round trips a flow mod sent in OpenFlow 1.4 goes through, the text parsers for the same
// objects, one all-or-nothing bundle of group, meter and flow mods, and the dumps ovs-ofctl
// prints. Knows nothing of its callers.
import { P, type Ofpact, formatActions, loadSegments, parseNat } from './openflow/actions.js';
import { Bridge, OfError, type Rule } from './switch/bridge.js';
import { switchView } from './tools/cli.js';
import { FieldError, type MfField, fieldByName, fieldBySubfieldName, readField } from './base/fields.js';
import { FLOW_WORDS, W } from './base/flow.js';
import { type FlowMod, parseFlowMod } from './openflow/flowmod.js';
import { type Group, type GroupMod, formatGroup, parseGroupMod } from './switch/groups.js';
import { Match, setField } from './openflow/match.js';
import { nxRoundTrip } from './openflow/nx-match.js';
import type { Subfield } from './base/subfield.js';
import { OFPP, keyValues } from './base/text.js';
import { type OfVersion, wire } from './openflow/wire.js';
import { Fabric, type SimHost } from './fabric/fabric.js';
import { traceCommand } from './translate/trace.js';
import { OFPMF, meterOf, restoreMeter } from './switch/meters.js';

export { Bridge, OfError, Match, OFPP, W, FLOW_WORDS };
export { fieldByName, fieldBySubfieldName, readField, setField, nxRoundTrip, wire, loadSegments, parseNat, formatActions };
export type { Rule, MfField, Ofpact, Subfield, FlowMod, Group, GroupMod, OfVersion };
/** Hosts on a simulated underlay, and `ofproto/trace` over a host's bridges. */
export { Fabric, traceCommand };
export type { SimHost };

/** The protocol the bundle path speaks: OpenFlow 1.4 with OXM, as `ovs-ofctl -O OpenFlow14 --bundle`. */
export const BUNDLE_VERSION: OfVersion = 14;

/**
 * match_set_default_packet_type: what a protocol keyword or any field with prerequisites implies
 * (Ethernet, exactly), as parse_ofp_str sets it (flowmod.ts).
 */
export function setDefaultPacketType(m: Match): void {
  m.flow[W.packet_type] = 0;
  m.wc[W.packet_type] = 0xffffffff;
}

// -- text, as `ovs-ofctl -O OpenFlow14 --bundle add-flows` and `add-groups` parse it --

/**
 * One `add-flows --bundle` line (`add …`, `modify_strict …`, `delete_strict …`) parsed against
 * the bridge's ports and TLV map, as the switch decodes it from OpenFlow 1.4 (what
 * bundleFlowText does per line). Throws an Error naming the line when it does not parse.
 */
export function flowModFromText(b: Bridge, line: string): FlowMod {
  try {
    return switchView(parseFlowMod(line, null, { ports: b.portMap(), tun: b.tun }), BUNDLE_VERSION, P.OF14_OXM);
  } catch (e) {
    if (e instanceof FieldError) throw new Error(`${line}: ${e.message}`);
    throw e;
  }
}

/** One group (`group_id=…,type=…,bucket=…`) as `ovs-ofctl -O OpenFlow14 add-group` / `mod-group` / `del-groups` sends it. */
export function groupModFromText(b: Bridge, text: string, command: 'add' | 'modify' | 'delete'): GroupMod {
  let gm: GroupMod;
  try {
    gm = parseGroupMod(text, command, { ports: b.portMap(), tun: b.tun });
  } catch (e) {
    if (e instanceof FieldError) throw new Error(`${text}: ${e.message}`);
    throw e;
  }
  // The buckets' actions as the switch decodes them.
  return { ...gm, buckets: gm.buckets.map((bk) => ({ ...bk, actions: wire(bk.actions, BUNDLE_VERSION) })) };
}

// -- meters --

/** A meter with one drop band (what the bridge keeps of one). */
export interface MeterConfig {
  id: number;
  unit: 'kbps' | 'pktps';
  rate: number;
  burst: number;
}

export interface MeterMod extends MeterConfig {
  command: 'add' | 'modify' | 'delete';
}

/** The largest meter id (OFPM13_MAX). */
const METER_MAX = 0xffff0000;

/** Meter bands by bridge: the bridge itself keeps only which meter ids exist. */
const meterBands = new WeakMap<Bridge, Map<number, MeterConfig>>();

function bandsOf(b: Bridge): Map<number, MeterConfig> {
  let m = meterBands.get(b);
  if (!m) meterBands.set(b, (m = new Map<number, MeterConfig>()));
  return m;
}

/** The bridge's meters, by id (a meter added some other way shows with no band: rate 0). */
export function meters(b: Bridge): MeterConfig[] {
  const bands = bandsOf(b);
  return [...b.meters].sort((x, y) => x - y).map((id) => bands.get(id) ?? { id, unit: 'kbps', rate: 0, burst: 0 });
}

/**
 * `ovs-ofctl add-meter` syntax, one drop band: `meter=ID,kbps|pktps[,burst][,stats],band=type=drop,rate=R[,burst_size=B]`.
 */
export function meterModFromText(text: string, command: MeterMod['command']): MeterMod {
  const mm: MeterMod = { command, id: -1, unit: 'kbps', rate: 0, burst: 0 };
  let units = 0;
  for (const [k, v] of keyValues(text)) {
    if (k === 'meter') mm.id = /^\d+$/.test(v) ? Number(v) : v === 'all' ? 0xffffffff : NaN;
    else if (k === 'kbps' || k === 'pktps') {
      mm.unit = k;
      units += 1;
    } else if (k === 'burst' || k === 'stats') { /* flags: burst is implied by a burst size */ }
    else if (k === 'band' || k === 'bands') {
      if (v !== 'type=drop') throw new Error(`${text}: only drop bands are supported`);
    } else if (k === 'type') {
      if (v !== 'drop') throw new Error(`${text}: only drop bands are supported`);
    } else if (k === 'rate') mm.rate = Number(v);
    else if (k === 'burst_size') mm.burst = Number(v);
    else throw new Error(`${text}: unknown keyword ${k}`);
  }
  if (!Number.isInteger(mm.id) || mm.id < 0) throw new Error(`${text}: must specify a meter id`);
  if (units > 1) throw new Error(`${text}: only one of kbps and pktps`);
  if (!Number.isInteger(mm.rate) || !Number.isInteger(mm.burst)) throw new Error(`${text}: bad rate or burst_size`);
  return mm;
}

// -- one bundle --

/** What one commit sends, in the order the switch applies it. */
export interface SwitchBundle {
  /** Group and meter adds and modifies (before the flows that use them). */
  meters: MeterMod[];
  groups: GroupMod[];
  /**
   * Flow mods, in order. Taken one at a time as the bridge applies them, so a producer may make
   * each on demand (a million flow mods never need to exist at once).
   */
  flows: Iterable<FlowMod>;
  /** Group and meter deletes (after the flows that used them are gone). */
  groupDeletes: number[];
  meterDeletes: number[];
}

function actionsUse(list: Ofpact[], type: 'group' | 'meter', id: number): boolean {
  return list.some((a) => (type === 'group' ? a.type === 'group' && a.groupId === id : a.type === 'meter' && a.meterId === id)
    || ((a.type === 'clone' || a.type === 'write_actions') && actionsUse(a.actions, type, id)));
}

function meterMod(b: Bridge, mm: MeterMod): void {
  if (mm.id === 0 || mm.id > METER_MAX) throw new OfError('OFPMMFC_INVALID_METER');
  const exists = b.meters.has(mm.id);
  if (mm.command === 'add' && exists) throw new OfError('OFPMMFC_METER_EXISTS');
  if (mm.command === 'modify' && !exists) throw new OfError('OFPMMFC_UNKNOWN_METER');
  if (mm.rate <= 0) throw new OfError('OFPMMFC_BAD_RATE');
  b.meters.add(mm.id);
  bandsOf(b).set(mm.id, { id: mm.id, unit: mm.unit, rate: mm.rate, burst: mm.burst });
  // The same meter as `ovs-ofctl dump-meters` shows it.
  const old = meterOf(b, mm.id);
  restoreMeter(b, mm.id, {
    id: mm.id, flags: (mm.unit === 'kbps' ? OFPMF.KBPS : OFPMF.PKTPS) | (mm.burst ? OFPMF.BURST : 0),
    bands: [{ type: 'drop', rate: mm.rate, burst: mm.burst, prec: 0 }], created: old?.created ?? b.clock.now(),
  });
}

/**
 * Apply a bundle all or nothing: meter and group adds and modifies, the flow mods (one bridge
 * bundle), then group and meter deletes (each taking the flows that still use it, as OVS does).
 * Throws the switch's OfError, having changed nothing, when any part is refused.
 */
export function applyBundle(b: Bridge, x: SwitchBundle): void {
  const groupsBefore = new Map<number, Group | undefined>();
  const metersBefore = new Map<number, MeterConfig | null | undefined>();
  const configsBefore = new Map<number, ReturnType<typeof meterOf>>();
  const bands = bandsOf(b);
  try {
    for (const mm of x.meters) {
      if (!metersBefore.has(mm.id)) metersBefore.set(mm.id, b.meters.has(mm.id) ? bands.get(mm.id) ?? null : undefined);
      if (!configsBefore.has(mm.id)) {
        const m = meterOf(b, mm.id);
        configsBefore.set(mm.id, m && { ...m, bands: [...m.bands] });
      }
      meterMod(b, mm);
    }
    for (const gm of x.groups) {
      if (!groupsBefore.has(gm.id)) groupsBefore.set(gm.id, b.groups.get(gm.id));
      b.groupMod(gm);
    }
    b.bundle(x.flows);
  } catch (e) {
    for (const [id, g] of groupsBefore) {
      if (g) b.groups.set(id, g);
      else b.groups.delete(id);
    }
    for (const [id, m] of metersBefore) {
      if (m === undefined) {
        b.meters.delete(id);
        bands.delete(id);
      } else if (m === null) bands.delete(id);
      else bands.set(id, m);
    }
    for (const [id, m] of configsBefore) restoreMeter(b, id, m);
    throw e;
  }
  // Deletes cannot fail: an unknown id is no error.
  for (const id of x.groupDeletes) b.groupMod({ command: 'delete', id, type: null, buckets: [], selectionMethod: '', selectionParam: 0n, fields: [], commandBucketId: null });
  for (const id of x.meterDeletes) {
    if (!b.meters.delete(id)) continue;
    bands.delete(id);
    for (const r of b.flows()) if (actionsUse(r.actions, 'meter', id)) b.table(r.table).remove(r);
  }
}

// -- dumps, as ovs-ofctl prints them --

/** `ovs-ofctl -O OpenFlowNN --no-stats dump-flows BRIDGE`: one line per flow, in table and priority order. */
export function dumpFlows(b: Bridge, version: OfVersion = BUNDLE_VERSION): string[] {
  return b.flows().map((r) => b.formatRule(r, { version, stats: false, ports: null, sorted: true }));
}

/** `ovs-ofctl -O OpenFlowNN dump-groups BRIDGE`: the reply line, then one line per group. */
export function dumpGroups(b: Bridge, version: OfVersion = BUNDLE_VERSION): string[] {
  const head = `${version === 10 ? 'NXST_GROUP_DESC' : 'OFPST_GROUP_DESC'} reply${version === 10 ? '' : ` (OF1.${version - 10})`} (xid=0x2):`;
  return [head, ...[...b.groups.values()].sort((x, y) => x.id - y.id).map((g) => formatGroup(g, version, null, b.tun))];
}

/** A match's words are the same (values under the mask, and the mask). */
export function sameMatch(a: { flow: Uint32Array; wc: Uint32Array }, c: { flow: Uint32Array; wc: Uint32Array }): boolean {
  for (let i = 0; i < FLOW_WORDS; i++) if (a.wc[i] !== c.wc[i] || ((a.flow[i]! & a.wc[i]!) >>> 0) !== ((c.flow[i]! & c.wc[i]!) >>> 0)) return false;
  return true;
}
