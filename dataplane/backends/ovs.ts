// A real Open vSwitch. OVSDB (JSON-RPC over its socket) for the bridges (br-int with its tunnel
// ports, and the external bridges the dataplane names) and watching VM interfaces come and go;
// OpenFlow 1.4 on each bridge's management socket for everything else: one atomic ordered
// bundle per bridge a commit touches (flow-mods and group-mods encoded from the structured
// model), read-back of every bridge's flows, groups and meters, and on br-int packet-in and
// packet-out.
//
// Losing any connection (ovs-vswitchd or ovsdb-server restarting, a bridge deleted) is noticed at
// once (the socket closes) or by echo (a switch that stops answering). The backend then
// reconnects with backoff, re-ensures every bridge and the tunnel ports, and calls the
// onSwitchReset listeners once all the bridges are back; meanwhile commit() and readBack()
// reject at once with SwitchUnavailableError.
import { execa } from 'execa';
import { type FlowBackend, type FlowChanges, type PacketIn, type PacketIo, SwitchRefusedError, type SwitchContents, type TransientChanges, appendAll, traceArguments } from '../backend.js';
import type { Flow, Group, Meter } from '../flow.js';
import { formatFlow, formatGroup, formatMatch, formatMeter } from '../flow-text.js';
import { BRIDGE, TUNNEL_PORTS } from '../pipeline.js';
import type { PortBindings } from '../bindings.js';
import type { PatchEnd } from '../external.js';
import { UnknownBridgeError, appliedNote, bridgeList, onBridge, onBridgeObject, splitByBridge } from './bridges.js';
import { type OpenFlowOptions, OpenFlowConnection, OpenFlowError, OpenFlowRefusedError } from './openflow.js';
import {
  type ForeignFlow, type ForeignGroup, type ForeignMeter, FlowEncodeError, decodeFlowPackets, decodeFlowStats, decodeGroupDesc, decodeMeterConfig,
  writeFlowMod, writeFlowPurge, writeGroupMod, writeMeterMod,
} from './openflow-codec.js';
import { FC, GC, MC, MP, OFPP, type Writer } from './openflow-wire.js';
import { OvsdbClient, OvsdbError, ovsInteger, ovsMap } from './ovsdb-client.js';

export { OvsdbError, UnknownBridgeError };

export interface OvsBackendOptions {
  /** OVSDB address: unix:PATH or tcp:HOST:PORT. */
  db: string;
  /** Where `<bridge>.mgmt` lives. */
  rundir: string;
  /** Datapath type for a bridge we create (an existing one is adopted, only OpenFlow14 added to its protocols). */
  datapathType: string;
  log?: { info(m: string, meta?: Record<string, unknown>): void; warn(m: string, meta?: Record<string, unknown>): void };
  /** Reconnect backoff (ms): the first wait, doubled up to `max`. */
  reconnect?: { initial?: number; max?: number };
  /** Echo keepalive and request timeouts of the OpenFlow channel. */
  openflow?: OpenFlowOptions;
}

/** The switch cannot be reached right now (OVS restarting): nothing was sent. */
export class SwitchUnavailableError extends Error {}

/** What the switch refused, in terms of the change the dataplane sent. */
export interface RefusedItem {
  kind: 'flow' | 'group' | 'meter';
  op: 'add' | 'modify' | 'remove';
  item: Flow | Group | Meter;
}

/**
 * A refusal with the OpenFlow error's name and the object whose message failed (null: the bundle
 * as a whole), on `bridge`: nothing of that bridge's bundle was applied; the bundles of
 * `applied` (the bridges before it in the same commit) were, and stay.
 */
export class OvsRefusedError extends SwitchRefusedError {
  constructor(
    message: string, reason: string, readonly error: string, readonly failed: RefusedItem | null,
    readonly bridge: string = BRIDGE, override readonly applied: readonly string[] = [],
  ) {
    super(message, reason);
  }
}

/** readBack's answer: what the model can hold, and the rest (to delete) with why. */
export interface OvsSwitchContents extends SwitchContents {
  foreign: { flows: ForeignFlow[]; groups: ForeignGroup[]; meters: ForeignMeter[] };
}

const DB = 'Open_vSwitch';

interface IfaceRow {
  name: string;
  ofport: number | undefined;
  ifaceId: string | undefined;
}

