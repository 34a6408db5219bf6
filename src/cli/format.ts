/**
 * Text helpers shared by the commands that show the daemon's reports (status, stats, services):
 * aligned tables, ipvsadm's number and address forms, the order ipvsadm lists services in, and
 * rates from two stats reads.
 */
import type { Counters, EndpointStats, StatsReport } from '../daemon/control.ts';
import { addrBytes, familyOf } from '../datapath/xdp/net.ts';

/** Rows as columns padded to their widest cell (the last column is not padded), each line indented. */
export function table(rows: readonly (readonly string[])[], indent = ''): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length); });
  return rows.map((r) => `${indent}${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd()).join('\n') + (rows.length ? '\n' : '');
}

/** ipvsadm's print_largenum: 9 columns, exact below 100 million, then K, M, G, T (thousands) ; --exact: always exact. */
export function largeNum(n: number, exact = false): string {
  const v = Math.max(0, Math.floor(n));
  if (exact) {
    const s = String(v);
    return s.padStart(s.length <= 8 ? 9 : s.length + 1);
  }
  if (v < 1e8) return String(v).padStart(9);
  if (v < 1e9) return `${Math.floor(v / 1e3)}K`.padStart(9);
  if (v < 1e11) return `${Math.floor(v / 1e6)}M`.padStart(9);
  if (v < 1e14) return `${Math.floor(v / 1e9)}G`.padStart(9);
  return `${Math.floor(v / 1e12)}T`.padStart(9);
}

/** ipvsadm -n's ADDRESS:PORT ([ADDRESS]:PORT for IPv6). */
export function addrPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * The port a real is listed with: its own, or the service's when it has none (DR and TUN reals
 * cannot change the port: the datapath keeps 0 for them, IPVS lists them with the service's).
 */
export function realPort(realPortNumber: number, servicePort: number): number {
  return realPortNumber || servicePort;
}

/** ipvsadm's order: protocol (TCP first), family (IPv4 first), address, port. */
export function compareEndpoints(a: { protocol: string; address: string; port: number }, b: { protocol: string; address: string; port: number }): number {
  return a.protocol.localeCompare(b.protocol) || familyOf(a.address) - familyOf(b.address) ||
    Buffer.compare(addrBytes(a.address), addrBytes(b.address)) || a.port - b.port;
}

/** The same order for reals: address, then port. */
export function compareReals(a: { address: string; port: number }, b: { address: string; port: number }): number {
  return familyOf(a.address) - familyOf(b.address) || Buffer.compare(addrBytes(a.address), addrBytes(b.address)) || a.port - b.port;
}

export interface Rates {
  /** connections per second */
  cps: number;
  /** packets per second */
  pps: number;
  /** bytes per second */
  bps: number;
}

/** Per-second rates between two reads of the same counters (0 when a counter went back: the service was recreated). */
export function rates(before: Counters | undefined, after: Counters, seconds: number): Rates {
  const d = (k: keyof Counters) => (before && seconds > 0 ? Math.max(0, after[k] - before[k]) / seconds : 0);
  return { cps: d('connections'), pps: d('packets'), bps: d('bytes') };
}

const endpointKey = (e: Pick<EndpointStats, 'protocol' | 'address' | 'port'>) => `${e.protocol}:${addrPort(e.address, e.port)}`;

/** Rates of every endpoint and real of `after`, against `before` (absent in `before`: no rate). */
export function statsRates(before: StatsReport | undefined, after: StatsReport): Map<string, { service: Rates | null; reals: Map<string, Rates | null> }> {
  const seconds = before ? (after.at - before.at) / 1000 : 0;
  const prev = new Map((before?.services ?? []).map((e) => [endpointKey(e), e]));
  const out = new Map<string, { service: Rates | null; reals: Map<string, Rates | null> }>();
  for (const e of after.services) {
    const p = prev.get(endpointKey(e));
    const prevReals = new Map((p?.reals ?? []).map((r) => [addrPort(r.address, r.port), r.counters]));
    out.set(endpointKey(e), {
      service: p && seconds > 0 ? rates(p.counters, e.counters, seconds) : null,
      reals: new Map(e.reals.map((r) => {
        const pr = prevReals.get(addrPort(r.address, r.port));
        return [addrPort(r.address, r.port), pr && seconds > 0 ? rates(pr, r.counters, seconds) : null];
      })),
    });
  }
  return out;
}

export { endpointKey };

/** A count for people: 1234567 -> '1.23M' (SI, three significant digits); below 10000 exact. */
export function human(n: number): string {
  if (n < 10000) return Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0);
  const units = ['k', 'M', 'G', 'T', 'P'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)}${units[i]}`;
}
