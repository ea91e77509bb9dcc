// SubscribeInfoProvisioner.PushNodeSubscribeInfo (gRPC, port 50002 by default): the controller
// (Alcor's DPM) tells the agent which Pulsar topic to consume for which key. Subscribe answers
// SUCCESS only once the broker accepted the subscription; Unsubscribe stops consuming (SUCCESS
// also when the topic was not consumed: the end state is what was asked).
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'winston';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import {
  type NodeSubscribeInfo, SubscribeInfoProvisionerService, SubscribeOperation, type SubscribeOperationReply,
} from '../proto/gen/alcor/subscribeinfoprovisioner.js';
import type { PulsarSource } from './pulsar-source.js';

export class SubscribeServer {
  private server: grpc.Server | null = null;
  port = 0;

  constructor(private readonly source: PulsarSource, private readonly log: Logger, private readonly listen: string, private readonly credentials?: grpc.ServerCredentials) {}

  async start(): Promise<number> {
    const server = new grpc.Server();
    server.addService(SubscribeInfoProvisionerService, {
      pushNodeSubscribeInfo: (call: grpc.ServerUnaryCall<NodeSubscribeInfo, SubscribeOperationReply>, cb: grpc.sendUnaryData<SubscribeOperationReply>) => {
        void this.handle(call.request).then((status) => cb(null, { operationStatus: status }));
      },
    });
    this.port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.listen, this.credentials ?? grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
    });
    this.server = server;
    this.log.info('subscribe server listening', { address: this.listen, port: this.port });
    return this.port;
  }

  private async handle(req: NodeSubscribeInfo): Promise<OperationStatus> {
    const { subscribeOperation: op, topic, key } = req;
    if (topic === '') {
      this.log.warn('PushNodeSubscribeInfo without a topic refused', { op });
      return OperationStatus.INVALID_ARG;
    }
    try {
      if (op === SubscribeOperation.Subscribe) {
        await this.source.subscribe(topic, key);
        return OperationStatus.SUCCESS;
      }
      if (op === SubscribeOperation.Unsubscribe) {
        await this.source.unsubscribe(topic);
        return OperationStatus.SUCCESS;
      }
      this.log.warn('PushNodeSubscribeInfo with an unknown operation refused', { op, topic });
      return OperationStatus.INVALID_ARG;
    } catch (e) {
      this.log.warn('PushNodeSubscribeInfo failed', { op: op === SubscribeOperation.Subscribe ? 'Subscribe' : 'Unsubscribe', topic, key, error: (e as Error).message });
      return OperationStatus.FAILURE;
    }
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
