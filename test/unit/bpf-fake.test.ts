/**
 * FakeMap (src/datapath/bpf/fake.ts): the kernel's map semantics in memory, and the argument
 * checks it shares with BpfMap. Expected errors are the kernel's (see the uapi and the
 * kernel's map implementations), not whatever the fake happens to do.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BPF_ANY, BPF_EXIST, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
  BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LPM_TRIE, BPF_NOEXIST, type MapLike,
} from '../../src/datapath/bpf/index.ts';
import { FakeMap } from '../../src/datapath/bpf/fake.ts';

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };
const num = (b: Buffer | null) => (b === null ? null : b.length === 4 ? b.readUInt32LE(0) : Number(b.readBigUInt64LE(0)));

/** assert that fn throws an Error with exactly this code, errno and syscall */
function throwsErrno(fn: () => unknown, code: string, errno: number, syscall: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof Error, 'an Error');
    const e = err as Error & { code: string; errno: number; syscall: string };
    assert.equal(e.code, code, `code of: ${e.message}`);
    assert.equal(e.errno, errno, `errno of: ${e.message}`);
    assert.equal(e.syscall, syscall, `syscall of: ${e.message}`);
    return true;
  });
}

const hash = (maxEntries = 4) => new FakeMap({ type: BPF_MAP_TYPE_HASH, name: 'h', keySize: 4, valueSize: 8, maxEntries });

describe('FakeMap HASH', () => {
  test('update and lookup; a missing key is null', () => {
    const m: MapLike = hash();
    assert.equal(m.lookup(u32(1)), null);
    m.update(u32(1), u64(100));
    assert.equal(num(m.lookup(u32(1))), 100);
    m.update(u32(1), u64(101), BPF_ANY);
    assert.equal(num(m.lookup(u32(1))), 101);
  });

  test('lookup returns a copy', () => {
    const m = hash();
    m.update(u32(1), u64(5));
    m.lookup(u32(1))!.fill(0xff);
    assert.equal(num(m.lookup(u32(1))), 5);
  });

  test('BPF_NOEXIST on a present key: EEXIST; BPF_EXIST on a missing key: ENOENT', () => {
    const m = hash();
    m.update(u32(1), u64(1), BPF_NOEXIST);
    throwsErrno(() => m.update(u32(1), u64(2), BPF_NOEXIST), 'EEXIST', 17, 'bpf_map_update_elem');
    throwsErrno(() => m.update(u32(2), u64(2), BPF_EXIST), 'ENOENT', 2, 'bpf_map_update_elem');
    m.update(u32(1), u64(3), BPF_EXIST);
    assert.equal(num(m.lookup(u32(1))), 3);
    assert.equal(m.lookup(u32(2)), null);
  });

  test('a new key into a full map: E2BIG; replacing a present one still works', () => {
    const m = hash(2);
    m.update(u32(1), u64(1));
    m.update(u32(2), u64(2));
    throwsErrno(() => m.update(u32(3), u64(3)), 'E2BIG', 7, 'bpf_map_update_elem');
    m.update(u32(2), u64(22));
    assert.equal(num(m.lookup(u32(2))), 22);
    assert.equal(m.size, 2);
  });

  test('delete: true when present, false when not', () => {
    const m = hash();
    m.update(u32(1), u64(1));
    assert.equal(m.delete(u32(1)), true);
    assert.equal(m.delete(u32(1)), false);
    assert.equal(m.lookup(u32(1)), null);
  });

  test('keys, entries, nextKey (a missing key restarts at the first)', () => {
    const m = hash();
    for (const k of [7, 3, 9]) m.update(u32(k), u64(k * 10));
    assert.deepEqual([...m.keys()].map(num).sort(), [3, 7, 9]);
    assert.deepEqual(new Map([...m.entries()].map(([k, v]) => [num(k), num(v)])), new Map([[7, 70], [3, 30], [9, 90]]));
    const first = m.nextKey(null);
    assert.ok(first);
    assert.deepEqual(m.nextKey(u32(12345)), first);
    let last: Buffer | null = null;
    for (const k of m.keys()) last = k;
    assert.equal(m.nextKey(last), null);
    assert.deepEqual([...hash().keys()], []);
  });

  test('unsupported update flags: EINVAL', () => {
    throwsErrno(() => hash().update(u32(1), u64(1), 3), 'EINVAL', 22, 'bpf_map_update_elem');
  });
});

