// Goal states as the intake reads them: one resource state at a time, by kind, with its V2 map
// key. Three sources: a decoded V1 GoalState, a decoded GoalStateV2, and raw GoalStateV2 bytes
// decoded lazily — a controller's state can hold a million neighbors, and decoding them one at
// a time keeps only one protobuf object alive instead of a million.
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { DHCPState } from '../proto/gen/alcor/dhcp.js';
import { GatewayState } from '../proto/gen/alcor/gateway.js';
import { type GoalState, type GoalStateV2, GoalStateV2_HostResourcesEntry, type HostResources } from '../proto/gen/alcor/goalstate.js';
import { NeighborState } from '../proto/gen/alcor/neighbor.js';
import { PortState } from '../proto/gen/alcor/port.js';
import { RouterState } from '../proto/gen/alcor/router.js';
import { SecurityGroupState } from '../proto/gen/alcor/securitygroup.js';
import { SubnetState } from '../proto/gen/alcor/subnet.js';
import { VpcState } from '../proto/gen/alcor/vpc.js';
import type { Kind } from '../dataplane/model.js';
import { decodeNeighborState } from './neighbor-decoder.js';
import type { StateOf } from './normalize.js';

export interface GoalStateSource {
  /** How many states of a kind; with `slice`, a kind can be visited a part at a time. */
  size(kind: Kind): number;
  /**
   * Visit the states of a kind from index `from` up to (not including) `to`, in message order.
   * A state that cannot be decoded is `Error`.
   */
  slice<K extends Kind>(kind: K, from: number, to: number, visit: (state: StateOf[K] | Error, mapKey: string | undefined) => void): void;
  count(): number;
}

export function fromV1(g: GoalState): GoalStateSource {
  const lists: { [K in Kind]: StateOf[K][] } = {
    vpc: g.vpcStates, subnet: g.subnetStates, port: g.portStates, neighbor: g.neighborStates,
    securityGroup: g.securityGroupStates, dhcp: g.dhcpStates, router: g.routerStates, gateway: g.gatewayStates,
  };
  return {
    size: (kind) => lists[kind].length,
    slice(kind, from, to, visit) {
      const l = lists[kind];
      for (let i = from; i < to && i < l.length; i++) visit(l[i]!, undefined);
    },
    count: () => Object.values(lists).reduce((n, l) => n + l.length, 0),
  };
}

export function fromV2(g: GoalStateV2): GoalStateSource {
  const maps: { [K in Kind]: Record<string, StateOf[K]> } = {
    vpc: g.vpcStates, subnet: g.subnetStates, port: g.portStates, neighbor: g.neighborStates,
    securityGroup: g.securityGroupStates, dhcp: g.dhcpStates, router: g.routerStates, gateway: g.gatewayStates,
  };
  const entries = new Map<Kind, [string, unknown][]>();
  const entriesOf = (kind: Kind): [string, unknown][] => {
    let e = entries.get(kind);
    if (!e) entries.set(kind, (e = Object.entries(maps[kind])));
    return e;
  };
  return {
    size: (kind) => entriesOf(kind).length,
    slice(kind, from, to, visit) {
      const l = entriesOf(kind);
      for (let i = from; i < to && i < l.length; i++) visit(l[i]![1] as StateOf[typeof kind], l[i]![0]);
    },
    count: () => Object.values(maps).reduce((n, m) => n + Object.keys(m).length, 0),
  };
}

const CODECS: { [K in Kind]: { decode(r: BinaryReader, len: number): StateOf[K] } } = {
  vpc: VpcState, subnet: SubnetState, port: PortState, neighbor: NeighborState,
  securityGroup: SecurityGroupState, dhcp: DHCPState, router: RouterState, gateway: GatewayState,
};

/** GoalStateV2 field numbers of the state maps. */
const FIELD_KINDS: Record<number, Kind> = {
  3: 'vpc', 4: 'subnet', 5: 'port', 6: 'dhcp', 7: 'neighbor', 8: 'securityGroup', 9: 'router', 10: 'gateway',
};

