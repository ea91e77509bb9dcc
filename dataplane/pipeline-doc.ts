// docs/pipeline.md, generated from dataplane/pipeline.ts (`npm run gen:docs`); a test fails when
// the committed file and the declaration drift apart.
import { BRIDGE, COOKIE, PRIORITY, PROGRAMMERS, PUNT, REGISTERS, TABLES, type TableSpec, TUNNEL_PORTS } from './pipeline.js';

export function pipelineMarkdown(): string {
  const lines: string[] = [
    '# The pipeline',
    '',
    '<!-- generated from dataplane/pipeline.ts by `npm run gen:docs`; do not edit -->',
    '',
    `One integration bridge, \`${BRIDGE}\`, with an explicit pipeline: no \`NORMAL\` action, every forwarding`,
    'decision is a flow. VM ports are found by `external_ids:iface-id = <port id>` (Nova), falling back to the',
    'interface name `tap` + the first 11 characters of the port id. Traffic between hosts uses flow-based tunnel',
    'ports (`remote_ip=flow`, `key=flow`); the subnet\'s network type picks the port.',
    '',
    '## Tables',
    '',
    'External bridges (one per `--bridge-mappings` entry, e.g. `ext:br-ex`) are the operator\'s, shared with the',
    'host: the agent adds a patch-port pair (`int-<bridge>` on br-int, `phy-<bridge>` on the bridge) and owns only',
    'the flows with its cookies there (docs/nat.md).',
    '',
    '| bridge | table | name | purpose | may match | on a miss |',
    '|---|---|---|---|---|---|',
  ];
  for (const t of Object.values(TABLES) as TableSpec[]) {
    lines.push(`| ${t.bridge ?? BRIDGE} | ${t.id} | \`${t.name}\`${t.reserved ? ' (reserved)' : ''} | ${t.purpose} | ${t.fields.map((f) => `\`${f}\``).join(' ')} | ${t.miss} |`);
  }
  lines.push('', 'Reserved tables are declared for features still to come and hold no flows yet; the stage before them', 'links straight to the next programmed one. A flow matching a field its table does not list (besides the', '`dl_type`/`nw_proto` prerequisites) is refused when it is built, naming the feature and the owner.', '');
  lines.push('## Registers', '', 'Declared once (`REGISTERS`); features match (`reg()`) and load (`load()`) them by name, never by field.', '', '| name | field | bits | holds |', '|---|---|---|---|');
  for (const [name, r] of Object.entries(REGISTERS)) lines.push(`| ${name} | \`${r.field}\` | ${r.ofs}..${r.ofs + r.nbits - 1} | ${r.purpose} |`);
  lines.push('', '## Tunnel ports', '', '| encapsulation | port | type | OpenFlow port |', '|---|---|---|---|');
  for (const [encap, p] of Object.entries(TUNNEL_PORTS)) lines.push(`| ${encap} | \`${p.name}\` | ${p.type} | ${p.ofport} |`);
  lines.push('', '## Cookies', '',
    `\`cookie = programmer << ${COOKIE.programmerShift} | hash48(owner)\`: the top byte names the programmer, the low 48 bits`,
    'are an FNV-1a hash of the owner (`port:<id>`, `neighbor:L2/<id>`, `subnet:<id>`, `flood-local:<vni>`, `flood-remote:<vni>`, `pipeline`,',
    '`tunnels`). The dataplane keeps the owners of every installed flow, so traces and `aca render --format json`',
    'name the resource behind each flow.', '', '| programmer | id | makes |', '|---|---|---|');
  for (const [name, p] of Object.entries(PROGRAMMERS)) lines.push(`| ${name} | 0x${p.id.toString(16).padStart(2, '0')} | ${p.purpose} |`);
  lines.push('', '## Priorities', '', '| name | value |', '|---|---|');
  for (const [name, v] of Object.entries(PRIORITY)) lines.push(`| ${name} | ${v} |`);
  lines.push('', '## Packet-ins', '', '| userdata | why |', '|---|---|');
  lines.push(`| ${PUNT.arpMiss} | ARP request for an address the network does not know (counted and logged; the on-demand engine will use it) |`);
  lines.push(`| ${PUNT.dhcp} | DHCP from a VM, for the agent's DHCP server |`);
  lines.push(`| ${PUNT.nextHopArp} | an ARP reply from an external gateway's next hop whose MAC the agent resolves (external bridge) |`);
  return `${lines.join('\n')}\n`;
}
