/**
 * An in-memory map with the kernel's semantics, for unit tests that need no root: FakeMap
 * implements MapLike exactly like BpfMap (the same argument checks, from MapBase), and its
 * operations fail the way the kernel's do:
 *
 *   HASH, PERCPU_HASH      update: BPF_NOEXIST on a present key → EEXIST, BPF_EXIST on a missing
 *                          key → ENOENT, a new key into a full map → E2BIG; delete of a missing key
 *                          → false; nextKey of a missing key → the first key.
 *   LRU_HASH, LRU_PERCPU_HASH  as HASH, but a new key into a full map evicts the least recently
 *                          used entry (an update counts as use; a lookup from user space does
 *                          not, as the kernel's lookup_elem_sys does not mark the entry; the
 *                          kernel's LRU is approximate, this one is exact).
 *   ARRAY, PERCPU_ARRAY    every index 0..maxEntries-1 exists (zero-filled); lookup beyond → null;
 *                          update beyond → E2BIG; BPF_NOEXIST → EEXIST; delete → EINVAL,
 *                          deleteBatch → ENOTSUPP (the kernel's arrays have no batch delete);
 *                          nextKey of a missing index → 0, of the last → null.
 *   batch                  lookupBatch walks in iteration order (outBatch null at the end);
 *                          updateBatch/deleteBatch stop at the first failure and throw it with
 *                          `count` = how many were done (delete of a missing key → ENOENT).
 *   update flags           anything but BPF_ANY / BPF_NOEXIST / BPF_EXIST → EINVAL.
 *
 * Hash maps iterate in insertion order (LRU maps: least recently used first); the kernel's order
 * is its own, so tests must not depend on it.
 */
import {
  BPF_ANY, BPF_EXIST, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH,
  BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH, BPF_NOEXIST, MapBase, batchTokenSize, bpfError, isPerCpuType,
  type BpfError, type MapInfo, type TsErrnoName,
} from './index.ts';

export interface FakeMapOptions {
  type: number;
  name?: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
  /** possible CPUs, for per-CPU maps; default 4 */
  cpus?: number;
}

type Kind = 'hash' | 'lru' | 'array';

const KINDS: ReadonlyMap<number, Kind> = new Map([
  [BPF_MAP_TYPE_HASH, 'hash'], [BPF_MAP_TYPE_PERCPU_HASH, 'hash'],
  [BPF_MAP_TYPE_LRU_HASH, 'lru'], [BPF_MAP_TYPE_LRU_PERCPU_HASH, 'lru'],
  [BPF_MAP_TYPE_ARRAY, 'array'], [BPF_MAP_TYPE_PERCPU_ARRAY, 'array'],
]);

interface Entry { key: Buffer; value: Buffer }

const MESSAGES: Record<string, string> = {
  ENOENT: 'No such file or directory', EEXIST: 'File exists', E2BIG: 'Argument list too long', EINVAL: 'Invalid argument',
  ENOTSUPP: 'Operation not supported',
};

export class FakeMap extends MapBase {
  private closedFlag = false;
  private readonly kind: Kind;
  /** hash kinds: by hex key; JS Map order is the iteration (and LRU) order */
  private readonly entries_ = new Map<string, Entry>();
  /** array kinds: one value per index */
  private readonly slots: Buffer[];

  constructor(o: FakeMapOptions) {
    super(FakeMap.checkOptions(o), isPerCpuType(o.type) ? o.cpus ?? 4 : 1);
    this.kind = KINDS.get(o.type)!;
    this.slots = this.kind === 'array' ? Array.from({ length: o.maxEntries }, () => Buffer.alloc(this.valueBytes)) : [];
  }

  private static checkOptions(o: FakeMapOptions): MapInfo {
    const sc = 'bpf_map_create';
    const bad = (msg: string) => bpfError('EINVAL', sc, `fake map: ${msg}`);
    if (!KINDS.has(o.type)) throw bad(`map type ${o.type} is not faked (HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH, ARRAY, PERCPU_ARRAY are)`);
    for (const [k, v] of [['keySize', o.keySize], ['valueSize', o.valueSize], ['maxEntries', o.maxEntries]] as const) {
      if (!Number.isInteger(v) || v < 1) throw bad(`${k} must be a positive integer, got ${v}`);
    }
    if (KINDS.get(o.type) === 'array' && o.keySize !== 4) throw bad(`an array map's key is 4 bytes, not ${o.keySize}`);
    if (o.cpus !== undefined && (!Number.isInteger(o.cpus) || o.cpus < 1)) throw bad(`cpus must be a positive integer, got ${o.cpus}`);
    return {
      name: o.name ?? '', type: o.type, keySize: o.keySize, valueSize: o.valueSize, maxEntries: o.maxEntries, flags: o.flags ?? 0, id: 0,
    };
  }

  /** Entries present (an array map: always maxEntries). */
  get size(): number {
    return this.kind === 'array' ? this.info.maxEntries : this.entries_.size;
  }

  close(): void {
    this.closedFlag = true;
  }

