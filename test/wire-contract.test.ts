// Field numbers as the controllers encode them, checked on hand-written bytes (not on our own
// encoder): the 2022 neighbor numbering, uint64 subnet VNI, map keys, and our extension field
// 100 being skipped by a decoder that does not know it.
import protobuf from 'protobufjs';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { GoalStateOperationReply } from '../proto/gen/alcor/goalstateprovisioner.js';
import { NeighborConfiguration } from '../proto/gen/alcor/neighbor.js';
import { SubnetConfiguration } from '../proto/gen/alcor/subnet.js';
import { RouterConfiguration } from '../proto/gen/alcor/router.js';
import { PortConfiguration } from '../proto/gen/alcor/port.js';

const str = (field: number, s: string): number[] => [(field << 3) | 2, Buffer.byteLength(s), ...Buffer.from(s)];
const msg = (field: number, body: number[]): number[] => [(field << 3) | 2, body.length, ...body];
const varint = (field: number, v: number): number[] => {
  const out = [field << 3];
  while (v >= 0x80) { out.push((v & 0x7f) | 0x80); v >>>= 7; }
  out.push(v);
  return out;
};

test('NeighborConfiguration: host_mac_address=8, host_ip_address=9, fixed_ips=10, allow_address_pairs=11', (t) => {
  const bytes = Uint8Array.from([
    ...str(3, 'P0'), ...str(5, 'V'), ...str(7, 'fa:16:3e:00:00:01'), ...str(8, 'aa:bb:cc:dd:ee:ff'), ...str(9, '10.0.0.12'),
    ...msg(10, [...varint(1, 1), ...str(2, 'S'), ...str(3, '10.1.0.4'), ...str(4, 'group1'), ...varint(5, 5001)]),
    ...msg(11, [...str(1, '10.1.0.99'), ...str(2, '00:00:00:00:00:99')]),
  ]);
  const n = NeighborConfiguration.decode(bytes);
  t.is(n.id, 'P0');
  t.is(n.macAddress, 'fa:16:3e:00:00:01');
  t.is(n.hostMacAddress, 'aa:bb:cc:dd:ee:ff');
  t.is(n.hostIpAddress, '10.0.0.12');
  t.deepEqual(n.fixedIps, [{ neighborType: 1, subnetId: 'S', ipAddress: '10.1.0.4', arionGroup: 'group1', tunnelId: 5001 }]);
  t.deepEqual(n.allowAddressPairs, [{ ipAddress: '10.1.0.99', macAddress: '00:00:00:00:00:99' }]);
  // And ours encodes to exactly those bytes.
  t.deepEqual(Buffer.from(NeighborConfiguration.encode(n).finish()), Buffer.from(bytes));
});

test('SubnetConfiguration: tunnel_id is uint64 field 9, gateway is field 10', (t) => {
  const bytes = Uint8Array.from([...str(3, 'S'), ...varint(5, 3), ...str(8, '10.1.0.0/24'), ...varint(9, 5001), ...msg(10, [...str(1, '10.1.0.1'), ...str(2, '6c:dd:ee:0:0:40')])]);
  const s = SubnetConfiguration.decode(bytes);
  t.is(s.tunnelId, '5001');
  t.is(s.networkType, 3);
  t.deepEqual(s.gateway, { ipAddress: '10.1.0.1', macAddress: '6c:dd:ee:0:0:40' });
});

test('GoalStateV2 maps: neighbor_states is field 7 keyed "L2/<id>", host_resources field 2', (t) => {
  const entry = [...str(1, 'L2/P0'), ...msg(2, [...varint(1, 1), ...msg(2, [...str(3, 'P0'), ...str(9, '10.0.0.12')])])];
  const hr = [...str(1, '10.0.0.11'), ...msg(2, msg(1, [...varint(1, 3), ...str(2, 'L2/P0')]))];
  const gs = GoalStateV2.decode(Uint8Array.from([...msg(2, hr), ...msg(7, entry)]));
  t.is(gs.neighborStates['L2/P0']?.configuration?.hostIpAddress, '10.0.0.12');
  t.is(gs.neighborStates['L2/P0']?.operationType, 1);
  t.deepEqual(gs.hostResources['10.0.0.11']?.resources, [{ type: 3, id: 'L2/P0' }]);
});

