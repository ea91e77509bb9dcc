// The agent's gRPC face: alcor.schema.GoalStateProvisioner as the controllers call it.
// - PushNetworkResourceStates (V1, unary): one reply.
// - PushGoalStatesStream (V2): every message on a stream gets one reply, in order (the C++ agent
//   reads only the first). Requests arrive as raw bytes and replies leave as bytes we encode:
//   V2 states are decoded lazily, one resource at a time (agent/goalstate-source.ts), and an
//   undecodable message is a clean INVALID_ARGUMENT for its stream.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'winston';
import { GoalState } from '../proto/gen/alcor/goalstate.js';
import {
  GoalStateProvisionerService, type GoalStateOperationReply, type HostRequestReply, type NeighborRulesRequest,
} from '../proto/gen/alcor/goalstateprovisioner.js';
import { type LazyGoalStateV2, SLICED_SCAN_BYTES, scanGoalStateV2, scanGoalStateV2Sliced } from './goalstate-source.js';
import type { Intake } from './intake.js';
import type { AgentMetrics } from './metrics.js';
import { encodeReply, encodeReplyAsync } from './reply.js';
import { releaseDecodedChunks } from './grpc-decoder-fix.js';
import { YIELD_MS, slicer } from './intake.js';

export interface GrpcServerOptions {
  listen: string;
  /** Largest accepted message in bytes (grpc-js's default of 4 MB is far too small here). */
  maxMessageBytes: number;
  /** Counts goal states and resources, and times each goal state. */
  metrics?: AgentMetrics;
  /** TLS (agent/tls.ts serverCredentials); plaintext when absent. */
  credentials?: grpc.ServerCredentials;
}

const raw = (b: Buffer): Buffer => b;
const nowUs = (): number => performance.now() * 1000;

