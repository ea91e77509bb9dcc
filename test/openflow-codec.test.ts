// The OpenFlow 1.4 codec alone (no switch): bytes of known messages, every action and field
// through encode and read-back decode, nat and userdata syntax as OVS has it, error names,
// foreign flows, and what the codec refuses to encode.
import test from 'ava';
import type { Action, Flow } from '../dataplane/flow.js';
import { eq, load, masked, output, resubmit, setField } from '../dataplane/flow.js';
import { ETH_TYPE, IP_PROTO, ipv4Value, macValue } from '../dataplane/fields.js';
import { REGISTERS } from '../dataplane/pipeline.js';
import { canonicalNat, formatNat, parseNat, userdataBytes } from '../dataplane/backends/openflow-args.js';
import {
  FlowEncodeError, RAW_MATCH, canonicalFlow, canonicalGroup, decodeFlowStats, decodeGroupDesc, decodeMeterConfig,
  writeBundleAdd, writeFlowMod, writeGroupMod, writeMeterMod,
} from '../dataplane/backends/openflow-codec.js';
import { FC, GC, MC, Writer, decodeError } from '../dataplane/backends/openflow-wire.js';
import { headerOf } from '../dataplane/backends/openflow-oxm.js';

/** A flow-stats reply entry holding what a flow-mod for `f` carries (match and instructions). */
function statsEntry(mod: Buffer, extra: { idle?: number; flags?: number } = {}): Buffer {
  const body = mod.subarray(8 + 40); // header, then cookie..importance
  const head = Buffer.alloc(48);
  head.writeUInt16BE(48 + body.length, 0);
  head[2] = mod[8 + 16]!; // table
  head.writeUInt16BE(mod.readUInt16BE(8 + 22), 12); // priority
  head.writeUInt16BE(extra.idle ?? 0, 14);
  head.writeUInt16BE(extra.flags ?? 0, 18);
  mod.copy(head, 24, 8, 16); // cookie
  return Buffer.concat([head, body]);
}

function roundTrip(f: Flow): Flow {
  const w = new Writer();
  writeFlowMod(w, 1, FC.ADD, f);
  const { flows, foreign } = decodeFlowStats([statsEntry(w.take())]);
  if (foreign.length > 0) throw new Error(foreign[0]!.reason);
  return flows[0]!;
}

const ip = eq('dl_type', ETH_TYPE.ip);

test('a flow-mod is laid out as OpenFlow 1.4 says: header, cookie, table, command, priority, OXM match, instructions', (t) => {
  const w = new Writer();
  writeFlowMod(w, 0x1234, FC.ADD, { table: 40, priority: 100, match: [eq('in_port', 7)], actions: [output(2)], cookie: 0xabn });
  const b = w.take();
  t.is(b.toString('hex'), [
    '050e0058', '00001234', // OF1.4 FLOW_MOD, length 88, xid
    '00000000000000ab', '0000000000000000', // cookie, cookie_mask
    '28', '00', '0000', '0000', '0064', // table 40, ADD, timeouts, priority 100
    'ffffffff', 'ffffffff', 'ffffffff', '0000', '0000', // buffer, out_port, out_group, flags, importance
    '0001000c', '80000004', '00000007', '00000000', // OXM match: in_port=7, padded
    '00040018', '00000000', '0000001000000002ffff000000000000'.replace('ffff', '0000'), // apply_actions: output:2
  ].join(''));
});

