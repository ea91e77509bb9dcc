// /v1/flows pages on request (?limit=&after=): every flow exactly once across the pages, in
// cursor order, `next` until the last page; without limit the shape is as it always was.
import test from 'ava';
import { bigState, pushOne, withAgent } from './helpers/agents.js';

test('/v1/flows?limit=&after= pages through every flow exactly once', async (t) => {
  await withAgent(async (agent, addr) => {
    const r = await pushOne(addr, bigState(300));
    t.true(r.operationStatuses.every((s) => s.operationStatus === 0));
    const admin = `http://127.0.0.1:${agent.adminPort}`;
    const all = (await (await fetch(`${admin}/v1/flows`)).json()) as { flows: Record<string, unknown>[]; next?: string };
    t.true(all.flows.length > 600);
    t.is(all.next, undefined);
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const page = (await (await fetch(`${admin}/v1/flows?limit=250${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`)).json()) as { flows: Record<string, unknown>[]; next?: string };
      pages += 1;
      t.true(page.flows.length <= 250);
      for (const f of page.flows) seen.push(JSON.stringify(f));
      if (page.next === undefined) break;
      after = page.next;
    }
    t.is(pages, Math.ceil(all.flows.length / 250));
    t.deepEqual([...seen].sort(), all.flows.map((f) => JSON.stringify(f)).sort());
    t.is(new Set(seen).size, seen.length, 'no flow twice');
    t.is((await fetch(`${admin}/v1/flows?limit=0`)).status, 400);
  });
});

test('/v1/state?kind=&limit=&after= pages one kind through every resource exactly once', async (t) => {
  await withAgent(async (agent, addr) => {
    t.true((await pushOne(addr, bigState(250))).operationStatuses.every((s) => s.operationStatus === 0));
    const admin = `http://127.0.0.1:${agent.adminPort}`;
    const keys: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = (await (await fetch(`${admin}/v1/state?kind=neighbors&limit=100${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`)).json()) as { neighbors: { key: string }[]; next?: string };
      t.true(page.neighbors.length <= 100);
      keys.push(...page.neighbors.map((n) => n.key));
      if (page.next === undefined) break;
      after = page.next;
    }
    t.deepEqual(keys, [...agent.store.list('neighbor')].map((n) => n.key).sort());
    t.is((await fetch(`${admin}/v1/state?limit=10`)).status, 400, 'a kind is needed');
    const whole = (await (await fetch(`${admin}/v1/state`)).json()) as Record<string, unknown[]>;
    t.is(whole.neighbors!.length, 250, 'without limit the answer is as it always was');
  });
});
