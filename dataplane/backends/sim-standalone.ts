// A simulated host of its own, for `aca agent --dataplane sim`: the agent reaches the simulator
// only through the sim backend, never by importing ovs-sim itself.
import { Fabric } from '../../ovs-sim/fabric.js';
import { SimBackend } from './sim.js';

/** One simulated hypervisor at `hostIp`, alone on its underlay; VM taps plugged as ports appear. */
export function standaloneSimBackend(hostIp: string): SimBackend {
  return new SimBackend(new Fabric().addHost('local', hostIp), true);
}
