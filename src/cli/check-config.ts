/**
 * `xlb check-config [-f FILE] [--config-id ID] [--json]`: read a keepalived.conf as the daemon
 * would (src/config's loadConfig) and report every problem, without running anything; the
 * counterpart of `keepalived --config-test`, with its exit codes (src/config/diagnostics.ts):
 * 0 clean or only notes/ignored warnings, 2 a keyword missing its parameter, 4 a file that
 * cannot be read or something xlb does not support, 5 other errors, 6 script security or an
 * include that include_check makes an error.
 *
 * Output: one line per problem, `file:line:col: severity: message`, on stdout, then a summary on
 * stderr; with --json one object on stdout: { file, exitCode, usable, problems: [{ file, line,
 * col, severity, class, keyword?, message }] }.
 */
import type { Command } from 'commander';
import { formatDiagnostic, type Diagnostic } from '../config/diagnostics.ts';
import { nodeFs, type ConfigFs } from '../config/fs.ts';
import { loadConfig } from '../config/index.ts';
import { CliExit, type CliIo } from './io.ts';

export const DEFAULT_CONFIG = '/etc/keepalived/keepalived.conf';

function problemJson(d: Diagnostic): Record<string, unknown> {
  const o: Record<string, unknown> = { file: d.pos.file, line: d.pos.line, col: d.pos.col, severity: d.severity, class: d.class };
  if (d.keyword !== undefined) o.keyword = d.keyword;
  o.message = d.message;
  return o;
}

export function registerCheckConfig(program: Command, io: CliIo, fs: ConfigFs = nodeFs): void {
  program
    .command('check-config')
    .description('check a keepalived.conf (and what it includes) as xlb reads it; exit codes as keepalived --config-test')
    .option('-f, --use-file <file>', 'the configuration file', DEFAULT_CONFIG)
    .option('-i, --config-id <id>', 'the id @ID lines are kept for (default: the host name up to its first \'.\', as keepalived)')
    .option('--json', 'print one JSON object with every problem instead of lines')
    .addHelpText('after', `
Exit codes (keepalived --config-test's):
  0  no problem (notes and warnings about what xlb ignores do not count)
  2  a keyword is missing its parameter (keepalived stops reading there)
  4  a configuration file cannot be read, or xlb does not support something the configuration asks for
  5  any other error (unknown keyword, value out of range, ...)
  6  script security, or a missing include made an error by include_check`)
    .action((opts: { useFile: string; configId?: string; json?: boolean }) => {
      const r = loadConfig(opts.useFile, { fs, ...(opts.configId !== undefined ? { configId: opts.configId } : {}) });
      if (opts.json) {
        io.out(`${JSON.stringify({ file: opts.useFile, exitCode: r.exitCode, usable: r.config !== undefined, problems: r.problems.map(problemJson) }, null, 2)}\n`);
      } else {
        for (const p of r.problems) io.out(`${formatDiagnostic(p)}\n`);
        const errors = r.problems.filter((p) => p.severity === 'error').length;
        const warnings = r.problems.length - errors;
        const counts = `${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`;
        io.err(`xlb check-config: ${opts.useFile}: ${r.problems.length === 0 ? 'OK' : counts}${r.config ? '' : '; not usable'} (exit ${r.exitCode})\n`);
      }
      if (r.exitCode !== 0) throw new CliExit(r.exitCode);
    });
}
