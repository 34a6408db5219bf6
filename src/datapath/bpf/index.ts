/**
 * The typed face of the native addon (native/, contract in ./native.ts).
 *
 * The addon is mechanism only; this module adds what a caller should not have to think about:
 * argument checks with clear messages, defaults, per-CPU value layout, ownership of fds.
 *
 *   openObject(path)   → BpfObject: adjust maps and load-time globals, load, then .map(name) /
 *                        .program(name); close() frees everything the object owns.
 *   BpfMap             a map by fd (from an object, BpfMap.create, BpfMap.fromPin).
 *   BpfProgram         a program by fd: info(), testRun() (BPF_PROG_TEST_RUN).
 *   xdp* / tc*         attach, detach and query on an interface of this network namespace.
 *
 * Errors: every failure is an Error with `code` (errno name), `errno` (positive) and `syscall`
 * (the libbpf function that failed, or that a bad argument was refused for). Argument errors
 * found here are code 'EINVAL' and never reach the kernel.
 *
 * The addon is loaded on first use, so importing this module (e.g. for the constants, or for the
 * in-memory fake in ./fake.ts) works without it being built.
 */
import { existsSync, readdirSync, rmdirSync, statfsSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import type {
  NativeAddon, NativeDatasecVar, NativeMapInfo, NativeObject, NativeProgramInfo, NativeTestRunOptions,
} from './native.ts';

// ---------------------------------------------------------------- constants (uapi linux/bpf.h, if_link.h)

export const BPF_MAP_TYPE_HASH = 1;
export const BPF_MAP_TYPE_ARRAY = 2;
export const BPF_MAP_TYPE_PROG_ARRAY = 3;
export const BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4;
export const BPF_MAP_TYPE_PERCPU_HASH = 5;
export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
export const BPF_MAP_TYPE_LRU_HASH = 9;
export const BPF_MAP_TYPE_LRU_PERCPU_HASH = 10;
export const BPF_MAP_TYPE_LPM_TRIE = 11;
export const BPF_MAP_TYPE_ARRAY_OF_MAPS = 12;
export const BPF_MAP_TYPE_HASH_OF_MAPS = 13;
export const BPF_MAP_TYPE_DEVMAP = 14;
export const BPF_MAP_TYPE_CPUMAP = 16;
export const BPF_MAP_TYPE_XSKMAP = 17;
export const BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21;
export const BPF_MAP_TYPE_QUEUE = 22;
export const BPF_MAP_TYPE_STACK = 23;
export const BPF_MAP_TYPE_DEVMAP_HASH = 25;
export const BPF_MAP_TYPE_RINGBUF = 27;

export const BPF_PROG_TYPE_SCHED_CLS = 3;
export const BPF_PROG_TYPE_XDP = 6;

/** map update flags */
export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;
export const BPF_F_LOCK = 4;

/** map creation flags */
export const BPF_F_NO_PREALLOC = 1;
export const BPF_F_NO_COMMON_LRU = 2;
export const BPF_F_NUMA_NODE = 4;
export const BPF_F_RDONLY_PROG = 128;
export const BPF_F_WRONLY_PROG = 256;
export const BPF_F_MMAPABLE = 1024;

/** BPF_PROG_TEST_RUN flags */
export const BPF_F_TEST_RUN_ON_CPU = 1;
export const BPF_F_TEST_XDP_LIVE_FRAMES = 2;

/**
 * struct xdp_md for BPF_PROG_TEST_RUN's context: data, data_end, data_meta, ingress_ifindex,
 * rx_queue_index, egress_ifindex (u32 each). The ifindex is resolved in the caller's namespace.
 */
export function xdpTestContext(frameLength: number, ingressIfindex: number): Buffer {
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(frameLength, 4);
  ctx.writeUInt32LE(ingressIfindex, 12);
  return ctx;
}

/** XDP attach flags */
export const XDP_FLAGS_UPDATE_IF_NOEXIST = 1;
export const XDP_FLAGS_SKB_MODE = 2;
export const XDP_FLAGS_DRV_MODE = 4;
export const XDP_FLAGS_HW_MODE = 8;
export const XDP_FLAGS_REPLACE = 16;

/** xdpQuery().mode */
export const XDP_ATTACHED_NONE = 0;
export const XDP_ATTACHED_DRV = 1;
export const XDP_ATTACHED_SKB = 2;
export const XDP_ATTACHED_HW = 3;
export const XDP_ATTACHED_MULTI = 4;

/** XDP verdicts */
export const XDP_ABORTED = 0;
export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_TX = 3;
export const XDP_REDIRECT = 4;
const XDP_VERDICT_NAMES = ['XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT'] as const;
/** 'XDP_TX (3)', for messages. */
export const xdpVerdictName = (v: number): string => `${XDP_VERDICT_NAMES[v] ?? 'unknown'} (${v})`;

/** TC verdicts */
export const TC_ACT_UNSPEC = -1;
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

const PERCPU_TYPES: ReadonlySet<number> = new Set([
  BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
]);

export function isPerCpuType(type: number): boolean {
  return PERCPU_TYPES.has(type);
}

// ---------------------------------------------------------------- errors

/** An error from the addon or from the checks here. */
export interface BpfError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

/** The errno numbers (Linux) of the codes raised from TypeScript. */
const ERRNO = { EPERM: 1, ENOENT: 2, E2BIG: 7, EBADF: 9, EBUSY: 16, EEXIST: 17, EINVAL: 22, ENOSPC: 28, ENOTSUPP: 524 } as const;
export type TsErrnoName = keyof typeof ERRNO;

export function bpfError(code: TsErrnoName, syscall: string, message: string): BpfError {
  const err = new Error(`${syscall}: ${message}`) as BpfError;
  err.code = code;
  err.errno = ERRNO[code];
  err.syscall = syscall;
  return err;
}

export function isBpfError(err: unknown, code?: string): err is BpfError {
  return err instanceof Error && typeof (err as BpfError).code === 'string' && typeof (err as BpfError).errno === 'number'
    && (code === undefined || (err as BpfError).code === code);
}

const invalid = (syscall: string, message: string) => bpfError('EINVAL', syscall, message);

function checkInt(value: unknown, what: string, syscall: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(syscall, `${what} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}
const U32_MAX = 0xffffffff;
const checkU32 = (v: unknown, what: string, sc: string) => checkInt(v, what, sc, 0, U32_MAX);
const checkFd = (v: unknown, what: string, sc: string) => checkInt(v, what, sc, 0, 0x7fffffff);
const checkIfindex = (v: unknown, sc: string) => checkInt(v, 'ifindex', sc, 1, 0x7fffffff);

function checkBuffer(v: unknown, what: string, sc: string): Buffer {
  if (!Buffer.isBuffer(v)) throw invalid(sc, `${what} must be a Buffer`);
  return v;
}

// ---------------------------------------------------------------- the addon

/** Where `make native` puts the addon. */
export const ADDON_PATH = resolve(import.meta.dirname, '../../../native/build/Release/xlb_native.node');
/** Where `make bpf` puts the object compiled from bpf/NAME.bpf.c. */
export const bpfObjectPath = (name: 'xlb' | 'baseline' | 'xlb_gen' | 'xlb_decap'): string =>
  resolve(import.meta.dirname, '../../../build/bpf', `${name}.bpf.o`);

let addon: NativeAddon | undefined;

/** The raw addon (loaded on first use). Prefer the classes below. */
export function native(): NativeAddon {
  if (addon) return addon;
  if (!existsSync(ADDON_PATH)) {
    const err = new Error(`the native addon is not built: ${ADDON_PATH} is missing; run \`make native\``) as BpfError;
    err.code = 'ENOENT';
    err.errno = ERRNO.ENOENT;
    err.syscall = 'dlopen';
    throw err;
  }
  addon = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  return addon;
}

