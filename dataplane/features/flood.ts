// Broadcast and multicast per network (other than ARP and DHCP, which earlier tables consume):
// from a local port, one copy to every remote host with ports in the network (head-end
// replication) and to every other local port; from a tunnel, to local ports only. One owner per
// network (VNI) and direction.
import { type Action, load, output, reg, resubmit, setField } from '../flow.js';
import type { BuildContext, Feature, OwnerBuilder } from '../feature.js';
import type { ResourceEvent, Subnet } from '../model.js';
import { FLOOD_CHUNK, PRIORITY, REGISTERS, type TableSpec, TABLES, TUNNEL_PORTS } from '../pipeline.js';
import { networkOf } from '../topology.js';
import { portNetwork } from './ports.js';
import { tunDstAction } from './tunnels.js';
import { multicast } from './pipeline.js';

/** Subnets sharing a VNI but not an encapsulation: the one with the smallest id decides. */
const encapOf = (subnets: Subnet[]): 'geneve' | 'vxlan' | null => {
  const first = subnets[0];
  return first ? (first.networkType === 'geneve' ? 'geneve' : 'vxlan') : null;
};

/** The copies in chunks of FLOOD_CHUNK, each chunk's actions in one list. */
function chunks(copies: readonly (readonly Action[])[]): Action[][] {
  const out: Action[][] = [];
  for (let i = 0; i < copies.length; i += FLOOD_CHUNK) {
    const chunk: Action[] = [];
    for (let j = i; j < Math.min(i + FLOOD_CHUNK, copies.length); j++) for (const a of copies[j]!) chunk.push(a);
    out.push(chunk);
  }
  return out;
}

/**
 * A flood as a head flow (first chunk, then a resubmit per further chunk, then `tail`) and one
 * flow per further chunk in `chunkTable`, so no flow outgrows an OpenFlow message.
 */
function chunkedFlood(out: OwnerBuilder, head: { table: TableSpec; prefix: Action[]; tail: Action[] }, chunkTable: TableSpec, vni: number, copies: readonly (readonly Action[])[]): void {
  const [first = [], ...rest] = chunks(copies);
  const jumps = rest.flatMap((_, i) => [load(REGISTERS.floodChunk, i + 1), resubmit(chunkTable)]);
  out.flow(head.table, PRIORITY.broadcast, [reg(REGISTERS.network, vni), multicast()], [...head.prefix, ...first, ...jumps, ...head.tail]);
  rest.forEach((c, i) => out.flow(chunkTable, PRIORITY.broadcast, [reg(REGISTERS.floodChunk, i + 1), reg(REGISTERS.network, vni), multicast()], c));
}

/** VNIs a subnet change may bring into existence. */
const NO_KEYS: readonly string[] = [];

function vnisOf(e: ResourceEvent): Iterable<string> {
  return e.kind === 'subnet' ? subnetVnis(e) : NO_KEYS;
}

function* subnetVnis(e: Extract<ResourceEvent, { kind: 'subnet' }>): Iterable<string> {
  for (const s of e.type === 'added' ? [e.after] : e.type === 'removed' ? [e.before] : [e.before, e.after]) {
    const net = networkOf(s);
    if (net) yield String(net.vni);
  }
}

function* allVnis(view: BuildContext['view']): Iterable<string> {
  for (const s of view.list('subnet')) {
    const net = networkOf(s);
    if (net) yield String(net.vni);
  }
}

const byVni = { all: (view: BuildContext['view']) => new Set(allVnis(view)), created: vnisOf };

/** One copy to every remote host with L2 neighbors in the network, then local flooding. */
export const floodRemote: Feature = {
  name: 'flood-remote', namespace: 'flood-remote', programmer: 'flood', owners: { aggregate: byVni },
  purpose: 'head-end replication of broadcast and multicast to the remote hosts of a network',
  build(ctx, key, out) {
    const vni = Number(key);
    const subnets = ctx.topology.subnetsOfVni(vni);
    const encap = encapOf(subnets);
    if (!encap) return;
    const hosts = new Set<string>();
    for (const s of subnets) for (const h of ctx.topology.remoteHostsOf(s.id)) hosts.add(h);
    if (hosts.size === 0) return;
    // A copy per host: the host's own tun_dst set_field (the one its neighbors' unicast lists
    // share: tens of thousands of hosts make no new actions) and one output.
    const toTunnel = output(TUNNEL_PORTS[encap].ofport);
    const copies = [...hosts].sort().map((h) => [tunDstAction(h), toTunnel]);
    chunkedFlood(out, { table: TABLES.REMOTE_L2, prefix: [setField('tun_id', vni)], tail: [resubmit(TABLES.LOCAL_L2)] }, TABLES.FLOOD_REMOTE, vni, copies);
  },
};

/** One copy to every bound local port of the network (OVS skips the input port). */
export const floodLocal: Feature = {
  name: 'flood-local', namespace: 'flood-local', programmer: 'flood', owners: { aggregate: byVni },
  purpose: 'broadcast and multicast to the local ports of a network',
  build(ctx, key, out) {
    const vni = Number(key);
    const ofports = new Set<number>();
    for (const s of ctx.topology.subnetsOfVni(vni)) {
      for (const id of ctx.topology.portsOf(s.id)) {
        const port = ctx.view.get('port', id);
        const ofport = ctx.bindings.ofport(id);
        if (port && ofport !== undefined && port.adminStateUp && portNetwork(ctx, port)?.vni === vni) ofports.add(ofport);
      }
    }
    if (ofports.size === 0) return;
    const copies = [...ofports].sort((a, b) => a - b).map((p) => [output(p)]);
    chunkedFlood(out, { table: TABLES.LOCAL_L2, prefix: [], tail: [] }, TABLES.FLOOD_LOCAL, vni, copies);
  },
};
