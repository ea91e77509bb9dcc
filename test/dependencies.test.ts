// The dependency index after any sequence of owners' reads: an owner is a reader of exactly what
// it read last. set() links and unlinks only what changed between two reads (a flood list reads
// thousands of inputs again with one added), so it is checked against a plain index.
import test from 'ava';
import fc from 'fast-check';
import { DependencyIndex } from '../dataplane/dependencies.js';

const INPUTS = ['subnet:S', 'port:P1', 'port:P2', 'binding:P1', 'binding:P2', 'port:P3', 'ports-of:S', 'vni:7'];
/** An input list without repeats, in any order. */
const reads = fc.uniqueArray(fc.constantFrom(...INPUTS), { maxLength: INPUTS.length });

test('readers follow the last reads of every owner, whatever changed between them', (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), reads), { maxLength: 40 }), (steps) => {
    const index = new DependencyIndex();
    const last = new Map<string, readonly string[]>();
    for (const [owner, inputs] of steps) {
      // Fresh strings, as the build context makes them: equal by value, not the same object.
      index.set(owner, inputs.map((s) => `${s.split(':')[0]}:${s.split(':')[1]}`));
      last.set(owner, inputs);
    }
    for (const input of INPUTS) {
      const got = new Set<string>();
      index.readersOf(input, got);
      const want = [...last].filter(([, ins]) => ins.includes(input)).map(([o]) => o).sort();
      if (JSON.stringify([...got].sort()) !== JSON.stringify(want)) return false;
    }
    for (const [owner, inputs] of last) if (JSON.stringify(index.inputsOf(owner)) !== JSON.stringify(inputs)) return false;
    return index.size === [...last.values()].filter((ins) => ins.length > 0).length;
  }), { numRuns: 500 });
  t.pass();
});

test('one input added to a long list links it alone and keeps the rest', (t) => {
  const index = new DependencyIndex();
  const ports = Array.from({ length: 1000 }, (_, i) => `port:P${i}`);
  index.set('flood-local:7', ports);
  index.set('flood-local:7', [...ports.slice(0, 500), 'port:new', ...ports.slice(500)]);
  index.set('flood-local:7', [...ports.slice(0, 500), 'port:new', ...ports.slice(501)]);
  const readers = (input: string): string[] => {
    const out = new Set<string>();
    index.readersOf(input, out);
    return [...out];
  };
  t.deepEqual(readers('port:new'), ['flood-local:7']);
  t.deepEqual(readers('port:P500'), [], 'the one dropped is unlinked');
  t.deepEqual(readers('port:P0'), ['flood-local:7']);
  t.deepEqual(readers('port:P999'), ['flood-local:7']);
  t.is(index.inputsOf('flood-local:7').length, 1000);
});
