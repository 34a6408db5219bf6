/**
 * `xlb dump [--json]`: the VRRP instances as keepalived's JSON dump has them (keepalived
 * --enable-json, SIGJSON, /tmp/keepalived.json: an array of { data, stats } per instance, with
 * keepalived's field names and state codes; src/daemon/control.ts's KeepalivedJsonDump). --json
 * prints exactly that; without it, the same fields as `name = value` lines per instance.
 */
import type { Command } from 'commander';
import type { KeepalivedJsonDump } from '../daemon/control.ts';
import { KEEPALIVED_STATE_CODES } from '../daemon/control.ts';
import { addControlOptions, socketOf, type ControlFactory, type ControlOptions } from './client.ts';
import type { CliIo } from './io.ts';

export function registerDump(program: Command, io: CliIo, control: ControlFactory): void {
  const cmd = program
    .command('dump')
    .description('dump the VRRP instances in the schema of keepalived\'s JSON dump (/tmp/keepalived.json)')
    .option('--json', 'print keepalived\'s JSON (an array of {data, stats} per instance)');
  addControlOptions(cmd).action(async (opts: ControlOptions & { json?: boolean }) => {
    const dump = await control(socketOf(opts)).dump();
    io.out(opts.json ? `${JSON.stringify(dump, null, 2)}\n` : formatDump(dump));
  });
}

const STATE_NAMES = new Map(Object.entries(KEEPALIVED_STATE_CODES).map(([name, code]) => [code, name]));

function value(key: string, v: unknown): string {
  if (Array.isArray(v)) return v.length ? `\n${v.map((x) => `      ${String(x)}`).join('\n')}` : '';
  if ((key === 'state' || key === 'wantstate') && typeof v === 'number') return `${v} (${STATE_NAMES.get(v) ?? '?'})`;
  return String(v);
}

export function formatDump(dump: KeepalivedJsonDump): string {
  if (dump.length === 0) return 'no VRRP instances\n';
  return dump.map(({ data, stats }) => {
    const lines = [`VRRP instance ${data.iname}`, '  data:'];
    for (const [k, v] of Object.entries(data)) lines.push(Array.isArray(v) ? `    ${k} =${value(k, v)}` : `    ${k} = ${value(k, v)}`);
    lines.push('  stats:');
    for (const [k, v] of Object.entries(stats)) lines.push(`    ${k} = ${v}`);
    return `${lines.join('\n')}\n`;
  }).join('\n');
}
