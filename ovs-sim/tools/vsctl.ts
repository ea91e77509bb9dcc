// ovs-vsctl against the simulated switch: bridges, ports and interfaces as OVSDB rows (type,
// options, external_ids, ofport_request, tag, datapath_type, fail_mode, other_config), the
// commands that read and change them, with OVSDB's value printing and ovs-vsctl's messages.
// A command line is one transaction: its clauses (separated by `--`) apply together.
import { Bridge, type PortType } from '../switch/bridge.js';
import type { Datapath } from '../switch/datapath.js';
import { FieldError } from '../base/fields.js';
import { hashString } from '../base/hash.js';
import { hashOrder } from '../base/hmap.js';
import { OFPP } from '../base/text.js';

interface Result {
  stdout: string;
  stderr: string;
  status: number;
}

class VsctlError extends Error {
  constructor(message: string, readonly status = 1) {
    super(message);
  }
}

interface IfaceRow {
  name: string;
  bridge: string;
  type: string;
  options: Map<string, string>;
  externalIds: Map<string, string>;
  ofportRequest: number | null;
  tag: number | null;
  portExternalIds: Map<string, string>;
}

interface BridgeRow {
  name: string;
  datapathType: string;
  failMode: string;
  otherConfig: Map<string, string>;
  externalIds: Map<string, string>;
}

/** OVSDB's string quoting: bare when it looks like an identifier. */
function atom(s: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(s) && s !== 'true' && s !== 'false') return s;
  return JSON.stringify(s);
}
const mapText = (m: Map<string, string>): string => `{${[...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([k, v]) => `${atom(k)}=${atom(v)}`).join(', ')}}`;

/** ovs-vsctl's commands (its own and the database ones) and how many arguments each takes. */
const VSCTL_ARITY: Record<string, [number, number]> = {
  init: [0, 0], 'add-br': [1, 3], 'del-br': [1, 1], 'list-br': [0, 0], 'br-exists': [1, 1], 'br-to-vlan': [1, 1], 'br-to-parent': [1, 1],
  'br-set-external-id': [2, 3], 'br-get-external-id': [1, 2], 'list-ports': [1, 1], 'add-port': [2, Infinity], 'del-port': [1, 2],
  'port-to-br': [1, 1], 'add-bond': [4, Infinity], 'add-bond-iface': [2, 2], 'del-bond-iface': [1, 2], 'list-ifaces': [1, 1], 'iface-to-br': [1, 1],
  'get-controller': [1, 1], 'del-controller': [1, 1], 'set-controller': [1, Infinity], 'get-fail-mode': [1, 1], 'del-fail-mode': [1, 1],
  'set-fail-mode': [2, 2], 'get-manager': [0, 0], 'del-manager': [0, 0], 'set-manager': [1, Infinity], 'get-ssl': [0, 0], 'del-ssl': [0, 0],
  'set-ssl': [3, 3], 'emer-reset': [0, 0], comment: [0, Infinity], get: [2, Infinity], list: [1, Infinity], find: [1, Infinity],
  set: [3, Infinity], add: [4, Infinity], remove: [4, Infinity], clear: [3, Infinity], create: [2, Infinity], destroy: [1, Infinity],
  'wait-until': [2, Infinity],
};

export class Vsctl {
  private readonly ifaces = new Map<string, IfaceRow>();
  private readonly bridgeRows = new Map<string, BridgeRow>();
  private readonly otherConfig = new Map<string, string>();
  /** Bridges created by the transaction being run. */
  private created: Bridge[] = [];
  /** Interface rows the transaction added or changed: vswitchd makes their ports at its end. */
  private dirty = new Set<IfaceRow>();
  /** Bridges in creation order (all_bridges is walked in hash order of these). */
  private bridgeNames: string[] = [];

  /** Datapath changes that wait for the transaction to succeed (ports and bridges going away). */
  private later: (() => void)[] = [];

