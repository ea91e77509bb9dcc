// The hand-written NeighborState decoder gives exactly what the generated one gives, on any
// NeighborState (non-ASCII text, unknown fields, repeated entries), and fails where it fails.
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import test from 'ava';
import fc from 'fast-check';
import { decodeNeighborState } from '../agent/neighbor-decoder.js';
import { NeighborState } from '../proto/gen/alcor/neighbor.js';

const text = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 12 }), fc.constantFrom('', 'fa:16:3e:00:00:01', '10.0.0.12', 'L2/P0'));
const fixedIp = fc.record({ neighborType: fc.integer({ min: -3, max: 3 }), subnetId: text, ipAddress: text, arionGroup: text, tunnelId: fc.nat() });
const pair = fc.record({ ipAddress: text, macAddress: text });
const state = fc.record({
  operationType: fc.integer({ min: -2, max: 6 }),
  configuration: fc.option(fc.record({
    revisionNumber: fc.nat(), requestId: text, id: text, updateType: fc.integer({ min: -1, max: 2 }), vpcId: text, name: text,
    macAddress: text, hostMacAddress: text, hostIpAddress: text, fixedIps: fc.array(fixedIp, { maxLength: 3 }), allowAddressPairs: fc.array(pair, { maxLength: 2 }),
    securityGroupIds: fc.array(text, { maxLength: 3 }),
  }), { nil: undefined }),
});

function decodeBoth(bytes: Uint8Array): { ours: unknown; theirs: unknown } {
  const buf = Buffer.from(bytes);
  const attempt = (f: () => unknown): unknown => { try { return f(); } catch { return 'error'; } };
  return {
    ours: attempt(() => decodeNeighborState(new BinaryReader(buf), buf, buf.length)),
    theirs: attempt(() => NeighborState.decode(buf)),
  };
}

test('same result as the generated decoder on every NeighborState, with unknown fields too', (t) => {
  fc.assert(fc.property(state, fc.option(fc.tuple(fc.integer({ min: 12, max: 200 }), text), { nil: undefined }), (s, extra) => {
    const w = new BinaryWriter();
    NeighborState.encode(s, w);
    if (extra) w.uint32((extra[0] << 3) | 2).string(extra[1]); // an unknown field after the known ones
    const { ours, theirs } = decodeBoth(w.finish());
    t.deepEqual(ours, theirs);
  }), { numRuns: 1000 });
});

test('truncated and corrupted bytes fail (or decode) exactly as the generated decoder does', (t) => {
  fc.assert(fc.property(state, fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), (s, cut, flips) => {
    const full = NeighborState.encode(s).finish();
    const bytes = Uint8Array.from(full.subarray(0, full.length === 0 ? 0 : cut % (full.length + 1)));
    for (const [i, v] of flips) if (bytes.length > 0) bytes[i % bytes.length] = v;
    const { ours, theirs } = decodeBoth(bytes);
    // Where the generated decoder succeeds we must give the same object; where it fails, so must we.
    if (theirs === 'error') return ours === 'error';
    t.deepEqual(ours, theirs);
    return true;
  }), { numRuns: 2000 });
  t.pass();
});
