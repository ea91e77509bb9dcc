// Actions checked against the match they belong to (ofpacts_check): prerequisites of the fields
// they touch, output ports, goto_table direction, ct and nat on IP only. Some inconsistencies are
// errors; others only narrow the usable protocols to OpenFlow 1.0 (whose actions tolerate them).
// Also records what later encoding needs (whether the flow has a VLAN, the L4 protocol).
import { type Ofpact, P_OF10_ANY, type Usable, restrict } from './actions.js';
import { FieldError, matchPrereqsOk } from '../base/fields.js';
import { ETH_TYPE, FRAG, IPPROTO, VLAN_CFI, W } from '../base/flow.js';
import { Match as MatchCtor, type Match } from './match.js';
import { writeSubfield } from '../base/subfield.js';
import type { Subfield } from '../base/subfield.js';
import { warn } from '../base/log.js';
import { bundleMemberProblem } from './multipath.js';
import { OFPP } from '../base/text.js';

export class CheckError extends FieldError {
  constructor(readonly code: string) {
    super(code);
  }
}

const inconsistent = (u: Usable): void => restrict(u, P_OF10_ANY);

function checkSubfield(sf: Subfield, m: Match | null, dst: boolean): void {
  const type = dst ? 'destination' : 'source';
  if (m && !matchPrereqsOk(sf.field.prereq, m.flow, m.wc)) {
    warn('meta_flow', `${type} field ${sf.field.name} lacks correct prerequisites`);
    throw new CheckError('OFPBAC_MATCH_INCONSISTENT');
  }
  if (dst && !sf.field.writable) {
    warn('meta_flow', `destination field ${sf.field.name} is not writable`);
    throw new CheckError('OFPBAC_BAD_SET_ARGUMENT');
  }
}

/** Reserved ports an output may name (made once: this runs for every output of every flow mod). */
const RESERVED_OUTPUTS: ReadonlySet<number> = new Set([OFPP.IN_PORT, OFPP.TABLE, OFPP.NORMAL, OFPP.FLOOD, OFPP.ALL, OFPP.CONTROLLER, OFPP.LOCAL]);

function checkOutputPort(port: number): void {
  if (RESERVED_OUTPUTS.has(port)) return;
  if (port === OFPP.NONE || port >= OFPP.MAX) throw new CheckError('OFPBAC_BAD_OUT_PORT');
}

// (Module-level helpers, not closures inside checkOne: a closure made per action is slow.)
function vlanPresent(f: Uint32Array): boolean {
  return (f[W.vlan0]! & VLAN_CFI) !== 0;
}

const ipAny = (m: Match): boolean => m.flow[W.dl_type] === ETH_TYPE.IP || m.flow[W.dl_type] === ETH_TYPE.IPV6;

/** Check `list` against `match` (which it may temporarily change, as OVS does, then restores). */
export function checkActions(list: Ofpact[], match: Match, tableId: number, usable: Usable): void {
  const f = match.flow;
  // Locals, not an object: this runs for every flow a bundle adds.
  const dl = f[W.dl_type]!;
  const proto = f[W.nw_proto]!;
  const v0 = f[W.vlan0]!;
  const v1 = f[W.vlan1]!;
  try {
    for (let i = 0; i < list.length; i++) checkOne(list[i]!, match, tableId, usable);
  } finally {
    f[W.dl_type] = dl;
    f[W.nw_proto] = proto;
    f[W.vlan0] = v0;
    f[W.vlan1] = v1;
  }
}

