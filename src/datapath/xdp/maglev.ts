/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016), with weights.
 *
 * Each backend has a permutation of the table's slots given by (offset + j * skip) mod M,
 * where offset and skip come from two hashes of the backend's stable key (its address, so
 * that two xlb nodes compute the same table and a failover keeps flows on their reals).
 * Backends take turns claiming their next free preferred slot until the table is full; a
 * backend of weight w takes w turns per round, so it ends up with a share of slots
 * proportional to w. Removing one of N equal backends moves about 1/N of the slots and
 * leaves the others where they were (within the small reshuffle Maglev allows).
 *
 * The BPF program reads the result as: real_id = table[flow_hash % M].
 * M must be prime (so every skip in 1..M-1 generates a full permutation).
 */

export interface MaglevBackend {
  /** Stable identity used for hashing, e.g. '198.18.1.1' or '198.18.1.1:8080'. */
  readonly key: string;
  /** What the table holds for this backend (the real id). Must not be 0. */
  readonly id: number;
  /** Relative weight, an integer >= 0; 0 means no slots (drained). */
  readonly weight: number;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * 32-bit hash of a string: FNV-1a over its UTF-8 bytes, then a murmur3-style finalizer so that
 * keys differing in one character spread over all bits. `seed` selects independent hashes.
 */
export function hashKey(key: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (const byte of Buffer.from(key, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

const OFFSET_SEED = 0x5eed0001;
const SKIP_SEED = 0x5eed0002;

/**
 * Build the lookup table: a Uint32Array of size M holding backend ids, or all zeros when
 * no backend has a weight above 0.
 */
export function buildMaglevTable(backends: readonly MaglevBackend[], size: number): Uint32Array {
  if (!isPrime(size)) throw new Error(`Maglev table size ${size} is not a prime`);
  const table = new Uint32Array(size);
  const active = backends.filter((b) => b.weight > 0);
  for (const b of backends) {
    if (!Number.isInteger(b.weight) || b.weight < 0) throw new Error(`backend ${b.key}: weight ${b.weight} is not an integer >= 0`);
    if (!Number.isInteger(b.id) || b.id <= 0 || b.id > 0xffffffff) throw new Error(`backend ${b.key}: id ${b.id} is not in 1..2^32-1`);
  }
  if (new Set(backends.map((b) => b.key)).size !== backends.length) throw new Error('Maglev backends have duplicate keys');
  if (active.length === 0) return table;

  // Sort by key so the result does not depend on the caller's order.
  active.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const n = active.length;
  const pos = new Int32Array(n); // current candidate slot of each backend's permutation
  const skip = new Int32Array(n);
  const ids = new Uint32Array(n);
  const weights = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const b = active[i]!;
    pos[i] = hashKey(b.key, OFFSET_SEED) % size;
    skip[i] = (hashKey(b.key, SKIP_SEED) % (size - 1)) + 1;
    ids[i] = b.id;
    weights[i] = b.weight;
  }
  // Weights are reduced by their common divisor so that equal weights cost one turn a round.
  let g = weights[0]!;
  for (let i = 1; i < n; i++) g = gcd(g, weights[i]!);
  for (let i = 0; i < n; i++) weights[i] = weights[i]! / g;

  // The fill works on backend numbers (1..n) in the smallest array that holds them (half the
  // memory of the ids for up to 65,535 backends: its random probes miss the cache less), then
  // maps numbers to ids in one pass.
  const slots = n < 0xffff ? new Uint16Array(size) : new Uint32Array(size);
  let filled = 0;
  fill: while (true) {
    for (let i = 0; i < n; i++) {
      const back = skip[i]! - size;
      const number = i + 1;
      for (let turn = weights[i]!; turn > 0; turn--) {
        // p + s - size, plus size again when that went negative: a step without a branch
        let p = pos[i]!;
        while (slots[p] !== 0) {
          p += back;
          p += (p >> 31) & size;
        }
        slots[p] = number;
        p += back;
        p += (p >> 31) & size;
        pos[i] = p;
        if (++filled === size) break fill;
      }
    }
  }
  for (let s = 0; s < size; s++) table[s] = ids[slots[s]! - 1]!;
  return table;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