  constructor(private readonly dp: Datapath) {}

  /** The rows and settings as they are, and a function that puts them back (a failed transaction changes nothing). */
  private snapshot(): () => void {
    const ifaces = [...this.ifaces].map(([k, r]) => [k, structuredClone(r)] as const);
    const bridgeRows = [...this.bridgeRows].map(([k, r]) => [k, structuredClone(r)] as const);
    const otherConfig = [...this.otherConfig];
    const bridgeNames = [...this.bridgeNames];
    const vlanLimit = this.dp.vlanLimit;
    const failModes = [...this.bridges.values()].map((b) => [b, b.failMode] as const);
    const bridges = [...this.bridges];
    return () => {
      this.ifaces.clear();
      for (const [k, r] of ifaces) this.ifaces.set(k, r);
      this.bridgeRows.clear();
      for (const [k, r] of bridgeRows) this.bridgeRows.set(k, r);
      this.otherConfig.clear();
      for (const [k, v] of otherConfig) this.otherConfig.set(k, v);
      this.bridgeNames = bridgeNames;
      this.dp.vlanLimit = vlanLimit;
      for (const [b, mode] of failModes) b.failMode = mode;
      this.bridges.clear();
      for (const [k, b] of bridges) this.bridges.set(k, b);
    };
  }


  private get bridges(): Map<string, Bridge> {
    return this.dp.bridges as Map<string, Bridge>;
  }

  run(args: string[]): Result {
    const out: string[] = [];
    let restore: (() => void) | null = null;
    try {
      const clauses: string[][] = [[]];
      for (const a of args) {
        if (a === '--') clauses.push([]);
        else clauses.at(-1)!.push(a);
      }
      this.created = [];
      this.dirty = new Set();
      this.later = [];
      restore = this.snapshot();
      // ovs-vsctl parses every command of the line before it runs any.
      const parsed = clauses.map((c) => {
        const opts = new Set<string>();
        while (c.length && c[0]!.startsWith('--') && c[0] !== '--') opts.add(c.shift()!);
        if (c.length === 0) throw new VsctlError('missing command name (use --help for help)');
        const arity = VSCTL_ARITY[c[0]!];
        if (!arity) throw new VsctlError(`unknown command '${c[0]}'; use --help for help`);
        const n = c.length - 1;
        if (n < arity[0]) throw new VsctlError(`'${c[0]}' command requires at least ${arity[0]} arguments`);
        if (n > arity[1]) {
          const note = c.slice(1).some((x) => x.startsWith('-')) ? ' (note that options must precede command names and follow a "--" argument)' : '';
          throw new VsctlError(`'${c[0]}' command takes at most ${arity[1]} arguments${note}`);
        }
        return { c, opts };
      });
      // Column values the database refuses fail the whole transaction before anything changes.
      for (const { c } of parsed) {
        if (c[0] !== 'add-port' && c[0] !== 'set') continue;
        for (const col of c.slice(3)) {
          const m = /^ofport_request=(.*)$/.exec(col);
          if (m) this.setColumn('interface', { name: '', bridge: '', type: '', options: new Map(), externalIds: new Map(), ofportRequest: null, tag: null, portExternalIds: new Map() }, col);
        }
      }
      for (const { c, opts } of parsed) {
        const r = this.command(c[0]!, c.slice(1), opts);
        if (r !== null) out.push(r);
      }
      for (const f of this.later) f();
      this.reconfigure();
      // A new bridge in standalone mode with no controller gets OVS's NORMAL flow.
      for (const b of this.created) {
        const row = this.bridgeRows.get(b.name);
        b.failMode = row?.failMode === 'secure' ? 'secure' : 'standalone';
        if (b.failMode === 'standalone') b.addNormalFlow();
      }
      return { stdout: out.join('\n'), stderr: '', status: 0 };
    } catch (e) {
      // The transaction fails as a whole: nothing it did stays.
      if (restore && (e instanceof VsctlError || e instanceof FieldError)) restore();
      if (e instanceof VsctlError) return { stdout: '', stderr: e.message === '' ? '' : `ovs-vsctl: ${e.message}`, status: e.status };
      if (e instanceof FieldError) return { stdout: '', stderr: `ovs-vsctl: ${e.message}`, status: 1 };
      throw e;
    }
  }

