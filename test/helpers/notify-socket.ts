// A datagram socket standing in for systemd's notify socket ($NOTIFY_SOCKET): collects what the
// agent sends, one message per datagram, each parsed into its KEY=VALUE assignments.
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './wait.js';

interface DgramSocket {
  bind(path: string): void;
  on(event: 'message', cb: (buf: Buffer) => void): void;
  on(event: 'error', cb: (e: Error) => void): void;
  close(): void;
}

export class NotifySocket {
  readonly path: string;
  readonly messages: Record<string, string>[] = [];
  private readonly socket: DgramSocket;

  constructor() {
    this.path = join(mkdtempSync(join(tmpdir(), 'aca-notify-')), 'notify.sock');
    const dgram = createRequire(import.meta.url)('unix-dgram') as { createSocket(type: 'unix_dgram'): DgramSocket };
    this.socket = dgram.createSocket('unix_dgram');
    this.socket.on('message', (buf) => {
      const fields: Record<string, string> = {};
      for (const line of buf.toString('utf8').split('\n')) {
        const i = line.indexOf('=');
        if (i > 0) fields[line.slice(0, i)] = line.slice(i + 1);
      }
      this.messages.push(fields);
    });
    this.socket.on('error', () => undefined);
    this.socket.bind(this.path);
  }

  /** Waits for a message (after index `from`) that `match` accepts; returns its index. */
  async next(match: (m: Record<string, string>) => boolean, what: string, from = 0): Promise<number> {
    let found = -1;
    await until(() => {
      found = this.messages.findIndex((m, i) => i >= from && match(m));
      return found >= 0;
    }, what);
    return found;
  }

  close(): void {
    this.socket.close();
  }
}
