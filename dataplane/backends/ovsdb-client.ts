// A small OVSDB JSON-RPC client (RFC 7047) over a unix socket or TCP: transact, monitor with
// update notifications, echo. Enough to own bridges and ports and to watch interfaces appear
// without polling. No child processes.
import { type Socket, connect } from 'node:net';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

type TableUpdates = Record<string, Record<string, { new?: Record<string, Json>; old?: Record<string, Json> }>>;

interface Pending {
  resolve(v: Json): void;
  reject(e: Error): void;
}

export class OvsdbError extends Error {}

/** Splits a byte stream of concatenated JSON texts (OVSDB has no other framing). */
export class JsonStreamSplitter {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escape = false;
  private scanned = 0;

  push(chunk: string, emit: (text: string) => void): void {
    this.buf += chunk;
    let start = 0;
    for (let i = this.scanned; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (this.inString) {
        if (this.escape) this.escape = false;
        else if (c === '\\') this.escape = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') {
        this.inString = true;
      } else if (c === '{' || c === '[') {
        this.depth += 1;
      } else if (c === '}' || c === ']') {
        this.depth -= 1;
        if (this.depth === 0) {
          emit(this.buf.slice(start, i + 1));
          start = i + 1;
        }
      }
    }
    this.buf = this.buf.slice(start).replace(/^\s+/, '');
    this.scanned = this.buf.length;
  }
}

export function parseAddress(address: string): { path: string } | { host: string; port: number } {
  if (address.startsWith('unix:')) return { path: address.slice(5) };
  const m = /^tcp:(.+):(\d+)$/.exec(address);
  if (m) return { host: m[1]!, port: Number(m[2]) };
  throw new OvsdbError(`unsupported OVSDB address ${address} (unix:PATH or tcp:HOST:PORT)`);
}

export class OvsdbClient {
  private socket: Socket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly monitors = new Map<string, (update: TableUpdates, initial: boolean) => void>();
  private closed = false;
  onClose: ((error: Error | null) => void) | null = null;

  constructor(readonly address: string) {}

  /** Connected and not closed by us. */
  get connected(): boolean {
    return this.socket !== null && !this.closed;
  }

  connect(): Promise<void> {
    const target = parseAddress(this.address);
    return new Promise((resolve, reject) => {
      const socket = 'path' in target ? connect(target.path) : connect(target.port, target.host);
      const splitter = new JsonStreamSplitter();
      socket.setEncoding('utf8');
      socket.once('connect', () => {
        this.socket = socket;
        resolve();
      });
      // Errors after connecting end in 'close', which reports them.
      socket.on('error', (e) => {
        if (!this.socket) reject(new OvsdbError(`cannot connect to OVSDB at ${this.address}: ${e.message}`));
      });
      socket.on('data', (chunk: string) => splitter.push(chunk, (text) => this.receive(text)));
      socket.on('close', () => {
        const err = this.closed ? null : new OvsdbError(`OVSDB connection to ${this.address} closed`);
        for (const p of this.pending.values()) p.reject(err ?? new OvsdbError('client closed'));
        this.pending.clear();
        this.socket = null;
        this.onClose?.(err);
      });
    });
  }

  private receive(text: string): void {
    let msg: { id?: Json; method?: string; params?: Json[]; result?: Json; error?: Json };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    if (msg.method === 'echo') {
      this.send({ id: msg.id ?? null, result: msg.params ?? [], error: null });
    } else if (msg.method === 'update' && Array.isArray(msg.params)) {
      const [monitorId, update] = msg.params;
      this.monitors.get(JSON.stringify(monitorId))?.(update as never, false);
    } else if (typeof msg.id === 'number') {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error !== null && msg.error !== undefined) p.reject(new OvsdbError(`OVSDB error: ${JSON.stringify(msg.error)}`));
      else p.resolve(msg.result ?? null);
    }
  }

  private send(obj: Record<string, Json>): void {
    if (!this.socket) throw new OvsdbError('OVSDB not connected');
    this.socket.write(JSON.stringify(obj));
  }

  request(method: string, params: Json[]): Promise<Json> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.send({ id, method, params });
      } catch (e) {
        this.pending.delete(id);
        reject(e instanceof Error ? e : new OvsdbError(String(e)));
      }
    });
  }

  /** One transaction; rejects if any operation failed, with OVSDB's error. */
  async transact(db: string, ops: Record<string, Json>[]): Promise<Json[]> {
    const result = (await this.request('transact', [db, ...ops])) as Json[];
    const failed = result.find((r) => r !== null && typeof r === 'object' && !Array.isArray(r) && 'error' in r);
    if (failed) throw new OvsdbError(`OVSDB transaction failed: ${JSON.stringify(failed)}`);
    return result;
  }

  /** Monitor tables; the initial contents arrive as the first update (`initial` true). */
  async monitor(
    db: string, id: string, requests: Record<string, { columns: string[] }>,
    onUpdate: (update: TableUpdates, initial: boolean) => void,
  ): Promise<void> {
    this.monitors.set(JSON.stringify(id), onUpdate);
    const initial = await this.request('monitor', [db, id, requests]);
    onUpdate(initial as never, true);
  }

  close(): void {
    this.closed = true;
    this.socket?.end();
    this.socket?.destroy();
  }
}

/** OVSDB's encoding of a map column: ["map", [[k, v], ...]]. */
export function ovsMap(value: Json | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (Array.isArray(value) && value[0] === 'map' && Array.isArray(value[1])) {
    for (const pair of value[1]) {
      if (Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string') out.set(pair[0], pair[1]);
    }
  }
  return out;
}

/** OVSDB's encoding of an optional integer: a number, or ["set", []] when empty. */
export function ovsInteger(value: Json | undefined): number | undefined {
  if (typeof value === 'number') return value;
  if (Array.isArray(value) && value[0] === 'set' && Array.isArray(value[1]) && typeof value[1][0] === 'number') return value[1][0];
  return undefined;
}
