// DHCP packet-ins to replies: parse the client's frame, check it came from the port that owns
// the MAC, join the controller's DHCP binding with its subnet, decide (dhcp-server.ts) and send
// the reply out of the port it came from. Malformed frames and unbound MACs are counted.
import type { PacketIn, PacketIo } from './backend.js';
import { ENCAP_OVERHEAD, type DhcpLease, type DhcpServerConfig, decide } from './dhcp-server.js';
import { WireError, buildDhcpReplyFrame, parseDhcpFrame } from './dhcp-wire.js';
import type { ResourceView } from './model.js';
import type { PortBindings } from './bindings.js';
import { type Topology, networkOf } from './topology.js';

export interface DhcpSettings extends DhcpServerConfig {
  /** DNS servers for subnets whose dns_entry_list is empty. */
  dns: string[];
  /** MTU of the underlay; the MTU option subtracts the encapsulation overhead. */
  underlayMtu: number;
}

export const DEFAULT_DHCP: DhcpSettings = { leaseSeconds: 86400, domain: '', dns: [], underlayMtu: 1500 };

export interface DhcpCounters {
  replies: number;
  ignored: number;
  malformed: number;
}

export class DhcpHandler {
  readonly counters: DhcpCounters = { replies: 0, ignored: 0, malformed: 0 };

  constructor(
    private readonly settings: DhcpSettings,
    private readonly log?: { info(m: string, meta?: Record<string, unknown>): void; warn(m: string, meta?: Record<string, unknown>): void },
  ) {}

  handle(p: PacketIn, view: ResourceView, topology: Topology, bindings: PortBindings, io: PacketIo): void {
    let msg;
    try {
      msg = parseDhcpFrame(p.data);
    } catch (e) {
      this.counters.malformed += 1;
      if (!(e instanceof WireError)) this.log?.warn('DHCP parser error', { error: String(e) });
      return;
    }
    const ignore = (why: string): void => {
      this.counters.ignored += 1;
      this.log?.info('DHCP ignored', { inPort: p.inPort, mac: msg.chaddr, reason: why });
    };
    let portMac: string | undefined;
    for (const port of view.list('port')) if (bindings.ofport(port.id) === p.inPort) portMac = port.mac;
    if (portMac !== msg.chaddr) return ignore(`chaddr ${msg.chaddr} is not the MAC of the port on OpenFlow port ${p.inPort}`);
    const lease = this.leaseFor(msg.chaddr, view, topology);
    const d = decide(msg, lease, this.settings);
    if ('ignored' in d) return ignore(d.ignored);
    io.packetOut(p.inPort, buildDhcpReplyFrame(d.reply));
    this.counters.replies += 1;
  }

  private leaseFor(mac: string, view: ResourceView, topology: Topology): DhcpLease | undefined {
    for (const key of topology.dhcpByMac.get(mac) ?? []) {
      const b = view.get('dhcp', key);
      if (!b?.ipv4) continue;
      const subnet = view.get('subnet', b.subnetId);
      const net = subnet ? networkOf(subnet) : null;
      if (!subnet || !net) continue;
      const gw = subnet.gateway;
      return {
        ip: b.ipv4, prefix: subnet.cidr.prefix,
        gateway: gw.ip !== null && gw.mac !== null && gw.ip !== '0.0.0.0' ? { ip: gw.ip, mac: gw.mac } : null,
        dns: subnet.dnsServers.length > 0 ? subnet.dnsServers : this.settings.dns,
        hostName: b.hostName,
        mtu: this.settings.underlayMtu - ENCAP_OVERHEAD[net.encap],
      };
    }
    return undefined;
  }
}
