// Packet parsing in the simulator and its endpoints, fuzzed: random and mutated frames never
// crash the field extractor, the header writer or the endpoint parser; valid frames survive a
// round trip through fields and back byte for byte.
import test from 'ava';
import fc from 'fast-check';
import { arpFrame, icmpEcho, ipv4Frame, parseFrame, udp } from '../packets/frames.js';
import { W, get, getMac } from '../ovs-sim/base/flow.js';
import { PacketError, extract, writeBack } from '../ovs-sim/packet/packet.js';

const mac = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 }).map((b) => b.map((x) => x.toString(16).padStart(2, '0')).join(':'));
const frameArb = fc.oneof(
  fc.tuple(fc.constantFrom<1 | 2>(1, 2), mac, fc.ipV4(), mac, fc.ipV4()).map(([op, sha, spa, tha, tpa]) => arpFrame(op, sha, spa, tha, tpa)),
  fc.tuple(mac, mac, fc.ipV4(), fc.ipV4(), fc.nat({ max: 65535 }), fc.nat({ max: 65535 })).map(([d, s, a, b, id, seq]) => ipv4Frame(d, s, a, b, 1, icmpEcho(8, id, seq))),
  fc.tuple(mac, mac, fc.ipV4(), fc.ipV4(), fc.nat({ max: 65535 }), fc.nat({ max: 65535 }), fc.uint8Array({ maxLength: 64 })).map(([d, s, a, b, sp, dp, payload]) => ipv4Frame(d, s, a, b, 17, udp(sp, dp, payload))),
);

test('valid frames: fields and back give the same bytes; the endpoint parser reads them', (t) => {
  fc.assert(fc.property(frameArb, fc.nat({ max: 65535 }), (f, port) => {
    const fields = extract(f, port);
    t.is(fields[W.in_port], port);
    t.deepEqual(Buffer.from(writeBack(f, fields)), Buffer.from(f));
    return parseFrame(f) !== null;
  }), { numRuns: 500 });
});

test('ARP fields are where OVS puts them (op in nw_proto, addresses in nw_src/nw_dst)', (t) => {
  const f = arpFrame(1, '00:aa:bb:15:eb:3f', '10.1.0.5', '00:00:00:00:00:00', '10.1.0.4');
  const p = extract(f, 1);
  t.is(get(p, 'dl_type'), 0x0806n);
  t.is(get(p, 'nw_proto'), 1n);
  t.is(get(p, 'nw_src'), 0x0a010005n);
  t.is(get(p, 'nw_dst'), 0x0a010004n);
  t.is(getMac(p, W.arp_sha), 0x00aabb15eb3f);
  t.is(getMac(p, W.dl_dst), 0xffffffffffff);
});

test('random and mutated bytes never crash extraction, write-back or endpoint parsing', (t) => {
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), frameArb.chain((f) => fc.tuple(fc.constant(f), fc.nat({ max: f.length }), fc.array(fc.tuple(fc.nat({ max: f.length - 1 }), fc.integer({ min: 0, max: 255 })), { maxLength: 6 })).map(([g, cut, flips]) => {
    const m = Uint8Array.from(g.subarray(0, cut));
    for (const [i, v] of flips) if (i < m.length) m[i] = v;
    return m;
  }))), (bytes) => {
    parseFrame(bytes);
    try {
      const p = extract(bytes, 1);
      writeBack(bytes, p);
    } catch (e) {
      if (!(e instanceof PacketError)) return false;
    }
    return true;
  }), { numRuns: 3000 });
  t.throws(() => extract(new Uint8Array(5), 1), { instanceOf: PacketError });
});

test('writing back a modified IPv4 header fixes its checksum', (t) => {
  const f = ipv4Frame('00:00:00:00:00:02', '00:00:00:00:00:01', '10.0.0.1', '10.0.0.2', 1, icmpEcho(8, 1, 1));
  const p = extract(f, 1);
  p[W.nw_dst] = 0x0a000063;
  p[W.nw_ttl] = 9;
  const g = writeBack(f, p);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += (g[i]! << 8) | g[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  t.is(sum, 0xffff);
  t.is(g[22], 9);
  t.deepEqual([...g.subarray(30, 34)], [10, 0, 0, 99]);
});
