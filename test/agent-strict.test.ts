// Strict inputs, as a user meets them: `aca push` refuses misspelled fields, a file of the other
// version, empty files (exit 2, a clear message, nothing sent); it gives up on an agent that
// cannot be reached; `aca ctl flows --bridge` of an unknown bridge is an error; `ovs-sim` prints
// no stack trace; gateways say they are stored, not programmed (security groups are programmed).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { NOT_PROGRAMMED } from '../agent/intake.js';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { freePort, pushOne, withAgent } from './helpers/agents.js';

const aca = new URL('../bin/aca.mjs', import.meta.url).pathname;
const ovsSim = new URL('../bin/ovs-sim.mjs', import.meta.url).pathname;
const fixture = (name: string): string => new URL(`./fixtures/${name}`, import.meta.url).pathname;
const run = (bin: string, args: string[], input?: string) => execa(process.execPath, [bin, ...args], { reject: false, ...(input !== undefined ? { input } : {}) });
const dir = mkdtempSync(join(tmpdir(), 'aca-strict-'));
const file = (name: string, text: string | Uint8Array): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

// Files are checked before anything is sent: these run against an address nobody listens on,
// and must fail on the file, not on the connection.
let nobody = '';
test.before(async () => { nobody = `127.0.0.1:${await freePort()}`; });

test('aca push: a misspelled field is refused with the field, a suggestion and exit 2', async (t) => {
  const path = file('typo.json', JSON.stringify({ port_state: { P1: { operation_type: 'CREATE', configuration: { id: 'P1' } } } }));
  const r = await run(aca, ['push', path, '--agent', nobody]);
  t.is(r.exitCode, 2);
  t.regex(r.stderr, /typo\.json is not a valid GoalStateV2: port_state: GoalStateV2 has no field "port_state" \(did you mean "port_states"\?\)/);
  t.notRegex(r.stderr, /\n\s+at /, 'no stack trace');
  const deep = file('deep.json', JSON.stringify({ port_states: { P1: { operation_type: 'CREATE', configuration: { id: 'P1', mac_adress: 'fa:16:3e:00:00:01' } } } }));
  const d = await run(aca, ['push', deep, '--agent', nobody]);
  t.is(d.exitCode, 2);
  t.regex(d.stderr, /port_states\.P1\.configuration\.mac_adress: PortConfiguration has no field "mac_adress" \(did you mean "mac_address"\?\)/);
});

test('aca push: a V2 file with --v1, and a V1 file without it, are named as the other version', async (t) => {
  const v2 = await run(aca, ['push', '--v1', fixture('ncm-port-create.json'), '--agent', nobody]);
  t.is(v2.exitCode, 2);
  t.regex(v2.stderr, /is not a valid GoalState: .*must be a list, got an object.*this looks like a GoalStateV2 \(maps keyed by id\): push it without --v1/);
  const v1 = await run(aca, ['push', fixture('v1-goalstate.json'), '--agent', nobody]);
  t.is(v1.exitCode, 2);
  t.regex(v1.stderr, /is not a valid GoalStateV2: .*must be a map .*this looks like a V1 GoalState \(lists\): push it with --v1/);
});

test('aca push: empty files and files without resources are refused', async (t) => {
  for (const [name, text, why] of [
    ['empty.json', '', /empty\.json is empty: nothing to push/],
    ['blank.json', '  \n', /blank\.json is empty: nothing to push/],
    ['object.json', '{}', /object\.json holds no resources: nothing to push/],
    ['only-version.json', '{"format_version": 1}', /only-version\.json holds no resources/],
  ] as const) {
    const r = await run(aca, ['push', file(name, text), '--agent', nobody]);
    t.is(r.exitCode, 2, name);
    t.regex(r.stderr, why, name);
  }
  // A binary V1 GoalState is not a GoalStateV2: it decodes only in part, or not at all.
  const bin = file('v2-as-garbage.bin', Buffer.from([0x12, 0x03, 0x0a, 0x01, 0x41, 0xff, 0xff]));
  const b = await run(aca, ['push', bin, '--agent', nobody]);
  t.is(b.exitCode, 2);
  t.regex(b.stderr, /v2-as-garbage\.bin (is neither JSON nor a binary GoalStateV2|decodes as a GoalStateV2 only in part)/);
});

test('aca push: an agent that cannot be reached fails after --connect-timeout with exit 2', async (t) => {
  const r = await run(aca, ['push', fixture('ncm-port-create.json'), '--agent', nobody, '--connect-timeout', '1']);
  t.is(r.exitCode, 2);
  t.regex(r.stderr, new RegExp(`cannot connect to the agent at ${nobody} within 1 s`));
  const bad = await run(aca, ['push', fixture('ncm-port-create.json'), '--connect-timeout', 'soon']);
  t.is(bad.exitCode, 2);
  t.regex(bad.stderr, /--connect-timeout must be a number of seconds/);
});

