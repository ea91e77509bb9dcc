// The same command lines against a fresh real OVS 3.1 sandbox and against ovs-sim, with the
// agent's flows in flows.txt: every output must agree after the corpus's one normalization.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { formatOfctl } from '../../agent/render.js';
import type { Flow, Meter } from '../../dataplane/flow.js';
import { formatMeter } from '../../dataplane/flow-text.js';
import { PUNT_LIMITS, TUNNEL_PORTS } from '../../dataplane/pipeline.js';
import { SimSwitch, words } from '../../ovs-sim/index.js';
import { compareOutputs } from './ovs-compare.js';
import { runOnRealOvs } from './ovs-sandbox.js';

/** br-int as the agent's OVS backend makes it, with VM ports 1..n (type dummy) and the tunnels. */
export function bridgeLine(vmPorts: number[]): string {
  const tunnels = Object.values(TUNNEL_PORTS).map((tun) => `-- add-port br-int ${tun.name} -- set interface ${tun.name} type=${tun.type} options:remote_ip=flow options:key=flow ofport_request=${tun.ofport}`);
  const vms = vmPorts.map((n) => `-- add-port br-int p${n} -- set interface p${n} type=dummy ofport_request=${n}`);
  return ['ovs-vsctl add-br br-int -- set bridge br-int datapath_type=dummy fail-mode=secure', ...tunnels, ...vms].join(' ');
}

/**
 * Run the lines on both (flows.txt holding the flows, and any other files named), compare every
 * output; returns the simulator's outputs. The meters br-int's flows use (the ports' punt
 * meters) are added before the first line that adds flows, as the agent adds them before the flows.
 */
export async function onOvsAndSim(t: ExecutionContext, flows: Flow[], given: string[], files: Record<string, Flow[]> = {}, meters: Meter[] = []): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ovs-vs-sim-'));
  const used = new Set(flows.flatMap((f) => f.actions.flatMap((a) => (a.type === 'meter' ? [a.id] : []))));
  const meterLines = [...used].sort((a, b) => a - b).map((id) => `ovs-ofctl -O OpenFlow13 add-meter br-int ${formatMeter(meters.find((m) => m.id === id) ?? { id, unit: 'pktps', rate: PUNT_LIMITS.meterPktps, burst: PUNT_LIMITS.meterBurst })}`);
  const at = meterLines.length === 0 ? -1 : given.findIndex((l) => l.includes('add-flow'));
  const lines = at < 0 ? given : [...given.slice(0, at), ...meterLines, ...given.slice(at)];
  const index = (i: number): number => (at < 0 || i < at ? i : i + meterLines.length);
  try {
    writeFileSync(join(dir, 'flows.txt'), `${formatOfctl(flows)}\n`);
    for (const [name, list] of Object.entries(files)) writeFileSync(join(dir, name), `${formatOfctl(list)}\n`);
    const real = await runOnRealOvs(lines, dir);
    const sim = new SimSwitch({ cwd: dir });
    const outs = lines.map((line, i) => {
      const ours = sim.run(line);
      for (const c of compareOutputs(words(line), real[i]!, ours)) t.deepEqual(c.ours, c.real, `${c.what} of: ${line}`);
      return ours.stdout;
    });
    return given.map((_, i) => outs[index(i)]!);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
