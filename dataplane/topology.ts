// Derived, incrementally maintained indexes over the desired state that programmers need and
// cannot afford to compute by scanning (a host may hold a million neighbors): which resources
// live in a subnet, which remote hosts carry a subnet, and what network a subnet is.
import { TUNNEL_PORTS, type Encapsulation } from './pipeline.js';
import type { Neighbor, NetworkType, Port, ResourceEvent, ResourceView, Router, Subnet } from './model.js';

export interface Network {
  vni: number;
  encap: Encapsulation;
}

/** The network a subnet's traffic travels on; null for a type we cannot carry. */
export function networkOf(subnet: Subnet): Network | null {
  if (subnet.networkType === 'geneve' || subnet.networkType === 'vxlan') {
    return { vni: subnet.tunnelId, encap: subnet.networkType };
  }
  return null;
}

export const CARRIED_NETWORK_TYPES: readonly NetworkType[] = Object.keys(TUNNEL_PORTS) as Encapsulation[];

/** Subnets whose addresses a port or remote neighbor has (a port's first fixed IP decides its network). */
export const portSubnets = (p: Port): string[] => subnetsOf(p.fixedIps);
export const neighborSubnets = (n: Neighbor): string[] => subnetsOf(n.fixedIps);

/** Distinct subnet ids of a list of fixed IPs (one, almost always: no set for that). */
function subnetsOf(ips: readonly { subnetId: string }[]): string[] {
  if (ips.length === 1) return [ips[0]!.subnetId];
  return [...new Set(ips.map((f) => f.subnetId))];
}

class RefCount<K> {
  readonly counts = new Map<K, number>();
  /** True when the key is new. */
  add(k: K): boolean {
    const n = this.counts.get(k) ?? 0;
    this.counts.set(k, n + 1);
    return n === 0;
  }
  /** True when the key is gone. */
  remove(k: K): boolean {
    const n = (this.counts.get(k) ?? 0) - 1;
    if (n <= 0) this.counts.delete(k); else this.counts.set(k, n);
    return n <= 0;
  }
}

export class Topology {
  /** subnet id → ids of ports with an address in it */
  readonly portsBySubnet = new Map<string, Set<string>>();
  /** VNI → ids of the subnets on it */
  private readonly subnetsByVni = new Map<number, Set<string>>();
  /** MAC → keys of DHCP bindings for it */
  readonly dhcpByMac = new Map<string, Set<string>>();
  /** subnet id → remote host IPs with neighbors in it, counted */
  private readonly remoteHosts = new Map<string, RefCount<string>>();
  /** security group id → its members here: `port:<key>` and `neighbor:<key>` */
  private readonly sgMembers = new Map<string, Set<string>>();
  /** subnet id → keys of the routers that join it */
  private readonly routersBySubnet = new Map<string, Set<string>>();

  constructor(private readonly view: ResourceView) {}

  /** Indexes over everything the view already holds. */
  static of(view: ResourceView): Topology {
    const t = new Topology(view);
    for (const kind of ['subnet', 'port', 'neighbor', 'dhcp', 'router'] as const) {
      for (const r of view.list(kind)) t.update({ type: 'added', kind, key: r.key, after: r } as ResourceEvent);
    }
    return t;
  }

