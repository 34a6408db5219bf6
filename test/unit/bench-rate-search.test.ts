/**
 * The pinned set-up's throughput search (scripts/bench/rate-search.ts), against simulated
 * systems: one that forwards up to a capacity and drops the rest, and one whose forwarding
 * collapses under overload (as XDP on veth does when its ring is overrun).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addTrial, lossOf, nextRate, startSearch, type SearchState, type Trial } from '../../scripts/bench/rate-search.ts';

/** A system of the given capacity; beyond it, forwarding falls by `collapse` of the excess. */
const system = (capacity: number, collapse = 0) => (rate: number): Trial => {
  const forwarded = rate <= capacity ? rate : Math.max(0, capacity - collapse * (rate - capacity));
  return { rate, offered: rate, forwarded };
};

function search(sys: (r: number) => Trial, generatorMax: number, tolerance = 0.01, maxTrials = 12, resolution = 0.01): SearchState {
  let s = startSearch({ ...sys(generatorMax), rate: 0 }, tolerance);
  for (let r = nextRate(s, maxTrials, resolution); r !== null; r = nextRate(s, maxTrials, resolution)) s = addTrial(s, sys(r));
  return s;
}

test('a system with a hard capacity: the search ends within the resolution below it, without loss', () => {
  const s = search(system(1.76e6), 5e6);
  assert.ok(s.best, 'a trial within the tolerance');
  assert.ok(s.best.forwarded <= 1.76e6 && s.best.forwarded >= 1.76e6 * 0.98, `best ${s.best.forwarded}`);
  assert.ok(lossOf(s.best) <= 0.01);
  assert.ok(s.trials.length <= 12);
});

test('a system that collapses under a flood: the throughput is its peak, not what the flood gets through', () => {
  const sys = system(1.76e6, 0.15);
  const flood = sys(5e6);
  assert.ok(flood.forwarded < 1.4e6, 'the flood figure is far below the peak');
  const s = search(sys, 5e6);
  assert.ok(s.best && s.best.forwarded >= 1.76e6 * 0.97, `best ${s.best?.forwarded}`);
});

test('a generator slower than the system: the flood itself is within the tolerance and nothing is searched', () => {
  const s = startSearch({ rate: 0, offered: 3e6, forwarded: 2.99e6 }, 0.01);
  assert.equal(nextRate(s, 8, 0.02), null);
  assert.deepEqual(s.best, { rate: 0, offered: 3e6, forwarded: 2.99e6 });
});

test('bisection: a passing trial raises the low bound, a failing one lowers the high bound; best is the most forwarded that passed', () => {
  let s = startSearch({ rate: 0, offered: 4e6, forwarded: 1e6 }, 0.01);
  assert.deepEqual([s.lo, s.hi, s.best], [0.5e6, 4e6, null]);
  assert.equal(nextRate(s, 8, 0.02), 2.25e6);
  s = addTrial(s, { rate: 2.25e6, offered: 2.25e6, forwarded: 1.5e6 });
  assert.deepEqual([s.lo, s.hi, s.best], [0.5e6, 2.25e6, null]);
  s = addTrial(s, { rate: 1.375e6, offered: 1.37e6, forwarded: 1.37e6 });
  assert.deepEqual([s.lo, s.hi, s.best?.rate], [1.375e6, 2.25e6, 1.375e6]);
  s = addTrial(s, { rate: 1.8e6, offered: 1.8e6, forwarded: 1.79e6 });
  assert.equal(s.best?.rate, 1.8e6);
  assert.equal(nextRate(s, 4, 0.02), null, 'at most maxTrials trials');
  assert.equal(lossOf({ rate: 1, offered: 0, forwarded: 0 }), 0);
});