type RowUpdate = Record<string, { new?: Record<string, unknown>; old?: Record<string, unknown> }>;

type State = 'new' | 'up' | 'down' | 'closed';

const describe = (r: RefusedItem): string => {
  if (r.kind === 'flow') return `flow ${r.op} ${r.op === 'remove' ? formatMatch(r.item as Flow) : formatFlow(r.item as Flow)}`;
  if (r.kind === 'group') return `group ${r.op} ${formatGroup(r.item as Group)}`;
  return `meter ${r.op} ${formatMeter(r.item as Meter)}`;
};

export class OvsBackend implements FlowBackend {
  readonly name = 'ovs';
  private ovsdb: OvsdbClient | null = null;
  /** The bridges: br-int first, then the external ones. */
  private names: string[] = [BRIDGE];
  private patches: readonly PatchEnd[] = [];
  /** One OpenFlow channel per bridge. */
  private readonly channels = new Map<string, OpenFlowConnection>();
  private state: State = 'new';
  private downSince = 0;
  private downReason = '';
  private recovering: Promise<void> | null = null;
  private readonly rows = new Map<string, IfaceRow>();
  private readonly byIfaceId = new Map<string, number>();
  private readonly byName = new Map<string, number>();
  private listener: ((keys: string[]) => void) | null = null;
  private readonly resetListeners: (() => void)[] = [];
  private readonly packetListeners: ((p: PacketIn) => void)[] = [];
  readonly packets: PacketIo = {
    onPacketIn: (l) => { this.packetListeners.push(l); },
    packetOut: (port, frame, bridge = BRIDGE) => this.channel('packet-out', bridge).packetOut(port >= 0xff00 && port <= 0xffff ? (port + 0xffff0000) >>> 0 : port, frame),
    packetOutToTable: (inPort, frame) => this.channel('packet-out', BRIDGE).packetOut(OFPP.TABLE, frame, inPort),
  };

  readonly bindings: PortBindings = {
    ofport: (portId) => this.byIfaceId.get(portId) ?? this.byName.get(`tap${portId.slice(0, 11)}`),
  };

  constructor(private readonly opts: OvsBackendOptions) {}

  /** br-int's management socket. */
  get mgmtSocket(): string {
    return this.mgmtSocketOf(BRIDGE);
  }

  mgmtSocketOf(bridge: string): string {
    return `${this.opts.rundir}/${bridge}.mgmt`;
  }

  /** The bridges commits and read-backs cover: br-int, then the external ones started. */
  get bridges(): readonly string[] {
    return this.names;
  }

  /** True while OVSDB and every bridge's OpenFlow channel are up. */
  get connected(): boolean {
    return this.state === 'up';
  }

  private allConnected(): boolean {
    return !!this.ovsdb?.connected && this.names.every((b) => this.channels.get(b)?.connected);
  }

  /**
   * Creates or adopts br-int (with its tunnel ports) and each external bridge named, then opens
   * one OpenFlow channel per bridge.
   */
  async start(bridges?: readonly string[], patches: readonly PatchEnd[] = []): Promise<void> {
    this.names = bridgeList(bridges);
    this.patches = patches;
    try {
      await this.connectOvsdb();
      await this.ensureBridges();
      // vswitchd opens a bridge's management socket shortly after the bridge appears.
      const opened = await Promise.allSettled(this.names.map(async (bridge) => {
        for (let i = 0; ; i++) {
          try {
            await this.connectOpenFlow(bridge);
            return;
          } catch (e) {
            if (i >= 200 || this.state === 'closed') throw new OvsdbError(`bridge ${bridge} did not come up at ${this.mgmtSocketOf(bridge)}: ${(e as Error).message}`);
            await sleep(50);
          }
        }
      }));
      const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    } catch (e) {
      for (const of of this.channels.values()) of.close();
      this.channels.clear();
      this.ovsdb?.close();
      throw e;
    }
    this.state = 'up';
    if (!this.allConnected()) this.lost('a connection closed while starting');
  }

  // ---- connections ----

  private async connectOvsdb(): Promise<void> {
    const db = new OvsdbClient(this.opts.db);
    await db.connect();
    if (this.state === 'closed') {
      db.close();
      throw new SwitchUnavailableError('the ovs backend is closed');
    }
    db.onClose = (e) => { if (e && this.ovsdb === db) this.lost(`OVSDB: ${e.message}`); };
    this.ovsdb = db;
    await db.monitor(DB, 'aca-interfaces', { Interface: { columns: ['name', 'ofport', 'external_ids'] } }, (u, initial) => this.onInterfaces((u.Interface ?? {}), initial));
  }

