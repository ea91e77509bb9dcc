// One OpenFlow table's classifier: tuple space search as OVS does it. Rules are grouped by the
// shape of their mask (a subtable); each subtable hashes its rules by their masked values, and
// subtables are visited in order of their highest priority, so a lookup stops as soon as no
// remaining subtable can hold a better rule. Conjunctive rules (actions that are all
// conjunction(id,k/n)) are soft matches, resolved as OVS's classifier_lookup__ resolves them.
//
// A subtable keeps its rules in columns (typed arrays by slot) with an open-addressing index by
// hash. A plain rule (switch/rule.ts isPlain: most of a cloud's flows) is only its columns; any
// other rule keeps its object in its slot. A million plain rules as objects cost about 165 bytes
// each (the object, its packed values string, a hash map entry); in columns about 60.
//
// What the columns mean for callers:
// - A rule a packet hits (`lookup`) is made an object and kept so (it then has counters): the
//   same object each time.
// - `rules()` and `findExact` hand out a plain rule as a new object each time, a copy: changing
//   it changes nothing in the table (the bridge changes rules by replacing them).
// - `remove` goes by match and priority, which name at most one rule of a table.
import { FLOW_WORDS, type Flow, W, WIDTH } from '../base/flow.js';
import type { Ofpact } from '../openflow/actions.js';
import { Rule, type Vals, valAt } from './rule.js';

export { type Conjunction, type Vals, valAt } from './rule.js';

const WORDS = FLOW_WORDS;
const MD = W.tun_md;
const MD_WORDS = WIDTH.tun_md;
const MD_PRESENT = W.tun_md_present;

