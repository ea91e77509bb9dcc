// The native OpenFlow channel of the ovs backend against a real Open vSwitch 3.1 (private
// sandbox, dummy datapath):
// (a) differential: flows using every field and action of the model, a group of each type and a
//     meter, installed through the channel on br-int and through `ovs-ofctl add-flows /
//     add-group / add-meter` of their flow-text rendering on another bridge: the dumps are equal,
//     and readBack() returns exactly the flows, groups and meters sent;
// (b) refusals: a flow outputting to a missing group, a table full (flow_limit, overflow_policy
//     refuse): SwitchRefusedError naming OVS's error and the message, switch unchanged;
// (c) ovs-vswitchd stopped and restarted, and frozen (no echo replies): the backend notices,
//     commits meanwhile reject with SwitchUnavailableError, it reconnects and the reset fires.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { type FlowChanges, SwitchRefusedError, emptyChanges } from '../dataplane/backend.js';
import { OvsBackend, type OvsRefusedError, SwitchUnavailableError } from '../dataplane/backends/ovs.js';
import { type Action, type Flow, type Group, type Meter, type RegField, canonicalMatch, eq, load, masked, output, reg, resubmit, setField } from '../dataplane/flow.js';
import { formatFlow, formatGroup, formatMeter } from '../dataplane/flow-text.js';
import { canonicalFlow } from '../dataplane/backends/openflow-codec.js';
import { ETH_TYPE, IP_PROTO, ipv4Value, macValue } from '../dataplane/fields.js';
import { BRIDGE, REGISTERS } from '../dataplane/pipeline.js';
import { type OvsSandbox, ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';
import { until } from './helpers/wait.js';

const missing = await ovsMissing();
if (missing) console.log(`openflow-ovs: ${missing}`);
const maybe = missing ? test.skip : test.serial;

const ip = eq('dl_type', ETH_TYPE.ip);
const arp = eq('dl_type', ETH_TYPE.arp);
const ipv6 = eq('dl_type', ETH_TYPE.ipv6);
const proto = (p: number) => eq('nw_proto', p);
const zoneReg: RegField = { name: 'zone', field: 'reg6', ofs: 0, nbits: 16, purpose: 'test: conntrack zone' };
const slice: RegField = { name: 'slice', field: 'reg3', ofs: 8, nbits: 8, purpose: 'test: a slice' };

let n = 0;
const flow = (table: number, priority: number, match: Parameters<typeof canonicalMatch>[0], actions: Action[]): Flow =>
  ({ table, priority, match: canonicalMatch(match), actions, cookie: 0x0400_0000_0000_0000n + BigInt(++n) });

/** Every field and every action of the model, in canonical form (what read-back returns). */
export function everyFieldAndAction(): { flows: Flow[]; groups: Group[]; meters: Meter[] } {
  n = 0;
  const flows: Flow[] = [
    flow(0, 100, [eq('in_port', 7)], [load(REGISTERS.network, 5001), load(REGISTERS.inPort, 7), resubmit(10)]),
    flow(0, 90, [eq('in_port', 4096), eq('tun_id', 0x1389), eq('tun_dst', ipv4Value('10.0.0.11'))], [{ type: 'move', src: { field: 'tun_id', ofs: 0, nbits: 24 }, dst: { field: 'metadata', ofs: 0, nbits: 24 } }, resubmit(50)]),
    flow(0, 80, [eq('in_port', 3)], [{ type: 'move', src: { field: 'in_port', ofs: 0, nbits: 32 }, dst: { field: 'reg6', ofs: 0, nbits: 32 } }, output(65534)]),
    flow(10, 100, [reg(REGISTERS.inPort, 7), eq('metadata', 5001), eq('dl_src', macValue('00:aa:bb:15:eb:3f')), ip, eq('nw_src', ipv4Value('10.1.0.5'))], [resubmit(15)]),
    flow(10, 90, [masked('dl_dst', macValue('01:00:00:00:00:00'), macValue('01:00:00:00:00:00'))], [{ type: 'controller', userdata: '01.02' }]),
    flow(15, 100, [ip, proto(IP_PROTO.tcp), masked('nw_dst', ipv4Value('10.1.0.0'), ipv4Value('255.255.255.0')), eq('tp_src', 1234), masked('tp_dst', 0x400, 0xfc00)], [{ type: 'conjunction', id: 7, clause: 1, nClauses: 2 }]),
    flow(15, 100, [ip, proto(IP_PROTO.udp), eq('tp_src', 68), eq('tp_dst', 67)], [{ type: 'conjunction', id: 7, clause: 2, nClauses: 2 }]),
    flow(15, 100, [eq('conj_id', 7), ip], [{ type: 'ct', commit: true, zone: 5, table: 20, nat: 'src=10.0.0.1-10.0.0.5:100-200,random' }]),
    flow(15, 90, [ip, eq('ct_state', 0x20), masked('ct_mark', 1, 1), eq('ct_zone', 5)], [{ type: 'ct', commit: false, zone: zoneReg, table: 20, nat: null }]),
    flow(15, 80, [ip, masked('ct_state', 0x21, 0x21)], [{ type: 'ct', commit: true, zone: null, table: null, nat: '' }, { type: 'ct_clear' }, { type: 'dec_ttl' }, output(2)]),
    flow(15, 70, [ip, proto(IP_PROTO.icmp), eq('icmp_type', 8), eq('icmp_code', 0), eq('nw_ttl', 64)], [{ type: 'ct', commit: true, zone: 3, table: null, nat: 'dst=10.0.0.9' }, { type: 'in_port' }]),
    flow(20, 100, [eq('metadata', 5001), eq('dl_dst', macValue('ff:ff:ff:ff:ff:ff')), arp, eq('arp_op', 1), eq('arp_tpa', ipv4Value('10.1.0.4'))], [
      { type: 'move', src: { field: 'dl_src', ofs: 0, nbits: 48 }, dst: { field: 'dl_dst', ofs: 0, nbits: 48 } },
      setField('dl_src', macValue('00:00:0a:01:02:03')),
      setField('arp_op', 2),
      { type: 'move', src: { field: 'arp_sha', ofs: 0, nbits: 48 }, dst: { field: 'arp_tha', ofs: 0, nbits: 48 } },
      { type: 'move', src: { field: 'arp_spa', ofs: 0, nbits: 32 }, dst: { field: 'arp_tpa', ofs: 0, nbits: 32 } },
      setField('arp_sha', macValue('00:00:0a:01:02:03')),
      setField('arp_spa', ipv4Value('10.1.0.4')),
      { type: 'in_port' },
    ]),
    flow(20, 90, [arp, masked('arp_spa', ipv4Value('10.1.0.0'), ipv4Value('255.255.0.0')), eq('arp_sha', macValue('00:aa:bb:15:eb:3f')), eq('arp_tha', 0)], [setField('arp_tpa', ipv4Value('10.1.0.9')), setField('arp_tha', macValue('00:00:00:00:00:01')), { type: 'controller', userdata: '02' }]),
    flow(25, 100, [ipv6, proto(IP_PROTO.tcp), eq('ipv6_src', 0xfe800000000000000000000000000001n), masked('ipv6_dst', 0x20010db8n << 96n, 0xffffffffn << 96n), eq('tp_dst', 443)], [setField('dl_dst', macValue('00:11:22:33:44:55')), output(3)]),
    flow(40, 100, [eq('metadata', 5001), eq('dl_dst', macValue('00:aa:bb:15:eb:40'))], [setField('tun_id', 0x1389), setField('tun_dst', ipv4Value('10.0.0.12')), load(REGISTERS.outPort, 4097), load(slice, 0xab), resubmit(70)]),
    flow(40, 90, [eq('metadata', 5002), masked('reg0', 1, 0xff), eq('reg1', 2), eq('reg2', 3), eq('reg3', 4), eq('reg4', 5), eq('reg7', 6)], [{ type: 'group', id: 1 }]),
    flow(45, 100, [eq('metadata', 5003)], [{ type: 'meter', id: 1 }, setField('metadata', 77), { type: 'group', id: 2 }]),
    flow(50, 100, [eq('metadata', 5001), eq('dl_dst', macValue('00:aa:bb:15:eb:3f'))], [load(REGISTERS.outPort, 7), { type: 'controller', userdata: '' }, resubmit(70)]),
    flow(70, 100, [], [{ type: 'output_reg', src: REGISTERS.outPort }]),
    flow(70, 0, [], []),
  ];
  const groups: Group[] = [
    { id: 1, type: 'select', buckets: [{ actions: [output(2)], weight: 10 }, { actions: [setField('dl_dst', macValue('00:00:00:00:00:02')), output(3)] }] },
    { id: 2, type: 'all', buckets: [{ actions: [output(2)] }, { actions: [setField('tun_dst', ipv4Value('10.0.0.13')), output(4097)] }] },
    { id: 3, type: 'indirect', buckets: [{ actions: [load(REGISTERS.outPort, 9), resubmit(70)] }] },
    { id: 4, type: 'ff', buckets: [{ actions: [output(2)], watchPort: 2 }, { actions: [output(3)], watchPort: 3 }] },
  ];
  const meters: Meter[] = [{ id: 1, unit: 'pktps', rate: 1000, burst: 100 }, { id: 2, unit: 'kbps', rate: 5000, burst: 500 }];
  return { flows, groups, meters };
}

const changesOf = (c: Partial<FlowChanges> & { groupsAdd?: Group[]; metersAdd?: Meter[] }): FlowChanges => {
  const out = emptyChanges();
  out.add = c.add ?? [];
  out.modify = c.modify ?? [];
  out.remove = c.remove ?? [];
  out.groups.add = c.groupsAdd ?? [];
  out.meters.add = c.metersAdd ?? [];
  return out;
};

async function addPorts(sb: OvsSandbox, bridge: string): Promise<void> {
  for (const p of [2, 3, 7]) await sb.vsctl('add-port', bridge, `${bridge}-p${p}`, '--', 'set', 'interface', `${bridge}-p${p}`, 'type=dummy', `ofport_request=${p}`);
}

/** A dump without counters, sorted (the two bridges hash flows differently). */
async function dump(sb: OvsSandbox, what: 'dump-flows' | 'dump-groups' | 'dump-meters', bridge: string, version = 'OpenFlow14'): Promise<string[]> {
  const args = ['-O', version, what, bridge];
  if (what === 'dump-flows') args.splice(2, 0, '--no-stats');
  const out = await sb.ofctl(...args);
  // (--no-stats prints no reply header line)
  return out.split('\n').filter((l) => !/^(OFPST|NXST|OFPST_\w+) /.test(l) && !/ reply \(/.test(l)).map((l) => l.trim()).filter((l) => l !== '').sort();
}

function backend(sb: OvsSandbox, extra: Partial<ConstructorParameters<typeof OvsBackend>[0]> = {}): OvsBackend {
  return new OvsBackend({ db: `unix:${sb.dbSocket}`, rundir: sb.dir, datapathType: 'dummy', ...extra });
}

const big = (_: string, v: unknown): unknown => (typeof v === 'bigint' ? `${v}n` : v);
const bySort = <T>(xs: T[], key: (x: T) => string): T[] => [...xs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));

maybe('differential: every field and action, groups and a meter: channel on br-int == ovs-ofctl text on br-text; readBack returns what was sent', async (t) => {
  const sb = await startSandbox();
  const be = backend(sb);
  try {
    await be.start();
    await sb.vsctl('add-br', 'br-text', '--', 'set', 'bridge', 'br-text', 'datapath_type=dummy', 'fail-mode=secure', 'protocols=OpenFlow10,OpenFlow13,OpenFlow14');
    await addPorts(sb, BRIDGE);
    await addPorts(sb, 'br-text');
    // Start from the same (empty) tables on both.
    await sb.ofctl('del-flows', BRIDGE);
    await sb.ofctl('del-flows', 'br-text');
    const { flows, groups, meters } = everyFieldAndAction();

    await be.commit(changesOf({ add: flows, groupsAdd: groups, metersAdd: meters }));

    for (const m of meters) await sb.ofctl('-O', 'OpenFlow14', 'add-meter', 'br-text', formatMeter(m));
    for (const g of groups) await sb.ofctl('-O', 'OpenFlow14', 'add-group', 'br-text', formatGroup(g));
    const file = join(sb.dir, 'flows.txt');
    writeFileSync(file, `${flows.map(formatFlow).join('\n')}\n`);
    await sb.ofctl('-O', 'OpenFlow14', '--bundle', 'add-flows', 'br-text', file);

    for (const version of ['OpenFlow14', 'OpenFlow10']) {
      t.deepEqual(await dump(sb, 'dump-flows', BRIDGE, version), await dump(sb, 'dump-flows', 'br-text', version), `dump-flows -O ${version}`);
    }
    t.is((await dump(sb, 'dump-flows', BRIDGE)).length, flows.length);
    t.deepEqual(await dump(sb, 'dump-groups', BRIDGE), await dump(sb, 'dump-groups', 'br-text'));
    t.deepEqual(await dump(sb, 'dump-meters', BRIDGE), await dump(sb, 'dump-meters', 'br-text'));
    t.is((await dump(sb, 'dump-groups', BRIDGE)).length, groups.length);
    t.is((await dump(sb, 'dump-meters', BRIDGE)).length, meters.length * 2); // a line for the meter, one for its band

    const back = await be.readBack();
    const key = (f: Flow): string => `${f.table}/${f.priority}/${f.cookie}`;
    // Registers that pipeline.ts does not declare (zoneReg, slice) come back named after their bits.
    const sent = bySort(flows, key).map(canonicalFlow);
    t.is(sent.filter((f, i) => JSON.stringify(f, big) !== JSON.stringify(bySort(flows, key)[i], big)).length, 2);
    bySort(back.flows, key).forEach((f, i) => t.deepEqual(f, sent[i], formatFlow(f)));
    t.is(back.flows.length, flows.length);
    t.deepEqual(bySort(back.groups, (g) => String(g.id)), groups);
    t.deepEqual(bySort(back.meters, (m) => String(m.id)), meters);
    t.deepEqual(back.foreign, { flows: [], groups: [], meters: [] });
  } finally {
    await be.close();
    await sb.stop();
  }
});

maybe('modify_strict keeps the cookie, add replaces it, delete_strict removes; foreign flows come back marked and can be deleted', async (t) => {
  const sb = await startSandbox();
  const be = backend(sb);
  try {
    await be.start();
    await sb.ofctl('del-flows', BRIDGE);
    const a: Flow = { table: 5, priority: 10, match: [eq('in_port', 1)], actions: [output(2)], cookie: 0x11n };
    const b: Flow = { table: 5, priority: 10, match: [eq('in_port', 2)], actions: [output(1)], cookie: 0x22n };
    await be.commit(changesOf({ add: [a, b] }));
    await be.commit(changesOf({ modify: [{ ...a, actions: [output(3)], cookie: 0x99n }], add: [{ ...b, cookie: 0x33n }] }));
    let back = await be.readBack();
    t.deepEqual(bySort(back.flows, (f) => String(f.cookie)), [{ ...a, actions: [output(3)] }, { ...b, cookie: 0x33n }]);
    // Flows the model cannot hold: a VLAN match, a timeout, an action we do not encode.
    await sb.ofctl('add-flow', BRIDGE, 'table=6,priority=5,dl_vlan=10,actions=drop');
    await sb.ofctl('add-flow', BRIDGE, 'table=6,priority=6,idle_timeout=300,in_port=1,actions=drop');
    await sb.ofctl('add-flow', BRIDGE, 'table=6,priority=7,in_port=1,actions=strip_vlan,output:2');
    back = await be.readBack();
    t.is(back.flows.length, 2);
    t.deepEqual(back.foreign.flows.map((f) => f.reason).sort(), ['action type 18', 'match fields 8000:6', 'timeouts']);
    await be.commit(changesOf({ remove: [...back.foreign.flows, a] }));
    back = await be.readBack();
    t.deepEqual(back.flows, [{ ...b, cookie: 0x33n }]);
    t.deepEqual(back.foreign.flows, []);
  } finally {
    await be.close();
    await sb.stop();
  }
});

maybe('a refused bundle (missing group, full table, bad port) rejects with the switch\'s reason and the message at fault; nothing is applied', async (t) => {
  const sb = await startSandbox();
  const be = backend(sb);
  try {
    await be.start();
    await sb.ofctl('del-flows', BRIDGE);
    const base: Flow = { table: 1, priority: 1, match: [], actions: [], cookie: 1n };
    await be.commit(changesOf({ add: [base] }));
    const before = await dump(sb, 'dump-flows', BRIDGE);

    const good: Flow = { table: 2, priority: 5, match: [eq('in_port', 1)], actions: [output(2)], cookie: 2n };
    const toMissingGroup: Flow = { table: 2, priority: 6, match: [eq('in_port', 2)], actions: [{ type: 'group', id: 42 }], cookie: 3n };
    const e1 = await t.throwsAsync(be.commit(changesOf({ remove: [base], add: [good, toMissingGroup] })), { instanceOf: SwitchRefusedError });
    t.regex(e1.reason, /^OFPBAC_BAD_OUT_GROUP in flow add table=2,priority=6,cookie=0x3,in_port=2 actions=group:42$/);
    t.is((e1 as OvsRefusedError).failed?.item, toMissingGroup);
    t.deepEqual(await dump(sb, 'dump-flows', BRIDGE), before);

    // Refused when the switch decodes the message (before the commit): the bundle is discarded.
    const badPort: Flow = { table: 2, priority: 7, match: [eq('in_port', 2)], actions: [output(0xffff)], cookie: 4n };
    const e2 = await t.throwsAsync(be.commit(changesOf({ add: [good, badPort] })), { instanceOf: SwitchRefusedError });
    t.regex(e2.reason, /^OFPBAC_BAD_OUT_PORT in flow add table=2,priority=7/);
    t.deepEqual(await dump(sb, 'dump-flows', BRIDGE), before);

    // Table 3 holds at most 2 flows and refuses more.
    await sb.vsctl('--', '--id=@ft', 'create', 'Flow_Table', 'flow_limit=2', 'overflow_policy=refuse', '--', 'set', 'Bridge', BRIDGE, 'flow_tables:3=@ft');
    const inTable3 = [1, 2, 3].map((i): Flow => ({ table: 3, priority: 10, match: [eq('reg0', i)], actions: [output(2)], cookie: BigInt(10 + i) }));
    const e3 = await t.throwsAsync(be.commit(changesOf({ add: [good, ...inTable3] })), { instanceOf: SwitchRefusedError });
    t.regex(e3.reason, /^OFPFMFC_TABLE_FULL in flow add table=3,priority=10,cookie=0xd,reg0=3 /);
    t.is((e3 as OvsRefusedError).error, 'OFPFMFC_TABLE_FULL');
    t.deepEqual(await dump(sb, 'dump-flows', BRIDGE), before);
    // Two fit.
    await be.commit(changesOf({ add: inTable3.slice(0, 2) }));
    t.is((await dump(sb, 'dump-flows', BRIDGE)).length, before.length + 2);

    // A meter the switch refuses (rate 0): the commit fails before the bundle, nothing applied.
    const e4 = await t.throwsAsync(be.commit(changesOf({ add: [good], metersAdd: [{ id: 3, unit: 'kbps', rate: 100, burst: 10 }, { id: 4, unit: 'kbps', rate: 0, burst: 0 }] })), { instanceOf: SwitchRefusedError });
    t.regex(e4.reason, /^OFPMMFC_\w+ in meter add meter=4,/);
    t.deepEqual(await dump(sb, 'dump-meters', BRIDGE), []);
    t.is((await dump(sb, 'dump-flows', BRIDGE)).length, before.length + 2);

    // A meter added before a bundle the switch then refuses is taken away again: nothing changed.
    const e6 = await t.throwsAsync(be.commit(changesOf({ add: [toMissingGroup], metersAdd: [{ id: 6, unit: 'kbps', rate: 100, burst: 10 }] })), { instanceOf: SwitchRefusedError });
    t.regex(e6.reason, /^OFPBAC_BAD_OUT_GROUP/);
    t.deepEqual(await dump(sb, 'dump-meters', BRIDGE), []);
    // A flow the codec cannot encode is refused like the switch would, naming the flow.
    const e5 = await t.throwsAsync(be.commit(changesOf({ add: [good, { ...good, priority: 9, actions: [{ type: 'controller', userdata: '0x01' }] }] })), { instanceOf: SwitchRefusedError });
    t.regex(e5.reason, /^unencodable: controller userdata "0x01" is not hex bytes/);
    t.is((await dump(sb, 'dump-flows', BRIDGE)).length, before.length + 2);
    // The channel is still fine afterwards.
    await be.commit(changesOf({ add: [good] }));
    t.is((await dump(sb, 'dump-flows', BRIDGE)).length, before.length + 3);
  } finally {
    await be.close();
    await sb.stop();
  }
});

async function vswitchdPid(sb: OvsSandbox): Promise<number> {
  const { readFileSync } = await import('node:fs');
  return Number(readFileSync(join(sb.dir, 'ovs-vswitchd.pid'), 'utf8').trim());
}

async function startVswitchd(sb: OvsSandbox): Promise<void> {
  await execa('ovs-vswitchd', ['--detach', '--no-chdir', '--pidfile', '--log-file', '-vconsole:off', '--enable-dummy', '--disable-system', '--disable-system-route'], { env: sb.env });
}

maybe('ovs-vswitchd restart: noticed, commits meanwhile reject as unavailable, reconnect re-ensures the bridge and fires the reset', async (t) => {
  const sb = await startSandbox();
  const be = backend(sb);
  let resets = 0;
  be.onSwitchReset(() => { resets++; });
  try {
    await be.start();
    const f: Flow = { table: 0, priority: 50, match: [eq('in_port', 1)], actions: [output(2)], cookie: 7n };
    await be.commit(changesOf({ add: [f] }));
    await execa('ovs-appctl', ['-t', 'ovs-vswitchd', 'exit'], { env: sb.env });
    await until(() => !be.connected, 'the backend to notice');
    const e = await t.throwsAsync(be.commit(changesOf({ add: [f] })), { instanceOf: SwitchUnavailableError });
    t.false(e instanceof SwitchRefusedError);
    t.regex(e.message, /unreachable .* reconnecting/);
    await t.throwsAsync(be.readBack(), { instanceOf: SwitchUnavailableError });
    t.is(resets, 0);
    // Someone deletes a tunnel port meanwhile: it is back after the reconnect.
    await sb.vsctl('--no-wait', 'del-port', BRIDGE, 'gnv-tun');
    await startVswitchd(sb);
    const ms = await until(() => resets === 1, 'the reset listener');
    t.log(`reset fired ${ms} ms after vswitchd started`);
    t.true(be.connected);
    t.is((await sb.vsctl('get', 'interface', 'gnv-tun', 'ofport')).trim(), '4096');
    // The restarted switch lost its flows; the dataplane reinstalls them in one bundle.
    t.deepEqual((await be.readBack()).flows, []);
    await be.commit(changesOf({ add: [f] }));
    t.deepEqual((await be.readBack()).flows, [f]);
  } finally {
    await be.close();
    await sb.stop();
  }
});

maybe('ovsdb-server restart: noticed, commits meanwhile reject, reconnect re-monitors interfaces and fires the reset', async (t) => {
  const sb = await startSandbox();
  const be = backend(sb);
  let resets = 0;
  be.onSwitchReset(() => { resets++; });
  const changed: string[][] = [];
  be.onBindingsChanged((keys) => changed.push(keys));
  try {
    await be.start();
    await execa('ovs-appctl', ['-t', 'ovsdb-server', 'exit'], { env: sb.env });
    await until(() => !be.connected, 'the backend to notice');
    await t.throwsAsync(be.commit(changesOf({ add: [{ table: 0, priority: 1, match: [], actions: [], cookie: 1n }] })), { instanceOf: SwitchUnavailableError });
    await execa('ovsdb-server', ['--detach', '--no-chdir', '--pidfile', '--log-file', '-vconsole:off', `--remote=punix:${sb.dbSocket}`, join(sb.dir, 'conf.db')], { env: sb.env });
    await until(() => resets === 1, 'the reset listener');
    // The interface monitor is back: a tap plugged now is seen.
    await sb.vsctl('add-port', BRIDGE, 'tapX', '--', 'set', 'interface', 'tapX', 'type=dummy', 'ofport_request=9', 'external_ids:iface-id=PX');
    await until(() => be.bindings.ofport('PX') === 9, 'the new tap');
    t.true(changed.some((keys) => keys.includes('PX')));
    await be.commit(changesOf({ add: [{ table: 0, priority: 1, match: [], actions: [], cookie: 1n }] }));
    t.is((await be.readBack()).flows.length, 1);
  } finally {
    await be.close();
    await sb.stop();
  }
});

maybe('a frozen switch (no echo replies) is declared dead, and comes back after it thaws', async (t) => {
  const sb = await startSandbox();
  const be = backend(sb, { openflow: { echoInterval: 100, echoTimeout: 500 } });
  let resets = 0;
  be.onSwitchReset(() => { resets++; });
  const pid = await vswitchdPid(sb);
  try {
    await be.start();
    process.kill(pid, 'SIGSTOP');
    const ms = await until(() => !be.connected, 'the echo timeout');
    t.log(`dead after ${ms} ms`);
    await t.throwsAsync(be.commit(changesOf({ add: [{ table: 0, priority: 1, match: [], actions: [], cookie: 1n }] })), { instanceOf: SwitchUnavailableError });
    process.kill(pid, 'SIGCONT');
    await until(() => resets === 1, 'the reconnect');
    await be.commit(changesOf({ add: [{ table: 0, priority: 1, match: [], actions: [], cookie: 1n }] }));
    t.pass();
  } finally {
    try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
    await be.close();
    await sb.stop();
  }
});

maybe('an adopted bridge whose protocols lack OpenFlow14 gets it added', async (t) => {
  const sb = await startSandbox();
  const be = backend(sb);
  try {
    await sb.vsctl('add-br', BRIDGE, '--', 'set', 'bridge', BRIDGE, 'datapath_type=dummy', 'protocols=OpenFlow10,OpenFlow13');
    await be.start();
    t.regex(await sb.vsctl('get', 'bridge', BRIDGE, 'protocols'), /OpenFlow14/);
    t.regex(await sb.vsctl('get', 'bridge', BRIDGE, 'protocols'), /OpenFlow10/);
    await be.commit(changesOf({ add: [{ table: 0, priority: 1, match: [], actions: [], cookie: 1n }] }));
    // Besides ours, the NORMAL flow a standalone bridge starts with (output to OFPP_NORMAL, 65530).
    t.deepEqual(bySort((await be.readBack()).flows, (f) => String(f.priority)), [
      { table: 0, priority: 0, match: [], actions: [output(65530)], cookie: 0n },
      { table: 0, priority: 1, match: [], actions: [], cookie: 1n },
    ]);
  } finally {
    await be.close();
    await sb.stop();
  }
});
