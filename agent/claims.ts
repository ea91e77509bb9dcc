// Who owns an address: within a VPC one MAC belongs to one VM, within a subnet one IP belongs
// to one VM or to the subnet's gateway. A later claimant is refused naming the owner, never a
// silent takeover (a neighbor reusing a local port's MAC would pull local traffic into a
// tunnel; a port claiming the gateway's IP would take over its ARP answers). A VM is its
// configuration id: the same VM as a local port, an L2 and an L3 neighbor is one owner; a
// neighbor on this host's own IP describes a local port (whose id a controller may spell
// differently) and neither claims nor is checked: the port is the authority.
// Allowed address pairs may be shared (VRRP addresses move between VMs) and are not claimed.
import type { Kind, Port, Neighbor, ResourceOf, Subnet } from '../dataplane/model.js';
import { ipv4Number } from '../dataplane/fields.js';
import type { ResourceView } from '../dataplane/model.js';
import type { StoreEvent } from './store.js';

/** A VM is its configuration id (the resource's own string, shared); a gateway is tagged. */
type Owner = string;
const GATEWAY = '\u0000gateway:';
const gatewayOwner = (subnetId: string): Owner => `${GATEWAY}${subnetId}`;
const describe = (o: Owner): string => {
  const name = o.startsWith(GATEWAY) ? o.slice(GATEWAY.length) : o;
  const short = name.length > 64 ? `${name.slice(0, 64)}…` : name;
  return o.startsWith(GATEWAY) ? `the gateway of subnet ${short}` : `vm ${short}`;
};

/**
 * IPv4 as a signed 32-bit number (a small integer to V8: an address above 127.255.255.255 as an
 * unsigned number was a boxed double per map key); IPv6 stays text. MACs are keyed by the
 * resource's own string: normalized, so equal strings are equal MACs, and its hash is computed
 * once and kept by the string (a MAC as a number was a boxed double per key and a parse per use).
 */
const ipKey = (ip: string): number | string => (ip.includes(':') ? ip : ipv4Number(ip) | 0);

/**
 * Owners by (scope, key): a map per scope (VPC or subnet id) keyed by small integers or by the
 * resources' own strings, so a million neighbors cost a map entry each and no new object. A
 * second claim by the same owner (a VM's L2 and L3 entries) is counted.
 */
class OwnerMap {
  private readonly scopes = new Map<string, Map<number | string, Owner>>();
  private readonly extra = new Map<string, number>();

  owner(scope: string, key: number | string): Owner | undefined {
    return this.scopes.get(scope)?.get(key);
  }

  add(scope: string, key: number | string, owner: Owner): void {
    let m = this.scopes.get(scope);
    if (!m) this.scopes.set(scope, (m = new Map<number | string, Owner>()));
    const o = m.get(key);
    if (o === undefined) m.set(key, owner);
    else if (o === owner) this.extra.set(`${scope}|${key}`, (this.extra.get(`${scope}|${key}`) ?? 0) + 1);
    // A different owner cannot get here through the intake (it refuses it first); a store
    // loaded from an older agent may hold such pairs: the first keeps the key.
  }

  remove(scope: string, key: number | string, owner: Owner): void {
    const m = this.scopes.get(scope);
    if (m?.get(key) !== owner) return;
    const k = `${scope}|${key}`;
    const more = this.extra.get(k);
    if (more !== undefined) {
      if (more <= 1) this.extra.delete(k); else this.extra.set(k, more - 1);
      return;
    }
    m.delete(key);
    if (m.size === 0) this.scopes.delete(scope);
  }
}

export class AddressClaims {
  /** per VPC: MAC → owner */
  private readonly macs = new OwnerMap();
  /** per subnet: IP → owner */
  private readonly ips = new OwnerMap();

  static of(view: ResourceView): AddressClaims {
    const c = new AddressClaims();
    for (const kind of ['subnet', 'port', 'neighbor'] as const) for (const r of view.list(kind)) c.update({ type: 'added', kind, key: r.key, after: r } as StoreEvent);
    return c;
  }

  /** Why `value` cannot be stored (an address another owner has), or null. */
  conflict<K extends Kind>(kind: K, value: ResourceOf[K]): string | null {
    if (kind === 'port' || (kind === 'neighbor' && !(value as Neighbor).local)) {
      const v = value as Port | Neighbor;
      const macOwner = this.macs.owner(v.vpcId, v.mac);
      if (macOwner !== undefined && macOwner !== v.id) return `MAC ${v.mac} already belongs to ${describe(macOwner)} in VPC ${v.vpcId.slice(0, 64)}`;
      for (const f of v.fixedIps) {
        const ipOwner = this.ips.owner(f.subnetId, ipKey(f.ip));
        if (ipOwner !== undefined && ipOwner !== v.id) return `${f.ip} already belongs to ${describe(ipOwner)} in subnet ${f.subnetId.slice(0, 64)}`;
      }
    } else if (kind === 'subnet') {
      const s = value as Subnet;
      const ip = s.gateway.ip;
      const ipOwner = ip === null ? undefined : this.ips.owner(s.id, ipKey(ip));
      if (ipOwner !== undefined && ipOwner !== gatewayOwner(s.id)) return `gateway ${ip} already belongs to ${describe(ipOwner)}`;
    }
    return null;
  }

  /** Follow one store change. */
  update(e: StoreEvent): void {
    if (e.type !== 'added') this.claim(e.kind, e.before, false);
    if (e.type !== 'removed') this.claim(e.kind, e.after, true);
  }

  private claim(kind: Kind, r: ResourceOf[Kind], add: boolean): void {
    const op = (m: OwnerMap, scope: string, key: number | string, owner: Owner): void => (add ? m.add(scope, key, owner) : m.remove(scope, key, owner));
    if (kind === 'port' || (kind === 'neighbor' && !(r as Neighbor).local)) {
      const v = r as Port | Neighbor;
      op(this.macs, v.vpcId, v.mac, v.id);
      for (const f of v.fixedIps) op(this.ips, f.subnetId, ipKey(f.ip), v.id);
    } else if (kind === 'subnet') {
      const s = r as Subnet;
      if (s.gateway.ip !== null) op(this.ips, s.id, ipKey(s.gateway.ip), gatewayOwner(s.id));
    }
  }
}