  /** The bridge's channel; packet-ins are taken from br-int's only. */
  private async connectOpenFlow(bridge: string): Promise<void> {
    const of = new OpenFlowConnection(this.mgmtSocketOf(bridge), this.opts.openflow);
    of.on('packetIn', (p) => { const q = bridge === BRIDGE ? p : { ...p, bridge }; for (const l of this.packetListeners) l(q); });
    of.on('warning', (e) => this.opts.log?.warn('OpenFlow', { bridge, error: e.message }));
    of.on('close', (e) => { if (e && this.channels.get(bridge) === of) this.lost(`OpenFlow (${bridge}): ${e.message}`); });
    await of.connect();
    if (this.state === 'closed') {
      of.close();
      throw new SwitchUnavailableError('the ovs backend is closed');
    }
    this.channels.get(bridge)?.close();
    this.channels.set(bridge, of);
    if (bridge === BRIDGE) {
      // A datapath without meters (an old kernel) would refuse the ports' punt meters: then they
      // are left out and the agent's token buckets alone limit punts.
      const max = await of.multipart(MP.METER_FEATURES).then((b) => (b[0] && b[0].length >= 4 ? b[0].readUInt32BE(0) : 0), () => 0);
      if (max === 0 && this.meters !== false) this.opts.log?.warn('the datapath has no OpenFlow meters: per-port punt limits rely on the agent\'s token buckets alone');
      this.meters = max > 0;
    }
  }

  /** Whether br-int's datapath has meters (null: not known yet). */
  private meters: boolean | null = null;

  private lost(reason: string): void {
    // Before start() completes its own failures report themselves; after close() nothing matters.
    if (this.state === 'closed' || this.state === 'new') return;
    if (this.state === 'up') {
      this.state = 'down';
      this.downSince = Date.now();
      this.downReason = reason;
      this.opts.log?.warn('lost the switch; reconnecting', { reason });
    }
    this.recoverSoon();
  }

  private recoverSoon(): void {
    if (this.recovering) return;
    this.recovering = this.recover().finally(() => {
      this.recovering = null;
      // Lost again just as it came back: go round once more.
      if (this.state === 'down') this.recoverSoon();
    });
  }

  /**
   * Reconnects what is down, re-ensures every bridge and the tunnel ports, reopens each bridge's
   * channel that is down, then (once all are back) tells the dataplane the switch was reset.
   */
  private async recover(): Promise<void> {
    let wait = this.opts.reconnect?.initial ?? 50;
    const max = this.opts.reconnect?.max ?? 1000;
    for (;;) {
      await sleep(wait);
      if (this.state === 'closed') return;
      try {
        if (!this.ovsdb?.connected) {
          this.ovsdb?.close();
          await this.connectOvsdb();
        }
        await this.ensureBridges();
        for (const bridge of this.names) {
          if (this.channels.get(bridge)?.connected) continue;
          await this.connectOpenFlow(bridge);
        }
        if (!this.allConnected()) continue;
        if (this.state !== 'down') return;
        this.state = 'up';
        this.opts.log?.info('switch is back: bridges and tunnel ports ensured; asking the dataplane to reinstall', { bridges: this.names, downMs: Date.now() - this.downSince });
        for (const l of this.resetListeners) {
          try {
            l();
          } catch (e) {
            this.opts.log?.warn('switch reset listener failed', { error: (e as Error).message });
          }
        }
        return;
      } catch (e) {
        this.downReason = (e as Error).message;
        wait = Math.min(wait * 2, max);
      }
    }
  }

  private unavailable(what: string): SwitchUnavailableError {
    if (this.state === 'new') return new SwitchUnavailableError(`${what}: the ovs backend has not started`);
    if (this.state === 'closed') return new SwitchUnavailableError(`${what}: the ovs backend is closed`);
    return new SwitchUnavailableError(`${what}: Open vSwitch unreachable for ${Date.now() - this.downSince} ms, reconnecting (${this.downReason})`);
  }

  onSwitchReset(listener: () => void): void {
    this.resetListeners.push(listener);
  }