describe('FakeMap LRU_HASH', () => {
  test('a full map evicts the least recently used entry; an update counts as use, a user-space lookup does not', () => {
    const m = new FakeMap({ type: BPF_MAP_TYPE_LRU_HASH, name: 'lru', keySize: 4, valueSize: 8, maxEntries: 3 });
    for (const k of [1, 2, 3]) m.update(u32(k), u64(k));
    assert.equal(num(m.lookup(u32(1))), 1); // no use: 1 stays the least recent
    m.update(u32(4), u64(4));
    assert.equal(m.lookup(u32(1)), null);
    // use order now 2, 3, 4; updating 2 makes it 3, 4, 2: 3 goes next
    m.update(u32(2), u64(22));
    m.update(u32(5), u64(5), BPF_NOEXIST);
    assert.equal(m.lookup(u32(3)), null);
    assert.deepEqual([...m.entries()].map(([k, v]) => [num(k), num(v)]), [[4, 4], [2, 22], [5, 5]]);
    assert.equal(m.size, 3);
  });

  test('NOEXIST and EXIST as for HASH', () => {
    const m = new FakeMap({ type: BPF_MAP_TYPE_LRU_HASH, keySize: 4, valueSize: 8, maxEntries: 2 });
    m.update(u32(1), u64(1));
    throwsErrno(() => m.update(u32(1), u64(1), BPF_NOEXIST), 'EEXIST', 17, 'bpf_map_update_elem');
    throwsErrno(() => m.update(u32(9), u64(1), BPF_EXIST), 'ENOENT', 2, 'bpf_map_update_elem');
  });
});

describe('FakeMap ARRAY', () => {
  const array = () => new FakeMap({ type: BPF_MAP_TYPE_ARRAY, name: 'a', keySize: 4, valueSize: 4, maxEntries: 3 });

  test('every index exists, zero-filled; beyond the end: null', () => {
    const m = array();
    assert.deepEqual([0, 1, 2].map((i) => num(m.lookup(u32(i)))), [0, 0, 0]);
    assert.equal(m.lookup(u32(3)), null);
    assert.equal(m.size, 3);
  });

  test('update beyond the end: E2BIG; BPF_NOEXIST: EEXIST; BPF_EXIST works', () => {
    const m = array();
    throwsErrno(() => m.update(u32(3), u32(1)), 'E2BIG', 7, 'bpf_map_update_elem');
    throwsErrno(() => m.update(u32(0), u32(1), BPF_NOEXIST), 'EEXIST', 17, 'bpf_map_update_elem');
    m.update(u32(2), u32(42), BPF_EXIST);
    assert.equal(num(m.lookup(u32(2))), 42);
  });

  test('delete: EINVAL', () => {
    throwsErrno(() => array().delete(u32(0)), 'EINVAL', 22, 'bpf_map_delete_elem');
  });

  test('keys are 0..maxEntries-1; nextKey of a missing index is 0, of the last null', () => {
    const m = array();
    assert.deepEqual([...m.keys()].map(num), [0, 1, 2]);
    assert.equal(num(m.nextKey(u32(99))), 0);
    assert.equal(m.nextKey(u32(2)), null);
  });
});

