// The systemd notify protocol (sd_notify(3)), spoken by the agent itself: newline-separated
// `KEY=VALUE` assignments in one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET. Node has
// no datagram unix sockets, so the datagram goes out through `unix-dgram` (a small native addon,
// loaded only when $NOTIFY_SOCKET is set). Without $NOTIFY_SOCKET every call is a no-op, so the
// agent runs the same outside systemd.
//
// The watchdog: with $WATCHDOG_USEC set (WatchdogSec= in the unit) and $WATCHDOG_PID unset or
// ours, WATCHDOG=1 goes out every half period, but only while the health check passes; a
// blocked event loop sends nothing either. systemd then kills and restarts the agent.
import { createRequire } from 'node:module';

interface DgramSocket {
  send(buf: Buffer, offset: number, length: number, path: string, cb: (err?: Error) => void): void;
  on(event: 'error', cb: (e: Error) => void): void;
  close(): void;
}

export interface Health {
  ok: boolean;
  /** Why not, when not ok. */
  reason?: string;
}

export interface NotifyLog {
  warn(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
}

export class SdNotify {
  /** The socket path, or null when not run by systemd with Type=notify. */
  readonly path: string | null;
  /** Half of WATCHDOG_USEC in ms, or null when systemd does not watch us. */
  readonly watchdogMs: number | null;
  private socket: DgramSocket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private unhealthy: string | null = null;

  constructor(env: NodeJS.ProcessEnv, private readonly log: NotifyLog, pid = process.pid) {
    const path = env.NOTIFY_SOCKET ?? '';
    if (path.startsWith('@')) {
      // unix-dgram copies the path as a C string, so abstract addresses cannot be reached.
      log.warn('NOTIFY_SOCKET is an abstract socket address, which this agent cannot reach; no readiness or watchdog notifications will be sent', { notifySocket: path });
      this.path = null;
    } else {
      this.path = path === '' ? null : path;
    }
    const usec = Number(env.WATCHDOG_USEC ?? '');
    const forUs = env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === '' || Number(env.WATCHDOG_PID) === pid;
    this.watchdogMs = this.path !== null && Number.isFinite(usec) && usec > 0 && forUs ? Math.max(1, Math.floor(usec / 2000)) : null;
  }

  get enabled(): boolean {
    return this.path !== null;
  }

  /** Sends one datagram of assignments (e.g. {READY: '1', STATUS: '…'}); resolves when sent. */
  async notify(fields: Record<string, string | number>): Promise<boolean> {
    if (this.path === null) return false;
    const text = Object.entries(fields).map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`).join('\n');
    const socket = this.open();
    const buf = Buffer.from(text, 'utf8');
    const path = this.path;
    return new Promise((resolve) => {
      socket.send(buf, 0, buf.length, path, (err) => {
        if (err) this.log.warn('sd_notify failed', { notifySocket: path, error: err.message, sent: text });
        else this.log.debug('sd_notify', { sent: text });
        resolve(!err);
      });
    });
  }

  /**
   * Starts the watchdog pings (when systemd asked for them). `health` runs at each tick; a
   * failing check skips the ping (and logs once why) so that systemd restarts a stuck agent.
   * `status` adds a STATUS= line to each ping.
   */
  startWatchdog(health: () => Health, status?: () => string): void {
    if (this.watchdogMs === null || this.timer) return;
    const tick = (): void => {
      const h = health();
      if (!h.ok) {
        if (this.unhealthy !== h.reason) this.log.warn('unhealthy: watchdog pings withheld', { reason: h.reason });
        this.unhealthy = h.reason ?? 'unhealthy';
        return;
      }
      this.unhealthy = null;
      void this.notify({ WATCHDOG: 1, ...(status ? { STATUS: status() } : {}) });
    };
    tick();
    this.timer = setInterval(tick, this.watchdogMs);
  }

  stopWatchdog(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  close(): void {
    this.stopWatchdog();
    try {
      this.socket?.close();
    } catch {
      // already closed
    }
    this.socket = null;
  }

  private open(): DgramSocket {
    if (this.socket) return this.socket;
    const require = createRequire(import.meta.url);
    const dgram = require('unix-dgram') as { createSocket(type: 'unix_dgram'): DgramSocket };
    const socket = dgram.createSocket('unix_dgram');
    socket.on('error', (e) => this.log.warn('sd_notify socket error', { error: e.message }));
    this.socket = socket;
    return socket;
  }
}

/** The monotonic clock in µs, as MONOTONIC_USEC= wants it with RELOADING=1. */
export function monotonicUsec(): string {
  return String(process.hrtime.bigint() / 1000n);
}
