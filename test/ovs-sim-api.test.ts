// The no-text API (ovs-sim/api.ts) and the tools see one switch: meters the agent's path adds or
// changes show in `ovs-ofctl dump-meters`, and a refused bundle leaves them as they were.
import test from 'ava';
import { type FlowMod, OfError, SimSwitch, applyBundle, flowModFromText, meterModFromText } from '../ovs-sim/index.js';

function setup(): { sw: SimSwitch; dump: () => string } {
  const sw = new SimSwitch();
  sw.run('ovs-vsctl add-br br0 -- set bridge br0 datapath_type=dummy fail-mode=secure');
  return { sw, dump: () => sw.run('ovs-ofctl -O OpenFlow13 dump-meters br0').stdout };
}

test('meters added and modified through applyBundle show in dump-meters; a refused bundle restores them', (t) => {
  const { sw, dump } = setup();
  const b = sw.bridges.get('br0')!;
  const none = { groups: [], groupDeletes: [], meterDeletes: [] };
  applyBundle(b, { ...none, meters: [meterModFromText('meter=7,kbps,band=type=drop,rate=1000', 'add')], flows: [] });
  const added = dump();
  t.is(added, 'OFPST_METER_CONFIG reply (OF1.3) (xid=0x2):\nmeter=7 kbps bands=\ntype=drop rate=1000');
  // A modify of the meter in a bundle whose flow names a missing group: refused as a whole.
  const bad: FlowMod = flowModFromText(b, 'add priority=5,actions=meter:7,group:9');
  const e = t.throws(() => applyBundle(b, { ...none, meters: [meterModFromText('meter=7,pktps,band=type=drop,rate=5', 'modify')], flows: [bad] }));
  t.true(e instanceof OfError && e.code === 'OFPBAC_BAD_OUT_GROUP', String(e));
  t.is(dump(), added, 'the meter as it was');
  t.is(sw.run('ovs-ofctl -O OpenFlow13 --no-stats dump-flows br0').stdout, '', 'no flow either');
  // And through ovs-ofctl: the same meter, modified, then deleted with the flow that uses it.
  t.is(sw.run('ovs-ofctl -O OpenFlow13 mod-meter br0 meter=7,pktps,band=type=drop,rate=5').status, 0);
  t.is(sw.run('ovs-ofctl -O OpenFlow13 add-flow br0 priority=5,actions=meter:7').status, 0);
  t.is(dump(), 'OFPST_METER_CONFIG reply (OF1.3) (xid=0x2):\nmeter=7 pktps bands=\ntype=drop rate=5');
  t.is(sw.run('ovs-ofctl -O OpenFlow13 del-meter br0 meter=7').status, 0);
  t.is(b.flows().length, 0, 'the flow went with its meter');
  t.is(dump(), 'OFPST_METER_CONFIG reply (OF1.3) (xid=0x2):');
});
