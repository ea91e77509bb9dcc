// Security group states shaped as DPM sends them (rule operation unset, ethertype IPv4).
import type { SecurityGroupState } from '../../proto/gen/alcor/securitygroup.js';

export interface RuleSpec { dir: 'ingress' | 'egress'; proto: 'tcp' | 'udp' | 'icmp'; min?: number; max?: number; prefix?: string; group?: string; id?: string }
const PROTO = { tcp: 0, udp: 1, icmp: 2 } as const;

export function sgState(id: string, rules: RuleSpec[], op = 1): SecurityGroupState {
  return {
    operationType: op,
    configuration: {
      revisionNumber: 0, requestId: '', id, updateType: 0, vpcId: 'V', name: id,
      securityGroupRules: rules.map((r, i) => ({
        operationType: 0, securityGroupId: id, id: r.id ?? `${id}-${i}`, direction: r.dir === 'egress' ? 0 : 1, ethertype: 0,
        protocol: PROTO[r.proto], portRangeMin: r.min ?? 0, portRangeMax: r.max ?? 0, remoteIpPrefix: r.prefix ?? '', remoteGroupId: r.group ?? '',
      })),
    },
  };
}

