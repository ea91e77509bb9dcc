// V8 settings the agent applies to itself at start.
//
// Allocation-site pretenuring off. V8 allocates objects of a literal straight into the old
// generation once most of them survived a young collection. An agent's large push builds each
// chunk's flows (flow objects, match arrays, match fields) and keeps them only until the switch
// confirms the chunk and they are packed (dataplane/desired.ts): long enough for V8 to pretenure
// them, so they then die in the old generation, hundreds of MB of garbage that only a full
// collection frees, on top of the heap's peak. Measured on this 2-core machine, alternating runs of
// the same build (bench:dataplane's child): 1 port + 1,000,000 neighbors 27.6–28.9 s and 2,388–2,437
// MB peak RSS with it off, 28.7–32.6 s and 2,786–2,886 MB with it on; 10,000 neighbors 413–442 ms
// against 438–456 ms; 100,000 no change. Node does not take this flag in NODE_OPTIONS (its
// allowlist), and unlike the heap's sizes it takes effect when set at run time: the flag is read
// when a collection weighs its allocation sites.
import v8 from 'node:v8';

/** Idempotent: an agent started again in the same process sets the same flag again. */
export function tuneV8(): void {
  v8.setFlagsFromString('--no-allocation-site-pretenuring');
}
