// "The switch equals what the agent believes": the one comparison every such check makes, on
// the simulator or on real OVS (each backend reads its switch back).
import type { ExecutionContext } from 'ava';
import { canonicalFlow } from '../../dataplane/backends/openflow-codec.js';
import { type Flow, actionsKey, bridgeOf, flowKey, programmerOf } from '../../dataplane/flow.js';
import { BRIDGE } from '../../dataplane/pipeline.js';
import type { FlowDataplane } from '../../dataplane/flow-dataplane.js';

/** Flows as comparable text: key, cookie and actions, in the form the switch reads back. */
export const comparable = (flows: Iterable<Flow>): string[] =>
  [...flows].map((f) => canonicalFlow(f)).map((f) => `${flowKey(f)} cookie=${f.cookie.toString(16)} ${actionsKey(f.actions)}`).sort();

/**
 * The dataplane's switch, read back by its backend, holds exactly the flows the dataplane believes
 * installed. On an external bridge (shared with the host) only flows with the agent's cookies
 * are the agent's: the operator's own flows there are not compared.
 */
export async function switchEqualsAgent(t: Pick<ExecutionContext, 'deepEqual'>, dp: FlowDataplane, when: string): Promise<void> {
  const readBack = dp.backend.readBack?.bind(dp.backend);
  if (!readBack) throw new Error(`the ${dp.name} backend cannot read its switch back`);
  // Both read with no commit in between (a retry may be due at any moment).
  const [held, believed] = await dp.exclusive(async () => [await readBack(), comparable(dp.installed.flows.values())] as const);
  const ours = held.flows.filter((f) => bridgeOf(f) === BRIDGE || programmerOf(f.cookie) !== undefined);
  t.deepEqual(comparable(ours), believed, `switch == agent after ${when}`);
}
