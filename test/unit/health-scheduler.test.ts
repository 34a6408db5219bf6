/**
 * The check engine's logic (src/health/retry.ts, src/health/scheduler.ts) on a ManualClock with
 * scripted checkers: keepalived's retry rules, delay_loop / delay_before_retry / warmup /
 * bootstrap timing, alpha, timeouts, transitions reported once, several checkers per real
 * server, weights, suspension, removal, and the single engine timer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/util/clock.ts';
import { afterCheck, initialRetryState } from '../../src/health/retry.ts';
import { HealthScheduler } from '../../src/health/scheduler.ts';
import type { Checker, CheckResult, CheckTiming, HealthEvent, WatchChecker } from '../../src/health/types.ts';

// ---------------------------------------------------------------- the pure rules

test('retry rules: one failure is enough initially; a live checker needs retry + 1 failures in a row', () => {
  let st = initialRetryState(false, 2);
  assert.deepEqual(st, { up: true, hasRun: false, retryIt: 2 });
  let out = afterCheck(st, false, 2);
  assert.deepEqual(out, { state: { up: false, hasRun: true, retryIt: 0 }, next: 'delay_loop', changed: true });
  out = afterCheck(out.state, true, 2);
  assert.deepEqual(out, { state: { up: true, hasRun: true, retryIt: 0 }, next: 'delay_loop', changed: true });
  st = out.state;
  const seen: string[] = [];
  for (let i = 0; i < 3; i++) {
    out = afterCheck(st, false, 2);
    st = out.state;
    seen.push(`${st.up ? 'up' : 'down'}/${st.retryIt}/${out.next}/${out.changed}`);
  }
  assert.deepEqual(seen, [
    'up/1/delay_before_retry/false',
    'up/2/delay_before_retry/false',
    'down/0/delay_loop/true',
  ]);
});

test('retry rules: a success in the middle of retries starts the count again', () => {
  let st = afterCheck(initialRetryState(false, 1), true, 1).state;
  st = afterCheck(st, false, 1).state;
  assert.deepEqual(st, { up: true, hasRun: true, retryIt: 1 });
  st = afterCheck(st, true, 1).state;
  assert.equal(st.retryIt, 0);
  const out = afterCheck(st, false, 1);
  assert.equal(out.state.up, true, 'one failure after a success is only a retry');
  assert.equal(out.next, 'delay_before_retry');
});

test('retry rules: a checker already down does not retry, and failing again is no transition', () => {
  const down = afterCheck(initialRetryState(false, 3), false, 3).state;
  const out = afterCheck(down, false, 3);
  assert.deepEqual(out, { state: { up: false, hasRun: true, retryIt: 0 }, next: 'delay_loop', changed: false });
});

test('retry rules: alpha starts down; its first failure is no transition, its first success is', () => {
  const st = initialRetryState(true, 1);
  assert.equal(st.up, false);
  assert.equal(afterCheck(st, false, 1).changed, false);
  assert.equal(afterCheck(st, false, 1).state.up, false);
  assert.equal(afterCheck(st, true, 1).changed, true);
});

test('retry rules: retry 0 takes a live checker down at its first failure', () => {
  const up = afterCheck(initialRetryState(false, 0), true, 0).state;
  const out = afterCheck(up, false, 0);
  assert.equal(out.changed, true);
  assert.equal(out.state.up, false);
});

// ---------------------------------------------------------------- scripted checkers

/** A checker whose verdicts come from a script: each run takes `durationMs` on the clock (0: synchronous). */
class Scripted implements Checker {
  readonly kind = 'TCP_CHECK' as const;
  readonly runs: number[] = [];
  cancelled = 0;
  closed = 0;
  constructor(
    readonly target: string,
    private readonly clock: ManualClock,
    private readonly verdicts: (n: number) => CheckResult | 'hang',
    private readonly durationMs = 0,
  ) {}

  run(done: (r: CheckResult) => void): () => void {
    const n = this.runs.length;
    this.runs.push(this.clock.now());
    const v = this.verdicts(n);
    if (v === 'hang') return () => { this.cancelled++; };
    if (this.durationMs === 0) {
      done(v);
      return () => { this.cancelled++; };
    }
    const h = this.clock.setTimer(this.clock.now() + this.durationMs, () => done(v));
    return () => {
      this.cancelled++;
      this.clock.clearTimer(h);
    };
  }

  close(): void {
    this.closed++;
  }
}

const UP: CheckResult = { up: true, reason: 'connected' };
const DOWN: CheckResult = { up: false, reason: 'connection refused' };

