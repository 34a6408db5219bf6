/**
 * The dumps keepalived writes on signals, from the control reports (./control.ts):
 *   SIGUSR1  the data: what runs (VRRP instances, sync groups, virtual servers and their reals)
 *            -> <dir>/keepalived.data
 *   SIGUSR2  the statistics (VRRP counters, per service and real packets/bytes/connections,
 *            the health engine's totals, the datapath's counters) -> <dir>/keepalived.stats
 * <dir> is /tmp, as keepalived's (`xlb run --dump-dir` moves it). The content is xlb's own
 * plain-text rendering of the same facts `xlb status` / `xlb stats --json` give, in keepalived's
 * sections ("------< VRRP Topology >------", ...); the file is replaced whole (written to a
 * temporary name, then renamed).
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StatsReport, StatusReport } from './control.ts';

export const DATA_FILE = 'keepalived.data';
export const STATS_FILE = 'keepalived.stats';

const section = (title: string) => `------< ${title} >------`;

export function formatData(s: StatusReport): string {
  const out: string[] = [];
  out.push(`xlb ${s.version} instance ${s.instance}, pid ${s.pid}, started ${s.startedAt}`);
  out.push(`configuration ${s.configFile}, read ${s.configLoadedAt}`);
  if (s.lastReload) out.push(`last reload ${s.lastReload.at}: ${s.lastReload.applied ? 'applied' : 'NOT applied'}, ${s.lastReload.errors} error(s), ${s.lastReload.warnings} warning(s)`);
  out.push('', section('VRRP Topology'));
  for (const i of s.vrrp) {
    out.push(` VRRP Instance = ${i.name}`);
    out.push(`   State = ${i.state}`, `   Interface = ${i.interface}`, `   Virtual Router ID = ${i.vrid}`, `   Version = ${i.version}`);
    out.push(`   Priority = ${i.priority}`, `   Effective priority = ${i.effectivePriority}`, `   Advert interval = ${i.advertIntervalMs} ms`);
    if (i.master) out.push(`   Master = ${i.master.address} priority ${i.master.priority}`);
    if (i.fault) out.push(`   Fault = ${i.fault}`);
    if (i.syncGroup) out.push(`   Sync group = ${i.syncGroup}`);
    out.push(`   Last transition = ${i.lastTransition ?? 'none'} (${i.transitions} transitions)`);
    out.push(`   Virtual IP = ${i.vips.length}`, ...i.vips.map((v) => `     ${v}`));
    if (i.excludedVips.length) out.push(`   Virtual IP excluded = ${i.excludedVips.length}`, ...i.excludedVips.map((v) => `     ${v}`));
  }
  if (s.syncGroups.length) {
    out.push('', section('VRRP Sync groups'));
    for (const g of s.syncGroups) out.push(` VRRP Sync Group = ${g.name}, ${g.state}`, ...g.members.map((m) => `   monitor = ${m}`));
  }
  out.push('', section('Virtual server'));
  for (const v of s.services) {
    out.push(` VS = ${v.name} (${v.pos.file}:${v.pos.line})`);
    out.push(`   lb_algo = ${v.scheduler}`, `   quorum = ${v.quorum.required}, hysteresis = ${v.quorum.hysteresis}, ${v.quorum.up ? 'up' : 'down'}, live weight ${v.quorum.liveWeight}`);
    if (v.persistence) out.push(`   persistence timeout = ${v.persistence.timeout}${v.persistence.granularity !== null ? `, granularity /${v.persistence.granularity}` : ''}`);
    if (v.sorryServer) out.push(`   sorry server = ${v.sorryServer.name}${v.sorryActive ? ' (active)' : ''}`);
    for (const r of v.reals) {
      out.push(`   RS = ${r.name}, ${r.method.toUpperCase()}, ${r.health.toUpperCase()}, weight ${r.weight} (configured ${r.configuredWeight})${r.checking ? '' : ', checks suspended'}`);
      for (const c of r.checkers) out.push(`     ${c.kind} ${c.target}: ${c.hasRun ? (c.up ? 'up' : 'down') : 'not run yet'}${c.reason ? ` (${c.reason})` : ''}`);
    }
  }
  return `${out.join('\n')}\n`;
}

export function formatStats(s: StatsReport): string {
  const out: string[] = [`statistics read ${new Date(s.at).toISOString()}`, '', section('VRRP Statistics')];
  for (const v of s.vrrp) {
    out.push(` VRRP Instance: ${v.name} (${v.state})`);
    out.push(`   Advertisements: received ${v.advertsReceived}, sent ${v.advertsSent}`);
    out.push(`   Became master: ${v.becameMaster}`, `   Released master: ${v.releasedMaster}`);
    out.push(`   Priority zero: received ${v.priorityZeroReceived}, sent ${v.priorityZeroSent}`);
    out.push(`   Transitions: ${v.transitions}${Object.keys(v.byTransition).length ? ` (${Object.entries(v.byTransition).map(([k, n]) => `${k} ${n}`).join(', ')})` : ''}`);
    const rejected = Object.entries(v.rejected).filter(([, n]) => n > 0);
    out.push(`   Rejected adverts: ${rejected.length ? rejected.map(([k, n]) => `${k} ${n}`).join(', ') : 'none'}`);
    out.push(`   Gratuitous ARP/NA sent: ${v.garpsSent}`, `   Send errors: ${v.sendErrors}`);
  }
  out.push('', section('Virtual server statistics'));
  for (const e of s.services) {
    const host = e.address.includes(':') ? `[${e.address}]` : e.address;
    out.push(` ${e.protocol.toUpperCase()} ${host}:${e.port} (${e.service}): connections ${e.counters.connections}, packets ${e.counters.packets}, bytes ${e.counters.bytes}`);
    for (const r of e.reals) out.push(`   -> ${r.address}${r.port ? `:${r.port}` : ''}: connections ${r.counters.connections}, packets ${r.counters.packets}, bytes ${r.counters.bytes}`);
  }
  if (s.health) {
    out.push('', section('Health checks'));
    out.push(` checks run ${s.health.runs}, failed ${s.health.failures}, timed out ${s.health.timeouts}`);
    out.push(` events: up ${s.health.events.up}, down ${s.health.events.down}, weight ${s.health.events.weight}`);
  }
  const dp = Object.entries(s.datapath);
  if (dp.length) out.push('', section('Datapath counters'), ...dp.map(([k, n]) => ` ${k} ${n}`));
  return `${out.join('\n')}\n`;
}

/** Replace `dir/name` with `text` (temporary file, then rename); returns the path. */
export function writeDump(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
  return path;
}
