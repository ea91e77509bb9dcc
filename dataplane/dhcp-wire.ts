// DHCP on the wire: the client's frame (Ethernet, optional 802.1Q tags, IPv4, UDP 68→67, BOOTP
// with DHCP options) to a DhcpClientMessage, and a DhcpReply back to a frame. Parsing is
// defensive: anything malformed is a WireError, which the caller drops and counts.
import { bootp, ipBytes, ipv4Frame, udp } from '../packets/frames.js';
import type { DhcpClientMessage, DhcpOptionValues, DhcpReply } from './dhcp-server.js';

export class WireError extends Error {}

const MAGIC = 0x63825363;
const BOOTP_FIXED = 236;

export const OPT = {
  PAD: 0, SUBNET_MASK: 1, ROUTER: 3, DNS: 6, HOSTNAME: 12, DOMAIN: 15, MTU: 26, REQUESTED_IP: 50,
  LEASE: 51, MESSAGE_TYPE: 53, SERVER_ID: 54, MESSAGE: 56, RENEWAL: 58, REBINDING: 59, END: 255,
} as const;

const ip4 = (b: Buffer, off: number): string => `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
const mac = (b: Buffer, off: number): string => [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

function need(cond: boolean, why: string): asserts cond {
  if (!cond) throw new WireError(why);
}

/** The UDP payload of a DHCP client frame, with where it came from. */
export function parseDhcpFrame(frame: Buffer): DhcpClientMessage {
  need(frame.length >= 14, 'frame shorter than an Ethernet header');
  let off = 12;
  let ethertype = frame.readUInt16BE(off);
  for (let tags = 0; (ethertype === 0x8100 || ethertype === 0x88a8) && tags < 2; tags++) {
    need(frame.length >= off + 6, 'truncated VLAN tag');
    off += 4;
    ethertype = frame.readUInt16BE(off);
  }
  off += 2;
  need(ethertype === 0x0800, `ethertype 0x${ethertype.toString(16)} is not IPv4`);
  need(frame.length >= off + 20, 'truncated IPv4 header');
  const vihl = frame[off]!;
  need(vihl >> 4 === 4, 'not IPv4');
  const ihl = (vihl & 15) * 4;
  need(ihl >= 20 && frame.length >= off + ihl, 'bad IPv4 header length');
  const totalLen = frame.readUInt16BE(off + 2);
  need(totalLen >= ihl + 8 && off + totalLen <= frame.length, 'IPv4 total length does not fit the frame');
  need((frame.readUInt16BE(off + 6) & 0x3fff) === 0, 'fragmented IPv4');
  need(frame[off + 9] === 17, 'not UDP');
  const udp = off + ihl;
  const udpLen = frame.readUInt16BE(udp + 4);
  need(udpLen >= 8 && udp + udpLen <= off + totalLen, 'UDP length does not fit');
  need(frame.readUInt16BE(udp) === 68 && frame.readUInt16BE(udp + 2) === 67, 'not DHCP client to server (68→67)');
  return parseBootp(frame.subarray(udp + 8, udp + udpLen));
}

export function parseBootp(b: Buffer): DhcpClientMessage {
  need(b.length >= BOOTP_FIXED + 4, 'BOOTP message too short');
  need(b[0] === 1, 'not a BOOTREQUEST');
  need(b[1] === 1 && b[2] === 6, 'hardware type is not Ethernet');
  need(b.readUInt32BE(BOOTP_FIXED) === MAGIC, 'no DHCP magic cookie');
  let type = 0;
  let requestedIp: string | null = null;
  let serverId: string | null = null;
  let i = BOOTP_FIXED + 4;
  while (i < b.length) {
    const code = b[i]!;
    if (code === OPT.END) break;
    if (code === OPT.PAD) { i += 1; continue; }
    need(i + 1 < b.length, 'truncated option');
    const len = b[i + 1]!;
    need(i + 2 + len <= b.length, `option ${code} overruns the message`);
    const v = i + 2;
    if (code === OPT.MESSAGE_TYPE && len === 1) type = b[v]!;
    if (code === OPT.REQUESTED_IP && len === 4) requestedIp = ip4(b, v);
    if (code === OPT.SERVER_ID && len === 4) serverId = ip4(b, v);
    i = v + len;
  }
  need(type !== 0, 'no DHCP message type option');
  return {
    type, xid: b.readUInt32BE(4), broadcast: (b.readUInt16BE(10) & 0x8000) !== 0,
    ciaddr: ip4(b, 12), giaddr: ip4(b, 24), chaddr: mac(b, 28), requestedIp, serverId,
  };
}


function options(type: number, serverId: string, o: DhcpOptionValues): number[] {
  const out: number[] = [OPT.MESSAGE_TYPE, 1, type, OPT.SERVER_ID, 4, ...ipBytes(serverId)];
  const u32 = (code: number, v: number): void => { out.push(code, 4, (v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255); };
  const text = (code: number, s: string): void => {
    const bytes = [...Buffer.from(s, 'utf8').subarray(0, 255)];
    out.push(code, bytes.length, ...bytes);
  };
  if (o.leaseSeconds !== undefined) u32(OPT.LEASE, o.leaseSeconds);
  if (o.renewalSeconds !== undefined) u32(OPT.RENEWAL, o.renewalSeconds);
  if (o.rebindingSeconds !== undefined) u32(OPT.REBINDING, o.rebindingSeconds);
  if (o.subnetMask) out.push(OPT.SUBNET_MASK, 4, ...ipBytes(o.subnetMask));
  if (o.router) out.push(OPT.ROUTER, 4, ...ipBytes(o.router));
  if (o.dns && o.dns.length > 0) {
    const v4 = o.dns.filter((d) => !d.includes(':')).slice(0, 63);
    out.push(OPT.DNS, v4.length * 4, ...v4.flatMap(ipBytes));
  }
  if (o.hostName) text(OPT.HOSTNAME, o.hostName);
  if (o.domain) text(OPT.DOMAIN, o.domain);
  if (o.mtu !== undefined) out.push(OPT.MTU, 2, (o.mtu >> 8) & 255, o.mtu & 255);
  if (o.message) text(OPT.MESSAGE, o.message);
  out.push(OPT.END);
  return out;
}

/** The reply as an Ethernet/IPv4/UDP frame from the server (gateway) to the client. */
export function buildDhcpReplyFrame(r: DhcpReply): Buffer {
  const payload = bootp({
    op: 2, xid: r.xid, broadcast: r.broadcastFlag, ciaddr: r.ciaddr, yiaddr: r.yiaddr, siaddr: r.serverId, chaddr: r.chaddr,
    options: options(r.type, r.serverId, r.options),
  });
  return Buffer.from(ipv4Frame(r.to.mac, r.serverMac, r.serverId, r.to.ip, 17, udp(67, 68, payload)));
}

/** Read back a reply frame's DHCP fields (tests and tracing). */
export function parseDhcpReplyFrame(frame: Buffer): { type: number; yiaddr: string; xid: number; options: Map<number, Buffer>; dst: { mac: string; ip: string } } {
  need(frame.length >= 14 + 20 + 8 + BOOTP_FIXED + 4, 'frame too short for DHCP');
  const ip = 14;
  const ihl = (frame[ip]! & 15) * 4;
  const b = frame.subarray(ip + ihl + 8);
  need(b.readUInt32BE(BOOTP_FIXED) === MAGIC, 'no DHCP magic cookie');
  const options = new Map<number, Buffer>();
  for (let i = BOOTP_FIXED + 4; i < b.length && b[i] !== OPT.END;) {
    if (b[i] === OPT.PAD) { i += 1; continue; }
    const len = b[i + 1] ?? 0;
    options.set(b[i]!, Buffer.from(b.subarray(i + 2, i + 2 + len)));
    i += 2 + len;
  }
  return { type: options.get(OPT.MESSAGE_TYPE)?.[0] ?? 0, yiaddr: ip4(b, 16), xid: b.readUInt32BE(4), options, dst: { mac: mac(frame, 0), ip: ip4(frame, ip + 16) } };
}

/** A client's frame (DISCOVER, REQUEST, …) as a VM would send it: for tests and simulated VMs. */
export function buildDhcpClientFrame(m: DhcpClientMessage & { srcIp?: string; dstIp?: string; dstMac?: string }): Buffer {
  const opts: number[] = [OPT.MESSAGE_TYPE, 1, m.type];
  if (m.requestedIp) opts.push(OPT.REQUESTED_IP, 4, ...ipBytes(m.requestedIp));
  if (m.serverId) opts.push(OPT.SERVER_ID, 4, ...ipBytes(m.serverId));
  opts.push(55, 6, OPT.SUBNET_MASK, OPT.ROUTER, OPT.DNS, OPT.HOSTNAME, OPT.DOMAIN, OPT.MTU, OPT.END);
  const payload = bootp({ op: 1, xid: m.xid, broadcast: m.broadcast, ciaddr: m.ciaddr, giaddr: m.giaddr, chaddr: m.chaddr, options: opts });
  return Buffer.from(ipv4Frame(m.dstMac ?? 'ff:ff:ff:ff:ff:ff', m.chaddr, m.srcIp ?? m.ciaddr, m.dstIp ?? '255.255.255.255', 17, udp(68, 67, payload)));
}
