// Admin HTTP API (loopback by default): health, readiness and the store, as JSON.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'winston';
import type { Kind } from '../dataplane/model.js';
import type { ResourceStore } from './store.js';

/** Plural names of the kinds in /v1/state. */
export const STATE_NAMES: Record<Kind, string> = {
  vpc: 'vpcs', subnet: 'subnets', port: 'ports', neighbor: 'neighbors', router: 'routers',
  dhcp: 'dhcp', securityGroup: 'securityGroups', gateway: 'gateways',
};

export interface AdminDeps {
  store: ResourceStore;
  ready: () => boolean;
  info: () => Record<string, unknown>;
  /** Installed flows, one JSON object each (absent when the dataplane programs none). */
  flows?: () => Record<string, unknown>[];
  /** The bridges the dataplane programs (an unknown ?bridge= is an error). */
  bridges?: () => readonly string[];
  /** ofproto/trace on the dataplane's switch, annotated with the resources behind each flow. */
  trace?: (spec: string) => Promise<string>;
  /** Prometheus text for GET /metrics. */
  metrics?: () => Promise<{ contentType: string; text: string }>;
}

const LIMIT_ERROR = 'limit must be an integer from 1 to 100000';
/** A page size from ?limit=, or null when it is not one. */
function pageLimit(text: string): number | null {
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= 100_000 ? n : null;
}

export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

export class AdminServer {
  private server: Server | null = null;
  port = 0;

  constructor(private readonly deps: AdminDeps, private readonly log: Logger) {}

  async start(address: string): Promise<number> {
    const { host, port } = splitHostPort(address);
    const server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.log.info('admin API listening', { address: `${host}:${this.port}` });
    return this.port;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const send = (code: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(text);
    };
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    if (req.method !== 'GET') return send(405, { error: `method ${req.method} not allowed` });
    switch (path) {
      case '/healthz':
        return send(200, { status: 'ok' });
      case '/readyz':
        return this.deps.ready() ? send(200, { status: 'ready' }) : send(503, { status: 'starting' });
      case '/v1/state': {
        const limit = url.searchParams.get('limit');
        if (limit !== null) {
          // Paged, one kind at a time: ?kind=neighbors&limit=N[&after=KEY], in store-key order;
          // `next` while more remain. A million neighbors need not be one JSON document.
          const name = url.searchParams.get('kind');
          const kind = (Object.keys(STATE_NAMES) as Kind[]).find((k) => STATE_NAMES[k] === name);
          if (!kind) return send(400, { error: `give ?kind= one of ${Object.values(STATE_NAMES).join(', ')} with ?limit=` });
          const n = pageLimit(limit);
          if (n === null) return send(400, { error: LIMIT_ERROR });
          const after = url.searchParams.get('after');
          const keys = [...this.deps.store.list(kind)].map((r) => r.key).filter((k) => after === null || k > after).sort();
          const page = keys.slice(0, n);
          return send(200, { [STATE_NAMES[kind]]: page.map((k) => this.deps.store.get(kind, k)), ...(keys.length > n ? { next: page.at(-1) } : {}) });
        }
        const snap = this.deps.store.snapshot();
        const body: Record<string, unknown> = {};
        for (const [kind, name] of Object.entries(STATE_NAMES)) body[name] = snap[kind as Kind];
        return send(200, body);
      }
      case '/v1/flows': {
        if (!this.deps.flows) return send(404, { error: 'this dataplane programs no flows' });
        const bridge = url.searchParams.get('bridge');
        const bridges = this.deps.bridges?.();
        if (bridge !== null && bridges && !bridges.includes(bridge)) {
          return send(404, { error: `no bridge ${bridge}: this agent programs ${bridges.join(', ')}` });
        }
        const flows = this.deps.flows().filter((f) => bridge === null || f.bridge === bridge);
        const limit = url.searchParams.get('limit');
        if (limit === null) return send(200, { flows });
        // Paged: ?limit=N[&after=CURSOR], in cursor order; `next` while more remain. A cursor
        // names a flow (bridge, table, priority, match), so pages stay consistent while flows change.
        const n = pageLimit(limit);
        if (n === null) return send(400, { error: LIMIT_ERROR });
        const after = url.searchParams.get('after');
        const cursor = (f: Record<string, unknown>): string => `${String(f.bridge)}|${String(f.table).padStart(3, '0')}|${String(f.priority).padStart(5, '0')}|${String(f.match)}`;
        const sorted = flows.map((f) => ({ f, c: cursor(f) })).sort((a, b) => (a.c < b.c ? -1 : a.c > b.c ? 1 : 0));
        const from = after === null ? 0 : sorted.findIndex((x) => x.c > after);
        const page = from < 0 ? [] : sorted.slice(from, from + n);
        const more = from >= 0 && from + n < sorted.length;
        return send(200, { flows: page.map((x) => x.f), ...(more ? { next: page.at(-1)!.c } : {}) });
      }
      case '/v1/trace': {
        const spec = url.searchParams.get('flow');
        if (!this.deps.trace) return send(404, { error: 'this dataplane has no switch to trace' });
        if (!spec) return send(400, { error: 'give the packet as ?flow=<flow string> or ?flow=in_port=N,<hex>' });
        this.deps.trace(spec).then(
          (text) => send(200, { trace: text }),
          (e: unknown) => send(400, { error: e instanceof Error ? e.message : String(e) }),
        );
        return;
      }
      case '/metrics': {
        if (!this.deps.metrics) return send(404, { error: 'no metrics' });
        this.deps.metrics().then(
          (m) => {
            res.writeHead(200, { 'content-type': m.contentType });
            res.end(m.text);
          },
          (e: unknown) => send(500, { error: e instanceof Error ? e.message : String(e) }),
        );
        return;
      }
      case '/v1/info':
        return send(200, { ...this.deps.info(), counts: this.deps.store.counts() });
      default:
        return send(404, { error: `no such endpoint ${path}` });
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
