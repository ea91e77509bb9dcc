// NeighborState decoding for the hot path: a large state is almost all neighbors, and the
// generated decoder spends most of its time making a subarray and a TextDecoder call per
// string. This one reads ASCII strings straight out of the Buffer (as latin1, which is the
// same text for ASCII) and gives exactly the object the generated decoder gives; any non-ASCII
// string goes through TextDecoder. Checked against NeighborState.decode by a property test.
import { type BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import type {
  NeighborConfiguration, NeighborConfiguration_AllowAddressPair, NeighborConfiguration_FixedIp, NeighborState,
} from '../proto/gen/alcor/neighbor.js';

const utf8 = new TextDecoder();

/** A length-delimited string at the reader's position, advancing it. */
function str(r: BinaryReader, buf: Buffer): string {
  const len = r.uint32();
  const start = r.pos;
  const end = start + len;
  if (end > r.len) throw new RangeError('premature EOF');
  r.pos = end;
  for (let i = start; i < end; i++) {
    if (buf[i]! >= 0x80) return utf8.decode(buf.subarray(start, end));
  }
  return buf.toString('latin1', start, end);
}

function fixedIp(r: BinaryReader, buf: Buffer, length: number): NeighborConfiguration_FixedIp {
  const end = r.pos + length;
  const m: NeighborConfiguration_FixedIp = { neighborType: 0, subnetId: '', ipAddress: '', arionGroup: '', tunnelId: 0 };
  while (r.pos < end) {
    const tag = r.uint32();
    switch (tag) {
      case 8: m.neighborType = r.int32(); break;
      case 18: m.subnetId = str(r, buf); break;
      case 26: m.ipAddress = str(r, buf); break;
      case 34: m.arionGroup = str(r, buf); break;
      case 40: m.tunnelId = r.uint32(); break;
      default:
        // As the generated decoder: an end-group or zero tag ends this message.
        if ((tag & 7) === WireType.EndGroup || tag === 0) return m;
        r.skip(tag & 7);
    }
  }
  return m;
}

function pair(r: BinaryReader, buf: Buffer, length: number): NeighborConfiguration_AllowAddressPair {
  const end = r.pos + length;
  const m: NeighborConfiguration_AllowAddressPair = { ipAddress: '', macAddress: '' };
  while (r.pos < end) {
    const tag = r.uint32();
    switch (tag) {
      case 10: m.ipAddress = str(r, buf); break;
      case 18: m.macAddress = str(r, buf); break;
      default:
        // As the generated decoder: an end-group or zero tag ends this message.
        if ((tag & 7) === WireType.EndGroup || tag === 0) return m;
        r.skip(tag & 7);
    }
  }
  return m;
}

function configuration(r: BinaryReader, buf: Buffer, length: number): NeighborConfiguration {
  const end = r.pos + length;
  const m: NeighborConfiguration = {
    revisionNumber: 0, requestId: '', id: '', updateType: 0, vpcId: '', name: '', macAddress: '',
    hostMacAddress: '', hostIpAddress: '', fixedIps: [], allowAddressPairs: [], securityGroupIds: [],
  };
  while (r.pos < end) {
    const tag = r.uint32();
    switch (tag) {
      case 8: m.revisionNumber = r.uint32(); break;
      case 18: m.requestId = str(r, buf); break;
      case 26: m.id = str(r, buf); break;
      case 32: m.updateType = r.int32(); break;
      case 42: m.vpcId = str(r, buf); break;
      case 50: m.name = str(r, buf); break;
      case 58: m.macAddress = str(r, buf); break;
      case 66: m.hostMacAddress = str(r, buf); break;
      case 74: m.hostIpAddress = str(r, buf); break;
      case 82: m.fixedIps.push(fixedIp(r, buf, r.uint32())); break;
      case 90: m.allowAddressPairs.push(pair(r, buf, r.uint32())); break;
      case 802: m.securityGroupIds.push(str(r, buf)); break; // field 100, our extension
      default:
        // As the generated decoder: an end-group or zero tag ends this message.
        if ((tag & 7) === WireType.EndGroup || tag === 0) return m;
        r.skip(tag & 7);
    }
  }
  return m;
}

/** Decode `length` bytes at the reader's position as a NeighborState. */
export function decodeNeighborState(r: BinaryReader, buf: Buffer, length: number): NeighborState {
  const end = r.pos + length;
  const m: NeighborState = { operationType: 0, configuration: undefined };
  while (r.pos < end) {
    const tag = r.uint32();
    switch (tag) {
      case 8: m.operationType = r.int32(); break;
      case 18: m.configuration = configuration(r, buf, r.uint32()); break;
      default:
        // As the generated decoder: an end-group or zero tag ends this message.
        if ((tag & 7) === WireType.EndGroup || tag === 0) return m;
        r.skip(tag & 7);
    }
  }
  return m;
}