  private bridgeOf(name: string): Bridge {
    const b = this.bridges.get(name);
    if (!b) throw new VsctlError(`no bridge named ${name}`);
    return b;
  }

  private portRow(name: string): IfaceRow | undefined {
    return this.ifaces.get(name);
  }

  private command(cmd: string, a: string[], opts: Set<string>): string | null {
    const mayExist = opts.has('--may-exist');
    const ifExists = opts.has('--if-exists');
    switch (cmd) {
      case 'init':
      case 'comment':
        return null;
      case 'add-br': {
        const name = a[0]!;
        if (this.bridges.has(name)) {
          if (mayExist) return null;
          throw new VsctlError(`cannot create a bridge named ${name} because a bridge named ${name} already exists`);
        }
        const p = this.portRow(name);
        if (p) throw new VsctlError(`cannot create a bridge named ${name} because a port named ${name} already exists on bridge ${p.bridge}`);
        const b = new Bridge(name, this.dp);
        this.bridgeRows.set(name, { name, datapathType: '', failMode: '', otherConfig: new Map(), externalIds: new Map() });
        this.bridgeNames.push(name);
        this.created.push(b);
        return null;
      }
      case 'del-br': {
        const name = a[0]!;
        if (!this.bridges.has(name)) {
          if (ifExists) return null;
          throw new VsctlError(`no bridge named ${name}`);
        }
        const b = this.bridgeOf(name);
        for (const p of [...b.ports.values()]) this.ifaces.delete(p.name);
        // The ports leave the datapath when the transaction succeeds.
        this.later.push(() => {
          for (const p of [...b.ports.values()]) b.removePort(p.name);
        });
        this.bridges.delete(name);
        this.bridgeRows.delete(name);
        this.bridgeNames = this.bridgeNames.filter((n) => n !== name);
        return null;
      }
      case 'add-port': {
        const [brName, name, ...cols] = a as [string, string, ...string[]];
        this.bridgeOf(brName); // (it must exist)
        const existing = this.portRow(name);
        if (existing) {
          if (mayExist && existing.bridge === brName) return null;
          if (mayExist) throw new VsctlError(`"--may-exist add-port ${brName} ${name}" but ${name} is actually attached to bridge ${existing.bridge}`);
          throw new VsctlError(`cannot create a port named ${name} because a port named ${name} already exists on bridge ${existing.bridge}`);
        }
        if (this.bridges.has(name)) throw new VsctlError(`cannot create a port named ${name} because a bridge named ${name} already exists`);
        const row: IfaceRow = { name, bridge: brName, type: '', options: new Map(), externalIds: new Map(), ofportRequest: null, tag: null, portExternalIds: new Map() };
        this.ifaces.set(name, row);
        for (const c of cols) this.setColumn('port', row, c);
        this.materialize(row);
        return null;
      }
      case 'del-port': {
        const name = a.at(-1)!;
        const row = this.portRow(name);
        if (a.length > 1) {
          const b = this.bridgeOf(a[0]!);
          if (!row || row.bridge !== b.name) {
            if (ifExists) return null;
            if (!row) throw new VsctlError(`no port named ${name}`);
            throw new VsctlError(`bridge ${a[0]} does not have a port ${name}`);
          }
        } else if (!row) {
          if (ifExists) return null;
          throw new VsctlError(`no port named ${name}`);
        }
        const from = this.bridgeOf(row.bridge);
        this.later.push(() => from.removePort(name));
        this.ifaces.delete(name);
        this.dirty.delete(row);
        return null;
      }
      case 'list-br':
        return [...this.bridges.keys()].sort().join('\n') || null;
      case 'list-ports':
      case 'list-ifaces': {
        this.bridgeOf(a[0]!);
        return [...this.ifaces.values()].filter((r) => r.bridge === a[0]).map((r) => r.name).sort().join('\n') || null;
      }
      case 'br-exists':
        if (!this.bridges.has(a[0]!)) throw new VsctlError('', 2);
        return null;
      case 'port-to-br':
      case 'iface-to-br': {
        const row = this.portRow(a[0]!);
        if (!row) throw new VsctlError(cmd === 'port-to-br' ? `no port named ${a[0]}` : `no interface named ${a[0]}`);
        return row.bridge;
      }
      case 'br-to-parent':
        this.bridgeOf(a[0]!);
        return a[0]!;
      case 'br-to-vlan':
        this.bridgeOf(a[0]!);
        return '0';
      case 'set-fail-mode': {
        const row = this.bridgeRows.get(a[0]!);
        if (!row) throw new VsctlError(`no bridge named ${a[0]}`);
        row.failMode = a[1] ?? '';
        this.bridgeOf(a[0]!).failMode = row.failMode === 'secure' ? 'secure' : 'standalone';
        return null;
      }
      case 'get-fail-mode': {
        const row = this.bridgeRows.get(a[0]!);
        if (!row) throw new VsctlError(`no bridge named ${a[0]}`);
        return row.failMode || null;
      }
      case 'set':
        this.set(a[0]!, a[1]!, a.slice(2));
        return null;
      case 'get':
        return this.get(a[0]!, a[1]!, a.slice(2), ifExists);
      case 'remove':
      case 'clear':
        this.removeOrClear(cmd, a[0]!, a[1]!, a[2]!, a.slice(3));
        return null;
      default:
        throw new VsctlError(`unknown command '${cmd}'; use --help for help`);
    }
  }

