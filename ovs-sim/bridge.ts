// A bridge: ports, 254 tables, flow mods (with all-or-nothing bundles), and the packet walk
// through the pipeline with an ofproto/trace-style record of every step.
import type { Action } from './actions.js';
import { formatAction } from './actions.js';
import { FIELDS, FieldError, type FieldName, type FieldRef, formatValue, mask } from './fields.js';
import { type FlowEntry, type FlowMod, formatFlowEntry, parseFlowMod } from './flow.js';
import { type Match, type Packet, formatMatch } from './match.js';
import { FlowTable } from './table.js';

export type PortType = 'internal' | 'dummy' | 'system' | 'patch' | 'vxlan' | 'geneve';

export interface BridgePort {
  name: string;
  ofport: number;
  type: PortType;
  externalIds: Map<string, string>;
  options: Map<string, string>;
}

/** What a packet's walk produced. */
export interface Output {
  port: number;
  packet: Packet;
}
export interface PacketInEvent {
  inPort: number;
  cookie: bigint;
  tableId: number;
  userdata: string | null;
  packet: Packet;
}
export interface WalkResult {
  outputs: Output[];
  packetIns: PacketInEvent[];
  trace: string[];
  /** The packet's fields when the walk ended. */
  final: Packet;
}

const MAX_RESUBMIT_DEPTH = 64;
const MAX_RESUBMITS = 4096;

function readRef(p: Packet, r: FieldRef): bigint {
  return ((p.get(r.spec.name) ?? 0n) >> BigInt(r.ofs)) & mask(r.nBits);
}
function writeRef(p: Packet, r: FieldRef, v: bigint): void {
  const m = mask(r.nBits) << BigInt(r.ofs);
  p.set(r.spec.name, ((p.get(r.spec.name) ?? 0n) & ~m) | ((v << BigInt(r.ofs)) & m));
}

export class Bridge {
  readonly ports = new Map<number, BridgePort>();
  /** Bumped whenever a port is added or removed, so callers can cache port lookups. */
  portsVersion = 0;
  private readonly tables = new Map<number, FlowTable>();

  constructor(readonly name: string) {}

  table(id: number): FlowTable {
    let t = this.tables.get(id);
    if (!t) this.tables.set(id, (t = new FlowTable()));
    return t;
  }

  // -- ports --

  addPort(name: string, type: PortType, opts: { ofportRequest?: number; externalIds?: Record<string, string>; options?: Record<string, string> } = {}): BridgePort {
    if ([...this.ports.values()].some((p) => p.name === name)) throw new FieldError(`port ${name} already exists on ${this.name}`);
    let ofport = opts.ofportRequest;
    if (ofport === undefined || this.ports.has(ofport)) {
      // OVS allocates the lowest free number from 1.
      ofport = 1;
      while (this.ports.has(ofport)) ofport += 1;
    }
    const port: BridgePort = {
      name, ofport, type, externalIds: new Map(Object.entries(opts.externalIds ?? {})), options: new Map(Object.entries(opts.options ?? {})),
    };
    this.ports.set(ofport, port);
    this.portsVersion += 1;
    return port;
  }

  removePort(name: string): BridgePort | undefined {
    const p = this.portByName(name);
    if (p) {
      this.ports.delete(p.ofport);
      this.portsVersion += 1;
    }
    return p;
  }

  portByName(name: string): BridgePort | undefined {
    return [...this.ports.values()].find((p) => p.name === name);
  }

  // -- flows --

  /** Apply flow mods all or nothing (a bundle); throws, changing nothing, on the first error. */
  bundle(lines: (string | FlowMod)[]): string[] {
    const mods = lines.map((l) => (typeof l === 'string' ? parseFlowMod(l) : l));
    for (const m of mods) for (const a of m.flow.actions) this.checkAction(a, m.flow.table);
    const warnings = mods.flatMap((m) => m.warnings);
    for (const m of mods) this.applyMod(m);
    return warnings;
  }

  private checkAction(a: Action, table: number): void {
    if (a.type === 'goto_table' && a.table <= table) throw new FieldError(`goto_table:${a.table} must go to a later table than ${table}`);
    if (a.type === 'output' && typeof a.port === 'string' && !this.portByName(a.port)) throw new FieldError(`${a.port}: unknown port`);
  }