  // ---- OVSDB: bridge, ports, interfaces ----

  private async ensureBridges(): Promise<void> {
    for (const bridge of this.names) await this.ensureBridge(bridge);
    for (const p of this.patches) await this.ensurePatch(p);
  }

  /** A patch port with its OpenFlow port number (asked again if it has another: the flows use it). */
  private async ensurePatch(p: PatchEnd): Promise<void> {
    const db = this.ovsdb;
    if (!db) throw new OvsdbError('OVSDB not connected');
    const [found] = await db.transact(DB, [{ op: 'select', table: 'Interface', where: [['name', '==', p.name]], columns: ['name', 'ofport_request', 'options', 'type'] }]);
    const row = ((found as { rows?: { ofport_request?: unknown; type?: unknown }[] }).rows ?? [])[0];
    if (row) {
      if (row.ofport_request !== p.ofport || row.type !== 'patch') {
        await db.transact(DB, [{ op: 'update', table: 'Interface', where: [['name', '==', p.name]], row: { type: 'patch', ofport_request: p.ofport, options: ['map', [['peer', p.peer]]] } }]);
      }
      return;
    }
    await db.transact(DB, [
      { op: 'insert', table: 'Interface', 'uuid-name': 'iface', row: { name: p.name, type: 'patch', ofport_request: p.ofport, options: ['map', [['peer', p.peer]]] } },
      { op: 'insert', table: 'Port', row: { name: p.name, interfaces: ['named-uuid', 'iface'] }, 'uuid-name': 'port' },
      { op: 'mutate', table: 'Bridge', where: [['name', '==', p.bridge]], mutations: [['ports', 'insert', ['set', [['named-uuid', 'port']]]]] },
    ]);
    this.opts.log?.info('added patch port', { bridge: p.bridge, port: p.name, peer: p.peer, ofport: p.ofport });
  }

