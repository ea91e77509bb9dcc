// Several bridges behind one backend: br-int (the integration bridge, where almost everything
// lives) and the external bridges the dataplane names (from bridge mappings, with SNAT). A switch
// bundle is per bridge, so a commit is split by bridge and sent as one bundle per bridge touched.
import { type FlowChanges, type ObjectChanges, emptyChanges } from '../backend.js';
import { bridgeOf } from '../flow.js';
import { BRIDGE } from '../pipeline.js';

/** A bridge name OVS takes (its internal interface has the same name: at most 15 bytes) and a socket path can hold. */
const BRIDGE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/** The bridges a backend starts: br-int first, then each external bridge once, in the order given. */
export function bridgeList(bridges: readonly string[] = []): string[] {
  const out = [BRIDGE];
  for (const b of bridges) {
    if (!BRIDGE_NAME.test(b)) throw new Error(`bad bridge name ${JSON.stringify(b)} (letters, digits, '_', '.', '-'; at most 15)`);
    if (!out.includes(b)) out.push(b);
  }
  return out;
}

/** A commit names a bridge the backend did not start: nothing of it was sent. */
export class UnknownBridgeError extends Error {}

function offBrInt(list: readonly { bridge?: string }[]): boolean {
  for (let i = 0; i < list.length; i++) {
    const b = list[i]!.bridge;
    if (b !== undefined && b !== BRIDGE) return true;
  }
  return false;
}

const onlyBrInt = (c: FlowChanges): boolean =>
  !offBrInt(c.add) && !offBrInt(c.modify) && !offBrInt(c.remove)
  && !offBrInt(c.groups.add) && !offBrInt(c.groups.modify) && !offBrInt(c.groups.remove)
  && !offBrInt(c.meters.add) && !offBrInt(c.meters.modify) && !offBrInt(c.meters.remove);

const objectCount = (c: ObjectChanges<unknown>): number => c.add.length + c.modify.length + c.remove.length;

/**
 * The commit as one change per bridge touched, in the order their bundles go: the external
 * bridges in `started` order, br-int last (its flows are the ones traffic depends on, and a
 * refusal there leaves the external bridges' part applied rather than the other way round).
 * A commit on br-int alone (nearly every one) comes back as is, without copying. Throws
 * UnknownBridgeError, before anything is sent, for a bridge that was not started.
 */
export function splitByBridge(c: FlowChanges, started: readonly string[]): [string, FlowChanges][] {
  if (onlyBrInt(c)) return objectCount(c) + objectCount(c.groups) + objectCount(c.meters) === 0 ? [] : [[BRIDGE, c]];
  const parts = new Map<string, FlowChanges>();
  const part = (o: { bridge?: string }): FlowChanges => {
    const b = bridgeOf(o);
    let p = parts.get(b);
    if (!p) parts.set(b, (p = emptyChanges()));
    return p;
  };
  for (const f of c.add) part(f).add.push(f);
  for (const f of c.modify) part(f).modify.push(f);
  for (const f of c.remove) part(f).remove.push(f);
  for (const g of c.groups.add) part(g).groups.add.push(g);
  for (const g of c.groups.modify) part(g).groups.modify.push(g);
  for (const g of c.groups.remove) part(g).groups.remove.push(g);
  for (const m of c.meters.add) part(m).meters.add.push(m);
  for (const m of c.meters.modify) part(m).meters.modify.push(m);
  for (const m of c.meters.remove) part(m).meters.remove.push(m);
  const unknown = [...parts.keys()].filter((b) => !started.includes(b));
  if (unknown.length > 0) throw new UnknownBridgeError(`the commit names bridge${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}, not started (started: ${started.join(', ')}); nothing was sent`);
  const out: [string, FlowChanges][] = [];
  for (const b of started) {
    if (b === BRIDGE) continue;
    const p = parts.get(b);
    if (p) out.push([b, p]);
  }
  const main = parts.get(BRIDGE);
  if (main) out.push([BRIDGE, main]);
  return out;
}

/** ` on br-ex` for a bridge other than br-int (which, as in the model, goes unnamed). */
export const onBridge = (bridge: string): string => (bridge === BRIDGE ? '' : ` on ${bridge}`);

/** What a refusal on a later bridge leaves behind: the earlier bridges' bundles stay applied. */
export const appliedNote = (applied: readonly string[]): string =>
  (applied.length === 0 ? '' : `; the bundle${applied.length > 1 ? 's' : ''} of ${applied.join(', ')} before it stay${applied.length > 1 ? '' : 's'} applied`);

/** The object with its bridge set, for one read back off br-int (br-int's own stay without). */
export function onBridgeObject<T extends object>(o: T, bridge: string): T {
  return bridge === BRIDGE ? o : { bridge, ...o };
}
