// A standing fuzz suite for the intake, through the real parts: raw bytes over gRPC into the
// agent's own decoder, then validation, the store and the simulator dataplane. Byte-mutated real
// goal states and field-level generated ones must never crash or hang the agent; every state of
// a decodable message gets a status; resources the fuzz does not name keep their values and
// their flows; memory stays bounded.
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import fc from 'fast-check';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { GoalStateOperationReply } from '../proto/gen/alcor/goalstateprovisioner.js';
import type { Agent } from '../agent/daemon.js';
import type { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { formatFlow } from '../dataplane/flow-text.js';
import { neighborState, portState, subnetState, withAgent } from './helpers/agents.js';
import { type RawClient, rawClient } from './helpers/raw-grpc.js';

/** One raw message on its own stream: the reply, or the gRPC error that ended the stream. */
function pushRaw(c: RawClient, bytes: Buffer): Promise<{ reply: GoalStateOperationReply | null; error: grpc.ServiceError | null }> {
  return new Promise((resolve) => {
    let reply: GoalStateOperationReply | null = null;
    const call = c.push();
    call.on('data', (b: Buffer) => { reply = GoalStateOperationReply.decode(b); });
    call.on('error', (e: grpc.ServiceError) => resolve({ reply, error: e }));
    call.on('end', () => resolve({ reply, error: null }));
    call.write(bytes);
    call.end();
  });
}

/** The resources the fuzz never names, and the goal state that made them. */
const BASE = GoalStateV2.fromPartial({
  subnetStates: { KEEP: subnetState('KEEP', { cidr: '10.200.0.0/16', tunnelId: '9999', networkType: 3 }) },
  portStates: { KP1: portState('KP1', { macAddress: 'fa:16:3e:aa:bb:01', fixedIps: [{ subnetId: 'KEEP', ipAddress: '10.200.0.5' }] }) },
  neighborStates: Object.fromEntries([1, 2, 3].map((i) => [`L2/KN${i}`, neighborState(`KN${i}`, 0x7f0000 + i, { fixedIps: [{ neighborType: 0, subnetId: 'KEEP', ipAddress: `10.200.1.${i}`, arionGroup: '', tunnelId: 0 }] })])),
});

/** What the fuzz must not touch: the base resources and their flows. */
function kept(agent: Agent): string {
  const dp = agent.dataplane as FlowDataplane;
  const flows = dp.flows().filter((f) => (dp.flowOwners(f).some((o) => /:(KP1|L2\/KN\d)$/.test(o)))).map(formatFlow).sort();
  const store = ['KP1'].map((k) => JSON.stringify(agent.store.get('port', k)))
    .concat([1, 2, 3].map((i) => JSON.stringify(agent.store.get('neighbor', `L2/KN${i}`))), JSON.stringify(agent.store.get('subnet', 'KEEP')));
  return JSON.stringify({ flows, store });
}

/** A real-shaped goal state naming other resources only (a subnet, ports, neighbors, DHCP, a router, a group). */
function victim(): Uint8Array {
  const gs = GoalStateV2.fromPartial({
    subnetStates: { S: subnetState('S', { cidr: '10.1.0.0/24', gateway: { ipAddress: '10.1.0.1', macAddress: 'fa:16:3e:00:01:01' } }), T: subnetState('T', { cidr: '10.2.0.0/24', tunnelId: '6001', networkType: 3, gateway: { ipAddress: '10.2.0.1', macAddress: 'fa:16:3e:00:02:01' } }) },
    portStates: { P1: portState('P1', { securityGroupIds: [{ id: 'G' }] }), P2: portState('P2', { macAddress: 'fa:16:3e:00:00:02', fixedIps: [{ subnetId: 'T', ipAddress: '10.2.0.5' }] }) },
    neighborStates: { 'L2/N1': neighborState('N1', 1, { fixedIps: [{ neighborType: 0, subnetId: 'S', ipAddress: '10.1.0.9', arionGroup: '', tunnelId: 0 }], securityGroupIds: ['G'] }), 'L3/N2': neighborState('N2', 2, { fixedIps: [{ neighborType: 1, subnetId: 'T', ipAddress: '10.2.0.9', arionGroup: '', tunnelId: 0 }] }) },
    dhcpStates: { d1: { operationType: 1, configuration: { revisionNumber: 1, requestId: '', id: 'd1', updateType: 0, subnetId: 'S', macAddress: 'fa:16:3e:00:00:01', ipv4Address: '10.1.0.5', ipv6Address: '', portHostName: 'vm' } } },
    securityGroupStates: { G: { operationType: 1, configuration: { revisionNumber: 1, requestId: '', id: 'G', updateType: 0, vpcId: 'V', name: 'g', securityGroupRules: [{ operationType: 0, securityGroupId: 'G', id: 'r', direction: 1, ethertype: 0, protocol: 0, portRangeMin: 22, portRangeMax: 22, remoteIpPrefix: '', remoteGroupId: 'G' }] } } },
    routerStates: { '10.0.0.11/R': { operationType: 0, configuration: { revisionNumber: 1, requestId: '', id: 'R', updateType: 0, hostDvrMacAddress: 'fe:16:11:00:00:01', subnetRoutingTables: [{ subnetId: 'S', routingRules: [] }, { subnetId: 'T', routingRules: [{ operationType: 0, id: 'x', name: '', destination: '192.168.0.0/16', nextHopIp: '10.2.0.9', priority: 1, routingRuleExtraInfo: undefined }] }] } } },
  });
  return GoalStateV2.encode(gs).finish();
}

/** How many states a message holds by the generated decoder, if it decodes (what the reply must at least cover). */
function stateCount(bytes: Uint8Array): number | null {
  try {
    const gs = GoalStateV2.decode(bytes);
    return [gs.vpcStates, gs.subnetStates, gs.portStates, gs.neighborStates, gs.securityGroupStates, gs.dhcpStates, gs.routerStates, gs.gatewayStates]
      .reduce((n, m) => n + Object.keys(m).length, 0);
  } catch {
    return null;
  }
}

test('byte-mutated real goal states through the real decoder and the simulator dataplane: no crash, a status for every state, the rest untouched', async (t) => {
  await withAgent(async (agent, addr) => {
    const c = rawClient(addr);
    try {
      const base = await pushRaw(c, Buffer.from(GoalStateV2.encode(BASE).finish()));
      t.true(base.reply!.operationStatuses.every((s) => s.operationStatus === 0), JSON.stringify(base.reply?.operationStatuses));
      const before = kept(agent);
      const heapBefore = process.memoryUsage().heapUsed;
      const original = victim();
      let decodable = 0;
      await fc.assert(fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.option(fc.nat(), { nil: undefined }),
        async (flips, cut) => {
          const bytes = Buffer.from(original);
          for (const [at, v] of flips) bytes[at % bytes.length] = v;
          const msg = cut === undefined ? bytes : bytes.subarray(0, cut % bytes.length);
          const expected = stateCount(msg);
          const r = await pushRaw(c, msg);
          if (r.reply) {
            decodable += 1;
            // Every state the generic decoder sees has a status; the agent decodes entry by entry,
            // so a corrupted entry the generic decoder drops or merges still gets one (INVALID_ARG).
            if (expected !== null && r.reply.operationStatuses.length < expected) return false;
          } else if (r.error?.code !== grpc.status.INVALID_ARGUMENT) return false;
          return true;
        },
      ), { numRuns: 150 });
      t.true(decodable > 0, 'some mutations still decode');
      // The base resources and their flows are exactly as before.
      t.is(kept(agent), before);
      // Alive, and serving as before.
      t.is((await fetch(`http://127.0.0.1:${agent.adminPort}/healthz`)).status, 200);
      const again = await pushRaw(c, Buffer.from(original));
      t.truthy(again.reply);
      // Bounded: 150 small messages leave no lasting growth worth a tenth of a gigabyte.
      t.true(process.memoryUsage().heapUsed - heapBefore < 100 * 1024 * 1024);
    } finally {
      c.close();
    }
  });
});

