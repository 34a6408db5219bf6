/**
 * The control API's client (src/daemon/api.ts): a DaemonControl whose methods are HTTP requests
 * on the daemon's unix socket, so that the CLI commands are written against the interface and
 * tested against a fake. A failure becomes a CliError that says what to do:
 *
 *   ENOENT        no daemon: the socket does not exist
 *   ECONNREFUSED  a stale socket: nothing listens on it (the daemon died)
 *   EACCES/EPERM  the socket is root only (mode 0600)
 *   timeout       the daemon did not answer within `timeoutMs`
 *   an error body the daemon's own code and message
 *
 * A reload that found errors (HTTP 422) is a result, not a failure: its ReloadResult is returned.
 */
import { request } from 'node:http';
import type { Command } from 'commander';
import { API_ROUTES, RELOAD_NOT_APPLIED_STATUS, type ApiErrorBody, type ApiRoute } from '../daemon/api.ts';
import {
  DEFAULT_INSTANCE, checkInstanceName, defaultSocketPath,
  type DaemonControl, type KeepalivedJsonDump, type ReloadResult, type StatsReport, type StatusReport,
} from '../daemon/control.ts';
import { CliError } from './io.ts';

export interface ClientOptions {
  /** default 30 s (a reload waits for the configuration to be read and applied) */
  timeoutMs?: number;
}

export class ControlClient implements DaemonControl {
  readonly #timeoutMs: number;

  constructor(readonly socketPath: string, opts: ClientOptions = {}) {
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  status(): Promise<StatusReport> {
    return this.#call('status') as Promise<StatusReport>;
  }

  stats(): Promise<StatsReport> {
    return this.#call('stats') as Promise<StatsReport>;
  }

  reload(): Promise<ReloadResult> {
    return this.#call('reload') as Promise<ReloadResult>;
  }

  dump(): Promise<KeepalivedJsonDump> {
    return this.#call('dump') as Promise<KeepalivedJsonDump>;
  }

  #call(route: ApiRoute): Promise<unknown> {
    const { method, path } = API_ROUTES[route];
    const where = this.socketPath;
    return new Promise((resolve, reject) => {
      // one connection per request (agent: false): a kept-alive connection that the server closes
      // as it is reused fails the request with EPIPE / ECONNRESET, and a unix socket is cheap to open
      const req = request({ socketPath: where, method, path, agent: false, headers: { accept: 'application/json', connection: 'close' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(new CliError(`control socket ${where}: ${e.message}`)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            reject(new CliError(`control socket ${where}: ${method} ${path} answered HTTP ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`));
            return;
          }
          const status = res.statusCode ?? 0;
          if (status === 200 || (route === 'reload' && status === RELOAD_NOT_APPLIED_STATUS)) {
            resolve(body);
            return;
          }
          const err = (body as Partial<ApiErrorBody>).error;
          reject(new CliError(err ? `the daemon refused ${route} (${err.code}): ${err.message}` : `control socket ${where}: ${method} ${path} answered HTTP ${status}`));
        });
      });
      req.setTimeout(this.#timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (e: NodeJS.ErrnoException) => reject(connectError(where, e, this.#timeoutMs)));
      req.end();
    });
  }
}

function connectError(path: string, e: NodeJS.ErrnoException, timeoutMs: number): CliError {
  switch (e.code) {
    case 'ENOENT':
      return new CliError(`no xlb daemon: ${path} does not exist (is \`xlb run\` running? for another instance, use --instance NAME or --socket PATH)`);
    case 'ECONNREFUSED':
      return new CliError(`no xlb daemon listens on ${path} (a socket left by a daemon that stopped)`);
    case 'EACCES':
    case 'EPERM':
      return new CliError(`permission denied on ${path}: the control socket is root only (mode 0600); run as root`);
    case 'ETIMEDOUT':
      return new CliError(`the daemon on ${path} did not answer within ${timeoutMs / 1000} s`);
    default:
      return new CliError(`control socket ${path}: ${e.message}${e.code ? ` (${e.code})` : ''}`);
  }
}

// ---------------------------------------------------------------- the commands' connection options

/** The options every command that talks to the daemon takes. */
export interface ControlOptions {
  instance: string;
  socket?: string;
}

/** --instance and --socket on a command. */
export function addControlOptions(cmd: Command): Command {
  return cmd
    .option('--instance <name>', 'the xlb instance to talk to (its socket is /run/xlb/<name>.sock)', DEFAULT_INSTANCE)
    .option('--socket <path>', 'the control socket to talk to (instead of the instance\'s)');
}

/** The socket a command talks to: --socket, else the instance's. */
export function socketOf(opts: ControlOptions): string {
  if (opts.socket) return opts.socket;
  try {
    return defaultSocketPath(checkInstanceName(opts.instance));
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/** How commands get a DaemonControl for a socket; tests give a fake. */
export type ControlFactory = (socketPath: string) => DaemonControl;

export const realControl: ControlFactory = (socketPath) => new ControlClient(socketPath);
