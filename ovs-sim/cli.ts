// The `ovs-sim` command: a script of `ovs-vsctl`, `ovs-ofctl` and `ovs-appctl ofproto/trace`
// command lines, written exactly as for real OVS, run against one simulated switch. Prints what
// each command prints; errors go where OVS puts them (`<tool>: <message>` on stderr).
import { readFileSync } from 'node:fs';
import { Bridge, type PortType } from './bridge.js';
import { formatFlowEntry, parseFlowMod } from './flow.js';
import { trace } from './trace.js';

/** Shell-like words: spaces separate, single and double quotes group, `\` escapes. */
export function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let any = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      any = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
    } else if (/\s/.test(c)) {
      if (cur !== '' || any) out.push(cur);
      cur = '';
      any = false;
    } else {
      cur += c;
    }
  }
  if (cur !== '' || any) out.push(cur);
  return out;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  status: number;
}

export class SimSwitch {
  readonly bridges = new Map<string, Bridge>();

  private bridge(name: string): Bridge {
    const b = this.bridges.get(name);
    if (!b) throw new Error(`no bridge named ${name}`);
    return b;
  }

  run(line: string): CommandResult {
    const argv = words(line);
    const tool = argv[0] ?? '';
    try {
      if (tool === 'ovs-vsctl') return { stdout: this.vsctl(argv.slice(1)), stderr: '', status: 0 };
      if (tool === 'ovs-ofctl') return { stdout: this.ofctl(argv.slice(1)), stderr: '', status: 0 };
      if (tool === 'ovs-appctl') return { stdout: this.appctl(argv.slice(1)), stderr: '', status: 0 };
      return { stdout: '', stderr: `${tool}: command not found`, status: 127 };
    } catch (e) {
      return { stdout: '', stderr: `${tool}: ${(e as Error).message}`, status: tool === 'ovs-appctl' ? 2 : 1 };
    }
  }

  private vsctl(args: string[]): string {
    const clauses: string[][] = [[]];
    for (const a of args) {
      if (a === '--') clauses.push([]);
      else if (!a.startsWith('--') || clauses.at(-1)!.length > 0) clauses.at(-1)!.push(a);
    }
    const out: string[] = [];
    let lastPort: { bridge: Bridge; name: string; type: PortType; ofportRequest?: number; externalIds: Record<string, string>; options: Record<string, string> } | null = null;
    const flush = (): void => {
      if (!lastPort) return;
      const { bridge, name, ...opts } = lastPort;
      bridge.removePort(name);
      bridge.addPort(name, opts.type, opts);
    };
    for (const c of clauses) {
      const [cmd, ...rest] = c;
      if (cmd === undefined) continue;
      switch (cmd) {
        case 'add-br':
          if (this.bridges.has(rest[0]!)) throw new Error(`cannot create a bridge named ${rest[0]} because a bridge named ${rest[0]} already exists`);
          this.bridges.set(rest[0]!, new Bridge(rest[0]!));
          this.bridge(rest[0]!).addPort(rest[0]!, 'internal', { ofportRequest: 65534 });
          break;
        case 'del-br':
          this.bridge(rest[0]!);
          this.bridges.delete(rest[0]!);
          break;
        case 'add-port': {
          flush();
          const b = this.bridge(rest[0]!);
          lastPort = { bridge: b, name: rest[1]!, type: 'system', externalIds: {}, options: {} };
          b.addPort(rest[1]!, 'system');
          break;
        }
        case 'del-port': {
          const b = rest.length > 1 ? this.bridge(rest[0]!) : [...this.bridges.values()].find((x) => x.portByName(rest[0]!));
          if (!b || !b.removePort(rest.at(-1)!)) throw new Error(`no port named ${rest.at(-1)}`);
          break;
        }
        case 'list-ports':
          out.push(...[...this.bridge(rest[0]!).ports.values()].filter((p) => p.name !== rest[0]).map((p) => p.name).sort());
          break;
        case 'set': {
          const [table, record, ...kvs] = rest;
          if (table === 'interface' && lastPort && lastPort.name === record) {
            for (const kv of kvs) {
              const [k, v = ''] = kv.split('=');
              if (k === 'type') lastPort.type = v as PortType;
              else if (k === 'ofport_request') lastPort.ofportRequest = Number(v);
              else if (k!.startsWith('options:')) lastPort.options[k!.slice(8)] = v;
              else if (k!.startsWith('external_ids:')) lastPort.externalIds[k!.slice(13)] = v;
            }
          }
          break;
        }
        default:
          throw new Error(`unknown command '${cmd}'; use --help for help`);
      }
    }
    flush();
    return out.join('\n');
  }

  private ofctl(args: string[]): string {
    let strict = false;
    const rest: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (a === '-O' || a === '--protocols') { i += 1; continue; }
      if (a.startsWith('-O')) continue;
      if (a === '--strict') { strict = true; continue; }
      if (a === '--bundle' || a === '--no-stats' || a === '--names' || a === '--no-names' || a === '--readd') continue;
      rest.push(a);
    }
    const [cmd, br, spec] = rest;
    const b = this.bridge(br!);
    switch (cmd) {
      case 'add-flow':
        b.bundle([parseFlowMod(spec!, 'add')]);
        return '';
      case 'add-flows': {
        const text = spec === '-' ? '' : readFileSync(spec!, 'utf8');
        b.bundle(text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')));
        return '';
      }
      case 'mod-flows':
        b.bundle([parseFlowMod(spec!, strict ? 'modify_strict' : 'modify')]);
        return '';
      case 'del-flows':
        b.bundle([parseFlowMod(spec ?? '', strict ? 'delete_strict' : 'delete')]);
        return '';
      case 'dump-flows':
        return b.flows().map(formatFlowEntry).join('\n');
      default:
        throw new Error(`unknown command '${cmd}'; use --help for help`);
    }
  }

  private appctl(args: string[]): string {
    const [cmd, br, ...spec] = args;
    if (cmd !== 'ofproto/trace') throw new Error(`"${cmd}" is not a valid command`);
    return trace(this.bridge(br!), spec.join(','));
  }
}

/** Run a whole script; `#` lines are comments. */
export function runScript(text: string): CommandResult[] {
  const sw = new SimSwitch();
  return text.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#')).map((l) => sw.run(l));
}
