// The feature registry: every feature the dataplane runs, in one list. Adding a feature means
// adding a module under features/ and a line here (docs/adding-a-feature.md); the reconciler,
// the dependency index and the incremental == recompute test pick it up from this list.
import type { Feature, Owners } from './feature.js';
import { gatewayArp } from './features/arp-responder.js';
import { floodLocal, floodRemote } from './features/flood.js';
import { neighbors } from './features/neighbors.js';
import { onDemandPipeline, onDemandSubnets, puntLimits } from './features/on-demand.js';
import { pipeline } from './features/pipeline.js';
import { ports } from './features/ports.js';
import { elasticIps, externalBridges, snat } from './features/nat.js';
import { routers } from './features/routing.js';
import { portSecurity, remoteGroups } from './features/security-groups.js';
import { tunnels } from './features/tunnels.js';
import { zeta } from './features/zeta.js';
import type { Kind } from './model.js';

export const FEATURES: readonly Feature[] = [pipeline, tunnels, ports, neighbors, gatewayArp, floodRemote, floodLocal, routers, portSecurity, remoteGroups, externalBridges, snat, elasticIps, zeta, onDemandPipeline, onDemandSubnets, puntLimits];

/** Features looked up by owner namespace and by the resource kind they own. */
export class FeatureRegistry {
  private readonly byNamespace = new Map<string, Feature>();
  readonly byResource = new Map<Kind, Feature[]>();
  /** Features whose owners are aggregates (asked which owners a change may create). */
  readonly aggregates: (Feature & { owners: Extract<Owners, { aggregate: unknown }> })[] = [];

  constructor(readonly features: readonly Feature[] = FEATURES) {
    for (const f of features) {
      if (this.byNamespace.has(f.namespace)) throw new Error(`features ${this.byNamespace.get(f.namespace)!.name} and ${f.name} share the owner namespace ${f.namespace}`);
      this.byNamespace.set(f.namespace, f);
      if ('aggregate' in f.owners) this.aggregates.push(f as Feature & { owners: Extract<Owners, { aggregate: unknown }> });
      if ('resource' in f.owners) {
        const list = this.byResource.get(f.owners.resource) ?? [];
        list.push(f);
        this.byResource.set(f.owners.resource, list);
      }
    }
  }

  /** The feature and key of an owner name. */
  parse(owner: string): { feature: Feature; key: string } | undefined {
    const colon = owner.indexOf(':');
    const ns = colon < 0 ? owner : owner.slice(0, colon);
    const feature = this.byNamespace.get(ns);
    return feature ? { feature, key: colon < 0 ? '' : owner.slice(colon + 1) } : undefined;
  }
}