describe('FakeMap per-CPU', () => {
  test('PERCPU_ARRAY: one 8-byte-aligned slot per CPU; updatePerCpu and lookupPerCpu', () => {
    const m = new FakeMap({ type: BPF_MAP_TYPE_PERCPU_ARRAY, name: 'pc', keySize: 4, valueSize: 4, maxEntries: 2, cpus: 3 });
    assert.equal(m.perCpu, true);
    assert.equal(m.valuesPerKey(), 3);
    assert.equal(m.valueBytes, 24);
    assert.equal(m.lookup(u32(0))!.length, 24);
    m.updatePerCpu(u32(1), [u32(10), u32(20), u32(30)]);
    assert.deepEqual(m.lookupPerCpu(u32(1)).map(num), [10, 20, 30]);
    // the raw layout: slot i at offset 8 * i
    const raw = m.lookup(u32(1))!;
    assert.deepEqual([0, 8, 16].map((o) => raw.readUInt32LE(o)), [10, 20, 30]);
  });

  test('PERCPU_HASH: missing key gives []; wrong number or size of values: EINVAL', () => {
    const m = new FakeMap({ type: BPF_MAP_TYPE_PERCPU_HASH, name: 'ph', keySize: 4, valueSize: 8, maxEntries: 2, cpus: 2 });
    assert.deepEqual(m.lookupPerCpu(u32(1)), []);
    throwsErrno(() => m.updatePerCpu(u32(1), [u64(1)]), 'EINVAL', 22, 'bpf_map_update_elem');
    throwsErrno(() => m.updatePerCpu(u32(1), [u64(1), u32(1)]), 'EINVAL', 22, 'bpf_map_update_elem');
    throwsErrno(() => m.update(u32(1), u64(1)), 'EINVAL', 22, 'bpf_map_update_elem'); // one CPU's worth only
    m.update(u32(1), Buffer.concat([u64(1), u64(2)]));
    assert.deepEqual(m.lookupPerCpu(u32(1)).map(num), [1, 2]);
  });

  test('updatePerCpu on a map that is not per-CPU: EINVAL; lookupPerCpu gives [value]', () => {
    const m = hash();
    throwsErrno(() => m.updatePerCpu(u32(1), [u64(1)]), 'EINVAL', 22, 'bpf_map_update_elem');
    m.update(u32(1), u64(9));
    assert.deepEqual(m.lookupPerCpu(u32(1)).map(num), [9]);
  });
});

