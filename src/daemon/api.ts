/**
 * The control API: HTTP/1.1 with JSON bodies on a unix socket, served from a DaemonControl
 * (./control.ts). Every `xlb` command that talks to the daemon goes through it
 * (src/cli/client.ts); anything else that speaks HTTP can too:
 *
 *   curl --unix-socket /run/xlb/default.sock http://xlb/v1/status
 *
 * Routes (API_ROUTES; responses are `application/json`, one JSON value and a newline):
 *
 *   GET  /v1/status   200 StatusReport
 *   GET  /v1/stats    200 StatsReport
 *   POST /v1/reload   200 ReloadResult when applied; 422 ReloadResult when the file has errors
 *                     (nothing changed: the old configuration still runs)
 *   GET  /v1/dump     200 keepalived's JSON dump (KeepalivedJsonDump)
 *
 * Errors: { "error": { "code": CODE, "message": TEXT } } with the HTTP status of the code:
 * bad_request 400 (404 for an unknown path, 405 for a known path with another method), busy 409,
 * internal 500, unsupported 501, unavailable 503. Request bodies are not read (none is needed).
 *
 * The socket (default /run/xlb/<instance>.sock) is root only: it is created with mode 0600 (the
 * process umask is 0177 while it is bound, then it is chmod-ed again and checked), in a directory
 * created with mode 0700 when missing. A socket file left by a daemon that died is replaced; a
 * socket that answers (another daemon of the same instance) or a path that is not a socket is an
 * error that names it. The socket file is removed on close.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { ControlError, requestPath, type ControlErrorCode, type DaemonControl } from './control.ts';

/** The routes, by the DaemonControl method they call. */
export const API_ROUTES = {
  status: { method: 'GET', path: '/v1/status' },
  stats: { method: 'GET', path: '/v1/stats' },
  reload: { method: 'POST', path: '/v1/reload' },
  dump: { method: 'GET', path: '/v1/dump' },
} as const satisfies Record<keyof DaemonControl, { method: string; path: string }>;

export type ApiRoute = keyof typeof API_ROUTES;

/** The HTTP status of each error code. */
export const ERROR_STATUS: Readonly<Record<ControlErrorCode, number>> = {
  bad_request: 400, busy: 409, internal: 500, unsupported: 501, unavailable: 503,
};

/** The HTTP status of a reload that found errors (its body is still a ReloadResult). */
export const RELOAD_NOT_APPLIED_STATUS = 422;

/** The body of every error response. */
export interface ApiErrorBody {
  error: { code: ControlErrorCode; message: string };
}

export interface ControlServerOptions {
  control: DaemonControl;
  socketPath: string;
  /** a line for each failed request (a bug of the daemon: `internal`) */
  log?: (level: 'warn' | 'error', message: string) => void;
}

/** Is something listening on this unix socket? */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Make room for the socket: its directory, and no stale socket in the way. */
async function prepare(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) throw new Error(`control socket ${path}: the path exists and is not a socket; remove it or choose another path`);
  if (await answers(path)) throw new Error(`control socket ${path}: another daemon is listening on it (is this xlb instance already running? use --instance)`);
  unlinkSync(path); // a stale socket from a daemon that died
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: ControlErrorCode, message: string): void {
  send(res, status, { error: { code, message } } satisfies ApiErrorBody);
}

export class ControlServer {
  private constructor(private readonly server: Server, readonly socketPath: string) {}

  /** Bind the socket (mode 0600) and serve `control` on it. */
  static async start(opts: ControlServerOptions): Promise<ControlServer> {
    const { socketPath: path } = opts;
    await prepare(path);
    const server = createServer((req, res) => {
      handle(opts, req, res).catch((e: unknown) => {
        // a failure outside the daemon's call (writing the response): the connection goes
        opts.log?.('error', `control API ${req.method} ${req.url}: ${e instanceof Error ? e.message : String(e)}`);
        res.destroy();
      });
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // the bind happens inside listen(): with umask 0177 the socket is born 0600
      const old = process.umask(0o177);
      try {
        server.listen(path, () => { server.off('error', reject); resolve(); });
      } finally {
        process.umask(old);
      }
    });
    try {
      chmodSync(path, 0o600);
      const mode = lstatSync(path).mode & 0o777;
      if (mode !== 0o600) throw new Error(`control socket ${path}: mode is ${mode.toString(8)}, not 600`);
    } catch (e) {
      server.close();
      throw e;
    }
    return new ControlServer(server, path);
  }

  /** Stop listening, end idle connections, remove the socket file. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
    try {
      unlinkSync(this.socketPath);
    } catch { /* removed by close() already, or by someone else */ }
  }
}

async function handle(opts: ControlServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  req.resume(); // no route reads a body
  const path = requestPath(req.url);
  if (path === null) {
    sendError(res, 400, 'bad_request', `cannot read the request target ${JSON.stringify(req.url)}`);
    return;
  }
  const entry = (Object.entries(API_ROUTES) as [ApiRoute, (typeof API_ROUTES)[ApiRoute]][]).find(([, r]) => r.path === path);
  if (!entry) {
    const known = Object.values(API_ROUTES).map((r) => `${r.method} ${r.path}`).join(', ');
    sendError(res, 404, 'bad_request', `no route ${path} (routes: ${known})`);
    return;
  }
  const [name, route] = entry;
  if (req.method !== route.method && !(route.method === 'GET' && req.method === 'HEAD')) {
    res.setHeader('allow', route.method);
    sendError(res, 405, 'bad_request', `${path} takes ${route.method}, not ${req.method}`);
    return;
  }
  try {
    const body = await opts.control[name]();
    const status = name === 'reload' && !(body as { applied: boolean }).applied ? RELOAD_NOT_APPLIED_STATUS : 200;
    send(res, status, body);
  } catch (e) {
    if (e instanceof ControlError) {
      sendError(res, ERROR_STATUS[e.code], e.code, e.message);
    } else {
      const message = e instanceof Error ? e.message : String(e);
      opts.log?.('error', `control API ${req.method} ${path}: ${e instanceof Error && e.stack ? e.stack : message}`);
      sendError(res, 500, 'internal', message);
    }
  }
}
