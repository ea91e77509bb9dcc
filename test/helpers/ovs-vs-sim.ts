// The same command lines against a fresh real OVS 3.1 sandbox and against ovs-sim, with the
// agent's flows in flows.txt: every output must agree after the corpus's one normalization.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { formatOfctl } from '../../agent/render.js';
import type { Flow } from '../../dataplane/flow.js';
import { TUNNEL_PORTS } from '../../dataplane/pipeline.js';
import { SimSwitch, words } from '../../ovs-sim/index.js';
import { compareOutputs } from './ovs-compare.js';
import { runOnRealOvs } from './ovs-sandbox.js';

/** br-int as the agent's OVS backend makes it, with VM ports 1..n (type dummy) and the tunnels. */
export function bridgeLine(vmPorts: number[]): string {
  const tunnels = Object.values(TUNNEL_PORTS).map((tun) => `-- add-port br-int ${tun.name} -- set interface ${tun.name} type=${tun.type} options:remote_ip=flow options:key=flow ofport_request=${tun.ofport}`);
  const vms = vmPorts.map((n) => `-- add-port br-int p${n} -- set interface p${n} type=dummy ofport_request=${n}`);
  return ['ovs-vsctl add-br br-int -- set bridge br-int datapath_type=dummy fail-mode=secure', ...tunnels, ...vms].join(' ');
}

/** Run the lines on both (flows.txt holding the flows, and any other files named), compare every output; returns the simulator's outputs. */
export async function onOvsAndSim(t: ExecutionContext, flows: Flow[], lines: string[], files: Record<string, Flow[]> = {}): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ovs-vs-sim-'));
  try {
    writeFileSync(join(dir, 'flows.txt'), `${formatOfctl(flows)}\n`);
    for (const [name, list] of Object.entries(files)) writeFileSync(join(dir, name), `${formatOfctl(list)}\n`);
    const real = await runOnRealOvs(lines, dir);
    const sim = new SimSwitch({ cwd: dir });
    return lines.map((line, i) => {
      const ours = sim.run(line);
      for (const c of compareOutputs(words(line), real[i]!, ours)) t.deepEqual(c.ours, c.real, `${c.what} of: ${line}`);
      return ours.stdout;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