  private applyMod(m: FlowMod): void {
    const f = m.flow;
    switch (m.command) {
      case 'add':
        this.table(f.table).insert(f);
        break;
      case 'modify_strict': {
        const old = this.table(f.table).findStrict(f.match, f.priority);
        if (old) old.actions = f.actions;
        else this.table(f.table).insert(f);
        break;
      }
      case 'delete_strict': {
        const old = this.table(f.table).findStrict(f.match, f.priority);
        if (old) this.table(f.table).remove(old);
        break;
      }
      case 'modify':
      case 'delete': {
        const tables = m.hasTable ? [f.table] : [...this.tables.keys()];
        for (const id of tables) {
          for (const old of [...this.table(id).all()]) {
            if (!subsumes(f.match, old.match)) continue;
            if (m.command === 'delete') this.table(id).remove(old);
            else old.actions = f.actions;
          }
        }
        break;
      }
    }
  }

  flows(): FlowEntry[] {
    const out: FlowEntry[] = [];
    for (const id of [...this.tables.keys()].sort((a, b) => a - b)) out.push(...[...this.table(id).all()].sort((a, b) => b.priority - a.priority));
    return out;
  }

  dumpFlows(): string {
    return this.flows().map(formatFlowEntry).join('\n');
  }

  // -- the packet walk --

  /** Run a packet through table 0. Records trace lines in OVS's format. */
  process(packet: Packet): WalkResult {
    const p = new Map(packet);
    const inPort = Number(p.get('in_port') ?? 0n);
    const out: WalkResult = { outputs: [], packetIns: [], trace: [], final: p };
    let resubmits = 0;
    // OVS nests a resubmit's steps under it (4 more columns for the step, 8 for its actions),
    // except a resubmit that ends an action list, which continues at the same level.
    const walk = (tableId: number, depth: number, indent: string, nested = false): void => {
      const flow = this.table(tableId).lookup(p);
      const label = `${String(tableId).padStart(2, ' ')}. `;
      if (!flow) {
        out.trace.push(`${indent}${label}No match.`, `${indent}${nested ? '        ' : '    '}drop`);
        return;
      }
      const m = formatMatch(flow.match);
      out.trace.push(`${indent}${label}${m === '' ? '' : `${m}, `}priority ${flow.priority}${flow.cookie !== 0n ? `, cookie 0x${flow.cookie.toString(16)}` : ''}`);
      const body = `${indent}${nested ? '        ' : '    '}`;
      if (flow.actions.length === 0) out.trace.push(`${body}drop`);
      flow.actions.forEach((a, i) => {
        out.trace.push(`${body}${formatAction(a)}`);
        const last = i === flow.actions.length - 1;
        switch (a.type) {
          case 'set_field':
            p.set(a.spec.name, a.value);
            break;
          case 'load':
            writeRef(p, a.dst, a.value);
            break;
          case 'move': {
            writeRef(p, a.dst, readRef(p, a.src));
            const v = readRef(p, a.dst);
            const shown = a.dst.ofs === 0 && a.dst.nBits === a.dst.spec.bits ? formatValue(a.dst.spec, v) : `0x${v.toString(16)}`;
            out.trace.push(`${body} -> ${a.dst.spec.nxm}[${a.dst.ofs === 0 && a.dst.nBits === a.dst.spec.bits ? '' : `${a.dst.ofs}..${a.dst.ofs + a.dst.nBits - 1}`}] is now ${shown}`);
            break;
          }
          case 'dec_ttl':
            p.set('nw_ttl', ((p.get('nw_ttl') ?? 0n) - 1n) & 0xffn);
            break;
          case 'output': {
            const port = typeof a.port === 'number' ? a.port : this.portByName(a.port)?.ofport;
            if (port === undefined) break;
            if (!this.ports.has(port)) out.trace.push(`${body} >> Nonexistent output port`);
            else if (port === inPort) out.trace.push(`${body} >> skipping output to input port`);
            else out.outputs.push({ port, packet: new Map(p) });
            break;
          }
          case 'in_port':
            out.outputs.push({ port: inPort, packet: new Map(p) });
            break;
          case 'controller':
            out.packetIns.push({ inPort, cookie: flow.cookie, tableId, userdata: a.userdata, packet: new Map(p) });
            break;
          case 'goto_table':
            walk(a.table, depth, indent, nested);
            break;
          case 'resubmit': {
            if (++resubmits > MAX_RESUBMITS || depth + 1 > MAX_RESUBMIT_DEPTH) {
              out.trace.push(`${body} >>>> over max translation depth ${MAX_RESUBMIT_DEPTH} <<<<`);
              break;
            }
            const savedPort = p.get('in_port');
            if (a.port !== null) p.set('in_port', BigInt(a.port));
            // A resubmit that ends the action list continues at the same level, as OVS prints it.
            if (last) walk(a.table ?? tableId, depth + 1, indent, nested);
            else walk(a.table ?? tableId, depth + 1, body, true);
            if (a.port !== null && savedPort !== undefined) p.set('in_port', savedPort);
            break;
          }
        }
      });
    };
    walk(0, 0, '');
    return out;
  }
}

