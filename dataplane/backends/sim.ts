// The embedded simulator as a backend: a simulated host's br-int (ovs-sim) gets the same
// bundles, bindings, packet-ins and packet-outs a real Open vSwitch would. A commit goes in as
// one all-or-nothing bundle of meter, group and flow mods, compiled from the structured flows
// (sim-compile.ts) or, on the text path, rendered and parsed as `ovs-ofctl --bundle` would.
import { type FlowBackend, type FlowChanges, type PacketIn, type PacketIo, type SwitchContents, SwitchRefusedError, traceArguments } from '../backend.js';
import { BRIDGE, TUNNEL_PORTS } from '../pipeline.js';
import type { PortBindings } from '../program-context.js';
import { SimFlowCompiler, readSwitch, textBundle } from './sim-compile.js';
import { OfError, applyBundle } from '../../ovs-sim/api.js';
import type { SimHost } from '../../ovs-sim/fabric.js';
import { traceCommand } from '../../ovs-sim/trace.js';

export interface SimBackendOptions {
  /**
   * How flows reach the simulator: `compiled` (default) hands it flow mods built from the
   * structured flows, compiled once per flow shape; `text` renders each flow as ovs-ofctl text
   * and has the simulator parse it (what scripts and the CLI do; the reference the compiled path
   * is tested against).
   */
  path?: 'compiled' | 'text';
}

export class SimBackend implements FlowBackend {
  readonly name = 'sim';
  readonly path: 'compiled' | 'text';
  /** Flow shapes compiled so far (shared by commits and read-backs). */
  readonly compiler = new SimFlowCompiler();
  private readonly listeners: ((p: PacketIn) => void)[] = [];

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
    packetOut: (port, frame) => this.host.packetOut(BRIDGE, [{ type: 'output', port, maxLen: 0xffff }], frame),
  };

  start(): Promise<void> {
    if (!this.host.bridges.has(BRIDGE)) this.host.addBridge(BRIDGE);
    for (const t of Object.values(TUNNEL_PORTS)) {
      if (!this.bridge.portByName(t.name)) this.bridge.addPort(t.name, t.type, { ofportRequest: t.ofport, options: { remote_ip: 'flow', key: 'flow' } });
    }
    this.host.onPacketIn((e) => {
      if (e.bridge !== BRIDGE) return;
      const p: PacketIn = { inPort: e.inPort, metadata: e.metadata, cookie: e.cookie, data: Buffer.from(e.frame) };
      for (const l of this.listeners) l(p);
    });
    return Promise.resolve();
  }

  /**
   * One bundle: meter and group adds and modifies, flow removes, modifies and adds, then group
   * and meter removes. A refusal rejects with the switch's OpenFlow error as the reason, having
   * changed nothing; a flow that cannot be sent at all (text that does not parse, a meter
   * instruction after actions) rejects with a plain Error.
   */
  commit(changes: FlowChanges): Promise<void> {
    try {
      const b = this.bridge;
      applyBundle(b, this.path === 'text' ? textBundle(b, changes) : this.compiler.bundle(changes));
      return Promise.resolve();
    } catch (e) {
      if (e instanceof OfError) return Promise.reject(new SwitchRefusedError(`the switch refused the bundle: ${e.code}`, e.code));
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /**
   * The bridge's flows, groups and meters in the model. A rule the model cannot state exactly
   * (a field or action the agent never uses) is left out.
   */
  readBack(): Promise<SwitchContents> {
    if (!this.host.bridges.has(BRIDGE)) return Promise.resolve({ flows: [], groups: [], meters: [] });
    const { flows, groups, meters } = readSwitch(this.bridge, this.compiler);
    return Promise.resolve({ flows, groups, meters });
  }

  onBindingsChanged(listener: (keys: string[]) => void): void {
    this.host.onPortsChanged(listener);
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
