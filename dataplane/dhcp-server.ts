// The DHCP server's decisions (RFC 2131), as a pure function: a parsed client message and the
// bindings in, the reply (or the reason there is none) out. Packet bytes and the switch are the
// caller's business (dataplane/dhcp-handler.ts). Server identity = the subnet gateway, so
// unicast renewals to the gateway reach the agent too.

export const DHCP = {
  DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8,
} as const;
export type DhcpMessageType = (typeof DHCP)[keyof typeof DHCP];

/** What the server needs of a client message. Addresses are dotted quads; '0.0.0.0' = unset. */
export interface DhcpClientMessage {
  type: number;
  xid: number;
  /** The broadcast bit of the flags field. */
  broadcast: boolean;
  ciaddr: string;
  giaddr: string;
  /** Client hardware address, lower-case colon form. */
  chaddr: string;
  /** Option 50. */
  requestedIp: string | null;
  /** Option 54. */
  serverId: string | null;
}

/** One address the controller bound to a MAC, joined with its subnet. */
export interface DhcpLease {
  ip: string;
  prefix: number;
  /** The subnet gateway: default router and our server identity. */
  gateway: { ip: string; mac: string } | null;
  dns: string[];
  hostName: string;
  mtu: number;
}

export interface DhcpServerConfig {
  leaseSeconds: number;
  domain: string;
}

export interface DhcpReply {
  type: typeof DHCP.OFFER | typeof DHCP.ACK | typeof DHCP.NAK;
  xid: number;
  broadcastFlag: boolean;
  ciaddr: string;
  yiaddr: string;
  chaddr: string;
  serverId: string;
  serverMac: string;
  /** Where the reply frame goes. */
  to: { mac: string; ip: string };
  options: DhcpOptionValues;
}

export interface DhcpOptionValues {
  subnetMask?: string;
  router?: string;
  dns?: string[];
  hostName?: string;
  domain?: string;
  mtu?: number;
  leaseSeconds?: number;
  renewalSeconds?: number;
  rebindingSeconds?: number;
  message?: string;
}

export type DhcpDecision =
  | { reply: DhcpReply }
  | { ignored: string };

const BROADCAST = { mac: 'ff:ff:ff:ff:ff:ff', ip: '255.255.255.255' };

export function prefixToMask(prefix: number): string {
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [m >>> 24, (m >>> 16) & 255, (m >>> 8) & 255, m & 255].join('.');
}

const unset = (ip: string | null): boolean => ip === null || ip === '0.0.0.0';

export function decide(msg: DhcpClientMessage, lease: DhcpLease | undefined, config: DhcpServerConfig): DhcpDecision {
  if (!lease) return { ignored: `no DHCP binding for ${msg.chaddr}` };
  if (!lease.gateway) return { ignored: `subnet of ${lease.ip} has no gateway to serve DHCP from` };
  const server = lease.gateway;

  const base = {
    xid: msg.xid, broadcastFlag: msg.broadcast, chaddr: msg.chaddr, serverId: server.ip, serverMac: server.mac,
  };
  const full = (): DhcpOptionValues => ({
    subnetMask: prefixToMask(lease.prefix), router: server.ip,
    ...(lease.dns.length > 0 ? { dns: lease.dns } : {}),
    ...(lease.hostName !== '' ? { hostName: lease.hostName } : {}),
    ...(config.domain !== '' ? { domain: config.domain } : {}),
    mtu: lease.mtu,
    leaseSeconds: config.leaseSeconds,
    renewalSeconds: Math.floor(config.leaseSeconds / 2),
    rebindingSeconds: Math.floor((config.leaseSeconds * 7) / 8),
  });
  /** RFC 2131 §4.1: to ciaddr when the client has one, else broadcast if asked, else yiaddr. */
  const destination = (yiaddr: string): { mac: string; ip: string } => {
    if (!unset(msg.ciaddr)) return { mac: msg.chaddr, ip: msg.ciaddr };
    if (msg.broadcast) return BROADCAST;
    return { mac: msg.chaddr, ip: yiaddr };
  };
  const ack = (yiaddr: string): DhcpDecision => ({
    reply: { ...base, type: DHCP.ACK, ciaddr: msg.ciaddr, yiaddr, to: destination(yiaddr), options: full() },
  });
  const nak = (why: string): DhcpDecision => ({
    // A NAK is always broadcast (the client may have no usable address).
    reply: { ...base, type: DHCP.NAK, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', to: BROADCAST, options: { message: why } },
  });

  switch (msg.type) {
    case DHCP.DISCOVER:
      return { reply: { ...base, type: DHCP.OFFER, ciaddr: '0.0.0.0', yiaddr: lease.ip, to: destination(lease.ip), options: full() } };
    case DHCP.REQUEST: {
      if (msg.serverId !== null) {
        // SELECTING: the client answers an OFFER; another server's OFFER is not our business.
        if (msg.serverId !== server.ip) return { ignored: `REQUEST selects server ${msg.serverId}, not ${server.ip}` };
        if (msg.requestedIp !== lease.ip) return nak(`requested ${msg.requestedIp ?? 'no address'}, bound ${lease.ip}`);
        return ack(lease.ip);
      }
      if (!unset(msg.requestedIp)) {
        // INIT-REBOOT: the client checks its remembered address.
        if (msg.requestedIp !== lease.ip) return nak(`requested ${msg.requestedIp}, bound ${lease.ip}`);
        return ack(lease.ip);
      }
      // RENEWING (unicast) or REBINDING (broadcast): ciaddr is the address in use.
      if (unset(msg.ciaddr)) return { ignored: 'REQUEST with neither server id, requested address nor ciaddr' };
      if (msg.ciaddr !== lease.ip) return nak(`renewing ${msg.ciaddr}, bound ${lease.ip}`);
      return ack(lease.ip);
    }
    case DHCP.INFORM: {
      // Configuration only: no address, no lease times (RFC 2131 §3.4).
      const { leaseSeconds: _l, renewalSeconds: _r, rebindingSeconds: _b, ...rest } = full();
      return { reply: { ...base, type: DHCP.ACK, ciaddr: msg.ciaddr, yiaddr: '0.0.0.0', to: destination('0.0.0.0'), options: rest } };
    }
    case DHCP.RELEASE:
      return { ignored: `RELEASE of ${msg.ciaddr} by ${msg.chaddr} (the binding stays with the controller's port)` };
    case DHCP.DECLINE:
      return { ignored: `DECLINE of ${msg.requestedIp ?? '?'} by ${msg.chaddr}: the address is in use on the network` };
    default:
      return { ignored: `message type ${msg.type} is not for a server` };
  }
}

/** Encapsulation overhead subtracted from the underlay MTU for the MTU option. */
export const ENCAP_OVERHEAD = { vxlan: 50, geneve: 58 } as const;
