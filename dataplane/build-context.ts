// The build context features read through: the store view, the topology indexes and the port
// bindings, each read recorded as an input of the owner being built (dependencies.ts). An
// owner's reads of its own resource are not recorded: a change to it dirties the owner anyway.
// Conjunction ids are handed out here too, stable per name while an owner uses it.
import type { BuildContext, TopologyReader } from './feature.js';
import { hash48 } from './flow.js';
import type { Kind, ResourceOf, ResourceView, Subnet } from './model.js';
import type { PortBindings } from './bindings.js';
import type { Topology } from './topology.js';
import { type HostNetworking, NO_HOST_NETWORKING } from './external.js';

/**
 * Subnets' inputs, one string each: every neighbor and port reads its subnet, and the dependency
 * index keeps the input of each owner that reads one thing, so a string made per read would be
 * kept per neighbor (with a subnet id of 36 characters, a rope of about 40 bytes). Bounded.
 */
const SUBNET_INPUTS = new Map<string, string>();

/** Inputs: `<kind>:<key>`, `<kind>:*` (a listing), topology topics, `binding:<port id>`. */
export const resourceInput = (kind: Kind, key: string): string => {
  if (kind !== 'subnet') return `${kind}:${key}`;
  let input = SUBNET_INPUTS.get(key);
  if (input === undefined) {
    if (SUBNET_INPUTS.size >= 100_000) SUBNET_INPUTS.clear();
    SUBNET_INPUTS.set(key, (input = `subnet:${key}`));
  }
  return input;
};
const LIST_INPUTS = new Map<Kind, string>();
export const listInput = (kind: Kind): string => {
  let i = LIST_INPUTS.get(kind);
  if (i === undefined) LIST_INPUTS.set(kind, (i = `${kind}:*`));
  return i;
};
export const bindingInput = (portId: string): string => `binding:${portId}`;

/**
 * Conjunction ids by name, reference-counted by the owners that use them. An id is a hash of its
 * name (probing past a collision), not an arrival number: the same state gives the same ids in
 * any order, after a restart and in a full recompute, so conjunctive flows never churn.
 */
export class ConjunctionIds {
  private readonly ids = new Map<string, { id: number; users: Set<string> }>();
  private readonly taken = new Set<number>();

  /** Ids from `base` to `base + size - 1` (conjunction ids by default; conntrack zones use a range of their own). */
  constructor(private readonly base = 1, private readonly size = 0x7ffffffe) {}

  use(name: string, owner: string): number {
    let e = this.ids.get(name);
    if (!e) {
      if (this.taken.size >= this.size) throw new Error(`no free id left in ${this.base}..${this.base + this.size - 1} for ${name}`);
      let id = this.base + Number(hash48(name) % BigInt(this.size));
      while (this.taken.has(id)) id = this.base + ((id - this.base + 1) % this.size);
      this.taken.add(id);
      this.ids.set(name, (e = { id, users: new Set() }));
    }
    e.users.add(owner);
    return e.id;
  }

  /** The id a name has now, if any owner uses it (no new user). */
  peek(name: string): number | undefined {
    return this.ids.get(name)?.id;
  }

  /** An owner was rebuilt: it keeps only the names it used this time. */
  release(owner: string, keep: ReadonlySet<string>, had: Iterable<string>): void {
    for (const name of had) {
      if (keep.has(name)) continue;
      const e = this.ids.get(name);
      if (!e) continue;
      e.users.delete(owner);
      if (e.users.size === 0) {
        this.ids.delete(name);
        this.taken.delete(e.id);
      }
    }
  }
}

/** Conntrack zones of routers' NAT: above the port zones (OpenFlow port numbers, assigned from 1). */
export const NAT_ZONES = { base: 0xc000, size: 0x4000 } as const;
export const newZoneIds = (): ConjunctionIds => new ConjunctionIds(NAT_ZONES.base, NAT_ZONES.size);

export const arpInput = (ip: string): string => `arp:${ip}`;

export class TrackingContext implements BuildContext {
  private inputs: string[] = [];
  private selfKind: Kind | null = null;
  private selfKey = '';
  private owner = '';
  private conjNames = new Set<string>();
  private zoneNames = new Set<string>();
  /** Zone names per owner, released as conjunction names are (a deleted router's zone is freed). */
  private readonly zoneByOwner = new Map<string, Set<string>>();
  /** Conjunction names per owner, to release the ones an owner stops using. */
  private readonly conjByOwner = new Map<string, Set<string>>();

