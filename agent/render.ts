// `aca render`: the flows a goal state (or a sequence of them) produces on a host, without
// touching any switch; or, with a second sequence, the minimal change between the two.
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { DryRunBackend, type FlowChanges, emptyChanges } from '../dataplane/backend.js';
import { type Flow, actionsKey, bridgeOf, flowKey, hex, programmerOf } from '../dataplane/flow.js';
import { actionsText, formatFlow, formatMatch, matchText } from '../dataplane/flow-text.js';
import { FlowDataplane, sortFlows } from '../dataplane/flow-dataplane.js';
import { BRIDGE } from '../dataplane/pipeline.js';
import { hostNetworking, parseBridgeMappings } from '../dataplane/external.js';
import { Intake } from './intake.js';
import { silentLogger } from './log.js';
import { PushError, readGoalStateFile } from './push.js';
import { ResourceStore } from './store.js';

export class Renderer {
  readonly store = new ResourceStore();
  readonly dataplane: FlowDataplane;
  private readonly intake: Intake;
  readonly problems: string[] = [];

  constructor(hostIp: string, bridgeMappings = '') {
    this.dataplane = new FlowDataplane(new DryRunBackend(), undefined, undefined, undefined, undefined, hostNetworking(hostIp, parseBridgeMappings(bridgeMappings)));
    this.intake = new Intake(this.store, this.dataplane, silentLogger(), hostIp);
  }

  async start(): Promise<void> {
    await this.dataplane.start(this.store);
  }

  async applyFile(path: string): Promise<void> {
    await this.intakeFor(readGoalStateFile(path, GoalStateV2, 'GoalStateV2'), path);
  }

  async intakeFor(gs: GoalStateV2, source = 'goal state'): Promise<void> {
    const result = await this.intake.apply({ v2: gs });
    for (const r of result.results.toArray()) {
      if (r.status !== 'SUCCESS') this.problems.push(`${source}: ${r.kind} ${r.id}: ${r.status} ${r.detail}`);
    }
  }

  flows(): Flow[] {
    return this.dataplane.flows();
  }
}

export async function render(files: string[], hostIp: string, bridgeMappings = ''): Promise<Renderer> {
  if (files.length === 0) throw new PushError('no goal-state files given');
  let r: Renderer;
  try {
    r = new Renderer(hostIp, bridgeMappings);
  } catch (e) {
    throw new PushError(`--bridge-mappings: ${(e as Error).message}`);
  }
  await r.start();
  for (const f of files) await r.applyFile(f);
  return r;
}

/** The change from one flow set to another, as the backend would get it. */
export function diffFlows(from: Flow[], to: Flow[]): FlowChanges {
  const before = new Map(from.map((f) => [flowKey(f), f]));
  const after = new Map(to.map((f) => [flowKey(f), f]));
  const changes = emptyChanges();
  for (const [k, f] of after) {
    const old = before.get(k);
    // A new cookie replaces the flow (add); modify_strict would keep the old cookie.
    if (!old || old.cookie !== f.cookie) changes.add.push(f);
    else if (actionsKey(old.actions) !== actionsKey(f.actions)) changes.modify.push(f);
  }
  for (const [k, f] of before) if (!after.has(k)) changes.remove.push(f);
  return { ...changes, add: sortFlows(changes.add), modify: sortFlows(changes.modify), remove: sortFlows(changes.remove) };
}

/** Flows by bridge, br-int first, the others by name. */
function byBridge(flows: Flow[]): [string, Flow[]][] {
  const out = new Map<string, Flow[]>([[BRIDGE, []]]);
  for (const f of flows) {
    const b = bridgeOf(f);
    let list = out.get(b);
    if (!list) out.set(b, (list = []));
    list.push(f);
  }
  return [...out].sort(([a], [b]) => (a === BRIDGE ? -1 : b === BRIDGE ? 1 : a < b ? -1 : 1));
}

/** ovs-ofctl add-flows text, one section per bridge. */
export function formatOfctl(flows: Flow[]): string {
  return byBridge(flows)
    .filter(([b, list]) => b === BRIDGE || list.length > 0)
    .map(([b, list]) => [`# bridge ${b}: ${list.length} flows (ovs-ofctl add-flows ${b} FILE)`, ...list.map(formatFlow)].join('\n'))
    .join('\n');
}

/** A change in the verb-prefixed form `ovs-ofctl --bundle add-flows` accepts, one section per bridge. */
export function formatChanges(c: FlowChanges): string {
  const bridges = new Set([BRIDGE, ...[...c.add, ...c.modify, ...c.remove].map(bridgeOf)]);
  const on = (b: string) => (f: Flow): boolean => bridgeOf(f) === b;
  return [...bridges].map((b) => {
    const [add, modify, remove] = [c.add.filter(on(b)), c.modify.filter(on(b)), c.remove.filter(on(b))];
    return [
      `# bridge ${b}: +${add.length} ~${modify.length} -${remove.length} (ovs-ofctl --bundle add-flows ${b} FILE)`,
      ...remove.map((f) => `delete_strict ${formatMatch(f)}`),
      ...modify.map((f) => `modify_strict ${formatFlow(f)}`),
      ...add.map((f) => `add ${formatFlow(f)}`),
    ].join('\n');
  }).join('\n');
}

export function flowJson(f: Flow, owners: string[] = []): Record<string, unknown> {
  return {
    bridge: bridgeOf(f), table: f.table, priority: f.priority, cookie: hex(f.cookie),
    programmer: programmerOf(f.cookie) ?? null, owners, match: matchText(f.match), actions: actionsText(f.actions),
  };
}
