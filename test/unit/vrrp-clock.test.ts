/**
 * The injectable clock (src/util/clock.ts) that drives the VRRP timers: the manual clock's order
 * of callbacks and its notion of now, named timers that replace each other, the system clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, NamedTimers, spinningClock, systemClock } from '../../src/util/clock.ts';

test('ManualClock runs due callbacks in deadline order, ties in arming order, each at its own deadline', () => {
  const clock = new ManualClock(100);
  const seen: string[] = [];
  const note = (what: string) => () => seen.push(`${what}@${clock.now()}`);
  clock.setTimer(300, note('c'));
  clock.setTimer(200, note('a'));
  clock.setTimer(200, note('b'));
  clock.setTimer(50, note('past'));
  const never = clock.setTimer(250, note('cleared'));
  clock.clearTimer(never);
  assert.equal(clock.nextDeadline(), 50);
  clock.advance(150);
  assert.deepEqual(seen, ['past@100', 'a@200', 'b@200']);
  assert.equal(clock.now(), 250);
  assert.equal(clock.pending, 1);
  clock.advanceTo(1000);
  assert.deepEqual(seen, ['past@100', 'a@200', 'b@200', 'c@300']);
  assert.equal(clock.now(), 1000);
});

test('ManualClock runs timers armed by callbacks when they fall due within the same advance', () => {
  const clock = new ManualClock();
  const ticks: number[] = [];
  const tick = () => { ticks.push(clock.now()); if (ticks.length < 5) clock.setTimer(clock.now() + 10, tick); };
  clock.setTimer(10, tick);
  clock.advance(35);
  assert.deepEqual(ticks, [10, 20, 30]);
  clock.advance(100);
  assert.deepEqual(ticks, [10, 20, 30, 40, 50]);
  assert.throws(() => clock.advanceTo(0), /before now/);
  assert.throws(() => clock.advance(-1), /non-negative/);
});

test('NamedTimers keeps one deadline per name: re-arming replaces, clear cancels, firing forgets', () => {
  const clock = new ManualClock();
  const timers = new NamedTimers<'down' | 'advert'>(clock);
  const fired: string[] = [];
  timers.set('down', 100, () => fired.push(`down@${clock.now()}`));
  timers.set('down', 300, () => fired.push(`down2@${clock.now()}`));
  timers.set('advert', 200, () => fired.push(`advert@${clock.now()}`));
  assert.equal(timers.deadline('down'), 300);
  clock.advance(250);
  assert.deepEqual(fired, ['advert@200']);
  assert.equal(timers.deadline('advert'), undefined);
  timers.clear('down');
  clock.advance(1000);
  assert.deepEqual(fired, ['advert@200']);
  timers.set('down', 2000, () => fired.push('x'));
  timers.clearAll();
  assert.equal(clock.pending, 0);
});

test('systemClock never fires before the deadline (Node timers alone can be up to 1 ms early)', async () => {
  const lateness = await Promise.all(Array.from({ length: 40 }, (_, i) => new Promise<number>((resolve) => {
    const at = systemClock.now() + 1 + i * 0.37;
    systemClock.setTimer(at, () => resolve(systemClock.now() - at));
  })));
  assert.ok(lateness.every((l) => l >= 0), `early by ${Math.min(...lateness)} ms`);
});

test('systemClock is monotonic and fires real timers', async () => {
  const t0 = systemClock.now();
  const at = await new Promise<number>((resolve) => systemClock.setTimer(t0 + 20, () => resolve(systemClock.now())));
  assert.ok(at >= t0 + 20, `fired after ${at - t0} ms`);
  let ran = false;
  systemClock.clearTimer(systemClock.setTimer(systemClock.now() + 5, () => { ran = true; }));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(ran, false);
});

test('spinningClock: a timer never runs before its deadline; a cleared one never runs', async () => {
  const clock = spinningClock();
  const late: number[] = [];
  let cleared = 0;
  await Promise.all(Array.from({ length: 20 }, (_, i) => new Promise<void>((ok) => {
    const at = clock.now() + 1 + (i % 5);
    clock.setTimer(at, () => { late.push(clock.now() - at); ok(); });
    const h = clock.setTimer(at, () => { cleared++; });
    clock.clearTimer(h);
  })));
  await new Promise((ok) => setTimeout(ok, 20));
  assert.equal(late.length, 20);
  assert.ok(late.every((d) => d >= 0), `fired early by ${Math.min(...late)} ms`);
  assert.equal(cleared, 0);
});
