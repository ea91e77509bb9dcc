// Intake semantics over gRPC: mixed good and bad resources, re-sends, revisions, deletes, store
// events; and a property test that arbitrary input never crashes the intake.
import test from 'ava';
import fc from 'fast-check';
import { OperationStatus, OperationType } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import type { GoalStateOperationReply } from '../proto/gen/alcor/goalstateprovisioner.js';
import { Intake, SMALL_STATE } from '../agent/intake.js';
import { scanGoalStateV2 } from '../agent/goalstate-source.js';
import { silentLogger } from '../agent/log.js';
import { ResourceStore, type StoreEvent } from '../agent/store.js';
import { NullDataplane } from '../dataplane/api.js';
import { bigState, neighborState, portState, pushOne, subnetState, withAgent } from './helpers/agents.js';

const push = pushOne;
const statusOf = (r: GoalStateOperationReply, id: string) => r.operationStatuses.find((s) => s.resourceId === id);

test('good and bad resources mixed: the good apply, each bad one gets INVALID_ARG with its reason', async (t) => {
  await withAgent(async (agent, addr) => {
    const r = await push(addr, GoalStateV2.fromPartial({
      subnetStates: {
        S: subnetState('S'),
        BADCIDR: subnetState('BADCIDR', { cidr: '10.1.0.0/33' }),
        BIGVNI: subnetState('BIGVNI', { tunnelId: '16777216' }),
        VLAN0: subnetState('VLAN0', { networkType: 1, tunnelId: '0' }),
        VLAN4095: subnetState('VLAN4095', { networkType: 1, tunnelId: '4095' }),
        GRE: subnetState('GRE', { networkType: 2, tunnelId: '77' }),
      },
      portStates: {
        P1: portState('P1'),
        BADMAC: portState('BADMAC', { macAddress: '00:11:22:33:44' }),
        BADIP: portState('BADIP', { fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.300' }] }),
        NOSUBNET: portState('NOSUBNET', { fixedIps: [{ subnetId: 'nope', ipAddress: '10.1.0.9' }] }),
        BADOP: { ...portState('BADOP'), operationType: 9 as OperationType },
      },
      dhcpStates: {
        d1: { operationType: 1, configuration: { revisionNumber: 1, requestId: '', id: 'd1', updateType: 0, subnetId: 'missing', macAddress: 'fa:16:3e:00:00:01', ipv4Address: '10.1.0.5', ipv6Address: '', portHostName: '' } },
      },
      neighborStates: { 'L2/N1': neighborState('N1', 1), 'L2/BADHOST': neighborState('BADHOST', 2, { hostIpAddress: 'not-an-ip' }) },
    }));
    const reason = (id: string): string => {
      const s = statusOf(r, id);
      t.is(s?.operationStatus, OperationStatus.INVALID_ARG, id);
      return s?.statusDetail ?? '';
    };
    t.regex(reason('BADCIDR'), /prefix must be 0–32/);
    t.regex(reason('BIGVNI'), /does not fit in 24 bits/);
    t.regex(reason('VLAN0'), /VLAN id 0 is out of range 1–4094/);
    t.regex(reason('VLAN4095'), /VLAN id 4095/);
    t.regex(reason('GRE'), /GRE is not carried/);
    t.regex(reason('BADMAC'), /not a MAC address/);
    t.regex(reason('BADIP'), /not an IP address/);
    t.regex(reason('NOSUBNET'), /subnet nope is not known/);
    t.regex(reason('BADOP'), /operation_type: unknown value 9/);
    t.regex(reason('d1'), /subnet missing is not known/);
    t.regex(reason('BADHOST'), /host_ip_address/);
    for (const id of ['S', 'P1', 'N1']) t.is(statusOf(r, id)?.operationStatus, OperationStatus.SUCCESS, id);
    // Nothing of the bad ones reached the store.
    t.deepEqual([...agent.store.list('subnet')].map((s) => s.id), ['S']);
    t.deepEqual([...agent.store.list('port')].map((p) => p.id), ['P1']);
    t.is(agent.store.count('dhcp'), 0);
    t.is(agent.store.count('neighbor'), 1);
  });
});

test('an identical re-send is SUCCESS and changes nothing', async (t) => {
  await withAgent(async (agent, addr) => {
    const gs = GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, portStates: { P1: portState('P1') }, neighborStates: { 'L2/N1': neighborState('N1', 1) } });
    await push(addr, gs);
    const events: StoreEvent[] = [];
    agent.store.subscribe((e) => events.push(...e));
    const again = await push(addr, gs);
    t.true(again.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));
    t.is(again.operationStatuses.length, 3);
    t.deepEqual(events, []);
  });
});

