// A real Open vSwitch. OVSDB (JSON-RPC over its socket) for the bridge, the tunnel ports and
// watching VM interfaces come and go; OpenFlow through `ovs-ofctl --bundle add-flows`, fed on
// stdin, one process and one atomic bundle per change (never a process per flow).
import { execa } from 'execa';
import { type FlowBackend, type FlowChanges, type PacketIn, type PacketIo, traceArguments } from '../backend.js';
import { OpenFlowConnection } from './openflow.js';
import { formatFlow, formatMatch } from '../flow-text.js';
import { BRIDGE, TUNNEL_PORTS } from '../pipeline.js';
import type { PortBindings } from '../program-context.js';
import { OvsdbClient, OvsdbError, ovsInteger, ovsMap } from './ovsdb-client.js';

export interface OvsBackendOptions {
  /** OVSDB address: unix:PATH or tcp:HOST:PORT. */
  db: string;
  /** Where `<bridge>.mgmt` lives. */
  rundir: string;
  /** Datapath type for a bridge we create (an existing one is adopted untouched). */
  datapathType: string;
  log?: { info(m: string, meta?: Record<string, unknown>): void; warn(m: string, meta?: Record<string, unknown>): void };
}

const DB = 'Open_vSwitch';

interface IfaceRow {
  name: string;
  ofport: number | undefined;
  ifaceId: string | undefined;
}

export class OvsBackend implements FlowBackend {
  readonly name = 'ovs';
  private readonly ovsdb: OvsdbClient;
  private readonly rows = new Map<string, IfaceRow>();
  private readonly byIfaceId = new Map<string, number>();
  private readonly byName = new Map<string, number>();
  private listener: ((keys: string[]) => void) | null = null;
  private openflow: OpenFlowConnection | null = null;
  private readonly packetListeners: ((p: PacketIn) => void)[] = [];
  readonly packets: PacketIo = {
    onPacketIn: (l) => { this.packetListeners.push(l); },
    packetOut: (port, frame) => {
      if (!this.openflow) throw new OvsdbError('no OpenFlow connection for packet-out');
      this.openflow.packetOut(port, frame);
    },
  };

  readonly bindings: PortBindings = {
    ofport: (portId) => this.byIfaceId.get(portId) ?? this.byName.get(`tap${portId.slice(0, 11)}`),
  };

  constructor(private readonly opts: OvsBackendOptions) {
    this.ovsdb = new OvsdbClient(opts.db);
  }

  get target(): string {
    return `unix:${this.opts.rundir}/${BRIDGE}.mgmt`;
  }

  async start(): Promise<void> {
    await this.ovsdb.connect();
    await this.ensureBridge();
    await this.ovsdb.monitor(DB, 'aca-interfaces', { Interface: { columns: ['name', 'ofport', 'external_ids'] } }, (u) => this.onInterfaces(u.Interface ?? {}));
    await this.waitForBridge();
    const of = new OpenFlowConnection(`${this.opts.rundir}/${BRIDGE}.mgmt`);
    await of.connect();
    of.on('packetIn', (p) => { for (const l of this.packetListeners) l(p); });
    of.on('error', (e) => this.opts.log?.warn('OpenFlow connection error', { error: e.message }));
    this.openflow = of;
  }

