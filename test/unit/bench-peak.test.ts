/**
 * The pinned set-up's peak (scripts/bench/peak.ts), against simulated systems: one that
 * forwards up to a capacity and drops the rest, one whose forwarding collapses under a flood (as
 * XDP on veth does when its ring is overrun), and a generator slower than the system.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LADDER, ladderRates, lossOf, peakOf, type Trial } from '../../scripts/bench/peak.ts';

/** A system of the given capacity; beyond it, forwarding falls by `collapse` of the excess. */
const system = (capacity: number, collapse = 0) => (rate: number): Trial => {
  const forwarded = rate <= capacity ? rate : Math.max(0, capacity - collapse * (rate - capacity));
  return { rate, offered: rate, forwarded };
};

/** The flood (the generator's own rate) and the ladder after it, as the bench runs them. */
function peakFor(sys: (r: number) => Trial, generatorMax: number): { peak: Trial; trials: Trial[] } {
  const flood = { ...sys(generatorMax), rate: 0 };
  const trials = [flood, ...ladderRates(flood).map(sys)];
  return { peak: peakOf(trials), trials };
}

test('a system that collapses under a flood: the peak is found above what the flood got through', () => {
  const sys = system(1.76e6, 0.15);
  const { peak, trials } = peakFor(sys, 5e6);
  assert.ok(trials[0]!.forwarded < 1.3e6, `the flood got ${trials[0]!.forwarded} through`);
  assert.ok(peak.forwarded >= 1.76e6 * 0.9, `peak ${peak.forwarded}`);
  assert.ok(peak.rate > 0, 'a paced trial');
});

test('a hard capacity without collapse: the flood is the peak (or a ladder rate at the same capacity)', () => {
  const { peak } = peakFor(system(2e6), 5e6);
  assert.equal(peak.forwarded, 2e6);
});

test('ladder: multiples of the flood\'s forwarded rate, below 90% of what it offered; none when the generator was the limit', () => {
  assert.deepEqual(LADDER, [1.1, 1.25, 1.45, 1.7, 2.0]);
  assert.deepEqual(ladderRates({ rate: 0, offered: 5e6, forwarded: 1e6 }), [1.1e6, 1.25e6, 1.45e6, 1.7e6, 2e6]);
  assert.deepEqual(ladderRates({ rate: 0, offered: 3e6, forwarded: 2e6 }), [2.2e6, 2.5e6]);
  assert.deepEqual(ladderRates({ rate: 0, offered: 3e6, forwarded: 2.99e6 }), [], 'lost 0.3%: generator-bound');
  assert.equal(lossOf({ rate: 0, offered: 0, forwarded: 0 }), 0);
  assert.throws(() => peakOf([]), /no trials/);
});
