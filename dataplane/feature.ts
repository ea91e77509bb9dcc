// What a feature is: a pure function from the desired state to the flows, groups and meters of
// each of its owners, plus which owners exist. Features read the state only through the build
// context, which records every read in the dependency index (dependencies.ts), so a feature
// never says what makes it dirty. Flows are checked against their table's declaration when they
// are built (a wrong field fails here, naming the feature and the owner, not in the switch).
import { FIELDS, type FieldName } from './fields.js';
import { type Action, type Flow, FlowBuildError, type Group, type MatchField, type Meter, canonicalMatch, cookieFor, makeFlowKey } from './flow.js';
import type { OwnerOutput } from './desired.js';
import type { Kind, ResourceEvent, ResourceView } from './model.js';
import type { ProgrammerName, TableSpec } from './pipeline.js';
import type { PortBindings } from './bindings.js';
import type { Subnet } from './model.js';
import type { HostNetworking } from './external.js';

/** The topology indexes a feature may read (each read is a dependency). */
export interface TopologyReader {
  subnetsOfVni(vni: number): Subnet[];
  remoteHostsOf(subnetId: string): Iterable<string>;
  portsOf(subnetId: string): Iterable<string>;
  /** Members of a security group: `port:<key>` and `neighbor:<key>` (topic `sg-members:<id>`). */
  groupMembers(groupId: string): Iterable<string>;
  /** Whether a router joins the subnet (read as part of the subnet: `subnet:<id>`). */
  routed(subnetId: string): boolean;
  /** Keys of the routers that join the subnet (read as part of the subnet: `subnet:<id>`). */
  routersOf(subnetId: string): Iterable<string>;
}

/** What a feature may read while it builds an owner. */
export interface BuildContext {
  readonly view: ResourceView;
  readonly topology: TopologyReader;
  readonly bindings: PortBindings;
  /** A conjunction id for a name, stable while any owner uses the name. */
  conjunctionId(name: string): number;
  /** A conntrack zone for a name (a router's NAT), stable while any owner uses the name. */
  zoneId(name: string): number;
  /** The host's bridge mappings and underlay address (static: not an input). */
  readonly host: HostNetworking;
  /** The MAC the agent resolved for an external next hop by ARP (input `arp:<ip>`). */
  resolvedMac(ip: string): string | undefined;
}

export type Owners =
  /** One owner per store resource of a kind; the owner key is the store key. */
  | { readonly resource: Kind }
  /** Owners that aggregate several resources (a network's flood list, ...). */
  | {
      readonly aggregate: {
        /** Every owner key the state has (for a full computation). */
        all(view: ResourceView, topology: TopologyReader): Iterable<string>;
        /** Owner keys a store change may bring into existence (the rest follow from reads). */
        created(e: ResourceEvent): Iterable<string>;
      };
    }
  /** One owner, always there (the fixed pipeline flows). */
  | { readonly singleton: true };

export interface Feature {
  /** Unique name, for logs and docs. */
  readonly name: string;
  /** Owner prefix: owners are `<namespace>:<key>` (a singleton's is `<namespace>`). */
  readonly namespace: string;
  /** Cookie programmer of its flows (a flow may name another: ARP entries of a port). */
  readonly programmer: ProgrammerName;
  readonly purpose: string;
  readonly owners: Owners;
  build(ctx: BuildContext, key: string, out: OwnerBuilder): void;
}

export const ownerName = (feature: Pick<Feature, 'namespace' | 'owners'>, key: string): string =>
  'singleton' in feature.owners ? feature.namespace : `${feature.namespace}:${key}`;

/** Shared by the owners that have no groups or meters (almost all): never written to. */
const NONE: readonly never[] = Object.freeze([]);

/** Collects an owner's objects and checks each flow against its table. */
export class OwnerBuilder {
  readonly flows: Flow[] = [];
  private groupList: Group[] | null = null;
  private meterList: Meter[] | null = null;
  /** The cookie of the feature's own programmer (most flows), and of others when asked. */
  private ownCookie: bigint | null = null;
  /** Another programmer's cookie (owners almost always use one other at most: a neighbor's ARP entries). */
  private otherProgrammer: ProgrammerName | null = null;
  private otherCookie = 0n;
  private moreCookies: Map<ProgrammerName, bigint> | null = null;
  /** Conjunction-only flows by key (index in `flows`), to merge an owner's own clauses. */
  private conjunctionFlows: Map<string, number> | null = null;

  constructor(public feature: Feature, public owner: string) {}

