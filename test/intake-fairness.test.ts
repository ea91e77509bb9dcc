// Fairness between goal states: a large change is committed to the dataplane in chunks, and a
// small goal state from another stream that touches none of its pending resources is committed
// between two chunks (its reply comes first); one that touches a pending resource waits for the
// large one (arrival order per resource). Ordered by observation, never by time: the test holds
// the switch on the large state's second chunk and watches what happens.
import test, { type ExecutionContext } from 'ava';
import { GoalState, GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { CHUNK_MIN_EVENTS, type Intake, type IntakeResult } from '../agent/intake.js';
import { type LazyGoalStateV2, SLICED_SCAN_BYTES, UndecodableError, scanGoalStateV2, scanGoalStateV2Sliced } from '../agent/goalstate-source.js';
import { KINDS } from '../dataplane/model.js';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import type { Agent } from '../agent/daemon.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { formatFlow } from '../dataplane/flow-text.js';
import { makeClient, pushStream, pushUnary } from '../agent/push.js';
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
    const n = CHUNK_MIN_EVENTS * 4;
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
    t.true(commitsOf.filter((x) => x === 'large').length >= 3, `the large state went in several chunks: ${JSON.stringify(commitsOf)}`);
    t.is(order[0], 'small', 'the small state was answered first');
    // The switch holds exactly what the store says, arrival order per resource included.
    const recomputed = FlowDataplane.recompute(agent.store, backend.bindings);
    t.deepEqual(dp.flows().map(formatFlow).sort(), [...recomputed.activeFlows()].map(formatFlow).sort());
    t.true(dp.flows().some((f) => formatFlow(f).includes('10.0.77.77')), 'the later state of the shared neighbor won');
  });
});

/**
 * Holds the next large goal state's store turn at its third pause (after the slices of its
 * subnet, its port and its first neighbors) until `open()`; every other pause (the index a small
 * state needs, other states) passes at once.
 */
function holdInside(intake: { pause(): Promise<void> | null }): { open: () => void; held: () => boolean } {
  let open!: () => void;
  const gate = new Promise<void>((r) => { open = r; });
  let calls = 0;
  let holding = false;
  intake.pause = () => {
    calls += 1;
    if (calls !== 3) return null;
    holding = true;
    return gate.then(() => { holding = false; });
  };
  return { open, held: () => holding };
}

test('a small goal state takes its store turn inside a large one\'s; one naming a resource the large one has still to store waits', async (t) => {
  await withAgent(async (agent, addr) => {
    await pushOne(addr, GoalStateV2.fromPartial({ subnetStates: bigState(1).subnetStates }));
    const hold = holdInside(agent.intake);
    const large = bigState(2000);
    const keys = Object.keys(large.neighborStates);
    const lastNeighbor = keys.at(-1)!;
    const a = pushOne(addr, large);
    await until(() => hold.held(), 'the large state to stop after its first neighbors');
    t.false(agent.store.has('neighbor', lastNeighbor), 'the large state is still being stored');

    // B: its own port and neighbor: stored, programmed and answered while the large one waits.
    const rb = await pushOne(addr, GoalStateV2.fromPartial({
      portStates: { PB: portState('PB', { macAddress: 'fa:16:3e:00:b0:01', fixedIps: [{ subnetId: 'S', ipAddress: '10.9.0.2' }] }) },
      neighborStates: { 'L2/NB': neighborState('NB', 0x7e0001) },
    }));
    t.true(rb.operationStatuses.every((s) => s.operationStatus === 0), JSON.stringify(rb.operationStatuses));
    t.true(hold.held(), 'B was answered inside the large state\'s store turn');
    t.false(agent.store.has('neighbor', lastNeighbor));
    t.true((agent.dataplane as FlowDataplane).flows().some((f) => formatFlow(f).includes('fa:16:3e:00:b0:01')), 'B is on the switch');

    // C: the large state's last neighbor, changed: it must wait for the large one's store turn.
    const cState = large.neighborStates[lastNeighbor]!;
    let cStoredAfterLarge: boolean | null = null;
    const c = pushOne(addr, GoalStateV2.fromPartial({ neighborStates: { [lastNeighbor]: { ...cState, configuration: { ...cState.configuration!, revisionNumber: 2, hostIpAddress: '10.0.77.77' } } } }))
      .then((r) => { cStoredAfterLarge = !hold.held(); return r; });
    hold.open();
    const [ra, rc] = await Promise.all([a, c]);
    for (const r of [ra, rc]) t.true(r.operationStatuses.every((s) => s.operationStatus === 0), JSON.stringify(r.operationStatuses.filter((s) => s.operationStatus !== 0)));
    t.true(cStoredAfterLarge, 'C was answered only after the large state went on');
    t.is(agent.store.get('neighbor', lastNeighbor)?.hostIp, '10.0.77.77', 'the later state of the shared neighbor won');
    t.is([...agent.store.list('neighbor')].length, 2000 + 1);
    flowsMatchStore(t, agent);
  });
});

