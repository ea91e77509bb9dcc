// The `ovs-sim` command: scripts of `ovs-vsctl`, `ovs-ofctl` and `ovs-appctl` command lines,
// written exactly as for real OVS, run against one simulated switch (a datapath and its
// bridges). Each command prints what the real tool prints, errors included, with the same exit
// status. The OVSDB side is in vsctl.ts; this file is ovs-ofctl and ovs-appctl.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { P, P_ANY_OXM, instructionOrderProblem, P_OF10_ANY, P_OF10_NXM_ANY, P_OF10_STD_ANY, formatActions, protocolsText } from '../openflow/actions.js';
import { Bridge, OfError, type Rule } from '../switch/bridge.js';
import { type Clock, Datapath } from '../switch/datapath.js';
import { executeDatapath } from '../translate/dpexec.js';
import { FieldError, fieldByName, prereqsOk, readField } from '../base/fields.js';
import { collectWarnings } from '../base/log.js';
import { W } from '../base/flow.js';
import { FF, type FlowMod, parseFlowMod, parseTableId } from '../openflow/flowmod.js';
import { type Group, type GroupMod, formatGroup, parseGroupMod } from '../switch/groups.js';
import { Match, formatMatch, normalizeMatch } from '../openflow/match.js';
import { nxRoundTrip } from '../openflow/nx-match.js';
import { extract } from '../packet/packet.js';
import { OFPP, type PortMap, ethText, hexAlt, keyValues, parsePort } from '../base/text.js';
import { METER_FEATURES, type Meter, type MeterMod, OFPM, applyMeterMod, meterConfigText, meterIdText, meterList, meterOf, meterStatsText, parseMeterMod } from '../switch/meters.js';
import { tableFeatures, tableFeaturesLines } from '../switch/tables.js';
import { hashInt } from '../base/hash.js';
import { hashOrder } from '../base/hmap.js';
import { TraceError, traceCommand } from '../translate/trace.js';
import { Vsctl } from './vsctl.js';
import { type OfVersion, wire } from '../openflow/wire.js';
import { words } from '../base/words.js';

export { words };

export interface CommandResult {
  stdout: string;
  stderr: string;
  status: number;
}

class Fail extends Error {
  constructor(message: string, readonly status = 1, readonly stdout = '') {
    super(message);
  }
}

/** A switch error reply as ovs-ofctl prints it: the error, then the request it answers. */
class SwitchError extends Error {}

const VERSIONS: Record<string, OfVersion> = { OpenFlow10: 10, OpenFlow11: 11, OpenFlow12: 12, OpenFlow13: 13, OpenFlow14: 14, OpenFlow15: 15 };
const verTag = (v: OfVersion): string => (v === 10 ? '' : `(OF1.${v - 10}) `);
const VERSION_PROTOCOL: Record<OfVersion, number> = { 10: P_OF10_ANY, 11: P.OF11_STD, 12: P.OF12_OXM, 13: P.OF13_OXM, 14: P.OF14_OXM, 15: P.OF15_OXM };

interface OfctlOptions {
  version: OfVersion;
  allowed: number;
  strict: boolean;
  bundle: boolean;
  stats: boolean;
  names: boolean;
  sort: { field: string; reverse: boolean } | null;
  readd: boolean;
}

/** Logs ovs-ofctl writes on stderr (without their time and sequence prefix). */
const log = (module: string, level: string, text: string): string => `${module}|${level}|${text}`;

export interface SimSwitchOptions {
  cwd?: string;
  clock?: Clock;
}

export class SimSwitch {
  readonly datapath: Datapath;
  private readonly vsctlDb: Vsctl;
  private readonly cwd: string;

  constructor(opts: SimSwitchOptions = {}) {
    this.datapath = new Datapath(opts.clock);
    this.cwd = opts.cwd ?? process.cwd();
    this.vsctlDb = new Vsctl(this.datapath);
  }

  get bridges(): Map<string, Bridge> {
    return this.datapath.bridges as Map<string, Bridge>;
  }

  run(line: string): CommandResult {
    const argv = words(line);
    const tool = argv[0] ?? '';
    let r: CommandResult;
    try {
      if (tool === 'ovs-vsctl') r = this.vsctlDb.run(argv.slice(1));
      else if (tool === 'ovs-ofctl') r = this.ofctl(argv.slice(1));
      else if (tool === 'ovs-appctl') r = this.appctl(argv.slice(1));
      else r = { stdout: '', stderr: `${tool}: command not found`, status: 127 };
    } catch (e) {
      if (e instanceof Fail) r = { stdout: e.stdout, stderr: e.message, status: e.status };
      else throw e;
    }
    return { ...r, stderr: vlogLines(r.stderr, this.wallClock()) };
  }

  /** The wall-clock time log lines carry (OVS's `%Y-%m-%dT%H:%M:%SZ`, UTC). */
  private wallClock(): string {
    return `${new Date().toISOString().slice(0, 19)}Z`;
  }

  private bridge(name: string | undefined): Bridge {
    const b = name === undefined ? undefined : this.bridges.get(name);
    if (!b) throw new Fail(`ovs-ofctl: ${name} is not a bridge or a socket`);
    return b;
  }

  private file(path: string): string {
    return resolve(this.cwd, path);
  }

  /** A file argument's text (relative to the working directory), or ovs-ofctl's error. */
  private readArg(path: string): string {
    try {
      return readFileSync(this.file(path), 'utf8');
    } catch {
      throw new Fail(`ovs-ofctl: ${path}: open failed (No such file or directory)`);
    }
  }

  // -- ovs-ofctl --

