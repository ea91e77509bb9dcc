// The embedded simulator as a backend: a simulated host's br-int (ovs-sim) and the external
// bridges the dataplane names get the same bundles, and br-int the same bindings, packet-ins and
// packet-outs, a real Open vSwitch would. A commit goes in as one all-or-nothing bundle of meter,
// group and flow mods per bridge touched, compiled from the structured flows (below: the compiler) or,
// on the text path, rendered and parsed against that bridge as `ovs-ofctl --bundle` would.
import { FIELDS, FIELD_RANK, type FieldName, ipv4Number } from '../fields.js';
import { type FlowBackend, type FlowChanges, type PacketIn, type PacketIo, type SwitchContents, SwitchRefusedError, type TransientChanges, traceArguments } from '../backend.js';
import { type Action, type Bucket, type Flow, type Group, type Match, type MatchField, type Meter, type RegField, type Slice, flowKey, isShared } from '../flow.js';
import { formatFlow, formatGroup, formatMatch, formatMeter } from '../flow-text.js';
import { BRIDGE, REGISTERS, TUNNEL_PORTS } from '../pipeline.js';
import type { PortBindings } from '../bindings.js';
import type { PatchEnd } from '../external.js';
import { appliedNote, bridgeList, onBridge, onBridgeObject, splitByBridge } from './bridges.js';
// The one place production code reaches the simulator, through its public API.
import {
  type Bridge, type FlowMod, type Group as SimGroup, type GroupMod, type MeterMod, type MfField, type Ofpact, type Rule, type Subfield, type SwitchBundle,
  FLOW_WORDS, Match as SimMatch, OFPP, W, fieldByName, fieldBySubfieldName, flowModFromText, formatActions, groupModFromText, loadSegments,
  meterModFromText, meters as bridgeMeters, nxRoundTrip, parseNat, readField, sameMatch, setDefaultPacketType, setField,
  Fabric, OfError, type SimHost, applyBundle, traceCommand,
} from '../../ovs-sim/index.js';

export interface SimBackendOptions {
  /**
   * How flows reach the simulator: `compiled` (default) hands it flow mods built from the
   * structured flows, compiled once per flow shape; `text` renders each flow as ovs-ofctl text
   * and has the simulator parse it (what scripts and the CLI do; the reference the compiled path
   * is tested against).
   */
  path?: 'compiled' | 'text';
}

/** A bridge's bundle refused: nothing of it applied; the bundles of `applied` (earlier bridges of the commit) were. */
export class SimRefusedError extends SwitchRefusedError {
  constructor(message: string, reason: string, readonly bridge: string, override readonly applied: readonly string[]) {
    super(message, reason);
  }
}

export class SimBackend implements FlowBackend {
  readonly name = 'sim';
  readonly path: 'compiled' | 'text';
  /** Flow shapes compiled so far (shared by commits and read-backs). */
  readonly compiler = new SimFlowCompiler();
  private readonly listeners: ((p: PacketIn) => void)[] = [];
  /** The bridges started: br-int first, then the external ones. */
  private started: string[] = [BRIDGE];
  private listening = false;

  /**
   * autoPlug: a standalone simulated host has nobody to plug VM taps, so every port gets its
   * interface (`tap` + id[:11], iface-id = port id) the first time it is looked up.
   */
  constructor(readonly host: SimHost, private readonly autoPlug = false, opts: SimBackendOptions = {}) {
    this.path = opts.path ?? 'compiled';
  }

  private get bridge() {
    return this.host.bridge(BRIDGE);
  }

  /** iface-id and name → OpenFlow port, rebuilt when the bridge's ports change. */
  private index: { version: number; byIfaceId: Map<string, number>; byName: Map<string, number> } | null = null;

  private ports(): { byIfaceId: Map<string, number>; byName: Map<string, number> } {
    const b = this.bridge;
    if (this.index?.version !== b.portsVersion) {
      const byIfaceId = new Map<string, number>();
      const byName = new Map<string, number>();
      for (const p of b.ports.values()) {
        const id = p.externalIds.get('iface-id');
        if (id !== undefined) byIfaceId.set(id, p.ofport);
        byName.set(p.name, p.ofport);
      }
      this.index = { version: b.portsVersion, byIfaceId, byName };
    }
    return this.index;
  }

  readonly bindings: PortBindings = {
    ofport: (portId) => {
      const { byIfaceId, byName } = this.ports();
      const tap = `tap${portId.slice(0, 11)}`;
      const found = byIfaceId.get(portId) ?? byName.get(tap);
      if (found !== undefined || !this.autoPlug) return found;
      const port = this.bridge.addPort(tap, 'system', { externalIds: { 'iface-id': portId } });
      // Keep the index current rather than rebuilding it for every port plugged.
      byIfaceId.set(portId, port.ofport);
      byName.set(tap, port.ofport);
      this.index!.version = this.bridge.portsVersion;
      return port.ofport;
    },
  };

  readonly packets: PacketIo = {
    onPacketIn: (l) => { this.listeners.push(l); },
    // As the OpenFlow backend sends it: in_port CONTROLLER, output to the port, whole frame.
    packetOut: (port, frame, bridge = BRIDGE) => this.host.packetOut(bridge, [{ type: 'output', port: port >= 0xffffff00 ? port - 0xffff0000 : port, maxLen: 0xffff }], frame),
    // OFPP_TABLE (0xfff9 in the simulator's 16-bit port space): the pipeline from table 0, in_port as given.
    packetOutToTable: (inPort, frame) => this.host.packetOut(BRIDGE, [{ type: 'output', port: 0xfff9, maxLen: 0xffff }], frame, inPort),
  };

  /** The bridges commits and read-backs cover: br-int, then the external ones started. */
  get bridges(): readonly string[] {
    return this.started;
  }

