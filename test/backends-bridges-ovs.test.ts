// Several bridges in the ovs backend against a real Open vSwitch 3.1 (private sandbox, dummy
// datapath): br-int, br-ex created by start() and br-phys made beforehand and adopted. One commit
// with flows, a group and a meter on each bridge; each bridge's dumps show exactly its own;
// readBack() returns them (and foreign ones) with `bridge` set off br-int only; a refusal on br-ex names br-ex and
// changes nothing; a refusal on br-int leaves the external bridges' bundles applied; an
// ovs-vswitchd restart (with br-ex deleted meanwhile) brings every bridge back, the reset fires
// once, and committing again restores every bridge's flows.
import test from 'ava';
import { type FlowChanges, SwitchRefusedError, emptyChanges } from '../dataplane/backend.js';
import { OvsBackend, type OvsRefusedError, SwitchUnavailableError, UnknownBridgeError } from '../dataplane/backends/ovs.js';
import { canonicalFlow } from '../dataplane/backends/openflow-codec.js';
import { ETH_TYPE, ipv4Value } from '../dataplane/fields.js';
import { type Flow, type Group, type Meter, canonicalMatch, eq, objectKey, output } from '../dataplane/flow.js';
import { BRIDGE, TUNNEL_PORTS } from '../dataplane/pipeline.js';
import { type OvsSandbox, ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';
import { until } from './helpers/wait.js';

const missing = await ovsMissing();
if (missing) console.log(`backends-bridges-ovs: ${missing}`);
const maybe = missing ? test.skip : test.serial;

const EX = 'br-ex';
const PHYS = 'br-phys';

const flow = (bridge: string | undefined, table: number, priority: number, match: Parameters<typeof canonicalMatch>[0], actions: Flow['actions'], cookie: bigint): Flow =>
  ({ ...(bridge === undefined ? {} : { bridge }), table, priority, match: canonicalMatch(match), actions, cookie });

/** Cookie 0x1N on br-int, 0x2N on br-ex, 0x3N on br-phys; group 1 and meter 1 on each, different on each. */
function contents(): { flows: Flow[]; groups: Group[]; meters: Meter[] } {
  const flows: Flow[] = [];
  const groups: Group[] = [];
  const meters: Meter[] = [];
  [undefined, EX, PHYS].forEach((bridge, i) => {
    const c = BigInt(0x10 * (i + 1));
    flows.push(
      flow(bridge, 0, 100, [eq('in_port', 2)], [{ type: 'meter', id: 1 }, { type: 'group', id: 1 }], c + 1n),
      flow(bridge, 0, 50, [eq('in_port', 3), eq('dl_type', ETH_TYPE.ip), eq('nw_dst', ipv4Value(`203.0.113.${i + 1}`))], [output(2)], c + 2n),
      flow(bridge, 0, 0, [], [], c + 3n),
    );
    groups.push({ ...(bridge === undefined ? {} : { bridge }), id: 1, type: 'all', buckets: Array.from({ length: i + 1 }, () => ({ actions: [output(3)] })) });
    meters.push({ ...(bridge === undefined ? {} : { bridge }), id: 1, unit: 'pktps', rate: 1000 * (i + 1), burst: 100 });
  });
  return { flows, groups, meters };
}

const changes = (c: { add?: Flow[]; remove?: Flow[]; groups?: Group[]; meters?: Meter[] }): FlowChanges => {
  const out = emptyChanges();
  out.add = c.add ?? [];
  out.remove = c.remove ?? [];
  out.groups.add = c.groups ?? [];
  out.meters.add = c.meters ?? [];
  return out;
};

async function dump(sb: OvsSandbox, what: 'dump-flows' | 'dump-groups' | 'dump-meters', bridge: string): Promise<string[]> {
  const args = ['-O', 'OpenFlow14', what, bridge];
  if (what === 'dump-flows') args.splice(2, 0, '--no-stats');
  const out = await sb.ofctl(...args);
  return out.split('\n').filter((l) => !/ reply \(/.test(l)).map((l) => l.trim()).filter((l) => l !== '').sort();
}

const cookiesIn = (lines: string[]): string[] => lines.map((l) => /cookie=(0x[0-9a-f]+)/.exec(l)?.[1] ?? 'cookie=0').sort();
const cookiesOf = (flows: Flow[], bridge: string | undefined): string[] => flows.filter((f) => f.bridge === bridge).map((f) => `0x${f.cookie.toString(16)}`).sort();

const big = (_: string, v: unknown): unknown => (typeof v === 'bigint' ? `${v}n` : v);
const sortedJson = (xs: object[]): string[] => xs.map((x) => JSON.stringify(x, big)).sort();

maybe('br-int, a created br-ex and an adopted br-phys: one commit, exact dumps per bridge, readBack, refusals, and an ovs-vswitchd restart', async (t) => {
  const sb = await startSandbox();
  // br-phys exists beforehand, with protocols that lack OpenFlow 1.4 and a port of its own.
  await sb.vsctl('add-br', PHYS, '--', 'set', 'bridge', PHYS, 'datapath_type=dummy', 'fail-mode=secure', 'protocols=OpenFlow10,OpenFlow13');
  await sb.vsctl('add-port', PHYS, 'phys-eth1', '--', 'set', 'interface', 'phys-eth1', 'type=dummy', 'ofport_request=2');
  const physUuid = (await sb.vsctl('get', 'bridge', PHYS, '_uuid')).trim();
  const be = new OvsBackend({ db: `unix:${sb.dbSocket}`, rundir: sb.dir, datapathType: 'dummy', reconnect: { initial: 20, max: 200 } });
  let resets = 0;
  be.onSwitchReset(() => { resets++; });
  try {
    await be.start([BRIDGE, EX, PHYS]);
    t.deepEqual(be.bridges, [BRIDGE, EX, PHYS]);
    t.deepEqual((await sb.vsctl('list-br')).split('\n').sort(), [PHYS, EX, BRIDGE].sort());
    // br-ex created: secure, our datapath type, OpenFlow 1.4, no tunnel ports.
    t.is((await sb.vsctl('get', 'bridge', EX, 'fail_mode')).trim(), 'secure');
    t.is((await sb.vsctl('get', 'bridge', EX, 'datapath_type')).trim(), 'dummy');
    t.regex(await sb.vsctl('get', 'bridge', EX, 'protocols'), /OpenFlow14/);
    t.is((await sb.vsctl('list-ports', EX)).trim(), '');
    t.deepEqual((await sb.vsctl('list-ports', BRIDGE)).split('\n').sort(), Object.values(TUNNEL_PORTS).map((p) => p.name).sort());
    // br-phys adopted: the same row, OpenFlow14 added, its port kept, no tunnel ports.
    t.is((await sb.vsctl('get', 'bridge', PHYS, '_uuid')).trim(), physUuid);
    t.regex(await sb.vsctl('get', 'bridge', PHYS, 'protocols'), /OpenFlow10.*OpenFlow14|OpenFlow14.*OpenFlow10/);
    t.is((await sb.vsctl('list-ports', PHYS)).trim(), 'phys-eth1');

    const want = contents();
    await be.commit(changes({ add: want.flows, groups: want.groups, meters: want.meters }));
    for (const bridge of [undefined, EX, PHYS]) {
      const name = bridge ?? BRIDGE;
      t.deepEqual(cookiesIn(await dump(sb, 'dump-flows', name)), cookiesOf(want.flows, bridge), `${name}: dump-flows holds exactly its own flows`);
      const groups = await dump(sb, 'dump-groups', name);
      t.is(groups.length, 1, `${name}: one group`);
      t.is(groups[0]!.match(/bucket=/g)?.length, want.groups.find((g) => g.bridge === bridge)!.buckets.length, `${name}: its own group`);
      t.regex((await dump(sb, 'dump-meters', name)).join('\n'), new RegExp(`rate=${want.meters.find((m) => m.bridge === bridge)!.rate}\\b`), `${name}: its own meter`);
    }

    const back = await be.readBack();
    t.deepEqual(sortedJson(back.flows), sortedJson(want.flows.map(canonicalFlow)), 'flows read back, with their bridges');
    t.true(back.flows.filter((f) => f.cookie < 0x20n).every((f) => !('bridge' in f)), 'br-int flows come back without a bridge');
    t.deepEqual(back.flows.filter((f) => f.cookie >= 0x30n).map((f) => f.bridge), [PHYS, PHYS, PHYS]);
    t.deepEqual(sortedJson(back.groups), sortedJson(want.groups));
    t.deepEqual(sortedJson(back.meters), sortedJson(want.meters));
    t.deepEqual(back.meters.map(objectKey).sort(), ['1', `${EX}|1`, `${PHYS}|1`].sort());
    t.deepEqual(back.foreign, { flows: [], groups: [], meters: [] });

    // Refused on br-ex (sent first): a group br-ex lacks though br-int has one of that id. Nothing applied anywhere.
    const before = await Promise.all([BRIDGE, EX, PHYS].map((b) => dump(sb, 'dump-flows', b)));
    const bad = changes({
      add: [flow(undefined, 1, 1, [], [output(2)], 0x19n), flow(EX, 1, 1, [], [{ type: 'group', id: 7 }], 0x29n)],
      groups: [{ id: 7, type: 'all', buckets: [{ actions: [output(2)] }] }],
    });
    const e = await t.throwsAsync(be.commit(bad), { instanceOf: SwitchRefusedError });
    t.regex(e.reason, /^OFPBAC_BAD_OUT_GROUP on br-ex in flow add table=1,priority=1,cookie=0x29 actions=group:7$/);
    t.is((e as OvsRefusedError).bridge, EX);
    t.deepEqual((e as OvsRefusedError).applied, []);
    t.deepEqual(await Promise.all([BRIDGE, EX, PHYS].map((b) => dump(sb, 'dump-flows', b))), before);
    t.false((await dump(sb, 'dump-groups', BRIDGE)).some((l) => l.includes('group_id=7')), 'group 7 not added on br-int');

    // Refused on br-int (sent last): br-ex's and br-phys's bundles stay applied, and the error says so.
    const late = changes({
      add: [flow(EX, 1, 2, [], [output(2)], 0x2an), flow(PHYS, 1, 2, [], [output(2)], 0x3an), flow(undefined, 1, 2, [], [{ type: 'group', id: 8 }], 0x1an)],
    });
    const e2 = await t.throwsAsync(be.commit(late), { instanceOf: SwitchRefusedError });
    t.regex(e2.reason, /^OFPBAC_BAD_OUT_GROUP in flow add /, 'br-int goes unnamed, as in the model');
    t.deepEqual((e2 as OvsRefusedError).applied, [EX, PHYS]);
    t.regex(e2.message, /nothing of br-int applied; the bundles of br-ex, br-phys before it stay applied/);
    t.deepEqual(await dump(sb, 'dump-flows', BRIDGE), before[0]);
    t.is((await dump(sb, 'dump-flows', EX)).length, 4);
    t.is((await dump(sb, 'dump-flows', PHYS)).length, 4);
    await be.commit(changes({ remove: late.add.slice(0, 2) }));

    // Foreign flows on br-phys (a VLAN match the model lacks, kept as raw match bytes; a timeout)
    // come back on br-phys, and removing them deletes them there and nowhere else.
    await sb.ofctl('add-flow', PHYS, 'table=6,priority=5,dl_vlan=10,actions=drop');
    await sb.ofctl('add-flow', PHYS, 'table=6,priority=6,idle_timeout=300,in_port=2,actions=drop');
    await sb.ofctl('add-flow', BRIDGE, 'table=6,priority=6,idle_timeout=300,in_port=2,actions=drop');
    const withForeign = await be.readBack();
    t.deepEqual(withForeign.foreign.flows.map((f) => `${f.bridge ?? BRIDGE} ${f.reason}`).sort(), [`${BRIDGE} timeouts`, `${PHYS} match fields 8000:6`, `${PHYS} timeouts`]);
    await be.commit(changes({ remove: withForeign.foreign.flows.filter((f) => f.bridge === PHYS) }));
    t.deepEqual((await be.readBack()).foreign.flows.map((f) => `${f.bridge ?? BRIDGE} ${f.reason}`), [`${BRIDGE} timeouts`]);
    await sb.ofctl('del-flows', BRIDGE, 'table=6');

    // A bridge never started.
    await t.throwsAsync(be.commit(changes({ add: [flow('br-nope', 0, 1, [], [], 1n)] })), { instanceOf: UnknownBridgeError });

    // ovs-vswitchd goes away; br-ex is deleted meanwhile. Every bridge comes back, then the reset fires once.
    await sb.stopVswitchd();
    await until(() => !be.connected, 'the backend to notice');
    await t.throwsAsync(be.commit(changes({ add: want.flows })), { instanceOf: SwitchUnavailableError });
    await t.throwsAsync(be.readBack(), { instanceOf: SwitchUnavailableError });
    await sb.vsctl('--no-wait', 'del-br', EX);
    await sb.startVswitchd();
    const ms = await until(() => resets === 1, 'the reset listener');
    t.log(`reset fired ${ms} ms after ovs-vswitchd started`);
    t.true(be.connected);
    t.is((await sb.vsctl('get', 'bridge', EX, 'fail_mode')).trim(), 'secure', 'br-ex re-created');
    t.is((await sb.vsctl('get', 'bridge', PHYS, '_uuid')).trim(), physUuid, 'br-phys still the adopted one');
    const lost = await be.readBack();
    t.deepEqual([lost.flows.length, lost.groups.length, lost.meters.length], [0, 0, 0], 'the restarted switch lost everything on every bridge');
    // What the dataplane does on the reset: reinstall all it wants.
    await be.commit(changes({ add: want.flows, groups: want.groups, meters: want.meters }));
    const again = await be.readBack();
    t.deepEqual(sortedJson(again.flows), sortedJson(want.flows.map(canonicalFlow)), 'every bridge holds its flows again');
    t.deepEqual(sortedJson(again.groups), sortedJson(want.groups));
    t.deepEqual(sortedJson(again.meters), sortedJson(want.meters));
    for (const bridge of [undefined, EX, PHYS]) t.deepEqual(cookiesIn(await dump(sb, 'dump-flows', bridge ?? BRIDGE)), cookiesOf(want.flows, bridge));

    // br-ex deleted while everything runs: its channel closes; it is re-created and the reset fires again.
    await sb.vsctl('del-br', EX);
    await until(() => resets === 2, 'the reset after br-ex was deleted');
    t.is((await sb.vsctl('get', 'bridge', EX, 'fail_mode')).trim(), 'secure');
    await be.commit(changes({ add: want.flows.filter((f) => f.bridge === EX), groups: want.groups.filter((g) => g.bridge === EX), meters: want.meters.filter((m) => m.bridge === EX) }));
    t.deepEqual(cookiesIn(await dump(sb, 'dump-flows', EX)), cookiesOf(want.flows, EX));
    t.is((await be.readBack()).flows.length, want.flows.length);
  } finally {
    await be.close();
    await sb.stop();
  }
});
