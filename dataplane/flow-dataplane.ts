// The dataplane: store changes in, the minimal change out, one atomic bundle per goal state.
// Features (features.ts) are pure functions of the desired state; the dependency index says
// which owners a change makes dirty; only those are rebuilt; desired is diffed against what the
// switch holds (installed) and only the difference is committed. Honest by construction:
// `installed` changes only for what the switch accepted; a refused bundle is split by owner so
// only the owners the switch refuses fail (retried with backoff until the fault clears); a
// switch that lost everything gets everything again.
import type { Chunk, Dataplane, ResourceOutcome } from './api.js';
import { outcomeKey } from './api.js';
import { type FlowBackend, type FlowChanges, type PacketIn, SwitchRefusedError, appendAll, changeCount, emptyChanges } from './backend.js';
import { ConjunctionIds, TrackingContext, arpInput, bindingInput, listInput, newZoneIds, resourceInput } from './build-context.js';
import { type HostNetworking, NO_HOST_NETWORKING, elasticIpMac, hostExternalMac, patchPorts } from './external.js';
import { NextHopResolver, gratuitousArp } from './next-hop-resolver.js';
import { DependencyIndex } from './dependencies.js';
import { DEFAULT_DHCP, DhcpHandler, type DhcpSettings } from './dhcp-handler.js';
import { DesiredFlows, type FlowSlot, type InstalledFlows, type Touched, activeOf, newTouched, unpack } from './desired.js';
import { type Feature, OwnerBuilder, ownerName } from './feature.js';
import { FeatureRegistry } from './features.js';
import { DirtyOwners } from './dirty-owners.js';
import { type Flow, type Group, type Meter, actionsKey, bridgeOf, canonicalMatch, cookieFor, eq, flowKey, makeFlowKey, namedFlowKey, objectKey, programmerOf, reg, sameGroup, sameMeter } from './flow.js';
import type { ResourceEvent, ResourceView } from './model.js';
import type { PortBindings } from './bindings.js';
import { CARRIED_NETWORK_TYPES, Topology } from './topology.js';
import { BRIDGE, OFPP_NORMAL, PRIORITY, REGISTERS, TABLES, TUNNEL_PORTS } from './pipeline.js';
import { ETH_TYPE, ipv4Value } from './fields.js';
import { OnDemandEngine, PuntLimiter } from './on-demand.js';
import { DEFAULT_ZETA_OAM, ZetaOamHandler } from './zeta-oam.js';

export interface DataplaneLog {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

/** What the switch holds, as far as the agent knows: only what it confirmed. */
export class Installed {
  /** Flows by key: the installed halves of the desired table's slots (one map for both). */
  readonly flows: InstalledFlows;
  /** By objectKey (the id, prefixed with the bridge off br-int). */
  readonly groups = new Map<string, Group>();
  readonly meters = new Map<string, Meter>();

  constructor(desired: DesiredFlows) {
    this.flows = desired.installed;
  }

  get size(): number {
    return this.flows.size;
  }

