// One OpenFlow table's classifier: tuple space search as OVS does it. Rules are grouped by the
// shape of their mask (a subtable); each subtable hashes its rules by their masked values, and
// subtables are visited in order of their highest priority, so a lookup stops as soon as no
// remaining subtable can hold a better rule. Conjunctive rules (actions that are all
// conjunction(id,k/n)) are soft matches, resolved as OVS's classifier_lookup__ resolves them.
import { FLOW_WORDS, type Flow, W, WIDTH } from '../base/flow.js';

const WORDS = FLOW_WORDS;
const MD = W.tun_md;
const MD_WORDS = WIDTH.tun_md;
const MD_PRESENT = W.tun_md_present;

/** What the classifier needs from a rule; the bridge's rules carry more. */
export interface ClsRule {
  priority: number;
  /** The masked values, one per word of the subtable's mask, packed (see Vals). */
  vals: Vals;
  subtable: Subtable | null;
  /** Conjunction clauses when every action is conjunction(id,k/n) (plus notes), else null. */
  conj: Conjunction[] | null;
}

export interface Conjunction {
  id: number;
  clause: number;
  nClauses: number;
}

const mix = (h: number, v: number): number => {
  let k = Math.imul(v, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
};
/** Map keys within V8's small-integer range (a larger number is a boxed double). */
const smi = (h: number): number => h & 0x3fffffff;

/**
 * A rule's masked values, one 32-bit word per word of its subtable's mask, packed as a string
 * of two UTF-16 code units per word (high half first). A million rules kept their values as
 * arrays of numbers: an array object and its elements, about 88 bytes a rule, where the string
 * is about 32; two equal matches of one subtable have equal strings, compared by `===`.
 */
export type Vals = string;

/** Word `i` of packed values. */
export const valAt = (v: Vals, i: number): number => ((v.charCodeAt(2 * i) << 16) | v.charCodeAt(2 * i + 1)) >>> 0;

export class Subtable<R extends ClsRule = ClsRule> {
  /** Rules by hash of masked values: one rule, or rules sharing a hash, highest priority first. */
  readonly buckets = new Map<number, R | R[]>();
  maxPriority = -1;
  count = 0;
  /** In its classifier's table (a subtable leaves it when its last rule goes). */
  live = true;
  /** Priority counts, to keep maxPriority right on removals. */
  private readonly priorities = new Map<number, number>();

  constructor(readonly key: string, readonly idx: Int32Array, readonly mask: Uint32Array, readonly order: number) {}

  hashFlow(f: Flow): number {
    let h = 0;
    for (let i = 0; i < this.idx.length; i++) h = mix(h, f[this.idx[i]!]! & this.mask[i]!);
    return smi(h);
  }

  /** The same hash as hashFlow of a flow these values match. */
  hashVals(v: Vals): number {
    let h = 0;
    for (let i = 0; i < this.idx.length; i++) h = mix(h, valAt(v, i));
    return smi(h);
  }

  matches(r: R, f: Flow): boolean {
    const v = r.vals;
    for (let i = 0; i < this.idx.length; i++) if (((f[this.idx[i]!]! & this.mask[i]!) >>> 0) !== valAt(v, i)) return false;
    return true;
  }

  sameVals(a: Vals, b: Vals): boolean {
    return a === b;
  }

  /** The highest-priority rule matching `f` (find_match_wc), and the bucket list it came from. */
  find(f: Flow): R | undefined {
    const b = this.buckets.get(this.hashFlow(f));
    if (b === undefined) return undefined;
    if (!Array.isArray(b)) return this.matches(b, f) ? b : undefined;
    for (const r of b) if (this.matches(r, f)) return r;
    return undefined;
  }

  /** The next lower-priority rule with the same match as `r` (next_visible_rule_in_list). */
  nextSameMatch(r: R): R | undefined {
    const b = this.buckets.get(this.hashVals(r.vals));
    if (!Array.isArray(b)) return undefined;
    const i = b.indexOf(r);
    for (let j = i + 1; j < b.length; j++) if (this.sameVals(b[j]!.vals, r.vals)) return b[j];
    return undefined;
  }

  addPriority(p: number, d: number): void {
    const n = (this.priorities.get(p) ?? 0) + d;
    if (n === 0) this.priorities.delete(p);
    else this.priorities.set(p, n);
    if (d > 0 && p > this.maxPriority) this.maxPriority = p;
    else if (d < 0 && n === 0 && p === this.maxPriority) this.maxPriority = this.priorities.size === 0 ? -1 : Math.max(...this.priorities.keys());
  }
}

function sameMask(st: Subtable, mask: Flow): boolean {
  for (let j = 0; j < st.idx.length; j++) if (mask[st.idx[j]!] !== st.mask[j]) return false;
  return true;
}

export class Classifier<R extends ClsRule = ClsRule> {
  private readonly subtables = new Map<string, Subtable<R>>();
  private ordered: Subtable<R>[] | null = null;
  private created = 0;
  size = 0;

  /** Subtables by a hash of their mask, for finding a mask's subtable without building a key. */
  private readonly byMaskHash = new Map<number, Subtable<R>[]>();

  /**
   * The last mask asked for and its subtable: flow mods compiled from one template (the agent's
   * flows of one shape) carry the same mask array, and a table's flows mostly come in runs of a
   * shape. A mask array is never changed once a flow mod carries it.
   */
  private lastMask: Flow | null = null;
  private lastSubtable: Subtable<R> | null = null;

  /** The subtable for a mask (words of a flow-sized mask), created when missing. */
  subtableFor(mask: Flow): Subtable<R> {
    if (mask === this.lastMask) return this.revive(this.lastSubtable!);
    const st = this.findOrCreate(mask);
    this.lastMask = mask;
    this.lastSubtable = st;
    return st;
  }

  private findOrCreate(mask: Flow): Subtable<R> {
    let h = 0;
    let n = 0;
    // The 64 words of Geneve option data matter only when some option's presence is matched.
    const skipMd = mask[MD_PRESENT] === 0 && mask[MD_PRESENT + 1] === 0;
    for (let i = 0; i < WORDS; i++) {
      if (skipMd && i === MD) i = MD + MD_WORDS;
      const m = mask[i]!;
      if (m !== 0) {
        h = mix(mix(h, i), m);
        n++;
      }
    }
    h = smi(h);
    const candidates = this.byMaskHash.get(h);
    if (candidates) {
      for (const st of candidates) if (st.idx.length === n && sameMask(st, mask)) return this.revive(st);
    }
    const idx = new Int32Array(n);
    const words = new Uint32Array(n);
    let key = '';
    for (let i = 0, j = 0; i < WORDS; i++) {
      if (skipMd && i === MD) i = MD + MD_WORDS;
      if (mask[i] !== 0) {
        idx[j] = i;
        words[j++] = mask[i]!;
        key += `${i}:${mask[i]!.toString(36)},`;
      }
    }
    const st = new Subtable<R>(key, idx, words, this.created++);
    if (candidates) candidates.push(st);
    else this.byMaskHash.set(h, [st]);
    this.subtables.set(key, st);
    this.ordered = null;
    return st;
  }

  /** A subtable that emptied (and left the table) comes back when a rule is put in it again. */
  private revive(st: Subtable<R>): Subtable<R> {
    if (!st.live) {
      st.live = true;
      this.subtables.set(st.key, st);
      this.ordered = null;
    }
    return st;
  }

  /** Masked values of a match for a subtable. */
  static valsOf(st: Subtable, flow: Flow): Vals {
    const n = st.idx.length;
    const codes = new Array<number>(2 * n);
    for (let i = 0; i < n; i++) {
      const w = (flow[st.idx[i]!]! & st.mask[i]!) >>> 0;
      codes[2 * i] = w >>> 16;
      codes[2 * i + 1] = w & 0xffff;
    }
    return String.fromCharCode.apply(null, codes);
  }

  /** The rule with exactly this match (subtable and values) and priority. */
  findExact(st: Subtable<R>, vals: Vals, priority: number): R | undefined {
    const b = st.buckets.get(st.hashVals(vals));
    if (b === undefined) return undefined;
    if (!Array.isArray(b)) return b.priority === priority && st.sameVals(b.vals, vals) ? b : undefined;
    return b.find((r) => r.priority === priority && st.sameVals(r.vals, vals));
  }

  /** Insert a rule whose subtable and vals are set; the caller removed any rule it replaces. */
  insert(r: R): void {
    // The rule's subtable may have emptied and left the table since (as when an add replaces
    // the only rule of its shape): it comes back.
    const st = this.revive(r.subtable as Subtable<R>);
    const h = st.hashVals(r.vals);
    const b = st.buckets.get(h);
    if (b === undefined) st.buckets.set(h, r);
    else if (!Array.isArray(b)) st.buckets.set(h, b.priority >= r.priority ? [b, r] : [r, b]);
    else {
      let i = 0;
      while (i < b.length && b[i]!.priority >= r.priority) i++;
      b.splice(i, 0, r);
    }
    const before = st.maxPriority;
    st.count++;
    st.addPriority(r.priority, 1);
    if (st.maxPriority !== before) this.ordered = null;
    this.size++;
  }

  remove(r: R): void {
    const st = r.subtable as Subtable<R>;
    const h = st.hashVals(r.vals);
    const b = st.buckets.get(h);
    if (b === undefined) return;
    if (!Array.isArray(b)) {
      if (b !== r) return;
      st.buckets.delete(h);
    } else {
      const i = b.indexOf(r);
      if (i < 0) return;
      b.splice(i, 1);
      if (b.length === 1) st.buckets.set(h, b[0]!);
    }
    const before = st.maxPriority;
    st.count--;
    st.addPriority(r.priority, -1);
    this.size--;
    if (st.count === 0) {
      this.subtables.delete(st.key);
      st.live = false;
      this.ordered = null;
    } else if (st.maxPriority !== before) {
      this.ordered = null;
    }
  }

  *rules(): IterableIterator<R> {
    for (const st of this.subtables.values()) {
      for (const b of st.buckets.values()) {
        if (Array.isArray(b)) yield* b;
        else yield b;
      }
    }
  }

  private order(): Subtable<R>[] {
    this.ordered ??= [...this.subtables.values()].sort((a, b) => b.maxPriority - a.maxPriority || a.order - b.order);
    return this.ordered;
  }

  /** The rule a packet hits (classifier_lookup__), resolving conjunctive matches. */
  lookup(f: Flow, allowConj = true): R | undefined {
    let hard: R | undefined;
    let hardPri = -1;
    let soft: (R | undefined)[] | null = null;
    let softPri = -1;
    for (const st of this.order()) {
      if (st.maxPriority <= hardPri) break;
      const m = st.find(f);
      if (!m || m.priority <= hardPri) continue;
      if (m.conj === null) {
        hard = m;
        hardPri = m.priority;
      } else if (allowConj) {
        (soft ??= []).push(m);
        if (m.priority > softPri) softPri = m.priority;
      }
    }
    if (soft === null || hardPri >= softPri) return hard;
    for (;;) {
      soft = soft.filter((s): s is R => s !== undefined && s.priority > hardPri);
      if (soft.length === 0) break;
      let pri = -1;
      let nPri = 0;
      for (const s of soft) {
        if (s!.priority > pri) { pri = s!.priority; nPri = 1; } else if (s!.priority === pri) nPri++;
      }
      // Which conjunction ids have every clause among the soft matches of this priority?
      const clauses = new Map<number, bigint>();
      for (const s of soft) {
        if (s!.priority !== pri) continue;
        for (const c of s!.conj!) {
          if (c.nClauses > nPri) continue;
          const have = (clauses.get(c.id) ?? 0n) | (1n << BigInt(c.clause));
          clauses.set(c.id, have);
          if (have === (1n << BigInt(c.nClauses)) - 1n) {
            const saved = f[W.conj_id]!;
            f[W.conj_id] = c.id;
            const r = this.lookup(f, false);
            f[W.conj_id] = saved;
            if (r) return r;
          }
        }
      }
      // Drop back to lower-priority rules with the same matches.
      soft = soft.map((s) => {
        if (s!.priority !== pri) return s;
        const next = (s!.subtable as Subtable<R>).nextSameMatch(s!);
        if (next && next.conj === null) {
          if (next.priority > hardPri) {
            hard = next;
            hardPri = next.priority;
          }
          return undefined;
        }
        return next;
      });
    }
    return hard;
  }
}
