// The flow slots (desired and installed in one map) stay consistent with what was committed even
// when an owner's claim goes while its commit is in flight: the flow is recorded by key, the
// installed count matches the installed flows, and the next reconcile removes it from the switch.
import test from 'ava';
import { DryRunBackend, type FlowChanges } from '../dataplane/backend.js';
import { newTouched } from '../dataplane/desired.js';
import { type Flow, eq, flowKey } from '../dataplane/flow.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';

test('a claim dropped while its commit is in flight leaves the installed view exact', async (t) => {
  let during: (() => void) | null = null;
  const sent: FlowChanges[] = [];
  class Backend extends DryRunBackend {
    override commit(c: FlowChanges): Promise<void> {
      sent.push(c);
      during?.();
      during = null;
      return Promise.resolve();
    }
  }
  const dp = new FlowDataplane(new Backend());
  const f: Flow = { table: 1, priority: 10, match: [eq('in_port', 1)], actions: [{ type: 'output', port: 2 }], cookie: 1n, owner: 'a' };
  const touched = newTouched();
  dp.desired.set('a', { flows: [f], groups: [], meters: [] }, touched);
  const later = newTouched();
  during = () => dp.desired.set('a', { flows: [], groups: [], meters: [] }, later);
  const reconcile = (dp as unknown as { reconcile(t: ReturnType<typeof newTouched>): Promise<Map<string, string>> }).reconcile.bind(dp);
  await reconcile(touched);
  t.is(dp.installed.size, 1, 'the switch took it: it is installed');
  t.deepEqual([...dp.installed.flows.keys()], [flowKey(f)]);
  await reconcile(later);
  t.deepEqual(sent.at(-1)!.remove.map(flowKey), [flowKey(f)], 'the next reconcile removes it');
  t.is(dp.installed.size, 0);
  t.deepEqual([...dp.installed.flows.keys()], []);
});

test('a claim dropped and made again with other actions while its commit is in flight: the next reconcile sends the new flow', async (t) => {
  let during: (() => void) | null = null;
  const sent: FlowChanges[] = [];
  class Backend extends DryRunBackend {
    override commit(c: FlowChanges): Promise<void> {
      sent.push(c);
      during?.();
      during = null;
      return Promise.resolve();
    }
  }
  const dp = new FlowDataplane(new Backend());
  const f: Flow = { table: 1, priority: 10, match: [eq('in_port', 1)], actions: [{ type: 'output', port: 2 }], cookie: 1n, owner: 'a' };
  const g: Flow = { ...f, actions: [{ type: 'output', port: 3 }] };
  const touched = newTouched();
  dp.desired.set('a', { flows: [f], groups: [], meters: [] }, touched);
  const later = newTouched();
  during = () => {
    dp.desired.set('a', { flows: [], groups: [], meters: [] }, later);
    dp.desired.set('a', { flows: [g], groups: [], meters: [] }, later);
  };
  const reconcile = (dp as unknown as { reconcile(t: ReturnType<typeof newTouched>): Promise<Map<string, string>> }).reconcile.bind(dp);
  await reconcile(touched);
  t.is(dp.installed.flows.get(flowKey(f)), f, 'what the switch took is what is installed');
  await reconcile(later);
  t.deepEqual(sent.at(-1)!.modify, [g], 'the next reconcile sends the new actions');
  t.is(dp.installed.flows.get(flowKey(f)), g);
  t.is(dp.installed.size, 1);
});
