// When a small goal state may take its store turn inside a large one's (between two of its
// slices) without breaking per-resource arrival order: it must touch no resource the large one
// has not stored yet, neither by id nor by reference. Ids are compared whatever the kind (a VM
// may arrive as a port and as a neighbor), and a small state holding a kind that others
// reference (VPC, subnet, security group, gateway, router) never overtakes: what the large
// state's later resources resolve against must not change under them.
import type { Kind } from '../dataplane/model.js';
import { KINDS } from '../dataplane/model.js';
import { type GoalStateSource, idHash } from './goalstate-source.js';
import { idFromMapKey } from './normalize.js';

/** Kinds a small state may hold to overtake: nothing else refers to them by id. */
const LEAF_KINDS: ReadonlySet<Kind> = new Set<Kind>(['port', 'neighbor', 'dhcp']);

/** A large goal state in its store turn, as small ones see it. */
export interface LargeTurn {
  readonly source: GoalStateSource;
  /** States visited so far, counted in visiting order (KINDS, then message order). */
  visited: number;
  /**
   * Id hash (idHash) → ordinal of the last state carrying it; built once, on the first small
   * state's need. Hashes, not ids: no string is made per state, and a shared hash only makes a
   * small state wait when it need not.
   */
  index: Promise<Map<number, number>> | null;
  /** While the index is being built (the large state waits meanwhile: a small one is waiting on it). */
  building: Promise<unknown> | null;
}

/** Where each kind's states start in visiting order. */
function bases(source: GoalStateSource): Map<Kind, number> {
  const out = new Map<Kind, number>();
  let at = 0;
  for (const k of KINDS) {
    out.set(k, at);
    at += source.size(k);
  }
  return out;
}

/** The ordinal of the first state of a kind (for `visited`). */
export function kindBase(source: GoalStateSource, kind: Kind): number {
  return bases(source).get(kind)!;
}

/**
 * Every id of a large state with the ordinal of its last state, read a slice at a time; `pause`
 * is awaited between slices (the caller yields to the event loop there by time).
 */
export async function buildIndex(source: GoalStateSource, pause: () => Promise<void> | null): Promise<Map<number, number>> {
  const index = new Map<number, number>();
  const SLICE = 1024;
  let ordinal = 0;
  for (const kind of KINDS) {
    const n = source.size(kind);
    for (let from = 0; from < n; from += SLICE) {
      source.idHashes(kind, from, from + SLICE, (h) => { if (h >= 0) index.set(h, ordinal); ordinal += 1; });
      const p = pause();
      if (p) await p;
    }
  }
  return index;
}

/**
 * The ids a small state touches: its resources' own and the subnets and security groups they
 * name. Null when it cannot overtake at all (a kind others reference).
 */
export function touchedIds(source: GoalStateSource): { ids: Set<string>; dhcp: boolean } | null {
  const ids = new Set<string>();
  let dhcp = false;
  for (const kind of KINDS) {
    if (source.size(kind) === 0) continue;
    if (!LEAF_KINDS.has(kind)) return null;
    if (kind === 'dhcp') dhcp = true;
    source.slice(kind, 0, source.size(kind), (state, mapKey) => {
      if (state instanceof Error) return;
      const c = state.configuration as undefined | {
        id: string; subnetId?: string; fixedIps?: { subnetId: string }[]; securityGroupIds?: (string | { id: string })[];
      };
      ids.add(idFromMapKey(c?.id ?? '', mapKey));
      if (!c) return;
      if (c.subnetId) ids.add(c.subnetId);
      for (const f of c.fixedIps ?? []) ids.add(f.subnetId);
      for (const g of c.securityGroupIds ?? []) ids.add(typeof g === 'string' ? g : g.id);
    });
  }
  ids.delete('');
  return { ids, dhcp };
}

/**
 * Whether the small state's touched ids meet a state of the large one not visited yet. DHCP
 * entries are keyed by address, not id: any pending DHCP state in the large one is a conflict.
 */
export function meetsPending(turn: LargeTurn, index: Map<number, number>, touched: { ids: Set<string>; dhcp: boolean }): boolean {
  for (const id of touched.ids) {
    const last = index.get(idHash(id));
    if (last !== undefined && last >= turn.visited) return true;
  }
  if (touched.dhcp) {
    const start = kindBase(turn.source, 'dhcp');
    if (start + turn.source.size('dhcp') > turn.visited) return true;
  }
  return false;
}