let possibleCpus: number | undefined;

/** Possible CPUs: the number of slots of a per-CPU map value. */
export function numPossibleCpus(): number {
  possibleCpus ??= native().numPossibleCpus();
  return possibleCpus;
}

// ---------------------------------------------------------------- maps

export type MapInfo = NativeMapInfo;

export interface BatchLookupResult {
  /** one Buffer per element, keySize bytes each */
  keys: Buffer[];
  /** one Buffer per element, `valueBytes` each (per-CPU maps: all CPUs' slots) */
  values: Buffer[];
  count: number;
  /** pass as `inBatch` to continue; null: the walk is complete */
  outBatch: Buffer | null;
}

/**
 * The operations on a map, implemented by BpfMap (the kernel) and FakeMap (./fake.ts, memory).
 *
 * Values: `lookup` and `update` take the map's whole value, `valueBytes` long: for per-CPU maps
 * that is one slot per possible CPU, each slot the value size rounded up to 8. `lookupPerCpu` and
 * `updatePerCpu` do that layout for you.
 */
export interface MapLike {
  readonly info: MapInfo;
  readonly perCpu: boolean;
  /** bytes of a whole value: valueSize, or roundup(valueSize, 8) × possible CPUs for per-CPU maps */
  readonly valueBytes: number;
  /** 1, or the number of possible CPUs for per-CPU maps */
  valuesPerKey(): number;
  /** null when the key is not there */
  lookup(key: Buffer): Buffer | null;
  /** the value of each CPU (valueSize bytes each); [] when the key is not there; [value] for a map that is not per-CPU */
  lookupPerCpu(key: Buffer): Buffer[];
  /** flags: BPF_ANY (default), BPF_NOEXIST (EEXIST if there), BPF_EXIST (ENOENT if not) */
  update(key: Buffer, value: Buffer, flags?: number): void;
  /** one value per possible CPU, valueSize bytes each */
  updatePerCpu(key: Buffer, values: readonly Buffer[], flags?: number): void;
  /** false when the key was not there */
  delete(key: Buffer): boolean;
  /** the key after `key` (null: the first one); null at the end */
  nextKey(key: Buffer | null): Buffer | null;
  /** Every key, walked with nextKey. To delete while walking, collect the keys first. */
  keys(): IterableIterator<Buffer>;
  entries(): IterableIterator<[Buffer, Buffer]>;
  /**
   * One step of a batched walk; start with no inBatch, continue with the previous outBatch.
   * count defaults to min(256, maxEntries). The kernel returns a hash bucket whole or not at all:
   * ENOSPC means one bucket holds more than `count` elements, so ask for more.
   */
  lookupBatch(opts?: { inBatch?: Buffer | null; count?: number }): BatchLookupResult;
  /** keys and values concatenated (or as arrays); returns how many were written */
  updateBatch(keys: Buffer | readonly Buffer[], values: Buffer | readonly Buffer[], count?: number, flags?: number): number;
  deleteBatch(keys: Buffer | readonly Buffer[], count?: number): number;
  /**
   * Every value of an ARRAY map, in index order (maxEntries values, packed). A BpfMap created with
   * BPF_F_MMAPABLE takes them in one memory copy through mmap, others by a batch update; either
   * way not atomic for readers: fill a map before any program can see it.
   */
  writeAll(values: Buffer): void;
  /**
   * Every value of an ARRAY or PERCPU_ARRAY map, in index order (maxEntries whole values, packed),
   * read by batches without a Buffer per element. Not a snapshot: values may change meanwhile.
   */
  readAll(): Buffer;
  close(): void;
}

/** Default elements per lookupBatch call. */
export const DEFAULT_BATCH = 256;

/** Batch position tokens are this long: a hash bucket number, or the last key of a generic walk. */
export function batchTokenSize(keySize: number): number {
  return Math.max(keySize, 8);
}

