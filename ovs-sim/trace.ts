// ofproto/trace for a simulated bridge: a flow string (`in_port=1,arp,arp_tpa=…`) or
// `in_port=N` plus a hex packet, printed in OVS's layout (Flow:, bridge("…"), one line per
// table step and action, Final flow:). Datapath actions are listed with OpenFlow port numbers.
import { type Bridge, formatFlowFields } from './bridge.js';
import { FIELDS, FieldError, mask, parseValue } from './fields.js';
import { type Packet, SHORTHANDS } from './match.js';
import { extract } from './packet.js';


/** A flow string or `in_port=N,HEX` to the packet to trace. */
export function tracePacket(spec: string): Packet {
  const hex = /^in_port=(\d+)[,\s]+([0-9a-fA-F]+)$/.exec(spec.trim());
  if (hex) return extract(Uint8Array.from(Buffer.from(hex[2]!, 'hex')), Number(hex[1]));
  const p: Packet = new Map();
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq < 0) {
      const sh = SHORTHANDS[item];
      if (!sh) throw new FieldError(`${item}: unknown keyword`);
      for (const [f, v] of sh) p.set(f, v);
      continue;
    }
    const spec2 = FIELDS.get(item.slice(0, eq));
    if (!spec2) throw new FieldError(`${item.slice(0, eq)}: unknown field`);
    p.set(spec2.name, parseValue(spec2, item.slice(eq + 1)) & mask(spec2.bits));
  }
  return p;
}

export function trace(bridge: Bridge, spec: string): string {
  const p = tracePacket(spec);
  const r = bridge.process(p);
  const last = r.final;
  const unchanged = [...new Set([...p.keys(), ...last.keys()])].every((k) => (p.get(k) ?? 0n) === (last.get(k) ?? 0n));
  const dp = [
    ...r.outputs.map((o) => String(o.port)),
    ...r.packetIns.map((pi) => `userspace(pid=0,controller(reason=${pi.userdata !== null ? 'action' : 'no_match'},cookie=0x${pi.cookie.toString(16)}${pi.userdata ? `,userdata=${pi.userdata}` : ''}))`),
  ];
  return [
    `Flow: ${formatFlowFields(p)}`,
    '',
    `bridge("${bridge.name}")`,
    '-'.repeat(bridge.name.length + 10),
    ...r.trace,
    '',
    `Final flow: ${unchanged ? 'unchanged' : formatFlowFields(last)}`,
    `Datapath actions: ${dp.length > 0 ? dp.join(',') : 'drop'}`,
  ].join('\n');
}