test('bundle add wraps the message with the same xid; group-mods and meter-mods as ovs-ofctl sends them', (t) => {
  const w = new Writer();
  writeBundleAdd(w, 9, 3, (out, xid) => writeFlowMod(out, xid, FC.DELETE_STRICT, { table: 1, priority: 2, match: [], actions: [output(1)], cookie: 5n }));
  const b = w.take();
  t.is(b.readUInt8(1), 34);
  t.is(b.readUInt16BE(2), b.length);
  t.is(b.readUInt32BE(4), 9);
  t.is(b.readUInt32BE(8), 3);
  t.is(b.readUInt16BE(14), 3); // atomic | ordered
  t.is(b.readUInt32BE(20), 9); // inner xid
  t.is(b.readUInt16BE(18), b.length - 16);
  t.is(b[16 + 8 + 17], FC.DELETE_STRICT);
  t.is(b.length, 16 + 56); // no instructions in a delete

  const g = new Writer();
  writeGroupMod(g, 1, GC.ADD, { id: 7, type: 'select', buckets: [{ actions: [output(2)] }, { actions: [output(3)], weight: 5 }] });
  const gb = g.take();
  t.is(gb.readUInt16BE(8), 0);
  t.is(gb[10], 1);
  t.is(gb.readUInt32BE(12), 7);
  t.is(gb.readUInt16BE(18), 1); // default weight of a select bucket
  t.is(gb.readUInt32BE(20), 0xffffffff); // watch_port ANY
  const m = new Writer();
  writeMeterMod(m, 1, MC.ADD, { id: 3, unit: 'kbps', rate: 1000, burst: 50 });
  t.is(m.take().toString('hex'), '051d0020000000010000000500000003000100100000 03e8 00000032 00000000'.replace(/ /g, ''));
});

test('every action and field survives encode → read-back decode', (t) => {
  const slice = { name: 'x', field: 'reg3' as const, ofs: 8, nbits: 8, purpose: '' };
  const cases: [Parameters<typeof eq>[0] | null, Action[], Flow['match']][] = [
    [null, [output(7), { type: 'in_port' }, resubmit(70), { type: 'output_reg', src: REGISTERS.outPort }], [eq('in_port', 65534)]],
    [null, [load(REGISTERS.network, 5001), load(REGISTERS.inPort, 9), load(slice, 0xab), setField('tun_id', 0x1389n), setField('tun_dst', ipv4Value('10.0.0.2')), setField('metadata', 1)], [eq('tun_id', 3), masked('metadata', 1, 0xff)]],
    [null, [{ type: 'move', src: { field: 'tun_id', ofs: 0, nbits: 24 }, dst: { field: 'metadata', ofs: 0, nbits: 24 } }, { type: 'controller', userdata: '01.02.0a' }, { type: 'controller', userdata: '' }], [eq('reg0', 1), masked('reg7', 2, 3)]],
    [null, [{ type: 'meter', id: 4 }, { type: 'group', id: 9 }], [eq('ct_state', 0x22), masked('ct_mark', 1, 1), eq('ct_zone', 3), eq('conj_id', 5)]],
    [null, [{ type: 'conjunction', id: 5, clause: 2, nClauses: 3 }], [ip, eq('nw_proto', IP_PROTO.udp), eq('tp_src', 68), masked('tp_dst', 0x40, 0xffc0)]],
    [null, [{ type: 'ct', commit: true, zone: { name: 'z', field: 'reg6', ofs: 16, nbits: 16, purpose: '' }, table: 20, nat: 'dst=[fe80::1]-[fe80::2]:80-81,hash' }, { type: 'ct_clear' }, { type: 'dec_ttl' }], [eq('dl_type', ETH_TYPE.ipv6), eq('ipv6_src', 1n), masked('ipv6_dst', 1n << 120n, 0xffn << 120n), eq('nw_ttl', 3)]],
    [null, [setField('arp_op', 2), setField('arp_sha', macValue('00:00:00:00:00:01')), setField('arp_spa', 1), setField('arp_tha', 2), setField('arp_tpa', 3), setField('dl_src', 4), setField('dl_dst', 5)], [eq('dl_type', ETH_TYPE.arp), eq('arp_op', 1), eq('arp_spa', 1), masked('arp_tpa', 0, 0xff), eq('arp_sha', 1), eq('arp_tha', 2), masked('dl_dst', 1, 1), eq('dl_src', 2)]],
    [null, [output(1)], [ip, eq('nw_proto', IP_PROTO.icmp), eq('icmp_type', 8), eq('icmp_code', 0), masked('nw_src', 0x0a000000, 0xff000000), eq('nw_dst', 1)]],
    [null, [output(1)], [eq('dl_type', ETH_TYPE.ipv6), eq('nw_proto', IP_PROTO.icmpv6), eq('icmp_type', 135)]],
    [null, [], []],
  ];
  for (const [, actions, match] of cases) {
    const f: Flow = { table: 3, priority: 10, match, actions, cookie: 0x0400_0000_0000_0001n };
    t.deepEqual(roundTrip(f), canonicalFlow(f));
  }
});

