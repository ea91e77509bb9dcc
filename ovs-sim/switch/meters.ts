// OpenFlow 1.3 meters as ofproto keeps them (in an hmap by hash_int(id), which is the order
// dump-meters and meter-stats print), what the dummy datapath supports (drop bands, at most 8
// per meter), `ovs-ofctl add-meter` text (parse_ofp_meter_mod_str) and how ovs-ofctl prints
// meter configs, stats and mods. The bridge's own `meters` set is which ids exist (what flow
// mods check); this module keeps their configuration beside it.
import type { Ofpact } from '../openflow/actions.js';
import type { Bridge } from './bridge.js';
import { OfError } from './bridge.js';
import { FieldError } from '../base/fields.js';
import { hashInt } from '../base/hash.js';
import { Hmap } from '../base/hmap.js';

export const OFPMF = { KBPS: 1, PKTPS: 2, BURST: 4, STATS: 8 } as const;
export const OFPM = { MAX: 0xffff0000, SLOWPATH: 0xfffffffd, CONTROLLER: 0xfffffffe, ALL: 0xffffffff } as const;

export interface MeterBand {
  type: 'drop' | 'dscp_remark';
  rate: number;
  burst: number;
  prec: number;
}

export interface Meter {
  id: number;
  flags: number;
  bands: MeterBand[];
  /** Datapath clock, milliseconds. */
  created: number;
  /** The datapath's meter id (ofproto-dpif's provider_meter_id): the lowest free id of the datapath, from 0. */
  dpId?: number;
}

/**
 * The datapath's meters (dpif-netdev): ids shared by every bridge on the datapath, and each
 * meter's token buckets. A packet that finds a drop band's bucket empty is dropped there.
 */
interface DpMeter {
  meter: Meter;
  /** Per band: tokens (packets × 1000 or bits), and when last filled (ms). */
  buckets: { tokens: number; at: number }[];
  packets: number;
  bytes: number;
  /** Per band: packets and bytes it dropped. */
  dropped: { packets: number; bytes: number }[];
}
const dpMeters = new WeakMap<object, Map<number, DpMeter>>();

function dpTable(b: Bridge): Map<number, DpMeter> {
  let t = dpMeters.get(b.datapath);
  if (!t) dpMeters.set(b.datapath, (t = new Map<number, DpMeter>()));
  return t;
}

function dpAttach(b: Bridge, m: Meter): void {
  const t = dpTable(b);
  if (m.dpId === undefined || t.get(m.dpId)?.meter !== m) {
    let id = m.dpId ?? 0;
    if (m.dpId === undefined || t.has(m.dpId)) for (id = 0; t.has(id); id++);
    m.dpId = id;
  }
  // Buckets start full (burst_size; the rate when there is no burst).
  const had = t.get(m.dpId);
  t.set(m.dpId, {
    meter: m, buckets: m.bands.map((x) => ({ tokens: capacity(m, x), at: b.clock.now() })),
    packets: had?.packets ?? 0, bytes: had?.bytes ?? 0, dropped: m.bands.map((_, i) => had?.dropped[i] ?? { packets: 0, bytes: 0 }),
  });
}

const capacity = (m: Meter, x: MeterBand): number => ((m.flags & OFPMF.BURST) && x.burst ? x.burst : x.rate) * 1000;

function dpDetach(b: Bridge, m: Meter): void {
  if (m.dpId !== undefined && dpTable(b).get(m.dpId)?.meter === m) dpTable(b).delete(m.dpId);
}

/** The datapath meter id a flow's meter instruction translates to (meter(N)), if the meter exists. */
export function meterDatapathId(b: Bridge, id: number): number | undefined {
  return meterOf(b, id)?.dpId;
}

/**
 * Whether the datapath's meter lets a packet of `bytes` through now (dpif-netdev's drop bands:
 * packets or kilobits per second, refilled by elapsed time, capped at the burst).
 */
