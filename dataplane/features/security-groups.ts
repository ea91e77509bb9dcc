// Stateful security groups and port security, Neutron's semantics in flows with conntrack.
// A port with groups is "protected": its traffic goes through port_security (anti-spoofing),
// then conntrack in its own zone (its OpenFlow port number) both ways, and its groups' rules.
// One owner per port holds its anti-spoofing, conntrack entry and rule flows; remote-group
// rules are conjunctions whose address dimension is one aggregate owner per (direction,
// ethertype, group, remote group), shared by every port of the group: a group of M members and
// R rules costs about M + R flows per port, not M × R.
import { CT_STATE, ETH_TYPE, IP_PROTO, ipv4Value, macValue, prefixMask } from '../fields.js';
import { type Action, type MatchField, canonicalMatch, eq, makeFlowKey, masked, reg, resubmit } from '../flow.js';
import type { BuildContext, Feature, OwnerBuilder } from '../feature.js';
import type { Cidr, Direction, EtherType, Port, ResourceEvent, SecurityGroupRule } from '../model.js';
import { PRIORITY, REGISTERS, TABLES, type TableSpec } from '../pipeline.js';

/**
 * Port security and security groups apply to ports with at least one group the agent knows.
 * A port whose groups are all unknown is not protected yet (a controller that names a group it
 * never sends, as Alcor's test client does, would otherwise cut the VM off); it becomes
 * protected when a SecurityGroupState for one of them arrives (a read: the port is rebuilt).
 */
export function isProtected(ctx: BuildContext, p: Port): boolean {
  for (const g of p.securityGroupIds) if (ctx.view.get('securityGroup', g)) return true;
  return false;
}

// ---- addresses ----