function timing(o: Partial<CheckTiming> = {}): CheckTiming {
  return { delayLoopMs: 10_000, retry: 1, delayBeforeRetryMs: 1000, warmupMs: 0, timeoutMs: 3000, alpha: false, ...o };
}

function engine(clock: ManualClock, opts: { random?: () => number; bootstrapMs?: number } = {}) {
  const s = new HealthScheduler({ clock, random: opts.random ?? (() => 0), bootstrapMs: opts.bootstrapMs ?? 1000 });
  const events: HealthEvent[] = [];
  s.on('event', (e) => events.push(e));
  return { s, events, brief: () => events.map((e) => `${e.at} ${e.real} ${e.type} w${e.weight}`) };
}

/** verdicts from a string: 'u' up, 'd' down, 'h' hang; after its end, the last one */
function script(s: string): (n: number) => CheckResult | 'hang' {
  return (n) => {
    const c = s[Math.min(n, s.length - 1)];
    return c === 'u' ? UP : c === 'h' ? 'hang' : DOWN;
  };
}

test('first check after the bootstrap delay plus a random share of warmup', () => {
  const clock = new ManualClock();
  const { s } = engine(clock, { random: () => 0.25 });
  const c = new Scripted('a', clock, script('u'));
  s.addReal('r1', { weight: 1, checkers: [{ checker: c, timing: timing({ warmupMs: 8000 }) }] });
  assert.deepEqual(c.runs, [], 'nothing runs before start()');
  s.start();
  clock.advanceTo(2999);
  assert.deepEqual(c.runs, []);
  clock.advanceTo(3000);
  assert.deepEqual(c.runs, [3000], 'bootstrap 1000 + 0.25 x warmup 8000');
  clock.advanceTo(30_000);
  assert.deepEqual(c.runs, [3000, 13_000, 23_000], 'then every delay_loop');
});

test('a live real needs retry + 1 failures, delay_before_retry apart; then delay_loop; one down event', () => {
  const clock = new ManualClock();
  const { s, events, brief } = engine(clock);
  // up, up, then failing for good
  const c = new Scripted('a', clock, script('uud'));
  s.addReal('r1', { weight: 3, checkers: [{ checker: c, timing: timing({ retry: 2, delayBeforeRetryMs: 500 }) }] });
  s.start();
  clock.advanceTo(60_000);
  assert.deepEqual(c.runs.slice(0, 7), [1000, 11_000, 21_000, 21_500, 22_000, 32_000, 42_000]);
  assert.deepEqual(brief(), ['22000 r1 down w3'], 'the third failure in a row takes it down, once');
  assert.equal(s.stats.events.down, 1);
  assert.equal(events[0]?.checker.reason, 'connection refused');
  assert.deepEqual(events[0]?.checker, { index: 0, kind: 'TCP_CHECK', reason: 'connection refused' });
});

test('a non-alpha real goes down at its first failed check, and comes back up at its first success', () => {
  const clock = new ManualClock();
  const { s, brief } = engine(clock);
  const c = new Scripted('a', clock, script('dddu'));
  s.addReal('r1', { weight: 1, checkers: [{ checker: c, timing: timing({ retry: 3 }) }] });
  assert.equal(s.real('r1')?.up, true, 'starts up');
  s.start();
  clock.advanceTo(40_000);
  assert.deepEqual(c.runs.slice(0, 4), [1000, 11_000, 21_000, 31_000], 'a checker already down does not retry');
  assert.deepEqual(brief(), ['1000 r1 down w1', '31000 r1 up w1']);
});

test('alpha: the real starts down and the first success brings it up; failures before are no event', () => {
  const clock = new ManualClock();
  const { s, brief } = engine(clock);
  const c = new Scripted('a', clock, script('ddu'));
  s.addReal('r1', { weight: 2, checkers: [{ checker: c, timing: timing({ alpha: true }) }] });
  assert.equal(s.real('r1')?.up, false);
  s.start();
  clock.advanceTo(25_000);
  assert.deepEqual(brief(), ['21000 r1 up w2']);
});