test('revisions: older is OUT_OF_ORDER and not applied, equal and newer apply, 0 always applies', async (t) => {
  await withAgent(async (agent, addr) => {
    await push(addr, GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') } }));
    const port = (rev: number, mac: string, op = OperationType.CREATE) => GoalStateV2.fromPartial({ portStates: { P1: portState('P1', { revisionNumber: rev, macAddress: mac }, op) } });
    t.is(statusOf(await push(addr, port(5, 'fa:16:3e:00:00:05')), 'P1')?.operationStatus, OperationStatus.SUCCESS);
    const old = statusOf(await push(addr, port(4, 'fa:16:3e:00:00:04')), 'P1');
    t.is(old?.operationStatus, OperationStatus.OUT_OF_ORDER);
    t.regex(old?.statusDetail ?? '', /revision 4 is older than the stored revision 5/);
    t.is(agent.store.get('port', 'P1')?.mac, 'fa:16:3e:00:00:05');
    t.is(statusOf(await push(addr, port(5, 'fa:16:3e:00:00:55')), 'P1')?.operationStatus, OperationStatus.SUCCESS);
    t.is(agent.store.get('port', 'P1')?.mac, 'fa:16:3e:00:00:55');
    t.is(statusOf(await push(addr, port(0, 'fa:16:3e:00:00:00')), 'P1')?.operationStatus, OperationStatus.SUCCESS);
    t.is(agent.store.get('port', 'P1')?.mac, 'fa:16:3e:00:00:00');
    // A CREATE older than a DELETE stays refused.
    await push(addr, port(9, 'fa:16:3e:00:00:09', OperationType.DELETE));
    t.is(agent.store.get('port', 'P1'), undefined);
    t.is(statusOf(await push(addr, port(8, 'fa:16:3e:00:00:08')), 'P1')?.operationStatus, OperationStatus.OUT_OF_ORDER);
    t.is(agent.store.get('port', 'P1'), undefined);
  });
});

test('deletes: unknown is SUCCESS; DHCP by MAC+IP whatever its id; neighbor by its L2 key; GET is a no-op', async (t) => {
  await withAgent(async (agent, addr) => {
    const dhcp = (id: string, op: number) => ({ operationType: op, configuration: { revisionNumber: 1, requestId: '', id, updateType: 0, subnetId: 'S', macAddress: 'FA-16-3E-00-00-01', ipv4Address: '10.1.0.5', ipv6Address: '', portHostName: 'vm1' } });
    await push(addr, GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, dhcpStates: { u1: dhcp('u1', 1) }, neighborStates: { 'L2/N1': neighborState('N1', 1) } }));
    t.is(agent.store.count('dhcp'), 1);
    const r = await push(addr, GoalStateV2.fromPartial({
      portStates: { GHOST: portState('GHOST', {}, OperationType.DELETE) },
      dhcpStates: { u2: dhcp('u2', OperationType.DELETE) },
      neighborStates: { 'L2/N1': { operationType: OperationType.DELETE, configuration: { ...neighborState('N1', 1).configuration!, fixedIps: [] } } },
      subnetStates: { S: subnetState('S', {}, OperationType.GET) },
    }));
    t.true(r.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));
    t.is(agent.store.count('dhcp'), 0);
    t.is(agent.store.count('neighbor'), 0);
    t.is(agent.store.count('subnet'), 1);
  });
});