  /** Creates the bridge (fail_mode secure, our datapath type, OpenFlow 1.4 allowed) or adopts it; br-int gets its tunnel ports. */
  private async ensureBridge(bridge: string): Promise<void> {
    const db = this.ovsdb;
    if (!db) throw new OvsdbError('OVSDB not connected');
    const [bridges] = await db.transact(DB, [{ op: 'select', table: 'Bridge', where: [['name', '==', bridge]], columns: ['name', 'protocols'] }]);
    const row = ((bridges as { rows?: { protocols?: unknown }[] }).rows ?? [])[0];
    if (!row) {
      // Created secure: with no controller connected OVS must not fall back to MAC learning.
      await db.transact(DB, [
        { op: 'insert', table: 'Interface', row: { name: bridge, type: 'internal' }, 'uuid-name': 'iface' },
        { op: 'insert', table: 'Port', row: { name: bridge, interfaces: ['named-uuid', 'iface'] }, 'uuid-name': 'port' },
        {
          op: 'insert', table: 'Bridge', 'uuid-name': 'br',
          row: { name: bridge, ports: ['named-uuid', 'port'], fail_mode: 'secure', datapath_type: this.opts.datapathType, protocols: ['set', ['OpenFlow10', 'OpenFlow13', 'OpenFlow14', 'OpenFlow15']] },
        },
        { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['bridges', 'insert', ['set', [['named-uuid', 'br']]]]] },
      ]);
      this.opts.log?.info('created bridge', { bridge, datapathType: this.opts.datapathType, failMode: 'secure' });
    } else if (this.state === 'new') {
      this.opts.log?.info('adopted existing bridge', { bridge });
    }
    if (row) {
      // An empty set means OVS's default (1.0 to 1.5); a set without 1.4 would lock us out.
      const protocols = setValues(row.protocols);
      if (protocols.length > 0 && !protocols.includes('OpenFlow14')) {
        await db.transact(DB, [{ op: 'mutate', table: 'Bridge', where: [['name', '==', bridge]], mutations: [['protocols', 'insert', ['set', ['OpenFlow14']]]] }]);
        this.opts.log?.info('enabled OpenFlow14 on the bridge (the agent speaks OpenFlow 1.4 bundles)', { bridge, had: protocols });
      }
    }
    if (bridge !== BRIDGE) return;
    for (const tun of Object.values(TUNNEL_PORTS)) {
      const [found] = await db.transact(DB, [{ op: 'select', table: 'Interface', where: [['name', '==', tun.name]], columns: ['name'] }]);
      if (((found as { rows: unknown[] }).rows ?? []).length > 0) continue;
      await db.transact(DB, [
        {
          op: 'insert', table: 'Interface', 'uuid-name': 'iface',
          row: { name: tun.name, type: tun.type, ofport_request: tun.ofport, options: ['map', [['remote_ip', 'flow'], ['key', 'flow']]] },
        },
        { op: 'insert', table: 'Port', row: { name: tun.name, interfaces: ['named-uuid', 'iface'] }, 'uuid-name': 'port' },
        { op: 'mutate', table: 'Bridge', where: [['name', '==', BRIDGE]], mutations: [['ports', 'insert', ['set', [['named-uuid', 'port']]]]] },
      ]);
      this.opts.log?.info('added tunnel port', { port: tun.name, type: tun.type, ofport: tun.ofport });
    }
  }

  private onInterfaces(rows: RowUpdate, initial: boolean): void {
    const changed = new Set<string>();
    if (initial) {
      // A (re)started monitor sends everything: rows we knew and it lacks are gone.
      for (const [uuid, r] of this.rows) {
        if (rows[uuid]) continue;
        this.rows.delete(uuid);
        if (r.ifaceId) changed.add(r.ifaceId);
        changed.add(r.name);
      }
    }
    for (const [uuid, change] of Object.entries(rows)) {
      const before = this.rows.get(uuid);
      if (change.new) {
        const prev = before ?? { name: '', ofport: undefined, ifaceId: undefined };
        const name = typeof change.new.name === 'string' ? change.new.name : prev.name;
        const ofport = 'ofport' in change.new ? ovsInteger(change.new.ofport as never) : prev.ofport;
        const ifaceId = 'external_ids' in change.new ? ovsMap(change.new.external_ids as never).get('iface-id') : prev.ifaceId;
        const next = { name, ofport, ifaceId };
        this.rows.set(uuid, next);
        if (before && before.name === name && before.ofport === ofport && before.ifaceId === ifaceId) continue;
        if (before?.ifaceId) changed.add(before.ifaceId);
        if (before) changed.add(before.name);
        if (ifaceId) changed.add(ifaceId);
        changed.add(name);
      } else if (before) {
        this.rows.delete(uuid);
        if (before.ifaceId) changed.add(before.ifaceId);
        changed.add(before.name);
      }
    }
    this.byIfaceId.clear();
    this.byName.clear();
    for (const r of this.rows.values()) {
      if (r.ofport === undefined || r.ofport <= 0) continue;
      if (r.ifaceId) this.byIfaceId.set(r.ifaceId, r.ofport);
      this.byName.set(r.name, r.ofport);
    }
    if (changed.size > 0) this.listener?.([...changed]);
  }

  onBindingsChanged(listener: (keys: string[]) => void): void {
    this.listener = listener;
  }

  // ---- OpenFlow: commit and read-back ----

  private channel(what: string, bridge: string): OpenFlowConnection {
    const of = this.channels.get(bridge);
    if (this.state !== 'up' || !of?.connected) throw this.unavailable(what);
    return of;
  }

  /**
   * One atomic ordered bundle per bridge the commit touches (external bridges first, br-int
   * last), each: group adds and modifies, flow removes, modifies (modify_strict) and adds (add:
   * replaces the flow with the same match whole, cookie included), group removes. OVS cannot
   * bundle meter-mods: a bridge's meter adds and modifies go just before its bundle (a failed one
   * fails the commit, and the meters this commit added there are deleted again), its meter
   * removes just after it. There is no bundle across bridges: when a later bridge refuses its
   * bundle, the bridges before it keep theirs (the OvsRefusedError names the bridge and lists
   * them in `applied`). A bridge not started rejects with UnknownBridgeError, nothing sent.
   */
  async commit(changes: FlowChanges): Promise<void> {
    const parts = splitByBridge(changes, this.names);
    // Every channel needed is up before anything is sent (and an empty commit to a switch that is down rejects too).
    if (parts.length === 0) this.channel('commit', BRIDGE);
    const channels = parts.map(([bridge]) => this.channel('commit', bridge));
    const applied: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const [bridge, part] = parts[i]!;
      await this.commitBridge(channels[i]!, bridge, part, applied);
      applied.push(bridge);
    }
  }

  private async commitBridge(of: OpenFlowConnection, bridge: string, given: FlowChanges, applied: readonly string[]): Promise<void> {
    const changes = this.meters === false ? withoutMeters(given) : given;
    const meters = changes.meters;
    const meterPre: RefusedItem[] = [
      ...meters.add.map((item) => ({ kind: 'meter' as const, op: 'add' as const, item })),
      ...meters.modify.map((item) => ({ kind: 'meter' as const, op: 'modify' as const, item })),
    ];
    if (meterPre.length > 0) {
      const errors = await this.run(() => of.sendAll(meterPre.length, (i, w, xid) => writeMeterMod(w, xid, meterPre[i]!.op === 'add' ? MC.ADD : MC.MODIFY, meterPre[i]!.item as Meter)));
      if (errors.length > 0) {
        // Undo the adds that went through (modifies cannot be undone: OVS has no meter bundles).
        const failed = new Set(errors.map((e) => e.index));
        const added = meters.add.filter((_, i) => !failed.has(i));
        await of.sendAll(added.length, (i, w, xid) => writeMeterMod(w, xid, MC.DELETE, added[i]!)).catch(() => undefined);
        throw this.refusal(errors[0]!.error.name, meterPre[errors[0]!.index]!, meterPre.length, bridge, applied);
      }
    }
    const items: RefusedItem[] = [
      ...changes.groups.add.map((item) => ({ kind: 'group' as const, op: 'add' as const, item })),
      ...changes.groups.modify.map((item) => ({ kind: 'group' as const, op: 'modify' as const, item })),
      ...changes.remove.map((item) => ({ kind: 'flow' as const, op: 'remove' as const, item })),
      ...changes.modify.map((item) => ({ kind: 'flow' as const, op: 'modify' as const, item })),
      ...changes.add.map((item) => ({ kind: 'flow' as const, op: 'add' as const, item })),
      ...changes.groups.remove.map((item) => ({ kind: 'group' as const, op: 'remove' as const, item })),
    ];
    if (items.length > 0) {
      try {
        await of.bundle(items.length, (i, w, xid) => writeItem(w, xid, items[i]!, i));
      } catch (e) {
        // Meters added before the refused bundle go again, so a refusal leaves the switch as it was
        // (modified meters cannot be put back: OVS has no meter bundles).
        if ((e instanceof OpenFlowRefusedError || e instanceof BundleEncodeError) && meters.add.length > 0) {
          await of.sendAll(meters.add.length, (i, w, xid) => writeMeterMod(w, xid, MC.DELETE, meters.add[i]!)).catch(() => undefined);
        }
        if (e instanceof OpenFlowRefusedError) {
          throw this.refusal(e.error.name, e.index === null ? null : items[e.index] ?? null, items.length, bridge, applied);
        }
        if (e instanceof BundleEncodeError) {
          const what = describe(items[e.index]!);
          throw new OvsRefusedError(
            `cannot encode ${what}${onBridge(bridge)}: ${e.message}${appliedNote(applied)}`, `unencodable: ${e.message} (${what}${onBridge(bridge)})`,
            'UNENCODABLE', items[e.index]!, bridge, applied,
          );
        }
        throw this.transport(e);
      }
    }
    if (meters.remove.length > 0) {
      const errors = await this.run(() => of.sendAll(meters.remove.length, (i, w, xid) => writeMeterMod(w, xid, MC.DELETE, meters.remove[i]!)));
      // The flows are committed; a meter that would not go away is only worth a warning.
      for (const e of errors) this.opts.log?.warn('switch refused a meter removal', { bridge, error: e.error.name, meter: formatMeter(meters.remove[e.index]!) });
    }
  }

  /** Packet counts of br-int's flows of one table and cookie (a flow-stats request filtered by both). */
  async flowPackets(table: number, cookie: bigint): Promise<Map<string, bigint>> {
    const of = this.channel('flowPackets', BRIDGE);
    try {
      return decodeFlowPackets(await of.multipart(MP.FLOW, { table, cookie }));
    } catch (e) {
      throw this.transport(e);
    }
  }

  /** Transient flows (Zeta direct paths): one bundle on br-int, purges, removes, then adds with their idle timeouts. */
  async transient(c: TransientChanges): Promise<void> {
    const of = this.channel('transient', BRIDGE);
    const n = c.purge.length + c.remove.length + c.add.length;
    if (n === 0) return;
    try {
      await of.bundle(n, (i, w, xid) => {
        if (i < c.purge.length) writeFlowPurge(w, xid, c.purge[i]!.table, c.purge[i]!.cookie);
        else if (i < c.purge.length + c.remove.length) writeFlowMod(w, xid, FC.DELETE_STRICT, c.remove[i - c.purge.length]!);
        else writeFlowMod(w, xid, FC.ADD, c.add[i - c.purge.length - c.remove.length]!);
      });
    } catch (e) {
      if (e instanceof OpenFlowRefusedError) throw new SwitchRefusedError(`switch refused transient flows: ${e.error.name}`, e.error.name);
      throw this.transport(e);
    }
  }

  /** A request whose connection failure means the switch is unavailable. */
  private async run<T>(send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (e) {
      throw this.transport(e);
    }
  }

  /** The reason names the bridge off br-int (br-int goes unnamed, as in the model). */
  private refusal(name: string, failed: RefusedItem | null, total: number, bridge: string, applied: readonly string[]): OvsRefusedError {
    const where = failed ? describe(failed) : `the bundle of ${total} messages as a whole`;
    const reason = `${name}${onBridge(bridge)} in ${where}`;
    const nothing = applied.length === 0 ? 'nothing applied' : `nothing of ${bridge} applied${appliedNote(applied)}`;
    return new OvsRefusedError(`switch refused the commit (${nothing}): ${reason}`, reason, name, failed, bridge, applied);
  }

  /** A connection failure during a request: the switch is unreachable, nothing can be assumed applied. */
  private transport(e: unknown): Error {
    if (e instanceof OpenFlowError && !(e instanceof OpenFlowRefusedError)) return new SwitchUnavailableError(`Open vSwitch connection failed: ${e.message}`);
    return e instanceof Error ? e : new Error(String(e));
  }

  /**
   * Every bridge's flows, groups and meters (`bridge` set off br-int); what the model cannot hold
   * comes back in `foreign`, with its bridge too, so a remove deletes it where it is.
   */
  async readBack(): Promise<OvsSwitchContents> {
    const channels = this.names.map((bridge) => [bridge, this.channel('readBack', bridge)] as const);
    try {
      const held = await Promise.all(channels.map(([bridge, of]) => this.readBridge(bridge, of)));
      const out = held[0]!;
      for (const h of held.slice(1)) {
        for (const f of h.flows) out.flows.push(f);
        appendAll(out.groups, h.groups);
        appendAll(out.meters, h.meters);
        appendAll(out.foreign.flows, h.foreign.flows);
        appendAll(out.foreign.groups, h.foreign.groups);
        appendAll(out.foreign.meters, h.foreign.meters);
      }
      return out;
    } catch (e) {
      throw this.transport(e);
    }
  }

  private async readBridge(bridge: string, of: OpenFlowConnection): Promise<OvsSwitchContents> {
    const [flowBodies, groupBodies, meterBodies] = await Promise.all([
      of.multipart(MP.FLOW),
      of.multipart(MP.GROUP_DESC),
      of.multipart(MP.METER_CONFIG).catch((e: unknown) => {
        if (e instanceof OpenFlowRefusedError) return [] as Buffer[]; // a datapath without meters
        throw e;
      }),
    ]);
    const flows = decodeFlowStats(flowBodies);
    const groups = decodeGroupDesc(groupBodies);
    const meters = decodeMeterConfig(meterBodies);
    if (bridge === BRIDGE) {
      return {
        flows: flows.flows, groups: groups.groups, meters: meters.meters,
        foreign: { flows: flows.foreign, groups: groups.foreign, meters: meters.foreign },
      };
    }
    const on = <T extends object>(o: T): T => onBridgeObject(o, bridge);
    return {
      flows: flows.flows.map(on), groups: groups.groups.map(on), meters: meters.meters.map(on),
      foreign: { flows: flows.foreign.map(on), groups: groups.foreign.map(on), meters: meters.foreign.map(on) },
    };
  }

  /** The real bridge's ofproto/trace; a packet is given as `in_port=N,HEX` or `in_port=N HEX`. */
  /**
   * The zone's entries whose original direction matches, flushed one by one: OVS 3.1's
   * `dpctl/flush-conntrack` takes a whole zone or one exact tuple, so the zone is dumped and each
   * match flushed by its full original tuple (arguments, never a shell string).
   */
  async flushConntrack(zone: number, filter: { src?: string; dst?: string }): Promise<void> {
    const appctl = async (args: string[]): Promise<string> => {
      const r = await execa('ovs-appctl', args, { env: { OVS_RUNDIR: this.opts.rundir }, reject: false });
      if (r.exitCode !== 0) throw new OvsdbError(r.stderr.trim() || `ovs-appctl ${args[0]} exited ${r.exitCode}`);
      return r.stdout;
    };
    if (!filter.src && !filter.dst) {
      await appctl(['dpctl/flush-conntrack', `zone=${zone}`]);
      return;
    }
    for (const line of (await appctl(['dpctl/dump-conntrack', `zone=${zone}`])).split('\n')) {
      const tuple = conntrackFlushTuple(line, filter);
      if (tuple) await appctl(['dpctl/flush-conntrack', `zone=${zone}`, tuple]);
    }
  }

  async trace(spec: string): Promise<string> {
    const args = ['ofproto/trace', BRIDGE, ...traceArguments(spec)];
    const r = await execa('ovs-appctl', args, { env: { OVS_RUNDIR: this.opts.rundir }, reject: false });
    if (r.exitCode !== 0) throw new OvsdbError(r.stderr.trim() || `ovs-appctl exited ${r.exitCode}`);
    return r.stdout;
  }

  close(): Promise<void> {
    this.state = 'closed';
    for (const of of this.channels.values()) of.close();
    this.ovsdb?.close();
    return this.recovering?.catch(() => undefined) ?? Promise.resolve();
  }
}

