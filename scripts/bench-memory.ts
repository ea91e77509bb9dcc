// What a benchmark process keeps, measured the same way by every bench: V8's heap and the typed
// arrays' memory outside it (the simulator's rule columns live there), after a full collection.

/**
 * A full collection (the benches run with --expose-gc), then another once V8's sweeper has had a
 * moment to free the typed arrays' memory the first let go. False without gc: nothing collected.
 */
export async function collectFully(): Promise<boolean> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return false;
  gc();
  await new Promise((r) => setTimeout(r, 100));
  gc();
  return true;
}

/** Bytes held now: the heap in use and the typed arrays' memory. */
export function heldBytes(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