function checkOne(a: Ofpact, m: Match, tableId: number, usable: Usable): void {
  const f = m.flow;
  switch (a.type) {
    case 'output':
    case 'output_trunc':
      checkOutputPort(a.port);
      return;
    case 'enqueue':
      if (a.port >= OFPP.MAX && a.port !== OFPP.IN_PORT && a.port !== OFPP.LOCAL) throw new CheckError('OFPBAC_BAD_OUT_PORT');
      return;
    case 'output_reg':
      checkSubfield(a.src, m, false);
      return;
    case 'multipath':
      checkSubfield(a.dst, m, true);
      return;
    case 'bundle': {
      if (a.dst) checkSubfield(a.dst, m, true);
      const bad = bundleMemberProblem(a);
      if (bad !== null) {
        warn('bundle', bad === OFPP.CONTROLLER ? 'unsupported controller member' : `invalid member ${bad}`);
        throw new CheckError('OFPBAC_BAD_OUT_PORT');
      }
      return;
    }
    case 'set_vlan_vid':
    case 'set_vlan_pcp':
      a.flowHasVlan = vlanPresent(f);
      if (!a.flowHasVlan && !a.push) inconsistent(usable);
      f[W.vlan0] = (f[W.vlan0]! | VLAN_CFI) >>> 0;
      return;
    case 'strip_vlan':
      if (!vlanPresent(f)) inconsistent(usable);
      f[W.vlan0] = f[W.vlan1]!;
      f[W.vlan1] = 0;
      return;
    case 'push_vlan':
      if (f[W.vlan1]! & VLAN_CFI) throw new CheckError('OFPBAC_BAD_TAG');
      f[W.vlan1] = f[W.vlan0]!;
      f[W.vlan0] = ((0x8100 << 16) | VLAN_CFI) >>> 0;
      return;
    case 'set_ipv4_src':
    case 'set_ipv4_dst':
      if (f[W.dl_type] !== ETH_TYPE.IP) inconsistent(usable);
      return;
    case 'set_ip_dscp':
    case 'set_ip_ecn':
    case 'set_ip_ttl':
    case 'dec_ttl':
      if (!ipAny(m)) inconsistent(usable);
      return;
    case 'set_l4_src_port':
    case 'set_l4_dst_port': {
      const p = f[W.nw_proto]!;
      if (!ipAny(m) || (f[W.nw_frag]! & FRAG.LATER) || (p !== IPPROTO.TCP && p !== IPPROTO.UDP && p !== IPPROTO.SCTP)) inconsistent(usable);
      a.proto = p;
      return;
    }
    case 'reg_move':
      checkSubfield(a.src, m, false);
      checkSubfield(a.dst, m, true);
      return;
    case 'set_field':
      if (!matchPrereqsOk(a.field.prereq, f, m.wc) || (a.field.name === 'vlan_vid' && !vlanPresent(f))) {
        warn('ofp_actions', `set_field ${a.field.name} lacks correct prerequisites`);
        throw new CheckError('OFPBAC_MATCH_INCONSISTENT');
      }
      a.flowHasVlan = vlanPresent(f);
      if (a.field.name === 'vlan_tci') f[W.vlan0] = ((f[W.vlan0]! & 0xffff0000) | Number(a.value & 0xffffn)) >>> 0;
      return;
    case 'stack_push':
      checkSubfield(a.sf, m, false);
      return;
    case 'stack_pop':
      checkSubfield(a.sf, m, true);
      return;
    case 'fin_timeout':
      if (f[W.nw_proto] !== IPPROTO.TCP) inconsistent(usable);
      return;
    case 'resubmit':
      if (a.ct && !matchPrereqsOk('ct', f, m.wc)) throw new CheckError('OFPBAC_MATCH_INCONSISTENT');
      return;
    case 'learn': {
      // learn_check: sources against this flow's match, destinations against the learned match
      // as the specs build it.
      const dst = new MatchCtor();
      for (const sp of a.specs) {
        if (sp.src) checkSubfield(sp.src, m, false);
        if (sp.kind === 'match' && sp.dst) {
          checkSubfield(sp.dst, dst, false);
          if (!sp.src) {
            writeSubfield(dst.flow, sp.dst, sp.imm);
            writeSubfield(dst.wc, sp.dst, (1n << BigInt(sp.dst.nBits)) - 1n);
          }
        }
        if (sp.kind === 'load' && sp.dst) checkSubfield(sp.dst, dst, true);
      }
      return;
    }
    case 'clone': {
      const sub = { p: usable.p };
      checkActions(a.actions, m, tableId, sub);
      usable.p &= sub.p;
      return;
    }
    case 'ct': {
      const dl = f[W.dl_type];
      if ((dl !== ETH_TYPE.IP && dl !== ETH_TYPE.IPV6) || ((f[W.ct_state]! & 0x10) && a.commit)
        || (a.alg === 21 && f[W.nw_proto] !== IPPROTO.TCP) || (a.alg === 69 && f[W.nw_proto] !== IPPROTO.UDP)) throw new CheckError('OFPBAC_MATCH_INCONSISTENT');
      if (a.zoneSrc) {
        checkSubfield(a.zoneSrc, m, false);
        return;
      }
      const sub = { p: usable.p };
      checkActions(a.actions, m, tableId, sub);
      usable.p &= sub.p;
      return;
    }
    case 'nat': {
      const dl = f[W.dl_type];
      if ((dl !== ETH_TYPE.IP && dl !== ETH_TYPE.IPV6) || (a.af === 4 && dl !== ETH_TYPE.IP) || (a.af === 6 && dl !== ETH_TYPE.IPV6)) throw new CheckError('OFPBAC_MATCH_INCONSISTENT');
      return;
    }
    case 'meter':
      if (a.meterId === 0 || a.meterId > 0xffff0000) throw new CheckError('OFPMMFC_INVALID_METER');
      return;
    case 'write_actions':
      checkActions(a.actions, m, tableId, { p: usable.p });
      return;
    case 'goto_table':
      if ((tableId !== 255 && a.table <= tableId) || a.table >= 255) throw new CheckError('OFPBIC_BAD_TABLE_ID');
      return;
    default:
      return;
  }
}
