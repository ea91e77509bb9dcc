// One OpenFlow table: flows grouped by their mask shape (tuple space search, as OVS's
// classifier does), each shape a hash from masked values to flows, shapes visited in order of
// their highest priority so a lookup stops as soon as no remaining shape can win.
import type { FieldName } from './fields.js';
import type { FlowEntry } from './flow.js';
import { type Match, type Packet, matches, sameMatch } from './match.js';

interface Tuple {
  fields: [FieldName, bigint][];
  flows: Map<string, FlowEntry[]>;
  maxPriority: number;
}

const shapeOf = (m: Match): string => [...m].map(([k, f]) => `${k}/${f.mask.toString(16)}`).sort().join(',');
const keyOf = (fields: [FieldName, bigint][], get: (f: FieldName) => bigint): string => fields.map(([f, mk]) => (get(f) & mk).toString(16)).join(',');

export class FlowTable {
  private readonly tuples = new Map<string, Tuple>();
  private ordered: Tuple[] | null = null;
  size = 0;

  private tupleFor(m: Match): Tuple {
    const shape = shapeOf(m);
    let t = this.tuples.get(shape);
    if (!t) {
      const fields = [...m].map(([k, f]) => [k, f.mask] as [FieldName, bigint]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
      t = { fields, flows: new Map(), maxPriority: 0 };
      this.tuples.set(shape, t);
    }
    return t;
  }

  /** The flow with exactly this match and priority, if any. */
  findStrict(m: Match, priority: number): FlowEntry | undefined {
    const t = this.tuples.get(shapeOf(m));
    if (!t) return undefined;
    const key = keyOf(t.fields, (f) => m.get(f)!.value);
    return t.flows.get(key)?.find((f) => f.priority === priority && sameMatch(f.match, m));
  }

  insert(flow: FlowEntry): FlowEntry | undefined {
    const t = this.tupleFor(flow.match);
    const key = keyOf(t.fields, (f) => flow.match.get(f)!.value);
    let list = t.flows.get(key);
    if (!list) t.flows.set(key, (list = []));
    const i = list.findIndex((f) => f.priority === flow.priority && sameMatch(f.match, flow.match));
    let replaced: FlowEntry | undefined;
    if (i >= 0) {
      replaced = list[i];
      list[i] = flow;
    } else {
      list.push(flow);
      list.sort((a, b) => b.priority - a.priority);
      this.size += 1;
    }
    if (flow.priority > t.maxPriority) {
      t.maxPriority = flow.priority;
      this.ordered = null;
    }
    return replaced;
  }

  remove(flow: FlowEntry): void {
    const t = this.tuples.get(shapeOf(flow.match));
    if (!t) return;
    const key = keyOf(t.fields, (f) => flow.match.get(f)!.value);
    const list = t.flows.get(key);
    const i = list?.indexOf(flow) ?? -1;
    if (!list || i < 0) return;
    list.splice(i, 1);
    this.size -= 1;
    if (list.length === 0) t.flows.delete(key);
    if (t.flows.size === 0) {
      this.tuples.delete(shapeOf(flow.match));
      this.ordered = null;
    }
  }

  *all(): IterableIterator<FlowEntry> {
    for (const t of this.tuples.values()) for (const list of t.flows.values()) yield* list;
  }

  /** Highest-priority flow matching the packet. */
  lookup(p: Packet): FlowEntry | undefined {
    this.ordered ??= [...this.tuples.values()].sort((a, b) => b.maxPriority - a.maxPriority);
    let best: FlowEntry | undefined;
    for (const t of this.ordered) {
      if (best && t.maxPriority <= best.priority) break;
      const list = t.flows.get(keyOf(t.fields, (f) => p.get(f) ?? 0n));
      const hit = list?.find((f) => matches(f.match, p));
      if (hit && (!best || hit.priority > best.priority)) best = hit;
    }
    return best;
  }
}
