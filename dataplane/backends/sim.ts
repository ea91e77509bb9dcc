// The embedded simulator as a backend: a simulated host's br-int (ovs-sim) and the external
// bridges the dataplane names get the same bundles, and br-int the same bindings, packet-ins and
// packet-outs, a real Open vSwitch would. A commit goes in as one all-or-nothing bundle of meter,
// group and flow mods per bridge touched, compiled from the structured flows (sim-compile.ts) or,
// on the text path, rendered and parsed against that bridge as `ovs-ofctl --bundle` would.
import { type FlowBackend, type FlowChanges, type PacketIn, type PacketIo, type SwitchContents, SwitchRefusedError, type TransientChanges, traceArguments } from '../backend.js';
import { type Flow, type Group, type Meter, flowKey } from '../flow.js';
import { BRIDGE, TUNNEL_PORTS } from '../pipeline.js';
import type { PortBindings } from '../bindings.js';
import type { PatchEnd } from '../external.js';
import { appliedNote, bridgeList, onBridge, onBridgeObject, splitByBridge } from './bridges.js';
import { SimFlowCompiler, decodeRule, readSwitch, textBundle } from './sim-compile.js';
import { Fabric, OfError, type SimHost, applyBundle, traceCommand } from '../../ovs-sim/index.js';

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
    for (const r of this.bridge.flows()) {
      if (r.table !== table || r.cookie !== cookie) continue;
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
    const ip = (t: string): number => t.split('.').reduce((n, o) => n * 256 + Number(o), 0);
    this.host.datapath.conntrack.flushZone(zone, { ...(filter.src ? { src: ip(filter.src) } : {}), ...(filter.dst ? { dst: ip(filter.dst) } : {}) });
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