/** A change with no meters and no meter instructions (for a datapath that has none). */
export function withoutMeters(c: FlowChanges): FlowChanges {
  const strip = (f: Flow): Flow => (f.actions.some((a) => a.type === 'meter') ? { ...f, actions: f.actions.filter((a) => a.type !== 'meter') } : f);
  return { ...c, add: c.add.map(strip), modify: c.modify.map(strip), remove: c.remove, meters: { add: [], modify: [], remove: [] } };
}

/** An encoding failure inside a bundle, with the index of the message. */
class BundleEncodeError extends Error {
  constructor(message: string, readonly index: number) {
    super(message);
  }
}

function writeItem(w: Writer, xid: number, it: RefusedItem, index: number): void {
  try {
    if (it.kind === 'flow') writeFlowMod(w, xid, it.op === 'add' ? FC.ADD : it.op === 'modify' ? FC.MODIFY_STRICT : FC.DELETE_STRICT, it.item as Flow);
    else writeGroupMod(w, xid, it.op === 'add' ? GC.ADD : it.op === 'modify' ? GC.MODIFY : GC.DELETE, it.item as Group);
  } catch (e) {
    if (e instanceof FlowEncodeError || e instanceof RangeError) throw new BundleEncodeError(e.message, index);
    throw e;
  }
}

