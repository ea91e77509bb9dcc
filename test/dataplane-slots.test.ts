// The flow slots (desired and installed in one map) stay consistent with what was committed even
// when an owner's claim changes while its commit is in flight: the flow is recorded through its
// key, the installed count matches the installed flows, and the next reconcile fixes the switch.
import test from 'ava';
import { DryRunBackend, type FlowChanges } from '../dataplane/backend.js';
import { type Touched, newTouched } from '../dataplane/desired.js';
import { type Flow, eq, flowKey } from '../dataplane/flow.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';

/** A dataplane whose switch runs `during` while it takes a commit, and what it was sent. */
function holdingCommit(): { dp: FlowDataplane; sent: FlowChanges[]; during: { run: (() => void) | null }; reconcile: (t: Touched) => Promise<Map<string, string>> } {
  const sent: FlowChanges[] = [];
  const during: { run: (() => void) | null } = { run: null };
  class Backend extends DryRunBackend {
    override commit(c: FlowChanges): Promise<void> {
      sent.push(c);
      const run = during.run;
      during.run = null;
      run?.();
      return Promise.resolve();
    }
  }
  const dp = new FlowDataplane(new Backend());
  const reconcile = (dp as unknown as { reconcile(t: Touched): Promise<Map<string, string>> }).reconcile.bind(dp);
  return { dp, sent, during, reconcile };
}

const f: Flow = { table: 1, priority: 10, match: [eq('in_port', 1)], actions: [{ type: 'output', port: 2 }], cookie: 1n, owner: 'a' };

test('a claim dropped while its commit is in flight: installed stays exact and the next reconcile removes the flow', async (t) => {
  const { dp, sent, during, reconcile } = holdingCommit();
  const touched = newTouched();
  dp.desired.set('a', { flows: [f], groups: [], meters: [] }, touched);
  const later = newTouched();
  during.run = () => dp.desired.set('a', { flows: [], groups: [], meters: [] }, later);
  await reconcile(touched);
  t.is(dp.installed.size, 1, 'the switch took it: it is installed');
  t.deepEqual([...dp.installed.flows.keys()], [flowKey(f)]);
  await reconcile(later);
  t.deepEqual(sent.at(-1)!.remove.map(flowKey), [flowKey(f)], 'the next reconcile removes it');
  t.is(dp.installed.size, 0);
  t.deepEqual([...dp.installed.flows.keys()], []);
});

test('a claim dropped and made again with other actions while its commit is in flight: the next reconcile sends the new flow', async (t) => {
  const { dp, sent, during, reconcile } = holdingCommit();
  const g: Flow = { ...f, actions: [{ type: 'output', port: 3 }] };
  const touched = newTouched();
  dp.desired.set('a', { flows: [f], groups: [], meters: [] }, touched);
  const later = newTouched();
  during.run = () => {
    dp.desired.set('a', { flows: [], groups: [], meters: [] }, later);
    dp.desired.set('a', { flows: [g], groups: [], meters: [] }, later);
  };
  await reconcile(touched);
  t.is(dp.installed.flows.get(flowKey(f)), f, 'what the switch took is what is installed');
  await reconcile(later);
  t.deepEqual(sent.at(-1)!.modify, [g], 'the next reconcile sends the new actions');
  t.is(dp.installed.flows.get(flowKey(f)), g);
  t.is(dp.installed.size, 1);
});