export function meterAdmits(b: Bridge, dpId: number, bytes: number): boolean {
  const e = dpTable(b).get(dpId);
  if (!e) return true;
  const now = b.clock.now();
  e.packets += 1;
  e.bytes += bytes;
  let drop = -1;
  e.meter.bands.forEach((x, i) => {
    const k = e.buckets[i] ?? (e.buckets[i] = { tokens: capacity(e.meter, x), at: now });
    k.tokens = Math.min(capacity(e.meter, x), k.tokens + Math.max(0, now - k.at) * x.rate);
    k.at = now;
    const cost = e.meter.flags & OFPMF.PKTPS ? 1000 : bytes * 8;
    if (x.type === 'drop' && k.tokens < cost) drop = drop < 0 || x.rate > e.meter.bands[drop]!.rate ? i : drop;
    else k.tokens -= cost;
  });
  if (drop < 0) return true;
  const d = e.dropped[drop] ?? (e.dropped[drop] = { packets: 0, bytes: 0 });
  d.packets += 1;
  d.bytes += bytes;
  return false;
}

export interface MeterMod {
  command: 'add' | 'modify' | 'delete';
  id: number;
  flags: number;
  bands: MeterBand[];
}

interface MeterTable {
  byId: Map<number, Meter>;
  order: Hmap<Meter>;
}

const tables = new WeakMap<Bridge, MeterTable>();

function tableOf(b: Bridge): MeterTable {
  let t = tables.get(b);
  if (!t) tables.set(b, (t = { byId: new Map(), order: new Hmap<Meter>() }));
  return t;
}

/** The bridge's meters in the order OVS walks them (HMAP_FOR_EACH). */
export function meterList(b: Bridge): Meter[] {
  const t = tableOf(b);
  // A meter the bridge holds without a configuration here (set directly) shows with no band.
  for (const id of b.meters) if (!t.byId.has(id)) put(b, { id, flags: OFPMF.KBPS, bands: [], created: b.clock.now() });
  for (const m of [...t.byId.values()]) if (!b.meters.has(m.id)) remove(b, m.id);
  return t.order.items();
}

export function meterOf(b: Bridge, id: number): Meter | undefined {
  meterList(b);
  return tableOf(b).byId.get(id);
}

function put(b: Bridge, m: Meter): void {
  const t = tableOf(b);
  const old = t.byId.get(m.id);
  if (old) t.order.remove(old);
  t.byId.set(m.id, m);
  t.order.insert(m, hashInt(m.id, 0));
  b.meters.add(m.id);
  dpAttach(b, m);
}

function remove(b: Bridge, id: number): void {
  const t = tableOf(b);
  const m = t.byId.get(id);
  if (m) {
    t.byId.delete(id);
    t.order.remove(m);
    dpDetach(b, m);
  }
  b.meters.delete(id);
}

/** Put a meter back as it was (undoing part of a refused bundle), or remove it (`undefined`). */
export function restoreMeter(b: Bridge, id: number, m: Meter | undefined): void {
  if (m) put(b, m);
  else remove(b, id);
}

/** handle_meter_mod over the dummy datapath; throws the OpenFlow error the switch answers. */
export function applyMeterMod(b: Bridge, mm: MeterMod): void {
  if (mm.command === 'delete') {
    if (mm.id === 0) return;
    const ids = mm.id === OFPM.ALL ? [...b.meters] : [mm.id];
    for (const id of ids) {
      if (!b.meters.has(id)) continue;
      remove(b, id);
      // The flows that use the meter go with it.
      for (const r of b.flows()) if (usesMeter(r.actions, id)) b.table(r.table).remove(r);
    }
    return;
  }
  if (mm.id === 0 || (mm.id > OFPM.MAX && mm.id !== OFPM.SLOWPATH && mm.id !== OFPM.CONTROLLER)) throw new OfError('OFPMMFC_INVALID_METER');
  if (mm.bands.length > 8) throw new OfError('OFPMMFC_OUT_OF_BANDS');
  const old = meterOf(b, mm.id);
  if (mm.command === 'add' && old) throw new OfError('OFPMMFC_METER_EXISTS');
  if (mm.command === 'modify' && !old) throw new OfError('OFPMMFC_UNKNOWN_METER');
  if ((mm.flags & OFPMF.KBPS) && (mm.flags & OFPMF.PKTPS)) throw new OfError('OFPMMFC_BAD_FLAGS');
  if (mm.bands.some((x) => x.type !== 'drop')) throw new OfError('OFPMMFC_BAD_BAND');
  const m: Meter = { id: mm.id, flags: mm.flags, bands: mm.bands, created: old?.created ?? b.clock.now() };
  if (old) {
    // meter_update: the configuration changes in place (the hmap position stays).
    old.flags = m.flags;
    old.bands = m.bands;
    dpAttach(b, old);
  } else put(b, m);
}