describe('FakeMap batch operations', () => {
  test('writeAll: every value of an array in index order; a wrong length or a hash map is refused', () => {
    const m = new FakeMap({ type: BPF_MAP_TYPE_ARRAY, name: 'a', keySize: 4, valueSize: 4, maxEntries: 3 });
    m.writeAll(Buffer.concat([u32(7), u32(8), u32(9)]));
    assert.deepEqual([0, 1, 2].map((i) => num(m.lookup(u32(i)))), [7, 8, 9]);
    throwsErrno(() => m.writeAll(u32(1)), 'EINVAL', 22, 'bpf_map_update_batch');
    throwsErrno(() => hash().writeAll(Buffer.alloc(32)), 'EINVAL', 22, 'bpf_map_update_batch');
  });

  test('updateBatch from arrays and from concatenated buffers; lookupBatch walks everything', () => {
    const m = hash(10);
    assert.equal(m.updateBatch([u32(1), u32(2), u32(3)], [u64(10), u64(20), u64(30)]), 3);
    assert.equal(m.updateBatch(Buffer.concat([u32(4), u32(5)]), Buffer.concat([u64(40), u64(50)]), 2), 2);
    const seen = new Map<number, number>();
    let inBatch: Buffer | null = null;
    let calls = 0;
    do {
      const r = m.lookupBatch({ inBatch, count: 2 });
      assert.ok(r.count <= 2);
      assert.equal(r.keys.length, r.count);
      r.keys.forEach((k, i) => seen.set(num(k)!, num(r.values[i]!)!));
      inBatch = r.outBatch;
      calls++;
    } while (inBatch);
    assert.equal(calls, 3);
    assert.deepEqual([...seen].sort((a, b) => a[0] - b[0]), [[1, 10], [2, 20], [3, 30], [4, 40], [5, 50]]);
  });

  test('a failing updateBatch stops there and says how many were done', () => {
    const m = hash(10);
    m.update(u32(2), u64(0));
    assert.throws(() => m.updateBatch([u32(1), u32(2), u32(3)], [u64(1), u64(2), u64(3)], undefined, BPF_NOEXIST),
      (err: Error & { code: string; syscall: string; count: number }) => {
        assert.equal(err.code, 'EEXIST');
        assert.equal(err.syscall, 'bpf_map_update_batch');
        assert.equal(err.count, 1);
        return true;
      });
    assert.equal(num(m.lookup(u32(1))), 1);
    assert.equal(m.lookup(u32(3)), null);
  });

  test('deleteBatch: a missing key is ENOENT after the ones before it', () => {
    const m = hash(10);
    m.updateBatch([u32(1), u32(2)], [u64(1), u64(2)]);
    assert.throws(() => m.deleteBatch([u32(1), u32(9), u32(2)]), (err: Error & { code: string; errno: number; syscall: string; count: number }) => {
      assert.deepEqual([err.code, err.errno, err.syscall, err.count], ['ENOENT', 2, 'bpf_map_delete_batch', 1]);
      return true;
    });
    assert.equal(m.lookup(u32(1)), null);
    assert.equal(m.deleteBatch([u32(2)]), 1);
    assert.equal(m.size, 0);
  });

  test('array lookupBatch returns every index; keys and values of the wrong total size: EINVAL', () => {
    const m = new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 4, maxEntries: 3 });
    const r = m.lookupBatch();
    assert.deepEqual(r.keys.map(num), [0, 1, 2]);
    assert.equal(r.outBatch, null);
    throwsErrno(() => m.updateBatch(Buffer.alloc(8), Buffer.alloc(4), 2), 'EINVAL', 22, 'bpf_map_update_batch');
    throwsErrno(() => m.updateBatch(Buffer.alloc(6), Buffer.alloc(8)), 'EINVAL', 22, 'bpf_map_update_batch');
    throwsErrno(() => m.lookupBatch({ count: 0 }), 'EINVAL', 22, 'bpf_map_lookup_batch');
    throwsErrno(() => m.lookupBatch({ inBatch: Buffer.alloc(3) }), 'EINVAL', 22, 'bpf_map_lookup_batch');
  });
});

describe('FakeMap argument checks (shared with BpfMap)', () => {
  test('a key of the wrong size: EINVAL naming the operation', () => {
    const m = hash();
    throwsErrno(() => m.lookup(Buffer.alloc(3)), 'EINVAL', 22, 'bpf_map_lookup_elem');
    throwsErrno(() => m.update(Buffer.alloc(5), u64(1)), 'EINVAL', 22, 'bpf_map_update_elem');
    throwsErrno(() => m.delete(Buffer.alloc(0)), 'EINVAL', 22, 'bpf_map_delete_elem');
    throwsErrno(() => m.nextKey(Buffer.alloc(8)), 'EINVAL', 22, 'bpf_map_get_next_key');
    assert.throws(() => m.lookup(Buffer.alloc(3)), /key is 3 bytes, the map's key size is 4/);
  });

  test('a value of the wrong size: EINVAL', () => {
    throwsErrno(() => hash().update(u32(1), u32(1)), 'EINVAL', 22, 'bpf_map_update_elem');
  });

  test('after close(): EBADF', () => {
    const m = hash();
    m.close();
    throwsErrno(() => m.lookup(u32(1)), 'EBADF', 9, 'bpf_map_lookup_elem');
  });

  test('creation: an unfaked type, a bad size: EINVAL from bpf_map_create', () => {
    throwsErrno(() => new FakeMap({ type: BPF_MAP_TYPE_LPM_TRIE, keySize: 8, valueSize: 4, maxEntries: 1 }), 'EINVAL', 22, 'bpf_map_create');
    throwsErrno(() => new FakeMap({ type: BPF_MAP_TYPE_HASH, keySize: 0, valueSize: 4, maxEntries: 1 }), 'EINVAL', 22, 'bpf_map_create');
    throwsErrno(() => new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 8, valueSize: 4, maxEntries: 1 }), 'EINVAL', 22, 'bpf_map_create');
  });
});
