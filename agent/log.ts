// One winston logger per agent: JSON for machines, text for people, and `journal` for journald
// (systemd captures stderr): text without our own timestamp (journald stamps each line) and with
// the sd-daemon(3) priority prefix `<N>`, so `journalctl -p warning` and colours work.
import winston from 'winston';

export type LogFormat = 'json' | 'text' | 'journal';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** syslog priorities of our levels (sd-daemon(3)): err, warning, info, debug. */
const JOURNAL_PRIORITY: Record<string, number> = { error: 3, warn: 4, info: 6, debug: 7 };

export function createLogger(level: LogLevel, format: LogFormat, stream: NodeJS.WritableStream = process.stderr): winston.Logger {
  const text = winston.format.printf(({ level: l, message, timestamp, ...meta }) => {
    const rest = Object.keys(meta).length > 0 ? ` ${JSON.stringify(meta)}` : '';
    return `${String(timestamp)} ${l} ${String(message)}${rest}`;
  });
  const journal = winston.format.printf(({ level: l, message, timestamp: _t, ...meta }) => {
    const rest = Object.keys(meta).length > 0 ? ` ${JSON.stringify(meta)}` : '';
    return `<${JOURNAL_PRIORITY[l] ?? 6}>${l} ${String(message)}${rest}`;
  });
  return winston.createLogger({
    level,
    format: winston.format.combine(
      winston.format.timestamp(),
      format === 'json' ? winston.format.json() : format === 'journal' ? journal : text,
    ),
    transports: [new winston.transports.Stream({ stream })],
  });
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): winston.Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
