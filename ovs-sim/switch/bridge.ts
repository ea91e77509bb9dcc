// A bridge: OVS's ofproto. Ports (OpenFlow numbers, datapath numbers, types, options,
// external_ids), 255 tables of rules, groups, the Geneve TLV map, and flow mods with OVS's
// semantics: add replaces an identical match+priority, non-strict modify/delete act on every
// rule the criteria subsume, modify may add, cookie masks and out_port/out_group filter,
// check_overlap, bundles all or nothing, idle and hard timeouts on the datapath clock.
import type { Ofpact } from '../openflow/actions.js';
import { formatActions } from '../openflow/actions.js';
import { CheckError, checkActions } from '../openflow/check.js';
import { Classifier, type Conjunction, Subtable } from './classifier.js';
import { Rule } from './rule.js';
import { Datapath } from './datapath.js';
import { FieldError } from '../base/fields.js';
import { FLOW_WORDS, type Flow, W, newFlow } from '../base/flow.js';
import { FF, type FlowMod } from '../openflow/flowmod.js';
import type { Group, GroupMod } from './groups.js';
import { Match, formatMatch } from '../openflow/match.js';
import { info } from '../base/log.js';
import { nxRoundTrip } from '../openflow/nx-match.js';
import { OFPP, type PortMap } from '../base/text.js';
import { TunTable, tunMetadataAsClient } from '../base/tlv.js';
import { type OfVersion, wire } from '../openflow/wire.js';

export { Rule };

export type PortType = 'internal' | 'dummy' | 'dummy-internal' | 'system' | 'patch' | 'vxlan' | 'geneve' | 'gre' | 'stt';

export interface BridgePort {
  name: string;
  ofport: number;
  type: PortType;
  externalIds: Map<string, string>;
  options: Map<string, string>;
  /** Datapath port number (none for patch ports). */
  odpPort: number | null;
  /** The Ethernet address of a dummy or internal port's netdev (others have a random one). */
  mac?: bigint;
  /** Packets and bytes the datapath sent out of the port's netdev (dump-ports tx counters). */
  txPackets?: number;
  txBytes?: number;
  noFlood: boolean;
  noFwd: boolean;
  noPacketIn: boolean;
}

/** An OpenFlow error the switch answers a request with (OFPFMFC_OVERLAP, ...). */
export class OfError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

/**
 * What a bundle did, to undo it if a later flow mod fails: rules inserted and removed, and plain
 * rules put in from a flow mod's values (their subtable here, their priority and values in a
 * journal of words: no object per flow mod for the common case).
 */
class UndoLog {
  private readonly steps: ({ inserted: boolean; rule: Rule } | Subtable)[] = [];
  /** Made at the first plain add: most bundles of one flow mod (a learn action's) have none. */
  private journal: Uint32Array | null = null;
  private used = 0;

  inserted(rule: Rule): void {
    this.steps.push({ inserted: true, rule });
  }

  removed(rule: Rule): void {
    this.steps.push({ inserted: false, rule });
  }

  /** A plain rule of `st` put in from flow `f` at priority `p`. */
  insertedPlain(st: Subtable, f: Flow, p: number): void {
    const n = st.idx.length;
    let j = this.journal;
    if (j === null || this.used + n + 1 > j.length) {
      // 16 words first: 64 bytes, which V8 keeps in its heap (larger typed arrays are allocated outside it).
      const more = new Uint32Array(Math.max(j === null ? 16 : j.length * 2, this.used + n + 1));
      if (j !== null) more.set(j);
      this.journal = j = more;
    }
    st.copyValues(f, j, this.used);
    j[this.used + n] = p;
    this.used += n + 1;
    this.steps.push(st);
  }

  /** Undo every step, last first. */
  rollback(table: (id: number) => Classifier): void {
    for (let i = this.steps.length - 1; i >= 0; i--) {
      const u = this.steps[i]!;
      if (u instanceof Subtable) {
        const n = u.idx.length;
        const j = this.journal!;
        this.used -= n + 1;
        // Every step after this one is undone already, so the rule it put in is there.
        if (!table(u.table).removeValues(u, j, this.used, j[this.used + n]!)) throw new Error('ovs-sim: a refused bundle could not find a rule it added to take it out again (a simulator bug)');
      } else if (u.inserted) table(u.rule.table).remove(u.rule);
      else table(u.rule.table).insert(u.rule);
    }
  }
}