test('a load wider than 64 bits goes as 64-bit pieces (as OVS splits it) and reads back as one', (t) => {
  const f: Flow = { table: 0, priority: 1, match: [eq('dl_type', ETH_TYPE.ipv6)], actions: [load({ name: 'v6', field: 'ipv6_src', ofs: 0, nbits: 128, purpose: '' }, (5n << 64n) | 7n)], cookie: 0n };
  t.deepEqual(roundTrip(f), canonicalFlow(f));
});

test('transport ports follow nw_proto, ICMP fields follow dl_type', (t) => {
  t.deepEqual(headerOf('tp_dst', { nwProto: 6 }), { cls: 0x8000, field: 14, bytes: 2 });
  t.deepEqual(headerOf('tp_dst', { nwProto: 17 }), { cls: 0x8000, field: 16, bytes: 2 });
  t.deepEqual(headerOf('tp_src', { nwProto: 132 }), { cls: 0x8000, field: 17, bytes: 2 });
  t.deepEqual(headerOf('tp_src', { nwProto: 17 }, true), { cls: 0, field: 11, bytes: 2 });
  t.deepEqual(headerOf('icmp_type', { dlType: 0x86dd }), { cls: 0x8000, field: 29, bytes: 1 });
  t.throws(() => headerOf('tp_src', { nwProto: 1 }), { instanceOf: FlowEncodeError });
});

test('nat arguments parse and print as OVS does', (t) => {
  t.is(canonicalNat(''), '');
  t.is(canonicalNat('src'), 'src');
  t.is(canonicalNat('src,persistent'), 'src'); // format_NAT prints flags only with a range
  t.is(canonicalNat('dst=10.0.0.1-10.0.0.1'), 'dst=10.0.0.1');
  t.is(canonicalNat('random,src=10.0.0.1-10.0.0.5:100-200,persistent'), 'src=10.0.0.1-10.0.0.5:100-200,persistent,random');
  t.is(canonicalNat('src=fe80:0:0:0:0:0:0:1'), 'src=fe80::1');
  t.is(canonicalNat('src=[2001:db8::1]:80'), 'src=[2001:db8::1]:80');
  t.is(formatNat(parseNat('dst=1::-1::2')), 'dst=1::-1::2');
  for (const bad of ['src,dst', 'hash,random,src=1.2.3.4', 'persistent', 'src=1.2.3', 'src=10.0.0.5-10.0.0.1', 'bogus', 'src=1.2.3.4:70000']) {
    t.throws(() => parseNat(bad), { instanceOf: FlowEncodeError }, bad);
  }
});

test('controller userdata: hex bytes as ovs-ofctl takes them', (t) => {
  t.deepEqual([...userdataBytes('01.02')], [1, 2]);
  t.deepEqual([...userdataBytes('0a0B')], [10, 11]);
  t.throws(() => userdataBytes('0x01'), { instanceOf: FlowEncodeError });
  t.throws(() => userdataBytes('1'), { instanceOf: FlowEncodeError });
  t.is(canonicalFlow({ table: 0, priority: 0, match: [], actions: [{ type: 'controller', userdata: '0102' }], cookie: 0n }).actions[0]!.type, 'controller');
  t.deepEqual(canonicalFlow({ table: 0, priority: 0, match: [], actions: [{ type: 'controller', userdata: '0102' }], cookie: 0n }).actions, [{ type: 'controller', userdata: '01.02' }]);
});

