// Fairness between goal states: a large change is committed to the dataplane in chunks, and a
// small goal state from another stream that touches none of its pending resources is committed
// between two chunks (its reply comes first); one that touches a pending resource waits for the
// large one (arrival order per resource). Ordered by observation, never by time: the test holds
// the switch on the large state's second chunk and watches what happens.
import test from 'ava';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { CHUNK_EVENTS } from '../agent/intake.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { formatFlow } from '../dataplane/flow-text.js';
import { bigState, neighborState, portState, pushOne, withAgent } from './helpers/agents.js';
import { until } from './helpers/wait.js';

test('a small goal state is committed between the chunks of a large one; a conflicting one waits for it', async (t) => {
  await withAgent(async (agent, addr) => {
    const dp = agent.dataplane as FlowDataplane;
    const backend = dp.backend;
    const commit = backend.commit.bind(backend);
    let commits = 0;
    let open!: () => void;
    const gate = new Promise<void>((r) => { open = r; });
    const order: string[] = [];
    /** What each commit to the switch carried: the small state, the conflicting one, or the large one's chunks. */
    const commitsOf: string[] = [];
    backend.commit = async (c) => {
      commits += 1;
      const text = [...c.add, ...c.modify].map(formatFlow).join('\n');
      commitsOf.push(text.includes('fa:16:3e:00:b0:01') ? 'small' : text.includes('10.0.77.77') ? 'conflicting' : 'large');
      if (commits === 3) await gate; // the large state's second chunk
      return commit(c);
    };
    await pushOne(addr, GoalStateV2.fromPartial({ subnetStates: bigState(1).subnetStates }));
    commits = 1;
    commitsOf.length = 0;
    const n = CHUNK_EVENTS * 3;
    const large = bigState(n);
    const lastNeighbor = Object.keys(large.neighborStates).at(-1)!;
    const a = pushOne(addr, large).then((r) => { order.push('large'); return r; });
    await until(() => commits >= 3, 'the large state\'s second chunk to reach the switch');

    // B: its own port and neighbor, nothing the large state has pending.
    const b = pushOne(addr, GoalStateV2.fromPartial({
      portStates: { PB: portState('PB', { macAddress: 'fa:16:3e:00:b0:01', fixedIps: [{ subnetId: 'S', ipAddress: '10.9.0.2' }] }) },
      neighborStates: { 'L2/NB': neighborState('NB', 0x7e0001) },
    })).then((r) => { order.push('small'); return r; });
    // C: the large state's last neighbor, changed (revision 2): it must wait for the large one.
    const cState = large.neighborStates[lastNeighbor]!;
    const c = pushOne(addr, GoalStateV2.fromPartial({ neighborStates: { [lastNeighbor]: { ...cState, configuration: { ...cState.configuration!, revisionNumber: 2, hostIpAddress: '10.0.77.77' } } } }))
      .then((r) => { order.push('conflicting'); return r; });
    // Both are in the store (applied on receipt); then the switch is let go.
    await until(() => agent.store.get('port', 'PB') !== undefined && agent.store.get('neighbor', lastNeighbor)?.hostIp === '10.0.77.77', 'B and C in the store');
    open();
    const [ra, rb, rc] = await Promise.all([a, b, c]);
    for (const r of [ra, rb, rc]) t.true(r.operationStatuses.every((s) => s.operationStatus === 0), JSON.stringify(r.operationStatuses.filter((s) => s.operationStatus !== 0)));
    // On the switch: the small state between the large one's chunks, the conflicting one after
    // its last chunk. (Replies may come in another order: a large reply takes longer to build.)
    const lastLarge = commitsOf.lastIndexOf('large');
    t.true(commitsOf.indexOf('small') > 0 && commitsOf.indexOf('small') < lastLarge, `small between the large chunks: ${JSON.stringify(commitsOf)}`);
    t.true(commitsOf.indexOf('conflicting') > lastLarge, `conflicting after the large one: ${JSON.stringify(commitsOf)}`);
    t.is(commitsOf.filter((x) => x === 'large').length, 3, 'the large state went in three chunks');
    t.is(order[0], 'small', 'the small state was answered first');
    // The switch holds exactly what the store says, arrival order per resource included.
    const recomputed = FlowDataplane.recompute(agent.store, backend.bindings);
    t.deepEqual(dp.flows().map(formatFlow).sort(), [...recomputed.activeFlows()].map(formatFlow).sort());
    t.true(dp.flows().some((f) => formatFlow(f).includes('10.0.77.77')), 'the later state of the shared neighbor won');
  });
});
