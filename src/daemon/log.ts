/**
 * The daemon's logs, through pino: one JSON object per line (level, time, msg, and the fields a
 * message carries) when standard error is not a terminal (systemd's journal, a file, a test
 * reading them), and pino-pretty's readable lines on a terminal (without the `pos` field: the
 * message starts with file:line:col already). `xlb run -l` (keepalived's
 * --log-console) forces the readable form, `--log-json` the JSON one; `-D` (--log-detail) turns
 * on debug messages.
 *
 * Components log through a child logger with `component` set ('vrrp', 'health', 'datapath',
 * 'reconcile', 'config', 'daemon'), so that a line says where it comes from. Synchronous writes
 * (pino.destination sync): a line is out before a crash or an exit.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export interface LogOptions {
  /** readable lines instead of JSON; default: when stderr is a terminal */
  pretty?: boolean;
  /** debug messages too (-D) */
  detail?: boolean;
  /** where to write (default: standard error, fd 2) */
  fd?: number;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const fd = opts.fd ?? 2;
  const readable = opts.pretty ?? (fd === 2 && process.stderr.isTTY === true);
  const level = opts.detail ? 'debug' : 'info';
  const base = { name: 'xlb' };
  if (readable) {
    return pino({ level, base }, pretty({ destination: fd, sync: true, colorize: process.stderr.isTTY === true, ignore: 'pid,hostname,name,pos' }));
  }
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd, sync: true }));
}

/** A logger that writes nothing (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