const text = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('', 'S', 'T', 'KEEP', 'KP1', '10.1.0.5', '::ffff:10.1.0.5', 'ff:ff:ff:ff:ff:ff', 'fa:16:3e:aa:bb:01', '10.200.0.5', '0.0.0.0/0', 'fe80::1'));
/** Enums (int32 on the wire, unknown values included) and revisions (uint32, -1 included). */
const enumValue = fc.oneof(fc.integer({ min: -2, max: 6 }), fc.integer({ min: -2147483648, max: 2147483647 }));
const num = fc.oneof(fc.integer({ min: -2, max: 6 }), fc.constant(4294967295), fc.nat());

test('field-level generated goal states through the real agent: a status for every state, no crash, the rest untouched', async (t) => {
  await withAgent(async (agent, addr) => {
    const c = rawClient(addr);
    try {
      await pushRaw(c, Buffer.from(GoalStateV2.encode(BASE).finish()));
      const before = kept(agent);
      await fc.assert(fc.asyncProperty(
        fc.record({
          subnets: fc.array(fc.record({ id: text, cidr: text, vni: fc.oneof(fc.constant('5001'), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(String)), type: enumValue, op: enumValue, rev: num, gwIp: text, gwMac: text }), { maxLength: 3 }),
          ports: fc.array(fc.record({ id: text, mac: text, subnet: text, ip: text, op: enumValue, rev: num, sg: fc.array(text, { maxLength: 2 }), pair: text }), { maxLength: 4 }),
          neighbors: fc.array(fc.record({ key: fc.constantFrom('L2/', 'L3/', ''), id: text, mac: text, host: text, subnet: text, ip: text, type: enumValue, op: enumValue, rev: num }), { maxLength: 4 }),
        }),
        async (g) => {
          // Never the base resources' own keys: what they keep is checked after.
          const safe = (id: string) => (/^(KEEP|KP1|KN\d)$/.test(id) ? `x${id}` : id);
          const gs = GoalStateV2.fromPartial({});
          g.subnets.forEach((s, i) => { gs.subnetStates[`${safe(s.id)}#${i}`] = { operationType: s.op, configuration: { ...subnetState(safe(s.id)).configuration!, cidr: s.cidr, tunnelId: s.vni, networkType: s.type, revisionNumber: s.rev >>> 0, gateway: { ipAddress: s.gwIp, macAddress: s.gwMac } } }; });
          g.ports.forEach((p, i) => { gs.portStates[`${safe(p.id)}#${i}`] = { operationType: p.op, configuration: { ...portState(safe(p.id)).configuration!, macAddress: p.mac, revisionNumber: p.rev >>> 0, fixedIps: [{ subnetId: p.subnet, ipAddress: p.ip }], securityGroupIds: p.sg.map((id) => ({ id })), allowAddressPairs: [{ ipAddress: p.pair, macAddress: '' }] } }; });
          g.neighbors.forEach((n, i) => { gs.neighborStates[`${n.key}${safe(n.id)}#${i}`] = { operationType: n.op, configuration: { ...neighborState(safe(n.id), i).configuration!, macAddress: n.mac, hostIpAddress: n.host, revisionNumber: n.rev >>> 0, fixedIps: [{ neighborType: n.type, subnetId: n.subnet, ipAddress: n.ip, arionGroup: '', tunnelId: 0 }] } }; });
          const bytes = Buffer.from(GoalStateV2.encode(gs).finish());
          const r = await pushRaw(c, bytes);
          return r.reply !== null && r.reply.operationStatuses.length === g.subnets.length + g.ports.length + g.neighbors.length;
        },
      ), { numRuns: 120 });
      t.is(kept(agent), before);
      t.is((await fetch(`http://127.0.0.1:${agent.adminPort}/healthz`)).status, 200);
    } finally {
      c.close();
    }
  });
});
