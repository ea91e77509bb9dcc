// Finds this host's underlay with netlink (the npm `netlink` package, rtnetlink dumps): the
// interface that holds the IPv4 default route (or the one named), its IPv4 address (the route's
// preferred source when it has one) as the tunnel endpoint, and its MTU for DHCP. Used when no
// --host-ip is given; --host-ip and --underlay-mtu override what it finds.
import { createRtNetlink } from 'netlink';

export interface Underlay {
  interface: string;
  ip: string;
  mtu: number;
  /** How it was chosen: the default route's interface, or the one named. */
  via: 'default-route' | 'named';
}

export class DiscoveryError extends Error {}

const ipv4 = (b: unknown): string | null => (Buffer.isBuffer(b) && b.length === 4 ? `${b[0]}.${b[1]}.${b[2]}.${b[3]}` : null);

/** The underlay: the interface named, or the one holding the IPv4 default route in the main table. */
export async function discoverUnderlay(interfaceName = ''): Promise<Underlay> {
  let socket: ReturnType<typeof createRtNetlink>;
  try {
    socket = createRtNetlink();
  } catch (e) {
    throw new DiscoveryError(`netlink is not available: ${(e as Error).message}`);
  }
  try {
    const links = await socket.getLinks();
    const nameOf = new Map<number, string>();
    const mtuOf = new Map<number, number>();
    for (const l of links) {
      const index = l.data.index;
      if (index === undefined) continue;
      if (l.attrs.ifname !== undefined) nameOf.set(index, l.attrs.ifname);
      if (l.attrs.mtu !== undefined) mtuOf.set(index, l.attrs.mtu);
    }
    let index: number | undefined;
    let prefsrc: string | null = null;
    let via: Underlay['via'];
    if (interfaceName !== '') {
      via = 'named';
      index = [...nameOf].find(([, n]) => n === interfaceName)?.[0];
      if (index === undefined) throw new DiscoveryError(`no interface ${interfaceName} (interfaces: ${[...nameOf.values()].join(', ')})`);
    } else {
      via = 'default-route';
      const routes = await socket.getRoutes();
      const defaults = routes.filter((r) => r.data.family === 2 && r.data.dstLen === 0 && (r.attrs.table ?? r.data.table) === 254 && r.attrs.oif !== undefined)
        .sort((a, b) => (a.attrs.priority ?? 0) - (b.attrs.priority ?? 0));
      const route = defaults[0];
      if (!route) throw new DiscoveryError('no IPv4 default route: give --host-ip, or --underlay-interface');
      index = route.attrs.oif;
      prefsrc = ipv4(route.attrs.prefsrc);
    }
    const name = nameOf.get(index!) ?? `#${index}`;
    const addresses = (await socket.getAddresses()).filter((a) => a.data.family === 2 && a.data.index === index);
    const ips = addresses.map((a) => ipv4(a.attrs.local) ?? ipv4(a.attrs.address)).filter((x): x is string => x !== null);
    const ip = prefsrc !== null && ips.includes(prefsrc) ? prefsrc : ips[0];
    if (ip === undefined) throw new DiscoveryError(`interface ${name} has no IPv4 address: give --host-ip`);
    const mtu = mtuOf.get(index!) ?? 1500;
    return { interface: name, ip, mtu, via };
  } finally {
    socket.socket.close();
  }
}