  private ofctl(args: string[]): CommandResult {
    const o: OfctlOptions = { version: 10, allowed: P_OF10_STD_ANY | P_OF10_NXM_ANY, strict: false, bundle: false, stats: true, names: false, sort: null, readd: false };
    const rest: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (a === '-O' || a === '--protocols' || a.startsWith('-O') || a.startsWith('--protocols=')) {
        const v = a === '-O' || a === '--protocols' ? args[++i] ?? '' : a.startsWith('-O') ? a.slice(2) : a.slice(12);
        const list = v.split(',').map((x) => VERSIONS[x]);
        if (list.some((x) => x === undefined)) throw new Fail(`ovs-ofctl: ${v}: unknown OpenFlow version`);
        o.version = Math.max(...(list as OfVersion[])) as OfVersion;
        o.allowed = (list as OfVersion[]).filter((x) => x === o.version).reduce((acc, x) => acc | VERSION_PROTOCOL[x], 0);
        if (o.version === 10) o.allowed = P_OF10_STD_ANY | P_OF10_NXM_ANY;
      } else if (a === '--strict') o.strict = true;
      else if (a === '--bundle') o.bundle = true;
      else if (a === '--no-stats') o.stats = false;
      else if (a === '--names') o.names = true;
      else if (a === '--no-names') o.names = false;
      else if (a === '--readd') o.readd = true;
      else if (a === '--sort' || a.startsWith('--sort=') || a === '--rsort' || a.startsWith('--rsort=')) {
        const reverse = a.startsWith('--rsort');
        const field = a.includes('=') ? a.slice(a.indexOf('=') + 1) : '';
        // A meta-flow field name, or priority (the default).
        if (field !== '' && field.toLowerCase() !== 'priority' && !fieldByName(field)) throw new Fail(`ovs-ofctl: ${field}: unknown field name`);
        o.sort = { field: field === '' || field.toLowerCase() === 'priority' ? 'priority' : field, reverse };
      } else rest.push(a);
    }
    const [cmd, ...params] = rest;
    if (cmd === undefined) throw new Fail('ovs-ofctl: missing command name; use --help for help');
    const arity = OFCTL_ARITY[cmd];
    if (arity && params.length < arity[0]) throw new Fail(`ovs-ofctl: '${cmd}' command requires at least ${arity[0]} arguments`);
    if (arity && params.length > arity[1]) throw new Fail(`ovs-ofctl: '${cmd}' command takes at most ${arity[1]} arguments`);
    const out: string[] = [];
    const err: string[] = [];
    try {
      collectWarnings(err, () => this.ofctlCommand(cmd, params, o, out, err));
    } catch (e) {
      if (e instanceof Fail) throw new Fail([...err, e.message].filter(Boolean).join('\n'), e.status, [...out, e.stdout].filter(Boolean).join('\n'));
      if (e instanceof SwitchError) return { stdout: out.join('\n'), stderr: [...err, e.message].join('\n'), status: 1 };
      if (e instanceof FieldError) throw new Fail([...err, `ovs-ofctl: ${e.message}`].join('\n'));
      throw e;
    }
    return { stdout: out.join('\n'), stderr: err.join('\n'), status: 0 };
  }

  private ofctlCommand(cmd: string | undefined, params: string[], o: OfctlOptions, out: string[], err: string[]): void {
    {
      switch (cmd) {
        case 'add-flow': case 'mod-flows': case 'del-flows': {
          const b = this.bridge(params[0]);
          const command = cmd === 'add-flow' ? 'add' : cmd === 'mod-flows' ? (o.strict ? 'modify_strict' : 'modify') : o.strict ? 'delete_strict' : 'delete';
          const text = params[1] ?? '';
          const fm = this.parseFm(b, text, command, err);
          this.sendFlowMods(b, [fm], o);
          break;
        }
        case 'add-flows': {
          const b = this.bridge(params[0]);
          const path = params[1] ?? '';
          const text = this.readArg(path);
          const fms: FlowMod[] = [];
          text.split('\n').forEach((raw, i) => {
            const line = raw.replace(/#.*$/, '').trim();
            if (line === '') return;
            try {
              fms.push(this.parseFm(b, line, null, err));
            } catch (e) {
              if (e instanceof Fail) throw new Fail(e.message.replace(/^ovs-ofctl: /, `ovs-ofctl: ${path}:${i + 1}: `));
              throw e;
            }
          });
          this.sendFlowMods(b, fms, o);
          break;
        }
        case 'dump-flows':
        case 'dump-aggregate': {
          const b = this.bridge(params[0]);
          const filter = params[1] ?? '';
          const rules = this.selectForDump(b, filter, o, err);
          const v = o.version;
          const xid = (v === 10 ? 4 : 2) + (filter !== '' ? 4 : 0);
          if (cmd === 'dump-aggregate') {
            out.push(`${v === 10 ? 'NXST_AGGREGATE' : 'OFPST_AGGREGATE'} reply ${verTag(v)}(xid=0x${xid.toString(16)}): packet_count=${rules.reduce((s, r) => s + r.nPackets, 0)} byte_count=${rules.reduce((s, r) => s + r.nBytes, 0)} flow_count=${rules.length}`);
            break;
          }
          // OpenFlow 1.0 carries instructions as actions (goto_table as a resubmit), so a reply
          // can decode into an order ovs-ofctl refuses: the whole dump fails.
          if (v === 10) {
            for (const r of rules) {
              const problem = instructionOrderProblem(wire(r.actions, 10));
              if (problem) {
                err.push(log('ofp_actions', 'WARN', problem), log('ofp_flow', 'WARN', 'OFPST_FLOW reply bad instructions'), log('vconn', 'WARN', 'parse error in reply (OFPBAC_UNSUPPORTED_ORDER)'));
                throw new Fail('ovs-ofctl: dump flows (Protocol error)');
              }
            }
          }
          // ovs-ofctl prints the raw reply (its header, idle_age) only with stats, no sort and no
          // names; otherwise it formats each flow itself.
          const raw = o.stats && !o.sort && !o.names;
          if (raw) out.push(`${v === 10 ? 'NXST_FLOW' : 'OFPST_FLOW'} reply ${verTag(v)}(xid=0x${xid.toString(16)}):`);
          const ports = o.names ? b.portMap() : null;
          let list = rules;
          if (o.sort) list = sortFlows(rules, o.sort.field, o.sort.reverse);
          for (const r of list) out.push(b.formatRule(r, { version: v, stats: o.stats, ports, sorted: !raw }));
          break;
        }
        case 'replace-flows':
          this.replaceFlows(this.bridge(params[0]), params[1] ?? '', o, err);
          break;
        case 'diff-flows': {
          const lines = this.diffFlows(params[0] ?? '', params[1] ?? '', err);
          if (lines.length) throw new Fail(err.join('\n'), 2, lines.join('\n'));
          break;
        }
        case 'add-group': case 'mod-group': case 'add-groups': case 'del-groups': case 'insert-buckets': case 'remove-buckets':
          this.groupCommand(cmd, params, o);
          break;
        case 'dump-groups': {
          const b = this.bridge(params[0]);
          const v = o.version;
          out.push(`${v === 10 ? 'NXST_GROUP_DESC' : 'OFPST_GROUP_DESC'} reply ${verTag(v)}(xid=0x2):`);
          const want = params[1] !== undefined && v !== 13 && v !== 14 && v !== 11 && v !== 12 ? Number(params[1].replace(/^group_id=/, '')) : null;
          const groups = [...b.groups.values()].filter((g) => want === null || g.id === want).sort((a, c) => a.id - c.id);
          for (const g of groups) out.push(formatGroup(g, v, o.names ? b.portMap() : null, b.tun));
          break;
        }
        case 'packet-out':
          this.packetOut(this.bridge(params[0]), params.slice(1), o);
          break;
        case 'bundle':
          this.bundleFile(this.bridge(params[0]), params[1] ?? '', o, err);
          break;
        case 'add-meter': case 'mod-meter': case 'del-meter': case 'del-meters': case 'dump-meter': case 'dump-meters': case 'meter-stats': case 'meter-features':
          this.meterCommand(cmd, params, o, out);
          break;
        case 'show': case 'dump-desc': case 'dump-tables': case 'dump-table-features': case 'dump-table-desc': case 'mod-table':
        case 'dump-ports': case 'dump-ports-desc': case 'queue-get-config':
          this.switchCommand(cmd, params, o, out);
          break;
        case 'add-tlv-map': case 'del-tlv-map':
          this.tlvMod(this.bridge(params[0]), cmd === 'add-tlv-map' ? 'ADD' : 'DEL', params[1]);
          break;
        case 'dump-tlv-map': {
          const b = this.bridge(params[0]);
          out.push('NXT_TLV_TABLE_REPLY (xid=0x2):', ' max option space=256 max fields=64', ` allocated option space=${b.tun.allocated()}`, '', ...tlvTable([...b.tun.entries.values()].sort((a, c) => a.index - c.index)));
          break;
        }
        default:
          throw new Fail(`ovs-ofctl: unknown command '${cmd}'; use --help for help`);
      }
    }
  }

  /** Parse a flow mod as ovs-ofctl does, logging what its normalization of the match changes. */
  private parseFm(b: Bridge, text: string, command: FlowMod['command'] | null | 'match', err: string[]): FlowMod {
    let fm: FlowMod;
    try {
      fm = parseFlowMod(text, command, { ports: b.portMap(), tun: b.tun, warn: (m) => err.push(m) });
    } catch (e) {
      if (e instanceof FieldError) throw new Fail(`ovs-ofctl: ${e.message}`);
      throw e;
    }
    const changed = normalizeMatch(fm.match.clone(), b.tun);
    if (changed) err.push(log('ofp_match', 'INFO', 'normalization changed ofp_match, details:'), log('ofp_match', 'INFO', ` pre: ${changed.pre}`), log('ofp_match', 'INFO', `post: ${changed.post}`));
    return fm;
  }

  /** A flow of a file ovs-ofctl reads (read_flows_from_file): its errors name the file and line. */
  private parseFileLine(b: Bridge, line: string, path: string, n: number, err: string[]): FlowMod {
    try {
      return this.parseFm(b, line, 'add', err);
    } catch (e) {
      if (e instanceof Fail) throw new Fail(e.message.replace(/^ovs-ofctl: /, `ovs-ofctl: ${path}:${n}: `));
      throw e;
    }
  }

  /** Choose the protocol for flow mods (the first usable one allowed); returns it and the xid of the first. */
  private protocolFor(fms: FlowMod[], o: OfctlOptions): { protocol: number; xid: number } {
    let usable = 0x1ff;
    for (const fm of fms) usable &= fm.usable.p;
    const ok = usable & o.allowed;
    if (!ok) throw new Fail(`ovs-ofctl: none of the usable flow formats (${protocolsText(usable)}) is among the allowed flow formats (${protocolsText(o.allowed)})`);
    if (o.version !== 10) return { protocol: ok & -ok, xid: 6 };
    // OpenFlow 1.0: plain OF1.0 if it will do, else switching to NXM or table ids first.
    for (const p of [P.OF10_STD, P.OF10_STD_TID, P.OF10_NXM, P.OF10_NXM_TID]) if (ok & p) return { protocol: p, xid: p === P.OF10_STD ? 6 : 8 };
    return { protocol: ok & -ok, xid: 6 };
  }

  private sendFlowMods(b: Bridge, fms: FlowMod[], o: OfctlOptions): void {
    if (fms.length === 0) return;
    if (o.bundle) {
      const v = bundleVersion(o);
      this.bundleTransact(b, fms.map((fm) => ({ kind: 'flow', fm: switchView(fm, v, VERSION_PROTOCOL[v]) })), v, 6);
      return;
    }
    const { protocol, xid } = this.protocolFor(fms, o);
    const v: OfVersion = protocol & P_OF10_ANY ? 10 : protocol === P.OF11_STD ? 11 : (Math.log2(protocol) + 7) as OfVersion;
    fms.forEach((fm, i) => {
      const wired = switchView(fm, v, protocol);
      try {
        b.flowMod(wired);
      } catch (e) {
        if (e instanceof OfError) {
          const x = `0x${(xid + 2 * i).toString(16)}`;
          const msg = protocol & P_OF10_NXM_ANY ? 'NXT_FLOW_MOD' : 'OFPT_FLOW_MOD';
          throw new SwitchError(`OFPT_ERROR ${verTag(v)}(xid=${x}): ${e.code}\n${msg} ${verTag(v)}(xid=${x}):${flowModText(wired, v)}`);
        }
        throw e;
      }
    });
  }

  /**
   * One atomic, ordered bundle as vconn_bundle_transact sends it: the messages (xids from
   * `firstXid`), OPEN, a barrier, then COMMIT. What the switch refuses while decoding a message
   * (read-only or bad tables, hidden fields) fails that message alone, and the bundle is
   * discarded; what it refuses while committing fails the first such message and the commit,
   * leaving everything as it was. Either way ovs-ofctl prints each error, then fails.
   */
  private bundleTransact(b: Bridge, msgs: BundleMsg[], v: OfVersion, firstXid: number): void {
    const xid = (i: number): string => `0x${(firstXid + i).toString(16)}`;
    const request = (m: BundleMsg, i: number): string => {
      if (m.kind === 'flow') return `OFPT_FLOW_MOD ${verTag(v)}(xid=${xid(i)}):${flowModText(m.fm, v)}`;
      if (m.kind === 'group') return `OFPT_GROUP_MOD ${verTag(v)}(xid=${xid(i)}):\n${groupModText(m.gm, v)}`;
      return `OFPT_PACKET_OUT ${verTag(v)}(xid=${xid(i)}):`;
    };
    const errors: string[] = [];
    msgs.forEach((m, i) => {
      const code = m.kind === 'flow' ? decodeRefusal(m.fm) : null;
      if (code) errors.push(`Error ${code} for: ${request(m, i)}`);
    });
    const failed = (): Fail => new Fail([...errors, `ovs-ofctl: talking to unix:${RUNDIR}/${b.name}.mgmt (Protocol error)`].join('\n'));
    if (errors.length) throw failed();
    const commitXid = xid(msgs.length + 2);
    const restore = snapshot(b);
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      try {
        if (m.kind === 'flow') b.flowMod(m.fm);
        else if (m.kind === 'group') b.groupMod(m.gm);
        else this.packetOut(b, [m.text], { version: v, allowed: VERSION_PROTOCOL[v] } as OfctlOptions);
      } catch (e) {
        if (!(e instanceof OfError)) throw e;
        restore();
        errors.push(`Error ${e.code} for: ${request(m, i)}`);
        errors.push(`Error OFPBFC_MSG_FAILED for: ${v === 13 ? 'ONFT_BUNDLE_CONTROL' : 'OFPT_BUNDLE_CONTROL'} ${verTag(v)}(xid=${commitXid}):\n bundle_id=0 type=COMMIT_REQUEST flags=atomic ordered`);
        throw failed();
      }
    }
  }

  private selectForDump(b: Bridge, filter: string, o: OfctlOptions, err: string[]): Rule[] {
    const fm = this.parseFm(b, filter, 'match', err);
    return b.flows().filter((r) => b.criteriaSelects(fm, r, false));
  }

  private replaceFlows(b: Bridge, path: string, o: OfctlOptions, err: string[]): void {
    let text: string;
    try {
      text = readFileSync(this.file(path), 'utf8');
    } catch {
      throw new Fail(`ovs-ofctl: ${path}: open (No such file or directory)`);
    }
    const fms: FlowMod[] = [];
    text.split('\n').forEach((raw, i) => {
      const line = raw.replace(/#.*$/, '').trim();
      if (line !== '') fms.push(this.parseFileLine(b, line, path, i + 1, err));
    });
    let usable = 0x1ff;
    for (const fm of fms) usable &= fm.usable.p;
    // replace-flows reads the switch's flows back, which needs a protocol with table ids when
    // the file has other tables.
    const needTid = fms.some((fm) => fm.table !== 255 && fm.table !== 0);
    if (needTid) usable &= P.OF10_STD_TID | P.OF10_NXM_TID | P.OF11_STD | P_ANY_OXM;
    if (!(usable & o.allowed) || (needTid && o.version === 10)) throw new Fail(`ovs-ofctl: switch does not support any of the usable flow formats (${protocolsText(usable)})`);
    const v = o.bundle ? bundleVersion(o) : o.version;
    const key = (table: number, priority: number, m: Match): string => `${table}|${priority}|${formatMatch(m, priority)}`;
    const have = new Map<string, Rule>();
    for (const r of b.flows()) have.set(key(r.table, r.priority, r.match()), r);
    const want = new Map<string, FlowMod>();
    for (const fm of fms) want.set(key(fm.table === 255 ? 0 : fm.table, fm.priority, fm.match), fm);
    // The requests as ovs-ofctl makes them: the switch's flows the file lacks deleted, then the
    // file's flows the switch lacks (or has otherwise) added.
    const protocol = v === 10 ? P.OF10_NXM : VERSION_PROTOCOL[v];
    const requests: FlowMod[] = [];
    for (const [k, r] of have) {
      if (want.has(k)) continue;
      requests.push({ command: 'delete_strict', match: r.match(), priority: r.priority, table: r.table, cookie: 0n, cookieMask: 0n, newCookie: 0xffffffffffffffffn, modifyCookie: false, idle: 0, hard: 0, importance: 0, flags: 0, outPort: OFPP.NONE, outGroup: 0xffffffff, actions: [], usable: { p: 0x1ff } });
    }
    for (const [k, fm] of want) {
      const r = have.get(k);
      const stored = wire(fm.actions, v);
      if (!r || o.readd || formatActions(r.actions) !== formatActions(stored) || r.cookie !== fm.newCookie) requests.push(switchView(fm, v, protocol));
    }
    // The dump of the switch's flows came first (one more xid).
    if (o.bundle) {
      this.bundleTransact(b, requests.map((fm) => ({ kind: 'flow', fm })), v, 7);
      return;
    }
    const first = v === 10 ? 8 : 7;
    requests.forEach((fm, i) => {
      try {
        b.flowMod(fm);
      } catch (e) {
        if (!(e instanceof OfError)) throw e;
        // Each request waits for its barrier (two xids each); the first error ends the command.
        const x = `0x${(first + 2 * i).toString(16)}`;
        throw new SwitchError(`OFPT_ERROR ${verTag(v)}(xid=${x}): ${e.code}\n${protocol & P_OF10_NXM_ANY ? 'NXT_FLOW_MOD' : 'OFPT_FLOW_MOD'} ${verTag(v)}(xid=${x}):${flowModText(fm, v)}`);
      }
    });
  }

  /** diff-flows: the flows of two sources (bridges or files), as -/+ lines. */
  private diffFlows(a: string, c: string, err: string[]): string[] {
    const read = (src: string): Map<string, string> => {
      const out = new Map<string, string>();
      const b = this.bridges.get(src);
      const fmt = (table: number, priority: number, m: Match, cookie: bigint, actions: string, tun: Bridge['tun'] | null): [string, string] => {
        const match = formatMatch(m, priority, null, tun);
        return [`${table}|${match}`, `${table ? `table=${table} ` : ''}${match}${cookie ? ` cookie=0x${cookie.toString(16)}` : ''} actions=${actions}`];
      };
      if (b) {
        for (const r of b.flows()) {
          const [k, v] = fmt(r.table, r.priority, r.match(), r.cookie, formatActions(wire(r.actions, 10), { tun: b.tun }), b.tun);
          out.set(k, v);
        }
        return out;
      }
      let text: string;
      try {
        text = readFileSync(this.file(src), 'utf8');
      } catch {
        throw new Fail(`ovs-ofctl: ${src} is not a bridge or a socket`);
      }
      const any = [...this.bridges.values()][0] ?? new Bridge('-', new Datapath());
      for (const [i, raw] of text.split('\n').entries()) {
        const line = raw.replace(/#.*$/, '').trim();
        if (line === '') continue;
        const fm = this.parseFileLine(any, line, src, i + 1, err);
        const [k, v] = fmt(fm.table === 255 ? 0 : fm.table, fm.priority, fm.match, fm.newCookie, formatActions(wire(fm.actions, 10)), any.tun);
        out.set(k, v);
      }
      return out;
    };
    const x = read(a);
    const y = read(c);
    const lines: string[] = [];
    for (const [k, v] of x) {
      const w = y.get(k);
      if (w === undefined) lines.push(`-${v}`);
      else if (w !== v) lines.push(`-${v}`, `+${w}`);
    }
    for (const [k, w] of y) if (!x.has(k)) lines.push(`+${w}`);
    return lines;
  }

  /** `ovs-ofctl bundle SWITCH FILE`: `flow …`, `group …` and `packet-out …` lines in one bundle (parse_ofp_bundle_file). */
  private bundleFile(b: Bridge, path: string, o: OfctlOptions, err: string[]): void {
    const text = this.readArg(path);
    const v = bundleVersion(o);
    const ctx = { ports: b.portMap(), tun: b.tun };
    const msgs: BundleMsg[] = [];
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.replace(/#.*$/, '').replace(/^[ \t\r\n]+/, '');
      if (line.trim() === '') continue;
      const len = line.search(/[, \t\r\n]|$/);
      const word = line.slice(0, len);
      const rest = line.slice(len);
      try {
        // strncmp(s, "flow", len): the first word may be any prefix of the message type.
        if ('flow'.startsWith(word)) {
          const fm = this.parseFm(b, rest, null, err);
          msgs.push({ kind: 'flow', fm: switchView(fm, v, VERSION_PROTOCOL[v]) });
        } else if ('group'.startsWith(word)) {
          const gm = parseGroupText(rest, ctx);
          msgs.push({ kind: 'group', gm: groupModView(gm, v) });
        } else if ('packet-out'.startsWith(word)) {
          msgs.push({ kind: 'packet-out', text: rest.trim() });
        } else {
          throw new Fail(`ovs-ofctl: Unsupported bundle message type: ${word}`);
        }
      } catch (e) {
        const message = e instanceof Fail || e instanceof FieldError ? e.message.replace(/^ovs-ofctl: /, '') : null;
        if (message === null) throw e;
        throw new Fail(`ovs-ofctl: ${path}:${i + 1}: ${message}`);
      }
    }
    this.bundleTransact(b, msgs, v, 6);
  }

  // -- meters --

  private meterCommand(cmd: string, params: string[], o: OfctlOptions, out: string[]): void {
    const command = cmd === 'add-meter' ? 'add' : cmd === 'mod-meter' ? 'modify' : cmd === 'del-meter' || cmd === 'del-meters' ? 'delete' : null;
    const text = cmd === 'meter-features' ? undefined : params[1];
    let mm: MeterMod;
    try {
      mm = text === undefined ? { command: command ?? 'delete', id: OFPM.ALL, flags: 0, bands: [] } : parseMeterMod(text, command);
    } catch (e) {
      if (e instanceof FieldError) throw new Fail(`ovs-ofctl: ${e.message}`);
      throw e;
    }
    // Meters need OpenFlow 1.3 or later.
    const usable = P.OF13_OXM | P.OF14_OXM | P.OF15_OXM;
    if (!(usable & o.allowed)) throw new Fail(`ovs-ofctl: none of the usable flow formats (${protocolsText(usable)}) is among the allowed flow formats (${protocolsText(o.allowed)})`);
    const b = this.bridge(params[0]);
    const v = o.version;
    const tag = `${verTag(v)}(xid=0x2)`;
    if (command) {
      try {
        applyMeterMod(b, mm);
      } catch (e) {
        if (!(e instanceof OfError)) throw e;
        const verb = { add: 'ADD', modify: 'MOD', delete: 'DEL' }[mm.command];
        // ovs-ofctl cannot decode a meter mod with both kbps and pktps either: it dumps the bytes.
        const body = e.code === 'OFPMMFC_BAD_FLAGS' ? `***decode error: OFPMMFC_BAD_FLAGS***\n${hexDump(meterModBytes(mm, v, 2))}` : `${verb} ${meterConfigText(mm)}`;
        throw new SwitchError(`OFPT_ERROR ${tag}: ${e.code}\nOFPT_METER_MOD ${tag}: ${body}`);
      }
      return;
    }
    if (cmd === 'meter-features') {
      out.push(`OFPST_METER_FEATURES reply ${tag}:`, ...METER_FEATURES);
      return;
    }
    const stats = cmd === 'meter-stats';
    const list = mm.id === OFPM.ALL ? meterList(b) : [meterOf(b, mm.id)];
    // dump_transaction prints an error reply as any other reply, on stdout.
    if (mm.id !== OFPM.ALL && list[0] === undefined) {
      out.push(`OFPT_ERROR ${tag}: OFPMMFC_UNKNOWN_METER`, `${stats ? 'OFPST_METER' : 'OFPST_METER_CONFIG'} request ${tag}: ${meterIdText(mm.id, '=')}`);
      return;
    }
    out.push(`${stats ? 'OFPST_METER' : 'OFPST_METER_CONFIG'} reply ${tag}:`);
    if (list.length > 0) out.push((list as Meter[]).map((m) => (stats ? meterStatsText(b, m) : meterConfigText(m))).join('\n\n'));
  }

  // -- the switch's description, tables, ports and queues --

  private switchCommand(cmd: string, params: string[], o: OfctlOptions, out: string[]): void {
    const v = o.version;
    const need = (min: OfVersion): void => {
      if (v < min) throw new Fail(`ovs-ofctl: ${cmd} needs OpenFlow 1.${min - 10} or later ('-O OpenFlow1${min - 10}')`);
    };
    if (cmd === 'dump-table-features') need(13);
    if (cmd === 'dump-table-desc') need(14);
    if (cmd === 'mod-table') {
      this.modTable(params, o);
      return;
    }
    const b = this.bridge(params[0]);
    const portDesc = (p: { ofport: number; name: string } & Parameters<Bridge['portMac']>[0]): string[] => [
      ` ${portNumberText(p.ofport)}(${p.name}): addr:${ethText(b.portMac(p))}`, '     config:     0', `     state:      ${v >= 11 ? 'LIVE' : '0'}`, '     speed: 0 Mbps now, 0 Mbps max',
    ];
    switch (cmd) {
      case 'show': {
        // The datapath id is the bridge's own Ethernet address (random in OVS, fixed here).
        const local = b.ports.get(OFPP.LOCAL);
        const dpid = (local ? b.portMac(local) : 0n).toString(16).padStart(16, '0');
        const caps = v === 10 || v === 11 ? 'FLOW_STATS TABLE_STATS PORT_STATS QUEUE_STATS ARP_MATCH_IP' : `FLOW_STATS TABLE_STATS PORT_STATS GROUP_STATS QUEUE_STATS${v >= 14 ? ' BUNDLES' : ''}`;
        out.push(`OFPT_FEATURES_REPLY ${verTag(v)}(xid=0x2): dpid:${dpid}`, 'n_tables:254, n_buffers:0', `capabilities: ${v === 11 ? 'FLOW_STATS TABLE_STATS PORT_STATS GROUP_STATS QUEUE_STATS ARP_MATCH_IP' : caps}`);
        if (v === 10) out.push('actions: output enqueue set_vlan_vid set_vlan_pcp strip_vlan mod_dl_src mod_dl_dst mod_nw_src mod_nw_dst mod_nw_tos mod_tp_src mod_tp_dst');
        if (v >= 13) out.push(`OFPST_PORT_DESC reply ${verTag(v)}(xid=0x3):`);
        for (const p of [...b.ports.values()].sort(portOrder)) out.push(...portDesc(p));
        out.push(`OFPT_GET_CONFIG_REPLY ${verTag(v)}(xid=0x${v >= 13 ? 5 : 4}): frags=normal miss_send_len=0`);
        return;
      }
      case 'dump-desc':
        out.push(`OFPST_DESC reply ${verTag(v)}(xid=0x2):`, 'Manufacturer: Nicira, Inc.', 'Hardware: Open vSwitch', 'Software: 3.1.0', 'Serial Num: None', 'DP Description: None');
        return;
      case 'dump-tables':
        out.push(`OFPST_TABLE reply ${verTag(v)}(xid=0x2):`, ...tableStatsLines(b, v));
        return;
      case 'dump-table-features':
        out.push(...tableFeaturesLines(v));
        return;
      case 'dump-table-desc': {
        out.push(`OFPST_TABLE_DESC reply ${verTag(v)}(xid=0x2):`);
        const blocks: string[] = [];
        for (let t = 0; t < 254; t++) blocks.push(`  table ${t}:\n   eviction=${b.tableEviction.has(t) ? 'on' : 'off'} eviction_flags=OTHER|IMPORTANCE|LIFETIME\n   vacancy=off`);
        out.push(blocks.join('\n\n'));
        return;
      }
      case 'dump-ports': {
        const want = params[1] === undefined ? null : this.portFilter(b, params[1]);
        const xid = params[1] !== undefined && !/^\d+$/.test(params[1]) && v !== 10 ? 4 : 2;
        // ofproto's ports are an hmap by hash_ofp_port: the stats come in its order.
        const ports = hashOrder([...b.ports.values()], (p) => hashInt(p.ofport & 0xffff, 0)).filter((p) => want === null || p.ofport === want);
        out.push(`OFPST_PORT reply ${verTag(v)}(xid=0x${xid.toString(16)}): ${ports.length} ports`);
        for (const p of ports) {
          out.push(`  port ${portNumberText(p.ofport).padStart(2)}: rx pkts=0, bytes=0, drop=?, errs=?, frame=?, over=?, crc=?`, `           tx pkts=${p.txPackets ?? 0}, bytes=${p.txBytes ?? 0}, drop=?, errs=?, coll=?`);
          if (v >= 13) out.push(`           duration=${(Math.max(0, b.now()) / 1000).toFixed(3)}s`);
          if (v >= 14) out.push('           CUSTOM Statistics', '                      rx_custom_packets_1=0, rx_custom_packets_2=0, rx_q0_bytes=0,', '                      rx_q0_packets=0, tx_q0_bytes=0, tx_q0_packets=0,');
        }
        return;
      }
      case 'dump-ports-desc': {
        // OpenFlow 1.0 to 1.4 ask for every port; 1.5 asks for the one given.
        const want = params[1] !== undefined && v >= 15 ? this.portFilter(b, params[1]) : null;
        const xid = params[1] !== undefined && !/^\d+$/.test(params[1]) ? 4 : 2;
        out.push(`OFPST_PORT_DESC reply ${verTag(v)}(xid=0x${xid.toString(16)}):`);
        for (const p of [...b.ports.values()].filter((q) => want === null || q.ofport === want).sort(portOrder)) out.push(...portDesc(p));
        return;
      }
      case 'queue-get-config': {
        const port = params[1] === undefined ? null : this.portFilter(b, params[1]);
        if (port !== null && !b.ports.has(port)) {
          // An error reply to a dump is printed as a reply, on stdout.
          out.push(`OFPT_ERROR ${verTag(v)}(xid=0x2): OFPQOFC_BAD_PORT`, `OFPT_QUEUE_GET_CONFIG_REQUEST ${verTag(v)}(xid=0x2): port=${port}`);
          return;
        }
        const reply = v >= 14 ? 'OFPST_QUEUE_DESC reply' : 'OFPT_QUEUE_GET_CONFIG_REPLY';
        if (port !== null) {
          out.push(`${reply} ${verTag(v)}(xid=0x2): port=${portNumberText(port)}`, 'queue 0:');
          return;
        }
        // OpenFlow 1.0 asks port by port, in the order of a port description reply (ofproto's
        // hmap of ports), leaving out LOCAL.
        const physical = hashOrder([...b.ports.values()], (p) => hashInt(p.ofport & 0xffff, 0)).filter((p) => p.ofport !== OFPP.LOCAL);
        if (v === 10) {
          physical.forEach((p, i) => out.push(`${reply} (xid=0x${(4 + i).toString(16)}): port=${p.ofport}`, 'queue 0:'));
          return;
        }
        out.push(`${reply} ${verTag(v)}(xid=0x2): port=ANY`, ...[...b.ports.values()].map(() => 'queue 0:'));
        return;
      }
    }
  }

  /** A port argument of dump-ports and the like: a number or one of the bridge's names. */
  private portFilter(b: Bridge, s: string): number {
    const p = parsePort(s, b.portMap());
    if (p === null) throw new Fail(`ovs-ofctl: ${b.name}: unknown port \`${s}'`);
    return p;
  }

  /** mod-table SWITCH TABLE SETTING (ofputil_parse_table_mod). */
  private modTable(params: string[], o: OfctlOptions): void {
    const [, tableArg = '', setting = ''] = params;
    const v = o.version;
    const OF11_12 = 'OpenFlow11, OpenFlow12';
    const OF14_UP = 'OpenFlow14, OpenFlow15';
    const allowed = (list: string): boolean => list.split(', ').some((x) => VERSIONS[x] !== undefined && (o.allowed & VERSION_PROTOCOL[VERSIONS[x]]) !== 0);
    let versions: string;
    if (setting === 'drop' || setting === 'continue' || setting === 'controller') versions = OF11_12;
    else if (setting === 'evict' || setting === 'noevict' || setting === 'novacancy' || setting.startsWith('vacancy')) versions = OF14_UP;
    else throw new Fail(`ovs-ofctl: invalid table_mod setting ${setting}`);
    if (setting.startsWith('vacancy')) {
      const m = /^vacancy:(.*)$/.exec(setting);
      const [down = '', up = ''] = (m?.[1] ?? '').split(',');
      if (!/^\d+$/.test(down) || Number(down) > 100) throw new Fail(`ovs-ofctl: Invalid vacancy down value "${down}"`);
      if (!/^\d+$/.test(up) || Number(up) > 100) throw new Fail(`ovs-ofctl: Invalid vacancy up value "${up}"`);
      if (Number(down) > Number(up)) throw new Fail('ovs-ofctl: Invalid vacancy range, vacancy up should be greater than vacancy down (OFPBPC_BAD_VALUE)');
    }
    if (!allowed(versions)) throw new Fail(`ovs-ofctl: table_mod '${setting}' requires one of the OpenFlow versions ${versions}`);
    const table = tableArg === 'all' ? 255 : parseTableId(tableArg);
    if (table === null) throw new Fail(`ovs-ofctl: unknown table "${tableArg}"`);
    const b = this.bridge(params[0]);
    if (table === 254) {
      const x = v >= 14 ? 5 : 2;
      throw new SwitchError(`OFPT_ERROR ${verTag(v)}(xid=0x${x.toString(16)}): OFPTMFC_EPERM\nOFPT_TABLE_MOD ${verTag(v)}(xid=0x${x.toString(16)}): table_id=254, eviction=${setting === 'evict' ? 'on' : 'off'}, vacancy=off`);
    }
    const tablesHit = table === 255 ? Array.from({ length: 254 }, (_, i) => i) : [table];
    for (const t of tablesHit) {
      if (setting === 'evict') b.tableEviction.add(t);
      else if (setting === 'noevict') b.tableEviction.delete(t);
    }
  }

  private groupCommand(cmd: string, params: string[], o: OfctlOptions): void {
    const b = this.bridge(params[0]);
    const v = o.version;
    if ((cmd === 'insert-buckets' || cmd === 'remove-buckets') && v < 15) {
      throw new Fail(`ovs-ofctl: ${cmd === 'insert-buckets' ? 'insert-bucket' : 'remove-bucket'} needs OpenFlow 1.5 or later ('-O OpenFlow15')`);
    }
    const ctx = { ports: b.portMap(), tun: b.tun };
    let mods: GroupMod[];
    try {
      if (cmd === 'add-groups') {
        const text = this.readArg(params[1] ?? '');
        mods = text.split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter((l) => l !== '').map((l) => parseGroupMod(l, 'add', ctx));
      } else if (cmd === 'del-groups') {
        mods = [parseGroupMod(params[1] ?? 'group_id=all', 'delete', ctx)];
      } else {
        const command = cmd === 'add-group' ? 'add' : cmd === 'mod-group' ? (o.strict ? 'modify' : 'modify') : cmd === 'insert-buckets' ? 'insert_bucket' : 'remove_bucket';
        mods = [parseGroupMod(params[1] ?? '', command, ctx)];
      }
    } catch (e) {
      if (e instanceof FieldError) throw new Fail(`ovs-ofctl: ${e.message}`);
      throw e;
    }
    if (o.bundle) {
      const bv = bundleVersion(o);
      this.bundleTransact(b, mods.map((gm) => ({ kind: 'group', gm: groupModView(gm, bv) })), bv, 6);
      return;
    }
    mods.forEach((gm, i) => {
      try {
        b.groupMod(groupModView(gm, v));
      } catch (e) {
        if (e instanceof OfError) {
          const x = `0x${(6 + 2 * i).toString(16)}`;
          throw new SwitchError(`OFPT_ERROR ${verTag(v)}(xid=${x}): ${e.code}\n${v === 10 ? 'NXT_GROUP_MOD' : 'OFPT_GROUP_MOD'} ${verTag(v)}(xid=${x}):\n${groupModText(gm, v)}`);
        }
        throw e;
      }
    });
  }

  private packetOut(b: Bridge, params: string[], o: OfctlOptions): void {
    let inPort: number = OFPP.CONTROLLER;
    let actionsText = '';
    let hex = '';
    if (params.length === 1) {
      for (const [k, val] of keyValues(params[0]!.replace(/\s+actions=/, ',actions=').replace(/\s+packet=/, ',packet='))) {
        if (k === 'in_port') {
          const p = val.toLowerCase() === 'none' ? OFPP.NONE : parsePort(val, b.portMap());
          if (p === null) throw new Fail(`ovs-ofctl: ${val} is not a valid OpenFlow port`);
          inPort = p;
        }
        else if (k === 'packet') hex = val;
        else if (k === 'actions') actionsText = val;
      }
      const ai = params[0]!.indexOf('actions=');
      if (ai >= 0) actionsText = params[0]!.slice(ai + 8);
    } else {
      inPort = this.portArg(b, params[0] ?? '');
      actionsText = params[1] ?? '';
      hex = params.slice(2).join('');
    }
    const clean = hex.replace(/\s+/g, '');
    if (!/^[0-9a-fA-F]*$/.test(clean) || clean.length % 2) throw new Fail('ovs-ofctl: Trailing garbage in packet data');
    const bytes = Uint8Array.from(Buffer.from(clean, 'hex'));
    if (bytes.length < 14) throw new Fail('ovs-ofctl: Packet data too short for Ethernet');
    const fm = this.parseFm(b, `actions=${actionsText}`, 'add', []);
    // The actions must be expressible in a protocol ovs-ofctl may use.
    if (!(fm.usable.p & o.allowed)) throw new Fail(`ovs-ofctl: none of the usable flow formats (${protocolsText(fm.usable.p)}) is among the allowed flow formats (${protocolsText(o.allowed)})`);
    const actions = wire(fm.actions, o.version);
    const flow = extract(bytes, inPort, undefined, b.vlanLimit);
    executeDatapath(b, flow, bytes, { actions });
  }

  private portArg(b: Bridge, v: string): number {
    if (v.toLowerCase() === 'none') return OFPP.NONE;
    const p = parsePort(v, b.portMap());
    if (p === null) throw new Fail(`ovs-ofctl: ${b.name}: unknown port \`${v}'`);
    return p;
  }

  private tlvMod(b: Bridge, command: 'ADD' | 'DEL', spec: string | undefined): void {
    const maps = parseTlvMaps(spec ?? '');
    if (command === 'ADD') {
      for (const m of maps) {
        const code = b.tun.add(m.index, m.optClass, m.type, m.len);
        if (code) {
          // Undo what this message added: it is one transaction.
          for (const n of maps) if (n !== m && b.tun.entries.get(n.index)?.optClass === n.optClass) b.tun.delete(n.index);
          throw new SwitchError(`OFPT_ERROR (xid=0x4): ${code}\nNXT_TLV_TABLE_MOD (xid=0x4):\n ADD${tlvTable(maps.map((x) => ({ ...x, offset: 0 }))).join('\n')}`);
        }
      }
      return;
    }
    const targets = spec === undefined ? [...b.tun.entries.values()] : maps;
    for (const m of targets) {
      if (b.flowsUseTunMetadata(m.index)) {
        throw new SwitchError(`OFPT_ERROR (xid=0x4): NXTTMFC_INVALID_TLV_DEL\nNXT_TLV_TABLE_MOD (xid=0x4):\n DEL${tlvTable(maps.map((x) => ({ ...x, offset: 0 }))).join('\n')}`);
      }
    }
    if (spec === undefined) b.tun.clear();
    else for (const m of maps) b.tun.delete(m.index);
  }

  // -- ovs-appctl --

  private appctl(args: string[]): CommandResult {
    const [cmd, ...rest] = args;
    if (cmd === 'ofproto/trace') {
      try {
        return { stdout: traceCommand(rest, this.bridges), stderr: '', status: 0 };
      } catch (e) {
        if (e instanceof TraceError || e instanceof FieldError) return { stdout: '', stderr: `${e.message}\novs-appctl: ovs-vswitchd: server returned an error`, status: 2 };
        throw e;
      }
    }
    if (cmd === 'dpif/show') return { stdout: this.dpifShow(), stderr: '', status: 0 };
    return { stdout: '', stderr: `"${cmd}" is not a valid command\novs-appctl: ovs-vswitchd: server returned an error`, status: 2 };
  }

  private dpifShow(): string {
    const lines = ['dummy@ovs-dummy: hit:0 missed:0'];
    for (const b of [...this.bridges.values()].sort((a, c) => (a.name < c.name ? -1 : 1))) {
      lines.push(`  ${b.name}:`);
      for (const p of [...b.ports.values()].sort((a, c) => (a.name < c.name ? -1 : 1))) {
        const opts = [...p.options.entries()].sort((a, c) => (a[0] < c[0] ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join(', ');
        const type = p.name === b.name ? 'dummy-internal' : p.type === 'internal' ? 'dummy-internal' : p.type;
        lines.push(`    ${p.name} ${p.ofport}/${p.odpPort ?? 'none'}: (${type}${opts ? `: ${opts}` : ''})`);
      }
    }
    return lines.join('\n');
  }
}

/** ovs-ofctl's commands and how many arguments each takes (its command table). */
const OFCTL_ARITY: Record<string, [number, number]> = {
  show: [1, 1], monitor: [1, 3], snoop: [1, 1], 'dump-desc': [1, 1], 'dump-tables': [1, 1], 'dump-table-features': [1, 1], 'dump-table-desc': [1, 1],
  'dump-flows': [1, 2], 'dump-aggregate': [1, 2], 'queue-stats': [1, 3], 'queue-get-config': [1, 3], 'add-flow': [2, 2], 'add-flows': [2, 2],
  'mod-flows': [2, 2], 'del-flows': [1, 2], 'replace-flows': [2, 2], 'diff-flows': [2, 2], 'add-meter': [2, 2], 'mod-meter': [2, 2],
  'del-meter': [1, 2], 'del-meters': [1, 2], 'dump-meter': [1, 2], 'dump-meters': [1, 2], 'meter-stats': [1, 2], 'meter-features': [1, 1],
  'packet-out': [2, Infinity], 'dump-ports': [1, 2], 'dump-ports-desc': [1, 2], 'mod-port': [3, 3], 'mod-table': [3, 3], 'get-frags': [1, 1],
  'set-frags': [2, 2], probe: [1, 1], ping: [1, 2], benchmark: [3, 3], 'ct-flush-zone': [2, 2], 'ct-flush': [1, 4], 'add-group': [1, 2],
  'add-groups': [2, 2], 'mod-group': [1, 2], 'del-groups': [1, 2], 'insert-buckets': [1, 2], 'remove-buckets': [1, 2], 'dump-groups': [1, 2],
  'dump-group-stats': [1, 2], 'dump-group-features': [1, 1], bundle: [2, 2], 'add-tlv-map': [2, 2], 'del-tlv-map': [1, 2], 'dump-tlv-map': [1, 1],
};

/** A message of a bundle: a flow mod or group mod as the switch decodes it, or a packet-out. */
type BundleMsg =
  | { kind: 'flow'; fm: FlowMod }
  | { kind: 'group'; gm: GroupMod }
  | { kind: 'packet-out'; text: string };

/** Where a standalone simulated switch's management sockets are, as OVS's default run directory. */
const RUNDIR = '/var/run/openvswitch';

/**
 * The OpenFlow version of a bundle: bundles need OpenFlow 1.3 or later; with none of those
 * allowed ovs-ofctl uses OpenFlow 1.4 implicitly.
 */
function bundleVersion(o: OfctlOptions): OfVersion {
  return o.version >= 13 ? o.version : 14;
}

/**
 * Log lines (`module|LEVEL|text`) as vlog writes them on the console: the time, then the
 * message's sequence number in this process (each command is one process, as each tool run is).
 */
function vlogLines(stderr: string, time: string): string {
  if (stderr === '') return stderr;
  let seq = 0;
  return stderr.split('\n').map((l) => (/^[a-z_0-9]+\|(?:EMER|ERR|WARN|INFO|DBG)\|/.test(l) ? `${time}|${String(++seq).padStart(5, '0')}|${l}` : l)).join('\n');
}

/** An OpenFlow 1.3+ meter mod as ovs-ofctl encodes it (ofputil_encode_meter_mod). */
function meterModBytes(mm: MeterMod, v: OfVersion, xid: number): Uint8Array {
  const n = 16 + 16 * mm.bands.length;
  const b = new DataView(new ArrayBuffer(n));
  b.setUint8(0, v - 9);
  b.setUint8(1, 29);
  b.setUint16(2, n);
  b.setUint32(4, xid);
  b.setUint16(8, { add: 0, modify: 1, delete: 2 }[mm.command]);
  if (mm.command !== 'delete') b.setUint16(10, mm.flags);
  b.setUint32(12, mm.id);
  mm.bands.forEach((x, i) => {
    const at = 16 + 16 * i;
    b.setUint16(at, x.type === 'drop' ? 1 : 2);
    b.setUint16(at + 2, 16);
    b.setUint32(at + 4, x.rate);
    b.setUint32(at + 8, x.burst);
    if (x.type === 'dscp_remark') b.setUint8(at + 12, x.prec);
  });
  return new Uint8Array(b.buffer);
}

/** ovs_hex_dump with its ASCII column, as ofp_print prints a message it cannot decode. */
function hexDump(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let off = 0; off < bytes.length; off += 16) {
    const row = bytes.subarray(off, off + 16);
    let hex = '';
    for (let i = 0; i < 16; i++) {
      hex += i < row.length ? row[i]!.toString(16).padStart(2, '0') : '  ';
      hex += i === 7 ? '-' : ' ';
    }
    const ascii = [...row].map((c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.')).join('').padEnd(16);
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex}|${ascii}|`);
  }
  return lines.join('\n');
}

/** Ports as OVS lists them in replies: by number, LOCAL last. */
function portOrder(a: { ofport: number }, c: { ofport: number }): number {
  return a.ofport - c.ofport;
}

function portNumberText(n: number): string {
  return n === OFPP.LOCAL ? 'LOCAL' : String(n);
}

/** `dump-tables`: tables 0 to 253, runs of identical ones printed as "ditto". */
function tableStatsLines(b: Bridge, v: OfVersion): string[] {
  const out: string[] = [];
  let prev: string | null = null;
  let prevFeatures: string | null = null;
  let run: number[] = [];
  const flush = (): void => {
    if (run.length === 0) return;
    out.push('', run.length === 1 ? `  table ${run[0]}: ditto` : `  tables ${run[0]}...${run.at(-1)}: ditto`);
    run = [];
  };
  const sizes = b.tableSizes();
  for (let t = 0; t < 254; t++) {
    const active = sizes.get(t) ?? 0;
    const stats = `    active=${active}, lookup=0, matched=0`;
    const features = tableFeatures(v, t);
    if (prev !== null && stats === prev && features === prevFeatures) {
      run.push(t);
      continue;
    }
    flush();
    out.push('', `  table ${t}:`, stats);
    if (features !== '') out.push(features === prevFeatures ? '    (same features)' : features);
    prev = stats;
    prevFeatures = features;
  }
  flush();
  out.shift();
  return out;
}

/**
 * --sort/--rsort (compare_flows): by priority, or by a field's value; flows that do not match on
 * the field (or lack its prerequisites) go last either way; ties keep the dump's order.
 */
function sortFlows(rules: Rule[], field: string, reverse: boolean): Rule[] {
  const mf = field === 'priority' ? null : fieldByName(field)!;
  const key = (r: Rule): bigint | null => {
    if (!mf) return BigInt(r.priority);
    const m = r.match();
    if (!prereqsOk(mf.prereq, m.flow) || readField(m.wc, mf) === 0n) return null;
    return readField(m.flow, mf);
  };
  const keyed = rules.map((r, i) => ({ r, i, k: key(r) }));
  keyed.sort((a, b) => {
    if ((a.k === null) !== (b.k === null)) return a.k === null ? 1 : -1;
    if (a.k !== null && b.k !== null && a.k !== b.k) return (a.k < b.k ? -1 : 1) * (reverse ? -1 : 1);
    return a.i - b.i;
  });
  return keyed.map((x) => x.r);
}

/** What the switch sees of a flow mod sent in a protocol (ofputil_decode_flow_mod). */
export function switchView(fm: FlowMod, v: OfVersion, protocol: number): FlowMod {
  // The match: NXM and OXM send only what nx_put_raw sends; a standard OpenFlow 1.0/1.1 match
  // arrives as it was and the switch normalizes it.
  let match: Match;
  if (protocol & (P_OF10_NXM_ANY | P_ANY_OXM)) match = nxRoundTrip(fm.match, (protocol & P_ANY_OXM) !== 0);
  else {
    match = fm.match.clone();
    normalizeMatch(match);
  }
  // Only OpenFlow 1.4 and later carry a flow's importance.
  const out: FlowMod = { ...fm, match, actions: wire(fm.actions, v), importance: v >= 14 ? fm.importance : 0 };
  const ALL = 0xffffffffffffffffn;
  if (v === 10) {
    if (fm.command === 'add') out.flags |= FF.RESET_COUNTS;
    out.modifyCookie = out.newCookie !== ALL;
    if (fm.command === 'modify' || fm.command === 'modify_strict') out.mayAdd = out.newCookie !== ALL && out.cookieMask === 0n;
    if (protocol & P_OF10_STD_ANY && fm.command === 'add' && exactInOf10(fm.match)) out.priority = 65535;
  } else {
    if (fm.command === 'add') {
      if (v === 11) out.flags |= FF.RESET_COUNTS;
    } else if ((fm.command === 'modify' || fm.command === 'modify_strict') && v === 11 && fm.cookieMask === 0n) {
      out.mayAdd = true;
    } else {
      out.newCookie = ALL;
      out.modifyCookie = false;
      out.mayAdd = false;
    }
  }
  return out;
}

/**
 * What `ovs-ofctl --bundle add-flows BRIDGE -` does with these lines (each `add`, `modify[_strict]`
 * or `delete[_strict]` and a flow): parsed against the bridge's ports and TLV map, sent as
 * OpenFlow 1.4 in one bundle, applied all or nothing. Throws with ovs-ofctl's reason.
 */
export function bundleFlowText(b: Bridge, lines: string[]): void {
  const ctx = { ports: b.portMap(), tun: b.tun };
  const fms = lines.map((l) => {
    try {
      return switchView(parseFlowMod(l, null, ctx), 14, P.OF14_OXM);
    } catch (e) {
      if (e instanceof FieldError) throw new Error(`${l}: ${e.message}`);
      throw e;
    }
  });
  try {
    b.bundle(fms);
  } catch (e) {
    if (e instanceof OfError) throw new Error(`bundle refused by the switch: ${e.code}`);
    throw e;
  }
}

/**
 * What ofproto refuses while it decodes a flow mod in a bundle (ofproto_flow_mod_init), before
 * any commit: a read-only or nonexistent table, hidden fields set by a controller.
 */
function decodeRefusal(fm: FlowMod): string | null {
  if (fm.command === 'add') {
    if (fm.table === 254) return 'OFPBRC_EPERM';
    if (fm.table > 254 && fm.table !== 255) return 'OFPBRC_BAD_TABLE_ID';
    if (fm.match.flow[W.recirc_id] !== 0 || fm.match.flow[W.dp_hash] !== 0 || fm.match.wc[W.dp_hash] !== 0) return 'OFPBRC_EPERM';
  }
  return null;
}

/** The bridge's flows, groups and meters as they are now, and a function that puts them back. */
function snapshot(b: Bridge): () => void {
  const tables = new Map<number, Rule[]>();
  for (const r of b.flows()) {
    let list = tables.get(r.table);
    if (!list) tables.set(r.table, (list = []));
    list.push(r);
  }
  const groups = new Map([...b.groups].map(([id, g]) => [id, { ...g, buckets: [...g.buckets] }]));
  const meters = new Set(b.meters);
  return () => {
    for (const r of b.flows()) b.table(r.table).remove(r);
    for (const list of tables.values()) for (const r of list) b.table(r.table).insert(r);
    b.groups.clear();
    for (const [id, g] of groups) b.groups.set(id, g);
    b.meters.clear();
    for (const id of meters) b.meters.add(id);
  };
}

/** A group mod whose text may start with its command (`add`, `delete`, `modify`, … or a prefix of one), as a bundle file writes it. */
function parseGroupText(text: string, ctx: { ports: PortMap; tun: Bridge['tun'] }): GroupMod {
  const t = text.replace(/^[ \t\r\n]+/, '');
  const len = t.search(/[, \t\r\n]|$/);
  const word = t.slice(0, len);
  const commands: [string, GroupMod['command']][] = [['add', 'add'], ['delete', 'delete'], ['modify', 'modify'], ['add_or_mod', 'add_or_mod'], ['insert_bucket', 'insert_bucket'], ['remove_bucket', 'remove_bucket']];
  const hit = commands.find(([w]) => w.startsWith(word));
  return parseGroupMod(hit ? t.slice(len) : t, hit ? hit[1] : 'add', ctx);
}

/**
 * What the switch sees of a group mod sent in a protocol version: the buckets' actions as
 * decoded from it, and no selection method or hash fields from OpenFlow 1.1 to 1.4 (they are
 * OpenFlow 1.5 group properties; the Nicira OpenFlow 1.0 extension carries them too).
 */
function groupModView(gm: GroupMod, v: OfVersion): GroupMod {
  const props = v === 10 || v >= 15 ? {} : { selectionMethod: '', selectionParam: 0n, fields: [] };
  return { ...gm, ...props, buckets: gm.buckets.map((bk) => ({ ...bk, actions: wire(bk.actions, v) })) };
}

/** An OpenFlow 1.0 match with no wildcards at all (such a flow gets the highest priority). */
function exactInOf10(m: Match): boolean {
  const full = (w: number, mask: number): boolean => (m.wc[w]! & mask) >>> 0 === mask >>> 0;
  return full(W.in_port, 0xffff) && full(W.dl_src, 0xffff) && full(W.dl_src + 1, 0xffffffff) && full(W.dl_dst, 0xffff) && full(W.dl_dst + 1, 0xffffffff)
    && full(W.vlan0, 0xffff) && full(W.dl_type, 0xffff) && full(W.nw_tos, 0xfc) && full(W.nw_proto, 0xff) && full(W.nw_src, 0xffffffff)
    && full(W.nw_dst, 0xffffffff) && full(W.tp_src, 0xffff) && full(W.tp_dst, 0xffff);
}

/** A flow mod as ovs-ofctl prints a request (ofputil_flow_mod_format). */
function flowModText(fm: FlowMod, v: OfVersion): string {
  const cmd = { add: 'ADD', modify: 'MOD', modify_strict: 'MOD_STRICT', delete: 'DEL', delete_strict: 'DEL_STRICT' }[fm.command];
  let s = ` ${cmd}`;
  // A table of 255 (all) is 0 in an add, and in an OpenFlow 1.1+ modify too.
  const table = fm.table === 255 ? (fm.command === 'add' || (v >= 11 && (fm.command === 'modify' || fm.command === 'modify_strict')) ? 0 : 255) : fm.table;
  if (table !== 0) s += ` table:${table}`;
  s += ' ';
  s += formatMatch(fm.match, fm.priority);
  if (!s.endsWith(' ')) s += ' ';
  if (fm.newCookie !== 0n && fm.newCookie !== 0xffffffffffffffffn) s += `cookie:0x${fm.newCookie.toString(16)} `;
  if (fm.cookieMask !== 0n) s += `cookie:0x${fm.cookie.toString(16)}/0x${fm.cookieMask.toString(16)} `;
  if (fm.idle) s += `idle:${fm.idle} `;
  if (fm.hard) s += `hard:${fm.hard} `;
  if (fm.importance) s += `importance:${fm.importance} `;
  if (fm.outPort !== OFPP.NONE) s += `out_port:${fm.outPort} `;
  let flags = fm.flags;
  if (v <= 11) flags &= ~FF.RESET_COUNTS;
  if (flags & FF.SEND_FLOW_REM) s += 'send_flow_rem ';
  if (flags & FF.CHECK_OVERLAP) s += 'check_overlap ';
  if (flags & FF.RESET_COUNTS) s += 'reset_counts ';
  if (flags & FF.NO_PKT_COUNTS) s += 'no_packet_counts ';
  if (flags & FF.NO_BYT_COUNTS) s += 'no_byte_counts ';
  return `${s}actions=${formatActions(fm.actions)}`;
}

function groupModText(gm: GroupMod, v: OfVersion): string {
  const cmd = { add: 'ADD', modify: 'MOD', add_or_mod: 'ADD_OR_MOD', delete: 'DEL', insert_bucket: 'INSERT_BUCKET', remove_bucket: 'REMOVE_BUCKET' }[gm.command];
  const g: Group = { id: gm.id, type: gm.type ?? 'all', buckets: gm.buckets, selectionMethod: gm.selectionMethod, selectionParam: gm.selectionParam, fields: gm.fields, packets: 0, bytes: 0, created: 0 };
  let body = formatGroup(g, v).slice(1);
  if (gm.command === 'insert_bucket' || gm.command === 'remove_bucket') {
    body = `command_bucket_id:${gm.commandBucketId ?? 'all'},group_id=${gm.id}${gm.buckets.length ? `,${formatGroup(g, v).replace(/^ group_id=\d+,type=\w+,?/, '')}` : ''}`;
  }
  return ` ${cmd} ${body}`;
}

interface TlvSpec {
  index: number;
  optClass: number;
  type: number;
  len: number;
}

function parseTlvMaps(s: string): TlvSpec[] {
  const out: TlvSpec[] = [];
  const re = /\{\s*class=([^,]+),\s*type=([^,]+),\s*len=([^}]+)\}->tun_metadata(\d+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    out.push({ optClass: Number(m[1]), type: Number(m[2]), len: Number(m[3]), index: Number(m[4]) });
  }
  if (out.length === 0 && s.trim() !== '') throw new Fail(`ovs-ofctl: ${s}: unknown TLV map syntax`);
  return out;
}

function tlvTable(entries: TlvSpec[]): string[] {
  const lines = [' mapping table:', '  class  type  length  match field', ' ------  ----  ------  --------------'];
  for (const e of entries) {
    lines.push(` ${hexAlt(e.optClass).padStart(6)}  ${hexAlt(e.type).padStart(4)}  ${String(e.len).padStart(6)}  tun_metadata${e.index}`);
  }
  return lines;
}

/** Run a whole script; `#` lines are comments. */
export function runScript(text: string, opts: SimSwitchOptions = {}): CommandResult[] {
  const sw = new SimSwitch(opts);
  return text.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#')).map((l) => sw.run(l));
}
