// Flow entries and the flow-mod text syntax of ovs-ofctl (add-flow / add-flows lines).
import { type Action, formatActions, parseActions } from './actions.js';
import { FieldError } from './fields.js';
import { type Match, formatMatch, parseMatch } from './match.js';

export interface FlowEntry {
  table: number;
  priority: number;
  cookie: bigint;
  match: Match;
  actions: Action[];
  idleTimeout: number;
  hardTimeout: number;
}

export type FlowModCommand = 'add' | 'modify' | 'modify_strict' | 'delete' | 'delete_strict';

export interface FlowMod {
  command: FlowModCommand;
  flow: FlowEntry;
  /** Whether the text named a priority / table (for non-strict deletes and modifies). */
  hasTable: boolean;
  warnings: string[];
}

const DEFAULT_PRIORITY = 32768;

/** One flow-mod line: `[verb] table=..,priority=..,cookie=..,<match> actions=<actions>`. */
export function parseFlowMod(line: string, defaultCommand: FlowModCommand = 'add'): FlowMod {
  let text = line.trim();
  let command = defaultCommand;
  const verb = /^(add|modify_strict|modify|delete_strict|delete)\s+/.exec(text);
  if (verb) {
    command = verb[1] as FlowModCommand;
    text = text.slice(verb[0].length);
  }
  // `actions=` cannot occur inside a match, so its first occurrence splits the line.
  const idx = text.indexOf('actions=');
  let head = text;
  let acts = '';
  if (idx >= 0 && (idx === 0 || text[idx - 1] === ',' || text[idx - 1] === ' ' || text[idx - 1] === '\t')) {
    head = text.slice(0, idx);
    acts = text.slice(idx + 'actions='.length);
  } else if (command === 'add' || command.startsWith('modify')) {
    throw new FieldError('must specify an action');
  }
  let table = 0;
  let hasTable = false;
  let priority = DEFAULT_PRIORITY;
  let cookie = 0n;
  let idleTimeout = 0;
  let hardTimeout = 0;
  const rest: string[] = [];
  for (const raw of head.split(/[\s,]+/)) {
    if (raw === '') continue;
    const item = raw;
    const eq = item.indexOf('=');
    const k = eq < 0 ? item : item.slice(0, eq);
    const v = eq < 0 ? '' : item.slice(eq + 1);
    if (k === 'table') { table = Number(v); hasTable = true; }
    else if (k === 'priority') priority = Number(v);
    else if (k === 'cookie') cookie = BigInt(v.split('/')[0]!);
    else if (k === 'idle_timeout') idleTimeout = Number(v);
    else if (k === 'hard_timeout') hardTimeout = Number(v);
    else rest.push(item);
  }
  if (!Number.isInteger(table) || table < 0 || table > 253) throw new FieldError(`table ${table} out of range`);
  if (!Number.isInteger(priority) || priority < 0 || priority > 65535) throw new FieldError(`priority ${priority} out of range`);
  const { match, warnings } = parseMatch(rest.join(','));
  return { command, flow: { table, priority, cookie, match, actions: parseActions(acts), idleTimeout, hardTimeout }, hasTable, warnings };
}

/** As `ovs-ofctl --no-stats dump-flows` prints it (OpenFlow 1.3). */
export function formatFlowEntry(f: FlowEntry): string {
  // OVS leaves out a zero cookie, table 0 and the default priority.
  const head: string[] = [];
  if (f.cookie !== 0n) head.push(`cookie=0x${f.cookie.toString(16)}`);
  if (f.table !== 0) head.push(`table=${f.table}`);
  const timeouts = [f.idleTimeout ? `idle_timeout=${f.idleTimeout}` : '', f.hardTimeout ? `hard_timeout=${f.hardTimeout}` : ''].filter(Boolean);
  const prio = f.priority !== DEFAULT_PRIORITY ? `priority=${f.priority}` : '';
  const fields = [...timeouts, prio, formatMatch(f.match)].filter((s) => s !== '').join(',');
  const parts = [...head.map((h) => ` ${h},`), fields === '' ? '' : ` ${fields}`].join('');
  return `${parts} actions=${formatActions(f.actions)}`;
}
