// "The switch equals what the agent believes": the one comparison every such check makes, on
// the simulator or on real OVS (each backend reads its switch back).
import type { ExecutionContext } from 'ava';
import { canonicalFlow } from '../../dataplane/backends/openflow-codec.js';
import { type Flow, actionsKey, flowKey } from '../../dataplane/flow.js';
import type { FlowDataplane } from '../../dataplane/flow-dataplane.js';

/** Flows as comparable text: key, cookie and actions, in the form the switch reads back. */
export const comparable = (flows: Iterable<Flow>): string[] =>
  [...flows].map((f) => canonicalFlow(f)).map((f) => `${flowKey(f)} cookie=${f.cookie.toString(16)} ${actionsKey(f.actions)}`).sort();

/** The dataplane's switch, read back by its backend, holds exactly the flows the dataplane believes installed. */
export async function switchEqualsAgent(t: Pick<ExecutionContext, 'deepEqual'>, dp: FlowDataplane, when: string): Promise<void> {
  if (!dp.backend.readBack) throw new Error(`the ${dp.name} backend cannot read its switch back`);
  const held = await dp.backend.readBack();
  t.deepEqual(comparable(held.flows), comparable(dp.installed.flows.values()), `switch == agent after ${when}`);
}
