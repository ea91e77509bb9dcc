// A workaround for a grpc-js bug that holds a received message's bytes a second time.
//
// grpc-js's StreamDecoder (build/src/stream-decoder.js, 1.14.x and the grpc-node main branch as
// of April 2026) collects the HTTP/2 chunks of a message being read in `readPartialMessage`,
// concatenates them into one buffer when the message is complete, and clears the list only when
// the NEXT message on the stream starts. A unary call or a stream's last message never has a next
// one: its chunks stay reachable from the call until the call ends, that is until the agent has
// applied the whole goal state and replied. For a million-neighbor state that is 170 MB of
// request held through the whole push, beside the concatenated copy the agent reads (which it
// releases once the states are stored: agent/goalstate-source.ts).
//
// The fix drops the list once a write has completed every message it started (the decoder is
// then between messages, and the list holds only bytes already concatenated). It wraps the
// decoder's `write`; nothing else of grpc-js changes. It applies only when the decoder behaves as
// 1.14's does (tried on a probe: reading state 2 while a message is half read, its chunk held;
// the message out whole, the state back); otherwise it does nothing and says so, and the agent
// works as before, holding the chunks.
import { createRequire } from 'node:module';

/** The decoder's state while it is reading a message's bytes (ReadState.READING_MESSAGE). */
const READING_MESSAGE = 2;
const PATCHED = Symbol.for('aca.grpcDecoderReleasesChunks');
const ORIGINAL = Symbol.for('aca.grpcDecoderOriginalWrite');

interface DecoderLike {
  readState: number;
  readPartialMessage: unknown[];
}
type Write = ((this: DecoderLike, data: Buffer) => Buffer[]) & { [PATCHED]?: true; [ORIGINAL]?: Write };

type DecoderClass = (new (maxMessageLength: number) => Partial<DecoderLike>) & { prototype: { write: Write } };

export type DecoderFix = 'applied' | 'already' | `not applied: ${string}`;

/** The grpc-js StreamDecoder class the agent's gRPC server uses, or why it cannot be had. */
export function grpcStreamDecoder(): DecoderClass | string {
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@grpc/grpc-js/build/src/stream-decoder.js') as { StreamDecoder?: unknown };
    const cls = mod.StreamDecoder as DecoderClass | undefined;
    if (typeof cls !== 'function' || typeof cls.prototype?.write !== 'function') return 'grpc-js has no StreamDecoder.write';
    // The original write (the wrap, once applied, keeps it as its own), tried on a probe.
    const write = cls.prototype.write[ORIGINAL] ?? cls.prototype.write;
    // What the wrap relies on, tried: a message's header and first byte leave the decoder
    // reading it (state 2) with that byte held; its last byte brings it out and the state back.
    const probe = new cls(-1);
    const head = Buffer.from([0, 0, 0, 0, 2, 7]);
    const first = typeof probe.readState === 'number' && Array.isArray(probe.readPartialMessage) ? write.call(probe as DecoderLike, head) : null;
    const readingOne = first !== null && first.length === 0 && probe.readState === READING_MESSAGE && probe.readPartialMessage?.length === 1;
    const out = readingOne ? write.call(probe as DecoderLike, Buffer.from([9])) : [];
    if (!readingOne || out.length !== 1 || probe.readState === READING_MESSAGE || !out[0]!.equals(Buffer.from([0, 0, 0, 0, 2, 7, 9]))) {
      return 'grpc-js\'s StreamDecoder does not behave as 1.14\'s did';
    }
    return cls;
  } catch (e) {
    return `grpc-js's stream decoder cannot be loaded: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** Idempotent. */
export function releaseDecodedChunks(): DecoderFix {
  const cls = grpcStreamDecoder();
  if (typeof cls === 'string') return `not applied: ${cls}`;
  const write = cls.prototype.write;
  if (write[PATCHED]) return 'already';
  const patched: Write = function (this: DecoderLike, data: Buffer): Buffer[] {
    const out = write.call(this, data);
    // Messages came out and none is half read: the list holds only what they were made of.
    if (out.length > 0 && this.readState !== READING_MESSAGE && this.readPartialMessage.length > 0) {
      this.readPartialMessage = [];
    }
    return out;
  };
  patched[PATCHED] = true;
  patched[ORIGINAL] = write;
  cls.prototype.write = patched;
  return 'applied';
}
