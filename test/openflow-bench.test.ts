// Opt-in measurement (ACA_BENCH_OPENFLOW=1, sizes in ACA_BENCH_SIZES, default 10000,100000):
// the ovs backend's install of N neighbor flows through its OpenFlow channel (encoding
// included, one bundle) beside `ovs-ofctl --bundle add-flows` of the same flows as flow-text
// renders them (file prepared beforehand), on the same bridge of a real OVS 3.1, alternating,
// median of three each; and readBack() of them beside `ovs-ofctl dump-flows`. Prints the
// figures and the ratio (target ≤ 1.25×); asserts only that every flow arrived.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { emptyChanges } from '../dataplane/backend.js';
import { OvsBackend } from '../dataplane/backends/ovs.js';
import { type Flow, cookieFor, eq, load, resubmit, setField } from '../dataplane/flow.js';
import { formatFlow } from '../dataplane/flow-text.js';
import { BRIDGE, REGISTERS } from '../dataplane/pipeline.js';
import { ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';

const enabled = process.env.ACA_BENCH_OPENFLOW === '1';
const missing = enabled ? await ovsMissing() : 'set ACA_BENCH_OPENFLOW=1 to run it';
if (missing) console.log(`openflow-bench: ${missing}`);
const sizes = (process.env.ACA_BENCH_SIZES ?? '10000,100000').split(',').map(Number);

function neighborFlows(n: number): Flow[] {
  const flows: Flow[] = [];
  for (let i = 0; i < n; i++) {
    const vni = 5000 + (i % 16);
    flows.push({
      table: 40, priority: 100,
      match: [eq('metadata', vni), eq('dl_dst', 0x0000aa000000n + BigInt(i))],
      actions: [setField('tun_id', vni), setField('tun_dst', 0x0a000000n + BigInt(i % 1000)), load(REGISTERS.outPort, 4097), resubmit(70)],
      cookie: cookieFor('neighbor', `neighbor-${i}`),
    });
  }
  return flows;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

(missing ? test.skip : test.serial)('install N flows: OpenFlow channel vs ovs-ofctl --bundle add-flows', async (t) => {
  t.timeout(30 * 60_000);
  const sb = await startSandbox();
  const be = new OvsBackend({ db: `unix:${sb.dbSocket}`, rundir: sb.dir, datapathType: 'dummy' });
  try {
    await be.start();
    for (const n of sizes) {
      const flows = neighborFlows(n);
      const file = join(sb.dir, `flows-${n}.txt`);
      writeFileSync(file, `${flows.map(formatFlow).join('\n')}\n`);
      const count = async (): Promise<number> => Number(/flow_count=(\d+)/.exec(await sb.ofctl('dump-aggregate', BRIDGE, 'table=40'))![1]);
      const channel: number[] = [];
      const ofctl: number[] = [];
      for (let round = 0; round < 3; round++) {
        await sb.ofctl('del-flows', BRIDGE);
        let start = performance.now();
        const changes = emptyChanges();
        changes.add = flows;
        await be.commit(changes);
        channel.push(performance.now() - start);
        t.is(await count(), n);
        await sb.ofctl('del-flows', BRIDGE);
        start = performance.now();
        await execa('ovs-ofctl', ['-O', 'OpenFlow14', '--bundle', 'add-flows', BRIDGE, file], { env: sb.env });
        ofctl.push(performance.now() - start);
        t.is(await count(), n);
      }
      // Read-back of the same flows beside `ovs-ofctl dump-flows` of them.
      await be.commit(Object.assign(emptyChanges(), { add: flows }));
      let start = performance.now();
      const back = await be.readBack();
      const readMs = performance.now() - start;
      t.is(back.flows.filter((f) => f.table === 40).length, n);
      start = performance.now();
      await execa('ovs-ofctl', ['-O', 'OpenFlow14', 'dump-flows', BRIDGE], { env: sb.env });
      const dumpMs = performance.now() - start;
      console.log(`${n} flows: readBack ${readMs.toFixed(0)} ms, ovs-ofctl dump-flows ${dumpMs.toFixed(0)} ms`);
      const c = median(channel);
      const o = median(ofctl);
      const line = `${n} flows: channel ${c.toFixed(0)} ms (${channel.map((x) => x.toFixed(0)).join('/')}), ovs-ofctl --bundle add-flows ${o.toFixed(0)} ms (${ofctl.map((x) => x.toFixed(0)).join('/')}), ratio ${(c / o).toFixed(2)}x (target <= 1.25x)`;
      console.log(line);
      t.log(line);
    }
  } finally {
    await be.close();
    await sb.stop();
  }
});