/**
 * The checks and the per-CPU layout shared by BpfMap and FakeMap; subclasses supply the raw
 * operations, which receive arguments of exactly the right sizes.
 */
export abstract class MapBase implements MapLike {
  readonly perCpu: boolean;
  readonly valueBytes: number;
  /** bytes between per-CPU slots */
  readonly slotBytes: number;

  protected constructor(readonly info: MapInfo, private readonly cpus: number) {
    this.perCpu = isPerCpuType(info.type);
    this.slotBytes = this.perCpu ? Math.ceil(info.valueSize / 8) * 8 : info.valueSize;
    this.valueBytes = this.perCpu ? this.slotBytes * cpus : info.valueSize;
  }

  protected abstract rawLookup(key: Buffer): Buffer | null;
  protected abstract rawUpdate(key: Buffer, value: Buffer, flags: number): void;
  protected abstract rawDelete(key: Buffer): boolean;
  protected abstract rawNextKey(key: Buffer | null): Buffer | null;
  protected abstract rawLookupBatch(inBatch: Buffer | null, count: number): { keys: Buffer; values: Buffer; count: number; outBatch: Buffer | null };
  protected abstract rawUpdateBatch(keys: Buffer, values: Buffer, count: number, flags: number): number;
  protected abstract rawDeleteBatch(keys: Buffer, count: number): number;
  /** throws if the map may no longer be used */
  protected abstract checkOpen(syscall: string): void;
  abstract close(): void;

  protected describe(): string {
    return `map '${this.info.name}'`;
  }

  valuesPerKey(): number {
    return this.perCpu ? this.cpus : 1;
  }

  private checkKey(key: unknown, sc: string): Buffer {
    this.checkOpen(sc);
    const k = checkBuffer(key, 'key', sc);
    if (k.length !== this.info.keySize) {
      throw invalid(sc, `${this.describe()}: key is ${k.length} bytes, the map's key size is ${this.info.keySize}`);
    }
    return k;
  }

  private checkValue(value: unknown, sc: string): Buffer {
    const v = checkBuffer(value, 'value', sc);
    if (v.length !== this.valueBytes) {
      const layout = this.perCpu ? ` (${this.cpus} CPUs × ${this.slotBytes}-byte slots; use updatePerCpu for one value per CPU)` : '';
      throw invalid(sc, `${this.describe()}: value is ${v.length} bytes, the map's value size is ${this.valueBytes}${layout}`);
    }
    return v;
  }

  private checkFlags(flags: unknown, sc: string): number {
    return checkInt(flags, 'flags', sc, 0, Number.MAX_SAFE_INTEGER);
  }

  lookup(key: Buffer): Buffer | null {
    return this.rawLookup(this.checkKey(key, 'bpf_map_lookup_elem'));
  }

  lookupPerCpu(key: Buffer): Buffer[] {
    const v = this.lookup(key);
    if (!v) return [];
    if (!this.perCpu) return [v];
    return Array.from({ length: this.cpus }, (_, i) => v.subarray(i * this.slotBytes, i * this.slotBytes + this.info.valueSize));
  }

  update(key: Buffer, value: Buffer, flags: number = BPF_ANY): void {
    const sc = 'bpf_map_update_elem';
    this.rawUpdate(this.checkKey(key, sc), this.checkValue(value, sc), this.checkFlags(flags, sc));
  }

  updatePerCpu(key: Buffer, values: readonly Buffer[], flags: number = BPF_ANY): void {
    const sc = 'bpf_map_update_elem';
    const k = this.checkKey(key, sc);
    if (!this.perCpu) throw invalid(sc, `${this.describe()} is not a per-CPU map: use update()`);
    if (!Array.isArray(values) || values.length !== this.cpus) {
      throw invalid(sc, `${this.describe()}: ${Array.isArray(values) ? values.length : 'no'} values given, one per possible CPU (${this.cpus}) needed`);
    }
    const whole = Buffer.alloc(this.valueBytes);
    values.forEach((v, i) => {
      const b = checkBuffer(v, `value of CPU ${i}`, sc);
      if (b.length !== this.info.valueSize) {
        throw invalid(sc, `${this.describe()}: value of CPU ${i} is ${b.length} bytes, the map's value size is ${this.info.valueSize}`);
      }
      b.copy(whole, i * this.slotBytes);
    });
    this.rawUpdate(k, whole, this.checkFlags(flags, sc));
  }

  delete(key: Buffer): boolean {
    return this.rawDelete(this.checkKey(key, 'bpf_map_delete_elem'));
  }

  nextKey(key: Buffer | null): Buffer | null {
    const sc = 'bpf_map_get_next_key';
    if (key === null) {
      this.checkOpen(sc);
      return this.rawNextKey(null);
    }
    return this.rawNextKey(this.checkKey(key, sc));
  }

  *keys(): IterableIterator<Buffer> {
    for (let k = this.nextKey(null); k; k = this.nextKey(k)) yield k;
  }