type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };
function decode<T>(decoder: (b: Uint8Array) => T, bytes: Buffer): Decoded<T> {
  try {
    return { ok: true, value: decoder(bytes) };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

async function decodeSliced(bytes: Buffer): Promise<Decoded<LazyGoalStateV2>> {
  try {
    return { ok: true, value: await scanGoalStateV2Sliced(bytes, slicer()) };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

/** The service definition with our own (de)serializers: requests arrive as raw bytes. */
const service = {
  PushNetworkResourceStates: {
    ...GoalStateProvisionerService.pushNetworkResourceStates,
    requestDeserialize: raw,
    responseSerialize: raw,
  },
  PushGoalStatesStream: {
    ...GoalStateProvisionerService.pushGoalStatesStream,
    requestDeserialize: raw,
    responseSerialize: raw,
  },
  RequestGoalStates: GoalStateProvisionerService.requestGoalStates,
  PushGoalstates: GoalStateProvisionerService.pushGoalstates,
} as unknown as grpc.ServiceDefinition;

export class GrpcServer {
  private server: grpc.Server | null = null;
  port = 0;

  constructor(private readonly intake: Intake, private readonly log: Logger, private readonly opts: GrpcServerOptions) {}

  async start(): Promise<number> {
    // A received message's chunks would otherwise stay held until its call ends (agent/grpc-decoder-fix.ts).
    const fix = releaseDecodedChunks();
    if (fix.startsWith('not applied')) this.log.warn('grpc-js keeps each received message\'s chunks until its call ends', { fix });
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.opts.maxMessageBytes,
      'grpc.max_send_message_length': -1,
    });
    server.addService(service, {
      PushNetworkResourceStates: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const received = nowUs();
        const gs = decode((b) => GoalState.decode(b), call.request);
        if (!gs.ok) {
          this.opts.metrics?.goalState('unary', 0, null, 'undecodable');
          cb({ code: grpc.status.INVALID_ARGUMENT, details: `undecodable GoalState: ${gs.error}` });
          return;
        }
        // A client that goes away (cancels, or its deadline passes) stops what is not stored yet.
        const gone = new AbortController();
        call.on('cancelled', () => gone.abort());
        this.intake.apply({ v1: gs.value }, received, gone.signal).then(async (r) => {
          this.opts.metrics?.goalState('unary', r.totalUs / 1e6, r.results);
          // Nobody to answer: the reply is not even built.
          if (gone.signal.aborted) return;
          cb(null, r.results.length > 4096 ? await encodeReplyAsync(r, YIELD_MS) : encodeReply(r));
        }).catch((e: unknown) => {
          this.opts.metrics?.goalState('unary', 0, null, 'error');
          cb({ code: grpc.status.INTERNAL, details: String(e) });
        });
      },
      PushGoalStatesStream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.serveStream(call),
      RequestGoalStates: (_call: unknown, cb: grpc.sendUnaryData<HostRequestReply>) => {
        cb({ code: grpc.status.UNIMPLEMENTED, details: 'RequestGoalStates is served by the controller (NCM), not by agents' });
      },
      PushGoalstates: (_call: grpc.ServerUnaryCall<NeighborRulesRequest, GoalStateOperationReply>, cb: grpc.sendUnaryData<GoalStateOperationReply>) => {
        cb({ code: grpc.status.UNIMPLEMENTED, details: 'PushGoalstates is served by the Arion master, not by compute agents' });
      },
    });
    this.port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.opts.listen, this.opts.credentials ?? grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
    });
    this.server = server;
    const tls = this.opts.credentials?._isSecure() ?? false;
    this.log.info('gRPC server listening', { address: this.opts.listen, port: this.port, maxMessageBytes: this.opts.maxMessageBytes, tls });
    return this.port;
  }

  private serveStream(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    // Replies are written in message order: each message's reply waits for the previous one.
    let previous: Promise<void> = Promise.resolve();
    let failed = false;
    // A client that goes away (cancels, or its deadline passes) stops what is not stored yet.
    const gone = new AbortController();
    call.on('cancelled', () => gone.abort());
    const handle = (gs: Decoded<LazyGoalStateV2>, received: number, size: number): void => {
      if (!gs.ok) {
        failed = true;
        this.opts.metrics?.goalState('stream', 0, null, 'undecodable');
        const reason = gs.error;
        this.log.warn('undecodable GoalStateV2 on stream', { error: reason, bytes: size });
        // Replies already owed are written first; then the stream ends with the error status.
        // (No closure here names gs: it would keep every message's bytes until its reply.)
        previous = previous.then(() => {
          call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `undecodable GoalStateV2: ${reason}` });
        });
        return;
      }
      // Apply now (store order = arrival order); reply when committed, in order.
      const applied = this.intake.apply({ source: gs.value }, received, gone.signal);
      previous = previous.then(async () => {
        const r = await applied;
        this.opts.metrics?.goalState('stream', r.totalUs / 1e6, r.results);
        // Nobody to answer: the reply (a million statuses can take seconds) is not even built.
        if (gone.signal.aborted || !call.writable) return;
        const reply = r.results.length > 4096 ? await encodeReplyAsync(r, YIELD_MS) : encodeReply(r);
        await new Promise<void>((resolve) => {
          if (call.write(reply)) resolve();
          else call.once('drain', () => resolve());
        });
      }).catch((e: unknown) => {
        this.opts.metrics?.goalState('stream', 0, null, 'error');
        this.log.error('stream reply failed', { error: String(e) });
      });
    };
    // Messages of this stream whose (sliced) scan is not done yet, and the chain of them: a
    // message enters the intake only after the ones before it on its stream.
    let scanning = 0;
    let scanned: Promise<void> = Promise.resolve();
    call.on('data', (bytes: Buffer) => {
      if (failed) return;
      const received = nowUs();
      if (scanning === 0 && bytes.length <= SLICED_SCAN_BYTES) {
        handle(decode(scanGoalStateV2, bytes), received, bytes.length);
        return;
      }
      scanning += 1;
      scanned = scanned
        .then(async () => {
          const gs = bytes.length <= SLICED_SCAN_BYTES ? decode(scanGoalStateV2, bytes) : await decodeSliced(bytes);
          if (!failed) handle(gs, received, bytes.length);
        })
        .catch((e: unknown) => { this.log.error('stream message not handled', { error: String(e) }); })
        .finally(() => { scanning -= 1; });
    });
    call.on('end', () => {
      // Every message scanned and handed on, then every reply written.
      void scanned.then(() => previous).then(() => { if (!failed) call.end(); });
    });
    call.on('error', (e) => this.log.debug('stream error', { error: String(e) }));
  }

  async stop(graceMs = 2000): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, graceMs);
      server.tryShutdown(() => { clearTimeout(timer); resolve(); });
    });
  }
}