  readonly view: ResourceView;
  readonly topology: TopologyReader;
  readonly bindings: PortBindings;

  constructor(
    baseView: ResourceView, baseTopology: Topology, baseBindings: PortBindings, private readonly conj: ConjunctionIds,
    readonly host: HostNetworking = NO_HOST_NETWORKING, private readonly zones: ConjunctionIds = newZoneIds(),
    private readonly resolved: ReadonlyMap<string, string> = new Map(),
  ) {
    const read = (input: string): void => {
      const inputs = this.inputs;
      // Features often read one thing twice in a row (a neighbor its subnet, then whether the
      // subnet is routed): kept once here, with no set made per owner in end().
      if (inputs.length === 0 || inputs[inputs.length - 1] !== input) inputs.push(input);
    };
    this.view = {
      get: <K extends Kind>(kind: K, key: string): ResourceOf[K] | undefined => {
        if (kind !== this.selfKind || key !== this.selfKey) read(resourceInput(kind, key));
        return baseView.get(kind, key);
      },
      list: <K extends Kind>(kind: K) => {
        read(listInput(kind));
        return baseView.list(kind);
      },
      count: (kind: Kind) => {
        read(listInput(kind));
        return baseView.count(kind);
      },
    };
    this.topology = {
      subnetsOfVni: (vni: number): Subnet[] => {
        read(`vni:${vni}`);
        return baseTopology.subnetsOfVni(vni);
      },
      remoteHostsOf: (s: string) => {
        read(`remote-hosts:${s}`);
        return baseTopology.remoteHostsOf(s);
      },
      portsOf: (s: string) => {
        read(`ports-of:${s}`);
        return baseTopology.portsOf(s);
      },
      groupMembers: (g: string) => {
        read(`sg-members:${g}`);
        return baseTopology.groupMembers(g);
      },
      routed: (s: string) => {
        read(resourceInput('subnet', s));
        return baseTopology.routed(s);
      },
      routersOf: (s: string) => {
        read(resourceInput('subnet', s));
        return baseTopology.routersOf(s);
      },
    };
    this.bindings = {
      ofport: (portId: string) => {
        read(bindingInput(portId));
        return baseBindings.ofport(portId);
      },
    };
  }

  /** Start building an owner; `selfKind`/`selfKey` name its own resource, whose reads are not inputs. */
  begin(owner: string, selfKind: Kind | null, selfKey: string): void {
    this.owner = owner;
    // A new array each time, never emptied in place: the dependency index keeps the last one.
    this.inputs = [];
    this.selfKind = selfKind;
    this.selfKey = selfKey;
    if (this.conjNames.size > 0) this.conjNames = new Set();
    if (this.zoneNames.size > 0) this.zoneNames = new Set();
  }

  /** The inputs the owner read (deduplicated). */
  end(): string[] {
    const hadZones = this.zoneByOwner.get(this.owner);
    if (hadZones || this.zoneNames.size > 0) {
      this.zones.release(this.owner, this.zoneNames, hadZones ?? []);
      if (this.zoneNames.size > 0) this.zoneByOwner.set(this.owner, this.zoneNames);
      else this.zoneByOwner.delete(this.owner);
    }
    const had = this.conjByOwner.get(this.owner);
    if (had || this.conjNames.size > 0) {
      this.conj.release(this.owner, this.conjNames, had ?? []);
      if (this.conjNames.size > 0) this.conjByOwner.set(this.owner, this.conjNames);
      else this.conjByOwner.delete(this.owner);
    }
    const inputs = this.inputs;
    if (inputs.length <= 1) return inputs;
    if (inputs.length > 16) return [...new Set(inputs)];
    // A few (almost every owner): repeats dropped in place, first reads first, as a set keeps them.
    let kept = 0;
    for (let i = 0; i < inputs.length; i++) {
      const x = inputs[i]!;
      let seen = false;
      for (let j = 0; j < kept && !seen; j++) seen = inputs[j] === x;
      if (!seen) inputs[kept++] = x;
    }
    inputs.length = kept;
    return inputs;
  }

  conjunctionId(name: string): number {
    this.conjNames.add(name);
    return this.conj.use(name, this.owner);
  }

  zoneId(name: string): number {
    // Named by what they belong to (a router), held by the owners that use them (the router's
    // SNAT owner, its ports' elastic IPs): stable while any uses it, freed when none does.
    this.zoneNames.add(name);
    return this.zones.use(name, this.owner);
  }

  resolvedMac(ip: string): string | undefined {
    this.inputs.push(arpInput(ip));
    return this.resolved.get(ip);
  }
}
