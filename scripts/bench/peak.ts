/**
 * The pinned set-up's figure, purely: the PEAK forwarded rate of a system, the most packets/s
 * it forwarded in a flood trial (the generator at full speed) and in trials paced at a ladder of
 * rates above what that flood got through.
 *
 * Why not the flood figure alone: on veth, a generator that overruns the balancer's ring
 * hammers the ring's cache lines from the other CPU and slows the consumer down (seen here: XDP
 * systems forwarded up to ~20% less under a flood than at their peak; the kernel path, far
 * slower, hardly less). Why not RFC 2544's loss-free throughput: below saturation the balancer's
 * NAPI thread sleeps when its 256-frame ring runs empty, and its wake-ups on this VM lose 1-3% at
 * rates far below the peak, whatever the system (seen with the floor at 3 Mpps): a loss
 * criterion measured the wake-ups, not the balancer.
 */

export interface Trial {
  /** asked of the generator (frames/s), 0 = as fast as it goes */
  rate: number;
  /** what it offered and what the sink counted, per second */
  offered: number;
  forwarded: number;
}

export function lossOf(t: Trial): number {
  return t.offered > 0 ? Math.max(0, 1 - t.forwarded / t.offered) : 0;
}

/** Multiples of the flood's forwarded rate that the ladder tries (the peak lies above it). */
export const LADDER = [1.1, 1.25, 1.45, 1.7, 2.0] as const;

/**
 * The paced rates to try after a flood trial: the flood's forwarded rate times each LADDER step,
 * kept below 90% of what the flood offered (closer, a paced trial is the flood again). None when
 * the flood got through with at most `generatorBound` loss: the generator, not the system, was
 * the limit.
 */
export function ladderRates(flood: Trial, generatorBound = 0.01): number[] {
  if (lossOf(flood) <= generatorBound) return [];
  return LADDER.map((k) => Math.round(flood.forwarded * k)).filter((r) => r < 0.9 * flood.offered);
}

/** The trial that forwarded the most. */
export function peakOf(trials: readonly Trial[]): Trial {
  if (trials.length === 0) throw new Error('no trials');
  return trials.reduce((a, b) => (b.forwarded > a.forwarded ? b : a));
}