function usesMeter(list: Ofpact[], id: number): boolean {
  return list.some((a) => (a.type === 'meter' && a.meterId === id) || ((a.type === 'write_actions' || a.type === 'clone' || a.type === 'ct') && usesMeter(a.actions, id)));
}

/** The flows whose actions use a meter (a meter's flow_count). */
function meterFlowCount(b: Bridge, id: number): number {
  return b.flows().filter((r) => usesMeter(r.actions, id)).length;
}

/** str_to_u32: a number modulo 2^32 (strtoull, then truncated), or ovs-ofctl's error. */
function u32(s: string): number {
  if (!/^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)$/.test(s)) throw new FieldError(`invalid numeric format ${s}`);
  return Number(BigInt(s) & 0xffffffffn);
}

/**
 * parse_ofp_meter_mod_str: `meter=ID,kbps|pktps[,burst][,stats],band=type=drop,rate=R[,burst_size=B]…`
 * for add/modify; `meter=ID` alone for delete and the requests (`command` null).
 */
export function parseMeterMod(text: string, command: MeterMod['command'] | null): MeterMod {
  const mm: MeterMod = { command: command ?? 'delete', id: 0, flags: 0, bands: [] };
  const withBands = command === 'add' || command === 'modify';
  let head = text;
  let bandText = '';
  if (withBands) {
    const at = text.indexOf('band');
    if (at < 0) throw new FieldError('must specify bands');
    const eq = text.indexOf('=', at + 1);
    if (eq < 0) throw new FieldError('must specify bands');
    head = text.slice(0, at);
    bandText = text.slice(eq + 1);
  }
  const it = tokenizer(head);
  for (let name = it.name(); name !== null; name = it.name()) {
    if (withBands && name === 'kbps') mm.flags |= OFPMF.KBPS;
    else if (withBands && name === 'pktps') mm.flags |= OFPMF.PKTPS;
    else if (withBands && name === 'burst') mm.flags |= OFPMF.BURST;
    else if (withBands && name === 'stats') mm.flags |= OFPMF.STATS;
    else {
      const value = it.value();
      if (value === null) throw new FieldError(`field ${name} missing value`);
      if (name !== 'meter') throw new FieldError(`unknown keyword ${name}`);
      if (value === 'all') mm.id = OFPM.ALL;
      else if (value === 'controller') mm.id = OFPM.CONTROLLER;
      else if (value === 'slowpath') mm.id = OFPM.SLOWPATH;
      else {
        mm.id = u32(value);
        if (mm.id > OFPM.MAX || mm.id === 0) throw new FieldError('invalid value for meter');
      }
    }
  }
  if (mm.id === 0) throw new FieldError("must specify 'meter'");
  if (withBands && mm.flags === 0) throw new FieldError("meter must specify either 'kbps' or 'pktps'");
  if (!withBands) return mm;
  const bt = tokenizer(bandText);
  let band: MeterBand | null = null;
  for (let name = bt.name(); name !== null; name = bt.name()) {
    const value = bt.value();
    if (value === null) throw new FieldError(`field ${name} missing value`);
    if (name === 'type') {
      if (value !== 'drop' && value !== 'dscp_remark') throw new FieldError(`field ${name} unknown value ${value}`);
      band = { type: value, rate: 0, burst: 0, prec: 0 };
      mm.bands.push(band);
    } else if (!band) throw new FieldError("band must start with the 'type' keyword");
    else if (name === 'rate') band.rate = u32(value);
    else if (name === 'burst_size') band.burst = u32(value);
    else if (name === 'prec_level') {
      const n = u32(value);
      if (n > 255) throw new FieldError(`invalid ${name} "${value}"`);
      band.prec = n;
    } else throw new FieldError(`unknown keyword ${name}`);
  }
  if (mm.bands.length === 0) throw new FieldError('meter must have bands');
  for (const x of mm.bands) {
    if (x.type === 'dscp_remark' && !x.prec) throw new FieldError("'dscp_remark' band must have 'prec_level'");
    if (x.type !== 'dscp_remark' && x.prec) throw new FieldError("Only 'dscp_remark' band may have 'prec_level'");
    if (!x.rate) throw new FieldError("band must have 'rate'");
    if (mm.flags & OFPMF.BURST) {
      if (!x.burst) throw new FieldError("band must have 'burst_size' when 'burst' flag is set");
    } else if (x.burst) throw new FieldError("band may have 'burst_size' only when 'burst' flag is set");
  }
  return mm;
}