test('a large goal state whose client goes away stops storing; what it stored is programmed, switch and store agree', async (t) => {
  await withAgent(async (agent, addr) => {
    await pushOne(addr, GoalStateV2.fromPartial({ subnetStates: bigState(1).subnetStates }));
    const hold = holdInside(agent.intake);
    const calls = recordCalls(agent.intake);
    const large = bigState(2000);
    const client = makeClient(addr);
    try {
      const call = client.pushGoalStatesStream();
      const ended = new Promise<string>((resolve) => {
        call.on('error', (e: Error) => resolve(e.message));
        call.on('end', () => resolve('end'));
        call.on('data', () => undefined);
      });
      call.write(large);
      await until(() => hold.held(), 'the large state to stop after its first neighbors');
      call.cancel();
      t.regex(await ended, /cancel/i);
      await until(() => calls[0]?.signal?.aborted === true, 'the agent to see the client go');
      hold.open();
      const result = await calls[0]!.result;
      t.true(result.cancelled);
      // Nothing is left half-done: the store has only part, and the switch holds what it says.
      const stored = [...agent.store.list('neighbor')].length;
      t.true(stored > 0 && stored < 2000, `${stored} of 2000 neighbors stored`);
      t.is(result.results.length, stored + 2, 'a result for each state stored (the subnet, the port and the neighbors), none for the rest');
      flowsMatchStore(t, agent);
      // The agent still serves: a new state applies.
      const r = await pushOne(addr, GoalStateV2.fromPartial({ neighborStates: { 'L2/NB': neighborState('NB', 0x7e0001) } }));
      t.true(r.operationStatuses.every((s) => s.operationStatus === 0));
    } finally {
      client.close();
    }
  });
});

test('a V1 call whose deadline passes while its large state is stored stops storing it; switch and store agree', async (t) => {
  await withAgent(async (agent, addr) => {
    await pushOne(addr, GoalStateV2.fromPartial({ subnetStates: bigState(1).subnetStates }));
    const hold = holdInside(agent.intake);
    const calls = recordCalls(agent.intake);
    const v2 = bigState(2000);
    const v1 = GoalState.fromPartial({
      subnetStates: Object.values(v2.subnetStates), portStates: Object.values(v2.portStates), neighborStates: Object.values(v2.neighborStates),
    });
    const client = makeClient(addr);
    try {
      // The state is held (the gate opens only once the agent has seen the deadline pass).
      const answered = pushUnary(client, v1, 300).then(() => 'answered', (e: Error) => e.message);
      await until(() => hold.held(), 'the large state to stop after its first neighbors');
      await until(() => calls[0]?.signal?.aborted === true, 'the agent to see the deadline pass');
      t.regex(await answered, /deadline/i);
      hold.open();
      const result = await calls[0]!.result;
      t.true(result.cancelled);
      const stored = [...agent.store.list('neighbor')].length;
      t.true(stored > 0 && stored < 2000, `${stored} of 2000 neighbors stored`);
      flowsMatchStore(t, agent);
    } finally {
      client.close();
    }
  });
});