test('store events: added, changed, removed, typed and in order', async (t) => {
  await withAgent(async (agent, addr) => {
    const seen: string[] = [];
    agent.store.subscribe((events) => { for (const e of events) seen.push(`${e.type} ${e.kind} ${e.key}`); });
    await push(addr, GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, portStates: { P1: portState('P1') } }));
    await push(addr, GoalStateV2.fromPartial({ portStates: { P1: portState('P1', { name: 'renamed' }, OperationType.UPDATE) } }));
    await push(addr, GoalStateV2.fromPartial({ portStates: { P1: portState('P1', {}, OperationType.DELETE) } }));
    t.deepEqual(seen, ['added subnet S', 'added port P1', 'changed port P1', 'removed port P1']);
  });
});

test('arbitrary input never crashes the intake and every resource gets a status', async (t) => {
  const text = fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('10.1.0.5', 'fa:16:3e:00:00:01', '0:0:a:1:2:3', 'S', '10.0.0.0/8', '', '::1'));
  const cfg = fc.record({
    revisionNumber: fc.nat(), requestId: text, id: text, updateType: fc.integer({ min: -1, max: 3 }), networkType: fc.integer({ min: -1, max: 6 }),
    vpcId: text, name: text, cidr: text, tunnelId: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String), fc.constant('5001')),
    macAddress: text, hostIpAddress: text, hostMacAddress: text, ipv4Address: text, subnetId: text,
  });
  const state = fc.record({ operationType: fc.integer({ min: -2, max: 6 }), configuration: fc.option(cfg, { nil: undefined }) });
  await fc.assert(fc.asyncProperty(fc.dictionary(text, state, { maxKeys: 5 }), fc.dictionary(text, state, { maxKeys: 5 }), fc.dictionary(text, state, { maxKeys: 5 }), async (subnets, ports, neighbors) => {
    const gs = GoalStateV2.fromJSON({
      subnetStates: subnets,
      portStates: Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, { ...v, configuration: v.configuration && { ...v.configuration, fixedIps: [{ subnetId: v.configuration.subnetId, ipAddress: v.configuration.ipv4Address }] } }])),
      neighborStates: Object.fromEntries(Object.entries(neighbors).map(([k, v]) => [k, { ...v, configuration: v.configuration && { ...v.configuration, fixedIps: [{ subnetId: v.configuration.subnetId, ipAddress: v.configuration.ipv4Address, neighborType: 'L2' }] } }])),
    });
    // Round trip through the wire encoding, as the agent receives it.
    const decoded = GoalStateV2.decode(GoalStateV2.encode(gs).finish());
    const intake = new Intake(new ResourceStore(), new NullDataplane(), silentLogger(), '10.0.0.11');
    const r = await intake.apply({ v2: decoded });
    return r.results.length === Object.keys(decoded.subnetStates).length + Object.keys(decoded.portStates).length + Object.keys(decoded.neighborStates).length;
  }), { numRuns: 300 });
  t.pass();
});

