// The dataplane: store changes in, the minimal flow change out, one atomic bundle per goal
// state. Programmers are pure functions of the desired state; this module decides which owners
// a change makes dirty, recomputes only those, and diffs desired against what it installed
// (never reading flows back from the switch, as OVN's ofctrl does).
import type { Dataplane, ResourceOutcome } from './api.js';
import { outcomeKey } from './api.js';
import { type FlowBackend, type FlowChanges, type PacketIn, changeCount } from './backend.js';
import { DEFAULT_DHCP, DhcpHandler, type DhcpSettings } from './dhcp-handler.js';
import { DesiredFlows } from './desired.js';
import { type Flow, programmerOf } from './flow.js';
import type { ResourceEvent, ResourceView } from './model.js';
import type { ProgramContext } from './program-context.js';
import { gatewayArpFlows } from './programmers/arp-responder.js';
import { floodLocalFlows, floodRemoteFlows } from './programmers/flood.js';
import { neighborFlows } from './programmers/neighbors.js';
import { pipelineFlows } from './programmers/pipeline.js';
import { portFlows } from './programmers/ports.js';
import { tunnelFlows } from './programmers/tunnels.js';
import { CARRIED_NETWORK_TYPES, Topology, networkOf, portSubnets } from './topology.js';

export interface DataplaneLog {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

const FIXED_OWNERS = ['pipeline', 'tunnels'];

/** The flows of one owner, from the current desired state. */
export function ownerFlows(ctx: ProgramContext, owner: string): Flow[] {
  if (owner === 'pipeline') return pipelineFlows();
  if (owner === 'tunnels') return tunnelFlows();
  const colon = owner.indexOf(':');
  const kind = owner.slice(0, colon);
  const key = owner.slice(colon + 1);
  switch (kind) {
    case 'port': {
      const p = ctx.view.get('port', key);
      return p ? portFlows(ctx, p, owner) : [];
    }
    case 'neighbor': {
      const n = ctx.view.get('neighbor', key);
      return n ? neighborFlows(ctx, n, owner) : [];
    }
    case 'subnet': {
      const s = ctx.view.get('subnet', key);
      return s ? gatewayArpFlows(ctx, s, owner) : [];
    }
    case 'flood-remote':
      return floodRemoteFlows(ctx, Number(key), owner);
    case 'flood-local':
      return floodLocalFlows(ctx, Number(key), owner);
    default:
      return [];
  }
}

export class FlowDataplane implements Dataplane {
  readonly name: string;
  readonly networkTypes = CARRIED_NETWORK_TYPES;
  readonly desired = new DesiredFlows();
  /** What the switch has, as we sent it: flow key → flow. */
  readonly installed = new Map<string, Flow>();
  private topology: Topology | null = null;
  private view: ResourceView | null = null;
  /** Keys whose last commit failed: diffed again next time. */
  private readonly retry = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  /** Ports reported PENDING, for the late-completion log. */
  private readonly pending = new Set<string>();

  readonly dhcp: DhcpHandler;
  /** Packet-ins by cause. */
  readonly punts = { arpMiss: 0, dhcp: 0, other: 0 };

  constructor(readonly backend: FlowBackend, private readonly log?: DataplaneLog, dhcp: DhcpSettings = DEFAULT_DHCP) {
    this.name = backend.name;
    this.dhcp = new DhcpHandler(dhcp, log);
    backend.onBindingsChanged((ids) => void this.rebind(ids));
    backend.packets?.onPacketIn((p) => this.packetIn(p));
  }

  /** Why the pipeline sent a packet up is in the cookie of the flow that did it. */
  private packetIn(p: PacketIn): void {
    const view = this.view;
    const topology = this.topology;
    const io = this.backend.packets;
    switch (programmerOf(p.cookie)) {
      case 'dhcp':
        this.punts.dhcp += 1;
        if (view && topology && io) this.dhcp.handle(p, view, topology, this.backend.bindings, io);
        break;
      case 'arp':
        // Counted and logged; the on-demand engine will ask the controller about these.
        this.punts.arpMiss += 1;
        this.log?.info('ARP request for an unknown address', { inPort: p.inPort, network: Number(p.metadata) });
        break;
      default:
        this.punts.other += 1;
    }
  }

