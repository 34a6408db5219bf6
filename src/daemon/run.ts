/**
 * The daemon as a process (`xlb run`): starts ./daemon.ts's Daemon, writes the pid file, serves
 * the control API (./api.ts: HTTP + JSON on the unix socket, default /run/xlb/<instance>.sock,
 * root only) and, when asked, Prometheus /metrics (./metrics.ts), and turns signals into actions
 * as keepalived does:
 *
 *   SIGHUP           reload the configuration (./daemon.ts: an invalid file keeps what runs and
 *                    every problem is logged)
 *   SIGTERM, SIGINT  graceful stop, then exit 0
 *   SIGUSR1          write the data dump, SIGUSR2 the statistics dump (./dumps.ts)
 *
 * xlb never forks: it runs in the foreground under whatever supervises it (systemd:
 * contrib/xlb.service). keepalived's -n (--dont-fork) is accepted and changes nothing.
 *
 * The pid file (-p) holds the daemon's pid while it runs; a pid file whose process is alive
 * refuses the start (another xlb of that instance is running), a stale one is replaced. It is
 * removed at stop.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { ControlServer } from './api.ts';
import { defaultSocketPath, DEFAULT_INSTANCE } from './control.ts';
import { ConfigError, Daemon, formatProblem, type DaemonOptions } from './daemon.ts';
import { DATA_FILE, formatData, formatStats, STATS_FILE, writeDump } from './dumps.ts';
import { MetricsServer } from './metrics.ts';

export interface RunOptions extends DaemonOptions {
  pidFile?: string;
  /** where SIGUSR1/SIGUSR2 dumps go; default /tmp */
  dumpDir?: string;
  /** the control socket; default /run/xlb/<instance>.sock */
  socketPath?: string;
  /** serve Prometheus /metrics on this TCP address */
  metrics?: { host: string; port: number };
}

/** Is a process with this pid alive? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Write our pid to `path`; refused when it names another live process. */
export function claimPidFile(path: string): void {
  if (existsSync(path)) {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    if (Number.isInteger(pid) && pid !== process.pid && alive(pid)) {
      throw new Error(`${path}: xlb is already running as pid ${pid}`);
    }
  }
  writeFileSync(path, `${process.pid}\n`);
}

/**
 * Run until stopped by a signal; resolves with the exit code. A configuration that cannot be
 * used is logged problem by problem and gives exit code 4 (keepalived's KEEPALIVED_EXIT_CONFIG).
 */
export async function runDaemon(opts: RunOptions): Promise<number> {
  const log: Logger = opts.log;
  if (opts.pidFile) claimPidFile(opts.pidFile);
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(opts);
  } catch (err) {
    if (opts.pidFile) rmSync(opts.pidFile, { force: true });
    if (err instanceof ConfigError) {
      for (const p of err.problems) log[p.severity === 'error' ? 'error' : 'warn']({ component: 'config', pos: p.pos }, formatProblem(p));
      log.error({ component: 'daemon' }, `${err.message}: not started`);
      return 4;
    }
    throw err;
  }
  const servers: { close(): Promise<void> }[] = [];
  const apiLog = (level: 'warn' | 'error', message: string) => log[level]({ component: 'api' }, message);
  try {
    const socketPath = opts.socketPath ?? defaultSocketPath(opts.instance ?? DEFAULT_INSTANCE);
    servers.push(await ControlServer.start({ control: daemon, socketPath, log: apiLog }));
    log.info({ component: 'api', socket: socketPath }, 'control API listening');
    if (opts.metrics) {
      servers.push(await MetricsServer.start({ control: daemon, ...opts.metrics, log: apiLog }));
      log.info({ component: 'api', metrics: opts.metrics }, 'metrics listening');
    }
  } catch (err) {
    for (const s of servers) await s.close();
    await daemon.stop();
    if (opts.pidFile) rmSync(opts.pidFile, { force: true });
    throw err;
  }
  const dumpDir = opts.dumpDir ?? '/tmp';

  return new Promise<number>((resolveExit) => {
    const handlers: [NodeJS.Signals, () => void][] = [];
    const on = (sig: NodeJS.Signals, fn: () => void) => {
      process.on(sig, fn);
      handlers.push([sig, fn]);
    };
    const stop = (sig: string) => {
      log.info({ component: 'daemon', signal: sig }, 'stopping');
      for (const [s, fn] of handlers) process.off(s, fn);
      // a second TERM while stopping would kill us half-way: ignore them
      for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => undefined);
      void (async () => {
        try {
          for (const s of servers) await s.close();
          await daemon.stop();
        } catch (e) {
          log.error({ component: 'daemon', err: (e as Error).message }, 'stop failed');
        } finally {
          if (opts.pidFile) rmSync(opts.pidFile, { force: true });
          resolveExit(0);
        }
      })();
    };
    on('SIGTERM', () => stop('SIGTERM'));
    on('SIGINT', () => stop('SIGINT'));
    on('SIGHUP', () => {
      log.info({ component: 'daemon', signal: 'SIGHUP' }, 'reloading');
      daemon.reload().catch((e: Error) => log.error({ component: 'daemon', err: e.message }, `reload: ${e.message}`));
    });
    const dump = (what: 'data' | 'stats') => {
      const write = async () => (what === 'data'
        ? writeDump(dumpDir, DATA_FILE, formatData(await daemon.status()))
        : writeDump(dumpDir, STATS_FILE, formatStats(await daemon.stats())));
      write().then((path) => log.info({ component: 'daemon', path }, `${what} dump written`),
        (e: Error) => log.error({ component: 'daemon', err: e.message }, `${what} dump failed`));
    };
    on('SIGUSR1', () => dump('data'));
    on('SIGUSR2', () => dump('stats'));
  });
}
