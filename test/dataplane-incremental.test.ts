// Incremental equals recompute: random sequences of goal states, applied one by one through the
// intake, must leave exactly the flows one full computation over the final store gives; and
// deleting everything must return to the fixed baseline.
import test from 'ava';
import fc from 'fast-check';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { Intake } from '../agent/intake.js';
import { silentLogger } from '../agent/log.js';
import { ResourceStore } from '../agent/store.js';
import { DryRunBackend } from '../dataplane/backend.js';
import { type Flow, flowKey } from '../dataplane/flow.js';
import { formatFlow } from '../dataplane/flow-text.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';

const HOST = '10.0.0.11';
const SUBNETS = ['S1', 'S2', 'S3'];
const op = fc.constantFrom(1, 2, 4, 0); // CREATE, UPDATE, DELETE, INFO

const subnetArb = fc.record({
  id: fc.constantFrom(...SUBNETS), op, vni: fc.constantFrom(100, 200), geneve: fc.boolean(), gw: fc.boolean(),
});
const portArb = fc.record({
  id: fc.constantFrom('P1', 'P2', 'P3', 'P4'), op, subnet: fc.constantFrom(...SUBNETS), host: fc.integer({ min: 2, max: 250 }),
  mac: fc.integer({ min: 1, max: 40 }), up: fc.boolean(),
});
const neighborArb = fc.record({
  id: fc.constantFrom('N1', 'N2', 'N3', 'N4', 'N5', 'P1'), op, subnet: fc.constantFrom(...SUBNETS), host: fc.integer({ min: 2, max: 250 }),
  mac: fc.integer({ min: 41, max: 80 }), where: fc.constantFrom(HOST, '10.0.0.12', '10.0.0.13'),
});
const stepArb = fc.record({
  subnets: fc.array(subnetArb, { maxLength: 2 }), ports: fc.array(portArb, { maxLength: 3 }), neighbors: fc.array(neighborArb, { maxLength: 4 }),
});

type Step = fc.Arbitrary<unknown> extends never ? never : ReturnType<typeof stepArb.generate>['value'];

const mac = (n: number): string => `fa:16:3e:00:00:${n.toString(16).padStart(2, '0')}`;

function goalState(step: Step): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({});
  for (const s of step.subnets) {
    gs.subnetStates[s.id] = { operationType: s.op, configuration: {
      revisionNumber: 0, requestId: '', id: s.id, updateType: 0, networkType: s.geneve ? 3 : 0, vpcId: 'V', name: '',
      cidr: '10.1.0.0/16', tunnelId: String(s.vni), gateway: s.gw ? { ipAddress: '10.1.0.1', macAddress: mac(99) } : undefined,
      dhcpEnable: true, extraDhcpOptions: [], dnsEntryList: [], availabilityZone: '' } };
  }
  for (const p of step.ports) {
    gs.portStates[p.id] = { operationType: p.op, configuration: {
      revisionNumber: 0, requestId: '', id: p.id, updateType: 1, vpcId: 'V', name: '', deviceId: '', deviceOwner: '', macAddress: mac(p.mac),
      adminStateUp: p.up, hostInfo: undefined, fixedIps: [{ subnetId: p.subnet, ipAddress: `10.1.0.${p.host}` }], allowAddressPairs: [], securityGroupIds: [] } };
  }
  for (const n of step.neighbors) {
    gs.neighborStates[`L2/${n.id}`] = { operationType: n.op, configuration: {
      revisionNumber: 0, requestId: '', id: n.id, updateType: 0, vpcId: 'V', name: '', macAddress: mac(n.mac), hostMacAddress: '',
      hostIpAddress: n.where, fixedIps: [{ neighborType: 0, subnetId: n.subnet, ipAddress: `10.1.1.${n.host}`, arionGroup: '', tunnelId: 0 }], allowAddressPairs: [] } };
  }
  return gs;
}

const dump = (flows: Iterable<Flow>): string[] => [...flows].map(formatFlow).sort();

test('random goal-state sequences: incremental flows equal a full recompute', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 12 }), fc.boolean(), async (steps, started) => {
    const store = new ResourceStore();
    const backend = new DryRunBackend();
    const dp = new FlowDataplane(backend);
    // Also without start(): the dataplane then builds its indexes from the store it is handed.
    if (started) await dp.start(store);
    const intake = new Intake(store, dp, silentLogger(), HOST);
    for (const s of steps) await intake.apply({ v2: goalState(s) });
    // Never started and never handed a change: an empty apply makes it compute what it has.
    if (!started) await dp.apply([], store);
    const full = FlowDataplane.recompute(store, backend.bindings);
    const incremental = dump(dp.installed.flows.values());
    const recomputed = dump(full.activeFlows());
    if (JSON.stringify(incremental) !== JSON.stringify(recomputed)) {
      t.log('incremental only:', incremental.filter((f) => !recomputed.includes(f)));
      t.log('recompute only:', recomputed.filter((f) => !incremental.includes(f)));
      return false;
    }
    // installed is keyed consistently
    return [...dp.installed.flows].every(([k, f]) => k === flowKey(f));
  }), { numRuns: 150 });
  t.pass();
});

test('deleting every resource returns the flow table to its baseline', async (t) => {
  const store = new ResourceStore();
  const dp = new FlowDataplane(new DryRunBackend());
  await dp.start(store);
  const baseline = dump(dp.installed.flows.values());
  t.true(baseline.length > 0);
  const intake = new Intake(store, dp, silentLogger(), HOST);
  const step: Step = {
    subnets: [{ id: 'S1', op: 1, vni: 100, geneve: true, gw: true }],
    ports: [{ id: 'P1', op: 1, subnet: 'S1', host: 5, mac: 1, up: true }],
    neighbors: [{ id: 'N1', op: 1, subnet: 'S1', host: 6, mac: 50, where: '10.0.0.12' }],
  };
  await intake.apply({ v2: goalState(step) });
  t.true(dp.installed.size > baseline.length);
  const del = goalState({
    subnets: step.subnets.map((s) => ({ ...s, op: 4 })), ports: step.ports.map((p) => ({ ...p, op: 4 })),
    neighbors: step.neighbors.map((n) => ({ ...n, op: 4 })),
  });
  // Delete the referencing resources first (ports and neighbors), then the subnet.
  const first = GoalStateV2.fromPartial({ portStates: del.portStates, neighborStates: del.neighborStates });
  await intake.apply({ v2: first });
  await intake.apply({ v2: GoalStateV2.fromPartial({ subnetStates: del.subnetStates }) });
  t.deepEqual(dump(dp.installed.flows.values()), baseline);
});