  protected checkOpen(sc: string): void {
    if (this.closedFlag) throw bpfError('EBADF', sc, `fake map '${this.info.name}' is closed`);
  }

  private fail(code: TsErrnoName, sc: string): BpfError {
    return bpfError(code, sc, `fake map '${this.info.name}': ${MESSAGES[code] ?? code} (${code})`);
  }

  private touch(id: string, e: Entry): void {
    if (this.kind !== 'lru') return;
    this.entries_.delete(id);
    this.entries_.set(id, e);
  }

  protected rawLookup(key: Buffer): Buffer | null {
    if (this.kind === 'array') {
      const slot = this.slots[key.readUInt32LE(0)];
      return slot ? Buffer.from(slot) : null;
    }
    const id = key.toString('hex');
    const e = this.entries_.get(id);
    return e ? Buffer.from(e.value) : null;
  }

  protected rawUpdate(key: Buffer, value: Buffer, flags: number): void {
    this.updateOne(key, value, flags, 'bpf_map_update_elem');
  }

  private updateOne(key: Buffer, value: Buffer, flags: number, sc: string): void {
    if (flags !== BPF_ANY && flags !== BPF_NOEXIST && flags !== BPF_EXIST) throw this.fail('EINVAL', sc);
    if (this.kind === 'array') {
      const index = key.readUInt32LE(0);
      if (index >= this.info.maxEntries) throw this.fail('E2BIG', sc);
      if (flags === BPF_NOEXIST) throw this.fail('EEXIST', sc);
      this.slots[index] = Buffer.from(value);
      return;
    }
    const id = key.toString('hex');
    const old = this.entries_.get(id);
    if (old) {
      if (flags === BPF_NOEXIST) throw this.fail('EEXIST', sc);
      old.value = Buffer.from(value);
      this.touch(id, old);
      return;
    }
    if (flags === BPF_EXIST) throw this.fail('ENOENT', sc);
    if (this.entries_.size >= this.info.maxEntries) {
      if (this.kind !== 'lru') throw this.fail('E2BIG', sc);
      const lru = this.entries_.keys().next();
      if (!lru.done) this.entries_.delete(lru.value);
    }
    this.entries_.set(id, { key: Buffer.from(key), value: Buffer.from(value) });
  }

  protected rawDelete(key: Buffer): boolean {
    if (this.kind === 'array') throw this.fail('EINVAL', 'bpf_map_delete_elem');
    return this.entries_.delete(key.toString('hex'));
  }

  protected rawNextKey(key: Buffer | null): Buffer | null {
    if (this.kind === 'array') {
      const index = key ? key.readUInt32LE(0) : this.info.maxEntries;
      const next = index >= this.info.maxEntries ? 0 : index + 1;
      if (next >= this.info.maxEntries) return null;
      const b = Buffer.alloc(4);
      b.writeUInt32LE(next);
      return b;
    }
    const ids = [...this.entries_.keys()];
    const at = key ? ids.indexOf(key.toString('hex')) : -1;
    const nextId = ids[at + 1]; // a missing key (at = -1) restarts at the first, as the kernel's hash does
    return nextId === undefined ? null : Buffer.from(this.entries_.get(nextId)!.key);
  }

  private all(): Entry[] {
    if (this.kind !== 'array') return [...this.entries_.values()];
    return this.slots.map((value, i) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      return { key, value };
    });
  }

  protected rawLookupBatch(inBatch: Buffer | null, count: number) {
    const all = this.all();
    const from = inBatch ? inBatch.readUInt32LE(0) : 0;
    const part = all.slice(from, from + count);
    let outBatch: Buffer | null = null;
    if (from + part.length < all.length) {
      outBatch = Buffer.alloc(batchTokenSize(this.info.keySize));
      outBatch.writeUInt32LE(from + part.length);
    }
    return {
      keys: Buffer.concat(part.map((e) => e.key)),
      values: Buffer.concat(part.map((e) => e.value)),
      count: part.length,
      outBatch,
    };
  }

  private batch(count: number, op: (i: number) => void): number {
    for (let i = 0; i < count; i++) {
      try {
        op(i);
      } catch (err) {
        (err as BpfError & { count: number }).count = i;
        throw err;
      }
    }
    return count;
  }

  protected rawUpdateBatch(keys: Buffer, values: Buffer, count: number, flags: number): number {
    const ks = this.info.keySize;
    const vs = this.valueBytes;
    return this.batch(count, (i) => {
      this.updateOne(keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs), flags, 'bpf_map_update_batch');
    });
  }

  protected rawDeleteBatch(keys: Buffer, count: number): number {
    const sc = 'bpf_map_delete_batch';
    const ks = this.info.keySize;
    if (this.kind === 'array') throw Object.assign(this.fail('ENOTSUPP', sc), { count: 0 });
    return this.batch(count, (i) => {
      if (!this.rawDelete(keys.subarray(i * ks, (i + 1) * ks))) throw this.fail('ENOENT', sc);
    });
  }
}
