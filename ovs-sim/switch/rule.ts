// A rule of a bridge's table: match (as its subtable's mask and its masked values), priority,
// cookie, actions, and what most rules never have (counters, timeouts, use times) made when first
// needed. The classifier keeps a plain rule in columns and makes this object again when asked
// (switch/classifier.ts).
import type { Ofpact } from '../openflow/actions.js';
import { Match } from '../openflow/match.js';
import type { Subtable } from './classifier.js';

export interface Conjunction {
  id: number;
  clause: number;
  nClauses: number;
}

/**
 * A rule's masked values, one 32-bit word per word of its subtable's mask, packed as a string
 * of two UTF-16 code units per word (high half first): two equal matches of one subtable have
 * equal strings, compared by `===`.
 */
export type Vals = string;

/** Word `i` of packed values. */
export const valAt = (v: Vals, i: number): number => ((v.charCodeAt(2 * i) << 16) | v.charCodeAt(2 * i + 1)) >>> 0;

const NO_VALS: Vals = '';

/**
 * What most rules never change from its default: timeouts, importance, flags, use times and
 * counters. Made for a rule the first time one of them differs (a timeout, a packet, a modify).
 */
interface RuleLife {
  used: number;
  modified: number;
  nPackets: number;
  nBytes: number;
  idle: number;
  hard: number;
  importance: number;
  flags: number;
}

export class Rule {
  // Assigned in the constructor, all of them, in one order: every rule has one compact shape.
  // A million rules at 9 fields, not 16: the rest is in `life`, made when first needed.
  vals: Vals;
  subtable: Subtable | null;
  conj: Conjunction[] | null;
  created: number;
  table: number;
  priority: number;
  cookie: bigint;
  actions: Ofpact[];
  private life: RuleLife | null;

  constructor(table: number, priority: number, cookie: bigint, actions: Ofpact[], idle: number, hard: number, importance: number, flags: number) {
    this.vals = NO_VALS;
    this.subtable = null;
    this.conj = null;
    this.created = 0;
    this.table = table;
    this.priority = priority;
    this.cookie = cookie;
    this.actions = actions;
    this.life = null;
    if (idle !== 0 || hard !== 0 || importance !== 0 || flags !== 0) {
      const l = this.grow();
      l.idle = idle;
      l.hard = hard;
      l.importance = importance;
      l.flags = flags;
    }
  }

  private grow(): RuleLife {
    // Use and modification times: -1 is "the creation time" (which may be set later).
    return (this.life ??= { used: -1, modified: -1, nPackets: 0, nBytes: 0, idle: 0, hard: 0, importance: 0, flags: 0 });
  }

  /** Last use (a packet, or creation). */
  get used(): number {
    const l = this.life;
    return l === null || l.used < 0 ? this.created : l.used;
  }
  set used(v: number) { if (this.life !== null || v !== this.created) this.grow().used = v; }
  /** Last modification (or creation). */
  get modified(): number {
    const l = this.life;
    return l === null || l.modified < 0 ? this.created : l.modified;
  }
  set modified(v: number) { if (this.life !== null || v !== this.created) this.grow().modified = v; }
  get nPackets(): number { return this.life?.nPackets ?? 0; }
  set nPackets(v: number) { if (this.life !== null || v !== 0) this.grow().nPackets = v; }
  get nBytes(): number { return this.life?.nBytes ?? 0; }
  set nBytes(v: number) { if (this.life !== null || v !== 0) this.grow().nBytes = v; }
  get idle(): number { return this.life?.idle ?? 0; }
  set idle(v: number) { if (this.life !== null || v !== 0) this.grow().idle = v; }
  get hard(): number { return this.life?.hard ?? 0; }
  set hard(v: number) { if (this.life !== null || v !== 0) this.grow().hard = v; }
  get importance(): number { return this.life?.importance ?? 0; }
  set importance(v: number) { if (this.life !== null || v !== 0) this.grow().importance = v; }
  get flags(): number { return this.life?.flags ?? 0; }
  set flags(v: number) { if (this.life !== null || v !== 0) this.grow().flags = v; }

  /**
   * Nothing but its match, priority, cookie, actions and creation time: no conjunction, no
   * timeout, importance or flag, never hit, counted or modified since. The classifier keeps such
   * a rule in columns, not as this object (switch/classifier.ts).
   */
  isPlain(): boolean {
    return this.life === null && this.conj === null;
  }

  /** The rule's match, rebuilt from its subtable's mask and its values. */
  match(): Match {
    const m = new Match();
    const st = this.subtable!;
    for (let i = 0; i < st.idx.length; i++) {
      m.wc[st.idx[i]!] = st.mask[i]!;
      m.flow[st.idx[i]!] = valAt(this.vals, i);
    }
    return m;
  }
}

