// The embedded simulator as a backend: a simulated host's br-int (ovs-sim) gets the same
// bundles, bindings, packet-ins and packet-outs a real Open vSwitch would.
import type { FlowBackend, FlowChanges, PacketIn, PacketIo } from '../backend.js';
import { formatFlow, formatMatch } from '../flow.js';
import { BRIDGE, TUNNEL_PORTS } from '../pipeline.js';
import type { PortBindings } from '../program-context.js';
import type { SimHost } from '../../ovs-sim/fabric.js';
import { trace } from '../../ovs-sim/trace.js';

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

  readonly bindings: PortBindings = {
    ofport: (portId) => {
      const tap = `tap${portId.slice(0, 11)}`;
      let byName: number | undefined;
      for (const p of this.bridge.ports.values()) {
        if (p.externalIds.get('iface-id') === portId) return p.ofport;
        if (p.name === tap) byName = p.ofport;
      }
      if (byName === undefined && this.autoPlug) byName = this.bridge.addPort(tap, 'system', { externalIds: { 'iface-id': portId } }).ofport;
      return byName;
    },
  };

  readonly packets: PacketIo = {
    onPacketIn: (l) => { this.listeners.push(l); },
    packetOut: (port, frame) => this.host.packetOut(BRIDGE, port, frame),
  };

  start(): Promise<void> {
    if (!this.host.bridges.has(BRIDGE)) this.host.addBridge(BRIDGE);
    for (const t of Object.values(TUNNEL_PORTS)) {
      if (!this.bridge.portByName(t.name)) this.bridge.addPort(t.name, t.type, { ofportRequest: t.ofport, options: { remote_ip: 'flow', key: 'flow' } });
    }
    this.host.onPacketIn((e) => {
      if (e.bridge !== BRIDGE) return;
      const p: PacketIn = { inPort: e.inPort, metadata: e.packet.get('metadata') ?? 0n, cookie: e.cookie, data: Buffer.from(e.frame) };
      for (const l of this.listeners) l(p);
    });
    return Promise.resolve();
  }

  commit(changes: FlowChanges): Promise<void> {
    try {
      this.bridge.bundle([
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

  trace(spec: string): Promise<string> {
    try {
      return Promise.resolve(trace(this.bridge, spec));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
