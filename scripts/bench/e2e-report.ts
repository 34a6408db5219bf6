/**
 * The results of `make bench-e2e`, purely: samples → rows of bench-results/e2e.json
 * ({scenario, system, metric, median, min, max}), ratios against nftables DNAT and the floor,
 * the issue's targets, and the printed table.
 */
import { median, table } from './report.ts';

export const SYSTEMS = ['xlb-dr', 'xlb-tun', 'xlb-nat', 'xlb-fullnat', 'nftables-dnat', 'xdp-redirect-floor', 'haproxy', 'direct'] as const;
export type SystemName = (typeof SYSTEMS)[number];
export const METRICS = ['pps', 'conn_per_s', 'p50_ms', 'p99_ms'] as const;
export type Metric = (typeof METRICS)[number];

export const NFT = 'nftables-dnat';
export const FLOOR = 'xdp-redirect-floor';

/** The issue's targets for xlb's packets/s: at least 4× nftables DNAT, at least 80% of the floor. */
export const TARGETS = { vsNft: 4, vsFloor: 0.8 } as const;

export interface Sample { scenario: string; system: SystemName; metric: Metric; value: number }

/** One line of bench-results/e2e.json, exactly these fields. */
export interface E2eRow { scenario: string; system: SystemName; metric: Metric; median: number; min: number; max: number }

function roundTo(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Samples grouped by (scenario, system, metric), in the order first seen; median, min, max of each. */
export function summarize(samples: readonly Sample[]): E2eRow[] {
  const groups = new Map<string, { key: Omit<Sample, 'value'>; values: number[] }>();
  for (const s of samples) {
    if (!SYSTEMS.includes(s.system)) throw new Error(`unknown system '${s.system}'`);
    if (!METRICS.includes(s.metric)) throw new Error(`unknown metric '${s.metric}'`);
    if (!Number.isFinite(s.value)) throw new Error(`${s.scenario} ${s.system} ${s.metric}: value ${s.value} is not a finite number`);
    const k = `${s.scenario}\u0000${s.system}\u0000${s.metric}`;
    const g = groups.get(k) ?? { key: { scenario: s.scenario, system: s.system, metric: s.metric }, values: [] };
    g.values.push(s.value);
    groups.set(k, g);
  }
  return [...groups.values()].map(({ key, values }) => {
    const digits = key.metric.endsWith('_ms') ? 3 : 0;
    return {
      scenario: key.scenario, system: key.system, metric: key.metric,
      median: roundTo(median(values), digits), min: roundTo(Math.min(...values), digits), max: roundTo(Math.max(...values), digits),
    };
  });
}

export function find(rows: readonly E2eRow[], scenario: string, system: string, metric: Metric): E2eRow | undefined {
  return rows.find((r) => r.scenario === scenario && r.system === system && r.metric === metric);
}

/** median / the reference's median, or undefined when either is missing or the reference is 0 */
export function ratio(rows: readonly E2eRow[], scenario: string, system: string, ref: string, metric: Metric): number | undefined {
  const a = find(rows, scenario, system, metric);
  const b = find(rows, scenario, ref, metric);
  if (!a || !b || b.median === 0) return undefined;
  return a.median / b.median;
}

export interface TargetVerdict { scenario: string; system: string; vsNft?: number; vsFloor?: number; met: boolean; text: string }

/** For every xlb system of a pps scenario: the two ratios and whether both targets are met. */
export function ppsTargets(rows: readonly E2eRow[], scenario: string): TargetVerdict[] {
  return rows
    .filter((r) => r.scenario === scenario && r.metric === 'pps' && r.system.startsWith('xlb-'))
    .map((r) => {
      const vsNft = ratio(rows, scenario, r.system, NFT, 'pps');
      const vsFloor = ratio(rows, scenario, r.system, FLOOR, 'pps');
      const okNft = vsNft !== undefined && vsNft >= TARGETS.vsNft;
      const okFloor = vsFloor !== undefined && vsFloor >= TARGETS.vsFloor;
      const part = (name: string, v: number | undefined, ok: boolean, want: string) =>
        `${name} ${v === undefined ? 'n/a' : `${v.toFixed(2)}×`} (target ${want}: ${v === undefined ? 'not measured' : ok ? 'met' : 'MISSED'})`;
      return {
        scenario, system: r.system, vsNft, vsFloor, met: okNft && okFloor,
        text: `${r.system}: ${part('vs nftables DNAT', vsNft, okNft, `≥ ${TARGETS.vsNft}×`)}, `
          + `${part('vs the floor', vsFloor, okFloor, `≥ ${TARGETS.vsFloor * 100}%`)}`,
      };
    });
}

function fmt(metric: Metric, v: number): string {
  if (metric === 'pps') return v >= 1e6 ? `${(v / 1e6).toFixed(3)} M` : `${(v / 1e3).toFixed(1)} k`;
  if (metric === 'conn_per_s') return v.toFixed(0);
  return v.toFixed(3);
}

/**
 * The table of one scenario and metric: median (min..max), and the ratios against nftables
 * DNAT and the floor where they were measured in the scenario.
 */
export function scenarioTable(rows: readonly E2eRow[], scenario: string, metric: Metric): string {
  const rs = rows.filter((r) => r.scenario === scenario && r.metric === metric);
  const hasNft = rs.some((r) => r.system === NFT);
  const hasFloor = rs.some((r) => r.system === FLOOR);
  const head = ['system', `${metric} median`, 'min', 'max'];
  if (hasNft) head.push('vs nftables-dnat');
  if (hasFloor) head.push('vs floor');
  const body = rs.map((r) => {
    const line = [r.system, fmt(metric, r.median), fmt(metric, r.min), fmt(metric, r.max)];
    const x = (ref: string) => {
      const v = ratio(rows, scenario, r.system, ref, metric);
      return v === undefined ? '-' : `${v.toFixed(2)}×`;
    };
    if (hasNft) line.push(x(NFT));
    if (hasFloor) line.push(x(FLOOR));
    return line;
  });
  return table(head, body, head.map((_, i) => i).slice(1));
}