  private table(name: string): 'bridge' | 'interface' | 'port' | 'open_vswitch' {
    const t = name.toLowerCase();
    if (t === 'bridge' || t === 'interface' || t === 'port' || t === 'open_vswitch') return t;
    throw new VsctlError(`unknown table "${name}"`);
  }

  private tableName(t: string): string {
    return { bridge: 'Bridge', interface: 'Interface', port: 'Port', open_vswitch: 'Open_vSwitch' }[t] ?? t;
  }

  private row(t: string, record: string): IfaceRow | BridgeRow | null {
    if (t === 'bridge') {
      const r = this.bridgeRows.get(record);
      if (!r) throw new VsctlError(`no row "${record}" in table Bridge`);
      return r;
    }
    if (t === 'interface' || t === 'port') {
      const r = this.ifaces.get(record);
      if (!r) throw new VsctlError(`no row "${record}" in table ${this.tableName(t)}`);
      return r;
    }
    return null;
  }

  private set(tableArg: string, record: string, cols: string[]): void {
    const t = this.table(tableArg);
    if (t === 'open_vswitch') {
      for (const c of cols) {
        const m = /^other_config:([^=]+)=(.*)$/.exec(c);
        if (m) {
          this.otherConfig.set(m[1]!, m[2]!);
          if (m[1] === 'vlan-limit') this.dp.vlanLimit = Number(m[2]) || 0;
        }
      }
      return;
    }
    const r = this.row(t, record)!;
    if (t === 'bridge') {
      for (const c of cols) this.setColumn('bridge', r, c);
      this.bridgeOf(record).failMode = (r as BridgeRow).failMode === 'secure' ? 'secure' : 'standalone';
      return;
    }
    const row = r as IfaceRow;
    for (const c of cols) this.setColumn(t, row, c);
    this.materialize(row);
  }