  /**
   * Start again for another owner: the dataplane builds its owners one after another with one
   * builder (ten thousand neighbors made ten thousand builders and flow arrays to throw away).
   */
  reset(feature: Feature, owner: string): this {
    this.feature = feature;
    this.owner = owner;
    this.flows.length = 0;
    this.groupList = this.meterList = null;
    this.ownCookie = this.otherProgrammer = this.moreCookies = this.conjunctionFlows = null;
    return this;
  }

  private cookie(p: ProgrammerName): bigint {
    if (p === this.feature.programmer) return (this.ownCookie ??= cookieFor(p, this.owner));
    if (p === this.otherProgrammer) return this.otherCookie;
    if (this.otherProgrammer === null) {
      this.otherProgrammer = p;
      return (this.otherCookie = cookieFor(p, this.owner));
    }
    this.moreCookies ??= new Map();
    let c = this.moreCookies.get(p);
    if (c === undefined) this.moreCookies.set(p, (c = cookieFor(p, this.owner)));
    return c;
  }

  /**
   * One flow. `note` names what the flow stands for within its owner (a security group rule):
   * the flow then gets a cookie of its own, so a trace can name it, and carries the note.
   */
  flow(table: TableSpec, priority: number, match: MatchField[], actions: readonly Action[], programmer: ProgrammerName = this.feature.programmer, note?: string): void {
    try {
      checkMatch(table, match);
    } catch (e) {
      throw new FlowBuildError(`feature ${this.feature.name}, owner ${this.owner}: table ${table.id} (${table.name}): ${(e as Error).message}`);
    }
    const m = canonicalMatch(match);
    const cookie = note === undefined ? this.cookie(programmer) : cookieFor(programmer, `${this.owner}#${note}`);
    const key = makeFlowKey(table.id, priority, m, table.bridge);
    if (actions.length > 0 && actions.every((a) => a.type === 'conjunction')) {
      // Two clauses of this owner on one (table, priority, match): one flow with both.
      const at = (this.conjunctionFlows ??= new Map<string, number>()).get(key);
      if (at !== undefined) {
        const before = this.flows[at]!;
        this.flows[at] = { ...before, actions: [...before.actions, ...actions] };
        return;
      }
      this.conjunctionFlows.set(key, this.flows.length);
    }
    // Literals, not a spread of the optional bridge: a neighbor's ARP entry (a note) is made here
    // once per neighbor, and a spread is a slow path in code not yet optimized.
    if (note !== undefined) {
      if (table.bridge === undefined) this.flows.push({ table: table.id, priority, match: m, actions, cookie, key, owner: this.owner, note });
      else this.flows.push({ bridge: table.bridge, table: table.id, priority, match: m, actions, cookie, key, owner: this.owner, note });
    } else if (table.bridge === undefined) this.flows.push({ table: table.id, priority, match: m, actions, cookie, key, owner: this.owner });
    else this.flows.push({ bridge: table.bridge, table: table.id, priority, match: m, actions, cookie, key, owner: this.owner });
  }

  group(g: Group): void {
    (this.groupList ??= []).push(g);
  }

  meter(m: Meter): void {
    (this.meterList ??= []).push(m);
  }

  /**
   * What the owner built. Its flow list is the builder's own, valid until the builder is reset:
   * the desired table keeps the flows' keys and the flows, not the list.
   */
  output(): OwnerOutput {
    return { flows: this.flows.length === 0 ? NONE : this.flows, groups: this.groupList ?? NONE, meters: this.meterList ?? NONE };
  }
}

/** The match's field of that name (a loop, not find(): no closure per flow). */
function fieldIn(match: readonly MatchField[], field: FieldName): MatchField | undefined {
  for (let i = 0; i < match.length; i++) if (match[i]!.field === field) return match[i];
  return undefined;
}

/** A match a table allows, with its prerequisites (dl_type, nw_proto) present. */
function checkMatch(table: TableSpec, match: readonly MatchField[]): void {
  for (const m of match) {
    if (m.field !== 'dl_type' && m.field !== 'nw_proto' && !table.fields.includes(m.field)) {
      throw new Error(`matching ${m.field} is not allowed (the table matches ${table.fields.join(', ')})`);
    }
    const needs = (FIELDS[m.field]).needs;
    if (!needs) continue;
    const dlType = fieldIn(match, 'dl_type');
    // Compared as numbers: no BigInt made per flow (dl_type and nw_proto are small).
    if (!dlType || !needs.dlType.includes(Number(dlType.value))) throw new Error(`${m.field} needs dl_type ${needs.dlType.map((t) => `0x${t.toString(16)}`).join(' or ')}`);
    const nwProto = fieldIn(match, 'nw_proto')?.value;
    if (needs.nwProto !== undefined && (nwProto === undefined || !needs.nwProto.includes(Number(nwProto)))) {
      throw new Error(`${m.field} needs nw_proto ${needs.nwProto.join(' or ')}`);
    }
  }
}
