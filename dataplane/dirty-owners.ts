// The owners one change makes dirty, each once, in the order they were found. A resource's own
// owners come with their feature and key, so rebuilding them parses no name back and looks the
// resource up by the store's own key string (its hash computed once, when it was stored): at a
// million neighbors each parsed name was two more strings made and hashed per neighbor.
import type { Feature } from './feature.js';
import type { FeatureRegistry } from './features.js';

export class DirtyOwners {
  /** Owner name → its place in the lists below. */
  private readonly at = new Map<string, number>();
  private order: string[] = [];
  /** Per place: its feature and key when it is one of the change's own owners, else undefined. */
  private features: (Feature | undefined)[] = [];
  private keys: string[] = [];

  get size(): number {
    return this.order.length;
  }

  /**
   * Add an owner where it is first found. With a feature and key it is one of the change's own
   * owners (a resource's), even when it was found before as a reader.
   */
  add(owner: string, feature?: Feature, key?: string): void {
    const i = this.at.get(owner);
    if (i === undefined) {
      this.at.set(owner, this.order.length);
      this.order.push(owner);
      this.features.push(feature);
      this.keys.push(key ?? '');
    } else if (feature !== undefined && this.features[i] === undefined) {
      this.features[i] = feature;
      this.keys[i] = key!;
    }
  }

  /** Keep only the change's own owners, in their order; the others, in theirs. */
  keepOwn(): string[] {
    const others: string[] = [];
    const order: string[] = [];
    const features: (Feature | undefined)[] = [];
    const keys: string[] = [];
    this.at.clear();
    for (let i = 0; i < this.order.length; i++) {
      if (this.features[i] === undefined) {
        others.push(this.order[i]!);
        continue;
      }
      this.at.set(this.order[i]!, order.length);
      order.push(this.order[i]!);
      features.push(this.features[i]);
      keys.push(this.keys[i]!);
    }
    this.order = order;
    this.features = features;
    this.keys = keys;
    return others;
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
