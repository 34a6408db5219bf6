/**
 * The shape of the native addon (native/, built to native/build/Release/xlb_native.node).
 *
 * The addon is mechanism only: it calls libbpf and the kernel and returns what they say.
 * Validation, defaults and policy live in TypeScript (src/datapath/bpf/index.ts wraps this).
 *
 * Every failure throws an Error with:
 *   code    errno name, e.g. 'EPERM', 'ENOENT', 'EBADF' (or 'EINVAL' for argument errors)
 *   errno   the positive errno number
 *   syscall the libbpf function or system call that failed, e.g. 'bpf_map_update_elem'
 */

export interface NativeMapInfo {
  name: string;
  type: number;        // BPF_MAP_TYPE_*
  keySize: number;
  valueSize: number;   // as declared; per-CPU maps hold valueSize rounded up to 8, once per possible CPU
  maxEntries: number;
  flags: number;
  id: number;          // kernel id (0 before load)
}

export interface NativeProgramInfo {
  name: string;
  section: string;
  type: number;        // BPF_PROG_TYPE_*
}

export interface NativeDatasecVar {
  name: string;
  offset: number;
  size: number;
}

export interface NativeTestRunOptions {
  data: Buffer;              // packet in
  dataSizeOut?: number;      // room for the packet out; 0 or absent: none comes back (data empty)
  ctx?: Buffer;              // e.g. struct xdp_md for XDP (ingress_ifindex, rx_queue_index)
  ctxSizeOut?: number;       // room for the context out; 0 or absent: none comes back (ctx null)
  repeat?: number;           // default 1
  flags?: number;            // BPF_F_TEST_* (e.g. BPF_F_TEST_XDP_LIVE_FRAMES = 2)
  cpu?: number;
  batchSize?: number;        // live frames only
}

export interface NativeTestRunResult {
  retval: number;            // program verdict
  data: Buffer;              // packet out (empty with live frames)
  ctx: Buffer | null;
  duration: number;          // ns per run, as the kernel reports it
}

/** A libbpf bpf_object, opened but maybe not yet loaded. */
export interface NativeObject {
  maps(): NativeMapInfo[];
  programs(): NativeProgramInfo[];
  /** Before load: resize a map, or the inner map template of a map-in-map. */
  setMapMaxEntries(map: string, maxEntries: number): void;
  setInnerMapMaxEntries(map: string, maxEntries: number): void;
  /** Before load: the variables of a data section map such as '.rodata' (from BTF DATASEC). */
  datasecVariables(map: string): NativeDatasecVar[];
  /** Before load: read or replace the initial bytes of '.rodata' / '.data' / '.bss'. */
  mapInitialValue(map: string): Buffer;
  setMapInitialValue(map: string, value: Buffer): void;
  /** Before load: use an existing map fd (e.g. opened from a pin) instead of creating one. */
  reuseMapFd(map: string, fd: number): void;
  /**
   * On failure the message ends with the last 40 lines of libbpf's log (the verifier log).
   * Can be attempted once: a second call, also after a failure, throws EINVAL.
   */
  load(): void;
  /** After load: file descriptors, owned by the object (closed by close()). */
  programFd(program: string): number;
  mapFd(map: string): number;
  /** Also done by the finalizer if never called. Idempotent; afterwards every other method throws EBADF. */
  close(): void;
}

export interface NativeAddon {
  openObject(path: string): NativeObject;

  numPossibleCpus(): number;

  /**
   * Maps by fd. Keys and values are raw bytes of exactly keySize / value size, where the value
   * size is always the WHOLE value: for per-CPU maps roundup(valueSize, 8) × numPossibleCpus().
   * The `keySize` / `valueSize` arguments are what the caller expects; the addon checks them and
   * every buffer length against the map's info from the kernel (bpf_obj_get_info_by_fd) and
   * throws EINVAL on a mismatch, so no call can make the kernel read or write past a buffer.
   * Batch position tokens (inBatch/outBatch) are max(keySize, 8) bytes. A failed batch update or
   * delete also carries `count`: how many elements the kernel processed.
   */
  mapInfo(fd: number): NativeMapInfo;
  mapCreate(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, flags: number, innerMapFd?: number): number;
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null;   // null on ENOENT
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): void; // BPF_ANY / BPF_NOEXIST / BPF_EXIST
  mapDelete(fd: number, key: Buffer): boolean;                             // false on ENOENT
  mapNextKey(fd: number, key: Buffer | null, keySize: number): Buffer | null; // null at the end
  /** Batch ops: keys and values concatenated; returns how many were processed. */
  mapLookupBatch(fd: number, inBatch: Buffer | null, keySize: number, valueSize: number, count: number):
    { keys: Buffer; values: Buffer; count: number; outBatch: Buffer | null };
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, flags: number): number;
  mapDeleteBatch(fd: number, keys: Buffer, count: number): number;

  /** Program info by fd: type, name, id. */
  progInfo(fd: number): { name: string; type: number; id: number };
  progTestRun(fd: number, opts: NativeTestRunOptions): NativeTestRunResult;

  /** Pinning: bpffs paths. */
  objPin(fd: number, path: string): void;
  objGet(path: string): number;
  closeFd(fd: number): void;

  /** XDP on an interface. flags: XDP_FLAGS_SKB_MODE (2) / XDP_FLAGS_DRV_MODE (4) / XDP_FLAGS_UPDATE_IF_NOEXIST (1). */
  xdpAttach(ifindex: number, progFd: number, flags: number): void;
  xdpDetach(ifindex: number, flags: number): void;
  /** prog id attached in each mode (0 = none) and the mode libbpf reports (XDP_ATTACHED_*). */
  xdpQuery(ifindex: number): { mode: number; progId: number; skbProgId: number; drvProgId: number; hwProgId: number };

  /** TC on a clsact qdisc (created if missing). */
  tcAttach(ifindex: number, direction: 'ingress' | 'egress', progFd: number, handle: number, priority: number): void;
  tcDetach(ifindex: number, direction: 'ingress' | 'egress', handle: number, priority: number): void;
  /**
   * prog id attached at handle/priority, 0 if there is no such filter (ENOENT). An interface
   * without a clsact qdisc gives EINVAL (the kernel's answer); tcQuery() in index.ts, which checks
   * the arguments first, reads that as "nothing attached" and returns 0.
   */
  tcQuery(ifindex: number, direction: 'ingress' | 'egress', handle: number, priority: number): number;
}
