/**
 * The shape of the native addon (native/, built to native/build/Release/xlb_native.node).
 *
 * The addon is mechanism only: it calls libbpf and the kernel and returns what they say.
 * Validation, defaults and policy live in TypeScript (src/datapath/bpf/index.ts wraps the BPF
 * part; src/vrrp/socket.ts the sockets; src/net/netns.ts netnsRun).
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

/** A datagram read by a raw IP socket. Addresses are 4 (IPv4) or 16 (IPv6) bytes. */
export interface NativeIpMessage {
  /** IPv4: the whole datagram as received, IP header included. IPv6: the payload after the IPv6 header. */
  data: Buffer;
  truncated: boolean;        // MSG_TRUNC: the datagram was longer than 64 KiB (never for VRRP)
  src: Buffer;               // the sender (msg_name)
  dst: Buffer | null;        // the destination from IP_PKTINFO / IPV6_PKTINFO
  ifindex: number;           // the receiving interface (pktinfo), 0 if unknown
  hopLimit: number;          // IP TTL (IP_RECVTTL) / IPv6 hop limit (IPV6_RECVHOPLIMIT); -1 if not given
}

/** A frame read by a packet socket. */
export interface NativePacketMessage {
  data: Buffer;              // from the Ethernet header on
  truncated: boolean;
  ifindex: number;           // sll_ifindex
  protocol: number;          // sll_protocol, host order (the EtherType)
  pktType: number;           // PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3, OUTGOING 4
  timestampNs: bigint | null; // SO_TIMESTAMPNS: the kernel's receive time, CLOCK_REALTIME ns (with `timestamps`)
}

/** A datagram read by a netlink socket: one or more netlink messages. */
export interface NativeNetlinkMessage {
  data: Buffer;
  truncated: boolean;
  portId: number;            // the sender's nl_pid (0: the kernel)
  groups: number;            // the sender's nl_groups: the multicast group mask it was sent to
}

/** Receive buffer options, for every kind of socket. */
export interface NativeBufferOptions {
  recvBufferSize?: number;   // SO_RCVBUF (capped by net.core.rmem_max)
  recvBufferForce?: number;  // SO_RCVBUFFORCE (root: beyond rmem_max)
}

/**
 * Options of a raw IP socket; each is set (setsockopt) only when given, in this order after the
 * receive metadata options (IP_PKTINFO + IP_RECVTTL, or IPV6_RECVPKTINFO + IPV6_RECVHOPLIMIT).
 */
export interface NativeIpSocketOptions extends NativeBufferOptions {
  ifindex?: number;          // SO_BINDTOIFINDEX: send and receive on this interface only (ENODEV if none)
  hopLimit?: number;         // IP_TTL / IPV6_UNICAST_HOPS
  multicastHopLimit?: number; // IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS
  multicastLoop?: boolean;   // IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP
  multicastIfindex?: number; // IP_MULTICAST_IF (ip_mreqn) / IPV6_MULTICAST_IF
  tos?: number;              // IP_TOS / IPV6_TCLASS
  mtuDiscover?: number;      // IP_MTU_DISCOVER / IPV6_MTU_DISCOVER (IP_PMTUDISC_DONT = 0: no DF bit)
}

export interface NativePacketSocketOptions extends NativeBufferOptions {
  timestamps?: boolean;      // SO_TIMESTAMPNS
}

/** The error a read reports: same shape as a thrown one (code, errno, syscall 'recvmsg' or 'uv_poll'). */
export type NativeErrnoError = Error & { code: string; errno: number; syscall: string };

/**
 * A socket read on the event loop. start(cb) calls cb(null, message) once per datagram, or
 * cb(error, null) when a read fails (other than EAGAIN/EINTR, which are handled) or the socket has
 * a pending error (ENOBUFS: a netlink socket overran and lost notifications); reading goes on
 * after an error. Again while started start() only replaces the callback. stop() ends the callbacks, also from inside one. An
 * exception thrown by cb is the process's uncaught exception. While started the socket keeps the
 * event loop alive. close() stops and closes the fd (idempotent); every later call throws EBADF.
 */
export interface NativeSocketBase<M> {
  fd(): number;              // -1 once closed
  start(cb: (err: NativeErrnoError | null, msg: M | null) => void): void;
  stop(): void;
  close(): void;
}

export interface NativeIpSocket extends NativeSocketBase<NativeIpMessage> {
  /**
   * sendmsg to dst (4/16 bytes). src (the source address) and a non-zero ifindex (the outgoing
   * interface; for IPv6 also the destination's scope id) travel in an IP_PKTINFO /
   * IPV6_PKTINFO control message. The kernel builds the IP header.
   */
  sendTo(data: Buffer, dst: Buffer, src: Buffer | null, ifindex: number): void;
  /** IP_ADD_MEMBERSHIP (ip_mreqn) / IPV6_ADD_MEMBERSHIP on the interface. */
  joinGroup(group: Buffer, ifindex: number): void;
  leaveGroup(group: Buffer, ifindex: number): void;
}