  /**
   * The programmers' context. A new view gets indexes built from what it holds, which already
   * includes the changes being applied (the store changes before the dataplane hears of it).
   */
  private context(view: ResourceView): { ctx: ProgramContext; fresh: boolean } {
    let fresh = false;
    if (this.view !== view || this.topology === null) {
      this.view = view;
      this.topology = Topology.of(view);
      fresh = true;
    }
    return { ctx: { view, topology: this.topology, bindings: this.backend.bindings }, fresh };
  }

  /** Bridge, tunnel ports and the fixed flows. */
  async start(view: ResourceView): Promise<void> {
    await this.backend.start();
    const { ctx } = this.context(view);
    await this.serialized(() => this.reconcile(ctx, new Set(FIXED_OWNERS)));
  }

  apply(events: readonly ResourceEvent[], view: ResourceView): Promise<Map<string, ResourceOutcome>> {
    const { ctx, fresh } = this.context(view);
    const remoteHostsChanged = new Set<string>();
    if (!fresh) for (const e of events) ctx.topology.update(e, remoteHostsChanged);
    // Fresh indexes (no start() before): compute everything once.
    const dirty = fresh ? allOwners(view) : new Set<string>(this.installed.size === 0 ? FIXED_OWNERS : []);
    for (const e of events) this.markDirty(ctx, e, dirty);
    for (const subnetId of remoteHostsChanged) {
      const s = view.get('subnet', subnetId);
      const net = s ? networkOf(s) : null;
      if (net) dirty.add(`flood-remote:${net.vni}`);
    }
    return this.serialized(async () => {
      await this.reconcile(ctx, dirty);
      const outcomes = new Map<string, ResourceOutcome>();
      for (const e of events) {
        if (e.kind !== 'port' || e.type === 'removed') {
          if (e.kind === 'port') this.pending.delete(e.key);
          continue;
        }
        if (this.backend.bindings.ofport(e.key) === undefined) {
          this.pending.add(e.key);
          outcomes.set(outcomeKey('port', e.after.id), {
            status: 'PENDING',
            detail: `interface for port ${e.key} (external_ids:iface-id=${e.key} or ${e.after.ifaceName}) is not on ${this.name} yet; programmed when it appears`,
          });
        }
      }
      return outcomes;
    });
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Owners whose flows a store change can alter. Remote flooding is marked separately, only when
   * a network's set of remote hosts changes, so a neighbor change costs O(1) at any scale.
   */
  private markDirty(ctx: ProgramContext, e: ResourceEvent, dirty: Set<string>): void {
    const floodOf = (subnetIds: string[]): void => {
      for (const id of subnetIds) {
        const s = ctx.view.get('subnet', id);
        const net = s ? networkOf(s) : null;
        if (net) dirty.add(`flood-local:${net.vni}`);
      }
    };
    const sides = (e.type === 'added' ? [e.after] : e.type === 'removed' ? [e.before] : [e.before, e.after]) as unknown[];
    switch (e.kind) {
      case 'port':
        dirty.add(`port:${e.key}`);
        for (const p of sides as Parameters<typeof portSubnets>[0][]) floodOf(portSubnets(p));
        break;
      case 'neighbor':
        dirty.add(`neighbor:${e.key}`);
        break;
      case 'subnet': {
        dirty.add(`subnet:${e.key}`);
        for (const id of ctx.topology.portsOf(e.key)) dirty.add(`port:${id}`);
        for (const key of ctx.topology.neighborsOf(e.key)) dirty.add(`neighbor:${key}`);
        for (const s of sides as { tunnelId: number; networkType: string }[]) {
          const net = networkOf(s as Parameters<typeof networkOf>[0]);
          if (net) dirty.add(`flood-local:${net.vni}`).add(`flood-remote:${net.vni}`);
        }
        break;
      }
      default:
        break;
    }
  }

  /** Recompute dirty owners, diff, commit one bundle, record what was installed. */
  private async reconcile(ctx: ProgramContext, dirty: Set<string>): Promise<FlowChanges> {
    const touched = new Set<string>(this.retry);
    for (const owner of dirty) this.desired.set(owner, ownerFlows(ctx, owner), touched);
    const changes: FlowChanges = { add: [], modify: [], remove: [] };
    // The keys the desired table already made, kept for `installed` (no second string per flow).
    const setKeys: string[] = [];
    const removeKeys: string[] = [];
    for (const key of touched) {
      const want = this.desired.active(key);
      const have = this.installed.get(key);
      if (want && !have) {
        changes.add.push(want);
        setKeys.push(key);
      } else if (!want && have) {
        changes.remove.push(have);
        removeKeys.push(key);
      } else if (want && have && (want.actions !== have.actions || want.cookie !== have.cookie)) {
        changes.modify.push(want);
        setKeys.push(key);
      }
    }
    if (changeCount(changes) === 0) return changes;
    try {
      await this.backend.commit(changes);
    } catch (e) {
      for (const key of touched) this.retry.add(key);
      throw e;
    }
    this.retry.clear();
    for (const key of removeKeys) this.installed.delete(key);
    for (const key of setKeys) this.installed.set(key, this.desired.active(key)!);
    return changes;
  }

  /** Interfaces appeared or left: program their ports now and say so. */
  private async rebind(keys: string[]): Promise<void> {
    const view = this.view;
    const topology = this.topology;
    if (!view || !topology) return;
    const names = new Set(keys);
    const portIds = new Set<string>();
    for (const k of keys) if (view.get('port', k)) portIds.add(k);
    for (const p of view.list('port')) if (names.has(p.ifaceName)) portIds.add(p.id);
    const ctx: ProgramContext = { view, topology, bindings: this.backend.bindings };
    const dirty = new Set<string>();
    for (const id of portIds) {
      const port = view.get('port', id);
      if (!port) continue;
      dirty.add(`port:${id}`);
      for (const s of portSubnets(port)) {
        const subnet = view.get('subnet', s);
        const net = subnet ? networkOf(subnet) : null;
        if (net) dirty.add(`flood-local:${net.vni}`);
      }
    }
    if (dirty.size === 0) return;
    try {
      await this.serialized(() => this.reconcile(ctx, dirty));
      for (const id of portIds) {
        if (this.pending.delete(id) && this.backend.bindings.ofport(id) !== undefined) {
          this.log?.info('port programmed after its interface appeared (was PENDING)', { port: id, ofport: this.backend.bindings.ofport(id) });
        }
      }
    } catch (e) {
      this.log?.warn('programming a newly bound port failed', { ports: [...portIds], error: String(e) });
    }
  }

  /** Every desired flow computed from scratch, for checking the incremental result. */
  static recompute(view: ResourceView, bindings: ProgramContext['bindings']): DesiredFlows {
    const topology = Topology.of(view);
    const ctx: ProgramContext = { view, topology, bindings };
    const desired = new DesiredFlows();
    const touched = new Set<string>();
    for (const owner of allOwners(view)) desired.set(owner, ownerFlows(ctx, owner), touched);
    return desired;
  }

  /** Owners of the installed flows with a cookie, for naming the resource behind a trace step. */
  ownersOfCookie(cookie: bigint): string[] {
    const out = new Set<string>();
    for (const [key, f] of this.installed) if (f.cookie === cookie) for (const o of this.desired.owners(key)) out.add(o);
    return [...out];
  }

  /** A backend trace with each `cookie 0x…` step annotated with the resource(s) behind it. */
  async trace(spec: string): Promise<string> {
    if (!this.backend.trace) throw new Error(`the ${this.name} dataplane has no switch to trace`);
    const text = await this.backend.trace(spec);
    return text.replace(/cookie (0x[0-9a-f]+)/g, (all, c: string) => {
      const owners = this.ownersOfCookie(BigInt(c));
      return owners.length > 0 ? `${all} [${owners.join(', ')}]` : all;
    });
  }

  /** Installed flows, sorted as a dump would list them. */
  flows(): Flow[] {
    return sortFlows([...this.installed.values()]);
  }

  close(): Promise<void> {
    return this.backend.close();
  }
}

/** Every owner the desired state has. */
function allOwners(view: ResourceView): Set<string> {
  const owners = new Set<string>(FIXED_OWNERS);
  for (const p of view.list('port')) owners.add(`port:${p.key}`);
  for (const n of view.list('neighbor')) owners.add(`neighbor:${n.key}`);
  for (const s of view.list('subnet')) {
    owners.add(`subnet:${s.key}`);
    const net = networkOf(s);
    if (net) owners.add(`flood-local:${net.vni}`).add(`flood-remote:${net.vni}`);
  }
  return owners;
}

export function sortFlows(flows: Flow[]): Flow[] {
  return flows.sort((a, b) => a.table - b.table || b.priority - a.priority || (a.match < b.match ? -1 : a.match > b.match ? 1 : 0));
}
