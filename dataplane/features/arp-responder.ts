// ARP responder in flows (table arp_responder): a request from a local port for a known address
// of its network is answered in place and sent back out of the input port; it never reaches
// the agent or leaves the host. Entries come from local ports, remote neighbors and subnet
// gateways (this feature: one owner per subnet); the misses and guards are fixed pipeline flows.
import { ETH_TYPE, ipv4Value, macValue } from '../fields.js';
import { type Action, type MatchField, type RegField, eq, load, resubmit, setField, shared, sharedReg } from '../flow.js';
import { type Feature, type OwnerBuilder } from '../feature.js';
import { PRIORITY, REGISTERS, TABLES } from '../pipeline.js';
import { networkOf } from '../topology.js';

const slice = (field: 'dl_src' | 'dl_dst' | 'arp_sha' | 'arp_tha' | 'arp_spa' | 'arp_tpa', nbits: number) => ({ field, ofs: 0, nbits });
const SWAP_MACS: Action = { type: 'move', src: slice('dl_src', 48), dst: slice('dl_dst', 48) };
const REPLY_OP = shared(setField('arp_op', 2));
const THA_FROM_SHA: Action = { type: 'move', src: slice('arp_sha', 48), dst: slice('arp_tha', 48) };
const TPA_FROM_SPA: Action = { type: 'move', src: slice('arp_spa', 32), dst: slice('arp_tpa', 32) };
const IN_PORT: Action = { type: 'in_port' };

/**
 * The reply built from the request: swap addresses, answer with `mac` for `ip`, from `frameMac`
 * (the same, except for an address whose MAC must never be a frame's source: docs/nat.md).
 */
export function arpReplyActions(mac: string | bigint, ip: string, frameMac: string | bigint = mac): Action[] {
  const m = typeof mac === 'bigint' ? mac : macValue(mac);
  const from = frameMac === mac ? m : typeof frameMac === 'bigint' ? frameMac : macValue(frameMac);
  return [SWAP_MACS, setField('dl_src', from), REPLY_OP, THA_FROM_SHA, TPA_FROM_SPA, setField('arp_sha', m), setField('arp_spa', ipv4Value(ip)), IN_PORT];
}

export const isIPv4 = (ip: string): boolean => !ip.includes(':');

const ARP = eq('dl_type', ETH_TYPE.arp);
const REQUEST = eq('arp_op', 1);
export const ARP_REQUEST: readonly MatchField[] = [ARP, REQUEST];

const TO_REPLY = resubmit(TABLES.ARP_REPLY);
const slot = (r: RegField) => ({ field: r.field, ofs: r.ofs, nbits: r.nbits });

/**
 * The part of an answer every entry shares (table arp_reply), after the entry set eth src to the
 * answered MAC: the sender becomes that MAC and the address asked for (arp_tpa, swapped with
 * arp_spa through a register that is cleared again), the target the asker. An entry is then
 * three actions with one value (its MAC), not eight with three: a million neighbors' answers
 * are a million MACs, not three million set_fields.
 */
export const ARP_REPLY_TAIL: readonly Action[] = [
  REPLY_OP, THA_FROM_SHA,
  { type: 'move', src: slice('dl_src', 48), dst: slice('arp_sha', 48) },
  { type: 'move', src: slice('arp_tpa', 32), dst: slot(REGISTERS.arpTarget) },
  TPA_FROM_SPA,
  { type: 'move', src: slot(REGISTERS.arpTarget), dst: slice('arp_spa', 32) },
  load(REGISTERS.arpTarget, 0),
  IN_PORT,
];

/** An answer for `ip` in network `vni`, made by the owner being built (cookie programmer arp). */
export function arpEntry(out: OwnerBuilder, vni: number, ip: string, mac: string | bigint): void {
  const m = typeof mac === 'bigint' ? mac : macValue(mac);
  out.flow(TABLES.ARP_RESPONDER, PRIORITY.match, [sharedReg(REGISTERS.network, vni), ARP, eq('arp_tpa', ipv4Value(ip)), REQUEST], [SWAP_MACS, setField('dl_src', m), TO_REPLY], 'arp');
}

/** The subnet gateway answers ARP too (it is the default route of every VM). */
export const gatewayArp: Feature = {
  name: 'gateway-arp', namespace: 'subnet', programmer: 'arp', owners: { resource: 'subnet' },
  purpose: 'ARP answers for each subnet\'s gateway address',
  build(ctx, key, out) {
    const subnet = ctx.view.get('subnet', key);
    const net = subnet ? networkOf(subnet) : null;
    if (!subnet || !net) return;
    const { ip, mac } = subnet.gateway;
    if (ip === null || mac === null || !isIPv4(ip) || ip === '0.0.0.0') return;
    arpEntry(out, net.vni, ip, mac);
  },
};
