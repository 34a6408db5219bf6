/**
 * wrk (Debian's 4.1) as the TCP scenario runs it, purely: its command line and the parsing of
 * its report (with --latency). The report's contract, as wrk 4.1 prints it:
 *
 *   Latency Distribution         then lines "  50%  638.00us" (units us, ms, s, m)
 *   "  19314 requests in 2.01s, 3.02MB read"
 *   "  Socket errors: connect C, read R, write W, timeout T"   (only when there are any)
 *   "  Non-2xx or 3xx responses: N"                           (only when there are any)
 *   "Requests/sec:   9623.69"
 *
 * A report without the request count, the rate or the 50%/99% lines is refused with what is
 * missing; so is wrk's own error line ("unable to connect to ...").
 */

export interface WrkOptions {
  url: string;
  threads: number;
  connections: number;
  durationS: number;
}

/** argv after `wrk`: every request on a new connection (Connection: close), latency percentiles on. */
export function wrkArgs(o: WrkOptions): string[] {
  return [`-t${o.threads}`, `-c${o.connections}`, `-d${o.durationS}s`, '--latency', '-H', 'Connection: close', o.url];
}

export interface WrkResult {
  requests: number;
  durationS: number;
  requestsPerS: number;
  p50Ms: number;
  p99Ms: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
}

const TIME_UNITS_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

function timeMs(v: string, unit: string, what: string): number {
  const f = TIME_UNITS_MS[unit];
  if (f === undefined) throw new Error(`wrk report: ${what}: unknown time unit '${unit}'`);
  return Number(v) * f;
}

export function parseWrk(text: string): WrkResult {
  const fail = (what: string): never => {
    const first = text.trim().split('\n')[0] ?? '';
    throw new Error(`wrk report: ${what} (its first line: "${first.slice(0, 160)}")`);
  };
  const pct = (p: number): number => {
    const m = new RegExp(`^\\s*${p}%\\s+([0-9.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(text);
    if (!m) return fail(`no ${p}% latency line (was --latency given?)`);
    return timeMs(m[1]!, m[2]!, `${p}%`);
  };
  const req = /^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h),/m.exec(text);
  if (!req) return fail('no "N requests in T" line');
  const rate = /^Requests\/sec:\s+([0-9.]+)\s*$/m.exec(text);
  if (!rate) return fail('no "Requests/sec:" line');
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const n2 = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requests: Number(req[1]),
    durationS: timeMs(req[2]!, req[3]!, 'duration') / 1e3,
    requestsPerS: Number(rate[1]),
    p50Ms: pct(50),
    p99Ms: pct(99),
    socketErrors: se
      ? { connect: Number(se[1]), read: Number(se[2]), write: Number(se[3]), timeout: Number(se[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx: n2 ? Number(n2[1]) : 0,
  };
}

/** Errors as a share of the requests: connect, write and timeout errors, and non-2xx answers. */
export function errorShare(r: WrkResult): number {
  const e = r.socketErrors.connect + r.socketErrors.write + r.socketErrors.timeout + r.non2xx;
  return r.requests > 0 ? e / r.requests : e > 0 ? 1 : 0;
}