  clear(): void {
    this.flows.clear();
    this.groups.clear();
    this.meters.clear();
  }
}

/** Punts a VM port may make the agent handle (ARP misses, DHCP, on-demand), per second and in a burst. */
export const VM_PUNT_RATE = { rate: 50, burst: 100 };
/** OAM packets from Zeta gateway nodes arrive on the tunnel ports: one per new connection. */
export const TUNNEL_PUNT_RATE = { rate: 2000, burst: 4000 };
const TUNNEL_OFPORTS = new Set<number>(Object.values(TUNNEL_PORTS).map((t) => t.ofport));

/** The flows a diff adds or modifies, with their slots, in the same order. */
interface Held {
  readonly slots: FlowSlot[];
  readonly flows: Flow[];
}

/** The refused-owner key for removals nobody owns any more. */
const REMOVED = '(removed flows)';
/** A change whose flows took longer than this to build yields to the event loop before its commit. */
const BUILD_YIELD_MS = 8;
/** Commits one refusal may cost in bisection before the parts still refused fail whole. */
const BISECT_BUDGET = 64;

const NO_ZONES: ReadonlyMap<string, number> = new Map();

/** Backoff for refused work: 0.5 s doubling to 30 s. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

/** Every owner a full computation has, by feature. */
function* allOwnerKeys(registry: FeatureRegistry, view: ResourceView, topology: Topology): Iterable<[Feature, string]> {
  for (const f of registry.features) {
    if ('singleton' in f.owners) yield [f, ''];
    else if ('resource' in f.owners) for (const r of view.list(f.owners.resource)) yield [f, r.key];
    else for (const k of f.owners.aggregate.all(view, topology)) yield [f, k];
  }
}

export class FlowDataplane implements Dataplane {
  readonly name: string;
  readonly networkTypes = CARRIED_NETWORK_TYPES;
  readonly desired = new DesiredFlows();
  readonly installed = new Installed(this.desired);
  readonly registry: FeatureRegistry;
  private readonly deps = new DependencyIndex();
  private readonly conj = new ConjunctionIds();
  private readonly zones = newZoneIds();
  /** External next hops' MACs, learned by ARP (docs/nat.md). */
  readonly nextHops: NextHopResolver;
  private topology: Topology | null = null;
  private view: ResourceView | null = null;
  private tracker: TrackingContext | null = null;
  /** One builder for every owner rebuilt (reset between them). */
  private builder: OwnerBuilder | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Per large change applied in chunks: owners its chunks made dirty that no event of theirs owns
   * (a network's flood list, readers of topics), rebuilt once with its last chunk, and the events
   * that reached them (to say who fails if the switch refuses them then).
   */
  private readonly deferred = new Map<object, { owners: Set<string>; events: ResourceEvent[]; topics: (string[] | undefined)[] }>();
  /** Ports reported PENDING, for the late-completion log. */
  private readonly pending = new Set<string>();
  /** Owners whose objects the switch refused: owner → the switch's reason. Retried with backoff. */
  readonly refused = new Map<string, string>();
  private retryTimer: NodeJS.Timeout | null = null;
  /** A commit failed for another reason than a refusal: the retry compares everything. */
  private resync = false;
  private retryDelay = RETRY_MIN_MS;
  private closed = false;
  /** Commits sent to the backend (bisection included), for tests and metrics. */
  commits = 0;

  readonly dhcp: DhcpHandler;
  /** Zeta OAM packets to direct paths (docs/zeta.md). */
  readonly zetaOam: ZetaOamHandler;
  /** Unknown destinations asked about (docs/on-demand.md); its controller is set by the agent. */
  readonly onDemand: OnDemandEngine;
  /** Per input port token buckets, before any packet-in handler (VM ports: PUNT_RATE; tunnels: OAM). */
  readonly puntLimiter = new PuntLimiter((inPort) => (TUNNEL_OFPORTS.has(inPort) ? TUNNEL_PUNT_RATE : VM_PUNT_RATE));
  /** Packet-ins by cause (`limited`: dropped by the port's token bucket before any handler). */
  readonly punts = { arpMiss: 0, dhcp: 0, nextHopArp: 0, zetaOam: 0, onDemand: 0, limited: 0, other: 0 };
  /** Every bridge it programs: br-int, the ones asked for, and the bridge-mapped ones. */
  readonly bridges: readonly string[];
  /** The host's bridge-mapping names: a router's external network must be one of them. */
  readonly externalNetworks: ReadonlySet<string>;

  /**
   * bridges: the external bridges besides br-int whose pipelines features may program (from
   * bridge mappings, with SNAT); the backend creates or adopts each at start.
   */
  constructor(
    readonly backend: FlowBackend, private readonly log?: DataplaneLog, dhcp: DhcpSettings = DEFAULT_DHCP, registry = new FeatureRegistry(),
    bridges: readonly string[] = [BRIDGE], readonly host: HostNetworking = NO_HOST_NETWORKING,
  ) {
    this.bridges = [...new Set([BRIDGE, ...bridges, ...[...host.externals.values()].map((e) => e.bridge)])];
    this.externalNetworks = new Set(host.externals.keys());
    this.nextHops = new NextHopResolver((ips) => void this.rebuildReaders(ips.map(arpInput)), log);
    this.nextHops.attach(backend.packets);
    this.name = backend.name;
    this.registry = registry;
    this.dhcp = new DhcpHandler(dhcp, log);
    this.zetaOam = new ZetaOamHandler(DEFAULT_ZETA_OAM, log);
    this.onDemand = new OnDemandEngine((fn) => this.serialized(fn), undefined, log, {
      // The neighbors the controller pushed for a destination: the owners of its ARP answer.
      ownersOf: (vni, ip) => this.desired.flowOwners(makeFlowKey(TABLES.ARP_RESPONDER.id, PRIORITY.match, canonicalMatch([
        reg(REGISTERS.network, vni), eq('dl_type', ETH_TYPE.arp), eq('arp_tpa', ipv4Value(ip)), eq('arp_op', 1),
      ]))).filter((o) => o.startsWith('neighbor:')),
      // What its unicast flows (remote_l2, the neighbor's cookie) carried.
      packets: async (owner) => {
        if (!this.backend.flowPackets) return null;
        const counts = await this.backend.flowPackets(TABLES.REMOTE_L2.id, cookieFor('neighbor', owner));
        if (counts.size === 0) return null;
        let n = 0n;
        for (const c of counts.values()) n += c;
        return n;
      },
    });
    backend.onBindingsChanged((ids) => void this.rebind(ids));
    backend.packets?.onPacketIn((p) => this.packetIn(p));
    backend.onSwitchReset?.(() => void this.reinstall());
  }

  /** Why the pipeline sent a packet up is in the cookie of the flow that did it. */
  private packetIn(p: PacketIn): void {
    const io = this.backend.packets;
    // br-int's ports (VMs, tunnels) have buckets; external bridges punt only ARP replies of next hops.
    if ((p.bridge === undefined || p.bridge === BRIDGE) && !this.puntLimiter.take(p.inPort)) {
      this.punts.limited += 1;
      return;
    }
    switch (programmerOf(p.cookie)) {
      case 'dhcp':
        this.punts.dhcp += 1;
        if (this.view && this.topology && io) this.dhcp.handle(p, this.view, this.topology, this.backend.bindings, io);
        break;
      case 'nat':
        this.punts.nextHopArp += 1;
        this.nextHops.learn(p.data);
        break;
      case 'arp':
        // An ARP request nothing here answers: the controller is asked (on demand).
        this.punts.arpMiss += 1;
        this.onDemand.handle(p, io);
        break;
      case 'onDemand':
        this.punts.onDemand += 1;
        this.onDemand.handle(p, io);
        break;
      case 'zeta':
        // In commit order: validated against the state the switch holds, never racing a purge.
        this.punts.zetaOam += 1;
        if (this.backend.transient) void this.serialized(() => (this.view && this.topology ? this.zetaOam.handle(p, this.zetaContext()) : Promise.resolve())).catch((e: unknown) => this.log?.warn('Zeta OAM failed', { error: String(e) }));
        break;
      default:
        this.punts.other += 1;
    }
  }

  private zetaContext() {
    return { view: this.view!, topology: this.topology!, backend: this.backend };
  }

  /** Started (bound to its view): later changes may come in chunks of their events. */
  get chunkable(): boolean {
    return this.view !== null && this.topology !== null;
  }

  /**
   * Indexes for a view. A new view gets them built from what it holds, which already includes
   * the changes being applied (the store changes before the dataplane hears of it).
   */
  private bind(view: ResourceView): boolean {
    if (this.view === view && this.topology !== null) return false;
    this.view = view;
    this.topology = Topology.of(view);
    this.tracker = new TrackingContext(view, this.topology, this.backend.bindings, this.conj, this.host, this.zones, this.nextHops.resolved);
    return true;
  }

  /**
   * Bridge, tunnel ports, then everything the view wants. When the backend can read the switch
   * back (an agent restart on a running switch), what it holds is adopted: unchanged flows stay
   * untouched (no churn, counters keep counting) and only the difference is committed.
   */
  async start(view: ResourceView): Promise<void> {
    await this.backend.start(this.bridges, patchPorts(this.host));
    this.bind(view);
    await this.serialized(async () => {
      const touched = this.computeAll();
      const foreign = await this.adopt();
      this.touchInstalled(touched);
      await this.reconcile(touched, foreign);
    });
  }

  /**
   * Take what the switch holds as installed (when the backend can read it back), so the next
   * reconcile sends only the difference. Returns the foreign objects, to be deleted by it.
   */
  private async adopt(): Promise<FlowChanges | undefined> {
    if (!this.backend.readBack) {
      this.installed.clear();
      return undefined;
    }
    // Read first: a failed read leaves what was known, not an empty table.
    const read = await this.backend.readBack();
    // br-int is the agent's alone: everything on it is adopted or deleted. An external bridge is
    // shared with the host (its uplink flows): only flows with one of our cookies are ours.
    const ours = (o: { bridge?: string; cookie?: bigint }): boolean => bridgeOf(o) === BRIDGE || (o.cookie !== undefined && programmerOf(o.cookie) !== undefined);
    const onBrInt = (o: { bridge?: string }): boolean => bridgeOf(o) === BRIDGE;
    // Groups and meters have no cookie: off br-int they are ours when we want one with that id.
    const group = (g: Group): boolean => onBrInt(g) || this.desired.activeGroup(objectKey(g)) !== undefined;
    const meter = (m: Meter): boolean => onBrInt(m) || this.desired.activeMeter(objectKey(m)) !== undefined;
    const held = {
      flows: read.flows.filter(ours), groups: read.groups.filter(group), meters: read.meters.filter(meter),
      foreign: read.foreign && { flows: read.foreign.flows.filter(onBrInt), groups: read.foreign.groups.filter(onBrInt), meters: read.foreign.meters.filter(onBrInt) },
    };
    this.installed.clear();
    for (const f of held.flows) this.installed.flows.set(flowKey(f), f);
    for (const g of held.groups) this.installed.groups.set(objectKey(g), g);
    for (const m of held.meters) this.installed.meters.set(objectKey(m), m);
    const foreign = held.foreign;
    const count = foreign ? foreign.flows.length + foreign.groups.length + foreign.meters.length : 0;
    if (held.flows.length + held.groups.length > 0 || count > 0) {
      this.log?.info('adopted what the switch holds', { flows: held.flows.length, groups: held.groups.length, meters: held.meters.length, foreign: count });
    }
    if (!foreign || count === 0) return undefined;
    const c = emptyChanges();
    appendAll(c.remove, foreign.flows);
    appendAll(c.groups.remove, foreign.groups);
    appendAll(c.meters.remove, foreign.meters);
    return c;
  }

  private touchInstalled(touched: Touched): void {
    // Every slot: what is wanted (rebuilt or not) and what is held.
    this.desired.touchAllFlows(touched);
    for (const id of this.installed.groups.keys()) touched.groups.add(id);
    for (const id of this.installed.meters.keys()) touched.meters.add(id);
  }

  /** Every owner rebuilt from the view (start, or a dataplane that never saw the view). */
  private computeAll(): Touched {
    const touched = newTouched();
    for (const [feature, key] of allOwnerKeys(this.registry, this.view!, this.topology!)) this.rebuild(feature, key, touched);
    return touched;
  }

  apply(events: readonly ResourceEvent[], view: ResourceView, chunk?: Chunk): Promise<Map<string, ResourceOutcome>> {
    return this.serialized(async () => {
      const started = performance.now();
      const fresh = this.bind(view);
      // The NAT zones the change may flush, read before rebuilding can free them.
      const natZones = fresh || this.host.externals.size === 0 ? NO_ZONES : this.natZones(events);
      let touched: Touched;
      /** Per event, the topology topics it raised (most raise none), to say who dirtied what. */
      const eventTopics: (string[] | undefined)[] = [];
      /** Owners left from this change's earlier chunks, rebuilt now (the last chunk). */
      let earlier: { owners: Set<string>; events: ResourceEvent[]; topics: (string[] | undefined)[] } | undefined;
      if (fresh) {
        touched = this.computeAll();
        this.touchInstalled(touched);
        if (chunk) this.deferred.delete(chunk.batch);
      } else {
        const topics = new Set<string>();
        const scratch = new Set<string>();
        for (let i = 0; i < events.length; i++) {
          const e = events[i]!;
          this.topology!.update(e, scratch);
          if (scratch.size === 0) continue;
          eventTopics[i] = [...scratch];
          for (const t of scratch) topics.add(t);
          scratch.clear();
        }
        // In the order found: per event its own owners (known by feature and key, not parsed back
        // from their names), the aggregates it creates and who read it; then who read a topic.
        const dirty = new DirtyOwners();
        for (let i = 0; i < events.length; i++) this.dirtyOf(events[i]!, dirty);
        for (const t of topics) this.deps.readersOf(t, dirty);
        if (chunk) {
          let later = this.deferred.get(chunk.batch);
          // Routers and ports (north-south: NAT zones flushed, next hops resolved) are rare in a
          // large change; a chunk holding one rebuilds everything now, what was deferred too, so
          // their flows and their connection flushes stay in step.
          if (!chunk.last && !events.some((e) => e.kind === 'router' || e.kind === 'port')) {
            // Owners no event of this chunk owns wait for the last chunk: a network's flood list
            // of thousands of hosts is built once per change, not once per chunk.
            if (!later) this.deferred.set(chunk.batch, (later = { owners: new Set(), events: [], topics: [] }));
            for (const o of dirty.keepOwn()) later.owners.add(o);
            for (const [i, e] of events.entries()) {
              later.events.push(e);
              later.topics.push(eventTopics[i]);
            }
          } else if (later) {
            this.deferred.delete(chunk.batch);
            for (const o of later.owners) dirty.add(o);
            earlier = later;
          }
        }
        try {
          touched = this.rebuildOwners(dirty);
        } catch (e) {
          // A feature failed to build (a programming error): what was rebuilt is compared later.
          this.resync = true;
          this.scheduleRetry();
          throw e;
        }
      }
      // A long build (a large change's last chunk rebuilding a network's flood list of thousands
      // of hosts) and its commit are two turns of the event loop, not one: health checks and
      // other goal states get in between.
      if (performance.now() - started > BUILD_YIELD_MS) await new Promise<void>((r) => setImmediate(r));
      const failed = await this.reconcile(touched);
      await this.northSouth(events, failed, natZones);
      // Direct paths never outlive the Zeta path of their network.
      if (this.zetaOam.size > 0) await this.zetaOam.sweep(this.zetaContext()).catch((e: unknown) => this.log?.warn('Zeta direct path purge failed', { error: String(e) }));
      const out = this.outcomes(events, failed, eventTopics);
      if (earlier && failed.size > 0) {
        // Owners rebuilt for the whole change and refused: the earlier chunks' resources that
        // reached them fail too.
        const theirs = new Map([...failed].filter(([o]) => earlier.owners.has(o)));
        if (theirs.size > 0) for (const [k, o] of this.outcomes(earlier.events, theirs, earlier.topics, false)) if (!out.has(k)) out.set(k, o);
      }
      return out;
    });
  }

  /** Owners one store change makes dirty: the resource's own owners and whoever read it. */
  private dirtyOf(e: ResourceEvent, dirty: DirtyOwners): void {
    // Indexed loops: this runs per event, and cold code makes an iterator result per for-of step.
    const mine = this.registry.byResource.get(e.kind);
    if (mine) for (let i = 0; i < mine.length; i++) dirty.add(ownerName(mine[i]!, e.key), mine[i], e.key);
    this.addAggregates(e, dirty);
    this.deps.readersOf(resourceInput(e.kind, e.key), dirty);
    this.deps.readersOf(listInput(e.kind), dirty);
  }

  /** The owners a resource itself makes: its per-resource owners and the aggregates it creates. */
  private addOwnOwners(e: ResourceEvent, out: Set<string>): Set<string> {
    const own = this.registry.byResource.get(e.kind);
    if (own) for (let i = 0; i < own.length; i++) out.add(ownerName(own[i]!, e.key));
    return this.addAggregates(e, out);
  }

  /** The aggregate owners a change creates (a network's flood list when its first port comes). */
  private addAggregates<T extends { add(owner: string): unknown }>(e: ResourceEvent, out: T): T {
    const aggregates = this.registry.aggregates;
    for (let i = 0; i < aggregates.length; i++) {
      const f = aggregates[i]!;
      for (const k of f.owners.aggregate.created(e)) out.add(ownerName(f, k));
    }
    return out;
  }

  /** Rebuild these owners from the current view; what they changed. */
  private rebuildOwners(owners: DirtyOwners): Touched {
    const touched = newTouched();
    owners.each((owner, feature, key) => this.rebuild(feature, key, touched, owner), this.registry);
    return touched;
  }

  /** Rebuild one owner from the current view and record what it read. */
  private rebuild(feature: Feature, key: string, touched: Touched, owner = ownerName(feature, key)): void {
    const tracker = this.tracker!;
    tracker.begin(owner, 'resource' in feature.owners ? feature.owners.resource : null, key);
    const out = (this.builder ??= new OwnerBuilder(feature, owner)).reset(feature, owner);
    try {
      feature.build(tracker, key, out);
    } finally {
      this.deps.set(owner, tracker.end());
    }
    this.desired.set(owner, out.output(), touched);
  }

  /** Resources whose flows the switch refused answer FAILURE; unbound ports PENDING. */
  private outcomes(events: readonly ResourceEvent[], failed: Map<string, string>, eventTopics: readonly (string[] | undefined)[] = [], pending = true): Map<string, ResourceOutcome> {
    const outcomes = new Map<string, ResourceOutcome>();
    if (failed.size > 0) {
      // A resource fails for its own owners. An owner no resource owns (a flood list) fails the
      // resources whose change reached it: it reads the resource, or a topic the change raised.
      // Refused removals fail the resources that were removed or left with nothing installed.
      const own = events.map((e) => this.addOwnOwners(e, new Set()));
      const claimed = new Set(own.flatMap((o) => [...o]));
      const unclaimed = [...failed.keys()].filter((o) => !claimed.has(o) && o !== REMOVED);
      for (const [i, e] of events.entries()) {
        const mine = new Set([...own[i]!].filter((o) => failed.has(o)));
        for (const o of unclaimed) {
          const inputs = this.deps.inputsOf(o);
          if (inputs.includes(resourceInput(e.kind, e.key)) || eventTopics[i]?.some((t) => inputs.includes(t))) mine.add(o);
        }
        if (failed.has(REMOVED) && (e.type === 'removed' || [...own[i]!].some((o) => !this.desired.hasOutput(o)))) mine.add(REMOVED);
        if (mine.size > 0) {
          const id = e.type === 'removed' ? e.before.id : e.after.id;
          const reasons = [...mine].map((o) => `${o}: ${failed.get(o)}`);
          outcomes.set(outcomeKey(e.kind, id), { status: 'FAILURE', detail: `the switch refused the flows of ${reasons.join('; ')} (retried until it takes them)` });
        }
      }
    }
    if (!pending) return outcomes;
    for (const e of events) {
      if (e.kind !== 'port' || e.type === 'removed') {
        if (e.kind === 'port') this.pending.delete(e.key);
        continue;
      }
      const key = outcomeKey('port', e.after.id);
      if (outcomes.has(key)) continue;
      if (this.backend.bindings.ofport(e.key) === undefined) {
        this.pending.add(e.key);
        outcomes.set(key, {
          status: 'PENDING',
          detail: `interface for port ${e.key} (external_ids:iface-id=${e.key} or ${e.after.ifaceName}) is not on ${this.name} yet; programmed when it appears`,
        });
      }
    }
    return outcomes;
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * The difference between desired and installed over the touched keys; `held` gets the slot of
   * each flow added or modified and the flow, in order (recorded through it once the switch confirms).
   */
  private diff(touched: Touched, held: Held): FlowChanges {
    const c = emptyChanges();
    const slots = touched.flows;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      const kept = activeOf(slot);
      const have = slot.installed;
      if (!kept) {
        if (have) c.remove.push(unpack(have));
        continue;
      }
      // A new cookie needs an add (it replaces the flow whole); modify_strict keeps the old one.
      const to = !have || kept.cookie !== have.cookie ? c.add
        : kept !== have && actionsKey(kept.actions) !== actionsKey(have.actions) ? c.modify : null;
      if (to === null) {
        // Alike: one packed object for both from now on (a rebuild's or a read-back's whole flow
        // goes), standing in the map for the slot (one opened by a touch closes again). Compared
        // just above, so not again.
        this.desired.settle(slot, true);
        continue;
      }
      const want = unpack(kept);
      to.push(want);
      held.slots.push(slot);
      held.flows.push(want);
    }
    for (const id of touched.groups) diffObject(this.desired.activeGroup(id), this.installed.groups.get(id), sameGroup, c.groups);
    for (const id of touched.meters) diffObject(this.desired.activeMeter(id), this.installed.meters.get(id), sameMeter, c.meters);
    return c;
  }

  /**
   * Commit the difference. When the switch refuses the bundle, split it by owner and bisect, so
   * every owner the switch accepts is installed and only the refused ones fail (and are retried
   * later). Returns the refused owners with the switch's reason. Any other error (the switch
   * unreachable, a timeout) rejects and schedules a full comparison: what was confirmed before
   * it stays recorded, nothing else is.
   */
  private async reconcile(touched: Touched, extra?: FlowChanges): Promise<Map<string, string>> {
    const held: Held = { slots: [], flows: [] };
    const changes = this.diff(touched, held);
    if (extra) {
      // Foreign flows go first: an ordered bundle deletes them before adding ours on the same match.
      changes.remove = [...extra.remove, ...changes.remove];
      appendAll(changes.groups.remove, extra.groups.remove);
      appendAll(changes.meters.remove, extra.meters.remove);
    }
    const failed = new Map<string, string>();
    try {
      if (changeCount(changes) === 0) {
        // Nothing to send, but SUCCESS still means the switch holds it: not while it is away.
        if (this.backend.connected === false || this.resync) throw new Error(`the switch (${this.name}) cannot be reached; what it holds is compared again once it can`);
        return failed;
      }
      try {
        await this.commit(changes, held);
        return failed;
      } catch (e) {
        if (!(e instanceof SwitchRefusedError)) throw e;
        await this.bisect(this.splitByOwner(this.recordApplied(changes, e)), failed, { left: BISECT_BUDGET });
      }
    } catch (e) {
      this.resync = true;
      this.scheduleRetry();
      throw e;
    }
    for (const [owner, reason] of failed) this.refused.set(owner, reason);
    this.log?.warn('the switch refused flows; the rest is installed, the refused owners are retried', { owners: [...failed.keys()].slice(0, 20), count: failed.size, reason: [...failed.values()][0] });
    this.scheduleRetry();
    return failed;
  }

  /**
   * A refusal may come after other bridges took their bundles (OpenFlow has no bundle across
   * bridges): record those parts as installed and return the rest.
   */
  private recordApplied(changes: FlowChanges, e: SwitchRefusedError): FlowChanges {
    if (!e.applied || e.applied.length === 0) return changes;
    const applied = new Set(e.applied);
    this.record(onBridges(changes, (b) => applied.has(b)));
    return onBridges(changes, (b) => !applied.has(b));
  }

  /** `held`: the slots diff found for the flows added and modified (no lookup to record them). */
  private async commit(changes: FlowChanges, held?: Held): Promise<void> {
    this.commits += 1;
    await this.backend.commit(changes);
    this.record(changes, held);
  }

  /** What the switch confirmed becomes installed. */
  private record(changes: FlowChanges, held?: Held): void {
    const inst = this.installed;
    for (const f of changes.remove) inst.flows.delete(flowKey(f));
    if (held) {
      for (let i = 0; i < held.slots.length; i++) {
        const slot = held.slots[i]!;
        // Desired changes only inside the queue, so the slot still has its claim; were it dropped
        // during the commit (and the slot with it), the flow is recorded through the key.
        if (slot.claim !== undefined) {
          inst.flows.setIn(slot, held.flows[i]!);
          // The claim may have changed while the commit was in flight: compared again.
          this.desired.settle(slot, false);
        } else inst.flows.setThrough(flowKey(held.flows[i]!), slot, held.flows[i]!);
      }
    } else {
      for (const f of changes.modify) inst.flows.set(flowKey(f), f);
      for (const f of changes.add) inst.flows.set(flowKey(f), f);
    }
    for (const g of changes.groups.remove) inst.groups.delete(objectKey(g));
    for (const g of [...changes.groups.add, ...changes.groups.modify]) inst.groups.set(objectKey(g), g);
    for (const m of changes.meters.remove) inst.meters.delete(objectKey(m));
    for (const m of [...changes.meters.add, ...changes.meters.modify]) inst.meters.set(objectKey(m), m);
  }

  /** One change per owner (what nobody owns any more, removals, goes under REMOVED). */
  private splitByOwner(c: FlowChanges): [string, FlowChanges][] {
    const parts = new Map<string, FlowChanges>();
    const part = (owner: string): FlowChanges => {
      let p = parts.get(owner);
      if (!p) parts.set(owner, (p = emptyChanges()));
      return p;
    };
    const flowOwner = (f: Flow): string => this.desired.flowOwners(flowKey(f))[0] ?? REMOVED;
    for (const f of c.remove) part(flowOwner(f)).remove.push(f);
    for (const f of c.modify) part(flowOwner(f)).modify.push(f);
    for (const f of c.add) part(flowOwner(f)).add.push(f);
    const groupOwner = (g: Group): string => this.desired.groupOwners(objectKey(g))[0] ?? REMOVED;
    for (const g of c.groups.remove) part(groupOwner(g)).groups.remove.push(g);
    for (const g of c.groups.modify) part(groupOwner(g)).groups.modify.push(g);
    for (const g of c.groups.add) part(groupOwner(g)).groups.add.push(g);
    const meterOwner = (m: Meter): string => this.desired.meterOwners(objectKey(m))[0] ?? REMOVED;
    for (const m of c.meters.remove) part(meterOwner(m)).meters.remove.push(m);
    for (const m of c.meters.modify) part(meterOwner(m)).meters.modify.push(m);
    for (const m of c.meters.add) part(meterOwner(m)).meters.add.push(m);
    return [...parts];
  }

  /**
   * Commit what the switch takes, halving the refused part until single owners remain. Bounded:
   * once the budget of commits is spent (a table that refuses thousands of owners' flows), the
   * parts still refused fail whole with the last reason, so one fault never costs a bundle per
   * owner.
   */
  private async bisect(parts: [string, FlowChanges][], failed: Map<string, string>, budget: { left: number }): Promise<void> {
    if (parts.length === 0) return;
    let reason: string;
    try {
      budget.left -= 1;
      await this.commit(merge(parts.map(([, p]) => p)));
      return;
    } catch (e) {
      if (!(e instanceof SwitchRefusedError)) throw e;
      reason = e.reason;
      if (e.applied && e.applied.length > 0) {
        const rest = this.recordApplied(merge(parts.map(([, p]) => p)), e);
        parts = this.splitByOwner(rest);
      }
    }
    if (parts.length === 1 || budget.left <= 0) {
      for (const [owner] of parts) failed.set(owner, reason);
      return;
    }
    const half = Math.ceil(parts.length / 2);
    await this.bisect(parts.slice(0, half), failed, budget);
    await this.bisect(parts.slice(half), failed, budget);
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed || (this.refused.size === 0 && !this.resync)) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.serialized(() => this.retryRefused()).catch((e: unknown) => {
        this.log?.warn('retrying refused flows failed', { error: String(e) });
        this.scheduleRetry();
      });
    }, delay);
    this.retryTimer.unref();
  }

  /** Re-diff what the refused owners want; the switch converges once the fault clears. */
  private async retryRefused(): Promise<void> {
    const touched = newTouched();
    for (const owner of this.refused.keys()) {
      const out = this.desired.ownerKeys(owner);
      for (const key of out?.flows ?? []) this.desired.touchKey(touched, key);
      for (const g of out?.groups ?? []) touched.groups.add(objectKey(g));
      for (const m of out?.meters ?? []) touched.meters.add(objectKey(m));
    }
    let foreign: FlowChanges | undefined;
    // After an unreachable switch, or refused removals: compare everything, against what the
    // switch holds now when it can be read (it may have lost everything meanwhile).
    if (this.resync || this.refused.has(REMOVED)) {
      if (this.resync && this.backend.readBack) foreign = await this.adopt();
      this.resync = false;
      for (const g of this.desired.activeGroups()) touched.groups.add(objectKey(g));
      for (const m of this.desired.activeMeters()) touched.meters.add(objectKey(m));
      this.touchInstalled(touched);
    }
    // Whatever is still refused comes back from this reconcile.
    this.refused.clear();
    await this.reconcile(touched, foreign);
    if (this.refused.size === 0 && !this.resync) {
      this.retryDelay = RETRY_MIN_MS;
      this.log?.info('the switch holds everything the agent wants again');
    }
  }

  /**
   * The switch came back (OVS restarted, or the connection did): read back what it holds and
   * send the difference in one bundle — everything when it lost its flows, nothing when it kept
   * them. A backend that cannot read back gets everything.
   */
  async reinstall(): Promise<void> {
    await this.serialized(async () => {
      this.resync = false;
      this.refused.clear();
      const foreign = await this.adopt();
      const touched = newTouched();
      for (const g of this.desired.activeGroups()) touched.groups.add(objectKey(g));
      for (const m of this.desired.activeMeters()) touched.meters.add(objectKey(m));
      this.touchInstalled(touched);
      await this.reconcile(touched, foreign);
      this.log?.info('the switch holds what the agent wants again after a reset', { flows: this.installed.size });
    }).catch((e: unknown) => {
      // Not reachable again yet: the next reset (or the retry) tries again.
      this.resync = true;
      this.scheduleRetry();
      this.log?.warn('reinstalling after a switch reset failed', { error: String(e) });
    });
  }

  /** Router key → its conntrack zone now, for the routers a change's events touch (directly or through a port's elastic IPs). */
  private natZones(events: readonly ResourceEvent[]): Map<string, number> {
    const out = new Map<string, number>();
    const add = (router: string): void => {
      const z = this.zones.peek(`router:${router}`);
      if (z !== undefined) out.set(router, z);
    };
    for (const e of events) {
      if (e.kind === 'router') add(e.key);
      else if (e.kind === 'port' && e.type !== 'added') {
        for (const f of e.before.fixedIps) for (const r of this.topology?.routersOf(f.subnetId) ?? []) add(r);
      }
    }
    return out;
  }

  /**
   * After a commit: connections of removed NAT flushed, next hops to resolve by ARP (a router's
   * external gateway without a MAC) or forget, and a gratuitous ARP for each elastic IP that came
   * to this host (so the external network's switches and the upstream learn where it is now).
   */
  private async northSouth(events: readonly ResourceEvent[], failed: Map<string, string>, zones: ReadonlyMap<string, number>): Promise<void> {
    if (this.host.externals.size === 0) return;
    for (const e of events) {
      if (e.kind === 'router') {
        const before = e.type !== 'added' ? e.before.externalGateway : null;
        const after = e.type !== 'removed' ? e.after.externalGateway : null;
        // SNAT gone or changed: its connections go too (they would keep the old translation).
        if (before && (!after || JSON.stringify(before.snat) !== JSON.stringify(after.snat) || before.network !== after.network)) {
          const zone = zones.get(e.key);
          if (zone !== undefined) await this.flush(zone, {});
        }
        const ext = after ? this.host.externals.get(after.network) : undefined;
        if (before && before.nextHopMac === null && (!after || after.nextHopIp !== before.nextHopIp || after.nextHopMac !== null)) this.nextHops.drop(before.nextHopIp);
        if (after && ext && after.nextHopMac === null) {
          this.nextHops.want(after.nextHopIp, ext.bridge, after.snat[0]?.ip ?? '0.0.0.0', hostExternalMac(this.host.underlayIp));
        }
      } else if (e.kind === 'port') {
        // Elastic IPs taken away: their connections (either direction) are flushed from the
        // zone of the router they went through.
        const kept = new Set(e.type === 'removed' ? [] : e.after.elasticIps.map((x) => `${x.elasticIp}/${x.fixedIp}`));
        const prior = e.type === 'added' ? null : e.before;
        for (const old of prior?.elasticIps ?? []) {
          if (kept.has(`${old.elasticIp}/${old.fixedIp}`)) continue;
          const subnet = prior!.fixedIps.find((f) => f.ip === old.fixedIp)?.subnetId;
          for (const r of subnet === undefined ? [] : this.topology?.routersOf(subnet) ?? []) {
            const zone = zones.get(r);
            if (zone === undefined) continue;
            await this.flush(zone, { src: old.fixedIp });
            await this.flush(zone, { dst: old.elasticIp });
          }
        }
        if (e.type === 'removed') continue;
        const had = new Set(e.type === 'changed' ? e.before.elasticIps.map((x) => x.elasticIp) : []);
        if (failed.has(`eip:${e.key}`)) continue;
        this.announce(e.key, e.after.elasticIps.map((x) => x.elasticIp).filter((ip) => !had.has(ip)));
      }
    }
  }

  /**
   * A gratuitous ARP for each of a port's elastic IPs this host now answers for, out of the
   * external bridge that answers (nothing for one it does not: no gateway yet, port unbound).
   */
  private announce(portKey: string, eips: readonly string[]): void {
    const flows = this.desired.ownerOutput(`eip:${portKey}`)?.flows ?? [];
    for (const eip of eips) {
      const value = ipv4Value(eip);
      const answer = flows.find((f) => bridgeOf(f) !== BRIDGE && f.match.some((m) => m.field === 'arp_tpa' && m.value === value));
      if (!answer || !this.installed.flows.has(flowKey(answer))) continue;
      try {
        this.backend.packets?.packetOut(OFPP_NORMAL, gratuitousArp(elasticIpMac(eip), eip), bridgeOf(answer));
        this.garps += 1;
      } catch (err) {
        this.log?.warn('could not send a gratuitous ARP for an elastic IP', { eip, error: String(err) });
      }
    }
  }

  /** Conntrack flushes asked of the backend (removed NAT). */
  flushes = 0;

  private async flush(zone: number, filter: { src?: string; dst?: string }): Promise<void> {
    if (!this.backend.flushConntrack) return;
    this.flushes += 1;
    try {
      await this.backend.flushConntrack(zone, filter);
    } catch (err) {
      this.log?.warn('flushing conntrack entries of removed NAT failed', { zone, ...filter, error: String(err) });
    }
  }

  /** Gratuitous ARPs sent for elastic IPs that came to this host. */
  garps = 0;

  /**
   * Run `fn` while nothing else commits (in the dataplane's own queue): a read of the switch and
   * of `installed` inside it see the same moment, even with a retry timer about to fire.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.serialized(fn);
  }

  /** Resolves once everything queued so far (goal states, rebinds, resolved MACs) is done. */
  settled(): Promise<void> {
    return this.queue.then(() => undefined);
  }

  /** Rebuild the owners that read these inputs (runtime facts that changed: a resolved MAC) and commit. */
  private async rebuildReaders(inputs: string[]): Promise<void> {
    if (!this.view) return;
    try {
      await this.serialized(async () => {
        const dirty = new DirtyOwners();
        for (const i of inputs) this.deps.readersOf(i, dirty);
        if (dirty.size === 0) return;
        await this.reconcile(this.rebuildOwners(dirty));
      });
    } catch (e) {
      this.log?.warn('reprogramming after a change on the host failed', { inputs, error: String(e) });
    }
  }

  /** Interfaces appeared or left: program their ports now and say so. */
  private async rebind(keys: string[]): Promise<void> {
    const view = this.view;
    if (!view) return;
    const names = new Set(keys);
    const portIds = new Set<string>();
    for (const k of keys) if (view.get('port', k)) portIds.add(k);
    for (const p of view.list('port')) if (names.has(p.ifaceName)) portIds.add(p.id);
    if (portIds.size === 0) return;
    try {
      await this.serialized(async () => {
        const dirty = new DirtyOwners();
        for (const id of portIds) this.deps.readersOf(bindingInput(id), dirty);
        // A port that never read its binding (it had no subnet then) is rebuilt as well.
        for (const f of this.registry.byResource.get('port') ?? []) for (const id of portIds) dirty.add(ownerName(f, id), f, id);
        await this.reconcile(this.rebuildOwners(dirty));
      });
      // An elastic IP of a port bound only now is announced now.
      if (this.host.externals.size > 0) for (const id of portIds) this.announce(id, view.get('port', id)?.elasticIps.map((x) => x.elasticIp) ?? []);
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
  static recompute(view: ResourceView, bindings: PortBindings, registry = new FeatureRegistry(), host: HostNetworking = NO_HOST_NETWORKING, resolved?: ReadonlyMap<string, string>): DesiredFlows {
    const topology = Topology.of(view);
    const tracker = new TrackingContext(view, topology, bindings, new ConjunctionIds(), host, newZoneIds(), resolved);
    const desired = new DesiredFlows();
    const touched = newTouched();
    for (const [feature, key] of allOwnerKeys(registry, view, topology)) {
      const owner = ownerName(feature, key);
      tracker.begin(owner, null, '');
      const out = new OwnerBuilder(feature, owner);
      feature.build(tracker, key, out);
      tracker.end();
      desired.set(owner, out.output(), touched);
    }
    return desired;
  }

  /** Owners of the installed flows with a cookie, for naming the resource behind a trace step. */
  ownersOfCookie(cookie: bigint): string[] {
    const out = new Set<string>();
    for (const [key, c] of this.installed.flows.cookies()) {
      if (c !== cookie) continue;
      // A flow with a note (a security group rule) is named by it too.
      const note = this.desired.active(key)?.note;
      for (const o of this.desired.flowOwners(key)) out.add(note === undefined ? o : `${o} ${note}`);
    }
    return [...out];
  }

  /** Owners of an installed flow. */
  flowOwners(f: Flow): string[] {
    return this.desired.flowOwners(flowKey(f));
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
    return sortFlows([...this.installed.flows.values()]);
  }

  private forgetOnDemand: ((neighborKeys: string[]) => Promise<void>) | null = null;
  private idleTimer: NodeJS.Timeout | null = null;

  /**
   * On-demand entries go when idle (docs/on-demand.md): every `everyMs`, the neighbors the
   * controller pushed in answer to an on-demand question whose flows carried nothing for the idle
   * time are handed to `forget` (the agent deletes them from its store, which removes the flows).
   */
  expireOnDemand(forget: (neighborKeys: string[]) => Promise<void>, everyMs = 10_000): void {
    this.forgetOnDemand = forget;
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = setInterval(() => void this.expireIdleNow().catch((e: unknown) => this.log?.warn('on-demand idle expiry failed', { error: String(e) })), everyMs);
    this.idleTimer.unref();
  }

  /** One idle sweep now (the timer's work; tests call it): returns the neighbor keys forgotten. */
  async expireIdleNow(): Promise<string[]> {
    if (!this.forgetOnDemand || this.onDemand.watched === 0) return [];
    const owners = await this.serialized(() => this.onDemand.idleOwners());
    const keys = owners.map((o) => o.slice('neighbor:'.length));
    // Outside the commit queue: forgetting applies a change, which queues its own commit.
    if (keys.length > 0) await this.forgetOnDemand(keys);
    return keys;
  }

  close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.nextHops.close();
    return this.backend.close();
  }
}

