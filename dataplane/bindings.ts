// Where local VM ports are attached, as the backend knows it: features read it through the build
// context (a binding change dirties the owners that read it).

/** The OpenFlow port of a port id, once its interface exists on the bridge. */
export interface PortBindings {
  ofport(portId: string): number | undefined;
}