  *entries(): IterableIterator<[Buffer, Buffer]> {
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) yield [k, v];
    }
  }

  lookupBatch(opts: { inBatch?: Buffer | null; count?: number } = {}): BatchLookupResult {
    const sc = 'bpf_map_lookup_batch';
    this.checkOpen(sc);
    const count = checkInt(opts.count ?? Math.min(DEFAULT_BATCH, Math.max(1, this.info.maxEntries)), 'count', sc, 1, U32_MAX);
    let inBatch: Buffer | null = null;
    if (opts.inBatch !== undefined && opts.inBatch !== null) {
      inBatch = checkBuffer(opts.inBatch, 'inBatch', sc);
      const size = batchTokenSize(this.info.keySize);
      if (inBatch.length !== size) throw invalid(sc, `${this.describe()}: inBatch is ${inBatch.length} bytes, a batch token is ${size} (pass the previous outBatch)`);
    }
    const r = this.rawLookupBatch(inBatch, count);
    return {
      keys: split(r.keys, this.info.keySize, r.count),
      values: split(r.values, this.valueBytes, r.count),
      count: r.count,
      outBatch: r.outBatch,
    };
  }

  updateBatch(keys: Buffer | readonly Buffer[], values: Buffer | readonly Buffer[], count?: number, flags: number = BPF_ANY): number {
    const sc = 'bpf_map_update_batch';
    this.checkOpen(sc);
    const k = this.joined(keys, 'keys', this.info.keySize, sc);
    const v = this.joined(values, 'values', this.valueBytes, sc);
    const n = this.batchCount(k, count, sc);
    if (v.length !== n * this.valueBytes) {
      throw invalid(sc, `${this.describe()}: ${v.length} bytes of values for ${n} elements of ${this.valueBytes} bytes`);
    }
    if (n === 0) return 0;
    return this.rawUpdateBatch(k, v, n, this.checkFlags(flags, sc));
  }

  deleteBatch(keys: Buffer | readonly Buffer[], count?: number): number {
    const sc = 'bpf_map_delete_batch';
    this.checkOpen(sc);
    const k = this.joined(keys, 'keys', this.info.keySize, sc);
    const n = this.batchCount(k, count, sc);
    if (n === 0) return 0;
    return this.rawDeleteBatch(k, n);
  }

  writeAll(values: Buffer): void {
    const sc = 'bpf_map_update_batch';
    this.checkOpen(sc);
    if (this.info.type !== BPF_MAP_TYPE_ARRAY) throw invalid(sc, `${this.describe()}: writeAll is for ARRAY maps (type ${this.info.type})`);
    const n = this.info.maxEntries;
    const v = checkBuffer(values, 'values', sc);
    if (v.length !== n * this.valueBytes) throw invalid(sc, `${this.describe()}: ${v.length} bytes of values, the map holds ${n} of ${this.valueBytes} bytes`);
    if (this.rawWriteAll(v)) return;
    const keys = Buffer.alloc(n * 4);
    for (let i = 0; i < n; i++) keys.writeUInt32LE(i, i * 4);
    this.rawUpdateBatch(keys, v, n, BPF_ANY);
  }

  readAll(): Buffer {
    const sc = 'bpf_map_lookup_batch';
    this.checkOpen(sc);
    if (this.info.type !== BPF_MAP_TYPE_ARRAY && this.info.type !== BPF_MAP_TYPE_PERCPU_ARRAY) {
      throw invalid(sc, `${this.describe()}: readAll is for ARRAY and PERCPU_ARRAY maps (type ${this.info.type})`);
    }
    const parts: Buffer[] = [];
    let inBatch: Buffer | null = null;
    do {
      const r = this.rawLookupBatch(inBatch, Math.min(4096, this.info.maxEntries));
      parts.push(r.values.subarray(0, r.count * this.valueBytes));
      inBatch = r.outBatch;
    } while (inBatch);
    return Buffer.concat(parts);
  }

  /** writeAll by a faster way than a batch update, if the map has one: true when done. */
  protected rawWriteAll(_values: Buffer): boolean {
    return false;
  }

  private joined(b: Buffer | readonly Buffer[], what: string, size: number, sc: string): Buffer {
    if (Buffer.isBuffer(b)) return b;
    if (!Array.isArray(b)) throw invalid(sc, `${what} must be a Buffer or an array of Buffers`);
    b.forEach((x, i) => {
      if (!Buffer.isBuffer(x) || x.length !== size) throw invalid(sc, `${this.describe()}: ${what}[${i}] must be a Buffer of ${size} bytes`);
    });
    return Buffer.concat(b as Buffer[]);
  }

  private batchCount(keys: Buffer, count: number | undefined, sc: string): number {
    const ks = this.info.keySize;
    if (count === undefined) {
      if (ks === 0 || keys.length % ks !== 0) throw invalid(sc, `${this.describe()}: ${keys.length} bytes of keys is not a whole number of ${ks}-byte keys`);
      return keys.length / ks;
    }
    const n = checkU32(count, 'count', sc);
    if (keys.length !== n * ks) throw invalid(sc, `${this.describe()}: ${keys.length} bytes of keys for ${n} keys of ${ks} bytes`);
    return n;
  }
}

function split(b: Buffer, size: number, count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => b.subarray(i * size, (i + 1) * size));
}

/** Who owns an fd a BpfMap or BpfProgram uses: the object it came from, or the wrapper itself. */
interface Owner { readonly closed: boolean; readonly what: string }

export interface MapCreateOptions {
  type: number;
  /** kernel name: at most 15 of [A-Za-z0-9_.]; may be empty */
  name?: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
  /** for ARRAY_OF_MAPS / HASH_OF_MAPS: a map like the ones it will hold */
  innerMap?: BpfMap | number;
}

const MAP_NAME = /^[A-Za-z0-9_.]{0,15}$/;

/** A kernel map by fd. */
export class BpfMap extends MapBase {
  private ownClosed = false;

  private constructor(readonly fd: number, info: MapInfo, private readonly owner: Owner | null) {
    super(info, isPerCpuType(info.type) ? numPossibleCpus() : 1);
  }

  /** Wrap an fd the caller keeps owning (close() will not close it). */
  static fromFd(fd: number): BpfMap {
    checkFd(fd, 'fd', 'bpf_obj_get_info_by_fd');
    return new BpfMap(fd, native().mapInfo(fd), { closed: false, what: 'fd' });
  }

  /** Open a pinned map; the new fd belongs to the BpfMap (close() closes it). */
  static fromPin(path: string): BpfMap {
    if (typeof path !== 'string' || !path) throw invalid('bpf_obj_get', 'path must be a non-empty string');
    const fd = native().objGet(path);
    return BpfMap.adopt(fd, 'bpf_obj_get');
  }

