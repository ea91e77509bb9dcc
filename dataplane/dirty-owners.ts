// The owners one change makes dirty, each once, in the order they were found. A resource's own
// owners come with their feature and key, so rebuilding them parses no name back and looks the
// resource up by the store's own key string (its hash computed once, when it was stored): at a
// million neighbors each parsed name was two more strings made and hashed per neighbor.
import type { Feature } from './feature.js';
import type { FeatureRegistry } from './features.js';

export class DirtyOwners {
  private readonly names = new Set<string>();
  private readonly order: string[] = [];
  /** Per entry of `order`: its feature and key, or undefined (known by name only). */
  private readonly features: (Feature | undefined)[] = [];
  private readonly keys: string[] = [];

  get size(): number {
    return this.order.length;
  }

  has(owner: string): boolean {
    return this.names.has(owner);
  }

  add(owner: string, feature?: Feature, key?: string): void {
    if (this.names.has(owner)) return;
    this.names.add(owner);
    this.order.push(owner);
    this.features.push(feature);
    this.keys.push(key ?? '');
  }

  /** Each owner with its feature and key (parsed from the name when not given; skipped when unknown). */
  each(fn: (owner: string, feature: Feature, key: string) => void, registry: FeatureRegistry): void {
    for (let i = 0; i < this.order.length; i++) {
      const owner = this.order[i]!;
      const feature = this.features[i];
      if (feature !== undefined) {
        fn(owner, feature, this.keys[i]!);
        continue;
      }
      const p = registry.parse(owner);
      if (p) fn(owner, p.feature, p.key);
    }
  }
}
