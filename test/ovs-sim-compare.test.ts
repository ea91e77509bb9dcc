// The corpus normalization (test/ovs-sim-compare.ts) hides only what it says it hides: log lines a
// loaded machine adds are dropped with the sequence numbers after them moved back, while a
// missing or wrong sequence number, a changed message or another order still differ.
import test from 'ava';
import { compareOutputs, stderrLines } from './helpers/ovs-compare.js';

const T = '2026-12-03T21:10:24Z';

test('load-only timeval lines are dropped and the sequence numbers after them moved back', (t) => {
  const loaded = [
    `${T}|00001|timeval|WARN|Unreasonably long 1402ms poll interval (0ms user, 4ms system)`,
    `${T}|00002|timeval|WARN|faults: 12 minor, 0 major`,
    `${T}|00003|timeval|WARN|context switches: 3 voluntary, 9 involuntary`,
    `${T}|00004|ofp_match|INFO|normalization changed ofp_match, details:`,
    `${T}|00005|ofp_match|INFO| pre: arp,nw_proto=1`,
  ].join('\n');
  const quiet = [`${T}|00001|ofp_match|INFO|normalization changed ofp_match, details:`, `${T}|00002|ofp_match|INFO| pre: arp,nw_proto=1`].join('\n');
  t.deepEqual(stderrLines(loaded), stderrLines(quiet));
  t.deepEqual(stderrLines(quiet), ['00001|ofp_match|INFO|normalization changed ofp_match, details:', '00002|ofp_match|INFO| pre: arp,nw_proto=1']);
});

test('sequence numbers, messages and their order are still compared', (t) => {
  const real = `${T}|00001|ofp_port|WARN|port 65535 is outside the supported range`;
  t.notDeepEqual(stderrLines('ofp_port|WARN|port 65535 is outside the supported range'), stderrLines(real), 'a missing sequence number');
  t.notDeepEqual(stderrLines(`${T}|00002|ofp_port|WARN|port 65535 is outside the supported range`), stderrLines(real), 'a wrong one');
  t.notDeepEqual(stderrLines(`${T}|00001|ofp_port|WARN|port 65534 is outside the supported range`), stderrLines(real), 'another message');
  // A timeval warning that is not about load stays.
  t.deepEqual(stderrLines(`${T}|00001|timeval|WARN|something else`), ['00001|timeval|WARN|something else']);
});

test("a sandbox's run directory reads as OVS's default; dump-groups lines compare as a set, other output as printed", (t) => {
  const real = { stdout: '', stderr: 'ovs-ofctl: talking to unix:/tmp/ovs-sb-Ab12Cd/br0.mgmt (Protocol error)', status: 1 };
  const ours = { stdout: '', stderr: 'ovs-ofctl: talking to unix:/var/run/openvswitch/br0.mgmt (Protocol error)', status: 1 };
  for (const c of compareOutputs(['ovs-ofctl', 'add-flow'], real, ours)) t.deepEqual(c.ours, c.real, c.what);
  const groups = (lines: string[]): { stdout: string; stderr: string; status: number } => ({ stdout: ['OFPST_GROUP_DESC reply (OF1.3) (xid=0x2):', ...lines].join('\n'), stderr: '', status: 0 });
  const a = groups([' group_id=2,type=all', ' group_id=1,type=all']);
  const b = groups([' group_id=1,type=all', ' group_id=2,type=all']);
  for (const c of compareOutputs(['ovs-ofctl', 'dump-groups', 'br0'], a, b)) t.deepEqual(c.ours, c.real, c.what);
  const diff = compareOutputs(['ovs-ofctl', 'dump-desc', 'br0'], { stdout: 'x\ny', stderr: '', status: 0 }, { stdout: 'y\nx', stderr: '', status: 0 });
  t.notDeepEqual(diff.find((c) => c.what === 'output')!.ours, diff.find((c) => c.what === 'output')!.real);
});
