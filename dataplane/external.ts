// The host's side of north-south traffic: its bridge mappings (external network name → the
// operator's bridge, Neutron's `--bridge-mappings ext:br-ex` convention), the patch ports the
// agent adds between br-int and each of those bridges, and the MAC addresses the agent uses on
// the external networks. Static for the life of the process; features read it from the build
// context (docs/nat.md).
import { ipv4Number } from './fields.js';

/** One bridge mapping and the patch-port pair that joins its bridge to br-int. */
export interface ExternalNetwork {
  /** The mapping's name: what a router's `external_gateway.external_network` says. */
  readonly name: string;
  readonly bridge: string;
  /** The patch port on br-int (`int-<bridge>`), by a fixed OpenFlow port number. */
  readonly intPort: PatchEnd;
  /** Its peer on the external bridge (`phy-<bridge>`). */
  readonly phyPort: PatchEnd;
}

export interface PatchEnd {
  readonly bridge: string;
  readonly name: string;
  readonly peer: string;
  readonly ofport: number;
}

export interface HostNetworking {
  /** This host's underlay (tunnel) address: its external MAC is made from it. */
  readonly underlayIp: string;
  /** By mapping name. */
  readonly externals: ReadonlyMap<string, ExternalNetwork>;
}

export const NO_HOST_NETWORKING: HostNetworking = { underlayIp: '', externals: new Map() };

/** Patch ports get OpenFlow port numbers from here on (by the mapping's position), clear of VM ports and tunnel ports. */
export const PATCH_OFPORT_BASE = 4200;

export class BridgeMappingError extends Error {}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** An OVS bridge name the kernel could also use as an interface name. */
const BRIDGE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * `ext:br-ex,other:br-other` to the mappings, in order. A name or bridge given twice, br-int
 * itself, or a malformed entry is an error (the agent refuses to start rather than guess).
 */
export function parseBridgeMappings(text: string, integrationBridge = 'br-int'): ExternalNetwork[] {
  const out: ExternalNetwork[] = [];
  for (const entry of text.split(',').map((e) => e.trim()).filter((e) => e !== '')) {
    const colon = entry.indexOf(':');
    const name = colon < 0 ? '' : entry.slice(0, colon);
    const bridge = colon < 0 ? '' : entry.slice(colon + 1);
    if (!NAME.test(name) || !BRIDGE_NAME.test(bridge)) throw new BridgeMappingError(`bridge mapping ${JSON.stringify(entry.slice(0, 80))} is not <network>:<bridge> (network up to 64 of A-Z a-z 0-9 _ . -, bridge up to 15)`);
    if (bridge === integrationBridge) throw new BridgeMappingError(`bridge mapping ${name}: ${bridge} is the integration bridge`);
    if (out.some((o) => o.name === name)) throw new BridgeMappingError(`bridge mapping ${name} is given twice`);
    if (out.some((o) => o.bridge === bridge)) throw new BridgeMappingError(`bridge ${bridge} is mapped twice`);
    const ofport = PATCH_OFPORT_BASE + out.length;
    // Neutron's names; an interface name is at most 15 characters.
    const intName = `int-${bridge}`.slice(0, 15);
    const phyName = `phy-${bridge}`.slice(0, 15);
    out.push({
      name, bridge,
      intPort: { bridge: integrationBridge, name: intName, peer: phyName, ofport },
      phyPort: { bridge, name: phyName, peer: intName, ofport },
    });
  }
  return out;
}

export function hostNetworking(underlayIp: string, mappings: readonly ExternalNetwork[]): HostNetworking {
  return { underlayIp, externals: new Map(mappings.map((m) => [m.name, m])) };
}

/** The patch ports of every mapping, both ends: what the backend creates at start. */
export const patchPorts = (host: HostNetworking): PatchEnd[] => [...host.externals.values()].flatMap((e) => [e.intPort, e.phyPort]);

// MACs on the external network, locally administered (02:xx) and made from an address, so every
// host derives the same one without being told and a restart changes nothing:
// - an elastic IP's MAC (02:ee:<ip>) moves with the elastic IP, so the upstream's ARP cache
//   stays right when it moves; a gratuitous ARP moves the switches' tables;
// - a SNAT address's MAC (02:5a:<ip>) is what ARP answers for it on every host that has a slice,
//   but no frame is ever sent from it: switches never learn where it is and flood frames to it to
//   every host, each of which takes only its own slice (unicast flooding, as Windows NLB's
//   unicast mode does), which is what lets hosts share one address without a central box;
// - a host's own external MAC (02:a0:<underlay ip>) is the source of its SNAT traffic.
const macFrom = (prefix: number, ip: string): bigint => (BigInt(prefix) << 32n) | BigInt(ipv4Number(ip));
export const elasticIpMac = (ip: string): bigint => macFrom(0x02ee, ip);
export const snatMac = (ip: string): bigint => macFrom(0x025a, ip);
export const hostExternalMac = (underlayIp: string): bigint => macFrom(0x02a0, underlayIp === '' ? '0.0.0.0' : underlayIp);

