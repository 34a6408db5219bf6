/**
 * An injectable clock: the one place where time comes from for state machines' drivers.
 *
 * Times are milliseconds on a monotonic scale (not wall-clock time; only differences mean
 * anything). State machines never read a clock themselves: they take `now` as an argument and
 * return deadlines (absolute times on this scale); a driver arms them on a `Clock`:
 *
 *   - `systemClock`: performance.now() and real timers, for the daemon;
 *   - `spinningClock()`: the same, but a timer fires within a few tens of microseconds after its
 *     deadline (it polls for the last SPIN_MS), for the timers that decide a VRRP takeover;
 *   - `ManualClock`: time moves only when a test calls `advance`/`advanceTo`, which runs the
 *     due callbacks in deadline order (ties in arming order), each seeing `now()` equal to its
 *     own deadline.
 *
 * `NamedTimers` keeps at most one armed deadline per name (re-arming replaces), which is the
 * shape of the timer actions the VRRP state machine returns (setTimer/clearTimer by name).
 */
import { performance } from 'node:perf_hooks';

export interface TimerHandle {
  /** the deadline this timer was armed for */
  readonly at: number;
}

export interface Clock {
  /** monotonic milliseconds */
  now(): number;
  /** run `fn` once at `at` (or as soon as possible when `at` is already past) */
  setTimer(at: number, fn: () => void): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

interface SystemHandle extends TimerHandle {
  timeout?: NodeJS.Timeout;
}

/**
 * Real time. A Node timer can fire up to a millisecond before its delay has passed by
 * performance.now() (it counts from the event loop's cached time); a deadline must never be early
 * (the state machine ignores early timer events), so an early callback re-arms for the rest.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(at, fn) {
    const handle: SystemHandle = { at };
    const arm = () => {
      handle.timeout = setTimeout(() => (performance.now() < at ? arm() : fn()), Math.max(0, Math.ceil(at - performance.now())));
    };
    arm();
    return handle;
  },
  clearTimer(handle) {
    clearTimeout((handle as SystemHandle).timeout);
  },
};

/** How long before a deadline spinningClock stops sleeping and starts polling. */
const SPIN_MS = 2;
/** How close to a deadline spinningClock stops polling and waits in a loop (one loop turn here: 20-300 us). */
const BUSY_MS = 0.3;

interface SpinHandle extends TimerHandle {
  cancelled: boolean;
  timeout?: NodeJS.Timeout;
  immediate?: NodeJS.Immediate;
}

/**
 * A clock for the timers that decide a takeover: node's setTimeout runs on the loop's cached
 * millisecond time, so a deadline is met anywhere from about 1 ms early to 1-2 ms late. This one
 * sleeps (setTimeout) until SPIN_MS before the deadline, then polls the monotonic clock once per
 * event-loop turn (setImmediate: I/O keeps being served) until BUSY_MS before it, and waits out
 * the rest in a loop on the monotonic clock (one event-loop turn takes 20-300 us here, which is
 * what a deadline was late by before), then fires: never before the deadline, a few microseconds
 * after. It costs a busy event loop for SPIN_MS and a blocked one for BUSY_MS at most, only when a
 * deadline really comes (a backup's master-down timer is re-armed by every advert long before; an
 * advert that arrives in the last BUSY_MS is read just after the takeover, as it would be if it
 * had come a moment later).
 */
export function spinningClock(): Clock {
  return {
    now: () => performance.now(),
    setTimer(at, fn) {
      const h: SpinHandle = { at, cancelled: false };
      const spin = () => {
        if (h.cancelled) return;
        let t = performance.now();
        if (t < at - BUSY_MS) {
          h.immediate = setImmediate(spin);
          return;
        }
        while (t < at) t = performance.now();
        fn();
      };
      h.timeout = setTimeout(spin, Math.max(0, at - performance.now() - SPIN_MS));
      return h;
    },
    clearTimer(handle) {
      const h = handle as SpinHandle;
      h.cancelled = true;
      clearTimeout(h.timeout);
      if (h.immediate) clearImmediate(h.immediate);
    },
  };
}

interface ManualHandle extends TimerHandle {
  seq: number;
  fn: () => void;
}

/** A clock for tests: time only moves when told to. */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #pending: ManualHandle[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(at: number, fn: () => void): TimerHandle {
    if (!Number.isFinite(at)) throw new Error(`ManualClock.setTimer: deadline ${at} is not a finite number`);
    const handle: ManualHandle = { at, fn, seq: this.#seq++ };
    this.#pending.push(handle);
    return handle;
  }

  clearTimer(handle: TimerHandle): void {
    this.#pending = this.#pending.filter((h) => h !== handle);
  }

  /** how many timers are armed */
  get pending(): number {
    return this.#pending.length;
  }

  /** the earliest armed deadline, if any */
  nextDeadline(): number | undefined {
    return this.#earliest()?.at;
  }

  /** Move time forward by `ms`, running every callback that falls due on the way. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`ManualClock.advance: ${ms} is not a non-negative number of ms`);
    this.advanceTo(this.#now + ms);
  }

  /** Move time to `t` (not backwards), running due callbacks in deadline order. */
  advanceTo(t: number): void {
    if (t < this.#now) throw new Error(`ManualClock.advanceTo: ${t} is before now (${this.#now})`);
    for (;;) {
      const next = this.#earliest();
      if (!next || next.at > t) break;
      this.#pending = this.#pending.filter((h) => h !== next);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = t;
  }

  #earliest(): ManualHandle | undefined {
    let best: ManualHandle | undefined;
    for (const h of this.#pending) if (!best || h.at < best.at || (h.at === best.at && h.seq < best.seq)) best = h;
    return best;
  }
}

/** At most one armed deadline per name, on a given clock. */
export class NamedTimers<Name extends string> {
  readonly #clock: Clock;
  readonly #armed = new Map<Name, TimerHandle>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Arm `name` for `at`, replacing any deadline it had. */
  set(name: Name, at: number, fn: () => void): void {
    this.clear(name);
    const handle = this.#clock.setTimer(at, () => {
      if (this.#armed.get(name) === handle) this.#armed.delete(name);
      fn();
    });
    this.#armed.set(name, handle);
  }

  clear(name: Name): void {
    const handle = this.#armed.get(name);
    if (handle) this.#clock.clearTimer(handle);
    this.#armed.delete(name);
  }

  clearAll(): void {
    for (const name of [...this.#armed.keys()]) this.clear(name);
  }

  /** the deadline armed for `name`, if any */
  deadline(name: Name): number | undefined {
    return this.#armed.get(name)?.at;
  }
}
