// The datapath running a packet: translate it (crediting the rules it hits), then execute the
// datapath actions in order: outputs and packet-ins go to the caller, ct() runs the packet
// through connection tracking, recirc() translates it again from the frozen state.
import type { Ofpact } from '../openflow/actions.js';
import type { Bridge } from '../switch/bridge.js';
import { type Flow, W } from '../base/flow.js';
import { flowHashSymmetricL4 } from '../base/hash.js';
import type { OdpAction } from './odp.js';
import { meterAdmits } from '../switch/meters.js';
import { type FrozenState, type Underlay, xlate } from './xlate.js';

export interface DatapathSinks {
  output?(port: number, flow: Flow, bridge: Bridge): void;
  packetIn?(a: Extract<OdpAction, { t: 'userspace' }>, bridge: Bridge): void;
}

export interface ExecOptions {
  /** Packet-out actions instead of a table lookup. */
  actions?: Ofpact[] | null;
  sinks?: DatapathSinks;
  underlay?: Underlay | null;
}

const MAX_RECIRCULATIONS = 32;

export function executeDatapath(bridge: Bridge, flow: Flow, packet: Uint8Array, opts: ExecOptions = {}, depth = 0, frozen: FrozenState | null = null): void {
  const r = xlate({
    bridge, flow, packet: true, trace: false, stats: { bytes: packet.length }, actions: depth === 0 ? opts.actions ?? null : null,
    underlay: opts.underlay ?? null, frozen, packetLength: packet.length,
  });
  if (r.error) return;
  run(bridge, r.odp, packet, opts, depth, flow);
}

/** VLAN headers a flow carries (each one more 4-byte tag on the wire). */
function vlans(f: Flow): number {
  return (f[W.vlan0]! !== 0 ? 1 : 0) + (f[W.vlan0 + 1]! !== 0 ? 1 : 0);
}

/** The netdev's transmit counters (what dump-ports shows) for every bridge port on that datapath port. */
function countOutput(bridge: Bridge, odpPort: number, bytes: number): void {
  for (const b of bridge.host.bridges.values()) {
    for (const p of b.ports.values()) {
      if (p.odpPort !== odpPort) continue;
      p.txPackets = (p.txPackets ?? 0) + 1;
      p.txBytes = (p.txBytes ?? 0) + bytes;
    }
  }
}

function run(bridge: Bridge, odp: OdpAction[], packet: Uint8Array, opts: ExecOptions, depth: number, inFlow: Flow): void {
  // The packet as the datapath has it: what the last ct() left, and the hash() it got.
  let current: Flow | null = null;
  let dpHash = 0;
  for (const a of odp) {
    switch (a.t) {
      case 'output':
        countOutput(bridge, a.port, packet.length + 4 * (vlans(a.flow) - vlans(inFlow)));
        opts.sinks?.output?.(a.port, a.flow, bridge);
        break;
      case 'userspace':
        opts.sinks?.packetIn?.(a, bridge);
        break;
      case 'ct': {
        const f = Uint32Array.from(a.flow);
        bridge.datapath.conntrack.execute(f, { zone: a.zone, commit: a.commit || a.force, force: a.force, mark: a.mark, label: a.label, nat: a.nat });
        current = f;
        break;
      }
      case 'hash':
        // The simulator's datapath hash: symmetric over L3/L4 like sym_l4, not bit-exact with
        // OVS's, never 0 (0 means "no hash yet").
        dpHash = flowHashSymmetricL4(current ?? inFlow, a.basis) || 1;
        break;
      case 'recirc': {
        const state = bridge.datapath.frozen.get(a.id) as FrozenState | undefined;
        bridge.datapath.frozen.delete(a.id);
        if (!state || depth >= MAX_RECIRCULATIONS) break;
        const f = Uint32Array.from(current ?? state.flow);
        f[W.recirc_id] = a.id;
        if (dpHash) f[W.dp_hash] = dpHash;
        executeDatapath(state.bridge, f, packet, opts, depth + 1, state);
        break;
      }
      case 'clone':
        run(bridge, a.actions, packet, opts, depth, inFlow);
        break;
      case 'meter':
        // A drop band over its rate: the packet goes no further.
        if (!meterAdmits(bridge, a.id, packet.length)) return;
        break;
      default:
        break;
    }
  }
}
