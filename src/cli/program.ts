/**
 * The `xlb` command line: one commander program, each command in a module of its own that
 * registers itself here (src/cli/decap.ts: `xlb decap ...`). The commands that ask the running
 * daemon (status, stats, services, reload, dump) talk to it only through its control API
 * (src/cli/client.ts, a DaemonControl over the unix socket); `xlb decap` is a local tool for
 * real servers (which run no daemon) and works on the kernel directly.
 *
 * Output and the root check go through CliIo, so unit tests run the real parser and formatting
 * with fake operations. Exit codes: 0 success; 1 an error (printed as `xlb: <message>` on stderr);
 * commander's own usage errors exit 1 with its message, help exits 0.
 */
import { Command, CommanderError } from 'commander';
import { registerCheckConfig } from './check-config.ts';
import { realControl, type ControlFactory } from './client.ts';
import { registerDecap, realDecapOps, type DecapOps } from './decap.ts';
import { registerDump } from './dump.ts';
import { CliError, CliExit, processIo, type CliIo } from './io.ts';
import { registerRun, realRun, type RunOps } from './run.ts';
import { registerReload } from './reload.ts';
import { registerServices } from './services.ts';
import { registerStats } from './stats.ts';
import { registerStatus } from './status.ts';

/** What the commands act on; tests pass fakes. */
export interface CliDeps {
  decap: DecapOps;
  /** `xlb run`: the daemon */
  run?: RunOps;
  /** the daemon's control API for a socket path (default: src/cli/client.ts's ControlClient) */
  control?: ControlFactory;
}

export function buildProgram(io: CliIo = processIo, deps: CliDeps = { decap: realDecapOps }): Command {
  const program = new Command('xlb')
    .description('xlb: a keepalived-compatible load balancer with an XDP datapath')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  registerDecap(program, io, deps.decap);
  registerCheckConfig(program, io);
  registerRun(program, io, deps.run ?? realRun);
  const control = deps.control ?? realControl;
  registerStatus(program, io, control);
  registerStats(program, io, control);
  registerServices(program, io, control);
  registerReload(program, io, control);
  registerDump(program, io, control);
  return program;
}

/** Run the command line (argv without node and script); resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIo = processIo, deps?: CliDeps): Promise<number> {
  const program = buildProgram(io, deps);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode; // commander has printed it
    if (err instanceof CliExit) return err.exitCode; // the command has said why
    const e = err as Error & { code?: unknown };
    const code = typeof e.code === 'string' && !(err instanceof CliError) ? ` (${e.code})` : '';
    io.err(`xlb: ${e.message ?? String(err)}${code}\n`);
    return 1;
  }
}