const NO_ACTIONS: Ofpact[] = [];

/**
 * A flow mod's actions as a rule keeps them: in an array of exactly their size (a parser's array
 * has room to grow); a frozen list is one the caller shares between many flows (a host's tunnel
 * output), kept as is.
 */
const keptActions = (a: Ofpact[]): Ofpact[] => (a.length === 0 ? NO_ACTIONS : Object.isFrozen(a) ? a : a.slice());
function actionsUseTunMetadata(actions: Ofpact[], index: number): boolean {
  const uses = (f: { tunMetadata?: number } | undefined): boolean => f?.tunMetadata === index;
  return actions.some((a) => {
    if (a.type === 'set_field') return uses(a.field);
    if (a.type === 'reg_move') return uses(a.src.field) || uses(a.dst.field);
    if (a.type === 'write_actions' || a.type === 'clone' || a.type === 'ct') return actionsUseTunMetadata(a.actions, index);
    return false;
  });
}

/** A replaced or modified rule keeps its counters unless the flow mod says reset_counts. */
function carryCounters(r: Rule, old: Rule, fm: FlowMod): void {
  if (fm.flags & FF.RESET_COUNTS) return;
  r.nPackets = old.nPackets;
  r.nBytes = old.nBytes;
}

/** The learn actions (nested ones too) that delete what they learned with their rule. */
function learnsDeleting(actions: Ofpact[]): Extract<Ofpact, { type: 'learn' }>[] {
  const out: Extract<Ofpact, { type: 'learn' }>[] = [];
  for (const a of actions) {
    if (a.type === 'learn' && a.deleteLearned) out.push(a);
    else if (a.type === 'write_actions' || a.type === 'clone') out.push(...learnsDeleting(a.actions));
  }
  return out;
}

function conjunctionsOf(actions: Ofpact[]): Conjunction[] | null {
  let out: Conjunction[] | null = null;
  // Indexed, as in the other per-rule loops: until V8 optimizes a loop, for-of makes an
  // iterator result per element, and a million rules go through here once each.
  for (let i = 0; i < actions.length; i++) {
    const a = actions[i]!;
    if (a.type === 'conjunction') (out ??= []).push({ id: a.id, clause: a.clause, nClauses: a.nClauses });
  }
  return out;
}

/** Does the criteria match (`c`) cover rule match `r`? (a loose match, as non-strict mods use) */
function subsumes(c: Match, r: Match): boolean {
  for (let i = 0; i < FLOW_WORDS; i++) {
    const cm = c.wc[i]!;
    if (cm === 0) continue;
    if (((r.wc[i]! & cm) >>> 0) !== cm) return false;
    if (((r.flow[i]! & cm) >>> 0) !== ((c.flow[i]! & cm) >>> 0)) return false;
  }
  return true;
}

/** Do two matches overlap (some packet could match both)? */
function overlaps(a: Match, b: Match): boolean {
  for (let i = 0; i < FLOW_WORDS; i++) {
    const m = (a.wc[i]! & b.wc[i]!) >>> 0;
    if (((a.flow[i]! ^ b.flow[i]!) & m) !== 0) return false;
  }
  return true;
}

function actionsOutputTo(actions: Ofpact[], port: number): boolean {
  return actions.some((a) => {
    if (a.type === 'output' || a.type === 'output_trunc') return a.port === port;
    if (a.type === 'enqueue') return a.port === port;
    if (a.type === 'controller') return port === OFPP.CONTROLLER;
    if (a.type === 'clone' || a.type === 'write_actions' || a.type === 'ct') return actionsOutputTo(a.actions, port);
    return false;
  });
}

