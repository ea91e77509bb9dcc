// Where flows go. The reconciler hands a backend the minimal change of one goal state as one
// unit; the backend applies it atomically (one bundle) or not at all.
import type { Flow, Group, Meter } from './flow.js';
import type { PortBindings } from './bindings.js';
import type { PatchEnd } from './external.js';

/** One kind of object's part of a change. */
export interface ObjectChanges<T> {
  add: T[];
  modify: T[];
  remove: T[];
}

/**
 * The minimal change of one commit. `add` also carries flows whose cookie changes: an add
 * replaces the flow with the same (table, priority, match) whole, where modify_strict would keep
 * the old cookie. The bundle orders it: group and meter adds and modifies, flow removes,
 * modifies and adds, then group and meter removes, so no flow ever points at a missing group.
 */
export interface FlowChanges extends ObjectChanges<Flow> {
  groups: ObjectChanges<Group>;
  meters: ObjectChanges<Meter>;
}

/** Appends a list to another; `push(...list)` overflows the call stack past ~100,000 elements. */
export function appendAll<T>(to: T[], from: readonly T[]): void {
  for (const x of from) to.push(x);
}

export const emptyChanges = (): FlowChanges => ({
  add: [], modify: [], remove: [],
  groups: { add: [], modify: [], remove: [] },
  meters: { add: [], modify: [], remove: [] },
});

/**
 * The switch refused a commit. Nothing of the refused bridge's bundle was applied; a commit
 * spanning several bridges may have applied the bundles of the bridges named in `applied`
 * (OpenFlow has no bundle across bridges) — backends that can do that set it.
 */
export class SwitchRefusedError extends Error {
  readonly applied?: readonly string[];

  constructor(message: string, readonly reason: string) {
    super(message);
  }
}

/** What the switch holds, read back (for adoption at start and for checking). */
export interface SwitchContents {
  flows: Flow[];
  groups: Group[];
  meters: Meter[];
  /**
   * What the switch holds that the model cannot express (another controller's flows, unknown
   * actions): never adopted, deleted by the next reconcile. Each can go as is into a remove list.
   */
  foreign?: { flows: Flow[]; groups: Group[]; meters: Meter[] };
}

/**
 * Transient flows: flows the agent installs on a packet's word (Zeta direct paths), with idle
 * timeouts, outside the desired state: the switch expires them, the reconciler never sees them
 * (a restart's adoption deletes what is left, as flows nobody wants). `purge` deletes every flow
 * of a table with exactly a cookie, whether or not it already expired.
 */
export interface TransientChanges {
  add: Flow[];
  remove: Flow[];
  purge: { table: number; cookie: bigint }[];
}

/** A packet the pipeline sent up (a `controller` action). */
export interface PacketIn {
  inPort: number;
  /** OpenFlow metadata: the network (VNI) in our pipeline. */
  metadata: bigint;
  /** Cookie of the flow that sent it: names the programmer, and so the reason. */
  cookie: bigint;
  data: Buffer;
  /** The bridge it came from; absent: br-int. */
  bridge?: string;
}

/** Packet-in and packet-out, for backends that have a switch to talk to. */
export interface PacketIo {
  onPacketIn(listener: (p: PacketIn) => void): void;
  /** Out of a port of br-int, or of `bridge` (OFPP_NORMAL: the bridge's own forwarding). */
  packetOut(outPort: number, frame: Buffer, bridge?: string): void;
  /** Run a frame through the pipeline from table 0 as if it came in on `inPort` (packet-out to TABLE). */
  packetOutToTable?(inPort: number, frame: Buffer): void;
}

const objectCount = (c: ObjectChanges<unknown>): number => c.add.length + c.modify.length + c.remove.length;
export const changeCount = (c: FlowChanges): number => objectCount(c) + objectCount(c.groups) + objectCount(c.meters);

/**
 * `ofproto/trace`'s arguments after the bridge for a trace spec: a flow string, or a packet given
 * as `in_port=N,HEX` or `in_port=N HEX` (which ofproto/trace takes as two arguments).
 */
export function traceArguments(spec: string): string[] {
  const m = /^(in_port=[^,\s]+)[,\s]+([0-9a-fA-F]+)$/.exec(spec.trim());
  return m ? [m[1]!, m[2]!] : [spec];
}

export interface FlowBackend {
  readonly name: string;
  readonly bindings: PortBindings;
  /**
   * The bridges exist when this resolves (created or adopted: br-int with its tunnel ports,
   * always; the external bridges the dataplane names). Every later commit and read-back covers
   * all of them; a commit touching several bridges is one atomic bundle per bridge. `patches`:
   * patch ports to create (or adopt) with their OpenFlow port numbers, joining br-int to the
   * external bridges.
   */
  start(bridges?: readonly string[], patches?: readonly PatchEnd[]): Promise<void>;
  /**
   * Apply all of it or none of it, in one atomic bundle; rejects with a SwitchRefusedError
   * carrying the switch's reason when the switch refused it (and other errors when the switch
   * could not be reached).
   */
  commit(changes: FlowChanges): Promise<void>;
  /**
   * False while the switch cannot be reached (absent: always reachable). A goal state that
   * changes no flow still may not answer SUCCESS then.
   */
  readonly connected?: boolean;
  /** Read every bridge's flows, groups and meters back (absent in dry-run); `bridge` set off br-int. */
  readBack?(): Promise<SwitchContents>;
  /**
   * The switch lost everything (OVS restarted, the connection came back): the listener is
   * called once the bridge and ports are there again, so the dataplane reinstalls all it wants.
   */
  onSwitchReset?(listener: () => void): void;
  /**
   * Interfaces that appeared, changed or went away (a VM's tap plugged in later): each key is
   * an `external_ids:iface-id` (a port id) or an interface name.
   */
  onBindingsChanged(listener: (keys: string[]) => void): void;
  /** Packet-ins and packet-outs (absent in dry-run). */
  readonly packets?: PacketIo;
  /** Packet counts of br-int's flows in a table with exactly this cookie, by flow key (absent in dry-run). */
  flowPackets?(table: number, cookie: bigint): Promise<Map<string, bigint>>;
  /** Transient flows on br-int, in one bundle (absent in dry-run). */
  transient?(changes: TransientChanges): Promise<void>;
  /**
   * Forget conntrack entries of a zone whose original direction is from `src` and/or to `dst`
   * (IPv4; absent: any): NAT that was removed must not keep translating (absent: the backend
   * has no conntrack).
   */
  flushConntrack?(zone: number, filter: { src?: string; dst?: string }): Promise<void>;
  /** `ofproto/trace` of a flow string or `in_port=N,HEX` packet, in OVS's format (when the backend has a switch). */
  trace?(spec: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * Touches nothing. Every port is taken as bound, to an OpenFlow port numbered in order of
 * first sight (1, 2, …), so what it renders is what a switch would get.
 */
export class DryRunBackend implements FlowBackend {
  readonly name = 'dry-run';
  commits = 0;
  private readonly ofports = new Map<string, number>();
  readonly bindings: PortBindings = {
    ofport: (portId) => {
      let n = this.ofports.get(portId);
      if (n === undefined) this.ofports.set(portId, (n = this.ofports.size + 1));
      return n;
    },
  };

  start(): Promise<void> {
    return Promise.resolve();
  }

  commit(_changes: FlowChanges): Promise<void> {
    this.commits += 1;
    return Promise.resolve();
  }

  onBindingsChanged(): void {}

  close(): Promise<void> {
    return Promise.resolve();
  }
}
