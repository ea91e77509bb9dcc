// Traffic arriving from a tunnel: the VNI becomes the network, and it goes to local delivery
// (split horizon: what came from a remote host is never sent to another one), through the DVR
// MAC restore for what a remote host routed.
import { type Action, Interned, eq, resubmit, setField, sharedLoad } from '../flow.js';
import type { Feature } from '../feature.js';
import { type Encapsulation, PRIORITY, REGISTERS, TABLES, TUNNEL_PORTS } from '../pipeline.js';
import { ipv4Value } from '../fields.js';

export const tunnels: Feature = {
  name: 'tunnels', namespace: 'tunnels', programmer: 'tunnel', owners: { singleton: true },
  purpose: 'classification of traffic arriving from the tunnel ports',
  build(_ctx, _key, out) {
    for (const port of Object.values(TUNNEL_PORTS)) {
      out.flow(TABLES.CLASSIFY, PRIORITY.match, [eq('in_port', port.ofport)], [
        { type: 'move', src: { field: 'tun_id', ofs: 0, nbits: 24 }, dst: { field: 'metadata', ofs: 0, nbits: 24 } },
        resubmit(TABLES.DVR_RESTORE),
      ]);
    }
  },
};

/** Actions that send the packet to a remote host of a network: tunnel fields, then output. */
const TO_OUTPUT = resubmit(TABLES.OUTPUT);
const tunIds = new Interned<number, Action>();
const tunDsts = new Interned<string, Action>();
/**
 * The whole list, one per network and host: every neighbor of a host shares it. By network,
 * then by host (no key string made per neighbor); bounded like Interned.
 */
const outputs = new Map<string, Map<number, Interned<string, readonly Action[]>>>();

export function tunnelOutput(encap: Encapsulation, vni: number, hostIp: string): readonly Action[] {
  let byVni = outputs.get(encap);
  if (!byVni) outputs.set(encap, (byVni = new Map<number, Interned<string, readonly Action[]>>()));
  let byHost = byVni.get(vni);
  if (!byHost) {
    if (byVni.size >= 10_000) byVni.clear();
    byVni.set(vni, (byHost = new Interned()));
  }
  return byHost.peek(hostIp) ?? byHost.get(hostIp, () => [
    tunIds.get(vni, makeTunId), tunDsts.get(hostIp, makeTunDst),
    sharedLoad(REGISTERS.outPort, TUNNEL_PORTS[encap].ofport), TO_OUTPUT,
  ]);
}

/** The set_field of a host's tunnel address: one object per host, shared with its neighbors' unicast lists. */
export const tunDstAction = (hostIp: string): Action => tunDsts.get(hostIp, makeTunDst);

const makeTunId = (v: number): Action => setField('tun_id', v);
const makeTunDst = (h: string): Action => setField('tun_dst', ipv4Value(h));