  /** Create a map; its fd belongs to the BpfMap (close() closes it; a map holding it keeps it alive). */
  static create(o: MapCreateOptions): BpfMap {
    const sc = 'bpf_map_create';
    const name = o.name ?? '';
    if (typeof name !== 'string' || !MAP_NAME.test(name)) throw invalid(sc, `map name '${String(name)}' must be at most 15 of [A-Za-z0-9_.]`);
    const type = checkU32(o.type, 'type', sc);
    const keySize = checkU32(o.keySize, 'keySize', sc);
    const valueSize = checkU32(o.valueSize, 'valueSize', sc);
    const maxEntries = checkU32(o.maxEntries, 'maxEntries', sc);
    const flags = checkU32(o.flags ?? 0, 'flags', sc);
    let inner: number | undefined;
    if (o.innerMap !== undefined) inner = typeof o.innerMap === 'number' ? checkFd(o.innerMap, 'innerMap', sc) : o.innerMap.fd;
    const fd = native().mapCreate(type, name, keySize, valueSize, maxEntries, flags, inner);
    return BpfMap.adopt(fd, sc);
  }

  /** @internal a map of a loaded BpfObject; named as the object names it ('.rodata', not the kernel's 'obj.rodata') */
  static ofObject(fd: number, name: string, owner: Owner): BpfMap {
    return new BpfMap(fd, { ...native().mapInfo(fd), name }, owner);
  }

  private static adopt(fd: number, sc: string): BpfMap {
    try {
      return new BpfMap(fd, native().mapInfo(fd), null);
    } catch (err) {
      native().closeFd(fd);
      if (isBpfError(err, 'EINVAL')) throw invalid(sc, `fd ${fd} is not a map`);
      throw err;
    }
  }

  protected override describe(): string {
    return `map '${this.info.name}' (fd ${this.fd})`;
  }

  protected checkOpen(sc: string): void {
    if (this.ownClosed || this.owner?.closed) {
      throw bpfError('EBADF', sc, `${this.describe()} is closed${this.owner ? ` (its ${this.owner.what} was closed)` : ''}`);
    }
  }

  /** The map's current info from the kernel. */
  refreshInfo(): MapInfo {
    this.checkOpen('bpf_obj_get_info_by_fd');
    return native().mapInfo(this.fd);
  }

  pin(path: string): void {
    this.checkOpen('bpf_obj_pin');
    if (typeof path !== 'string' || !path) throw invalid('bpf_obj_pin', 'path must be a non-empty string');
    native().objPin(this.fd, path);
  }

  /** Closes the fd if this BpfMap owns it (create, fromPin); a map of an object lives as long as the object. */
  close(): void {
    if (this.ownClosed) return;
    this.ownClosed = true;
    if (!this.owner) native().closeFd(this.fd);
  }

  protected rawLookup(key: Buffer): Buffer | null {
    return native().mapLookup(this.fd, key, this.valueBytes);
  }
  protected rawUpdate(key: Buffer, value: Buffer, flags: number): void {
    native().mapUpdate(this.fd, key, value, flags);
  }
  protected rawDelete(key: Buffer): boolean {
    return native().mapDelete(this.fd, key);
  }
  protected rawNextKey(key: Buffer | null): Buffer | null {
    return native().mapNextKey(this.fd, key, this.info.keySize);
  }
  protected rawLookupBatch(inBatch: Buffer | null, count: number) {
    return native().mapLookupBatch(this.fd, inBatch, this.info.keySize, this.valueBytes, count);
  }
  protected override rawWriteAll(values: Buffer): boolean {
    if (!(this.info.flags & BPF_F_MMAPABLE)) return false;
    native().mapWriteAll(this.fd, values);
    return true;
  }
  protected rawUpdateBatch(keys: Buffer, values: Buffer, count: number, flags: number): number {
    return native().mapUpdateBatch(this.fd, keys, values, count, flags);
  }
  protected rawDeleteBatch(keys: Buffer, count: number): number {
    return native().mapDeleteBatch(this.fd, keys, count);
  }
}

// ---------------------------------------------------------------- programs

export interface TestRunOptions {
  /** the packet in (at least 14 bytes for XDP) */
  data: Buffer;
  /** room for the packet out; default data.length + 256 */
  dataSizeOut?: number;
  /** e.g. struct xdp_md (24 bytes: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex) */
  ctx?: Buffer;
  /** room for the context out; default ctx.length (none without ctx) */
  ctxSizeOut?: number;
  /** default 1. With repeat > 1 the program runs again on its own output (unless live frames) */
  repeat?: number;
  /** BPF_F_TEST_* */
  flags?: number;
  cpu?: number;
  /** live frames only */
  batchSize?: number;
}

export interface TestRunResult {
  retval: number;
  /** the packet out; empty with live frames */
  data: Buffer;
  ctx: Buffer | null;
  /** ns per run, as the kernel reports it */
  duration: number;
}

export type ProgramInfo = NativeProgramInfo;

/** A kernel program by fd. */
export class BpfProgram {
  private ownClosed = false;

  private constructor(readonly fd: number, readonly name: string, readonly type: number, private readonly owner: Owner | null) {}

  /** @internal a program of a loaded BpfObject */
  static ofObject(fd: number, info: ProgramInfo, owner: Owner): BpfProgram {
    return new BpfProgram(fd, info.name, info.type, owner);
  }

  /** Wrap an fd the caller keeps owning. */
  static fromFd(fd: number): BpfProgram {
    checkFd(fd, 'fd', 'bpf_obj_get_info_by_fd');
    const i = native().progInfo(fd);
    return new BpfProgram(fd, i.name, i.type, { closed: false, what: 'fd' });
  }

