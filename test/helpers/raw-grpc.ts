// A gRPC client that sends raw bytes on PushGoalStatesStream: what a broken or hostile
// controller can put on the wire, past any encoder of ours.
import * as grpc from '@grpc/grpc-js';

export type RawClient = grpc.Client & { push(): grpc.ClientDuplexStream<Buffer, Buffer> };

export function rawClient(addr: string): RawClient {
  const Raw = grpc.makeGenericClientConstructor({
    push: {
      path: '/alcor.schema.GoalStateProvisioner/PushGoalStatesStream', requestStream: true, responseStream: true,
      requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b,
    },
  }, 'raw');
  return new Raw(addr, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 }) as unknown as RawClient;
}
