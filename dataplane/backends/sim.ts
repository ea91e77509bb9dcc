// The embedded simulator as a backend: a simulated host's br-int (ovs-sim) gets the same
// bundles, bindings, packet-ins and packet-outs a real Open vSwitch would.
import { type FlowBackend, type FlowChanges, type PacketIn, type PacketIo, traceArguments } from '../backend.js';
import { formatFlow, formatMatch } from '../flow-text.js';
import { BRIDGE, TUNNEL_PORTS } from '../pipeline.js';
import type { PortBindings } from '../program-context.js';
import { bundleFlowText } from '../../ovs-sim/cli.js';
import type { SimHost } from '../../ovs-sim/fabric.js';
import { traceCommand } from '../../ovs-sim/trace.js';

export class SimBackend implements FlowBackend {
  readonly name = 'sim';
  private readonly listeners: ((p: PacketIn) => void)[] = [];

  /**
   * autoPlug: a standalone simulated host has nobody to plug VM taps, so every port gets its
   * interface (`tap` + id[:11], iface-id = port id) the first time it is looked up.
   */
  constructor(readonly host: SimHost, private readonly autoPlug = false) {}

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

  commit(changes: FlowChanges): Promise<void> {
    try {
      bundleFlowText(this.bridge, [
        ...changes.remove.map((f) => `delete_strict ${formatMatch(f)}`),
        ...changes.modify.map((f) => `modify_strict ${formatFlow(f)}`),
        ...changes.add.map((f) => `add ${formatFlow(f)}`),
      ]);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
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
