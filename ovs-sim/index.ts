// The simulator's public API: what programs outside ovs-sim/ use (the agent's sim backend, the
// scripts, the tests of other parts). Layers, bottom up (a folder imports only from folders
// below it; test/static-checks.test.ts holds it to that):
//   base/       the flow layout, meta-flow fields, OVS's text forms, hashes, hmap order, TLV map
//   packet/     frames <-> flows
//   openflow/   matches, actions, flow-mod text, what a protocol version carries (wire)
//   switch/     classifier, bridge (ofproto), groups, meters, tables, datapath, conntrack
//   translate/  xlate (the translation), datapath actions, ofproto/trace, dpexec
//   tools/      ovs-ofctl/ovs-appctl (cli.ts: SimSwitch) and ovs-vsctl
//   fabric/     hosts on a simulated underlay, simulated VMs
//   api.ts      the no-text entry: structured flow/group/meter mods in one bundle, dumps
export * from './api.js';
export { SimSwitch, runScript, bundleFlowText, type CommandResult, type SimSwitchOptions } from './tools/cli.js';
export { words } from './base/words.js';
export { type Flow, get, getMac, newFlow, setMac, setWords } from './base/flow.js';
export { parseFlowMod } from './openflow/flowmod.js';
export { SimVm } from './fabric/vm.js';
export { type Endpoint, ExternalSegment, type InternetPacket, SimInternet } from './fabric/external.js';