  /** Open a pinned program; the new fd belongs to the BpfProgram. */
  static fromPin(path: string): BpfProgram {
    if (typeof path !== 'string' || !path) throw invalid('bpf_obj_get', 'path must be a non-empty string');
    const fd = native().objGet(path);
    try {
      const i = native().progInfo(fd);
      return new BpfProgram(fd, i.name, i.type, null);
    } catch (err) {
      native().closeFd(fd);
      throw err;
    }
  }

  private checkOpen(sc: string): void {
    if (this.ownClosed || this.owner?.closed) throw bpfError('EBADF', sc, `program '${this.name}' (fd ${this.fd}) is closed`);
  }

  /** name, type and kernel id */
  info(): { name: string; type: number; id: number } {
    this.checkOpen('bpf_obj_get_info_by_fd');
    return native().progInfo(this.fd);
  }

  testRun(o: TestRunOptions): TestRunResult {
    const sc = 'bpf_prog_test_run_opts';
    this.checkOpen(sc);
    if (typeof o !== 'object' || o === null) throw invalid(sc, 'options must be an object');
    const data = checkBuffer(o.data, 'data', sc);
    const flags = checkU32(o.flags ?? 0, 'flags', sc);
    const live = (flags & BPF_F_TEST_XDP_LIVE_FRAMES) !== 0;
    const opts: NativeTestRunOptions = {
      data,
      repeat: checkInt(o.repeat ?? 1, 'repeat', sc, 1, 0x7fffffff),
      flags,
    };
    if (!live) opts.dataSizeOut = checkU32(o.dataSizeOut ?? data.length + 256, 'dataSizeOut', sc);
    else if (o.dataSizeOut !== undefined) throw invalid(sc, 'dataSizeOut makes no sense with live frames: no packet comes back');
    if (o.ctx !== undefined) opts.ctx = checkBuffer(o.ctx, 'ctx', sc);
    if (o.ctxSizeOut !== undefined) opts.ctxSizeOut = checkU32(o.ctxSizeOut, 'ctxSizeOut', sc);
    if (opts.ctx && o.ctxSizeOut === undefined) opts.ctxSizeOut = opts.ctx.length;
    // Live frames give back neither packet nor context (the kernel refuses room for them).
    if (live) delete opts.ctxSizeOut;
    if (o.cpu !== undefined) opts.cpu = checkU32(o.cpu, 'cpu', sc);
    if (o.batchSize !== undefined) {
      if (!live) throw invalid(sc, 'batchSize is for live frames (BPF_F_TEST_XDP_LIVE_FRAMES) only');
      opts.batchSize = checkU32(o.batchSize, 'batchSize', sc);
    }
    return native().progTestRun(this.fd, opts);
  }

  pin(path: string): void {
    this.checkOpen('bpf_obj_pin');
    if (typeof path !== 'string' || !path) throw invalid('bpf_obj_pin', 'path must be a non-empty string');
    native().objPin(this.fd, path);
  }

  close(): void {
    if (this.ownClosed) return;
    this.ownClosed = true;
    if (!this.owner) native().closeFd(this.fd);
  }
}

// ---------------------------------------------------------------- objects

export type DatasecVariable = NativeDatasecVar;
export type GlobalValue = Buffer | number | bigint;

/** A BPF object file: opened, adjusted, loaded; close() frees its maps and programs. */
export class BpfObject implements Owner {
  readonly what: string;
  /** 'failed': load() was tried and failed; the object can only be closed (and the file opened again) */
  private state: 'open' | 'loaded' | 'failed' | 'closed' = 'open';
  private readonly mapCache = new Map<string, BpfMap>();
  private readonly progCache = new Map<string, BpfProgram>();

  /** @internal use openObject() */
  constructor(readonly path: string, private readonly obj: NativeObject) {
    this.what = `object '${path}'`;
  }

  get loaded(): boolean { return this.state === 'loaded'; }
  get closed(): boolean { return this.state === 'closed'; }

  private use(sc: string, need?: 'open' | 'loaded'): NativeObject {
    if (this.state === 'closed') throw bpfError('EBADF', sc, `${this.what} is closed`);
    if (need === 'open' && this.state === 'failed') throw bpfError('EBUSY', sc, this.loadFailed());
    if (need === 'open' && this.state !== 'open') throw bpfError('EBUSY', sc, `${this.what} is loaded: this can only be done before load()`);
    if (need === 'loaded' && this.state === 'failed') throw invalid(sc, this.loadFailed());
    if (need === 'loaded' && this.state !== 'loaded') throw invalid(sc, `${this.what} is not loaded: call load() first`);
    return this.obj;
  }

  private loadFailed(): string {
    return `${this.what}: load() failed and can be attempted once; close it and open the file again`;
  }

  maps(): MapInfo[] {
    return this.use('bpf_object__next_map').maps();
  }

  programs(): ProgramInfo[] {
    return this.use('bpf_object__next_program').programs();
  }

  private mapNamed(name: string, sc: string): MapInfo {
    if (typeof name !== 'string') throw invalid(sc, 'map name must be a string');
    const all = this.use(sc).maps();
    const m = all.find((x) => x.name === name);
    if (!m) throw bpfError('ENOENT', sc, `${this.what} has no map '${name}'; its maps are ${all.map((x) => x.name).join(', ')}`);
    return m;
  }

  setMapMaxEntries(map: string, maxEntries: number): void {
    const sc = 'bpf_map__set_max_entries';
    this.mapNamed(map, sc);
    this.use(sc, 'open').setMapMaxEntries(map, checkInt(maxEntries, 'maxEntries', sc, 1, U32_MAX));
  }

  /** The size of the inner maps of a map-in-map (the template the kernel checks inner maps against). */
  setInnerMapMaxEntries(map: string, maxEntries: number): void {
    const sc = 'bpf_map__set_max_entries';
    this.mapNamed(map, sc);
    this.use(sc, 'open').setInnerMapMaxEntries(map, checkInt(maxEntries, 'maxEntries', sc, 1, U32_MAX));
  }

