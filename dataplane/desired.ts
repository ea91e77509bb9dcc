// Desired flows, grouped by owner (a resource or an aggregate), as OVN's ofctrl keeps them:
// when an owner is recomputed only its flows change. Two owners may want the same flow key
// (same table, priority and match); the owner that sorts first wins, so the result does not
// depend on the order changes arrived in.
import { type Flow, flowKey } from './flow.js';

type Claim = { owner: string; flow: Flow };

export class DesiredFlows {
  private readonly byOwner = new Map<string, Flow[]>();
  /** flow key → its claim, or all claims (sorted by owner) when several owners want it */
  private readonly byKey = new Map<string, Claim | Claim[]>();

  get size(): number {
    return this.byKey.size;
  }

  ownerFlows(owner: string): readonly Flow[] {
    return this.byOwner.get(owner) ?? [];
  }

  /** Replace an owner's flows; returns the keys whose active flow may have changed. */
  set(owner: string, flows: Flow[], touched: Set<string>): void {
    const before = this.byOwner.get(owner);
    if (before) for (const f of before) this.unclaim(owner, flowKey(f), touched);
    if (flows.length === 0) this.byOwner.delete(owner);
    else this.byOwner.set(owner, flows);
    for (const f of flows) this.claim(owner, f, touched);
  }

  private claim(owner: string, flow: Flow, touched: Set<string>): void {
    const key = flowKey(flow);
    touched.add(key);
    const c = this.byKey.get(key);
    if (c === undefined) {
      this.byKey.set(key, { owner, flow });
    } else if (Array.isArray(c)) {
      c.push({ owner, flow });
      c.sort(byOwner);
    } else if (c.owner === owner) {
      c.flow = flow; // the same owner asking twice: last wins
    } else {
      this.byKey.set(key, [c, { owner, flow }].sort(byOwner));
    }
  }

  private unclaim(owner: string, key: string, touched: Set<string>): void {
    touched.add(key);
    const c = this.byKey.get(key);
    if (c === undefined) return;
    if (!Array.isArray(c)) {
      if (c.owner === owner) this.byKey.delete(key);
      return;
    }
    const rest = c.filter((x) => x.owner !== owner);
    this.byKey.set(key, rest.length === 1 ? rest[0]! : rest);
  }

  /** The flow installed for a key: the claim of the first owner. */
  active(key: string): Flow | undefined {
    const c = this.byKey.get(key);
    if (c === undefined) return undefined;
    return Array.isArray(c) ? c[0]?.flow : c.flow;
  }

  /** Owners of a key (for provenance). */
  owners(key: string): string[] {
    const c = this.byKey.get(key);
    if (c === undefined) return [];
    return Array.isArray(c) ? c.map((x) => x.owner) : [c.owner];
  }

  *activeFlows(): IterableIterator<Flow> {
    for (const c of this.byKey.values()) {
      const f = Array.isArray(c) ? c[0]?.flow : c.flow;
      if (f) yield f;
    }
  }

  /** Keys wanted by more than one owner, for diagnostics. */
  conflicts(): string[] {
    return [...this.byKey].filter(([, c]) => Array.isArray(c) && c.length > 1).map(([k]) => k);
  }
}

function byOwner(a: Claim, b: Claim): number {
  return a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0;
}