function actionsUseGroup(actions: Ofpact[], group: number): boolean {
  return actions.some((a) => (a.type === 'group' && a.groupId === group) || ((a.type === 'clone' || a.type === 'write_actions') && actionsUseGroup(a.actions, group)));
}

export interface StatsFormat {
  version: OfVersion;
  stats: boolean;
  ports?: PortMap | null;
  /** --sort/--rsort output: no idle_age. */
  sorted?: boolean;
}

export class Bridge {
  readonly ports = new Map<number, BridgePort>();
  /** Bumped whenever a port is added or removed, so callers can cache port lookups. */
  portsVersion = 0;
  private readonly tables = new Map<number, Classifier>();
  /** Tables with eviction turned on (`mod-table … evict`). */
  readonly tableEviction = new Set<number>();
  readonly groups = new Map<number, Group>();
  /** Meters by id (none can be added yet: flows naming one are refused, as OVS refuses them). */
  readonly meters = new Set<number>();
  readonly tun = new TunTable();
  failMode: 'secure' | 'standalone' = 'standalone';
  datapathType = 'system';
  private allocPortNo = 0;

  /** NORMAL's MAC learning table: VLAN/MAC to OpenFlow port. */
  readonly macTable = new Map<string, number>();

  /** When the bridge was made: rules keep their times relative to it (small integers, not boxed doubles). */
  private readonly epoch: number;

  constructor(readonly name: string, readonly datapath: Datapath = new Datapath()) {
    datapath.bridges.set(name, this);
    this.epoch = datapath.clock.now();
  }

  /** Milliseconds since the bridge was made (the time rules record). */
  now(): number {
    const d = this.datapath.clock.now() - this.epoch;
    return d <= 0x3fffffff ? d | 0 : d;
  }

  /** The bridges sharing this one's datapath (a patch port's peer is among them). */
  get host(): { bridges: Map<string, Bridge> } {
    return { bridges: this.datapath.bridges as Map<string, Bridge> };
  }

  get vlanLimit(): number {
    return this.datapath.vlanLimit;
  }

  /** A flow mod from a learn action: modify_strict that adds when missing. */
  learn(fm: FlowMod): void {
    this.bundle([fm]);
  }

  get clock(): { now(): number } {
    return this.datapath.clock;
  }

  table(id: number): Classifier {
    let t = this.tables.get(id);
    if (!t) this.tables.set(id, (t = new Classifier(id)));
    return t;
  }

  tableIds(): number[] {
    return [...this.tables.keys()].filter((id) => this.tables.get(id)!.size > 0).sort((a, b) => a - b);
  }

  // -- ports --

  addPort(name: string, type: PortType, opts: { ofportRequest?: number; externalIds?: Record<string, string>; options?: Record<string, string> } = {}): BridgePort {
    if (this.portByName(name)) throw new FieldError(`port ${name} already exists on ${this.name}`);
    let ofport = opts.ofportRequest;
    if (name === this.name) ofport = OFPP.LOCAL;
    if (ofport === undefined || this.ports.has(ofport)) {
      // alloc_ofp_port: the next number after the last one allocated, not reusing at once.
      let n = this.allocPortNo;
      for (let i = 0; i < 32767; i++) {
        n = n + 1 >= 32768 ? 1 : n + 1;
        if (!this.ports.has(n)) break;
      }
      this.allocPortNo = n;
      ofport = n;
    }
    const options = new Map(Object.entries(opts.options ?? {}));
    let odpPort: number | null = null;
    if (type !== 'patch') odpPort = this.datapath.addPort(this.datapathName(name, type, options)).number;
    const port: BridgePort = {
      name, ofport, type, externalIds: new Map(Object.entries(opts.externalIds ?? {})), options, odpPort, noFlood: false, noFwd: false, noPacketIn: false,
    };
    // netdev-dummy numbers every netdev it makes, aa:55:aa:55:00:01 on; the bridge's own port
    // then gets a random address (here a fixed one), as do tunnel and patch ports.
    if (type === 'dummy' || type === 'internal' || type === 'dummy-internal') {
      const n = this.datapath.nextDummyNetdev();
      port.mac = name === this.name ? 0x02_00_00_00_00_00n | BigInt(n) : 0xaa55aa550000n | BigInt(n & 0xffff);
    }
    this.ports.set(ofport, port);
    this.portsVersion += 1;
    return port;
  }