test('a check that does not finish within its timeout is cancelled and fails', () => {
  const clock = new ManualClock();
  const { s, brief } = engine(clock);
  const c = new Scripted('a', clock, script('uh'));
  s.addReal('r1', { weight: 1, checkers: [{ checker: c, timing: timing({ retry: 0, timeoutMs: 2500 }) }] });
  s.start();
  clock.advanceTo(11_000);
  assert.equal(s.real('r1')?.checkers[0]?.running, true);
  clock.advanceTo(13_499);
  assert.equal(c.cancelled, 0);
  clock.advanceTo(13_500);
  assert.equal(c.cancelled, 1, 'the run in flight is cancelled');
  assert.deepEqual(brief(), ['13500 r1 down w1']);
  assert.equal(s.stats.timeouts, 1);
  assert.equal(s.real('r1')?.checkers[0]?.reason, 'timeout after 2500 ms');
  clock.advanceTo(23_500);
  assert.deepEqual(c.runs, [1000, 11_000, 23_500], 'the next check a delay_loop after the timeout');
});

test('delays count from the end of a check, or from its start with fromStart (MISC_CHECK)', () => {
  const clock = new ManualClock();
  const { s } = engine(clock);
  const fromEnd = new Scripted('end', clock, script('u'), 400);
  const fromStart = new Scripted('start', clock, script('u'), 400);
  s.addReal('r1', { weight: 1, checkers: [{ checker: fromEnd, timing: timing({ delayLoopMs: 1000 }) }] });
  s.addReal('r2', { weight: 1, checkers: [{ checker: fromStart, timing: timing({ delayLoopMs: 1000, fromStart: true }) }] });
  s.start();
  clock.advanceTo(5000);
  assert.deepEqual(fromEnd.runs, [1000, 2400, 3800]);
  assert.deepEqual(fromStart.runs, [1000, 2000, 3000, 4000, 5000]);
});

test('several checkers: down when any is down, up when all are; weights add to the configured weight', () => {
  const clock = new ManualClock();
  const { s, brief } = engine(clock);
  const a = new Scripted('a', clock, script('uuddduuu'));
  const dyn: CheckResult[] = [
    { up: true, reason: 'exit 12', weightDelta: 7 },  // misc_dynamic: 12 - 2 - configured 3
    { up: true, reason: 'exit 12', weightDelta: 7 },
    { up: true, reason: 'exit 0', weightDelta: 0 },
    { up: true, reason: 'exit 0', weightDelta: 0 },
    { up: true, reason: 'exit 0', weightDelta: 0 },
    { up: true, reason: 'exit 1' , weightDelta: -10 },
  ];
  const b = new Scripted('b', clock, (n) => dyn[Math.min(n, dyn.length - 1)]!);
  s.addReal('r1', { weight: 3, checkers: [
    { checker: a, timing: timing({ retry: 0 }) },
    { checker: b, timing: timing({ retry: 0 }) },
  ] });
  s.start();
  clock.advanceTo(80_000);
  assert.deepEqual(brief(), [
    '1000 r1 weight w10',
    '21000 r1 down w10',
    '21000 r1 weight w3',
    '51000 r1 up w3',
    '51000 r1 weight w0',
  ]);
  const r = s.real('r1')!;
  assert.equal(r.weight, 0, 'a weight below 0 is 0');
  assert.deepEqual(r.checkers.map((c) => c.weightDelta), [0, -10]);
});

test('suspended real servers skip their checks and keep their state; resumed, they check again', () => {
  const clock = new ManualClock();
  const { s } = engine(clock);
  const c = new Scripted('a', clock, script('u'));
  s.addReal('r1', { weight: 1, checkers: [{ checker: c, timing: timing() }] });
  s.start();
  clock.advanceTo(1000);
  s.setEnabled('r1', false);
  clock.advanceTo(40_000);
  assert.deepEqual(c.runs, [1000], 'skipped at 11000, 21000, 31000');
  s.setEnabled('r1', true);
  clock.advanceTo(51_000);
  assert.deepEqual(c.runs, [1000, 41_000, 51_000]);
  assert.equal(s.real('r1')?.enabled, true);
});

test('removing a real server cancels its check in flight, closes its checkers, and reports nothing more', () => {
  const clock = new ManualClock();
  const { s, events } = engine(clock);
  const c = new Scripted('a', clock, script('d'), 2000);
  s.addReal('r1', { weight: 1, checkers: [{ checker: c, timing: timing() }] });
  assert.equal(s.has('r1'), true);
  s.start();
  clock.advanceTo(1500);
  assert.equal(s.removeReal('r1'), true);
  assert.equal(s.has('r1'), false);
  assert.equal(c.cancelled, 1);
  assert.equal(c.closed, 1);
  clock.advanceTo(100_000);
  assert.deepEqual(events, []);
  assert.equal(clock.pending, 0, 'no timer is left armed');
  assert.equal(s.removeReal('r1'), false);
});