  private setColumn(t: string, r: IfaceRow | BridgeRow, c: string): void {
    const eq = c.indexOf('=');
    if (eq < 0) throw new VsctlError(`${c}: argument does not end in "=" followed by a value.`);
    const col = c.slice(0, eq);
    const value = c.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    const [name, key] = col.includes(':') ? [col.slice(0, col.indexOf(':')), col.slice(col.indexOf(':') + 1)] : [col, null];
    if (t === 'bridge') {
      const b = r as BridgeRow;
      if (name === 'datapath_type') b.datapathType = value;
      else if (name === 'fail_mode' || name === 'fail-mode') b.failMode = value;
      else if (name === 'other_config' && key) b.otherConfig.set(key, value);
      else if (name === 'external_ids' && key) b.externalIds.set(key, value);
      else if (name !== 'protocols' && name !== 'other-config') throw new VsctlError(`Bridge does not contain a column whose name matches "${name}"`);
      return;
    }
    const row = r as IfaceRow;
    if (name === 'type') row.type = value;
    else if (name === 'options' && key) row.options.set(key, value);
    else if (name === 'external_ids' && key) (t === 'port' ? row.portExternalIds : row.externalIds).set(key, value);
    else if (name === 'ofport_request') {
      if (value !== '' && !/^[-+]?\d+$/.test(value)) throw new VsctlError(`"${value}" is not a valid integer or range`);
      const n = value === '' ? null : Number(value);
      if (n !== null && (n < 1 || n > 65279)) throw new VsctlError(`constraint violation: ${value} is not in the valid range 1 to 65279 (inclusive)`);
      row.ofportRequest = n;
    }
    else if (name === 'tag') row.tag = Number(value);
    else throw new VsctlError(`${this.tableName(t)} does not contain a column whose name matches "${name}"`);
  }

  /** The interface row changed: its port follows when the transaction commits. */
  private materialize(row: IfaceRow): void {
    this.dirty.add(row);
  }

  /**
   * bridge_reconfigure: ports whose type or requested number changed go first; then, bridge by
   * bridge (in all_bridges' hash order), the new interfaces that request an OpenFlow number, then
   * the rest (the bridge's own port among them), each pass in the hash order of the bridge's
   * wanted ports, as that order decides who gets which datapath and OpenFlow number.
   */
  private reconfigure(): void {
    const pending = [...this.dirty].filter((r) => this.ifaces.get(r.name) === r && this.bridges.has(r.bridge));
    const dropLater: (() => void)[] = [];
    for (const row of pending) {
      const b = this.bridgeOf(row.bridge);
      const existing = b.portByName(row.name);
      if (!existing) continue;
      const type = (row.type || 'system') as PortType;
      if (existing.type === type && (row.ofportRequest === null || row.ofportRequest === existing.ofport)) {
        this.apply(b, row);
        continue;
      }
      b.removePort(row.name, dropLater);
    }
    const created = new Set(this.created.map((b) => b.name));
    for (const brName of hashOrder(this.bridgeNames, (n) => hashString(n))) {
      const b = this.bridges.get(brName);
      if (!b) continue;
      const rows = [...this.ifaces.values()].filter((r) => r.bridge === brName);
      const wanted = hashOrder([brName, ...rows.map((r) => r.name)], (n) => hashString(n));
      const todo = new Set(pending.filter((r) => r.bridge === brName && !b.portByName(r.name)).map((r) => r.name));
      for (const requested of [true, false]) {
        for (const name of wanted) {
          if (name === brName) {
            if (!requested && created.has(brName) && !b.portByName(brName)) b.addPort(brName, 'internal', { ofportRequest: OFPP.LOCAL });
            continue;
          }
          const row = this.ifaces.get(name)!;
          if (todo.has(name) && (row.ofportRequest !== null) === requested) this.apply(b, row);
        }
      }
    }
    for (const drop of dropLater) drop();
  }