export interface NativePacketSocket extends NativeSocketBase<NativePacketMessage> {
  /** The frame, from its Ethernet header on, leaves on the bound interface as it is. */
  send(frame: Buffer): void;
}

export type NativeNetlinkSocket = NativeSocketBase<NativeNetlinkMessage>;

/** Options of a TCP probe's socket (native/src/tcp.cc); each applied only when given. */
export interface NativeTcpProbeOptions {
  src?: Buffer;              // bind() to this source address (4/16 bytes)
  srcPort?: number;          // bind() to this source port (SO_REUSEADDR)
  ifname?: string;           // SO_BINDTODEVICE
  mark?: number;             // SO_MARK
  reset?: boolean;           // close with an RST as soon as the connect's result is known
}

/**
 * Non-blocking TCP connects watched on the event loop. connect() returns a probe id; the
 * prober's callback gets (id, 0) once it is connected, (id, errno) when it failed (the socket is
 * then closed). A connected probe without `reset` stays open until release(id) hands over its fd
 * (the caller owns it) or cancel(id) closes it with an RST. cancel() of a probe in progress
 * closes it and no callback comes. While any probe exists the prober keeps the event loop alive.
 * Errors before the connect is under way are thrown: 'socket', 'setsockopt', 'bind', 'connect'
 * (e.g. ENETUNREACH).
 */
export interface NativeTcpProber {
  connect(family: 4 | 6, dst: Buffer, port: number, opts: NativeTcpProbeOptions): number;
  cancel(id: number): boolean;
  release(id: number): number;
  /** cancel every probe; no more callbacks */
  close(): void;
  /** probes open */
  size(): number;
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
  /** Every value of an ARRAY map created with BPF_F_MMAPABLE (maxEntries × valueSize bytes, packed), by one copy through mmap. */
  mapWriteAll(fd: number, values: Buffer): void;

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
  /** The interface's Ethernet address (6 bytes), null when it is no Ethernet interface. Errors: 'socket', 'ioctl' (ENODEV: no such ifindex). */
  ifHwAddr(ifindex: number): Buffer | null;

  /** TC on a clsact qdisc (created if missing). */
  tcAttach(ifindex: number, direction: 'ingress' | 'egress', progFd: number, handle: number, priority: number): void;
  tcDetach(ifindex: number, direction: 'ingress' | 'egress', handle: number, priority: number): void;
  /**
   * prog id attached at handle/priority, 0 if there is no such filter (ENOENT). An interface
   * without a clsact qdisc gives EINVAL (the kernel's answer); tcQuery() in index.ts, which checks
   * the arguments first, reads that as "nothing attached" and returns 0.
   */
  tcQuery(ifindex: number, direction: 'ingress' | 'egress', handle: number, priority: number): number;

  /**
   * A raw IP socket (SOCK_RAW, non-blocking, close-on-exec) of one IP protocol, e.g. 112 (VRRP).
   * Errors: 'socket', 'setsockopt' (the option named in the message; ENODEV for a bad ifindex).
   */
  openIpSocket(family: 4 | 6, protocol: number, opts: NativeIpSocketOptions): NativeIpSocket;
  /**
   * An AF_PACKET SOCK_RAW socket bound to ifindex and protocol (an EtherType, host order; 0 sends
   * only and receives nothing, 3 = ETH_P_ALL receives every frame of the interface, both
   * directions). Errors: 'socket', 'setsockopt', 'bind' (ENODEV for a bad ifindex).
   */
  openPacketSocket(ifindex: number, protocol: number, opts: NativePacketSocketOptions): NativePacketSocket;
  /**
   * A receive-only AF_NETLINK socket of `protocol` (NETLINK_ROUTE = 0) bound to the multicast
   * groups of the `groups` bitmask (RTMGRP_LINK = 1, ...): for notifications. Errors: 'socket',
   * 'setsockopt', 'bind'.
   */
  openNetlinkSocket(protocol: number, groups: number, opts: NativeBufferOptions): NativeNetlinkSocket;
  /** TCP connects with keepalived's connection options, for the health checkers (src/health/connect.ts). */
  openTcpProber(callback: (id: number, errno: number) => void): NativeTcpProber;
  /**
   * Run fn with the calling thread in the network namespace of the file at path (/run/netns/NAME),
   * and back before returning or throwing. Sockets created synchronously in fn stay in that
   * namespace. Errors: 'open' (ENOENT for no such namespace), 'setns'.
   */
  netnsRun<T>(path: string, fn: () => T): T;
}
