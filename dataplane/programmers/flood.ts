// Broadcast and multicast per network (other than ARP and DHCP, which earlier tables consume):
// from a local port, one copy to every remote host with ports in the network (head-end
// replication) and to every other local port; from a tunnel, to local ports only.
import { type Flow, cookieFor } from '../flow.js';
import { FLOOD_CHUNK, PRIORITY, TABLES, TUNNEL_PORTS } from '../pipeline.js';
import type { Subnet } from '../model.js';
import type { ProgramContext } from '../program-context.js';
import { portNetwork } from './ports.js';
import { MULTICAST } from './pipeline.js';

/** Subnets sharing a VNI but not an encapsulation: the one with the smallest id decides. */
const encapOf = (subnets: Subnet[]): 'geneve' | 'vxlan' | null => {
  const first = subnets[0];
  return first ? (first.networkType === 'geneve' ? 'geneve' : 'vxlan') : null;
};

function chunks<T>(list: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += FLOOD_CHUNK) out.push(list.slice(i, i + FLOOD_CHUNK));
  return out;
}

/**
 * A flood as a head flow (first chunk, then a resubmit per further chunk, then `tail`) and one
 * flow per further chunk in `chunkTable`, so no flow outgrows an OpenFlow message.
 */
function chunkedFlood(head: { table: number; prefix: string; tail: string }, chunkTable: number, vni: number, outputs: string[], cookie: bigint): Flow[] {
  const match = `metadata=${vni},dl_dst=${MULTICAST}`;
  const [first = [], ...rest] = chunks(outputs);
  const jumps = rest.map((_, i) => `load:${i + 1}->NXM_NX_REG7[],resubmit(,${chunkTable})`);
  const actions = [head.prefix, ...first, ...jumps, head.tail].filter((a) => a !== '').join(',');
  return [
    { table: head.table, priority: PRIORITY.broadcast, match, actions, cookie },
    ...rest.map((c, i) => ({ table: chunkTable, priority: PRIORITY.broadcast, match: `reg7=${i + 1},${match}`, actions: c.join(','), cookie })),
  ];
}

/** One copy to every remote host with L2 neighbors in the network, then local flooding. */
export function floodRemoteFlows(ctx: ProgramContext, vni: number, owner: string): Flow[] {
  const subnets = ctx.topology.subnetsOfVni(vni);
  const encap = encapOf(subnets);
  if (!encap) return [];
  const hosts = new Set<string>();
  for (const s of subnets) for (const h of ctx.topology.remoteHostsOf(s.id)) hosts.add(h);
  if (hosts.size === 0) return [];
  const port = TUNNEL_PORTS[encap].ofport;
  const outputs = [...hosts].sort().map((h) => `set_field:${h}->tun_dst,output:${port}`);
  return chunkedFlood({ table: TABLES.REMOTE_L2.id, prefix: `set_field:${vni}->tun_id`, tail: `resubmit(,${TABLES.LOCAL_L2.id})` }, TABLES.FLOOD_REMOTE.id, vni, outputs, cookieFor('flood', owner));
}

/** One copy to every bound local port of the network (OVS skips the input port). */
export function floodLocalFlows(ctx: ProgramContext, vni: number, owner: string): Flow[] {
  const ofports = new Set<number>();
  for (const s of ctx.topology.subnetsOfVni(vni)) {
    for (const id of ctx.topology.portsOf(s.id)) {
      const port = ctx.view.get('port', id);
      const ofport = ctx.bindings.ofport(id);
      if (port && ofport !== undefined && port.adminStateUp && portNetwork(ctx, port)?.vni === vni) ofports.add(ofport);
    }
  }
  if (ofports.size === 0) return [];
  const outputs = [...ofports].sort((a, b) => a - b).map((p) => `output:${p}`);
  return chunkedFlood({ table: TABLES.LOCAL_L2.id, prefix: '', tail: '' }, TABLES.FLOOD_LOCAL.id, vni, outputs, cookieFor('flood', owner));
}