/** Does the non-strict match `wide` cover flow match `m`? (every field of wide is in m, at least as specific) */
function subsumes(wide: Match, m: Match): boolean {
  for (const [k, f] of wide) {
    const g = m.get(k);
    if (!g || (g.mask & f.mask) !== f.mask || (g.value & f.mask) !== f.value) return false;
  }
  return true;
}

/** A flow as `ofproto/trace` prints it in `Flow:` and `Final flow:`. */
export function formatFlowFields(p: Packet): string {
  const parts: string[] = [];
  const dl = p.get('dl_type') ?? 0n;
  const proto = p.get('nw_proto') ?? 0n;
  const head = dl === 0x0806n ? 'arp' : dl === 0x0800n ? (proto === 1n ? 'icmp' : proto === 6n ? 'tcp' : proto === 17n ? 'udp' : 'ip') : `dl_type=0x${dl.toString(16).padStart(4, '0')}`;
  if (dl === 0x0806n || dl === 0x0800n) parts.push(head);
  const f = (name: FieldName): string => `${name}=${formatValue(FIELDS.get(name)!, p.get(name) ?? 0n)}`;
  for (let i = 0; i < 16; i++) if ((p.get(`reg${i}`) ?? 0n) !== 0n) parts.push(f(`reg${i}`));
  if ((p.get('tun_dst') ?? 0n) !== 0n || (p.get('tun_src') ?? 0n) !== 0n) {
    // As OVS 3.1 prints a tunnel in a trace's flows (tun_id is not among them).
    parts.push(f('tun_src'), f('tun_dst'), 'tun_ipv6_src=::', 'tun_ipv6_dst=::', 'tun_gbp_id=0', 'tun_gbp_flags=0', 'tun_tos=0', 'tun_ttl=0', 'tun_erspan_ver=0', 'gtpu_flags=0', 'gtpu_msgtype=0', 'tun_flags=0');
  }
  if ((p.get('metadata') ?? 0n) !== 0n) parts.push(f('metadata'));
  parts.push(f('in_port'), `vlan_tci=0x${(p.get('vlan_tci') ?? 0n).toString(16).padStart(4, '0')}`, f('dl_src'), f('dl_dst'));
  if (dl === 0x0806n) parts.push(f('arp_spa'), f('arp_tpa'), f('arp_op'), f('arp_sha'), f('arp_tha'));
  else if (dl === 0x0800n) {
    parts.push(f('nw_src'), f('nw_dst'));
    if (head === 'ip') parts.push(f('nw_proto'));
    parts.push(f('nw_tos'), 'nw_ecn=0', f('nw_ttl'), 'nw_frag=no');
    if (head !== 'ip') parts.push(head === 'icmp' ? `icmp_type=${p.get('tp_src') ?? 0n}` : f('tp_src'), head === 'icmp' ? `icmp_code=${p.get('tp_dst') ?? 0n}` : f('tp_dst'));
  } else {
    parts.push(head); // OVS ends a non-IP, non-ARP flow with its dl_type
  }
  return parts.join(',');
}