/** Every apply() call the intake gets from now on, with its cancellation signal and result. */
function recordCalls(intake: Intake): { signal: AbortSignal | undefined; result: Promise<IntakeResult> }[] {
  const calls: { signal: AbortSignal | undefined; result: Promise<IntakeResult> }[] = [];
  const apply = intake.apply.bind(intake);
  intake.apply = (gs, received, signal) => {
    const result = apply(gs, received, signal);
    calls.push({ signal, result });
    return result;
  };
  return calls;
}

/** The flows installed are exactly those one full computation over the store gives. */
function flowsMatchStore(t: ExecutionContext, agent: Agent): void {
  const dp = agent.dataplane as FlowDataplane;
  const recomputed = FlowDataplane.recompute(agent.store, dp.backend.bindings);
  t.deepEqual(dp.flows().map(formatFlow).sort(), [...recomputed.activeFlows()].map(formatFlow).sort());
}

test('a large message is scanned in slices that give exactly what one scan gives; a broken one is refused the same way', (t) => {
  const gs = bigState(5000);
  gs.portStates.P2 = portState('P2', { macAddress: 'fa:16:3e:00:00:22' });
  const bytes = Buffer.from(GoalStateV2.encode(gs).finish());
  const entries = (s: LazyGoalStateV2): string[] => {
    const out: string[] = [];
    for (const kind of KINDS) {
      s.slice(kind, 0, s.size(kind), (state, key) => out.push(`${kind} ${key ?? ''} ${JSON.stringify(state)}`));
    }
    return out;
  };
  const whole = scanGoalStateV2(bytes);
  let pauses = 0;
  // A pause that always hands the loop over: every slice boundary is seen.
  const sliced = scanGoalStateV2Sliced(bytes, () => { pauses += 1; return Promise.resolve(); });
  return sliced.then(async (s) => {
    t.true(pauses >= 2, `${pauses} pauses in a scan of ${s.count()} entries`);
    t.is(s.count(), whole.count());
    t.deepEqual(entries(s), entries(whole));
    // Cut inside the neighbor map: both refuse with the same reason.
    const cut = bytes.subarray(0, Math.floor(bytes.length * 0.7));
    const err = t.throws(() => scanGoalStateV2(cut));
    const slicedErr = await t.throwsAsync(scanGoalStateV2Sliced(cut, () => null));
    t.is(slicedErr?.message, err?.message);
    t.true(slicedErr instanceof UndecodableError);
  });
});

test('on one stream a message scanned in slices keeps its place: its reply comes before the next message\'s', async (t) => {
  await withAgent(async (agent, addr) => {
    await pushOne(addr, GoalStateV2.fromPartial({ subnetStates: bigState(1).subnetStates }));
    const large = bigState(12_000);
    t.true(GoalStateV2.encode(large).finish().length > SLICED_SCAN_BYTES, 'the large message takes the sliced scan');
    // The small one names the large one's last neighbor: stored after it, it wins (revision 2).
    const lastId = Object.keys(large.neighborStates).at(-1)!;
    const before = large.neighborStates[lastId]!.configuration!;
    const small = GoalStateV2.fromPartial({
      neighborStates: { [lastId]: neighborState(before.id, 11_999, { revisionNumber: 2, hostIpAddress: '10.0.99.99' }) },
    });
    const c = makeClient(addr);
    try {
      const replies = await pushStream(c, [large, small]);
      t.is(replies.length, 2);
      t.is(replies[0]!.operationStatuses.length, Object.keys(large.neighborStates).length + 2);
      t.is(replies[1]!.operationStatuses.length, 1);
      t.true([...replies[0]!.operationStatuses, ...replies[1]!.operationStatuses].every((s) => s.operationStatus === OperationStatus.SUCCESS));
      // Applied in stream order: the small one's revision is what the store holds.
      t.is(agent.store.get('neighbor', lastId)?.hostIp, '10.0.99.99');
      t.is(agent.store.revisionOf('neighbor', lastId), 2);
    } finally {
      c.close();
    }
  });
});