function setValues(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v[0] === 'set' && Array.isArray(v[1])) return v[1].filter((x): x is string => typeof x === 'string');
  return [];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The flush tuple of one `dpctl/dump-conntrack` line whose original direction matches the filter
 * (`udp,orig=(src=A,dst=B,sport=P,dport=Q),reply=(…),zone=N`), or null.
 */
export function conntrackFlushTuple(line: string, filter: { src?: string; dst?: string }): string | null {
  const m = /^(\w+),orig=\(([^)]*)\)/.exec(line.trim());
  if (!m) return null;
  const f = new Map(m[2]!.split(',').map((kv) => kv.split('=') as [string, string]));
  if (filter.src && f.get('src') !== filter.src) return null;
  if (filter.dst && f.get('dst') !== filter.dst) return null;
  const proto = { tcp: 6, udp: 17, icmp: 1 }[m[1]!];
  if (proto === undefined || !f.get('src') || !f.get('dst')) return null;
  const base = `ct_nw_src=${f.get('src')},ct_nw_dst=${f.get('dst')},ct_nw_proto=${proto}`;
  if (proto === 1) return `${base},icmp_id=${f.get('id') ?? 0},icmp_type=${f.get('type') ?? 8},icmp_code=${f.get('code') ?? 0}`;
  return `${base},ct_tp_src=${f.get('sport') ?? 0},ct_tp_dst=${f.get('dport') ?? 0}`;
}