  /** The datapath port a bridge port uses: tunnels share one vport per type and UDP port. */
  private datapathName(name: string, type: PortType, options: Map<string, string>): string {
    if (type === 'vxlan') return `vxlan_sys_${options.get('dst_port') ?? '4789'}`;
    if (type === 'geneve') return `genev_sys_${options.get('dst_port') ?? '6081'}`;
    if (type === 'gre') return 'gre_sys';
    return name;
  }

  /** New options for a port; a tunnel whose UDP port changes moves to that port's vport. */
  setPortOptions(p: BridgePort, options: Map<string, string>): void {
    const before = p.odpPort === null ? null : this.datapathName(p.name, p.type, p.options);
    p.options.clear();
    for (const [k, v] of options) p.options.set(k, v);
    if (before === null) return;
    const after = this.datapathName(p.name, p.type, p.options);
    if (after === before) return;
    const old = p.odpPort;
    p.odpPort = this.datapath.addPort(after).number;
    if (![...this.ports.values()].some((q) => q !== p && q.odpPort === old)) this.datapath.removePort(before);
    this.portsVersion += 1;
  }

  /**
   * Remove a port. Its datapath port goes too when no other port uses it, at once or, with
   * `later`, when the caller says (vswitchd re-creating an interface adds the new datapath port
   * before the old one is gone).
   */
  removePort(name: string, later?: (() => void)[]): BridgePort | undefined {
    const p = this.portByName(name);
    if (p) {
      this.ports.delete(p.ofport);
      this.portsVersion += 1;
      const dpName = this.datapathName(p.name, p.type, p.options);
      const drop = (): void => {
        if (p.odpPort !== null && ![...this.ports.values()].some((q) => q.odpPort === p.odpPort)) this.datapath.removePort(dpName);
      };
      if (later) later.push(drop);
      else drop();
    }
    return p;
  }

  /** A port's Ethernet address (a fixed stand-in where OVS picks a random one). */
  portMac(p: BridgePort): bigint {
    return p.mac ?? 0x02_00_00_00_00_00n | BigInt(p.ofport & 0xffff);
  }

  /** How many rules each table holds. */
  tableSizes(): Map<number, number> {
    const out = new Map<number, number>();
    for (const [id, t] of this.tables) out.set(id, t.size);
    return out;
  }

  /** Port names ↔ numbers, rebuilt only when the ports change (a flow parse asks for it per line). */
  portMap(): PortMap {
    if (this.portMapCache?.version === this.portsVersion) return this.portMapCache.map;
    const byName = new Map<string, number>();
    const byNumber = new Map<number, string>();
    for (const p of this.ports.values()) {
      byName.set(p.name, p.ofport);
      byNumber.set(p.ofport, p.name);
    }
    const map = { byName, byNumber };
    this.portMapCache = { version: this.portsVersion, map };
    return map;
  }

  private portMapCache: { version: number; map: PortMap } | null = null;

  portByName(name: string): BridgePort | undefined {
    const ofport = this.portMap().byName.get(name);
    return ofport === undefined ? undefined : this.ports.get(ofport);
  }

  // -- flow mods --

  /** Apply flow mods all or nothing (each taken from `mods` as it is applied); throws OfError (changing nothing) on the first failure. */
  bundle(mods: Iterable<FlowMod>): void {
    const undo = new UndoLog();
    try {
      for (const m of mods) this.apply(m, undo);
    } catch (e) {
      undo.rollback((id) => this.table(id));
      throw e;
    }
  }

  flowMod(fm: FlowMod): void {
    this.bundle([fm]);
  }

  private insertRule(r: Rule, undo: UndoLog): void {
    this.table(r.table).insert(r);
    undo.inserted(r);
  }

  private removeRule(r: Rule, undo: UndoLog): void {
    // Only what was there is put back if the bundle fails: a delete that selects a learned flow
    // its learn action's rule flushes too removes it once, not twice.
    if (this.table(r.table).remove(r)) undo.removed(r);
  }

