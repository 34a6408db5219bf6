import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildMaglevTable, hashKey, isPrime, type MaglevBackend } from '../../src/datapath/xdp/maglev.ts';

const M = 65537;
const backends = (n: number, weight = 1): MaglevBackend[] =>
  Array.from({ length: n }, (_, i) => ({ key: `198.18.1.${i + 1}`, id: i + 1, weight }));

function shares(table: Uint32Array): Map<number, number> {
  const m = new Map<number, number>();
  for (const id of table) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

/** A deterministic stream of 32-bit "flow hashes" (xorshift32), standing in for 100k flows. */
function flowHashes(n: number): Uint32Array {
  const out = new Uint32Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x;
  }
  return out;
}

test('isPrime knows the default and rejects composites', () => {
  assert.equal(isPrime(65537), true);
  assert.equal(isPrime(251), true);
  assert.equal(isPrime(65536), false);
  assert.equal(isPrime(1), false);
  assert.equal(isPrime(65539 * 3), false);
});

test('hashKey is stable and seed-dependent', () => {
  assert.equal(hashKey('198.18.1.1', 1), hashKey('198.18.1.1', 1));
  assert.notEqual(hashKey('198.18.1.1', 1), hashKey('198.18.1.1', 2));
  assert.notEqual(hashKey('198.18.1.1', 1), hashKey('198.18.1.2', 1));
});

test('table is full, deterministic and independent of backend order', () => {
  const b = backends(7);
  const t1 = buildMaglevTable(b, M);
  const t2 = buildMaglevTable([...b].reverse(), M);
  assert.equal(t1.length, M);
  assert.ok(t1.every((id) => id >= 1 && id <= 7));
  assert.deepEqual(t1, t2);
});

test('equal weights give equal shares (within one slot)', () => {
  const s = shares(buildMaglevTable(backends(100), M));
  assert.equal(s.size, 100);
  const counts = [...s.values()];
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `shares ${Math.min(...counts)}..${Math.max(...counts)}`);
});

test('weights are honoured: 3:2:1 and weight 0 gets nothing', () => {
  const t = buildMaglevTable([
    { key: 'a', id: 1, weight: 3 }, { key: 'b', id: 2, weight: 2 }, { key: 'c', id: 3, weight: 1 }, { key: 'd', id: 4, weight: 0 },
  ], M);
  const s = shares(t);
  assert.equal(s.get(4), undefined);
  assert.ok(Math.abs((s.get(1) ?? 0) / M - 3 / 6) < 0.001);
  assert.ok(Math.abs((s.get(2) ?? 0) / M - 2 / 6) < 0.001);
  assert.ok(Math.abs((s.get(3) ?? 0) / M - 1 / 6) < 0.001);
});

test('no backend with weight > 0 gives an all-zero table (the program drops: no real)', () => {
  assert.ok(buildMaglevTable([{ key: 'a', id: 1, weight: 0 }], 251).every((x) => x === 0));
  assert.ok(buildMaglevTable([], 251).every((x) => x === 0));
});

test('bad input is refused with the reason', () => {
  assert.throws(() => buildMaglevTable(backends(2), 65536), /not a prime/);
  assert.throws(() => buildMaglevTable([{ key: 'a', id: 0, weight: 1 }], 251), /id 0/);
  assert.throws(() => buildMaglevTable([{ key: 'a', id: 1, weight: -1 }], 251), /weight -1/);
  assert.throws(() => buildMaglevTable([{ key: 'a', id: 1, weight: 1 }, { key: 'a', id: 2, weight: 1 }], 251), /duplicate/);
});

for (const n of [5, 10, 100]) {
  test(`removing one of ${n} reals moves about 1/${n} of 100k flows, nearly all of them from the removed real`, () => {
    const before = buildMaglevTable(backends(n), M);
    const removed = 3;
    const after = buildMaglevTable(backends(n).filter((b) => b.id !== removed), M);
    let moved = 0;
    let movedFromOthers = 0;
    let onRemoved = 0;
    for (const h of flowHashes(100_000)) {
      const slot = h % M;
      if (before[slot] === removed) onRemoved++;
      if (before[slot] !== after[slot]) {
        moved++;
        if (before[slot] !== removed) movedFromOthers++;
      }
    }
    const frac = moved / 100_000;
    // every flow of the removed real moves, and it had ~1/n of them
    assert.ok(Math.abs(onRemoved / 100_000 - 1 / n) < 0.1 / n + 0.002, `removed real had ${onRemoved} flows`);
    assert.ok(Math.abs(frac - 1 / n) < 0.1 / n + 0.01, `moved ${(frac * 100).toFixed(2)}% of flows, expected ~${(100 / n).toFixed(2)}%`);
    // Maglev trades perfect stability for balance: a small share of other flows move (the paper
    // reports the same). The connection table keeps established flows where they are.
    assert.ok(movedFromOthers / 100_000 < 0.01, `moved ${movedFromOthers} flows of reals that stayed`);
  });
}

test('adding a real takes about 1/(n+1) of the flows', () => {
  const before = buildMaglevTable(backends(9), M);
  const after = buildMaglevTable(backends(10), M);
  let toNew = 0;
  for (let i = 0; i < M; i++) if (after[i] === 10) toNew++;
  assert.ok(Math.abs(toNew / M - 0.1) < 0.001);
  let changed = 0;
  for (let i = 0; i < M; i++) if (before[i] !== after[i]) changed++;
  assert.ok(changed / M < 0.1 + 0.01, `changed ${changed}`);
});