  /** Make the bridge's port match the interface row. */
  private apply(b: Bridge, row: IfaceRow): void {
    const existing = b.portByName(row.name);
    const type = (row.type || 'system') as PortType;
    const options = Object.fromEntries(row.options);
    if (existing) {
      const sameType = existing.type === type;
      const wantNumber = row.ofportRequest;
      if (sameType && (wantNumber === null || wantNumber === existing.ofport)) {
        b.setPortOptions(existing, row.options);
        existing.externalIds.clear();
        for (const [k, v] of row.externalIds) existing.externalIds.set(k, v);
        b.portsVersion += 1;
        return;
      }
      const keep = wantNumber ?? existing.ofport;
      b.removePort(row.name);
      b.addPort(row.name, type, { ofportRequest: keep, options, externalIds: Object.fromEntries(row.externalIds) });
      return;
    }
    b.addPort(row.name, type, { ofportRequest: row.ofportRequest ?? undefined, options, externalIds: Object.fromEntries(row.externalIds) });
  }

  private get(tableArg: string, record: string, cols: string[], ifExists: boolean): string | null {
    const t = this.table(tableArg);
    let r: IfaceRow | BridgeRow | null;
    try {
      r = this.row(t, record);
    } catch (e) {
      if (ifExists) return null;
      throw e;
    }
    const lines: string[] = [];
    for (const c of cols) {
      const [name, key] = c.includes(':') ? [c.slice(0, c.indexOf(':')), c.slice(c.indexOf(':') + 1)] : [c, null];
      let v: string | Map<string, string> | number | null;
      if (t === 'bridge') {
        const b = r as BridgeRow;
        if (name === 'datapath_type') v = b.datapathType;
        else if (name === 'fail_mode') v = b.failMode === '' ? null : b.failMode;
        else if (name === 'name') v = b.name;
        else if (name === 'other_config') v = b.otherConfig;
        else if (name === 'external_ids') v = b.externalIds;
        else throw new VsctlError(`Bridge does not contain a column whose name matches "${name}"`);
      } else {
        const row = r as IfaceRow;
        const port = this.bridgeOf(row.bridge).portByName(row.name);
        if (name === 'ofport') v = port?.ofport ?? -1;
        else if (name === 'ofport_request') v = row.ofportRequest;
        else if (name === 'type') v = row.type;
        else if (name === 'name') v = row.name;
        else if (name === 'options') v = row.options;
        else if (name === 'external_ids') v = t === 'port' ? row.portExternalIds : row.externalIds;
        else if (name === 'tag' && t === 'port') v = row.tag;
        else throw new VsctlError(`${this.tableName(t)} does not contain a column whose name matches "${name}"`);
      }
      if (key !== null) {
        if (!(v instanceof Map)) throw new VsctlError(`cannot specify key to get for non-map column ${name}`);
        const got = v.get(key);
        if (got === undefined) throw new VsctlError(`no key "${key}" in ${this.tableName(t)} record "${record}" column ${name}`);
        lines.push(atom(got));
        continue;
      }
      if (v instanceof Map) lines.push(mapText(v));
      else if (v === null) lines.push('[]');
      else if (typeof v === 'number') lines.push(String(v));
      else lines.push(v === '' ? '""' : atom(v));
    }
    return lines.join('\n');
  }

  private removeOrClear(cmd: string, tableArg: string, record: string, col: string, keys: string[]): void {
    const t = this.table(tableArg);
    const r = this.row(t, record)!;
    const row = r as IfaceRow;
    let m: Map<string, string>;
    if (t === 'bridge') {
      const b = r as BridgeRow;
      m = col === 'other_config' ? b.otherConfig : b.externalIds;
    } else if (col === 'options') m = row.options;
    else if (col === 'external_ids') m = t === 'port' ? row.portExternalIds : row.externalIds;
    else throw new VsctlError(`${this.tableName(t)} does not contain a column whose name matches "${col}"`);
    if (cmd === 'clear') m.clear();
    else for (const k of keys) m.delete(k);
    if (t !== 'bridge') this.materialize(row);
  }
}
