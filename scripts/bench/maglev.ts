/** The Maglev table computation: buildMaglevTable for 65,537 slots and 100 reals. */
import { buildMaglevTable } from '../../src/datapath/xdp/maglev.ts';
import { median } from './report.ts';

export interface MaglevResult {
  size: number;
  reals: number;
  runs: number;
  median_ms: number;
  min_ms: number;
  max_ms: number;
  target_ms: number;
}

export function measureMaglev(o: { size?: number; reals?: number; warmup?: number; runs?: number } = {}): MaglevResult {
  const size = o.size ?? 65537;
  const n = o.reals ?? 100;
  const runs = o.runs ?? 30;
  // what the forwarder passes: the real's address as key, its id, its weight
  const backends = Array.from({ length: n }, (_, i) => ({ key: `198.18.${10 + (i >> 8)}.${i & 0xff}`, id: i + 1, weight: 1 }));
  let sink = 0;
  for (let i = 0; i < (o.warmup ?? 5); i++) sink += buildMaglevTable(backends, size)[0]!;
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const t = buildMaglevTable(backends, size);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    sink += t[i]!;
  }
  if (sink < 0) console.log(sink); // keep the results alive
  return { size, reals: n, runs, median_ms: median(ms), min_ms: Math.min(...ms), max_ms: Math.max(...ms), target_ms: 2 };
}
