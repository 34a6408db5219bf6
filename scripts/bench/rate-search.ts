/**
 * The pinned set-up's throughput search, purely (RFC 2544 "throughput" with a loss tolerance):
 * the highest offered rate that the system forwards with at most `tolerance` of the frames
 * lost, found by bisection between bounds taken from a flood trial.
 *
 * Why not the flood figure itself: on veth, a generator that overruns the balancer's ring
 * hammers the ring's cache lines from the other CPU and slows the consumer down (seen here:
 * XDP systems forward ~20% less under a flood than at their peak, the kernel path hardly
 * less), which measures the veth more than the balancer. A real NIC does not push back that way.
 */

export interface Trial {
  /** asked of the generator (frames/s) */
  rate: number;
  /** what it offered and what the sink counted, per second */
  offered: number;
  forwarded: number;
}

export interface SearchState {
  lo: number;
  hi: number;
  tolerance: number;
  trials: Trial[];
  /** the best trial within the tolerance so far */
  best: Trial | null;
}

export function lossOf(t: Trial): number {
  return t.offered > 0 ? Math.max(0, 1 - t.forwarded / t.offered) : 0;
}

/**
 * From a flood trial (rate 0: as fast as the generator goes): if even the flood is forwarded
 * within the tolerance the generator is the limit and there is nothing to search; otherwise
 * the throughput lies between half what the flood got through and the flood's offered rate.
 */
export function startSearch(flood: Trial, tolerance: number): SearchState {
  const within = lossOf(flood) <= tolerance;
  return {
    lo: within ? flood.offered : flood.forwarded / 2,
    hi: within ? flood.offered : flood.offered,
    tolerance,
    trials: [flood],
    best: within ? flood : null,
  };
}

/** The next rate to try, or null when the bracket is narrower than `resolution` (relative) or the trials are used up. */
export function nextRate(s: SearchState, maxTrials: number, resolution: number): number | null {
  if (s.trials.length >= maxTrials || s.hi - s.lo <= resolution * s.hi) return null;
  return Math.round((s.lo + s.hi) / 2);
}

export function addTrial(s: SearchState, t: Trial): SearchState {
  const ok = lossOf(t) <= s.tolerance;
  return {
    ...s,
    lo: ok ? Math.max(s.lo, t.rate) : s.lo,
    hi: ok ? s.hi : Math.min(s.hi, t.rate),
    trials: [...s.trials, t],
    best: ok && (!s.best || t.forwarded > s.best.forwarded) ? t : s.best,
  };
}
