// Waiting for something that happens on its own (a switch reconnecting, a retry landing): polls
// until it holds. The cap is generous, since a loaded 2-core machine is slow; tests never assert
// on how long it took, they may only log it.

/** Polls `check` until it holds; returns the ms it took, or throws after `ms`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await check()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
