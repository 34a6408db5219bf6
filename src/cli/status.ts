/**
 * `xlb status [--json]`: what the running daemon runs: its VRRP instances (state, configured and
 * effective priority, VIPs, the master heard while BACKUP), sync groups, and its virtual servers
 * with each real server's health, effective and configured weight, method and checkers, as
 * readable tables; --json prints the daemon's StatusReport as it is (src/daemon/control.ts).
 */
import type { Command } from 'commander';
import type { RealStatus, ServiceStatus, StatusReport, VrrpInstanceStatus } from '../daemon/control.ts';
import { addControlOptions, socketOf, type ControlFactory, type ControlOptions } from './client.ts';
import { table } from './format.ts';
import type { CliIo } from './io.ts';

export function registerStatus(program: Command, io: CliIo, control: ControlFactory): void {
  const cmd = program
    .command('status')
    .description('show the running daemon\'s VRRP instances (states, priorities, VIPs) and virtual servers (reals with health and weight)')
    .option('--json', 'print the daemon\'s status report as JSON');
  addControlOptions(cmd).action(async (opts: ControlOptions & { json?: boolean }) => {
    const status = await control(socketOf(opts)).status();
    io.out(opts.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
  });
}

/** The address part of a VIP ('198.18.0.10/32 dev eth0 scope global' -> '198.18.0.10/32'). */
const vipAddress = (vip: string): string => vip.split(' ')[0]!;

function lastReload(s: StatusReport): string {
  const r = s.lastReload;
  if (!r) return 'no reload yet';
  const counts = `${r.errors} error${r.errors === 1 ? '' : 's'}, ${r.warnings} warning${r.warnings === 1 ? '' : 's'}`;
  return r.applied ? `last reload applied at ${r.at} (${counts})` : `last reload FAILED at ${r.at} (${counts}): the previous configuration runs`;
}

function vrrpTable(list: readonly VrrpInstanceStatus[]): string {
  const rows = [['INSTANCE', 'STATE', 'PRIORITY', 'EFFECTIVE', 'VRID', 'INTERFACE', 'VIPS', 'NOTE']];
  for (const v of list) {
    const note = v.master ? `master ${v.master.address} (priority ${v.master.priority})`
      : v.fault ? `fault: ${v.fault}`
      : v.syncGroup ? `sync group ${v.syncGroup}` : '';
    const vips = [...v.vips.map(vipAddress), ...v.excludedVips.map((x) => `(${vipAddress(x)})`)].join(' ') || '-';
    rows.push([v.name, v.state, String(v.priority), String(v.effectivePriority), String(v.vrid), v.interface, vips, note]);
  }
  return table(rows, '  ');
}

function checkers(r: RealStatus): string {
  if (r.checkers.length === 0) return 'none (always up)';
  return r.checkers.map((c) => `${c.kind} ${!c.hasRun ? 'not run yet' : c.up ? 'ok' : `FAILED${c.reason ? `: ${c.reason}` : ''}`}`).join('; ');
}

function serviceBlock(s: ServiceStatus): string {
  const p = s.persistence ? `, persistent ${s.persistence.timeout} s${s.persistence.granularity !== null ? ` /${s.persistence.granularity}` : ''}` : '';
  const q = s.quorum;
  const quorum = `quorum ${q.up ? 'up' : 'DOWN'} (live weight ${q.liveWeight}, needs ${q.required}${q.hysteresis ? `±${q.hysteresis}` : ''})`;
  const sorry = s.sorryActive ? ', SORRY SERVER ACTIVE' : '';
  const eps = s.endpoints.map((e) => `${e.protocol.toUpperCase()} ${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`).join(', ');
  const head = `  ${s.name}  ${s.scheduler}${p}, ${quorum}${sorry}${eps ? `; datapath ${eps}` : '; not in the datapath'}\n`;
  const rows = [['REAL', 'HEALTH', 'WEIGHT', 'CONFIGURED', 'METHOD', 'CHECKERS']];
  const reals = [...s.reals.map((r) => ({ r, tag: '' })), ...(s.sorryServer ? [{ r: s.sorryServer, tag: ' (sorry)' }] : [])];
  for (const { r, tag } of reals) {
    rows.push([`${r.name}${tag}`, r.health === 'up' ? 'up' : 'DOWN', String(r.weight), String(r.configuredWeight), r.method,
      `${checkers(r)}${r.checking ? '' : ' (paused: ha_suspend)'}`]);
  }
  return head + table(rows, '    ');
}

export function formatStatus(s: StatusReport): string {
  const runs = s.runs.vrrp && s.runs.services ? 'VRRP and services' : s.runs.vrrp ? 'VRRP only (-P)' : 'services only (-C)';
  let out = `xlb ${s.version}, instance ${s.instance}, pid ${s.pid}, running since ${s.startedAt}: ${runs}\n`;
  out += `config ${s.configFile}, read at ${s.configLoadedAt}; ${lastReload(s)}\n`;
  if (s.datapath) out += `datapath ${s.datapath.kind}${s.datapath.failures ? `, ${s.datapath.failures} failed driver calls` : ''}\n`;
  if (s.runs.vrrp) {
    out += `\nVRRP instances (${s.vrrp.length})\n`;
    out += s.vrrp.length ? vrrpTable(s.vrrp) : '  none\n';
    for (const g of s.syncGroups) out += `  sync group ${g.name}: ${g.state} (${g.members.join(', ')})\n`;
  }
  if (s.runs.services) {
    out += `\nVirtual servers (${s.services.length})\n`;
    out += s.services.length ? s.services.map(serviceBlock).join('') : '  none\n';
  }
  return out;
}