export class UndecodableError extends Error {}

/** A GoalStateV2 whose map entries are located but not yet decoded. */
export interface LazyGoalStateV2 extends GoalStateSource {
  formatVersion: number;
  hostResources: Record<string, HostResources>;
  bytes: number;
}

/**
 * Scan a GoalStateV2's top level: decode `format_version` and `host_resources`, and record where
 * each state map entry's key and value lie. Throws UndecodableError if the framing is broken;
 * a state whose own bytes are broken is reported per resource by slice.
 */
export function scanGoalStateV2(buf: Uint8Array): LazyGoalStateV2 {
  const reader = new BinaryReader(buf);
  // Per kind: [keyStart, keyLen, valueStart, valueLen] (valueStart -1 = no value), flat.
  const spans = new Map<Kind, number[]>();
  const hostResources: Record<string, HostResources> = {};
  let formatVersion = 0;
  let total = 0;
  try {
    while (reader.pos < reader.len) {
      const [field, wire] = reader.tag();
      const kind = FIELD_KINDS[field];
      if (kind !== undefined && wire === WireType.LengthDelimited) {
        const len = reader.uint32();
        const end = reader.pos + len;
        if (end > reader.len) throw new UndecodableError(`map entry of field ${field} overruns the message`);
        let keyStart = -1;
        let keyLen = 0;
        let valueStart = -1;
        let valueLen = 0;
        while (reader.pos < end) {
          const [f, w] = reader.tag();
          if (f === 1 && w === WireType.LengthDelimited) {
            keyLen = reader.uint32();
            keyStart = reader.pos;
            reader.pos += keyLen;
          } else if (f === 2 && w === WireType.LengthDelimited) {
            valueLen = reader.uint32();
            valueStart = reader.pos;
            reader.pos += valueLen;
          } else {
            reader.skip(w, f);
          }
        }
        if (reader.pos !== end) throw new UndecodableError(`map entry of field ${field} is malformed`);
        let list = spans.get(kind);
        if (!list) spans.set(kind, (list = []));
        list.push(keyStart, keyLen, valueStart, valueLen);
        total += 1;
      } else if (field === 1 && wire === WireType.Varint) {
        formatVersion = reader.uint32();
      } else if (field === 2 && wire === WireType.LengthDelimited) {
        const entry = GoalStateV2_HostResourcesEntry.decode(reader, reader.uint32());
        if (entry.value !== undefined) hostResources[entry.key] = entry.value;
      } else {
        reader.skip(wire, field);
      }
      if (reader.pos > reader.len) throw new UndecodableError('field overruns the message');
    }
  } catch (e) {
    if (e instanceof UndecodableError) throw e;
    throw new UndecodableError((e as Error).message);
  }
  const decoder = new TextDecoder();
  const bytes = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    formatVersion,
    hostResources,
    bytes: buf.length,
    count: () => total,
    size: (kind) => (spans.get(kind)?.length ?? 0) / 4,
    slice(kind, from, to, visit) {
      const list = spans.get(kind);
      if (!list) return;
      const codec = CODECS[kind];
      for (let i = from * 4; i < list.length && i < to * 4; i += 4) {
        const keyStart = list[i]!;
        const mapKey = keyStart < 0 ? '' : decoder.decode(buf.subarray(keyStart, keyStart + list[i + 1]!));
        const valueStart = list[i + 2]!;
        let state: StateOf[typeof kind] | Error;
        try {
          // proto3: an absent map value is the default message
          reader.pos = valueStart < 0 ? 0 : valueStart;
          const len = valueStart < 0 ? 0 : list[i + 3]!;
          state = kind === 'neighbor' ? decodeNeighborState(reader, bytes, len) as StateOf[typeof kind] : codec.decode(reader, len);
        } catch (e) {
          state = new Error(`undecodable state: ${(e as Error).message}`);
        }
        visit(state, mapKey);
      }
    },
  };
}
