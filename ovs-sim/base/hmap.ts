// OVS's hmap, for its iteration order: OVS walks many tables (ports to flood, interfaces to add,
// bridges to reconfigure) in hash-bucket order, and its output follows. Buckets are singly
// linked lists with new nodes at the head; the table doubles when it holds more than twice as
// many nodes as buckets, re-inserting bucket by bucket (which reverses each chain), and never
// shrinks unless told to.

/** calc_mask(capacity) of lib/hmap.c. */
function calcMask(capacity: number): number {
  let mask = Math.floor(capacity / 2);
  mask |= mask >>> 1;
  mask |= mask >>> 2;
  mask |= mask >>> 4;
  mask |= mask >>> 8;
  mask |= mask >>> 16;
  mask |= (mask & 1) << 1;
  return mask;
}

export class Hmap<T> {
  private buckets: { hash: number; item: T }[][] = [[]];
  private mask = 0;
  private n = 0;

  get size(): number {
    return this.n;
  }

  insert(item: T, hash: number): void {
    this.buckets[(hash & this.mask) >>> 0]!.unshift({ hash, item });
    this.n += 1;
    if (Math.floor(this.n / 2) > this.mask) {
      const m = calcMask(this.n);
      if (m > this.mask) this.resize(m);
    }
  }

  remove(item: T): boolean {
    for (const b of this.buckets) {
      const i = b.findIndex((x) => x.item === item);
      if (i >= 0) {
        b.splice(i, 1);
        this.n -= 1;
        return true;
      }
    }
    return false;
  }

  private resize(mask: number): void {
    const next: { hash: number; item: T }[][] = Array.from({ length: mask + 1 }, () => []);
    for (const b of this.buckets) for (const node of b) next[(node.hash & mask) >>> 0]!.unshift(node);
    this.buckets = next;
    this.mask = mask;
  }

  /** HMAP_FOR_EACH order. */
  items(): T[] {
    const out: T[] = [];
    for (const b of this.buckets) for (const node of b) out.push(node.item);
    return out;
  }
}

/** The order OVS iterates a map freshly filled with these items in this order. */
export function hashOrder<T>(items: T[], hash: (item: T) => number): T[] {
  const h = new Hmap<T>();
  for (const it of items) h.insert(it, hash(it));
  return h.items();
}