  /**
   * Creates what is missing on the simulated host: br-int with its tunnel ports, and each
   * external bridge plain (fail-mode secure, its internal port, no tunnel ports).
   */
  start(bridges?: readonly string[], patches: readonly PatchEnd[] = []): Promise<void> {
    let names: string[];
    try {
      names = bridgeList(bridges);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    for (const name of names) if (!this.host.bridges.has(name)) this.host.addBridge(name);
    for (const p of patches) {
      const b = this.host.bridge(p.bridge);
      const have = b.portByName(p.name);
      if (have && have.ofport === p.ofport) continue;
      if (have) b.removePort(p.name);
      b.addPort(p.name, 'patch', { ofportRequest: p.ofport, options: { peer: p.peer } });
    }
    for (const t of Object.values(TUNNEL_PORTS)) {
      if (!this.bridge.portByName(t.name)) this.bridge.addPort(t.name, t.type, { ofportRequest: t.ofport, options: { remote_ip: 'flow', key: 'flow' } });
    }
    this.started = names;
    if (!this.listening) {
      this.listening = true;
      this.host.onPacketIn((e) => {
        const p: PacketIn = { inPort: e.inPort, metadata: e.metadata, cookie: e.cookie, data: Buffer.from(e.frame), ...(e.bridge === BRIDGE ? {} : { bridge: e.bridge }) };
        for (const l of this.listeners) l(p);
      });
    }
    return Promise.resolve();
  }

  /**
   * One bundle per bridge touched, each: meter and group adds and modifies, flow removes,
   * modifies and adds, then group and meter removes. External bridges go first, br-int last.
   * A refusal rejects with a SimRefusedError (a SwitchRefusedError) carrying the switch's
   * OpenFlow error as the reason, the bridge named when it is not br-int; nothing of that
   * bridge's bundle is applied, but the bundles of the bridges before it in the commit are and
   * stay applied (a switch has no bundle across bridges; the error lists them in `applied`).
   * A commit naming a bridge not started, or a flow that cannot be sent at all (text that does
   * not parse, a meter instruction after actions), rejects with a plain Error.
   */
  commit(changes: FlowChanges): Promise<void> {
    const applied: string[] = [];
    let name = BRIDGE;
    try {
      for (const [bridge, part] of splitByBridge(changes, this.started)) {
        name = bridge;
        const b = this.host.bridge(bridge);
        applyBundle(b, this.path === 'text' ? textBundle(b, part) : this.compiler.bundle(part));
        applied.push(bridge);
      }
      return Promise.resolve();
    } catch (e) {
      if (e instanceof OfError) {
        const reason = `${e.code}${onBridge(name)}`;
        return Promise.reject(new SimRefusedError(`the switch refused the bundle${onBridge(name)}: ${e.code}${appliedNote(applied)}`, reason, name, applied));
      }
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** Packet counts of br-int's flows of one table and cookie, by flow key. */
  flowPackets(table: number, cookie: bigint): Promise<Map<string, bigint>> {
    const out = new Map<string, bigint>();
    // The one table, unsorted: every flow of the bridge, sorted, was a million copies and a sort
    // per on-demand entry asked about on a big host.
    for (const r of this.bridge.table(table).rules()) {
      if (r.cookie !== cookie) continue;
      const f = decodeRule(r, this.compiler);
      if (f) out.set(flowKey(f), BigInt(r.nPackets));
    }
    return Promise.resolve(out);
  }

  /** Transient flows: one bundle on br-int (purges, removes, then adds with their idle timeouts). */
  transient(c: TransientChanges): Promise<void> {
    try {
      const b = this.bridge;
      const mods = [
        ...c.purge.map((p) => ({ ...this.compiler.flowMod({ table: p.table, priority: 0, match: [], actions: [], cookie: 0n }, 'delete_strict'), command: 'delete' as const, cookie: p.cookie, cookieMask: 0xffff_ffff_ffff_ffffn })),
        ...c.remove.map((f) => this.compiler.flowMod(f, 'delete_strict')),
        ...c.add.map((f) => this.compiler.flowMod(f, 'add')),
      ];
      applyBundle(b, { meters: [], groups: [], flows: mods, groupDeletes: [], meterDeletes: [] });
      return Promise.resolve();
    } catch (e) {
      if (e instanceof OfError) return Promise.reject(new SimRefusedError(`the switch refused transient flows: ${e.code}`, e.code, BRIDGE, []));
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /**
   * Every started bridge's flows, groups and meters in the model (`bridge` set off br-int). A
   * rule the model cannot state exactly (a field or action the agent never uses) is left out.
   */
  readBack(): Promise<SwitchContents> {
    let flows: Flow[] = [];
    let groups: Group[] = [];
    let meters: Meter[] = [];
    for (const name of this.started) {
      const b = this.host.bridges.get(name);
      if (!b) continue;
      const held = readSwitch(b, this.compiler);
      if (name === BRIDGE && flows.length === 0) {
        // br-int first: its (maybe millions of) flows are taken as they are.
        ({ flows, groups, meters } = held);
        continue;
      }
      for (const f of held.flows) flows.push(onBridgeObject(f, name));
      for (const g of held.groups) groups.push(onBridgeObject(g, name));
      for (const m of held.meters) meters.push(onBridgeObject(m, name));
    }
    return Promise.resolve({ flows, groups, meters });
  }

  onBindingsChanged(listener: (keys: string[]) => void): void {
    this.host.onPortsChanged(listener);
  }

  flushConntrack(zone: number, filter: { src?: string; dst?: string }): Promise<void> {
    this.host.datapath.conntrack.flushZone(zone, { ...(filter.src ? { src: ipv4Number(filter.src) } : {}), ...(filter.dst ? { dst: ipv4Number(filter.dst) } : {}) });
    return Promise.resolve();
  }

  /** ofproto/trace as the OVS backend runs it: a packet is `in_port=N,HEX` or `in_port=N HEX`. */
  trace(spec: string): Promise<string> {
    try {
      return Promise.resolve(traceCommand([BRIDGE, ...traceArguments(spec)], this.host.bridges, { underlay: this.host.underlayRoute }));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** One simulated hypervisor at `hostIp`, alone on its underlay, VM taps plugged as ports appear: `aca agent --dataplane sim`. */
export function standaloneSimBackend(hostIp: string): SimBackend {
  return new SimBackend(new Fabric().addHost('local', hostIp), true);
}

// ==== The compiler ======================================================================
// Structured flows into ovs-sim flow mods without text: the trusted batch path of the sim backend.
//
// What the switch gets must be exactly what `ovs-ofctl -O OpenFlow14 --bundle add-flows` of the
// rendered text gives (flowModFromText: parse_ofp_str, then the OXM round trip of the match and
// the OpenFlow 1.4 round trip of the actions). So the same ovs-sim primitives run, but once per
// shape instead of once per flow:
//
// - A match shape is the fields with their masks, plus the values the round trip depends on
//   (dl_type and nw_proto decide which fields survive nx_put_raw; tp_src/tp_dst too for ICMPv6,
//   where neighbor discovery is decided). Per shape the match is built with ovs-sim's own
//   setField and nxRoundTrip over zero values, giving the switch's mask words and, per field, the
//   words and bits its value lands in; per flow only those words are filled.
// - An action shape is its type and non-value parts (the field of a set_field, the slice of a
//   load, a whole move, a resubmit's table, a ct's arguments): per shape the Ofpact skeleton as the
//   parser builds it and the wire decodes it (a load split per contiguous run of its mask, a
//   controller with userdata coming back as NXAST_CONTROLLER2); per flow only values go in.
//   Ofpacts with no value and nothing the switch's checks write into are shared between flows.
//
// The reverse (readBack) decodes the bridge's rules, groups and meters into the model for the
// fields and actions the model has; a rule it cannot express exactly is left out.

/** A flow the compiler cannot turn into a flow mod (what ovs-ofctl would refuse to send). */
export class FlowCompileError extends Error {}

const ALL64 = 0xffffffffffffffffn;
const NO_GROUP = 0xffffffff;
const USABLE = { p: 0x80 }; // OpenFlow 1.4 with OXM: the protocol the bundle goes in
const ETH_IPV6 = 0x86dd;
const PROTO_ICMPV6 = 58;

export type SimCommand = 'add' | 'modify_strict' | 'delete_strict';

// ---- fields: the model's names onto ovs-sim's meta-flow fields ----

/** The ovs-sim field each model field parses to (`dl_src` is eth_src, `tp_src` tcp_src, …). */
const MF = new Map<FieldName, MfField>();
/** And back. */
const MODEL = new Map<MfField, FieldName>();
for (const name of Object.keys(FIELDS) as FieldName[]) {
  const mf = fieldByName(name);
  if (!mf) throw new Error(`ovs-sim has no field ${name}`);
  MF.set(name, mf);
  MODEL.set(mf, name);
}
const mfOf = (name: FieldName): MfField => MF.get(name)!;

/** ovs-sim's 16-bit port for an OpenFlow port number, as parse_port reads a number. */
const port16 = (p: number): number => (p >= 0xffffff00 ? p - 0xffff0000 : p);

/**
 * A slice as `NXM_…[a..b]` text names it: the model writes `[]` for a whole field, which is the
 * whole ovs-sim field (in_port is 16 bits there, 32 in the model).
 */
function subfieldOf(s: { field: FieldName; ofs: number; nbits: number }): Subfield {
  const model = FIELDS[s.field];
  const field = fieldBySubfieldName(model.nxm);
  if (!field) throw new FlowCompileError(`ovs-sim has no field ${model.nxm}`);
  if (s.ofs === 0 && s.nbits === model.bits) return { field, ofs: 0, nBits: field.nBits };
  if (s.ofs + s.nbits > field.nBits) throw new FlowCompileError(`${model.nxm}[${s.ofs}..${s.ofs + s.nbits - 1}] is wider than the field (${field.nBits} bits)`);
  return { field, ofs: s.ofs, nBits: s.nbits };
}

const sliceKey = (s: { field: string; ofs: number; nbits: number }): string => `${s.field}/${s.ofs}/${s.nbits}`;

// ---- match templates ----

/** Where one field's value goes: words of the flow and, per word, the bits that carry it. */
interface Fill {
  /** Index of the field in the match. */
  i: number;
  word: number;
  nWords: number;
  shift: number;
  masks: number[];
}

interface MatchTemplate {
  /** The switch's mask words (shared by every flow of the shape; nothing writes them). */
  wc: Uint32Array;
  /** Value words that do not depend on the flow (dl_type, nw_proto, packet_type). */
  flow: Uint32Array;
  fills: Fill[];
  /** Fields sharing flow words: filled through setField per flow instead. */
  direct: boolean;
}

/** Match values the round trip depends on: part of the shape, not filled per flow. */
function shapeValued(match: Match, i: number): boolean {
  const f = match[i]!.field;
  if (f === 'dl_type' || f === 'nw_proto') return true;
  if (f !== 'tp_src' && f !== 'tp_dst') return false;
  // ICMPv6: type 135/136 with code 0 is neighbor discovery (nd_target, nd_sll, nd_tll kept).
  let dl: bigint | undefined;
  let proto: bigint | undefined;
  for (const m of match) {
    if (m.field === 'dl_type') dl = m.value;
    else if (m.field === 'nw_proto') proto = m.value;
  }
  return dl === BigInt(ETH_IPV6) && proto === BigInt(PROTO_ICMPV6);
}

/**
 * A match's shape, found without making a key string per flow (a million flows made a million
 * strings to throw away): a number hashed from the fields, their masks and the shape-valued
 * values, then the candidates compared field by field.
 */
interface Shape {
  readonly fields: readonly FieldName[];
  readonly masks: readonly (bigint | null)[];
  /** The value of a shape-valued field (dl_type, nw_proto, ICMPv6 type and code), else null. */
  readonly values: readonly (bigint | null)[];
  readonly template: MatchTemplate;
}

/** Small numbers for the few distinct masks, for hashing. */
const maskIds = new Map<bigint, number>();

function maskId(mask: bigint): number {
  let id = maskIds.get(mask);
  if (id === undefined) {
    // Past the limit a mask hashes by its low bits (the comparison still decides).
    if (maskIds.size >= 65_536) return Number(mask & 0xfffffn);
    maskIds.set(mask, (id = maskIds.size + 1));
  }
  return id;
}

const mix = (h: number, v: number): number => Math.imul(h ^ v, 0x01000193) >>> 0;

function shapeHash(match: Match): number {
  let h = match.length;
  for (let i = 0; i < match.length; i++) {
    const m = match[i]!;
    h = mix(h, FIELD_RANK[m.field]);
    h = mix(h, m.mask === null ? 0 : maskId(m.mask));
    if (shapeValued(match, i)) h = mix(h, Number(m.value & 0xffffn) + 1);
  }
  return h;
}

function sameShape(s: Shape, match: Match): boolean {
  if (s.fields.length !== match.length) return false;
  for (let i = 0; i < match.length; i++) {
    const m = match[i]!;
    if (s.fields[i] !== m.field || s.masks[i] !== m.mask) return false;
    const v = s.values[i]!;
    if (v !== null ? !shapeValued(match, i) || v !== m.value : shapeValued(match, i)) return false;
  }
  return true;
}

/** What parse_ofp_str builds for these fields (before the round trip). */
function parsedMatch(match: Match, value: (i: number) => bigint): SimMatch {
  const m = new SimMatch();
  let eth = false;
  for (let i = 0; i < match.length; i++) {
    const f = match[i]!;
    const mf = mfOf(f.field);
    setField(m, mf, value(i), f.mask ?? mf.valueMask);
    if (mf.prereq !== 'none') eth = true;
  }
  if (eth) setDefaultPacketType(m);
  return m;
}

/** The match the switch decodes from this one sent as OXM, computed the long way. */
export function directMatch(match: Match): SimMatch {
  return nxRoundTrip(parsedMatch(match, (i) => match[i]!.value), true);
}

function wordsOf(v: bigint, n: number): number[] {
  const out = new Array<number>(n);
  for (let k = n - 1; k >= 0; k--) {
    out[k] = Number(v & 0xffffffffn);
    v >>= 32n;
  }
  return out;
}

function compileMatch(match: Match): MatchTemplate {
  const members = new Set<string>();
  let direct = false;
  for (const m of match) {
    const member = mfOf(m.field).member;
    if (members.has(member)) direct = true;
    members.add(member);
  }
  const parsed = parsedMatch(match, (i) => (shapeValued(match, i) ? match[i]!.value : 0n));
  const sent = nxRoundTrip(parsed, true);
  const fills: Fill[] = [];
  for (let i = 0; i < match.length; i++) {
    if (shapeValued(match, i)) continue;
    const mf = mfOf(match[i]!.field);
    const store = wordsOf(mf.storeMask, mf.nWords);
    const masks = store.map((s, k) => (s & parsed.wc[mf.word + k]! & sent.wc[mf.word + k]!) >>> 0);
    fills.push({ i, word: mf.word, nWords: mf.nWords, shift: mf.shift, masks });
  }
  return { wc: sent.wc, flow: sent.flow, fills, direct };
}

const SAFE = Number.MAX_SAFE_INTEGER;
const TWO32 = 0x100000000;

/** The match for one flow of the shape; its values go into `into` when given (a reused buffer). */
function fillMatch(t: MatchTemplate, match: Match, into?: Uint32Array): SimMatch {
  if (t.direct) return directMatch(match);
  let flow: Uint32Array;
  if (into) {
    into.set(t.flow);
    flow = into;
  } else flow = t.flow.slice();
  const fills = t.fills;
  for (let j = 0; j < fills.length; j++) {
    const x = fills[j]!;
    const v = match[x.i]!.value;
    const n = Number(v);
    if (x.shift === 0 && x.nWords <= 2 && n <= SAFE) {
      // Values within 2^53 (every one but 64-bit metadata and tun_id ones above that) in doubles.
      if (x.nWords === 1) flow[x.word] = (flow[x.word]! | (n & x.masks[0]!)) >>> 0;
      else {
        flow[x.word] = (flow[x.word]! | (Math.floor(n / TWO32) & x.masks[0]!)) >>> 0;
        flow[x.word + 1] = (flow[x.word + 1]! | (n & x.masks[1]!)) >>> 0;
      }
    } else {
      const w = wordsOf(v << BigInt(x.shift), x.nWords);
      for (let k = 0; k < x.nWords; k++) flow[x.word + k] = (flow[x.word + k]! | (w[k]! & x.masks[k]!)) >>> 0;
    }
  }
  return new SimMatch(flow, t.wc);
}

// ---- actions ----

/** A placeholder until fill sets a flow mod's actions (never handed out). */
const NO_OFPACTS: Ofpact[] = [];
const IN_PORT_OUTPUT: Ofpact = { type: 'output', port: OFPP.IN_PORT, maxLen: 0 };
const CT_CLEAR: Ofpact = { type: 'ct_clear' };
const DEC_TTL: Ofpact = { type: 'dec_ttl', ids: null };

/** ovs-ofctl's hex bytes (`01`, `01.02`, `0102`). */
function hexBytes(text: string): Uint8Array {
  const t = text.replace(/[.\s]/g, '');
  if (!/^[0-9a-fA-F]*$/.test(t) || t.length % 2 !== 0) throw new FlowCompileError(`controller userdata "${text}" is not hex bytes`);
  return Uint8Array.from(Buffer.from(t, 'hex'));
}

interface LoadShape {
  field: MfField;
  ofs: number;
  /** The runs NXAST_REG_LOAD carries (at most 64 bits each), as masks over the field. */
  runs: bigint[];
}

export interface CompilerStats {
  matchShapes: number;
  actionShapes: number;
  /** Match shapes filled the long way (fields sharing words); none for the pipeline's flows. */
  directShapes: number;
}

export class SimFlowCompiler {
  /** Match shapes by shapeHash (each list: the shapes sharing a hash). */
  private readonly matches = new Map<number, Shape[]>();
  private readonly loads = new Map<string, LoadShape>();
  /** Ofpacts with no per-flow value, made once: output_reg, move, resubmit, controller, ct. */
  private readonly shared = new Map<string, Ofpact>();
  private readonly resubmits = new Map<number, Ofpact>();
  private readonly controllers = new Map<string, Ofpact>();
  /**
   * The same by the model's own objects (declared registers, the actions features share between
   * flows), so most flows find their skeleton without making a key.
   */
  private readonly byAction = new WeakMap<Action, Ofpact>();
  private readonly outputRegs = new WeakMap<RegField, Ofpact>();
  private readonly loadsByRef = new WeakMap<RegField, LoadShape>();
  /**
   * Translations of the set_field and load actions, and of whole action lists, that features
   * mark as shared (flow.ts `shared`): a million neighbors on a thousand hosts need a thousand
   * tunnel set_fields in the switch too. In flows only: a flow's set_field records whether the
   * flow has a VLAN (never, for the model's fields), a bucket's does not.
   */
  private readonly sharedSets = new WeakMap<Action, Ofpact[]>();
  private readonly byList = new WeakMap<readonly Action[], Ofpact[]>();

  get stats(): CompilerStats {
    let direct = 0;
    let shapes = 0;
    for (const list of this.matches.values()) {
      shapes += list.length;
      for (const sh of list) if (sh.template.direct) direct += 1;
    }
    return { matchShapes: shapes, actionShapes: this.loads.size + this.shared.size + this.resubmits.size + this.controllers.size, directShapes: direct };
  }

  /** The match as the switch holds it after the OXM round trip (values in `into` when given). */
  match(match: Match, into?: Uint32Array): SimMatch {
    const h = shapeHash(match);
    let list = this.matches.get(h);
    let t: MatchTemplate | undefined;
    if (list) {
      for (let k = 0; k < list.length && !t; k++) if (sameShape(list[k]!, match)) t = list[k]!.template;
    }
    if (!t) {
      t = compileMatch(match);
      // The first flow of a shape checks the template against the long way.
      if (!t.direct && !sameMatch(fillMatch(t, match), directMatch(match))) t.direct = true;
      if (!list) this.matches.set(h, (list = []));
      list.push({
        fields: match.map((m) => m.field), masks: match.map((m) => m.mask),
        values: match.map((m, k) => (shapeValued(match, k) ? m.value : null)), template: t,
      });
    }
    return fillMatch(t, match, into);
  }

  /**
   * A flow mod as the switch decodes it from `add`, `modify_strict` or `delete_strict` in
   * OpenFlow 1.4. With `into`, the match's values are written there (valid until the next use).
   */
  flowMod(f: Flow, command: SimCommand, into?: Uint32Array): FlowMod {
    // Every field in one order; those that depend on the flow and the command are set by fill.
    const fm: FlowMod = {
      command, match: this.match(f.match, into), priority: 0, table: 0, cookie: 0n, cookieMask: 0n,
      newCookie: 0n, modifyCookie: false, idle: 0, hard: 0, importance: 0, flags: 0,
      outPort: OFPP.NONE, outGroup: NO_GROUP, actions: NO_OFPACTS, usable: USABLE,
    };
    return this.fill(fm, f, command);
  }

  /** Set the fields of a flow mod that depend on the flow and the command (all but the match). */
  private fill(fm: FlowMod, f: Flow, command: SimCommand): FlowMod {
    fm.command = command;
    fm.priority = f.priority;
    fm.table = f.table;
    // An add sets the cookie; OpenFlow 1.2+ modify and delete select by cookie (none here) and keep it.
    fm.newCookie = command === 'add' ? f.cookie : ALL64;
    fm.modifyCookie = command === 'add';
    fm.idle = command === 'add' ? f.idleTimeout ?? 0 : 0;
    fm.actions = command === 'delete_strict' ? [] : this.actions(f.actions, true, f);
    // Set when a modify or delete, or when refilling one (a property deleted would make the
    // object a slow dictionary); undefined reads as absent (`fm.mayAdd ?? …`).
    if (command !== 'add' || fm.mayAdd !== undefined) fm.mayAdd = command === 'add' ? undefined : false;
    return fm;
  }

  groupMod(g: Group, command: 'add' | 'modify'): GroupMod {
    const defaultWeight = g.type === 'select' ? 1 : 0;
    return {
      command, id: g.id, type: g.type, selectionMethod: '', selectionParam: 0n, fields: [], commandBucketId: null,
      buckets: g.buckets.map((b, i) => ({
        id: i, weight: b.weight ?? defaultWeight, watchPort: b.watchPort === undefined ? null : port16(b.watchPort), watchGroup: null, actions: this.actions(b.actions, false, g), packets: 0, bytes: 0,
      })),
    };
  }

  /**
   * The commit's flow mods as the bridge takes them: one object filled again for each flow (the
   * bridge is done with a flow mod before it asks for the next, and keeps none of it but its
   * actions and a copy of its values), the match's values in one buffer.
   */
  private *flowMods(c: FlowChanges): Generator<FlowMod> {
    const scratch = new Uint32Array(FLOW_WORDS);
    let fm: FlowMod | null = null;
    const next = (f: Flow, command: SimCommand): FlowMod => {
      if (fm === null) return (fm = this.flowMod(f, command, scratch));
      fm.match = this.match(f.match, scratch);
      return this.fill(fm, f, command);
    };
    for (const f of c.remove) yield next(f, 'delete_strict');
    for (const f of c.modify) yield next(f, 'modify_strict');
    for (const f of c.add) yield next(f, 'add');
  }

  meterMod(m: Meter, command: MeterMod['command']): MeterMod {
    return { command, id: m.id, unit: m.unit, rate: m.rate, burst: m.burst };
  }

  /**
   * The whole commit as one bundle, in the order FlowChanges prescribes. Flow mods are made as the
   * bridge takes them, each in the same match buffer (the bridge keeps values, not the match), so
   * a commit of any size makes no garbage beyond the rules it installs.
   */
  bundle(c: FlowChanges): SwitchBundle {
    return {
      meters: [...c.meters.add.map((m) => this.meterMod(m, 'add')), ...c.meters.modify.map((m) => this.meterMod(m, 'modify'))],
      groups: [...c.groups.add.map((g) => this.groupMod(g, 'add')), ...c.groups.modify.map((g) => this.groupMod(g, 'modify'))],
      flows: this.flowMods(c),
      groupDeletes: c.groups.remove.map((g) => g.id),
      meterDeletes: c.meters.remove.map((m) => m.id),
    };
  }

  /**
   * Actions as the parser builds them and OpenFlow 1.4 decodes them. In a flow (`inFlow`) set_field
   * carries what the parser's consistency check records (whether the flow has a VLAN: never, for
   * our fields); group buckets are not checked against a match.
   */
  actions(list: readonly Action[], inFlow: boolean, owner: Flow | Group): Ofpact[] {
    // A list many flows share (a host's tunnel output) is translated once; the switch never
    // changes a rule's actions in place.
    if (inFlow && isShared(list)) {
      let out = this.byList.get(list);
      // Frozen: the switch keeps a frozen list as it is instead of copying it per rule.
      if (!out) this.byList.set(list, (out = Object.freeze(this.translate(list, inFlow, owner).slice()) as Ofpact[]));
      return out;
    }
    return this.translate(list, inFlow, owner);
  }

  private translate(list: readonly Action[], inFlow: boolean, owner: Flow | Group): Ofpact[] {
    const out: Ofpact[] = [];
    let conj = 0;
    for (let i = 0; i < list.length; i++) {
      const a = list[i]!;
      if (inFlow && (a.type === 'set_field' || a.type === 'load') && isShared(a)) {
        // A shared set_field or load already translated (kept below when first made).
        const known = this.sharedSets.get(a);
        if (known) {
          for (const o of known) out.push(o);
          continue;
        }
      }
      switch (a.type) {
        case 'output': {
          const port = port16(a.port);
          out.push({ type: 'output', port, maxLen: port === OFPP.CONTROLLER ? 65535 : 0 });
          break;
        }
        case 'in_port':
          out.push(IN_PORT_OUTPUT);
          break;
        case 'output_reg': {
          let o = this.outputRegs.get(a.src);
          if (!o) this.outputRegs.set(a.src, (o = this.once(`or:${sliceKey(a.src)}`, () => ({ type: 'output_reg', src: subfieldOf(a.src), maxLen: 65535 }))));
          out.push(o);
          break;
        }
        case 'resubmit': {
          let o = this.resubmits.get(a.table);
          if (!o) this.resubmits.set(a.table, (o = { type: 'resubmit', inPort: OFPP.IN_PORT, table: a.table, ct: false, short: false }));
          out.push(o);
          break;
        }
        case 'set_field': {
          const mf = mfOf(a.field);
          const value = mf.fmt === 'port' ? BigInt(port16(Number(a.value))) : a.value;
          const o: Ofpact = inFlow
            ? { type: 'set_field', field: mf, value, mask: mf.valueMask, load: false, flowHasVlan: false }
            : { type: 'set_field', field: mf, value, mask: mf.valueMask, load: false };
          out.push(o);
          if (inFlow && isShared(a)) this.sharedSets.set(a, [o]);
          break;
        }
        case 'load': {
          const s = this.loadShape(a.dst);
          const v = s.ofs === 0 ? a.value : a.value << BigInt(s.ofs);
          const made: Ofpact[] = [];
          for (const mask of s.runs) {
            const value = v & mask;
            made.push(inFlow
              ? { type: 'set_field', field: s.field, value, mask, load: true, flowHasVlan: false }
              : { type: 'set_field', field: s.field, value, mask, load: true });
          }
          for (const o of made) out.push(o);
          if (inFlow && isShared(a)) this.sharedSets.set(a, made);
          break;
        }
        case 'move': {
          let o = this.byAction.get(a);
          if (!o) {
            this.byAction.set(a, (o = this.once(`m:${sliceKey(a.src)}>${sliceKey(a.dst)}`, () => {
              const src = subfieldOf(a.src);
              const dst = subfieldOf(a.dst);
              if (src.nBits !== dst.nBits) throw new FlowCompileError(`move: source field is ${src.nBits} bits wide but destination is ${dst.nBits} bits wide`);
              return { type: 'reg_move', src, dst };
            })));
          }
          out.push(o);
          break;
        }
        case 'controller': {
          let o = this.controllers.get(a.userdata);
          // Userdata comes back from the switch as NXAST_CONTROLLER2.
          if (!o) {
            this.controllers.set(a.userdata, (o = {
              type: 'controller', maxLen: 65535, reason: 'action', id: 0, userdata: hexBytes(a.userdata), pause: false, meterId: null, v2: true,
            }));
          }
          out.push(o);
          break;
        }
        case 'group':
          out.push({ type: 'group', groupId: a.id >>> 0 });
          break;
        case 'meter':
          // An instruction: before every action (ofpacts_verify).
          if (i > 0) throw new FlowCompileError(`${describe(owner)}: invalid instruction ordering: meter must appear before apply_actions, for OpenFlow 1.1+ compatibility`);
          out.push({ type: 'meter', meterId: a.id >>> 0 });
          break;
        case 'conjunction':
          conj += 1;
          out.push({ type: 'conjunction', id: a.id >>> 0, clause: a.clause - 1, nClauses: a.nClauses });
          break;
        case 'ct': {
          let o = this.byAction.get(a);
          if (!o) this.byAction.set(a, (o = this.ct(a)));
          out.push(o);
          break;
        }
        case 'ct_clear':
          out.push(CT_CLEAR);
          break;
        case 'dec_ttl':
          out.push(DEC_TTL);
          break;
      }
    }
    if (conj > 0 && conj < list.length) {
      const other = list.find((a) => a.type !== 'conjunction')!;
      throw new FlowCompileError(`${describe(owner)}: "conjunction" actions may be used along with "note" but not any other kind of action (such as the "${other.type}" action used here)`);
    }
    return out;
  }

  private once(key: string, make: () => Ofpact): Ofpact {
    let a = this.shared.get(key);
    if (!a) this.shared.set(key, (a = make()));
    return a;
  }

  private loadShape(dst: RegField): LoadShape {
    let s = this.loadsByRef.get(dst);
    if (s) return s;
    const key = sliceKey(dst);
    s = this.loads.get(key);
    if (!s) {
      const sf = subfieldOf(dst);
      const mask = ((1n << BigInt(sf.nBits)) - 1n) << BigInt(sf.ofs);
      const runs = loadSegments({ field: sf.field, value: 0n, mask }).map(([r]) => ((1n << BigInt(r.nBits)) - 1n) << BigInt(r.ofs));
      this.loads.set(key, (s = { field: sf.field, ofs: sf.ofs, runs }));
    }
    this.loadsByRef.set(dst, s);
    return s;
  }

  private ct(a: Extract<Action, { type: 'ct' }>): Ofpact {
    const zone = a.zone === null ? '' : typeof a.zone === 'number' ? String(a.zone) : sliceKey(a.zone);
    return this.once(`ct:${a.commit ? 1 : 0}:${zone}:${a.table ?? ''}:${a.nat ?? '-'}`, () => {
      let zoneSrc: Subfield | null = null;
      let zoneImm = 0;
      if (typeof a.zone === 'number') {
        if (a.zone < 0 || a.zone > 65535) throw new FlowCompileError(`ct zone ${a.zone} is out of range`);
        zoneImm = a.zone;
      } else if (a.zone !== null) zoneSrc = subfieldOf(a.zone);
      if (a.table !== null && (a.table < 0 || a.table > 254)) throw new FlowCompileError(`ct table ${a.table} is out of range`);
      let nat: Ofpact[] = [];
      if (a.nat !== null) {
        try {
          nat = [parseNat(a.nat)];
        } catch (e) {
          throw new FlowCompileError(`nat(${a.nat}): ${(e as Error).message}`);
        }
      }
      return { type: 'ct', commit: a.commit, force: false, table: a.table, zoneSrc, zoneImm, alg: 0, actions: nat };
    });
  }
}

const describe = (o: Flow | Group): string => ('buckets' in o ? `group ${o.id}` : formatFlow(o));

// ---- the text path: the same changes rendered and parsed as ovs-ofctl would ----

/** The commit as `ovs-ofctl -O OpenFlow14 --bundle` text, parsed against the bridge (scripts, the CLI, the differential test). */
export function textBundle(b: Bridge, c: FlowChanges): SwitchBundle {
  return {
    meters: [...c.meters.add.map((m) => meterModFromText(formatMeter(m), 'add')), ...c.meters.modify.map((m) => meterModFromText(formatMeter(m), 'modify'))],
    groups: [...c.groups.add.map((g) => groupModFromText(b, formatGroup(g), 'add')), ...c.groups.modify.map((g) => groupModFromText(b, formatGroup(g), 'modify'))],
    flows: (function* (): Generator<FlowMod> {
      for (const f of c.remove) yield flowModFromText(b, `delete_strict ${formatMatch(f)}`);
      for (const f of c.modify) yield flowModFromText(b, `modify_strict ${formatFlow(f)}`);
      for (const f of c.add) yield flowModFromText(b, `add ${formatFlow(f)}`);
    })(),
    groupDeletes: c.groups.remove.map((g) => groupModFromText(b, `group_id=${g.id}`, 'delete').id),
    meterDeletes: c.meters.remove.map((m) => meterModFromText(`meter=${m.id}`, 'delete').id),
  };
}

// ---- read back: the bridge's rules, groups and meters in the model ----

const DECLARED = new Map<string, RegField>(Object.values(REGISTERS).map((r) => [sliceKey(r), r]));

/** A slice read back: the register pipeline.ts declares for it, else one named by its bits. */
function regFieldOf(field: FieldName, ofs: number, nbits: number): RegField {
  return DECLARED.get(`${field}/${ofs}/${nbits}`)
    ?? { name: `${FIELDS[field].nxm}[${ofs}..${ofs + nbits - 1}]`, field, ofs, nbits, purpose: 'read back from the switch' };
}

/** An ovs-sim subfield as a model slice (a whole field is the model's whole field), or null. */
function sliceOf(sf: Subfield): Slice | null {
  const field = MODEL.get(sf.field);
  if (field === undefined) return null;
  if (sf.ofs === 0 && sf.nBits === sf.field.nBits) return { field, ofs: 0, nbits: FIELDS[field].bits };
  return { field, ofs: sf.ofs, nbits: sf.nBits };
}

const userdataText = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join('.');

/** A contiguous mask's offset and width, or null. */
function run(mask: bigint): [number, number] | null {
  if (mask === 0n) return null;
  let ofs = 0;
  while (((mask >> BigInt(ofs)) & 1n) === 0n) ofs++;
  const m = mask >> BigInt(ofs);
  if ((m & (m + 1n)) !== 0n) return null;
  return [ofs, m.toString(2).length];
}

/** Ofpacts as model actions; null when one has no model form. */
export function decodeActions(list: readonly Ofpact[]): Action[] | null {
  const out: Action[] = [];
  for (const a of list) {
    switch (a.type) {
      case 'output':
        out.push(a.port === OFPP.IN_PORT ? { type: 'in_port' } : { type: 'output', port: a.port });
        break;
      case 'output_reg': {
        const s = sliceOf(a.src);
        if (!s || a.maxLen !== 65535) return null;
        out.push({ type: 'output_reg', src: regFieldOf(s.field, s.ofs, s.nbits) });
        break;
      }
      case 'resubmit':
        if (a.inPort !== OFPP.IN_PORT || a.table === 255 || a.ct) return null;
        out.push({ type: 'resubmit', table: a.table });
        break;
      case 'set_field': {
        const field = MODEL.get(a.field);
        if (field === undefined) return null;
        if (!a.load) {
          if (a.mask !== a.field.valueMask) return null;
          out.push({ type: 'set_field', field, value: a.value });
          break;
        }
        const r = run(a.mask);
        if (!r) return null;
        const s = sliceOf({ field: a.field, ofs: r[0], nBits: r[1] });
        if (!s) return null;
        const value = (a.value & a.mask) >> BigInt(r[0]);
        const prev = out[out.length - 1];
        // The second 64-bit run of a wider load joins the first.
        if (prev?.type === 'load' && prev.dst.field === s.field && prev.dst.nbits % 64 === 0 && prev.dst.ofs + prev.dst.nbits === s.ofs) {
          out[out.length - 1] = { type: 'load', dst: regFieldOf(s.field, prev.dst.ofs, prev.dst.nbits + s.nbits), value: prev.value | (value << BigInt(prev.dst.nbits)) };
        } else {
          out.push({ type: 'load', dst: regFieldOf(s.field, s.ofs, s.nbits), value });
        }
        break;
      }
      case 'reg_move': {
        const src = sliceOf(a.src);
        const dst = sliceOf(a.dst);
        if (!src || !dst) return null;
        out.push({ type: 'move', src, dst });
        break;
      }
      case 'controller':
        if (a.reason !== 'action' || a.maxLen !== 65535 || a.id !== 0 || a.pause || a.meterId !== null || a.userdata === null) return null;
        out.push({ type: 'controller', userdata: userdataText(a.userdata) });
        break;
      case 'group':
        out.push({ type: 'group', id: a.groupId });
        break;
      case 'meter':
        out.push({ type: 'meter', id: a.meterId });
        break;
      case 'conjunction':
        out.push({ type: 'conjunction', id: a.id, clause: a.clause + 1, nClauses: a.nClauses });
        break;
      case 'ct': {
        if (a.force || a.alg !== 0 || a.actions.length > 1 || (a.actions.length === 1 && a.actions[0]!.type !== 'nat')) return null;
        let zone: number | RegField | null = a.zoneImm === 0 ? null : a.zoneImm;
        if (a.zoneSrc) {
          const s = sliceOf(a.zoneSrc);
          if (!s) return null;
          zone = regFieldOf(s.field, s.ofs, s.nbits);
        }
        const nat = a.actions.length === 0 ? null : formatActions(a.actions).replace(/^nat\(?/, '').replace(/\)$/, '');
        out.push({ type: 'ct', commit: a.commit, zone, table: a.table, nat });
        break;
      }
      case 'ct_clear':
        out.push({ type: 'ct_clear' });
        break;
      case 'dec_ttl':
        if (a.ids !== null) return null;
        out.push({ type: 'dec_ttl' });
        break;
      default:
        return null;
    }
  }
  return out;
}

/**
 * A rule's match in the model. The member a field lives in is shared by several fields
 * (nw_src is arp_spa in ARP, tp_src is icmp_type in ICMP): the match's dl_type and nw_proto say
 * which. Exact (the ovs-sim field's whole mask) reads back as mask null.
 */
export function decodeMatch(m: SimMatch): Match {
  const dl = m.wc[W.dl_type] ? m.flow[W.dl_type]! : -1;
  const proto = m.wc[W.nw_proto] ? m.flow[W.nw_proto]! : -1;
  const arp = dl === 0x0806 || dl === 0x8035;
  const icmp = (dl === 0x0800 && proto === 1) || (dl === 0x86dd && proto === 58);
  const skip = new Set<FieldName>(arp
    ? ['nw_src', 'nw_dst', 'nw_proto', 'tp_src', 'tp_dst', 'icmp_type', 'icmp_code']
    : ['arp_spa', 'arp_tpa', 'arp_op', 'arp_sha', 'arp_tha', ...(icmp ? ['tp_src', 'tp_dst'] as const : ['icmp_type', 'icmp_code'] as const)]);
  const out: MatchField[] = [];
  for (const [field, mf] of MF) {
    if (skip.has(field)) continue;
    const mask = readField(m.wc, mf);
    if (mask === 0n) continue;
    const value = readField(m.flow, mf) & mask;
    // Exact: every bit the switch keeps of the field (arp_op is 8 bits there, in_port 16).
    const exact = mask === mf.valueMask || mask === mf.storeMask >> BigInt(mf.shift);
    out.push({ field, value, mask: exact ? null : mask });
  }
  return out.sort((x, y) => FIELD_RANK[x.field] - FIELD_RANK[y.field]);
}

/** A rule in the model, or null when the model cannot say exactly this rule. */
export function decodeRule(r: Rule, compiler: SimFlowCompiler): Flow | null {
  // Timeouts, flags and importance: never ours.
  if (r.idle !== 0 || r.hard !== 0 || r.importance !== 0 || r.flags !== 0) return null;
  const m = r.match();
  const match = decodeMatch(m);
  // Exactly this rule: the decoded match compiles back to the rule's words.
  if (!sameMatch(compiler.match(match), m)) return null;
  const actions = decodeActions(r.actions);
  if (!actions) return null;
  return { table: r.table, priority: r.priority, match, actions, cookie: r.cookie };
}

function decodeGroup(g: SimGroup): Group | null {
  if (g.selectionMethod !== '' || g.fields.length > 0) return null;
  const defaultWeight = g.type === 'select' ? 1 : 0;
  const buckets: Bucket[] = [];
  for (const b of g.buckets) {
    const actions = decodeActions(b.actions);
    if (!actions || (b.watchGroup !== null && b.watchGroup !== NO_GROUP)) return null;
    buckets.push({
      actions,
      ...(b.weight !== defaultWeight ? { weight: b.weight } : {}),
      ...(b.watchPort !== null && b.watchPort !== OFPP.NONE ? { watchPort: b.watchPort } : {}),
    });
  }
  return { id: g.id, type: g.type, buckets };
}

/** What the bridge holds, in the model; `skipped` counts what the model cannot express. */
export function readSwitch(b: Bridge, compiler: SimFlowCompiler): SwitchContents & { skipped: number } {
  let skipped = 0;
  const flows: Flow[] = [];
  for (const r of b.flows()) {
    const f = decodeRule(r, compiler);
    if (f) flows.push(f);
    else skipped += 1;
  }
  const groups: Group[] = [];
  for (const g of [...b.groups.values()].sort((x, y) => x.id - y.id)) {
    const d = decodeGroup(g);
    if (d) groups.push(d);
    else skipped += 1;
  }
  const meters: Meter[] = bridgeMeters(b).map((m) => ({ id: m.id, unit: m.unit, rate: m.rate, burst: m.burst }));
  return { flows, groups, meters, skipped };
}