/** strtok_r: a name up to "=, \t\r\n", then a value up to ", \t\r\n". */
function tokenizer(s: string): { name(): string | null; value(): string | null } {
  let i = 0;
  const next = (delims: string): string | null => {
    while (i < s.length && delims.includes(s[i]!)) i++;
    if (i >= s.length) return null;
    const start = i;
    while (i < s.length && !delims.includes(s[i]!)) i++;
    const tok = s.slice(start, i);
    if (i < s.length) i++;
    return tok;
  };
  return { name: () => next('=, \t\r\n'), value: () => next(', \t\r\n') };
}

/** ofputil_format_meter_id. */
export function meterIdText(id: number, sep: string): string {
  if (id <= OFPM.MAX) return `meter${sep}${id}`;
  const name = id === OFPM.SLOWPATH ? 'slowpath' : id === OFPM.CONTROLLER ? 'controller' : id === OFPM.ALL ? 'all' : 'unknown';
  return `meter${sep}${name}`;
}

function flagsText(flags: number): string {
  let s = '';
  if (flags & OFPMF.KBPS) s += 'kbps ';
  if (flags & OFPMF.PKTPS) s += 'pktps ';
  if (flags & OFPMF.BURST) s += 'burst ';
  if (flags & OFPMF.STATS) s += 'stats ';
  return s;
}

/** ofputil_format_meter_config, without its final newline. */
export function meterConfigText(m: { id: number; flags: number; bands: MeterBand[] }): string {
  let s = `${meterIdText(m.id, '=')} ${flagsText(m.flags)}bands=`;
  for (const x of m.bands) {
    s += `\ntype=${x.type} rate=${x.rate}`;
    if (m.flags & OFPMF.BURST) s += ` burst_size=${x.burst}`;
    if (x.type === 'dscp_remark') s += ` prec_level=${x.prec}`;
  }
  return s;
}

/** ofputil_format_meter_stats, without its final newline: what went through the datapath meter. */
export function meterStatsText(b: Bridge, m: Meter): string {
  const ms = Math.max(0, b.clock.now() - m.created);
  const e = m.dpId === undefined ? undefined : dpTable(b).get(m.dpId);
  let s = `${meterIdText(m.id, ':')} flow_count:${meterFlowCount(b, m.id)} packet_in_count:${e?.packets ?? 0} byte_in_count:${e?.bytes ?? 0} duration:${(ms / 1000).toFixed(3)}s bands:`;
  m.bands.forEach((_, i) => {
    s += `\n${i}: packet_count:${e?.dropped[i]?.packets ?? 0} byte_count:${e?.dropped[i]?.bytes ?? 0}`;
  });
  return s;
}

/** What the dummy datapath's meters can do (dpif-netdev's meter features). */
export const METER_FEATURES = ['max_meter:262144 max_bands:8 max_color:0', 'band_types: drop', 'capabilities: kbps pktps burst stats'];