test('our reply extension (status_detail, field 100) is an unknown field to a contract-only decoder', (t) => {
  const reply = GoalStateOperationReply.encode({
    formatVersion: 0, messageTotalOperationTime: 5,
    operationStatuses: [{ resourceId: 'P1', resourceType: 2, operationType: 1, operationStatus: 2, dataplaneProgrammingTime: 0, networkConfigurationTime: 3, stateElapseTime: 4, statusDetail: 'bad MAC' }],
  }).finish();
  const tag100 = Buffer.from([0xa2, 0x06]);
  t.true(Buffer.from(reply).includes(tag100), 'field 100 is encoded with tag 0xa2 0x06 (wire type 2)');
  // A decoder built from the contract as the controllers have it: our .proto files with the
  // extension line removed (protobufjs, not our generated code). It reads every contract field
  // and skips field 100.
  const dir = new URL('../proto/', import.meta.url).pathname;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(dir, target);
  const files = ['alcor/common.proto', 'alcor/goalstateprovisioner.proto'];
  for (const f of readdirSync(join(dir, 'alcor')).filter((x) => x.endsWith('.proto'))) {
    const text = readFileSync(join(dir, 'alcor', f), 'utf8').replace(/^.*= 100;.*$/gm, '');
    protobuf.parse(text, root, { keepCase: true });
  }
  void files;
  const Reply = root.lookupType('alcor.schema.GoalStateOperationReply');
  t.falsy(Reply.lookup('GoalStateOperationStatus')?.toJSON().fields?.status_detail, 'the contract-only decoder has no field 100');
  const decoded = Reply.toObject(Reply.decode(reply), { defaults: true }) as { message_total_operation_time: number; operation_statuses: Record<string, unknown>[] };
  t.is(decoded.message_total_operation_time, 5);
  t.like(decoded.operation_statuses[0], { resource_id: 'P1', resource_type: 2, operation_type: 1, operation_status: 2, network_configuration_time: 3, state_elapse_time: 4 });
  t.false('status_detail' in decoded.operation_statuses[0]!);
});

test('the north-south extension (RouterConfiguration.external_gateway = 100, PortConfiguration.elastic_ips = 100): unknown to a contract-only decoder; messages without it are byte-identical', (t) => {
  const dir = new URL('../proto/', import.meta.url).pathname;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(dir, target);
  for (const f of readdirSync(join(dir, 'alcor')).filter((x) => x.endsWith('.proto'))) {
    protobuf.parse(readFileSync(join(dir, 'alcor', f), 'utf8').replace(/^.*= 100;.*$/gm, ''), root, { keepCase: true });
  }
  const tag100 = Buffer.from([0xa2, 0x06]);
  const base = {
    revisionNumber: 3, requestId: 'r', id: 'R1', updateType: 0, hostDvrMacAddress: 'fe:16:11:00:00:0b',
    subnetRoutingTables: [{ subnetId: 'S1', routingRules: [] }],
  };
  const withGw = RouterConfiguration.encode({
    ...base, externalGateway: { externalNetwork: 'ext', externalCidr: '203.0.113.0/24', nextHopIp: '203.0.113.1', nextHopMac: '', snat: [{ ip: '203.0.113.10', portMin: 1024, portMax: 2047 }] },
  }).finish();
  t.true(Buffer.from(withGw).includes(tag100), 'external_gateway is field 100 (tag 0xa2 0x06)');
  const Router = root.lookupType('alcor.schema.RouterConfiguration');
  t.falsy(Router.toJSON().fields?.external_gateway, 'the contract-only decoder has no field 100');
  t.like(Router.toObject(Router.decode(withGw)), { id: 'R1', host_dvr_mac_address: 'fe:16:11:00:00:0b', revision_number: 3 });
  const without = RouterConfiguration.encode({ ...base, externalGateway: undefined }).finish();
  t.deepEqual(Buffer.from(without), Buffer.from(Router.encode(Router.fromObject({ revision_number: 3, request_id: 'r', id: 'R1', host_dvr_mac_address: 'fe:16:11:00:00:0b', subnet_routing_tables: [{ subnet_id: 'S1' }] })).finish()), 'a router without it encodes as the contract does');

  const port = {
    revisionNumber: 1, requestId: '', id: 'P1', updateType: 0, vpcId: 'V', name: 'p', deviceId: '', deviceOwner: '', macAddress: 'fa:16:3e:00:00:01',
    adminStateUp: true, hostInfo: undefined, fixedIps: [{ subnetId: 'S1', ipAddress: '10.1.0.5' }], allowAddressPairs: [], securityGroupIds: [],
  };
  const withEip = PortConfiguration.encode({ ...port, elasticIps: [{ elasticIp: '203.0.113.50', fixedIp: '10.1.0.5' }] }).finish();
  t.true(Buffer.from(withEip).includes(tag100), 'elastic_ips is field 100');
  const Port = root.lookupType('alcor.schema.PortConfiguration');
  t.falsy(Port.toJSON().fields?.elastic_ips);
  t.like(Port.toObject(Port.decode(withEip)), { id: 'P1', mac_address: 'fa:16:3e:00:00:01' });
  t.false(Buffer.from(PortConfiguration.encode({ ...port, elasticIps: [] }).finish()).includes(tag100), 'a port without it carries no field 100');
});