test('a real server added after start begins after bootstrap + warmup from then', () => {
  const clock = new ManualClock();
  const { s } = engine(clock, { random: () => 0.5 });
  s.start();
  clock.advanceTo(7000);
  const c = new Scripted('a', clock, script('u'));
  s.addReal('r1', { weight: 1, checkers: [{ checker: c, timing: timing({ warmupMs: 2000 }) }] });
  clock.advanceTo(20_000);
  assert.deepEqual(c.runs, [9000, 19_000]);
});

test('watch checkers (FILE_CHECK) apply each report at once, with no retries', () => {
  const clock = new ManualClock();
  const { s, brief } = engine(clock);
  let report: ((r: CheckResult) => void) | undefined;
  let stopped = 0;
  const w: WatchChecker = {
    kind: 'FILE_CHECK', target: '/run/w',
    watch(r) { report = r; r({ up: true, reason: 'value 0', weightDelta: 0 }); return () => { stopped++; }; },
  };
  s.addReal('r1', { weight: 5, checkers: [{ checker: w }] });
  s.start();
  assert.deepEqual(brief(), [], 'the first report matches the initial state');
  clock.advanceTo(100);
  report!({ up: true, reason: 'value 3', weightDelta: 6 });
  report!({ up: false, reason: 'value -99999', weightDelta: 0 });
  clock.advanceTo(200);
  report!({ up: true, reason: 'value 1', weightDelta: 2 });
  assert.deepEqual(brief(), ['100 r1 weight w11', '100 r1 down w5', '200 r1 up w7']);
  s.stop();
  assert.equal(stopped, 1);
  report!({ up: false, reason: 'late', weightDelta: 0 });
  assert.equal(s.stats.events.down, 1, 'reports after stop are ignored');
});

test('a checker that throws when started counts as a failed check', () => {
  const clock = new ManualClock();
  const { s, brief } = engine(clock);
  const bad: Checker = { kind: 'TCP_CHECK', target: 'x', run() { throw new Error('EMFILE'); } };
  s.addReal('r1', { weight: 1, checkers: [{ checker: bad, timing: timing() }] });
  s.start();
  clock.advanceTo(1000);
  assert.deepEqual(brief(), ['1000 r1 down w1']);
  assert.match(s.real('r1')!.checkers[0]!.reason, /failed to start: EMFILE/);
});

test('one engine timer for many checkers, whatever their phase', () => {
  const clock = new ManualClock();
  let seed = 1;
  const rnd = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const { s } = engine(clock, { random: rnd });
  const checkers: Scripted[] = [];
  for (let i = 0; i < 1000; i++) {
    const c = new Scripted(`c${i}`, clock, script(i % 7 === 0 ? 'ud' : 'u'), i % 3 === 0 ? 0 : 37);
    checkers.push(c);
    s.addReal(`r${i}`, { weight: 1, checkers: [{ checker: c, timing: timing({ warmupMs: 10_000, delayLoopMs: 2000 }) }] });
  }
  s.start();
  let maxPending = 0;
  for (let t = 0; t <= 30_000; t += 50) {
    clock.advanceTo(t);
    // the scripted checkers' own timers aside, the engine keeps at most one
    const inFlight = checkers.filter((_, i) => s.real(`r${i}`)!.checkers[0]!.running && i % 3 !== 0).length;
    maxPending = Math.max(maxPending, clock.pending - inFlight);
  }
  assert.equal(maxPending, 1);
  const total = checkers.reduce((n, c) => n + c.runs.length, 0);
  assert.ok(total > 1000 * 10, `every checker kept running (${total} runs)`);
  assert.equal(s.stats.events.down, Math.ceil(1000 / 7), 'every 7th real went down once');
  s.stop();
  assert.equal(clock.pending, 0);
});

test('bad timing and duplicate keys are refused with what is wrong', () => {
  const clock = new ManualClock();
  const { s } = engine(clock);
  const c = new Scripted('a', clock, script('u'));
  assert.throws(() => s.addReal('r1', { weight: 1, checkers: [{ checker: c, timing: timing({ retry: -1 }) }] }), /checker 0: retry -1/);
  assert.throws(() => s.addReal('r1', { weight: 1.5, checkers: [] }), /weight 1.5/);
  s.addReal('r1', { weight: 1, checkers: [] });
  assert.throws(() => s.addReal('r1', { weight: 1, checkers: [] }), /already checked/);
  assert.throws(() => s.setEnabled('nope', false), /no real server 'nope'/);
  assert.equal(s.real('r1')?.up, true, 'a real server with no checker is up');
});