function diffObject<T>(want: T | undefined, have: T | undefined, same: (a: T, b: T) => boolean, out: { add: T[]; modify: T[]; remove: T[] }): void {
  if (want && !have) out.add.push(want);
  else if (!want && have) out.remove.push(have);
  else if (want && have && !same(want, have)) out.modify.push(want);
}

/** The part of a change on the bridges `keep` picks. */
function onBridges(c: FlowChanges, keep: (bridge: string) => boolean): FlowChanges {
  const on = <T extends { bridge?: string }>(list: T[]): T[] => list.filter((o) => keep(bridgeOf(o)));
  return {
    add: on(c.add), modify: on(c.modify), remove: on(c.remove),
    groups: { add: on(c.groups.add), modify: on(c.groups.modify), remove: on(c.groups.remove) },
    meters: { add: on(c.meters.add), modify: on(c.meters.modify), remove: on(c.meters.remove) },
  };
}

function merge(parts: FlowChanges[]): FlowChanges {
  const c = emptyChanges();
  for (const p of parts) {
    appendAll(c.add, p.add);
    appendAll(c.modify, p.modify);
    appendAll(c.remove, p.remove);
    for (const k of ['groups', 'meters'] as const) {
      appendAll<unknown>(c[k].add, p[k].add);
      appendAll<unknown>(c[k].modify, p[k].modify);
      appendAll<unknown>(c[k].remove, p[k].remove);
    }
  }
  return c;
}

export function sortFlows(flows: Flow[]): Flow[] {
  const keys = new Map(flows.map((f) => [f, namedFlowKey(f)]));
  return flows.sort((a, b) => a.table - b.table || b.priority - a.priority || (keys.get(a)! < keys.get(b)! ? -1 : keys.get(a)! > keys.get(b)! ? 1 : 0));
}
