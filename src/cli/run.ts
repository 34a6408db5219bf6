/**
 * `xlb run`: the daemon in the foreground (src/daemon/run.ts), with keepalived's options where
 * they make sense:
 *
 *   -f, --use-file FILE   the configuration (default /etc/keepalived/keepalived.conf)
 *   -P, --vrrp            VRRP only (no checks, no datapath)
 *   -C, --check           checks and balancing only (no VRRP)
 *   -n, --dont-fork       accepted: xlb always stays in the foreground
 *   -l, --log-console     readable log lines (default: on a terminal; JSON lines otherwise)
 *   -D, --log-detail      debug messages too
 *   -p, --pid FILE        pid file
 * and xlb's own: --instance (names the control socket and the BPF pins), --xdp-interface,
 * --xdp-mode, --keep-datapath (what a stop does to the datapath), --log-json, --dump-dir,
 * --socket (the control API), --metrics (Prometheus).
 */
import { CommanderError, InvalidArgumentError, Option, type Command } from 'commander';
import { defaultSocketPath, parseListenAddress } from '../daemon/control.ts';
import type { RunOptions } from '../daemon/run.ts';
import { CliError, requireRoot, type CliIo } from './io.ts';

export const DEFAULT_CONFIG = '/etc/keepalived/keepalived.conf';

export interface RunCliOptions {
  useFile: string;
  vrrp?: boolean;
  check?: boolean;
  dontFork?: boolean;
  logConsole?: boolean;
  logJson?: boolean;
  logDetail?: boolean;
  pid?: string;
  instance: string;
  xdpInterface?: string[];
  xdpMode: 'native' | 'generic';
  keepDatapath?: boolean;
  dumpDir: string;
  socket?: string;
  metrics?: { host: string; port: number };
}

/** What `xlb run` does with its options (resolves to the exit code); tests pass a fake. */
export type RunOps = (opts: RunOptions) => Promise<number>;

/**
 * The daemon, then the process's exit: sockets and watchers of a stopped daemon must not hold it.
 * The daemon's modules are loaded here, not when the command line is built, so that the other
 * commands (status, stats, ...) start without them (about a second of CPU).
 */
export const realRun: RunOps = async (opts) => {
  const { runDaemon } = await import('../daemon/run.ts');
  const code = await runDaemon(opts);
  opts.log.flush();
  process.exit(code);
};

function metricsAddress(text: string): { host: string; port: number } {
  try {
    return parseListenAddress(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export function registerRun(program: Command, io: CliIo, run: RunOps = realRun): void {
  program
    .command('run')
    .description('run the xlb daemon in the foreground: VRRP, health checks and the XDP datapath from a keepalived.conf')
    .addOption(new Option('-f, --use-file <file>', 'the configuration file (keepalived.conf; FILE.json: the model as JSON)').default(DEFAULT_CONFIG))
    .addOption(new Option('-P, --vrrp', 'run VRRP only (no health checks, no datapath)').conflicts('check'))
    .addOption(new Option('-C, --check', 'run the health checks and the datapath only (no VRRP)'))
    .option('-n, --dont-fork', 'stay in the foreground (xlb always does; accepted for keepalived\'s command lines)')
    .addOption(new Option('-l, --log-console', 'readable log lines (default on a terminal)').conflicts('logJson'))
    .option('--log-json', 'JSON log lines (default when standard error is not a terminal)')
    .option('-D, --log-detail', 'log debug messages too')
    .option('-p, --pid <file>', 'write the daemon\'s pid to this file (refused if it names a live process)')
    .option('--instance <name>', 'instance name: the control socket /run/xlb/NAME.sock, the BPF pins /sys/fs/bpf/xlb/NAME', 'default')
    .option('--xdp-interface <ifname...>', 'attach the XDP forwarder to these interfaces (default: the VRRP instances\' interfaces)')
    .addOption(new Option('--xdp-mode <mode>', 'XDP attach mode').choices(['native', 'generic']).default('native'))
    .option('--keep-datapath', 'at stop, leave the XDP program attached with its services (forwarding goes on; the next start adopts it); default: remove them, as keepalived removes its IPVS services')
    .option('--socket <path>', `the control API's unix socket (default ${defaultSocketPath('NAME')})`)
    .addOption(new Option('--metrics <address>', 'serve Prometheus /metrics on HOST:PORT, [IPV6]:PORT or :PORT (default: off)').argParser(metricsAddress))
    .option('--dump-dir <dir>', 'where SIGUSR1 / SIGUSR2 write keepalived.data / keepalived.stats', '/tmp')
    .addHelpText('after', `
Signals: HUP reloads the configuration (an invalid file keeps the running one; every problem is
logged), TERM and INT stop gracefully (VRRP priority 0, addresses removed), USR1 writes the data
dump and USR2 the statistics dump to the dump directory.

Example:
  xlb run -f /etc/keepalived/keepalived.conf -p /run/xlb.pid`)
    .action(async (o: RunCliOptions) => {
      requireRoot(io, 'xlb run');
      if (o.vrrp && o.check) throw new CliError('-P (VRRP only) and -C (checks only) exclude each other');
      const { createLogger } = await import('../daemon/log.ts');
      const log = createLogger({ ...(o.logConsole ? { pretty: true } : o.logJson ? { pretty: false } : {}), detail: o.logDetail ?? false });
      const code = await run({
        configFile: o.useFile, instance: o.instance, vrrp: !o.check, services: !o.vrrp,
        ...(o.xdpInterface ? { interfaces: o.xdpInterface } : {}), xdpMode: o.xdpMode,
        datapathOnStop: o.keepDatapath ? 'keep' : 'remove', log,
        ...(o.pid ? { pidFile: o.pid } : {}), dumpDir: o.dumpDir,
        ...(o.socket ? { socketPath: o.socket } : {}), ...(o.metrics ? { metrics: o.metrics } : {}),
      });
      if (code !== 0) throw new CommanderError(code, 'xlb.run', `xlb run: exit ${code}`);
    });
}