const mix = (h: number, v: number): number => {
  let k = Math.imul(v, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
};
/** Hashes within V8's small-integer range. */
const smi = (h: number): number => h & 0x3fffffff;

/** Index entries: 0 empty, -1 a removed entry (probing goes on past it), else slot + 1. */
const EMPTY = 0;
const GONE = -1;

export class Subtable {
  maxPriority = -1;
  count = 0;
  /** In its classifier's table (a subtable leaves it when its last rule goes). */
  live = true;
  /** Priority counts, to keep maxPriority right on removals. */
  private readonly priorities = new Map<number, number>();

  // Columns by slot. Slots are taken in order and freed in place; the columns are compacted
  // when full of freed slots, so iteration is in insertion order, as a Map's would be.
  private cap = 0;
  private end = 0;
  private freed = 0;
  private words = new Uint32Array(0);
  private prio = new Int32Array(0);
  private hashes = new Int32Array(0);
  private born = new Float64Array(0);
  private cookies = new BigUint64Array(0);
  /** A plain rule's actions, or the rule object; undefined: a freed slot. */
  private readonly items: (Ofpact[] | Rule | undefined)[] = [];
  /** Open addressing by hash, linear probing; at most half full (freed entries counted). */
  private index = new Int32Array(8);
  private indexUsed = 0;

  constructor(readonly key: string, readonly idx: Int32Array, readonly mask: Uint32Array, readonly order: number, readonly table: number) {}

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

  /** The same hash of values as copyValues writes them, at `w[at…]`. */
  private hashWords(w: Uint32Array, at: number): number {
    let h = 0;
    for (let i = 0; i < this.idx.length; i++) h = mix(h, w[at + i]!);
    return smi(h);
  }

  private matchesFlow(slot: number, f: Flow): boolean {
    const n = this.idx.length;
    const base = slot * n;
    for (let i = 0; i < n; i++) if (((f[this.idx[i]!]! & this.mask[i]!) >>> 0) !== this.words[base + i]) return false;
    return true;
  }

  private matchesVals(slot: number, v: Vals): boolean {
    const n = this.idx.length;
    const base = slot * n;
    for (let i = 0; i < n; i++) if (valAt(v, i) !== this.words[base + i]) return false;
    return true;
  }

  private matchesWords(slot: number, w: Uint32Array, at: number): boolean {
    const n = this.idx.length;
    const base = slot * n;
    for (let i = 0; i < n; i++) if (w[at + i] !== this.words[base + i]) return false;
    return true;
  }

  /**
   * The index entry of the rule of hash `h` and priority `p` whose values are flow `f`'s masked
   * (with `f`), `v` (with `v`), or `w[at…]`; -1 if there is none.
   */
  private entryOf(h: number, p: number, f: Flow | null, v: Vals | null, w: Uint32Array | null, at: number): number {
    const m = this.index.length - 1;
    for (let i = h & m; ; i = (i + 1) & m) {
      const e = this.index[i]!;
      if (e === EMPTY) return -1;
      if (e === GONE) continue;
      const s = e - 1;
      if (this.hashes[s] !== h || this.prio[s] !== p) continue;
      if (f !== null ? this.matchesFlow(s, f) : v !== null ? this.matchesVals(s, v) : this.matchesWords(s, w!, at)) return i;
    }
  }

  /** The slot of the rule with these values and priority, or -1. */
  private slotOf(v: Vals, priority: number): number {
    const i = this.entryOf(this.hashVals(v), priority, null, v, null, 0);
    return i < 0 ? -1 : this.index[i]! - 1;
  }

  /** The rule in a slot as an object: its own, or a copy made from the columns. */
  private ruleAt(slot: number): Rule {
    const item = this.items[slot]!;
    if (item instanceof Rule) return item;
    const r = new Rule(this.table, this.prio[slot]!, this.cookies[slot]!, item, 0, 0, 0, 0);
    r.subtable = this;
    r.vals = this.valsAt(slot);
    r.created = this.born[slot]!;
    return r;
  }

  private valsAt(slot: number): Vals {
    const n = this.idx.length;
    const codes = new Array<number>(2 * n);
    for (let i = 0; i < n; i++) {
      const w = this.words[slot * n + i]!;
      codes[2 * i] = w >>> 16;
      codes[2 * i + 1] = w & 0xffff;
    }
    return String.fromCharCode.apply(null, codes);
  }

  /** The highest-priority rule matching `f` (find_match_wc); a plain one as a copy (see keep). */
  find(f: Flow): Rule | undefined {
    const s = this.bestSlot(this.hashFlow(f), Infinity, f, null);
    return s < 0 ? undefined : this.ruleAt(s);
  }

  /**
   * The slot of highest priority below `below` among those of hash `h` whose values match flow
   * `f` (or, with no flow, equal `v`); -1 when none does.
   */
  private bestSlot(h: number, below: number, f: Flow | null, v: Vals | null): number {
    const m = this.index.length - 1;
    let best = -1;
    for (let i = h & m; ; i = (i + 1) & m) {
      const e = this.index[i]!;
      if (e === EMPTY) return best;
      if (e === GONE) continue;
      const s = e - 1;
      const p = this.prio[s]!;
      if (this.hashes[s] !== h || p >= below || (best >= 0 && p <= this.prio[best]!)) continue;
      if (f !== null ? this.matchesFlow(s, f) : this.matchesVals(s, v!)) best = s;
    }
  }

  /**
   * The object to hand out for a rule found here, kept in its slot from now on (a packet hit it:
   * it will count, and must be the same object next time).
   */
  keep(r: Rule): Rule {
    const s = this.slotOf(r.vals, r.priority);
    if (s < 0) return r;
    const item = this.items[s];
    if (item instanceof Rule) return item;
    this.items[s] = r;
    return r;
  }

  /** The next lower-priority rule with the same match as `r` (next_visible_rule_in_list); a plain one as a copy. */
  nextSameMatch(r: Rule): Rule | undefined {
    const s = this.bestSlot(this.hashVals(r.vals), r.priority, null, r.vals);
    return s < 0 ? undefined : this.ruleAt(s);
  }

  /** The rule with exactly these values and priority (a copy when plain). */
  findExact(vals: Vals, priority: number): Rule | undefined {
    const s = this.slotOf(vals, priority);
    return s < 0 ? undefined : this.ruleAt(s);
  }

  /** Put a rule in (its vals set; no rule of its values and priority is here). */
  add(r: Rule): void {
    const h = this.hashVals(r.vals);
    const slot = this.open(h, r.priority);
    const n = this.idx.length;
    for (let i = 0; i < n; i++) this.words[slot * n + i] = valAt(r.vals, i);
    if (r.isPlain()) {
      this.born[slot] = r.created;
      this.cookies[slot] = r.cookie;
      this.items[slot] = r.actions;
    } else {
      this.items[slot] = r;
    }
  }

  /**
   * Put in a plain rule (rule.ts isPlain) straight from a flow mod's match values, unless a rule
   * of that match and priority is here: whether it went in. A flow mod adding a plain rule (every
   * flow of the agent's) makes no Rule object and no packed values, and hashes its values once.
   */
  addPlain(f: Flow, priority: number, cookie: bigint, actions: Ofpact[], created: number): boolean {
    const h = this.hashFlow(f);
    if (this.entryOf(h, priority, f, null, null, 0) >= 0) return false;
    const slot = this.open(h, priority);
    const n = this.idx.length;
    for (let i = 0; i < n; i++) this.words[slot * n + i] = (f[this.idx[i]!]! & this.mask[i]!) >>> 0;
    this.born[slot] = created;
    this.cookies[slot] = cookie;
    this.items[slot] = actions;
    return true;
  }

  /** Copy the masked values of the rule of flow `f` (as addPlain stored them) into `out` at `at`. */
  copyValues(f: Flow, out: Uint32Array, at: number): void {
    for (let i = 0; i < this.idx.length; i++) out[at + i] = (f[this.idx[i]!]! & this.mask[i]!) >>> 0;
  }

  /**
   * A new slot of hash `h` and priority `p`, in the index and counted; the caller writes its
   * values and its item before anything reads them.
   */
  private open(h: number, p: number): number {
    if (this.end === this.cap) this.makeRoom();
    // The index first: made again, it places every slot in use, and this one is not yet.
    if ((this.indexUsed + 1) * 2 > this.index.length) this.reindex(this.count + 1);
    const slot = this.end++;
    this.prio[slot] = p;
    this.hashes[slot] = h;
    this.place(slot, h);
    this.indexUsed++;
    this.count++;
    this.addPriority(p, 1);
    return slot;
  }

  /** Take out the rule of `r`'s values and priority; whether there was one. */
  delete(r: Rule): boolean {
    return this.free(this.entryOf(this.hashVals(r.vals), r.priority, null, r.vals, null, 0));
  }

  /** Take out the rule whose values are `values[at…]` (as copyValues wrote them) at priority `p`; whether there was one. */
  deleteValues(values: Uint32Array, at: number, p: number): boolean {
    return this.free(this.entryOf(this.hashWords(values, at), p, null, null, values, at));
  }

  /** Free the slot at index entry `i` (none when -1); whether there was one. */
  private free(i: number): boolean {
    if (i < 0) return false;
    const s = this.index[i]! - 1;
    const p = this.prio[s]!;
    this.index[i] = GONE;
    this.items[s] = undefined;
    this.freed++;
    this.count--;
    this.addPriority(p, -1);
    if (this.count === 0) this.clear();
    return true;
  }

  /** Every rule, in insertion order (plain ones as copies). */
  *rules(): IterableIterator<Rule> {
    for (let s = 0; s < this.end; s++) if (this.items[s] !== undefined) yield this.ruleAt(s);
  }

  /** The rules kept as objects (those with timeouts, counters or conjunctions among them). */
  *objects(): IterableIterator<Rule> {
    for (let s = 0; s < this.end; s++) {
      const item = this.items[s];
      if (item instanceof Rule) yield item;
    }
  }

  /** Empty: the columns go (a subtable left empty may stay empty for good). */
  private clear(): void {
    this.cap = this.end = this.freed = 0;
    this.words = new Uint32Array(0);
    this.prio = new Int32Array(0);
    this.hashes = new Int32Array(0);
    this.born = new Float64Array(0);
    this.cookies = new BigUint64Array(0);
    this.items.length = 0;
    this.index = new Int32Array(8);
    this.indexUsed = 0;
  }

  private place(slot: number, h: number): void {
    const m = this.index.length - 1;
    let i = h & m;
    while (this.index[i]! > 0) i = (i + 1) & m;
    if (this.index[i] === GONE) this.indexUsed--;
    this.index[i] = slot + 1;
  }

  /** A new index for `n` rules (freed entries dropped). */
  private reindex(n: number): void {
    let size = 8;
    while (size <= n * 2) size *= 2;
    this.index = new Int32Array(size);
    this.indexUsed = 0;
    for (let s = 0; s < this.end; s++) {
      if (this.items[s] === undefined) continue;
      this.place(s, this.hashes[s]!);
      this.indexUsed++;
    }
  }

  /**
   * Room for one more slot: squeeze freed slots out when a quarter of them are freed, else double
   * the columns. Doubling, not growing by half: each new typed array is memory outside V8's heap,
   * and V8 charges its allocation with marking work; at a million rules growing by half cost
   * about 1 s of a push, doubling 0.4–0.5 s. The room not used yet is zeroed memory the system
   * maps only when written. `items` grows as an array does (one made at a large length would
   * start as a dictionary); the index holds slots, so it is made again only when slots moved.
   */
  private makeRoom(): void {
    const n = this.idx.length;
    if (this.cap > 0 && this.freed * 4 >= this.cap) {
      let to = 0;
      for (let s = 0; s < this.end; s++) {
        const item = this.items[s];
        if (item === undefined) continue;
        if (to !== s) {
          this.words.copyWithin(to * n, s * n, s * n + n);
          this.prio[to] = this.prio[s]!;
          this.hashes[to] = this.hashes[s]!;
          this.born[to] = this.born[s]!;
          this.cookies[to] = this.cookies[s]!;
          this.items[to] = item;
        }
        to++;
      }
      this.items.length = to;
      this.end = to;
      this.freed = 0;
      this.reindex(to + 1);
      return;
    }
    const cap = Math.max(8, this.cap * 2);
    const grow = <T extends Uint32Array | Int32Array | Float64Array | BigUint64Array>(a: T, make: (len: number) => T, per = 1): T => {
      const b = make(cap * per);
      b.set(a as never);
      return b;
    };
    this.words = grow(this.words, (l) => new Uint32Array(l), n);
    this.prio = grow(this.prio, (l) => new Int32Array(l));
    this.hashes = grow(this.hashes, (l) => new Int32Array(l));
    this.born = grow(this.born, (l) => new Float64Array(l));
    this.cookies = grow(this.cookies, (l) => new BigUint64Array(l));
    this.cap = cap;
  }

  private addPriority(p: number, d: number): void {
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

export class Classifier {
  private readonly subtables = new Map<string, Subtable>();
  private ordered: Subtable[] | null = null;
  private created = 0;
  size = 0;

  /** Subtables by a hash of their mask, for finding a mask's subtable without building a key. */
  private readonly byMaskHash = new Map<number, Subtable[]>();

  /**
   * The last mask asked for and its subtable: flow mods compiled from one template (the agent's
   * flows of one shape) carry the same mask array, and a table's flows mostly come in runs of a
   * shape. A mask array is never changed once a flow mod carries it.
   */
  private lastMask: Flow | null = null;
  private lastSubtable: Subtable | null = null;

  /** `table`: the table's number, which the rules it hands out carry. */
  constructor(readonly table = 0) {}

  /** The subtable for a mask (words of a flow-sized mask), created when missing. */
  subtableFor(mask: Flow): Subtable {
    if (mask === this.lastMask) return this.revive(this.lastSubtable!);
    const st = this.findOrCreate(mask);
    this.lastMask = mask;
    this.lastSubtable = st;
    return st;
  }

  private findOrCreate(mask: Flow): Subtable {
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
    const st = new Subtable(key, idx, words, this.created++, this.table);
    if (candidates) candidates.push(st);
    else this.byMaskHash.set(h, [st]);
    this.subtables.set(key, st);
    this.ordered = null;
    return st;
  }

  /** A subtable that emptied (and left the table) comes back when a rule is put in it again. */
  private revive(st: Subtable): Subtable {
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

  /** The rule with exactly this match (subtable and values) and priority (a copy when plain). */
  findExact(st: Subtable, vals: Vals, priority: number): Rule | undefined {
    return st.findExact(vals, priority);
  }

  /** Insert a rule whose subtable and vals are set; the caller removed any rule it replaces. */
  insert(r: Rule): void {
    // The rule's subtable may have emptied and left the table since (as when an add replaces
    // the only rule of its shape): it comes back.
    const st = this.revive(r.subtable!);
    const before = st.maxPriority;
    st.add(r);
    this.added(st, before);
  }

  /**
   * Insert a plain rule (rule.ts isPlain) of subtable `st` from a flow mod's match values `f`,
   * unless a rule of that match and priority is here (the caller then replaces it the long way):
   * whether it went in.
   */
  insertPlain(st: Subtable, f: Flow, priority: number, cookie: bigint, actions: Ofpact[], created: number): boolean {
    const before = st.maxPriority;
    if (!st.addPlain(f, priority, cookie, actions, created)) return false;
    this.revive(st);
    this.added(st, before);
    return true;
  }

  /** After a rule went into `st` (its highest priority was `before`). */
  private added(st: Subtable, before: number): void {
    if (st.maxPriority !== before) this.ordered = null;
    this.size++;
  }

  /** Remove the rule of `r`'s match and priority; whether there was one. */
  remove(r: Rule): boolean {
    const st = r.subtable!;
    const before = st.maxPriority;
    return st.delete(r) && this.removed(st, before);
  }

  /** Remove the rule of subtable `st` whose values are `values[at…]` (Subtable.copyValues) at priority `p`; whether there was one. */
  removeValues(st: Subtable, values: Uint32Array, at: number, p: number): boolean {
    const before = st.maxPriority;
    return st.deleteValues(values, at, p) && this.removed(st, before);
  }

  /** After a rule of `st` went (its highest priority was `before`). */
  private removed(st: Subtable, before: number): true {
    this.size--;
    if (st.count === 0) {
      this.subtables.delete(st.key);
      st.live = false;
      this.ordered = null;
    } else if (st.maxPriority !== before) {
      this.ordered = null;
    }
    return true;
  }

  *rules(): IterableIterator<Rule> {
    for (const st of this.subtables.values()) yield* st.rules();
  }

  /** The rules kept as objects: every rule with a timeout is among them. */
  *objects(): IterableIterator<Rule> {
    for (const st of this.subtables.values()) yield* st.objects();
  }

  private order(): Subtable[] {
    this.ordered ??= [...this.subtables.values()].sort((a, b) => b.maxPriority - a.maxPriority || a.order - b.order);
    return this.ordered;
  }

  /**
   * The rule a packet hits (classifier_lookup__), resolving conjunctive matches: kept as an
   * object from now on (it counts the packet), the same object each time.
   */
  lookup(f: Flow): Rule | undefined {
    const r = this.match(f, true);
    return r === undefined ? undefined : r.subtable!.keep(r);
  }

  private match(f: Flow, allowConj: boolean): Rule | undefined {
    let hard: Rule | undefined;
    let hardPri = -1;
    let soft: (Rule | undefined)[] | null = null;
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
      soft = soft.filter((s): s is Rule => s !== undefined && s.priority > hardPri);
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
            const r = this.match(f, false);
            f[W.conj_id] = saved;
            if (r) return r;
          }
        }
      }
      // Drop back to lower-priority rules with the same matches.
      soft = soft.map((s) => {
        if (s!.priority !== pri) return s;
        const next = s!.subtable!.nextSameMatch(s!);
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