  datasecVariables(map = '.rodata'): DatasecVariable[] {
    const sc = 'btf__find_by_name_kind';
    this.mapNamed(map, sc);
    return this.use(sc).datasecVariables(map);
  }

  mapInitialValue(map = '.rodata'): Buffer {
    const sc = 'bpf_map__initial_value';
    this.mapNamed(map, sc);
    return this.use(sc).mapInitialValue(map);
  }

  setMapInitialValue(map: string, value: Buffer): void {
    const sc = 'bpf_map__set_initial_value';
    const info = this.mapNamed(map, sc);
    checkBuffer(value, 'value', sc);
    if (value.length !== info.valueSize) throw invalid(sc, `map '${map}' holds ${info.valueSize} bytes, the value is ${value.length}`);
    this.use(sc, 'open').setMapInitialValue(map, value);
  }

  /**
   * Set load-time variables (`const volatile` in '.rodata', or globals in '.data' / '.bss') by
   * name. A number or bigint is written little-endian at the variable's size (1, 2, 4 or 8 bytes;
   * negative values as two's complement); a Buffer must be exactly the variable's size.
   */
  setGlobals(map: string, values: Record<string, GlobalValue>): void {
    const sc = 'bpf_map__set_initial_value';
    if (typeof values !== 'object' || values === null) throw invalid(sc, 'values must be an object of name → value');
    const vars = this.datasecVariables(map);
    const bytes = Buffer.from(this.mapInitialValue(map));
    for (const [name, value] of Object.entries(values)) {
      const v = vars.find((x) => x.name === name);
      if (!v) {
        throw invalid(sc, `${this.what}: '${map}' has no variable '${name}'; it has ${vars.map((x) => `${x.name} (${x.size} bytes)`).join(', ') || 'none'}`);
      }
      if (v.offset + v.size > bytes.length) throw invalid(sc, `variable '${name}' lies outside '${map}'`);
      writeVariable(bytes, v, value, sc);
    }
    this.use(sc, 'open').setMapInitialValue(map, bytes);
  }

  /** Use an existing map (e.g. a pinned one) instead of creating this one at load. */
  reuseMapFd(map: string, fd: number | BpfMap): void {
    const sc = 'bpf_map__reuse_fd';
    this.mapNamed(map, sc);
    const n = typeof fd === 'number' ? checkFd(fd, 'fd', sc) : fd.fd;
    this.use(sc, 'open').reuseMapFd(map, n);
  }

  /** Once: after a failed load (the error quotes the verifier log), close the object and open the file again. */
  load(): void {
    const sc = 'bpf_object__load';
    if (this.state === 'failed') throw invalid(sc, this.loadFailed()); // as libbpf says to a second load
    const obj = this.use(sc, 'open');
    try {
      obj.load();
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
    this.state = 'loaded';
  }

  /** A map of the loaded object; its fd lives as long as the object. */
  map(name: string): BpfMap {
    const sc = 'bpf_map__fd';
    this.use(sc);
    const cached = this.mapCache.get(name);
    if (cached) return cached;
    this.mapNamed(name, sc);
    const m = BpfMap.ofObject(this.use(sc, 'loaded').mapFd(name), name, this);
    this.mapCache.set(name, m);
    return m;
  }

  /** A program of the loaded object; its fd lives as long as the object. */
  program(name: string): BpfProgram {
    const sc = 'bpf_program__fd';
    this.use(sc);
    const cached = this.progCache.get(name);
    if (cached) return cached;
    if (typeof name !== 'string') throw invalid(sc, 'program name must be a string');
    const all = this.use(sc).programs();
    const info = all.find((p) => p.name === name);
    if (!info) throw bpfError('ENOENT', sc, `${this.what} has no program '${name}'; its programs are ${all.map((p) => p.name).join(', ')}`);
    const p = BpfProgram.ofObject(this.use(sc, 'loaded').programFd(name), info, this);
    this.progCache.set(name, p);
    return p;
  }

  /** Closes the object and every fd it owns (its maps and programs stay valid only while attached or pinned). */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.obj.close();
  }
}

function writeVariable(bytes: Buffer, v: DatasecVariable, value: GlobalValue, sc: string): void {
  if (Buffer.isBuffer(value)) {
    if (value.length !== v.size) throw invalid(sc, `variable '${v.name}' is ${v.size} bytes, the value given is ${value.length}`);
    value.copy(bytes, v.offset);
    return;
  }
  if (typeof value !== 'number' && typeof value !== 'bigint') {
    throw invalid(sc, `variable '${v.name}': the value must be a number, a bigint or a Buffer`);
  }
  if (![1, 2, 4, 8].includes(v.size)) {
    throw invalid(sc, `variable '${v.name}' is ${v.size} bytes: give a Buffer (numbers fit 1, 2, 4 or 8 bytes)`);
  }
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw invalid(sc, `variable '${v.name}': ${value} is not a safe integer (use a bigint)`);
  }
  const n = BigInt(value);
  const bits = BigInt(v.size * 8);
  if (n < -(1n << (bits - 1n)) || n >= 1n << bits) {
    throw invalid(sc, `variable '${v.name}' (${v.size} bytes) cannot hold ${value}`);
  }
  const u = BigInt.asUintN(v.size * 8, n);
  for (let i = 0; i < v.size; i++) bytes[v.offset + i] = Number((u >> BigInt(8 * i)) & 0xffn);
}

/** Open a BPF object file (not yet loaded). */
export function openObject(path: string): BpfObject {
  if (typeof path !== 'string' || !path) throw invalid('bpf_object__open_file', 'path must be a non-empty string');
  return new BpfObject(path, native().openObject(path));
}