  /**
   * An add that makes a plain rule (rule.ts isPlain: no timeout, importance, flag or
   * conjunction) where no rule of its match and priority is: put in the table's columns straight
   * from the flow mod, with no Rule object. Whether it did; if not, the add goes the long way
   * (which replaces a rule).
   */
  private addPlain(fm: FlowMod, table: number, undo: UndoLog): boolean {
    if (fm.idle !== 0 || fm.hard !== 0 || fm.importance !== 0 || fm.flags !== 0 || conjunctionsOf(fm.actions) !== null) return false;
    const t = this.table(table);
    const st = t.subtableFor(fm.match.wc);
    if (!t.insertPlain(st, fm.match.flow, fm.priority, fm.newCookie, keptActions(fm.actions), this.now())) return false;
    undo.insertedPlain(st, fm.match.flow, fm.priority);
    return true;
  }

  private newRule(fm: FlowMod, table: number): Rule {
    const r = new Rule(table, fm.priority, fm.newCookie, keptActions(fm.actions), fm.idle, fm.hard, fm.importance, fm.flags);
    const st = this.table(table).subtableFor(fm.match.wc);
    r.subtable = st;
    r.vals = Classifier.valsOf(st, fm.match.flow);
    r.conj = conjunctionsOf(fm.actions);
    // Use and modification times are the creation time until they change.
    r.created = this.now();
    return r;
  }

  private checkSwitch(actions: Ofpact[], match: Match, table: number): void {
    this.checkResources(actions, table);
    try {
      // checkActions restores what it changes in the match: no copy needed.
      checkActions(actions, match, table, { p: 0x1ff });
    } catch (e) {
      if (e instanceof CheckError) throw new OfError(e.code);
      throw e;
    }
  }

  /** ofproto_check_ofpacts, over the actions flattened (write_actions, clone and ct lists too). */
  private checkResources(list: Ofpact[], table: number): void {
    for (let i = 0; i < list.length; i++) {
      const a = list[i]!;
      if (a.type === 'group' && !this.groups.has(a.groupId)) throw new OfError('OFPBAC_BAD_OUT_GROUP');
      if (a.type === 'goto_table' && a.table <= table) throw new OfError('OFPBIC_BAD_TABLE_ID');
      if (a.type === 'meter' && !this.meters.has(a.meterId)) throw new OfError('OFPMMFC_INVALID_METER');
      if (a.type === 'write_actions' || a.type === 'clone' || a.type === 'ct') this.checkResources(a.actions, table);
    }
  }

  /** Rules a loose or strict criteria selects, in table order. */
  private select(fm: FlowMod, strict: boolean): Rule[] {
    const tables = fm.table === 255 ? [...this.tables.keys()].sort((a, b) => a - b) : [fm.table];
    const out: Rule[] = [];
    for (const id of tables) {
      const t = this.tables.get(id);
      if (!t) continue;
      if (strict) {
        const st = t.subtableFor(fm.match.wc);
        const r = t.findExact(st, Classifier.valsOf(st, fm.match.flow), fm.priority);
        if (r) out.push(r);
        continue;
      }
      for (const r of t.rules()) if (subsumes(fm.match, r.match())) out.push(r);
    }
    return out.filter((r) => {
      if (fm.cookieMask !== 0n && ((r.cookie ^ fm.cookie) & fm.cookieMask) !== 0n) return false;
      if (fm.outPort !== OFPP.NONE && !actionsOutputTo(r.actions, fm.outPort)) return false;
      if (fm.outGroup !== 0xffffffff && !actionsUseGroup(r.actions, fm.outGroup)) return false;
      return true;
    });
  }

