// A real Pulsar broker for a test file (scripts/pulsar-broker.ts): started before its tests (or
// shared through ACA_TEST_PULSAR_DIR), stopped after; a test without one is skipped with the
// reason printed.
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { type Broker, brokerForTests } from '../../scripts/pulsar-broker.js';

export function testBroker(name: string): { need: (t: { log: (m: string) => void; pass: () => void }) => Broker | null } {
  let broker: Broker | null = null;
  let own = false;
  let skipReason = '';
  const dir = join(tmpdir(), `aca-${name}-test-${process.pid}`);
  test.before(async (t) => {
    t.timeout(600_000, 'starting a Pulsar broker on a loaded machine');
    const started = Date.now();
    const b = await brokerForTests(dir);
    if ('skip' in b) {
      skipReason = b.skip;
      console.log(`${name} tests skipped: ${b.skip}`);
      return;
    }
    broker = b.broker;
    own = b.own;
    t.log(`broker ${broker.serviceUrl} (${own ? `started here in ${((Date.now() - started) / 1000).toFixed(1)} s` : 'shared, from ACA_TEST_PULSAR_DIR'})`);
  });
  test.after.always(async () => {
    if (broker && own) await broker.stop();
    if (own) rmSync(dir, { recursive: true, force: true });
  });
  return {
    need: (t) => {
      if (!broker) {
        t.log(`skipped: ${skipReason}`);
        t.pass();
      }
      return broker;
    },
  };
}

/** A topic or subscription name no other run shares. */
export const uniq = (name: string): string => `${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