  private async ensureBridge(): Promise<void> {
    const [bridges] = await this.ovsdb.transact(DB, [{ op: 'select', table: 'Bridge', where: [['name', '==', BRIDGE]], columns: ['name', 'ports'] }]);
    const exists = ((bridges as { rows: unknown[] }).rows ?? []).length > 0;
    if (!exists) {
      // Created secure: with no controller connected OVS must not fall back to MAC learning.
      await this.ovsdb.transact(DB, [
        { op: 'insert', table: 'Interface', row: { name: BRIDGE, type: 'internal' }, 'uuid-name': 'iface' },
        { op: 'insert', table: 'Port', row: { name: BRIDGE, interfaces: ['named-uuid', 'iface'] }, 'uuid-name': 'port' },
        {
          op: 'insert', table: 'Bridge', 'uuid-name': 'br',
          row: { name: BRIDGE, ports: ['named-uuid', 'port'], fail_mode: 'secure', datapath_type: this.opts.datapathType, protocols: ['set', ['OpenFlow10', 'OpenFlow13', 'OpenFlow14', 'OpenFlow15']] },
        },
        { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['bridges', 'insert', ['set', [['named-uuid', 'br']]]]] },
      ]);
      this.opts.log?.info('created bridge', { bridge: BRIDGE, datapathType: this.opts.datapathType, failMode: 'secure' });
    } else {
      this.opts.log?.info('adopted existing bridge', { bridge: BRIDGE });
    }
    for (const tun of Object.values(TUNNEL_PORTS)) {
      const [found] = await this.ovsdb.transact(DB, [{ op: 'select', table: 'Interface', where: [['name', '==', tun.name]], columns: ['name'] }]);
      if (((found as { rows: unknown[] }).rows ?? []).length > 0) continue;
      await this.ovsdb.transact(DB, [
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

  /** vswitchd opens the bridge's management socket shortly after the bridge appears. */
  private async waitForBridge(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const r = await execa('ovs-ofctl', ['-O', 'OpenFlow13', 'show', this.target], { reject: false });
      if (r.exitCode === 0) return;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new OvsdbError(`bridge ${BRIDGE} did not come up at ${this.target}`);
  }

  private onInterfaces(rows: Record<string, { new?: Record<string, unknown>; old?: Record<string, unknown> }>): void {
    const changed = new Set<string>();
    for (const [uuid, change] of Object.entries(rows)) {
      const before = this.rows.get(uuid);
      if (before) {
        if (before.ifaceId) changed.add(before.ifaceId);
        changed.add(before.name);
      }
      if (change.new) {
        const prev = before ?? { name: '', ofport: undefined, ifaceId: undefined };
        const name = typeof change.new.name === 'string' ? change.new.name : prev.name;
        const ofport = 'ofport' in change.new ? ovsInteger(change.new.ofport as never) : prev.ofport;
        const ifaceId = 'external_ids' in change.new ? ovsMap(change.new.external_ids as never).get('iface-id') : prev.ifaceId;
        this.rows.set(uuid, { name, ofport, ifaceId });
        if (ifaceId) changed.add(ifaceId);
        changed.add(name);
      } else {
        this.rows.delete(uuid);
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

  async commit(changes: FlowChanges): Promise<void> {
    const lines = [
      ...changes.remove.map((f) => `delete_strict ${formatMatch(f)}`),
      ...changes.modify.map((f) => `modify_strict ${formatFlow(f)}`),
      ...changes.add.map((f) => `add ${formatFlow(f)}`),
    ];
    const r = await execa('ovs-ofctl', ['-O', 'OpenFlow13', '--bundle', 'add-flows', this.target, '-'], { input: `${lines.join('\n')}\n`, reject: false });
    if (r.exitCode !== 0) throw new OvsdbError(`ovs-ofctl --bundle add-flows failed: ${r.stderr.trim()}`);
  }

  /** The real bridge's ofproto/trace; a packet is given as `in_port=N,HEX` or `in_port=N HEX`. */
  async trace(spec: string): Promise<string> {
    const args = ['ofproto/trace', BRIDGE, ...traceArguments(spec)];
    const r = await execa('ovs-appctl', args, { env: { OVS_RUNDIR: this.opts.rundir }, reject: false });
    if (r.exitCode !== 0) throw new OvsdbError(r.stderr.trim() || `ovs-appctl exited ${r.exitCode}`);
    return r.stdout;
  }

  onBindingsChanged(listener: (keys: string[]) => void): void {
    this.listener = listener;
  }

  close(): Promise<void> {
    this.openflow?.close();
    this.ovsdb.close();
    return Promise.resolve();
  }
}
