/**
 * `xlb reload [--json]`: the daemon reads its configuration file again (as on SIGHUP) and says
 * what came of it. A file with errors changes nothing: every error and warning is printed as
 * `file:line:col: severity: message` on stderr and the command exits 1, the old configuration
 * still running. A valid one is applied as a difference; what changed is printed, warnings on
 * stderr, exit 0. --json prints the daemon's ReloadResult (src/daemon/control.ts) on stdout,
 * with the same exit codes.
 */
import type { Command } from 'commander';
import type { ReloadResult } from '../daemon/control.ts';
import { formatPos } from '../model/types.ts';
import { addControlOptions, socketOf, type ControlFactory, type ControlOptions } from './client.ts';
import { CliExit, type CliIo } from './io.ts';

export function registerReload(program: Command, io: CliIo, control: ControlFactory): void {
  const cmd = program
    .command('reload')
    .description('make the running daemon read its configuration again (as SIGHUP); a file with errors changes nothing')
    .option('--json', 'print the daemon\'s reload result as JSON');
  addControlOptions(cmd).action(async (opts: ControlOptions & { json?: boolean }) => {
    const r = await control(socketOf(opts)).reload();
    if (opts.json) {
      io.out(`${JSON.stringify(r, null, 2)}\n`);
    } else {
      io.err(formatProblems(r));
      if (r.applied) io.out(formatApplied(r));
      else io.err(formatRefused(r));
    }
    if (!r.applied) throw new CliExit(1);
  });
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Every problem, one line each, in compiler form. */
export function formatProblems(r: ReloadResult): string {
  return r.problems.map((p) => `${formatPos(p.pos)}: ${p.severity}: ${p.message}\n`).join('');
}

export function formatApplied(r: ReloadResult): string {
  const c = r.changes;
  const lines = [
    ['virtual servers added', c.servicesAdded], ['virtual servers removed', c.servicesRemoved], ['virtual servers changed', c.servicesChanged],
    ['VRRP instances added', c.instancesAdded], ['VRRP instances removed', c.instancesRemoved], ['VRRP instances changed', c.instancesChanged],
  ] as const;
  const changed = lines.filter(([, l]) => l.length > 0).map(([what, l]) => `  ${what}: ${l.join(', ')}\n`).join('');
  const warnings = r.problems.filter((p) => p.severity === 'warning').length;
  return `xlb reload: ${r.configFile} applied in ${Math.round(r.durationMs)} ms${warnings ? ` (${plural(warnings, 'warning')})` : ''}; ` +
    `${changed ? `changes:\n${changed}` : 'nothing changed\n'}`;
}

export function formatRefused(r: ReloadResult): string {
  const errors = r.problems.filter((p) => p.severity === 'error').length;
  return `xlb reload: ${r.configFile} has ${plural(errors, 'error')}: nothing was changed, the running configuration stays\n`;
}