  private apply(fm: FlowMod, undo: UndoLog): void {
    switch (fm.command) {
      case 'add': {
        const table = fm.table === 255 ? 0 : fm.table;
        // Table 254 is OVS's read-only internal table; recirc_id and dp_hash are hidden fields
        // only internal flows may set.
        if (table === 254) throw new OfError('OFPBRC_EPERM');
        if (table > 254) throw new OfError('OFPBRC_BAD_TABLE_ID');
        if (fm.match.flow[W.recirc_id] !== 0 || fm.match.flow[W.dp_hash] !== 0 || fm.match.wc[W.dp_hash] !== 0) throw new OfError('OFPBRC_EPERM');
        this.checkSwitch(fm.actions, fm.match, table);
        if (this.addPlain(fm, table, undo)) return;
        const r = this.newRule(fm, table);
        const t = this.table(table);
        const old = t.findExact(r.subtable!, r.vals, r.priority);
        if (!old && fm.flags & FF.CHECK_OVERLAP) {
          const m = fm.match;
          for (const other of t.rules()) if (other.priority === r.priority && overlaps(m, other.match())) throw new OfError('OFPFMFC_OVERLAP');
        }
        if (old) {
          // The cookie is replaced when one is given.
          if (fm.newCookie === 0xffffffffffffffffn) r.cookie = old.cookie;
          carryCounters(r, old, fm);
          this.removeRule(old, undo);
        }
        this.insertRule(r, undo);
        return;
      }
      case 'modify':
      case 'modify_strict': {
        if (fm.table === 254) throw new OfError('OFPBRC_EPERM');
        const olds = this.select(fm, fm.command === 'modify_strict');
        if (olds.length === 0) {
          if (fm.mayAdd ?? (fm.newCookie !== 0xffffffffffffffffn && fm.cookieMask === 0n)) this.apply({ ...fm, command: 'add', flags: fm.flags }, undo);
          return;
        }
        for (const old of olds) {
          this.checkSwitch(fm.actions, old.match(), old.table);
          const r = new Rule(old.table, old.priority, old.cookie, fm.actions, old.idle, old.hard, old.importance, old.flags);
          r.subtable = old.subtable;
          r.vals = old.vals;
          r.conj = conjunctionsOf(fm.actions);
          r.created = old.created;
          r.used = old.used;
          r.modified = this.now();
          if (fm.modifyCookie && fm.newCookie !== 0xffffffffffffffffn) r.cookie = fm.newCookie;
          carryCounters(r, old, fm);
          this.removeRule(old, undo);
          this.insertRule(r, undo);
        }
        return;
      }
      case 'delete':
      case 'delete_strict':
        if (fm.table === 254) throw new OfError('OFPBRC_EPERM');
        for (const r of this.select(fm, fm.command === 'delete_strict')) {
          this.removeRule(r, undo);
          this.flushLearned(r, undo);
        }
        return;
    }
  }

  /**
   * learned_cookies: when the last rule whose learn actions say delete_learned for a table and
   * cookie goes, the flows learned into that table with that cookie go too.
   */
  private flushLearned(gone: Rule, undo: UndoLog): void {
    for (const l of learnsDeleting(gone.actions)) {
      const still = this.flows().some((r) => learnsDeleting(r.actions).some((x) => x.table === l.table && x.cookie === l.cookie));
      if (still) continue;
      for (const r of [...this.table(l.table).rules()]) if (r.cookie === l.cookie) this.removeRule(r, undo);
    }
  }

  /** Remove rules whose idle or hard timeout has passed; returns them. */
  expire(): Rule[] {
    const now = this.now();
    const gone: Rule[] = [];
    for (const t of this.tables.values()) {
      // A rule with a timeout is kept as an object (a plain rule has none).
      for (const r of [...t.objects()]) {
        if ((r.hard && now >= r.created + r.hard * 1000) || (r.idle && now >= r.used + r.idle * 1000)) {
          t.remove(r);
          gone.push(r);
        }
      }
    }
    return gone;
  }

  /** OVS's flow for a standalone bridge without a controller: priority 0, NORMAL. */
  addNormalFlow(): void {
    const m = new Match();
    this.flowMod({
      command: 'add', match: m, priority: 0, table: 0, cookie: 0n, cookieMask: 0n, newCookie: 0n, modifyCookie: false, idle: 0, hard: 0, importance: 0,
      flags: 0, outPort: OFPP.NONE, outGroup: 0xffffffff, actions: [{ type: 'output', port: OFPP.NORMAL, maxLen: 0 }], usable: { p: 0x1ff },
    });
  }