test('what the codec refuses to encode', (t) => {
  const bad = (actions: Action[], match: Flow['match'] = [], extra: Partial<Flow> = {}): void => {
    t.throws(() => writeFlowMod(new Writer(), 1, FC.ADD, { table: 0, priority: 1, match, actions, cookie: 0n, ...extra }), { instanceOf: FlowEncodeError });
  };
  bad([output(1), { type: 'meter', id: 1 }]);
  bad([{ type: 'conjunction', id: 1, clause: 3, nClauses: 2 }]);
  bad([{ type: 'move', src: { field: 'reg0', ofs: 0, nbits: 8 }, dst: { field: 'reg1', ofs: 0, nbits: 16 } }]);
  bad([{ type: 'load', dst: { name: 'r', field: 'reg0', ofs: 30, nbits: 4, purpose: '' }, value: 1n }]);
  bad([{ type: 'ct', commit: false, zone: REGISTERS.inPort, table: null, nat: null }]);
  bad([output(1)], [eq('tp_dst', 80)]);
  bad([], [], { table: 255 });
  t.throws(() => writeFlowMod(new Writer(), 1, FC.ADD, { table: 0, priority: 1, match: [], actions: Array.from({ length: 5000 }, () => output(1)), cookie: 0n }), { instanceOf: RangeError });
});

test('OpenFlow errors decode to OVS\'s names', (t) => {
  const body = (type: number, code: number, vendor?: number): Buffer => {
    const b = Buffer.alloc(vendor === undefined ? 8 : 12);
    b.writeUInt16BE(type, 0);
    b.writeUInt16BE(code, 2);
    if (vendor !== undefined) b.writeUInt32BE(vendor, 4);
    return b;
  };
  t.is(decodeError(body(5, 1)).name, 'OFPFMFC_TABLE_FULL');
  t.is(decodeError(body(2, 4)).name, 'OFPBAC_BAD_OUT_PORT');
  t.is(decodeError(body(2, 9)).name, 'OFPBAC_BAD_OUT_GROUP');
  t.is(decodeError(body(17, 13)).name, 'OFPBFC_MSG_FAILED');
  t.is(decodeError(body(0xffff, 15, 0x2320)).name, 'NXBAC_BAD_CONJUNCTION');
  t.is(decodeError(body(99, 1)).name, 'OFPET(99,1)');
});

test('foreign flows: fields, actions, timeouts and flags the model lacks; a raw match is kept for delete_strict', (t) => {
  const w = new Writer();
  writeFlowMod(w, 1, FC.ADD, { table: 3, priority: 9, match: [eq('in_port', 1)], actions: [output(2)], cookie: 1n });
  const entry = statsEntry(w.take());
  // Patch the OXM in_port (0x80000004) into VLAN_VID (0x80000c02 + 2 bytes pad) — a field we do not model.
  const vlan = Buffer.from(entry);
  vlan.writeUInt32BE(0x80000c02, 52);
  vlan.writeUInt16BE(0x000a, 56);
  vlan.writeUInt16BE(10, 50); // match length 4 + 6
  const timed = statsEntry(w.take(), { idle: 30 });
  const resetCounts = statsEntry(w.take(), { flags: 4 });
  const out = decodeFlowStats([Buffer.concat([vlan, timed, resetCounts])]);
  t.is(out.flows.length, 1); // reset_counts alone is not foreign
  t.deepEqual(out.foreign.map((f) => f.reason), ['match fields 8000:6', 'timeouts']);
  const raw = (out.foreign[0] as unknown as Record<symbol, Buffer>)[RAW_MATCH]!;
  t.is(raw.readUInt32BE(4), 0x80000c02);
  // delete_strict of the foreign flow sends its match bytes as they were.
  const del = new Writer();
  writeFlowMod(del, 2, FC.DELETE_STRICT, { ...out.foreign[0]! });
  t.true(del.take().subarray(48).equals(raw));
});

