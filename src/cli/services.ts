/**
 * `xlb services -Ln [--stats | --rate] [--exact] [--json]`: the datapath services and their reals
 * in the layout of `ipvsadm -Ln` (its columns, widths, number forms and order), so that eyes and
 * scripts used to ipvsadm read it the same way. From the daemon's status (what the datapath holds)
 * and stats; -L/-l and -n are accepted for habit's sake (the listing is always numeric).
 *
 * Where xlb differs from IPVS:
 *   - the first line names xlb and its datapath instead of "IP Virtual Server version ...";
 *   - ActiveConn / InActConn, OutPkts / OutBytes and OutPPS / OutBPS are "-": the XDP datapath
 *     keeps no per-real connection counts and sees only the packets towards the reals;
 *   - Conns counts connections scheduled since the service was created (as IPVS's Conns);
 *   - --rate reads the counters twice, --interval apart (default 1 s), and shows the average over
 *     that interval (IPVS shows its kernel estimator's 2-second averages).
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { EndpointStats, StatsReport, StatusReport } from '../daemon/control.ts';
import type { Method } from '../datapath/driver.ts';
import { addControlOptions, socketOf, type ControlFactory, type ControlOptions } from './client.ts';
import { addrPort, compareEndpoints, compareReals, endpointKey, largeNum, realPort, statsRates, type Rates } from './format.ts';
import { CliError, type CliIo } from './io.ts';

/** ipvsadm's Forward names. */
export const FORWARD_NAMES: Readonly<Record<Method, string>> = { nat: 'Masq', dr: 'Route', tun: 'Tunnel', fullnat: 'FullNat' };

const UNKNOWN = '-'.padStart(9);

export function parseInterval(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0.01 || n > 3600) throw new InvalidArgumentError('an interval in seconds, 0.01 to 3600');
  return n;
}

interface ServicesOptions extends ControlOptions {
  stats?: boolean;
  rate?: boolean;
  exact?: boolean;
  json?: boolean;
  interval: number;
}

export function registerServices(program: Command, io: CliIo, control: ControlFactory): void {
  const cmd = program
    .command('services')
    .description('list the virtual services and their real servers as `ipvsadm -Ln` does (from the running daemon)')
    .option('-L, --list', 'list (the only action; accepted as ipvsadm takes it)')
    .option('-l', 'the same as -L')
    .option('-n, --numeric', 'numeric addresses and ports (always; accepted as ipvsadm takes it)')
    .option('--stats', 'counters: connections, packets and bytes since each service was created')
    .option('--rate', 'rates: connections, packets and bytes per second over --interval')
    .option('--exact', 'exact numbers (no K, M, G suffixes) with --stats and --rate')
    .option('--interval <seconds>', 'the time between the two reads of --rate', parseInterval, 1)
    .option('--json', 'print JSON instead of the ipvsadm layout')
    .addHelpText('after', `
Columns ipvsadm shows that the XDP datapath does not count (ActiveConn, InActConn, OutPkts,
OutBytes, OutPPS, OutBPS) are shown as "-".

Example:
  xlb services -Ln --stats
`);
  addControlOptions(cmd).action(async (opts: ServicesOptions) => {
    if (opts.stats && opts.rate) throw new CliError('xlb services: --stats and --rate are two layouts: choose one');
    const daemon = control(socketOf(opts));
    const status = await daemon.status();
    if (opts.stats) {
      const stats = await daemon.stats();
      io.out(opts.json ? `${JSON.stringify(statsJson(stats), null, 2)}\n` : formatStats(status, stats, opts.exact));
    } else if (opts.rate) {
      const first = await daemon.stats();
      await new Promise((r) => setTimeout(r, opts.interval * 1000));
      const second = await daemon.stats();
      io.out(opts.json ? `${JSON.stringify(rateJson(first, second), null, 2)}\n` : formatRate(status, first, second, opts.exact));
    } else {
      io.out(opts.json ? `${JSON.stringify(listJson(status), null, 2)}\n` : formatList(status));
    }
  });
}

function header(status: StatusReport): string {
  return `xlb ${status.version} (${status.datapath?.kind ?? 'no'} datapath, instance ${status.instance})\n`;
}

/** ipvsadm's service name: 'TCP  198.18.0.10:80' (IPv4: cut at 33 characters). */
function serviceName(protocol: string, address: string, port: number): string {
  const s = `${protocol.toUpperCase()}  ${addrPort(address, port)}`;
  return address.includes(':') ? s : s.slice(0, 33);
}

function realName(address: string, port: number): string {
  const s = addrPort(address, port);
  return address.includes(':') ? s : s.slice(0, 28);
}

