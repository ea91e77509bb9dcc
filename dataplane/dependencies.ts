// The one dependency index: which owners read which inputs. Features never declare what makes
// them dirty by hand; the context they build with records every resource, topology index and
// port binding an owner reads, and a change to any of them makes exactly those owners dirty
// (as OVN's incremental engine tracks references). An input is a string: `<kind>:<key>` for a
// store resource, a topology topic (`ports-of:<subnet>`, ...), or `binding:<port id>`.

/** One owner: a string when it is the only one (most inputs), a set otherwise. */
type Owners = string | Set<string>;

const NO_INPUTS: readonly string[] = [];

export class DependencyIndex {
  private readonly readers = new Map<string, Owners>();
  /** owner → its inputs: a string when it reads one thing (a neighbor: its subnet), else a list. */
  private readonly reads = new Map<string, string | readonly string[]>();

  /**
   * Replace what an owner reads. `inputs` must hold no repeats (the build context removes them):
   * with repeats, an input in the skipped start could also be in the middle unlinked.
   */
  set(owner: string, inputs: readonly string[]): void {
    const before = this.reads.get(owner);
    const old: readonly string[] = before === undefined ? NO_INPUTS : typeof before === 'string' ? [before] : before;
    if (inputs.length === 0) this.reads.delete(owner);
    else this.reads.set(owner, inputs.length === 1 ? inputs[0]! : inputs);
    // Only what changed is unlinked and linked: an owner that reads thousands of inputs (a
    // network's flood list reads every port and binding, a remote group every member) mostly
    // reads them again in the same order, with one added or gone. The lists have no repeats, so
    // what the common start and end hold is in both, and the middles hold the rest.
    let start = 0;
    const most = Math.min(old.length, inputs.length);
    while (start < most && old[start] === inputs[start]) start++;
    let end = 0;
    while (end < most - start && old[old.length - 1 - end] === inputs[inputs.length - 1 - end]) end++;
    for (let i = start; i < old.length - end; i++) this.unlink(old[i]!, owner);
    for (let i = start; i < inputs.length - end; i++) this.link(inputs[i]!, owner);
  }

  private link(input: string, owner: string): void {
    const o = this.readers.get(input);
    if (o === undefined) this.readers.set(input, owner);
    else if (typeof o === 'string') {
      if (o !== owner) this.readers.set(input, new Set([o, owner]));
    } else o.add(owner);
  }

  private unlink(input: string, owner: string): void {
    const o = this.readers.get(input);
    if (o === undefined) return;
    if (typeof o === 'string') {
      if (o === owner) this.readers.delete(input);
    } else {
      o.delete(owner);
      if (o.size === 1) this.readers.set(input, o.values().next().value!);
      else if (o.size === 0) this.readers.delete(input);
    }
  }

  /** Add every owner that reads `input` to `out`. */
  readersOf(input: string, out: { add(owner: string): unknown }): void {
    const o = this.readers.get(input);
    if (o === undefined) return;
    if (typeof o === 'string') out.add(o);
    else for (const x of o) out.add(x);
  }

  inputsOf(owner: string): readonly string[] {
    const r = this.reads.get(owner);
    return r === undefined ? [] : typeof r === 'string' ? [r] : r;
  }

  get size(): number {
    return this.reads.size;
  }
}
