/**
 * The `xlb` command line: one commander program, each command in a module of its own that
 * registers itself here (src/cli/decap.ts: `xlb decap ...`). Commands that configure the daemon
 * will talk to it through its control API; `xlb decap` is a local tool for real servers (which
 * run no daemon) and works on the kernel directly.
 *
 * Output and the root check go through CliIo, so unit tests run the real parser and formatting
 * with fake operations. Exit codes: 0 success; 1 an error (printed as `xlb: <message>` on stderr);
 * commander's own usage errors exit 1 with its message, help exits 0.
 */
import { Command, CommanderError } from 'commander';
import { registerDecap, realDecapOps, type DecapOps } from './decap.ts';
import { CliError, processIo, type CliIo } from './io.ts';
import { registerRun, realRun, type RunOps } from './run.ts';

/** What the commands act on; tests pass fakes. */
export interface CliDeps {
  decap: DecapOps;
  /** `xlb run`: the daemon */
  run?: RunOps;
}

export function buildProgram(io: CliIo = processIo, deps: CliDeps = { decap: realDecapOps }): Command {
  const program = new Command('xlb')
    .description('xlb: a keepalived-compatible load balancer with an XDP datapath')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  registerDecap(program, io, deps.decap);
  registerRun(program, io, deps.run ?? realRun);
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
    const e = err as Error & { code?: unknown };
    const code = typeof e.code === 'string' && !(err instanceof CliError) ? ` (${e.code})` : '';
    io.err(`xlb: ${e.message ?? String(err)}${code}\n`);
    return 1;
  }
}
