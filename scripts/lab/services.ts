/**
 * The real servers' services in the lab, started detached (they outlive the process that started
 * them, for `scripts/lab/lab up`) with their files in the lab's state directory; the lab's
 * teardown kills every process in its namespaces.
 *
 * Every real serves, on all of its addresses (the VIP on lo included):
 *   HTTP  :80 and :8080   "NAME\n", header x-lab-port: the port the request came to (8080 lets
 *                         NAT show a port rewrite: VIP :80 -> real :8080)
 *   UDP   :7              echo, the reply is "NAME: " + the datagram
 *   TCP   :7              "NAME\n" first, then an echo of every byte (long-lived streams)
 * HTTP comes from scripts/lab/real-server.ts (node, the default) or from nginx (fast, for the
 * benchmarks: its own config per real, one worker, no access log); the echoes always come from
 * real-server.ts.
 */
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const HTTP_PORTS = [80, 8080] as const;
export const ECHO_PORT = 7;
/** The HTTP response header naming the port the request came to. */
export const PORT_HEADER = 'x-lab-port';
export const HTTP_SERVERS = ['node', 'nginx'] as const;
export type HttpServerKind = (typeof HTTP_SERVERS)[number];

const REPO = resolve(import.meta.dirname, '../..');
const REAL_SERVER = resolve(import.meta.dirname, 'real-server.ts');
const READY_TIMEOUT_MS = 20_000;

/**
 * The start of an nginx config whose files all live in `dir`: one worker, pid and error log in
 * `dir`, no access log, temporary files in `dir`; the caller adds its `server` blocks and closes
 * the `http` block.
 */
export function nginxPreamble(dir: string): string[] {
  return [
    'daemon on;',
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'nginx-error.log')} warn;`,
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    `  client_body_temp_path ${join(dir, 'body')};`,
    `  proxy_temp_path ${join(dir, 'proxy')};`,
    `  fastcgi_temp_path ${join(dir, 'fastcgi')};`,
    `  uwsgi_temp_path ${join(dir, 'uwsgi')};`,
    `  scgi_temp_path ${join(dir, 'scgi')};`,
  ];
}

export function nginxConfig(name: string, dir: string): string {
  const listen = HTTP_PORTS.flatMap((p) => [`    listen ${p};`, `    listen [::]:${p} ipv6only=on;`]);
  return [
    ...nginxPreamble(dir),
    '  server {',
    ...listen,
    '    default_type text/plain;',
    `    add_header ${PORT_HEADER} $server_port always;`,
    `    location / { return 200 "${name}\\n"; }`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * Start one real's services in namespace `ns`, files in `dir`; `onPid` learns every process
 * started (before it is known to have entered the namespace). Resolves once every port is bound.
 */
export async function startRealServices(o: {
  ns: string; name: string; dir: string; http: HttpServerKind; onPid: (pid: number) => void;
}): Promise<void> {
  mkdirSync(o.dir, { recursive: true });
  const log = join(o.dir, 'real-server.log');
  const fd = openSync(log, 'w');
  const args = [o.name, ...(o.http === 'node' ? ['--http', HTTP_PORTS.join(',')] : []), '--echo', String(ECHO_PORT)];
  let exited: string | undefined;
  try {
    const child = spawn('ip', ['netns', 'exec', o.ns, process.execPath, '--import', 'tsx', REAL_SERVER, ...args], {
      cwd: REPO, detached: true, stdio: ['ignore', fd, fd],
    });
    if (child.pid !== undefined) o.onPid(child.pid);
    child.once('exit', (code, signal) => { exited = signal ?? `code ${code}`; });
    child.once('error', (err) => { exited = err.message; });
    child.unref();
  } finally {
    closeSync(fd);
  }
  if (o.http === 'nginx') startNginx(o);
  for (let waited = 0; ; waited += 25) {
    if (/^ready /m.test(readFileSync(log, 'utf8'))) return;
    if (exited !== undefined || waited >= READY_TIMEOUT_MS) {
      const why = exited === undefined ? `not ready after ${READY_TIMEOUT_MS} ms` : `exited (${exited})`;
      throw new Error(`${o.name}: real-server.ts ${why}: ${readFileSync(log, 'utf8').trim() || 'no output'}`);
    }
    await new Promise((ok) => setTimeout(ok, 25));
  }
}

/** nginx binds its ports before it daemonizes: once `nginx` returns, it serves. */
function startNginx(o: { ns: string; name: string; dir: string; onPid: (pid: number) => void }): void {
  const conf = join(o.dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig(o.name, o.dir));
  try {
    execFileSync('ip', ['netns', 'exec', o.ns, 'nginx', '-p', o.dir, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as Error & { stderr?: Buffer; code?: string };
    if (e.code === 'ENOENT' || /nginx.*(not found|No such file)/.test(String(e.stderr))) {
      throw new Error("'nginx' is not installed (Debian package nginx-light): run scripts/setup");
    }
    throw new Error(`${o.name}: nginx did not start: ${String(e.stderr ?? e.message).trim()}`);
  }
  const pidFile = join(o.dir, 'nginx.pid');
  if (existsSync(pidFile)) o.onPid(Number(readFileSync(pidFile, 'utf8').trim()));
}
