/**
 * `xlb stats`: the daemon's counters, per datapath service and real (packets, bytes, connections
 * and their rates), per VRRP instance, the health engine's and the datapath's totals.
 *
 * On a terminal it is a live view: the screen is redrawn every --interval seconds (default 1)
 * until Ctrl-C, the rates being the averages since the previous read. Elsewhere (a pipe, a file)
 * or with --once it prints one read without rates; --count N stops after N reads (one every
 * --interval, with rates from the second on), which also works in a pipe. --json prints one read
 * as the daemon's StatsReport (src/daemon/control.ts).
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { StatsReport } from '../daemon/control.ts';
import { addControlOptions, socketOf, type ControlFactory, type ControlOptions } from './client.ts';
import { addrPort, compareEndpoints, compareReals, endpointKey, human, realPort, statsRates, table } from './format.ts';
import { parseInterval } from './services.ts';
import type { CliIo } from './io.ts';

/** Redraw from the top left of a cleared screen. */
export const CLEAR_SCREEN = '\x1b[H\x1b[2J';

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a whole number of reads, at least 1');
  return n;
}

interface StatsOptions extends ControlOptions {
  json?: boolean;
  once?: boolean;
  count?: number;
  interval: number;
}

export function registerStats(program: Command, io: CliIo, control: ControlFactory): void {
  const cmd = program
    .command('stats')
    .description('show packets, bytes and connections per service and real with their rates (a live view on a terminal)')
    .option('--interval <seconds>', 'the time between two reads of the live view or of --count', parseInterval, 1)
    .option('--count <n>', 'stop after this many reads (rates from the second read on)', parseCount)
    .option('--once', 'one read, no live view, even on a terminal')
    .option('--json', 'print one read as JSON (the daemon\'s stats report)')
    .addHelpText('after', `
Rates are averages between two reads. Counters count since each datapath service was created.
`);
  addControlOptions(cmd).action(async (opts: StatsOptions) => {
    const daemon = control(socketOf(opts));
    if (opts.json) {
      io.out(`${JSON.stringify(await daemon.stats(), null, 2)}\n`);
      return;
    }
    const live = io.isTty?.() === true && !opts.once;
    const reads = opts.count ?? (live ? Infinity : 1);
    let before: StatsReport | undefined;
    for (let i = 0; i < reads; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, opts.interval * 1000));
      const now = await daemon.stats();
      const text = formatStats(before, now);
      io.out(live ? `${CLEAR_SCREEN}xlb stats, every ${opts.interval} s (Ctrl-C to stop)\n${text}` : `${i > 0 ? '\n' : ''}${text}`);
      before = now;
    }
  });
}

/** One read as tables; with a previous read, the rates since it. */
export function formatStats(before: StatsReport | undefined, now: StatsReport): string {
  const r = statsRates(before, now);
  const rate = (x: number | undefined) => (x === undefined ? '-' : human(x));
  const rows = [['SERVICE / REAL', 'PACKETS', 'BYTES', 'CONNS', 'PKT/S', 'BYTE/S', 'CONN/S']];
  for (const e of [...now.services].sort(compareEndpoints)) {
    const er = r.get(endpointKey(e));
    const c = e.counters;
    rows.push([`${e.protocol.toUpperCase()} ${addrPort(e.address, e.port)}`, human(c.packets), human(c.bytes), human(c.connections),
      rate(er?.service?.pps), rate(er?.service?.bps), rate(er?.service?.cps)]);
    for (const real of [...e.reals].sort(compareReals)) {
      const rr = er?.reals.get(addrPort(real.address, real.port)) ?? undefined;
      const rc = real.counters;
      rows.push([`  -> ${addrPort(real.address, realPort(real.port, e.port))}`, human(rc.packets), human(rc.bytes), human(rc.connections),
        rate(rr?.pps), rate(rr?.bps), rate(rr?.cps)]);
    }
  }
  let out = `at ${new Date(now.at).toISOString()}\n`;
  out += now.services.length ? table(rows) : 'no services in the datapath\n';
  if (now.vrrp.length) {
    out += '\n';
    const v = [['VRRP', 'STATE', 'ADVERTS IN', 'ADVERTS OUT', 'TRANSITIONS', 'BECAME MASTER', 'REJECTED', 'GARPS']];
    for (const i of now.vrrp) {
      const rejected = Object.values(i.rejected).reduce((a, b) => a + b, 0);
      v.push([i.name, i.state, String(i.advertsReceived), String(i.advertsSent), String(i.transitions), String(i.becameMaster), String(rejected), String(i.garpsSent)]);
    }
    out += table(v);
  }
  if (now.health) {
    const h = now.health;
    out += `\nhealth checks: ${h.runs} run, ${h.failures} failed (${h.timeouts} timed out); reals went up ${h.events.up}, down ${h.events.down}, changed weight ${h.events.weight} times\n`;
  }
  const dp = Object.entries(now.datapath).filter(([, n]) => n > 0);
  if (dp.length) out += `datapath counters (those above 0): ${dp.map(([k, n]) => `${k} ${human(n)}`).join(', ')}\n`;
  return out;
}