  /** Does a flow mod's criteria (match, table, cookie mask, out_port, out_group) select this rule? */
  criteriaSelects(fm: FlowMod, r: Rule, strict: boolean): boolean {
    if (fm.table !== 255 && r.table !== fm.table) return false;
    if (strict) {
      if (r.priority !== fm.priority) return false;
      const m = r.match();
      for (let i = 0; i < FLOW_WORDS; i++) if (m.wc[i] !== fm.match.wc[i] || ((m.flow[i]! & m.wc[i]!) >>> 0) !== ((fm.match.flow[i]! & fm.match.wc[i]!) >>> 0)) return false;
    } else if (!subsumes(fm.match, r.match())) return false;
    if (fm.cookieMask !== 0n && ((r.cookie ^ fm.cookie) & fm.cookieMask) !== 0n) return false;
    if (fm.outPort !== OFPP.NONE && !actionsOutputTo(r.actions, fm.outPort)) return false;
    if (fm.outGroup !== 0xffffffff && !actionsUseGroup(r.actions, fm.outGroup)) return false;
    return true;
  }

  /** Is tun_metadataN used by any flow's match (a TLV mapping cannot be deleted then)? */
  /** Does a flow match on tun_metadataN or use it in its actions (it is then in use, not deletable)? */
  flowsUseTunMetadata(index: number): boolean {
    const [word, bit] = [W.tun_md_present + (index >= 32 ? 0 : 1), 1 << (index % 32)];
    return this.flows().some((r) => (r.match().wc[word]! & bit) !== 0 || actionsUseTunMetadata(r.actions, index));
  }

  // -- groups --

  groupMod(gm: GroupMod): void {
    const now = this.clock.now();
    switch (gm.command) {
      case 'add':
      case 'add_or_mod':
      case 'modify': {
        const exists = this.groups.has(gm.id);
        if (gm.command === 'add' && exists) throw new OfError('OFPGMFC_GROUP_EXISTS');
        if (gm.command === 'modify' && !exists) throw new OfError('OFPGMFC_UNKNOWN_GROUP');
        if (gm.type === 'indirect' && gm.buckets.length > 1) throw new OfError('OFPGMFC_INVALID_GROUP');
        const old = this.groups.get(gm.id);
        this.groups.set(gm.id, {
          id: gm.id, type: gm.type ?? 'all', buckets: gm.buckets, selectionMethod: gm.selectionMethod, selectionParam: gm.selectionParam,
          fields: gm.fields, packets: old?.packets ?? 0, bytes: old?.bytes ?? 0, created: old?.created ?? now,
        });
        return;
      }
      case 'delete': {
        const ids = gm.id === 0xfffffffc ? [...this.groups.keys()] : [gm.id];
        for (const id of ids) {
          if (!this.groups.delete(id)) continue;
          // Flows that use the group go with it.
          for (const r of this.flows()) if (actionsUseGroup(r.actions, id)) this.table(r.table).remove(r);
        }
        return;
      }
      case 'insert_bucket': {
        const g = this.groups.get(gm.id);
        if (!g) throw new OfError('OFPGMFC_UNKNOWN_GROUP');
        for (const b of gm.buckets) if (g.buckets.some((x) => x.id === b.id)) throw new OfError('OFPGMFC_BUCKET_EXISTS');
        const where = gm.commandBucketId ?? 'last';
        let at = where === 'first' ? 0 : where === 'last' || where === 'all' ? g.buckets.length : g.buckets.findIndex((b) => b.id === where) + 1;
        if (typeof where === 'number' && at === 0) throw new OfError('OFPGMFC_UNKNOWN_BUCKET');
        if (at < 0) at = g.buckets.length;
        g.buckets.splice(at, 0, ...gm.buckets);
        return;
      }
      case 'remove_bucket': {
        const g = this.groups.get(gm.id);
        if (!g) throw new OfError('OFPGMFC_UNKNOWN_GROUP');
        const where = gm.commandBucketId ?? 'all';
        if (where === 'all') g.buckets = [];
        else if (where === 'first') g.buckets.shift();
        else if (where === 'last') g.buckets.pop();
        else {
          const i = g.buckets.findIndex((b) => b.id === where);
          if (i < 0) throw new OfError('OFPGMFC_UNKNOWN_BUCKET');
          g.buckets.splice(i, 1);
        }
        return;
      }
    }
  }

