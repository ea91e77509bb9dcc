// DHCP frames: round trips, and property-based fuzzing of the parsers (anything malformed is a
// WireError, never a crash); the OpenFlow packet-in parser never throws either.
import test from 'ava';
import fc from 'fast-check';
import { parsePacketIn } from '../dataplane/backends/openflow.js';
import { DHCP, type DhcpClientMessage, decide } from '../dataplane/dhcp-server.js';
import { WireError, buildDhcpClientFrame, buildDhcpReplyFrame, parseDhcpFrame, parseDhcpReplyFrame } from '../dataplane/dhcp-wire.js';

const ipArb = fc.ipV4();
const macArb = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 })
  .map((b) => b.map((x) => x.toString(16).padStart(2, '0')).join(':'));
const clientArb: fc.Arbitrary<DhcpClientMessage> = fc.record({
  type: fc.integer({ min: 1, max: 8 }), xid: fc.nat({ max: 0xffffffff }), broadcast: fc.boolean(),
  ciaddr: ipArb, giaddr: ipArb, chaddr: macArb, requestedIp: fc.option(ipArb, { nil: null }), serverId: fc.option(ipArb, { nil: null }),
});

test('client frames parse back to the message they were built from', (t) => {
  fc.assert(fc.property(clientArb, (m) => {
    const back = parseDhcpFrame(buildDhcpClientFrame(m));
    t.deepEqual(back, m);
  }), { numRuns: 300 });
});

test('random bytes and truncations only ever raise WireError', (t) => {
  const valid = buildDhcpClientFrame({ type: DHCP.DISCOVER, xid: 1, broadcast: true, ciaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr: '00:11:22:33:44:55', requestedIp: null, serverId: null });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 700 }), fc.nat({ max: valid.length }), fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), (random, cut, flips) => {
    for (const input of [Buffer.from(random), valid.subarray(0, cut), Buffer.from(valid).fill(0, cut)]) {
      try { parseDhcpFrame(input); } catch (e) { if (!(e instanceof WireError)) return false; }
    }
    const mutated = Buffer.from(valid);
    for (const [i, v] of flips) mutated[i] = v;
    try { parseDhcpFrame(mutated); } catch (e) { if (!(e instanceof WireError)) return false; }
    return true;
  }), { numRuns: 2000 });
  t.throws(() => parseDhcpFrame(Buffer.alloc(10)), { instanceOf: WireError });
});

test('a reply frame carries the decided options, with valid IPv4 and UDP checksums', (t) => {
  const d = decide({ type: DHCP.DISCOVER, xid: 7, broadcast: true, ciaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr: '00:11:22:33:44:55', requestedIp: null, serverId: null },
    { ip: '10.0.0.9', prefix: 16, gateway: { ip: '10.0.0.1', mac: '6c:dd:ee:00:00:40' }, dns: ['1.1.1.1'], hostName: 'web-1', mtu: 1442 },
    { leaseSeconds: 3600, domain: 'example.internal' });
  if (!('reply' in d)) return t.fail(d.ignored);
  const frame = buildDhcpReplyFrame(d.reply);
  const r = parseDhcpReplyFrame(frame);
  t.is(r.type, DHCP.OFFER);
  t.is(r.yiaddr, '10.0.0.9');
  t.deepEqual(r.dst, { mac: 'ff:ff:ff:ff:ff:ff', ip: '255.255.255.255' });
  t.is(r.options.get(12)!.toString(), 'web-1');
  t.is(r.options.get(15)!.toString(), 'example.internal');
  t.deepEqual([...r.options.get(1)!], [255, 255, 0, 0]);
  t.is(r.options.get(51)!.readUInt32BE(0), 3600);
  t.is(r.options.get(58)!.readUInt32BE(0), 1800);
  t.is(r.options.get(59)!.readUInt32BE(0), 3150);
  // One's-complement sums over the IPv4 header and the UDP pseudo-header come to zero.
  const sum = (b: Buffer, init = 0): number => {
    let s = init;
    for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
    if (b.length % 2) s += b[b.length - 1]! << 8;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    return s;
  };
  t.is(sum(frame.subarray(14, 34)), 0xffff);
  const udpLen = frame.readUInt16BE(38);
  const pseudo = frame.readUInt16BE(26) + frame.readUInt16BE(28) + frame.readUInt16BE(30) + frame.readUInt16BE(32) + 17 + udpLen;
  t.is(sum(frame.subarray(34, 34 + udpLen), pseudo), 0xffff);
});

test('the OpenFlow packet-in parser never throws on garbage', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
    parsePacketIn(Buffer.from(bytes));
    return true;
  }), { numRuns: 2000 });
  t.is(parsePacketIn(Buffer.alloc(4)), null);
});