test('revisions wrap as serial numbers; a DELETE of an unknown id leaves no tombstone; tombstones are bounded', async (t) => {
  const { isOlderRevision } = await import('../agent/store.js');
  t.true(isOlderRevision(4, 5));
  t.false(isOlderRevision(5, 4));
  t.true(isOlderRevision(4294967295, 1), '-1 is just behind 1, not ahead of everything');
  t.false(isOlderRevision(1, 4294967295));
  t.false(isOlderRevision(0, 7));
  t.false(isOlderRevision(7, 0));
  await withAgent(async (agent, addr) => {
    await push(addr, GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') } }));
    const port = (rev: number, op = OperationType.CREATE) => GoalStateV2.fromPartial({ portStates: { P1: portState('P1', { revisionNumber: rev }, op) } });
    // A client's -1 (uint32 4294967295), then 1: applies, as the next revision after a wrap.
    t.is(statusOf(await push(addr, port(4294967295)), 'P1')?.operationStatus, OperationStatus.SUCCESS);
    t.is(statusOf(await push(addr, port(1)), 'P1')?.operationStatus, OperationStatus.SUCCESS);
    t.is(agent.store.get('port', 'P1')?.revision, 1);
    // A DELETE with a huge revision of an id never seen: nothing stored, the CREATE applies.
    t.is(statusOf(await push(addr, GoalStateV2.fromPartial({ portStates: { PZ: portState('PZ', { revisionNumber: 4000000000 }, OperationType.DELETE) } })), 'PZ')?.operationStatus, OperationStatus.SUCCESS);
    t.is(agent.store.tombstoneCount(), 0);
    const create = await push(addr, GoalStateV2.fromPartial({ portStates: { PZ: portState('PZ', { revisionNumber: 2, macAddress: 'fa:16:3e:00:00:7a', fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.77' }] }) } }));
    t.is(statusOf(create, 'PZ')?.operationStatus, OperationStatus.SUCCESS);
  });
  // At most maxTombstones per kind: the oldest go first.
  const store = new ResourceStore(3);
  for (let i = 0; i < 5; i++) {
    store.upsert('vpc', { key: `V${i}`, id: `V${i}`, revision: 1, projectId: '', name: '', cidr: null, tunnelId: 0, gatewayIds: [] });
    store.remove('vpc', `V${i}`, 2);
  }
  t.is(store.tombstoneCount(), 3);
  t.is(store.revisionOf('vpc', 'V0'), 0, 'the oldest tombstone was forgotten');
  t.is(store.revisionOf('vpc', 'V4'), 2);
});

test('deleting a subnet still in use is refused with what uses it; with its users deleted in the same message it goes', async (t) => {
  await withAgent(async (agent, addr) => {
    await push(addr, GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, portStates: { P1: portState('P1') }, neighborStates: { 'L2/N1': neighborState('N1', 1) } }));
    const delSubnet = { S: subnetState('S', {}, OperationType.DELETE) };
    const refused = statusOf(await push(addr, GoalStateV2.fromPartial({ subnetStates: delSubnet })), 'S');
    t.is(refused?.operationStatus, OperationStatus.INVALID_ARG);
    t.regex(refused?.statusDetail ?? '', /subnet S is still used by 1 ports, 1 neighbors and 0 DHCP bindings \(port P1, neighbor L2\/N1\): delete or move them first/);
    t.truthy(agent.store.get('subnet', 'S'));
    // Ports and neighbors come after subnets in a message, yet their deletes free the subnet.
    const all = await push(addr, GoalStateV2.fromPartial({
      subnetStates: delSubnet, portStates: { P1: portState('P1', {}, OperationType.DELETE) }, neighborStates: { 'L2/N1': neighborState('N1', 1, {}, OperationType.DELETE) },
    }));
    t.true(all.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS), JSON.stringify(all.operationStatuses));
    t.is(agent.store.get('subnet', 'S'), undefined);
  });
});

test('conflict rules: reserved MACs, IPv4-mapped IPv6, one MAC per VPC and one IP per subnet, duplicates in one message', async (t) => {
  await withAgent(async (agent, addr) => {
    const base = await push(addr, GoalStateV2.fromPartial({
      subnetStates: { S: subnetState('S', { gateway: { ipAddress: '10.1.0.1', macAddress: 'fa:16:3e:00:00:fe' } }) },
      portStates: { P1: portState('P1') },
    }));
    t.true(base.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));
    const fixed = (ip: string) => [{ neighborType: 0, subnetId: 'S', ipAddress: ip, arionGroup: '', tunnelId: 0 }];
    const r = await push(addr, GoalStateV2.fromPartial({
      portStates: {
        BCAST: portState('BCAST', { macAddress: 'ff:ff:ff:ff:ff:ff', fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.20' }] }),
        GWIP: portState('GWIP', { macAddress: 'fa:16:3e:00:00:21', fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.1' }] }),
        SAMEIP: portState('SAMEIP', { macAddress: 'fa:16:3e:00:00:22', fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.5' }] }),
        MAPPED: portState('MAPPED', { macAddress: 'fa:16:3e:00:00:23', fixedIps: [{ subnetId: 'S', ipAddress: '::ffff:10.1.0.23' }] }),
      },
      neighborStates: {
        'L2/MCAST': neighborState('MCAST', 1, { macAddress: '01:00:5e:00:00:01', hostIpAddress: '10.0.0.12', fixedIps: fixed('10.1.0.30') }),
        'L2/ZERO': neighborState('ZERO', 2, { macAddress: '00:00:00:00:00:00', hostIpAddress: '10.0.0.12', fixedIps: fixed('10.1.0.31') }),
        'L2/STEAL': neighborState('STEAL', 3, { macAddress: 'fa:16:3e:00:00:01', hostIpAddress: '10.0.0.12', fixedIps: fixed('10.1.0.32') }),
        // The same VM as P1, sent as a neighbor on our own host IP: one thing, not a conflict.
        'L2/P1': neighborState('P1', 4, { macAddress: 'fa:16:3e:00:00:01', hostIpAddress: '10.0.0.11', fixedIps: fixed('10.1.0.5') }),
        // An L2 and an L3 entry of one VM.
        'L2/VM': neighborState('VM', 5, { hostIpAddress: '10.0.0.12', fixedIps: fixed('10.1.0.40') }),
        'L3/VM': neighborState('VM', 5, { hostIpAddress: '10.0.0.12', fixedIps: [{ neighborType: 1, subnetId: 'S', ipAddress: '10.1.0.40', arionGroup: '', tunnelId: 0 }] }),
      },
    }));
    const st = (id: string) => statusOf(r, id);
    t.is(st('BCAST')?.operationStatus, OperationStatus.INVALID_ARG);
    t.regex(st('BCAST')?.statusDetail ?? '', /ff:ff:ff:ff:ff:ff is the broadcast MAC/);
    t.regex(st('MCAST')?.statusDetail ?? '', /01:00:5e:00:00:01 is a multicast MAC/);
    t.regex(st('ZERO')?.statusDetail ?? '', /all-zero MAC/);
    t.regex(st('GWIP')?.statusDetail ?? '', /10\.1\.0\.1 already belongs to the gateway of subnet S/);
    t.regex(st('SAMEIP')?.statusDetail ?? '', /10\.1\.0\.5 already belongs to vm P1 in subnet S/);
    t.regex(st('MAPPED')?.statusDetail ?? '', /IPv4-mapped IPv6 address/);
    t.regex(st('STEAL')?.statusDetail ?? '', /MAC fa:16:3e:00:00:01 already belongs to vm P1/);
    for (const id of ['P1', 'VM']) t.true(r.operationStatuses.filter((s) => s.resourceId === id).every((s) => s.operationStatus === OperationStatus.SUCCESS), id);
    t.is(agent.store.get('neighbor', 'L2/STEAL'), undefined);
    // Once P1 is gone, its MAC and address are free.
    await push(addr, GoalStateV2.fromPartial({ portStates: { P1: portState('P1', {}, OperationType.DELETE) }, neighborStates: { 'L2/P1': neighborState('P1', 4, { hostIpAddress: '10.0.0.11', fixedIps: fixed('10.1.0.5') }, OperationType.DELETE) } }));
    const again = await push(addr, GoalStateV2.fromPartial({ neighborStates: { 'L2/STEAL': neighborState('STEAL', 3, { macAddress: 'fa:16:3e:00:00:01', hostIpAddress: '10.0.0.12', fixedIps: fixed('10.1.0.5') }) } }));
    t.is(statusOf(again, 'STEAL')?.operationStatus, OperationStatus.SUCCESS, statusOf(again, 'STEAL')?.statusDetail);
    // Two states for one subnet id in one V1 message: the first applies, the second is refused.
    const v1 = await agent.intake.apply({ v1: { formatVersion: 1, vpcStates: [], subnetStates: [subnetState('D', { tunnelId: '7001', cidr: '10.7.0.0/24', gateway: undefined }), subnetState('D', { tunnelId: '7002', cidr: '10.7.0.0/24', gateway: undefined })], portStates: [], neighborStates: [], securityGroupStates: [], dhcpStates: [], routerStates: [], gatewayStates: [] } });
    const rows = v1.results.toArray();
    t.deepEqual(rows.map((x) => x.status), ['SUCCESS', 'INVALID_ARG']);
    t.regex(rows[1]!.detail, /subnet D appears more than once in this message: the first one applies/);
    t.is(agent.store.get('subnet', 'D')?.tunnelId, 7001);
    // Reasons quote at most a short prefix of a huge value.
    const huge = await push(addr, GoalStateV2.fromPartial({ portStates: { BIG: portState('BIG', { macAddress: 'x'.repeat(1_000_000) }) } }));
    t.true((statusOf(huge, 'BIG')?.statusDetail.length ?? 1e9) < 300);
  });
});

test('limits: huge strings and lists are refused with short reasons; long unknown-group lists give a short warning', async (t) => {
  await withAgent(async (_agent, addr) => {
    await push(addr, GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S', { cidr: '10.0.0.0/8' }) } }));
    const many = Array.from({ length: 100_000 }, (_, i) => ({ id: `sg-${i}` }));
    const r = await push(addr, GoalStateV2.fromPartial({
      portStates: {
        NAME: portState('NAME', { name: 'n'.repeat(10_000_000), macAddress: 'fa:16:3e:00:10:01', fixedIps: [{ subnetId: 'S', ipAddress: '10.2.0.1' }] }),
        SGS: portState('SGS', { macAddress: 'fa:16:3e:00:10:02', fixedIps: [{ subnetId: 'S', ipAddress: '10.2.0.2' }], securityGroupIds: many }),
        FEW: portState('FEW', { macAddress: 'fa:16:3e:00:10:03', fixedIps: [{ subnetId: 'S', ipAddress: '10.2.0.3' }], securityGroupIds: many.slice(0, 3000) }),
      },
      neighborStates: { 'L2/BIGID': neighborState('x'.repeat(5_000_000), 9, { fixedIps: [{ neighborType: 0, subnetId: 'S', ipAddress: '10.3.0.9', arionGroup: '', tunnelId: 0 }] }) },
    }));
    const st = (id: string) => r.operationStatuses.find((s) => s.resourceId.startsWith(id));
    t.is(st('NAME')?.operationStatus, OperationStatus.INVALID_ARG);
    t.regex(st('NAME')?.statusDetail ?? '', /^name: 10000000 characters is more than 1024/);
    t.is(st('SGS')?.operationStatus, OperationStatus.INVALID_ARG);
    t.regex(st('SGS')?.statusDetail ?? '', /security_group_ids: 100000 entries is more than 4096/);
    t.is(st('FEW')?.operationStatus, OperationStatus.SUCCESS);
    t.regex(st('FEW')?.statusDetail ?? '', /security groups sg-0, sg-1, sg-2 and 2997 more are not known/);
    t.is(st('xxx')?.operationStatus, OperationStatus.INVALID_ARG);
    for (const s of r.operationStatuses) t.true(s.statusDetail.length < 300, `${s.resourceId.slice(0, 10)}: ${s.statusDetail.length}`);
  }, { maxMessageBytes: '64MB' });
});

test('the limits are configuration: --max-string-length and --max-list-length apply', async (t) => {
  await withAgent(async (_agent, addr) => {
    await push(addr, GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S', { cidr: '10.0.0.0/8' }) } }));
    const r = await push(addr, GoalStateV2.fromPartial({ portStates: {
      LONG: portState('LONG', { name: 'n'.repeat(100), macAddress: 'fa:16:3e:00:20:01', fixedIps: [{ subnetId: 'S', ipAddress: '10.2.1.1' }] }),
      PAIRS: portState('PAIRS', { macAddress: 'fa:16:3e:00:20:02', fixedIps: [{ subnetId: 'S', ipAddress: '10.2.1.2' }], allowAddressPairs: Array.from({ length: 17 }, (_, i) => ({ ipAddress: `10.3.0.${i}`, macAddress: '' })) }),
      OK: portState('OK', { name: 'n'.repeat(64), macAddress: 'fa:16:3e:00:20:03', fixedIps: [{ subnetId: 'S', ipAddress: '10.2.1.3' }] }),
    } }));
    t.regex(statusOf(r, 'LONG')?.statusDetail ?? '', /^name: 100 characters is more than 64/);
    t.regex(statusOf(r, 'PAIRS')?.statusDetail ?? '', /allow_address_pairs: 17 entries is more than 16/);
    t.is(statusOf(r, 'OK')?.operationStatus, OperationStatus.SUCCESS);
  }, { maxStringLength: 64, maxListLength: 16 });
});

test('a large goal state\'s bytes are released once its states are stored; a small one\'s are left to their owner', async (t) => {
  const store = new ResourceStore();
  const intake = new Intake(store, new NullDataplane(), silentLogger(), '10.0.0.11');
  const n = SMALL_STATE + 44;
  // As a large message arrives from gRPC: an ArrayBuffer of its own, after the 5-byte frame header.
  const encoded = GoalStateV2.encode(bigState(n)).finish();
  const framed = Buffer.alloc(encoded.length + 5);
  framed.set(encoded, 5);
  const large = framed.subarray(5);
  const source = scanGoalStateV2(large);
  const r = await intake.apply({ source });
  t.is(r.results.length, n + 2, 'every state answered');
  t.is(store.counts().neighbor, n, 'every neighbor stored');
  t.is(large.length, 0, 'the bytes are gone (moved out and left to the next scavenge)');
  t.throws(() => source.slice('neighbor', 0, 1, () => undefined), { message: /released/ });
  t.throws(() => source.size('neighbor'), { message: /released/ });
  t.is(source.count(), n + 2, 'what it counted stays');

  const small = Buffer.from(GoalStateV2.encode(bigState(3, '111111222222')).finish());
  const before = Buffer.from(small);
  await intake.apply({ source: scanGoalStateV2(small) });
  t.deepEqual(small, before, 'a small state\'s bytes are not touched');
});

test('a small state that starts reading a large one\'s index as the large one ends and releases its bytes queues as usual, with no unhandled rejection', async (t) => {
  const unhandled: unknown[] = [];
  const listen = (e: unknown): void => { unhandled.push(e); };
  process.on('unhandledRejection', listen);
  try {
    const store = new ResourceStore();
    const intake = new Intake(store, new NullDataplane(), silentLogger(), '10.0.0.11');
    await intake.apply({ v2: GoalStateV2.fromPartial({ subnetStates: bigState(1).subnetStates }) });
    const n = 5000;
    const encoded = GoalStateV2.encode(bigState(n)).finish();
    const framed = Buffer.alloc(encoded.length + 5);
    framed.set(encoded, 5);
    // The large turn pauses once per slice of its store turn; hold it at its last one.
    const slices = 2 + Math.ceil(n / 64);
    let calls = 0;
    let open!: () => void;
    const gate = new Promise<void>((r) => { open = r; });
    let held = false;
    const breathe = (): Promise<void> => new Promise((r) => setImmediate(r));
    (intake as unknown as { pause(): Promise<void> | null }).pause = () => {
      calls += 1;
      if (calls === slices) { held = true; return gate; }
      return breathe();
    };
    const large = intake.apply({ source: scanGoalStateV2(framed.subarray(5)) });
    while (!held) await breathe();
    const small = GoalStateV2.fromPartial({ neighborStates: { 'L2/NB': neighborState('NB', 0x7e0001) } });
    const decided = intake.apply({ source: scanGoalStateV2(Buffer.from(GoalStateV2.encode(small).finish())) });
    // The small state starts building the large one's index, which pauses; the large turn ends.
    await breathe();
    await breathe();
    open();
    const [a, b] = await Promise.all([large, decided]);
    for (let i = 0; i < 20; i++) await breathe();
    t.is(calls > slices, true, 'the index was being built when the large turn ended');
    t.is(a.results.length, n + 2);
    t.deepEqual([b.results.length, b.results.status(0)], [1, 'SUCCESS'], 'the small state applied after all');
    t.is(framed.length, 0, 'the large state\'s bytes were released');
    t.deepEqual(unhandled.map(String), [], 'no unhandled rejection');
  } finally {
    process.off('unhandledRejection', listen);
  }
});