/** An IPv4 prefix length as a dotted netmask. */
function netmask(len: number): string {
  const m = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 255).join('.');
}

/** Every datapath service with what its virtual server says about it, in ipvsadm's order. */
function endpoints(status: StatusReport) {
  return status.services
    .flatMap((s) => s.endpoints.map((e) => ({ ...e, service: s })))
    .sort(compareEndpoints);
}

export function formatList(status: StatusReport): string {
  let out = header(status);
  out += 'Prot LocalAddress:Port Scheduler Flags\n';
  out += '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
  for (const e of endpoints(status)) {
    let line = `${serviceName(e.protocol, e.address, e.port)} ${e.service.scheduler}`;
    const p = e.service.persistence;
    if (p) {
      line += ` persistent ${p.timeout}`;
      const v6 = e.address.includes(':');
      if (p.granularity !== null && p.granularity !== (v6 ? 128 : 32)) line += ` mask ${v6 ? p.granularity : netmask(p.granularity)}`;
    }
    out += `${line}\n`;
    for (const r of [...e.reals].sort(compareReals)) {
      out += `  -> ${realName(r.address, realPort(r.port, e.port)).padEnd(28)} ${FORWARD_NAMES[r.method].padEnd(7)} ${String(r.weight).padEnd(6)} ${'-'.padEnd(10)} ${'-'.padEnd(10)}`.trimEnd() + '\n';
    }
  }
  return out;
}

function sortedStats(stats: StatsReport): EndpointStats[] {
  return [...stats.services].sort(compareEndpoints).map((e) => ({ ...e, reals: [...e.reals].sort(compareReals) }));
}

export function formatStats(status: StatusReport, stats: StatsReport, exact = false): string {
  let out = header(status);
  out += `${'Prot LocalAddress:Port'.padEnd(33)} ${['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((h) => h.padStart(8)).join(' ')}\n`;
  out += '  -> RemoteAddress:Port\n';
  for (const e of sortedStats(stats)) {
    const c = e.counters;
    out += `${serviceName(e.protocol, e.address, e.port).padEnd(33)}${largeNum(c.connections, exact)}${largeNum(c.packets, exact)}${UNKNOWN}${largeNum(c.bytes, exact)}${UNKNOWN}\n`;
    for (const r of e.reals) {
      const rc = r.counters;
      out += `  -> ${realName(r.address, realPort(r.port, e.port)).padEnd(28)}${largeNum(rc.connections, exact)}${largeNum(rc.packets, exact)}${UNKNOWN}${largeNum(rc.bytes, exact)}${UNKNOWN}\n`;
    }
  }
  return out;
}

export function formatRate(status: StatusReport, first: StatsReport, second: StatsReport, exact = false): string {
  const all = statsRates(first, second);
  const cols = (r: Rates | null | undefined) => (r
    ? `${largeNum(r.cps, exact)}${largeNum(r.pps, exact)}${UNKNOWN}${largeNum(r.bps, exact)}${UNKNOWN}`
    : `${UNKNOWN}${UNKNOWN}${UNKNOWN}${UNKNOWN}${UNKNOWN}`);
  let out = header(status);
  out += `${'Prot LocalAddress:Port'.padEnd(33)} ${['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'].map((h) => h.padStart(8)).join(' ')}\n`;
  out += '  -> RemoteAddress:Port\n';
  for (const e of sortedStats(second)) {
    const r = all.get(endpointKey(e));
    out += `${serviceName(e.protocol, e.address, e.port).padEnd(33)}${cols(r?.service)}\n`;
    for (const real of e.reals) out += `  -> ${realName(real.address, realPort(real.port, e.port)).padEnd(28)}${cols(r?.reals.get(addrPort(real.address, real.port)))}\n`;
  }
  return out;
}

export function listJson(status: StatusReport) {
  return {
    services: endpoints(status).map((e) => ({
      service: e.service.name, protocol: e.protocol, address: e.address, port: e.port, scheduler: e.service.scheduler,
      persistence: e.service.persistence, reals: [...e.reals].sort(compareReals),
    })),
  };
}

export function statsJson(stats: StatsReport) {
  return { at: stats.at, services: sortedStats(stats) };
}

export function rateJson(first: StatsReport, second: StatsReport) {
  const all = statsRates(first, second);
  return {
    intervalMs: second.at - first.at,
    services: sortedStats(second).map((e) => {
      const r = all.get(endpointKey(e));
      return {
        service: e.service, protocol: e.protocol, address: e.address, port: e.port, rates: r?.service ?? null,
        reals: e.reals.map((x) => ({ address: x.address, port: x.port, rates: r?.reals.get(addrPort(x.address, x.port)) ?? null })),
      };
    }),
  };
}