test('groups and meters read back; foreign ones say why', (t) => {
  const g = new Writer();
  writeGroupMod(g, 1, GC.ADD, { id: 7, type: 'ff', buckets: [{ actions: [output(2)], watchPort: 2 }] });
  const mod = g.take();
  // A group-desc entry: length, type, pad, id, then the buckets as in the mod.
  const entry = Buffer.concat([Buffer.from([0, 0, 3, 0, 0, 0, 0, 7]), mod.subarray(16)]);
  entry.writeUInt16BE(entry.length, 0);
  t.deepEqual(decodeGroupDesc([entry]).groups, [{ id: 7, type: 'ff', buckets: [{ actions: [output(2)], watchPort: 2 }] }]);
  t.deepEqual(canonicalGroup({ id: 1, type: 'select', buckets: [{ actions: [], weight: 1 }] }), { id: 1, type: 'select', buckets: [{ actions: [] }] });

  const m = new Writer();
  writeMeterMod(m, 1, MC.ADD, { id: 3, unit: 'pktps', rate: 10, burst: 2 });
  const meterEntry = m.take().subarray(8);
  const cfg = Buffer.concat([Buffer.from([0, 0]), meterEntry.subarray(2)]);
  cfg.writeUInt16BE(cfg.length, 0);
  t.deepEqual(decodeMeterConfig([cfg]), { meters: [{ id: 3, unit: 'pktps', rate: 10, burst: 2 }], foreign: [] });
  const stats = Buffer.from(cfg);
  stats.writeUInt16BE(2 | 4 | 8, 2);
  t.deepEqual(decodeMeterConfig([stats]).foreign.map((x) => x.reason), ['flags 0xe']);
});

test('the writer stores what Buffer\'s big-endian writes store, and refuses a value that does not fit as they do', (t) => {
  const values = [0, 1, 0xff, 0x100, 0xabcd, 0xffff, 0x10000, 0x12345678, 0xffffffff, 2 ** 40 + 5, 2 ** 48 - 1, Number.MAX_SAFE_INTEGER];
  for (const v of values) {
    const w = new Writer(4);
    const want = Buffer.alloc(64);
    let at = 0;
    if (v <= 0xffff) {
      w.u16(v);
      at = want.writeUInt16BE(v, at);
    }
    w.u32(v);
    at = want.writeUInt32BE(v >>> 0, at);
    w.u64(BigInt(v));
    at = want.writeBigUInt64BE(BigInt(v), at);
    w.u64(BigInt(v) << 11n);
    at = want.writeBigUInt64BE(BigInt(v) << 11n, at);
    for (const bytes of [1, 2, 3, 4, 5, 6]) {
      if (v >= 2 ** (8 * bytes)) {
        t.throws(() => w.uint(BigInt(v), bytes), { instanceOf: RangeError }, `${v} in ${bytes} bytes`);
        t.throws(() => Buffer.alloc(8).writeUIntBE(v, 0, bytes), { instanceOf: RangeError });
        continue;
      }
      w.uint(BigInt(v), bytes);
      const b = Buffer.alloc(bytes);
      b.writeUIntBE(v, 0, bytes);
      b.copy(want, at);
      at += bytes;
    }
    t.deepEqual(w.buf.subarray(0, w.len), want.subarray(0, at), `value ${v}`);
  }
  const w = new Writer();
  t.throws(() => w.u16(0x10000), { instanceOf: RangeError });
  t.throws(() => w.u16(-1), { instanceOf: RangeError });
  t.throws(() => w.u64(-1n), { instanceOf: RangeError });
  t.throws(() => w.u64(1n << 64n), { instanceOf: RangeError });
  t.is(w.len, 0, 'nothing written by a refused value');
});
