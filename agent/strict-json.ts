// Strict reading of goal-state JSON for `aca push`: every key must be a field of the message
// (proto name or JSON name), maps must be objects and repeated fields lists, checked against
// the .proto files the package ships (proto/alcor/) with protobufjs. ts-proto's fromJSON, which
// then builds the message, ignores what it does not know: a misspelled `port_state` would
// otherwise push nothing and succeed.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

let root: protobuf.Root | null = null;

/** proto/ beside agent/ (a clone through tsx) or beside dist/ (compiled, installed). */
function protoDir(): string {
  for (const rel of ['../proto', '../../proto']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}/alcor/goalstate.proto`)) return dir;
  }
  throw new Error('proto/alcor/goalstate.proto not found beside the agent');
}

function schema(): protobuf.Root {
  if (root) return root;
  const dir = protoDir();
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => `${dir}/${target}`;
  r.loadSync('alcor/goalstate.proto', { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function closest(name: string, candidates: string[]): string | null {
  const dist = (a: string, b: string): number => {
    const d = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      let prev = d[0]!;
      d[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const tmp = d[j]!;
        d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = tmp;
      }
    }
    return d[b.length]!;
  };
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const x = dist(name.toLowerCase(), c.toLowerCase());
    if (x < bestD) { bestD = x; best = c; }
  }
  return bestD <= Math.max(2, Math.floor(name.length / 4)) ? best : null;
}

function check(type: protobuf.Type, value: unknown, path: string, problems: string[]): void {
  if (problems.length >= 10) return;
  if (!isObject(value)) {
    problems.push(`${path || 'the file'}: expected an object (${type.name}), got ${Array.isArray(value) ? 'a list' : typeof value}`);
    return;
  }
  const byName = new Map<string, protobuf.Field>();
  for (const f of type.fieldsArray) {
    byName.set(f.name, f);
    byName.set(camel(f.name), f);
  }
  for (const [key, v] of Object.entries(value)) {
    const at = path ? `${path}.${key}` : key;
    const field = byName.get(key);
    if (!field) {
      const hint = closest(key, type.fieldsArray.map((f) => f.name));
      problems.push(`${at}: ${type.name} has no field "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
      continue;
    }
    if (v === null) continue;
    const sub = field.resolvedType instanceof protobuf.Type ? field.resolvedType : null;
    if (field instanceof protobuf.MapField) {
      if (!isObject(v)) {
        problems.push(`${at}: must be a map (an object keyed by id), got ${Array.isArray(v) ? 'a list' : typeof v}`);
        continue;
      }
      if (sub) for (const [k, item] of Object.entries(v)) check(sub, item, `${at}.${k}`, problems);
    } else if (field.repeated) {
      if (!Array.isArray(v)) {
        problems.push(`${at}: must be a list, got ${isObject(v) ? 'an object' : typeof v}`);
        continue;
      }
      if (sub) v.forEach((item, i) => check(sub, item, `${at}[${i}]`, problems));
    } else if (sub) {
      check(sub, v, at, problems);
    }
  }
}

/**
 * Problems of a JSON goal state against `typeName` (GoalState or GoalStateV2): unknown keys,
 * lists where maps belong and the reverse; empty when it is well-formed.
 */
export function strictProblems(typeName: 'GoalState' | 'GoalStateV2', json: unknown): string[] {
  const type = schema().lookupType(`alcor.schema.${typeName}`);
  const problems: string[] = [];
  check(type, json, '', problems);
  return problems;
}