function ipv6Value(text: string): bigint {
  const [head = '', tail = ''] = text.includes('::') ? text.split('::') : [text, ''];
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = text.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** An address or CIDR as a value/mask pair of its family; null mask = exact. */
interface Prefix { family: 4 | 6; value: bigint; mask: bigint | null }

function prefixOf(text: string): Prefix {
  const [addr = '', len] = text.split('/');
  const family = addr.includes(':') ? 6 : 4;
  const bits = family === 4 ? 32 : 128;
  const value = family === 4 ? ipv4Value(addr) : ipv6Value(addr);
  const prefix = len === undefined ? bits : Number(len);
  if (prefix >= bits) return { family, value, mask: null };
  const mask = prefixMask(prefix, bits);
  return { family, value: value & mask, mask };
}

const cidrPrefix = (c: Cidr): Prefix => prefixOf(`${c.address}/${c.prefix}`);

/** The match on an address field for a prefix (nothing for /0). */
function addressMatch(field: 'nw_src' | 'nw_dst' | 'ipv6_src' | 'ipv6_dst' | 'arp_spa', p: Prefix): MatchField[] {
  if (p.mask === null) return [eq(field, p.value)];
  return p.mask === 0n ? [] : [masked(field, p.value, p.mask)];
}

/**
 * An inclusive port range as value/mask pairs (the fewest aligned blocks that cover it), as
 * OVS's conjunctive and Neutron's port-range flows do.
 */
export function portMasks(min: number, max: number): { value: number; mask: number }[] {
  const out: { value: number; mask: number }[] = [];
  let lo = min;
  while (lo <= max) {
    let size = lo === 0 ? 0x10000 : lo & -lo;
    while (lo + size - 1 > max) size >>= 1;
    out.push({ value: lo, mask: 0xffff & ~(size - 1) });
    lo += size;
  }
  return out;
}

// ---- conntrack ----

const TRK = CT_STATE.trk;
const ct = (commit: boolean, zone: typeof REGISTERS.egressZone, table: number | null): Action => ({ type: 'ct', commit, zone, table, nat: null });
/** New, or established in the original direction: what the rules decide. */
const ORIGINAL = masked('ct_state', TRK, TRK | CT_STATE.rpl);

interface Side {
  dir: Direction;
  rules: TableSpec;
  port: typeof REGISTERS.inPort;
  zone: typeof REGISTERS.egressZone;
  /** Where an allowed packet goes on. */
  next: TableSpec;
  /** The remote end's address field per family. */
  remote: { 4: 'nw_dst' | 'nw_src'; 6: 'ipv6_dst' | 'ipv6_src' };
}

const EGRESS: Side = { dir: 'egress', rules: TABLES.SG_EGRESS_RULES, port: REGISTERS.inPort, zone: REGISTERS.egressZone, next: TABLES.ARP_RESPONDER, remote: { 4: 'nw_dst', 6: 'ipv6_dst' } };
const INGRESS: Side = { dir: 'ingress', rules: TABLES.SG_INGRESS_RULES, port: REGISTERS.outPort, zone: REGISTERS.ingressZone, next: TABLES.OUTPUT, remote: { 4: 'nw_src', 6: 'ipv6_src' } };
const SIDES = { egress: EGRESS, ingress: INGRESS } as const;

const dlTypeOf = (e: EtherType): number => (e === 'ipv4' ? ETH_TYPE.ip : ETH_TYPE.ipv6);
const familyOf = (e: EtherType): 4 | 6 => (e === 'ipv4' ? 4 : 6);

/** Allowed by a rule: commit the connection in the port's zone and go on. */
const allow = (side: Side): Action[] => [ct(true, side.zone, null), resubmit(side.next)];

/**
 * What a rule matches besides the port and the remote end: protocol, ports or ICMP type/code,
 * one match per port block. Alcor's wire has no "any protocol": TCP is 0 there. ARP rules match
 * nothing (ARP always passes). HTTP is TCP (port 80 when no range is given).
 */
export function ruleMatches(r: SecurityGroupRule): MatchField[][] {
  const dlType = eq('dl_type', dlTypeOf(r.etherType));
  switch (r.protocol) {
    case 'arp':
      return [];
    case 'icmp': {
      const proto = eq('nw_proto', r.etherType === 'ipv4' ? IP_PROTO.icmp : IP_PROTO.icmpv6);
      // Neutron: min is the ICMP type, max the code; Alcor sends 0 for "not set", so 0/0 is any.
      if (r.portRangeMin === 0 && r.portRangeMax === 0) return [[dlType, proto]];
      const m = [dlType, proto, eq('icmp_type', r.portRangeMin)];
      return [r.portRangeMax === 0 ? m : [...m, eq('icmp_code', r.portRangeMax)]];
    }
    default: {
      const proto = eq('nw_proto', r.protocol === 'udp' ? IP_PROTO.udp : IP_PROTO.tcp);
      let [min, max] = [r.portRangeMin, r.portRangeMax];
      if (min === 0 && max === 0) {
        if (r.protocol !== 'http') return [[dlType, proto]];
        [min, max] = [80, 80];
      }
      if (max === 0) max = min;
      if (min === 0 && max === 65535) return [[dlType, proto]];
      return portMasks(min, max).map((b) => [dlType, proto, b.mask === 0xffff ? eq('tp_dst', b.value) : masked('tp_dst', b.value, b.mask)]);
    }
  }
}

/** The conjunction behind remote-group rules of `group` naming `remote`, in one direction and family. */
export const conjunctionName = (dir: Direction, eth: EtherType, group: string, remote: string): string => `sg|${dir}|${eth}|${group}|${remote}`;

const sameClause = (a: Action, b: Action): boolean =>
  a.type === 'conjunction' && b.type === 'conjunction' && a.id === b.id && a.clause === b.clause;

/** A port's rule flows, merged by match: a plain allow wins over conjunction clauses on the same match. */
class RuleFlows {
  private readonly byKey = new Map<string, { table: TableSpec; match: MatchField[]; allow: Action[] | null; clauses: Action[]; rules: string[] }>();

  add(table: TableSpec, match: MatchField[], rule: string, action: { allow: Action[] } | { clause: Action }): void {
    const m = canonicalMatch(match);
    const key = makeFlowKey(table.id, PRIORITY.match, m);
    let e = this.byKey.get(key);
    if (!e) {
      e = { table, match: [...m], allow: null, clauses: [], rules: [] };
      this.byKey.set(key, e);
    }
    if (!e.rules.includes(rule)) e.rules.push(rule);
    if ('allow' in action) e.allow = action.allow;
    else if (!e.clauses.some((c) => sameClause(c, action.clause))) e.clauses.push(action.clause);
  }

  emit(out: OwnerBuilder): void {
    for (const e of this.byKey.values()) out.flow(e.table, PRIORITY.match, e.match, e.allow ?? e.clauses, 'sg', `rule ${e.rules.join(' + ')}`);
  }
}

// ---- the port's own flows ----

function antiSpoofing(out: OwnerBuilder, port: Port, ofport: number): void {
  const t = TABLES.PORT_SECURITY;
  const me = reg(REGISTERS.inPort, ofport);
  const go = [resubmit(TABLES.SG_EGRESS)];
  const own = macValue(port.mac);
  const sources: { mac: bigint; p: Prefix }[] = [
    ...port.fixedIps.map((f) => ({ mac: own, p: prefixOf(f.ip) })),
    ...port.allowedAddressPairs.map((a) => ({ mac: a.mac === null ? own : macValue(a.mac), p: prefixOf(a.ip) })),
  ];
  for (const { mac, p } of sources) {
    const src = eq('dl_src', mac);
    if (p.family === 4) {
      out.flow(t, PRIORITY.match, [me, src, eq('dl_type', ETH_TYPE.ip), ...addressMatch('nw_src', p)], go, 'portsec');
      out.flow(t, PRIORITY.match, [me, src, eq('dl_type', ETH_TYPE.arp), eq('arp_sha', mac), ...addressMatch('arp_spa', p)], go, 'portsec');
    } else {
      out.flow(t, PRIORITY.match, [me, src, eq('dl_type', ETH_TYPE.ipv6), ...addressMatch('ipv6_src', p)], go, 'portsec');
    }
  }
  const src = eq('dl_src', own);
  // DHCP discovery and ARP probes come from the unspecified address; IPv6 from link-local
  // and, for duplicate address detection, the unspecified address.
  out.flow(t, PRIORITY.match, [me, src, eq('dl_type', ETH_TYPE.ip), eq('nw_proto', IP_PROTO.udp), eq('nw_src', 0), eq('tp_src', 68), eq('tp_dst', 67)], go, 'portsec');
  out.flow(t, PRIORITY.match, [me, src, eq('dl_type', ETH_TYPE.arp), eq('arp_sha', own), eq('arp_spa', 0)], go, 'portsec');
  out.flow(t, PRIORITY.match, [me, src, eq('dl_type', ETH_TYPE.ipv6), ...addressMatch('ipv6_src', prefixOf('fe80::/10'))], go, 'portsec');
  out.flow(t, PRIORITY.match, [me, src, eq('dl_type', ETH_TYPE.ipv6), eq('ipv6_src', 0n)], go, 'portsec');
  // A VM is no router: its router advertisements are dropped whatever its addresses.
  out.flow(t, PRIORITY.guard, [me, eq('dl_type', ETH_TYPE.ipv6), eq('nw_proto', IP_PROTO.icmpv6), eq('icmp_type', 134)], [], 'portsec');
  out.flow(t, PRIORITY.fallthrough, [me], [], 'portsec');
}

function conntrackEntry(out: OwnerBuilder, ofport: number): void {
  for (const eth of [ETH_TYPE.ip, ETH_TYPE.ipv6]) {
    out.flow(TABLES.SG_EGRESS, PRIORITY.match, [reg(REGISTERS.inPort, ofport), eq('dl_type', eth)], [ct(false, REGISTERS.egressZone, TABLES.SG_EGRESS_RULES.id)], 'sg');
    out.flow(TABLES.SG_INGRESS, PRIORITY.match, [reg(REGISTERS.outPort, ofport), eq('dl_type', eth)], [ct(false, REGISTERS.ingressZone, TABLES.SG_INGRESS_RULES.id)], 'sg');
  }
}

function ruleFlows(ctx: BuildContext, flows: RuleFlows, port: Port, ofport: number): void {
  for (const groupId of port.securityGroupIds) {
    const group = ctx.view.get('securityGroup', groupId);
    if (!group) continue;
    for (const r of group.rules) {
      const side = SIDES[r.direction];
      const base = [reg(side.port, ofport), ORIGINAL];
      const remote = r.remoteIpPrefix ? addressMatch(side.remote[familyOf(r.etherType)], cidrPrefix(r.remoteIpPrefix)) : [];
      const name = `${groupId}/${r.id}`;
      for (const m of ruleMatches(r)) {
        const match = [...base, ...m, ...remote];
        if (r.remoteGroupId === '') flows.add(side.rules, match, name, { allow: allow(side) });
        else {
          const id = ctx.conjunctionId(conjunctionName(r.direction, r.etherType, groupId, r.remoteGroupId));
          flows.add(side.rules, match, name, { clause: { type: 'conjunction', id, clause: 1, nClauses: 2 } });
        }
      }
    }
  }
}

export const portSecurity: Feature = {
  name: 'security-groups', namespace: 'port-sg', programmer: 'sg', owners: { resource: 'port' },
  purpose: 'port security, the conntrack entry and the security group rules of a port with groups',
  build(ctx, key, out) {
    const port = ctx.view.get('port', key);
    if (!port || !isProtected(ctx, port) || !port.adminStateUp) return;
    const ofport = ctx.bindings.ofport(port.id);
    if (ofport === undefined) return;
    antiSpoofing(out, port, ofport);
    conntrackEntry(out, ofport);
    const flows = new RuleFlows();
    ruleFlows(ctx, flows, port, ofport);
    flows.emit(out);
  },
};

// ---- remote groups: the address dimension, shared by the ports of a group ----

const remoteKey = (dir: Direction, eth: EtherType, group: string, remote: string): string => `${dir}|${eth}|${group}|${remote}`;

function* remoteKeysOf(rules: readonly SecurityGroupRule[], group: string): Iterable<string> {
  for (const r of rules) if (r.remoteGroupId !== '') yield remoteKey(r.direction, r.etherType, group, r.remoteGroupId);
}

const NO_KEYS: readonly string[] = [];

/** Only a security group creates remote-group owners (no generator made per neighbor event). */
function remoteKeysOfEvent(e: ResourceEvent): Iterable<string> {
  return e.kind === 'securityGroup' ? remoteKeysOfGroupEvent(e) : NO_KEYS;
}

function* remoteKeysOfGroupEvent(e: Extract<ResourceEvent, { kind: 'securityGroup' }>): Iterable<string> {
  if (e.type !== 'added') yield* remoteKeysOf(e.before.rules, e.key);
  if (e.type !== 'removed') yield* remoteKeysOf(e.after.rules, e.key);
}

/** The addresses of a member (fixed IPs and allowed address pairs) in one family. */
function memberAddresses(ctx: BuildContext, member: string, family: 4 | 6, into: Map<string, Prefix>): void {
  const colon = member.indexOf(':');
  const kind = member.slice(0, colon) === 'port' ? 'port' : 'neighbor';
  const r = ctx.view.get(kind, member.slice(colon + 1));
  if (!r) return;
  for (const text of [...r.fixedIps.map((f) => f.ip), ...r.allowedAddressPairs.map((a) => a.ip)]) {
    const p = prefixOf(text);
    if (p.family === family) into.set(`${p.value}/${p.mask}`, p);
  }
}

export const remoteGroups: Feature = {
  name: 'security-group-remotes', namespace: 'sg-remote', programmer: 'sg',
  owners: {
    aggregate: {
      all: (view) => {
        const keys = new Set<string>();
        for (const g of view.list('securityGroup')) for (const k of remoteKeysOf(g.rules, g.key)) keys.add(k);
        return keys;
      },
      created: remoteKeysOfEvent,
    },
  },
  purpose: 'the address dimension of remote-group rules: one flow per member address, shared by the ports of the group',
  build(ctx, key, out) {
    const [dir, eth, groupId, remote] = key.split('|') as [Direction, EtherType, string, string];
    const group = ctx.view.get('securityGroup', groupId);
    if (!group || !group.rules.some((r) => r.direction === dir && r.etherType === eth && r.remoteGroupId === remote)) return;
    const side = SIDES[dir];
    const family = familyOf(eth);
    const id = ctx.conjunctionId(conjunctionName(dir, eth, groupId, remote));
    const addresses = new Map<string, Prefix>();
    for (const m of ctx.topology.groupMembers(remote)) memberAddresses(ctx, m, family, addresses);
    const clause: Action = { type: 'conjunction', id, clause: 2, nClauses: 2 };
    for (const p of addresses.values()) {
      out.flow(side.rules, PRIORITY.match, [ORIGINAL, eq('dl_type', dlTypeOf(eth)), ...addressMatch(side.remote[family], p)], [clause]);
    }
    // ct needs an IP dl_type in the match, even after a conjunction.
    if (addresses.size > 0) out.flow(side.rules, PRIORITY.match, [eq('conj_id', id), eq('dl_type', dlTypeOf(eth))], allow(side), 'sg', `rules of ${groupId} from remote group ${remote}`);
  },
};
