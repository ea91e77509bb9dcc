// What a programmer may read: the desired state, the derived indexes, where ports are bound.
import type { ResourceView } from './model.js';
import type { Topology } from './topology.js';

/** Where local VM ports are attached: the OpenFlow port of a port id, once its interface exists. */
export interface PortBindings {
  ofport(portId: string): number | undefined;
}

export interface ProgramContext {
  view: ResourceView;
  topology: Topology;
  bindings: PortBindings;
}
