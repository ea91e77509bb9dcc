// Fixed flows: each table's miss, the links between stages, and the punts to the agent.
import { type Flow, cookieFor } from '../flow.js';
import { PRIORITY, PUNT, TABLES } from '../pipeline.js';

const MULTICAST = '01:00:00:00:00:00/01:00:00:00:00:00';

export function pipelineFlows(): Flow[] {
  const cookie = cookieFor('pipeline', 'pipeline');
  const dhcp = cookieFor('dhcp', 'pipeline');
  const arp = cookieFor('arp', 'pipeline');
  const next = (to: { id: number }): string => `resubmit(,${to.id})`;
  return [
    { table: TABLES.CLASSIFY.id, priority: PRIORITY.miss, match: '', actions: 'drop', cookie },
    // ARP: unknown addresses go up (counted, later the on-demand engine); broadcast ARP that is
    // not a request is not flooded.
    { table: TABLES.ARP_RESPONDER.id, priority: PRIORITY.punt, match: 'arp,arp_op=1', actions: `controller(userdata=${PUNT.arpMiss.slice(2)})`, cookie: arp },
    { table: TABLES.ARP_RESPONDER.id, priority: PRIORITY.broadcast, match: `arp,dl_dst=${MULTICAST}`, actions: 'drop', cookie: arp },
    { table: TABLES.ARP_RESPONDER.id, priority: PRIORITY.miss, match: '', actions: next(TABLES.DHCP), cookie },
    // DHCP: requests to the agent's server; replies from VMs (rogue servers) dropped.
    { table: TABLES.DHCP.id, priority: PRIORITY.match, match: 'udp,tp_src=68,tp_dst=67', actions: `controller(userdata=${PUNT.dhcp.slice(2)})`, cookie: dhcp },
    { table: TABLES.DHCP.id, priority: PRIORITY.match, match: 'udp,tp_src=67,tp_dst=68', actions: 'drop', cookie: dhcp },
    { table: TABLES.DHCP.id, priority: PRIORITY.miss, match: '', actions: next(TABLES.REMOTE_L2), cookie },
    { table: TABLES.REMOTE_L2.id, priority: PRIORITY.miss, match: '', actions: next(TABLES.LOCAL_L2), cookie },
    { table: TABLES.LOCAL_L2.id, priority: PRIORITY.miss, match: '', actions: 'drop', cookie },
  ];
}

export { MULTICAST };
