// agent/grpc-decoder-fix.ts: grpc-js's StreamDecoder holds a completed message's chunks until the
// next message starts; the agent's wrap drops them as soon as the message is out. Serial: the
// first test shows the installed grpc-js as it is (and fails the day upstream fixes it, telling
// us to drop the wrap), the others run on the wrapped decoder.
import { createRequire } from 'node:module';
import test from 'ava';
import { grpcStreamDecoder, releaseDecodedChunks } from '../agent/grpc-decoder-fix.js';

interface Decoder {
  write(data: Buffer): Buffer[];
  readState: number;
  readPartialMessage: Buffer[];
}

const newDecoder = (): Decoder => {
  const cls = grpcStreamDecoder();
  if (typeof cls === 'string') throw new Error(cls);
  return new (cls as unknown as new (max: number) => Decoder)(-1);
};

/** A gRPC length-prefixed message. */
const frame = (body: Buffer): Buffer => {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
};

/** `bytes` in pieces of `size` (HTTP/2 DATA frames). */
const pieces = (bytes: Buffer, size: number): Buffer[] => {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return out;
};

const body = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255));

test.serial('grpc-js as installed keeps a completed message\'s chunks until the next message starts', (t) => {
  const d = newDecoder();
  const msg = body(100_000, 1);
  const out: Buffer[] = [];
  for (const p of pieces(frame(msg), 16_384)) out.push(...d.write(p));
  t.is(out.length, 1);
  t.true(d.readPartialMessage.length > 1, 'the chunks of the message already handed out are still held');
});

test.serial('after the fix a completed message\'s chunks are dropped, and messages come out whole', (t) => {
  t.is(releaseDecodedChunks(), 'applied');
  t.is(releaseDecodedChunks(), 'already', 'idempotent');
  const d = newDecoder();
  const a = body(100_000, 1);
  const b = body(50_000, 2);
  const c = body(0, 3);
  // A stream of three messages cut across their boundaries, as HTTP/2 frames cut them.
  const stream = Buffer.concat([frame(a), frame(b), frame(c)]);
  const out: Buffer[] = [];
  for (const p of pieces(stream, 7_777)) {
    out.push(...d.write(p));
    if (d.readState !== 2) t.is(d.readPartialMessage.length, 0, 'nothing held between messages');
  }
  t.deepEqual(out.map((m) => m.subarray(5)), [a, b, c]);
  t.is(d.readPartialMessage.length, 0);
});

test.serial('a message half read keeps its chunks', (t) => {
  const d = newDecoder();
  const a = body(30_000, 4);
  const b = body(30_000, 5);
  const stream = Buffer.concat([frame(a), frame(b)]);
  // The first write completes a and starts b: b's first bytes must stay.
  const cut = 5 + a.length + 5 + 1_000;
  const first = d.write(stream.subarray(0, cut));
  t.is(first.length, 1);
  t.is(d.readState, 2);
  t.is(d.readPartialMessage.length, 1, 'the started message keeps what it has read');
  const second = d.write(stream.subarray(cut));
  t.deepEqual(second.map((m) => m.subarray(5)), [b]);
});

test.serial('a decoder that does not behave as 1.14\'s is left alone, and says why', (t) => {
  const cls = grpcStreamDecoder();
  if (typeof cls === 'string') throw new Error(cls);
  const real = cls.prototype.write;
  // A later grpc-js whose states differ (here: it never reports reading a message).
  cls.prototype.write = function (this: Decoder, data: Buffer): Buffer[] {
    const out = real.call(this, data);
    this.readState = 0;
    return out;
  } as typeof real;
  try {
    const fix = releaseDecodedChunks();
    t.regex(fix, /^not applied: grpc-js's StreamDecoder does not behave as 1\.14's did/);
  } finally {
    cls.prototype.write = real;
  }
  t.is(releaseDecodedChunks(), 'already', 'the real one, wrapped before, is as it was');
});

test('the decoder the fix wraps is the one grpc-js\'s server reads requests with', (t) => {
  const require = createRequire(import.meta.url);
  const decoderPath = require.resolve('@grpc/grpc-js/build/src/stream-decoder.js');
  const serverPath = require.resolve('@grpc/grpc-js/build/src/server-interceptors.js');
  require('@grpc/grpc-js');
  const server = require.cache[serverPath];
  t.truthy(server, 'grpc-js loads its server call module');
  t.true(server!.children.some((m) => m.filename === decoderPath), 'the server call module loads the same stream-decoder module');
});