// ---------------------------------------------------------------- pins

/** Where the BPF filesystem is mounted; xlb pins under XLB_PIN_ROOT (decap/ and one directory per forwarder instance). */
export const BPFFS = '/sys/fs/bpf';
export const XLB_PIN_ROOT = `${BPFFS}/xlb`;
const BPF_FS_MAGIC = 0xcafe4a11;

/** ENOENT, saying how to get one, unless a BPF filesystem is mounted at BPFFS. */
export function requireBpffs(): void {
  let type: number | undefined;
  try {
    type = statfsSync(BPFFS).type;
  } catch { /* missing: as below */ }
  if (type !== BPF_FS_MAGIC) {
    throw bpfError('ENOENT', 'statfs', `no BPF filesystem at ${BPFFS} here: mount one (mount -t bpf bpf ${BPFFS}); ` +
      'in a network namespace use `nsenter --net=/run/netns/NAME`, not `ip netns exec` (which remounts /sys and hides it)');
  }
}

/**
 * Remove a pin directory: every pin in it, the directory, then each of `parents` (innermost
 * first) that it leaves empty. A missing directory is not an error.
 */
export function removePinDir(dir: string, parents: readonly string[] = []): void {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  for (const name of names) {
    try {
      unpin(`${dir}/${name}`);
    } catch (err) {
      if (!isBpfError(err, 'ENOENT')) throw err;
    }
  }
  removeEmptyDirs([dir, ...parents]);
}

/** Remove these directories in order while they are empty (a missing one counts as removed). */
export function removeEmptyDirs(dirs: readonly string[]): void {
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') break; // in use by something else: keep it and its parents
      if (code !== 'ENOENT') throw err;
    }
  }
}

/** Remove a pin (the object lives on while something else holds it). */
export function unpin(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    // keep the system's own code and errno (EACCES, EISDIR, ...), as every native failure does
    const e = err as NodeJS.ErrnoException;
    const out = new Error(`unlink: '${path}': ${e.message}`) as BpfError;
    out.code = e.code ?? 'EIO';
    out.errno = Math.abs(e.errno ?? 5);
    out.syscall = 'unlink';
    throw out;
  }
}

// ---------------------------------------------------------------- XDP and TC

export interface XdpQueryResult {
  /** XDP_ATTACHED_* */
  mode: number;
  progId: number;
  skbProgId: number;
  drvProgId: number;
  hwProgId: number;
}

const progFdOf = (prog: BpfProgram | number, sc: string) => (typeof prog === 'number' ? checkFd(prog, 'program fd', sc) : prog.fd);

/** flags: XDP_FLAGS_SKB_MODE / XDP_FLAGS_DRV_MODE / XDP_FLAGS_HW_MODE, | XDP_FLAGS_UPDATE_IF_NOEXIST */
export function xdpAttach(ifindex: number, prog: BpfProgram | number, flags = 0): void {
  const sc = 'bpf_xdp_attach';
  native().xdpAttach(checkIfindex(ifindex, sc), progFdOf(prog, sc), checkU32(flags, 'flags', sc));
}

/** flags: the mode it was attached in */
export function xdpDetach(ifindex: number, flags = 0): void {
  const sc = 'bpf_xdp_detach';
  native().xdpDetach(checkIfindex(ifindex, sc), checkU32(flags, 'flags', sc));
}

export function xdpQuery(ifindex: number): XdpQueryResult {
  return native().xdpQuery(checkIfindex(ifindex, 'bpf_xdp_query'));
}

/** The Ethernet address of an interface of this thread's network namespace (6 bytes), null when it is no Ethernet interface (lo, tun); ENODEV when there is no such interface. */
export function ifHwAddr(ifindex: number): Buffer | null {
  return native().ifHwAddr(checkIfindex(ifindex, 'ioctl'));
}

export type TcDirection = 'ingress' | 'egress';

export interface TcWhere {
  /** filter handle; default 1 */
  handle?: number;
  /** filter priority; default 1 */
  priority?: number;
}

function tcArgs(ifindex: number, direction: TcDirection, where: TcWhere, sc: string): [number, TcDirection, number, number] {
  if (direction !== 'ingress' && direction !== 'egress') throw invalid(sc, `direction must be 'ingress' or 'egress', not '${String(direction)}'`);
  return [
    checkIfindex(ifindex, sc),
    direction,
    checkInt(where.handle ?? 1, 'handle', sc, 1, U32_MAX),
    checkInt(where.priority ?? 1, 'priority', sc, 1, 0xffff),
  ];
}

/** Attach a TC program on the clsact qdisc (created if missing). EEXIST if that handle/priority is taken. */
export function tcAttach(ifindex: number, direction: TcDirection, prog: BpfProgram | number, where: TcWhere = {}): void {
  const sc = 'bpf_tc_attach';
  const [i, d, h, p] = tcArgs(ifindex, direction, where, sc);
  native().tcAttach(i, d, progFdOf(prog, sc), h, p);
}

export function tcDetach(ifindex: number, direction: TcDirection, where: TcWhere = {}): void {
  const [i, d, h, p] = tcArgs(ifindex, direction, where, 'bpf_tc_detach');
  native().tcDetach(i, d, h, p);
}

/** The id of the program at that handle/priority, 0 if none (also when the interface has no clsact qdisc). */
export function tcQuery(ifindex: number, direction: TcDirection, where: TcWhere = {}): number {
  const [i, d, h, p] = tcArgs(ifindex, direction, where, 'bpf_tc_query');
  try {
    return native().tcQuery(i, d, h, p);
  } catch (err) {
    // The kernel says EINVAL when the interface has no clsact qdisc: then nothing is attached.
    // tcArgs has refused every argument libbpf would refuse with EINVAL, so that is what it means.
    if (isBpfError(err, 'EINVAL')) return 0;
    throw err;
  }
}
