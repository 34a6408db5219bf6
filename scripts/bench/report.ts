/** Medians, the machine description and the result table of the datapath benchmark. */
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Mean of the middle half (25th..75th percentile): less coarse than the median when the clock ticks in steps. */
export function interquartileMean(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.slice(Math.floor(s.length / 4), Math.ceil((3 * s.length) / 4));
  return mid.reduce((a, b) => a + b, 0) / mid.length;
}

export interface Machine {
  cpu_model: string;
  cores: number;
  kernel: string;
  node: string;
  memory_gib: number;
  bench_cpu: number;
}

export function machine(benchCpu: number): Machine {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) model = m[1]!.trim();
  } catch { /* keep os.cpus() */ }
  return {
    cpu_model: model,
    cores: cpus().length,
    kernel: release(),
    node: process.version,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    bench_cpu: benchCpu,
  };
}

/** One line of bench-results/datapath.json (the first five fields are the contract). */
export interface ResultRow {
  case: string;
  method: 'per-call' | 'live-frames';
  ns_per_packet: number;
  baseline_ns_per_packet: number;
  ratio: number;
  /** the program measured as the baseline: xdp_tx unless said otherwise */
  baseline_program: 'xdp_tx' | 'xdp_pass';
  target_ratio?: number;
  [extra: string]: unknown;
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** A plain text table; the columns listed in `right` are right-aligned. */
export function table(head: string[], rows: string[][], right: readonly number[] = []): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (right.includes(i) ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd();
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

export function resultTable(rows: readonly ResultRow[], maglev?: { ms: number; target: number }): string {
  const body = rows.flatMap((r) => {
    const line = (method: string, ns: number, baseNs: number, ratio: number, target: number | undefined) => [
      r.case, method, ns.toFixed(1), `${baseNs.toFixed(1)}${r.baseline_program === 'xdp_pass' ? ' (pass)' : ''}`, `${ratio.toFixed(2)}×`,
      target === undefined ? '-' : `≤ ${target}×`,
      target === undefined ? '-' : ratio <= target ? 'ok' : 'MISSED',
    ];
    const out = [line(r.method, r.ns_per_packet, r.baseline_ns_per_packet, r.ratio, r.target_ratio)];
    const m = r.many_flows as { flows: number; ns_per_packet: number; baseline_ns_per_packet: number; ratio: number } | undefined;
    if (m) out.push(line(`${r.method}, ${m.flows} flows`, m.ns_per_packet, m.baseline_ns_per_packet, m.ratio, r.target_ratio));
    return out;
  });
  if (maglev) {
    body.push(['maglev-table 65537×100', 'build', `${maglev.ms.toFixed(2)} ms`, '-', '-', `≤ ${maglev.target} ms`,
      maglev.ms <= maglev.target ? 'ok' : 'MISSED']);
  }
  return table(['case', 'method', 'ns/packet', 'baseline ns/packet', 'ratio', 'target', 'ok?'], body, [2, 3, 4]);
}