  /**
   * Follow one store change. Call for every event, in order. The topics whose answers changed
   * (`ports-of:<subnet>`, `remote-hosts:<subnet>`, `vni:<vni>`, and `subnet:<id>` when the
   * routers joining a subnet change) are added to `topics`: the owners that read them are dirty.
   */
  update(e: ResourceEvent, topics?: Set<string>): void {
    if (e.kind === 'port') {
      const before = e.type !== 'added' ? portSubnets(e.before) : [];
      const after = e.type !== 'removed' ? portSubnets(e.after) : [];
      for (const s of before) if (!after.includes(s)) { setOf(this.portsBySubnet, s).delete(e.key); topics?.add(`ports-of:${s}`); }
      for (const s of after) if (!before.includes(s)) { setOf(this.portsBySubnet, s).add(e.key); topics?.add(`ports-of:${s}`); }
      this.members(`port:${e.key}`, e.type !== 'added' ? e.before.securityGroupIds : NONE, e.type !== 'removed' ? e.after.securityGroupIds : NONE, topics);
    } else if (e.kind === 'subnet') {
      const before = e.type !== 'added' ? networkOf(e.before) : null;
      const after = e.type !== 'removed' ? networkOf(e.after) : null;
      if (before) { setOf(this.subnetsByVni, before.vni).delete(e.key); topics?.add(`vni:${before.vni}`); }
      if (after) { setOf(this.subnetsByVni, after.vni).add(e.key); topics?.add(`vni:${after.vni}`); }
    } else if (e.kind === 'dhcp') {
      if (e.type !== 'added') setOf(this.dhcpByMac, e.before.mac).delete(e.key);
      if (e.type !== 'removed') setOf(this.dhcpByMac, e.after.mac).add(e.key);
    } else if (e.kind === 'neighbor') {
      if (e.type !== 'added') this.removeNeighbor(e.before, topics);
      if (e.type !== 'removed') this.addNeighbor(e.after, topics);
      const before = e.type !== 'added' ? e.before.securityGroupIds : NONE;
      const after = e.type !== 'removed' ? e.after.securityGroupIds : NONE;
      if (before.length > 0 || after.length > 0) this.members(`neighbor:${e.key}`, before, after, topics);
    } else if (e.kind === 'router') {
      const before = e.type !== 'added' ? joinedSubnets(e.before) : [];
      const after = e.type !== 'removed' ? joinedSubnets(e.after) : [];
      // Whether a subnet is routed is part of what its readers (ports, neighbors) read of it:
      // the change is raised as the subnet's own input, so no owner needs a second input.
      for (const s of before) if (!after.includes(s)) { setOf(this.routersBySubnet, s).delete(e.key); topics?.add(`subnet:${s}`); }
      for (const s of after) if (!before.includes(s)) { setOf(this.routersBySubnet, s).add(e.key); topics?.add(`subnet:${s}`); }
    }
  }

  /** Group membership of one port or neighbor changed from `before` to `after`. */
  private members(member: string, before: readonly string[], after: readonly string[], topics?: Set<string>): void {
    for (const g of before) if (!after.includes(g)) { setOf(this.sgMembers, g).delete(member); topics?.add(`sg-members:${g}`); }
    for (const g of after) if (!before.includes(g)) { setOf(this.sgMembers, g).add(member); topics?.add(`sg-members:${g}`); }
  }

  private addNeighbor(n: Neighbor, topics?: Set<string>): void {
    // Which neighbors a subnet has is not indexed: owners that read a subnet are found through
    // the dependency index, and an index of a million keys would cost memory nobody reads.
    for (const s of neighborSubnets(n)) {
      if (!n.local && n.type === 'L2' && refOf(this.remoteHosts, s).add(n.hostIp)) topics?.add(`remote-hosts:${s}`);
    }
  }

  private removeNeighbor(n: Neighbor, topics?: Set<string>): void {
    for (const s of neighborSubnets(n)) {
      if (!n.local && n.type === 'L2' && refOf(this.remoteHosts, s).remove(n.hostIp)) topics?.add(`remote-hosts:${s}`);
    }
  }

  /** Subnets (present in the store) on a VNI, sorted by id for a stable choice of encapsulation. */
  subnetsOfVni(vni: number): Subnet[] {
    const out: Subnet[] = [];
    for (const id of this.subnetsByVni.get(vni) ?? []) {
      const s = this.view.get('subnet', id);
      if (s) out.push(s);
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  remoteHostsOf(subnetId: string): Iterable<string> {
    return this.remoteHosts.get(subnetId)?.counts.keys() ?? [];
  }

  portsOf(subnetId: string): Iterable<string> {
    return this.portsBySubnet.get(subnetId) ?? [];
  }

  /** Members of a security group on this host's view: `port:<key>` and `neighbor:<key>`. */
  groupMembers(groupId: string): Iterable<string> {
    return this.sgMembers.get(groupId) ?? [];
  }

  /** Keys of the routers that join the subnet. */
  routersOf(subnetId: string): Iterable<string> {
    return this.routersBySubnet.get(subnetId) ?? [];
  }

  /** Whether a router joins the subnet. */
  routed(subnetId: string): boolean {
    const r = this.routersBySubnet.get(subnetId);
    return r !== undefined && r.size > 0;
  }

}

const NONE: readonly string[] = [];

const joinedSubnets = (r: Router): string[] => [...new Set(r.subnetRoutingTables.map((t) => t.subnetId))];

function setOf<K, V>(m: Map<K, Set<V>>, k: K): Set<V> {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  return s;
}

function refOf<K, V>(m: Map<K, RefCount<V>>, k: K): RefCount<V> {
  let s = m.get(k);
  if (!s) m.set(k, (s = new RefCount()));
  return s;
}