  // -- reading flows --

  /** Every rule, by table then priority (highest first). */
  flows(): Rule[] {
    const out: Rule[] = [];
    // One push per rule: push(...list) overflows the call stack past ~100,000 rules.
    for (const id of [...this.tables.keys()].sort((a, b) => a - b)) for (const r of [...this.tables.get(id)!.rules()].sort((a, b) => b.priority - a.priority)) out.push(r);
    return out;
  }

  /** One dump-flows line for a rule, as ovs-ofctl prints a flow stats reply. */
  formatRule(r: Rule, f: StatsFormat): string {
    const now = this.now();
    let s = ' ';
    if (f.stats || r.cookie !== 0n) s += `cookie=0x${r.cookie.toString(16)}, `;
    if (f.stats) {
      const d = Math.max(0, now - r.created);
      s += `duration=${(d / 1000).toFixed(3)}s, `;
    }
    if (f.stats || r.table !== 0) s += `table=${r.table}, `;
    if (f.stats) s += `n_packets=${r.nPackets}, n_bytes=${r.nBytes}, `;
    if (r.idle) s += `idle_timeout=${r.idle}, `;
    if (r.hard) s += `hard_timeout=${r.hard}, `;
    // Flow stats carry flags from OpenFlow 1.3 on (OF1.0/NXM dumps have none).
    if (f.version >= 13 && r.flags) {
      if (r.flags & FF.SEND_FLOW_REM) s += 'send_flow_rem ';
      if (r.flags & FF.CHECK_OVERLAP) s += 'check_overlap ';
      if (r.flags & FF.RESET_COUNTS) s += 'reset_counts ';
      if (r.flags & FF.NO_PKT_COUNTS) s += 'no_packet_counts ';
      if (r.flags & FF.NO_BYT_COUNTS) s += 'no_byte_counts ';
    }
    if (f.version >= 14 && r.importance) s += `importance=${r.importance}, `;
    if (f.stats && f.version === 10 && !f.sorted) {
      s += `idle_age=${Math.floor((now - r.used) / 1000)}, `;
      const hardAge = Math.floor((now - r.modified) / 1000);
      if (hardAge !== Math.floor((now - r.created) / 1000)) s += `hard_age=${hardAge}, `;
    }
    // The match comes back in the flow stats reply as NXM (OpenFlow 1.0) or OXM.
    const wired = nxRoundTrip(r.match(), f.version >= 12);
    tunMetadataAsClient(wired, this.tun);
    const m = formatMatch(wired, r.priority, f.ports, this.tun);
    if (m !== '') s += `${m} `;
    const actions = wire(r.actions, f.version);
    // ovs-ofctl decoding the reply notes the OpenFlow 1.1 port-rewrite actions that OXM versions
    // still carry when the flow's L4 protocol is unknown.
    if (f.version >= 12) {
      for (const a of actions) {
        if (a.type === 'set_l4_src_port' || a.type === 'set_l4_dst_port') info('ofp_actions', `OFPAT_SET_TP_${a.type === 'set_l4_src_port' ? 'SRC' : 'DST'} is deprecated in OpenFlow1${f.version - 10} (use Set-Field)`);
      }
    }
    return `${s}actions=${formatActions(actions, { ports: f.ports, tun: this.tun })}`;
  }

  // -- compatibility for the agent's simulator backend and tests --

  /** The rules as text lines in table order (no stats). */
  dumpFlows(version: OfVersion = 13): string {
    return this.flows().map((r) => this.formatRule(r, { version, stats: false })).join('\n');
  }
}

export { newFlow, W };
export type { Flow };