test('aca ctl flows --bridge: an unknown bridge is an error; a known one lists its flows', async (t) => {
  await withAgent(async (agent) => {
    const admin = `127.0.0.1:${agent.adminPort}`;
    const bad = await run(aca, ['ctl', 'flows', '--bridge', 'nosuch', '--admin', admin]);
    t.is(bad.exitCode, 2);
    t.regex(bad.stderr, /no bridge nosuch: this agent programs br-int/);
    const good = await run(aca, ['ctl', 'flows', '--bridge', 'br-int', '--admin', admin]);
    t.is(good.exitCode, 0, good.stderr);
    t.regex(good.stdout, /^table=0,/m);
  });
});

test('ovs-sim: --help, an unknown option and a missing file print no stack trace', async (t) => {
  const help = await run(ovsSim, ['--help']);
  t.is(help.exitCode, 0);
  t.regex(help.stdout, /usage: ovs-sim \[SCRIPT\]/);
  const opt = await run(ovsSim, ['--frobnicate']);
  t.is(opt.exitCode, 1);
  t.is(opt.stderr, "ovs-sim: unrecognized option '--frobnicate' (use --help for help)");
  const missing = await run(ovsSim, [join(dir, 'no-such-script')]);
  t.is(missing.exitCode, 1);
  t.regex(missing.stderr, /^ovs-sim: .*no-such-script: No such file or directory$/);
  const ok = await run(ovsSim, [], 'ovs-vsctl add-br br0\novs-ofctl dump-flows br0\n');
  t.is(ok.exitCode, 0, ok.stderr);
});

// NOT_PROGRAMMED lists the kinds not programmed yet; when a feature lands its entry goes, and
// this test then expects no detail for that kind. Gateways: only ZETA ones are programmed.
test('kinds not programmed yet (gateways) answer SUCCESS with "stored; not programmed", counted in /metrics; programmed kinds and deletes say nothing', async (t) => {
  t.deepEqual(Object.keys(NOT_PROGRAMMED), ['gateway'], 'routers and security groups are programmed');
  await withAgent(async (agent, addr) => {
    const gs = GoalStateV2.fromJSON({
      security_group_states: { SG: { operation_type: 'CREATE', configuration: { id: 'SG', name: 'sg', security_group_rules: [{ id: 'r1', security_group_id: 'SG', direction: 'INGRESS', ethertype: 'IPV4', protocol: 'TCP', port_range_min: 22, port_range_max: 22, remote_ip_prefix: '0.0.0.0/0' }] } } },
      gateway_states: {
        G: { operation_type: 'CREATE', configuration: { id: 'G', gateway_type: 'TGW', destinations: [{ ip_address: '10.0.0.99', mac_address: 'fa:16:3e:00:00:99' }] } },
        Z: { operation_type: 'CREATE', configuration: { id: 'Z', gateway_type: 'ZETA', destinations: [{ ip_address: '10.0.0.98', mac_address: 'fa:16:3e:00:00:98' }] } },
      },
      subnet_states: { S: { operation_type: 'INFO', configuration: { id: 'S', vpc_id: 'V', cidr: '10.1.0.0/24', tunnel_id: '5001', network_type: 'VXLAN' } } },
    });
    const r = await pushOne(addr, gs);
    const by = new Map(r.operationStatuses.map((s) => [s.resourceId, s]));
    const metrics = await (await fetch(`http://127.0.0.1:${agent.adminPort}/metrics`)).text();
    for (const [id, kind] of [['SG', 'securityGroup'], ['G', 'gateway']] as const) {
      t.is(by.get(id)?.operationStatus, OperationStatus.SUCCESS, id);
      const note = NOT_PROGRAMMED[kind];
      if (note) {
        t.regex(note, /^stored; not programmed: /);
        t.is(by.get(id)?.statusDetail, note, id);
        t.regex(metrics, new RegExp(`\\naca_resources_not_programmed_total\\{kind="${kind}"\\} 1\\n`));
      } else {
        t.notRegex(by.get(id)?.statusDetail ?? '', /not programmed/, id);
      }
    }
    t.is(by.get('S')?.statusDetail, '', 'programmed kinds say nothing');
    t.is(by.get('Z')?.statusDetail, '', 'a ZETA gateway is programmed (docs/zeta.md)');
    t.is(by.get('Z')?.operationStatus, OperationStatus.SUCCESS);
    const del = GoalStateV2.fromJSON({ gateway_states: { G: { operation_type: 'DELETE', configuration: { id: 'G', revision_number: 2 } } } });
    const d = await pushOne(addr, del);
    t.is(d.operationStatuses[0]?.operationStatus, OperationStatus.SUCCESS);
    t.is(d.operationStatuses[0]?.statusDetail, '');
  });
});
