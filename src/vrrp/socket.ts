/**
 * VRRP's sockets, over the addon's raw sockets (src/datapath/bpf/native.ts).
 *
 *   VrrpSocket   one per interface and family: IP protocol 112, bound to the interface, TTL /
 *                hop limit 255 on everything sent (unicast and multicast), multicast loop off,
 *                TOS / traffic class 0xc0 as keepalived sends; sends to the VRRP group
 *                (224.0.0.18 / ff02::12) or to unicast peers from a chosen source address, and
 *                emits 'message' for every VRRP packet received, with its metadata.
 *   FrameSocket  one per interface: whole Ethernet frames out (gratuitous ARP, unsolicited
 *                neighbour advertisements, built by ./arp.ts), and, opened with `capture`,
 *                every frame of the interface in (both directions) with the kernel's timestamp.
 *
 * What a VrrpSocket does not do: check the TTL, the VRRP checksum or anything else of the packet.
 * It reports the hop limit as received (`hopLimit`), and RFC 5798's checks (TTL 255, version,
 * checksum, ...) belong to the codec and the instance. A datagram whose IPv4 header cannot be read
 * is counted (`stats.malformed`), reported as 'malformed' and dropped.
 *
 * Sockets belong to the network namespace they are created in (see src/net/netns.ts to create
 * them in another one). A VrrpSocket, and a FrameSocket opened to capture, start reading when
 * opened and keep the event loop alive until close(); a send-only FrameSocket does neither.
 * A listener that throws makes the process's uncaught exception (as any event-loop callback).
 *
 * Errors: argument errors are thrown as Error with code 'EINVAL', errno and syscall (the call they
 * were meant for); system call failures come from the addon with the same shape (e.g. ENODEV for
 * an ifindex with no interface). Read errors do not throw: they are counted and emitted as
 * 'recvError'.
 */
import { EventEmitter } from 'node:events';
import { bpfError, native } from '../datapath/bpf/index.ts';
import type { NativeErrnoError, NativeIpSocket, NativePacketSocket } from '../datapath/bpf/native.ts';
import { addrText, type Family } from '../datapath/xdp/net.ts';
import { checkFamily, checkIfindex, invalid, ipOfFamily } from '../net/args.ts';
import { IPPROTO_VRRP, VRRP_MCAST4, VRRP_MCAST6, VRRP_TTL } from './packet.ts';

/** The VRRP multicast group of each family. */
export const VRRP_GROUP = { 4: VRRP_MCAST4, 6: VRRP_MCAST6 } as const satisfies Record<Family, string>;
/** IPTOS_PREC_INTERNETCONTROL: keepalived's TOS (IPv4) and traffic class (IPv6), as in its captured adverts. */
export const VRRP_TOS = 0xc0;
/** IP_PMTUDISC_DONT: no DF bit on IPv4 adverts, as keepalived sends them. */
const IP_PMTUDISC_DONT = 0;
/** EtherType that receives every frame on a packet socket. */
const ETH_P_ALL = 0x0003;

// ---------------------------------------------------------------- checks

/** The address's bytes (4 or 16), checked to be of the family. */
const addressOf = (text: unknown, family: Family, what: string, syscall: string): Buffer => ipOfFamily(text, family, syscall, what).bytes;

/** fe80::/10 */
export function isLinkLocal6(b: Uint8Array): boolean {
  return b.length === 16 && b[0] === 0xfe && ((b[1] ?? 0) & 0xc0) === 0x80;
}

// ---------------------------------------------------------------- IPv4 header

export type Ipv4Split = { header: Buffer; payload: Buffer } | { error: string };

/**
 * Split an IPv4 datagram as a raw socket reads it into header and payload.
 * Accepts: version 4, a header length (IHL) of 20..60 bytes within the datagram, a total length
 * of at least the header that the datagram holds. The payload ends at the total length.
 * Rejects anything else with the reason; never throws.
 */
export function splitIpv4(d: Buffer): Ipv4Split {
  if (d.length < 20) return { error: `IPv4 datagram of ${d.length} bytes is shorter than a header (20)` };
  const b0 = d[0] ?? 0;
  if (b0 >> 4 !== 4) return { error: `IP version ${b0 >> 4}, not 4` };
  const ihl = (b0 & 0x0f) * 4;
  if (ihl < 20) return { error: `IPv4 header length ${ihl} is below 20` };
  if (ihl > d.length) return { error: `IPv4 header length ${ihl} is beyond the ${d.length}-byte datagram` };
  const total = d.readUInt16BE(2);
  if (total < ihl || total > d.length) return { error: `IPv4 total length ${total} does not fit header ${ihl} and datagram ${d.length}` };
  return { header: d.subarray(0, ihl), payload: d.subarray(ihl, total) };
}

// ---------------------------------------------------------------- VrrpSocket

export interface VrrpSocketOptions {
  family: Family;
  /** The interface: the socket sends and receives on it only (SO_BINDTOIFINDEX). */
  ifindex: number;
  /**
   * Source address of everything sent. IPv4: the interface's primary address, or
   * unicast_src_ip. IPv6: the interface's link-local address (RFC 5798 §5.1.2.1; required for
   * the group), or unicast_src_ip for unicast peers.
   */
  source: string;
  /** Join the VRRP group on the interface (multicast instances); false for unicast only. */
  multicast: boolean;
  /** SO_RCVBUF, if the default is not enough. */
  recvBufferSize?: number;
}

export interface VrrpMessage {
  family: Family;
  /** The VRRP packet (the IP payload). */
  payload: Buffer;
  src: string;
  /** The IP destination: the group or our own address. */
  dst: string;
  /** TTL (IPv4) / hop limit (IPv6) as received: RFC 5798 requires 255; checking it is the caller's. */
  hopLimit: number;
  ifindex: number;
  /** IPv4: the IP header as received (options included); IPv6: null. */
  ipHeader: Buffer | null;
}

export interface VrrpSocketStats {
  received: number;
  malformed: number;
  recvErrors: number;
  sent: number;
}

export interface VrrpSocketEvents {
  message: [VrrpMessage];
  /** a datagram that was counted and dropped: the reason and the bytes as read */
  malformed: [string, Buffer];
  /** a failed read (counted); the socket keeps reading */
  recvError: [NativeErrnoError];
}

export class VrrpSocket extends EventEmitter<VrrpSocketEvents> {
  readonly family: Family;
  readonly ifindex: number;
  readonly source: string;
  readonly group: string;
  readonly stats: VrrpSocketStats = { received: 0, malformed: 0, recvErrors: 0, sent: 0 };
  private readonly sourceBytes: Buffer;
  private readonly groupBytes: Buffer;
  private sock: NativeIpSocket | null;
  private joined: boolean;

  private constructor(o: VrrpSocketOptions, sock: NativeIpSocket, sourceBytes: Buffer, groupBytes: Buffer) {
    super();
    this.family = o.family;
    this.ifindex = o.ifindex;
    this.source = o.source;
    this.group = VRRP_GROUP[o.family];
    this.sourceBytes = sourceBytes;
    this.groupBytes = groupBytes;
    this.sock = sock;
    this.joined = o.multicast;
    sock.start((err, msg) => {
      if (err) {
        this.stats.recvErrors++;
        this.emit('recvError', err);
        return;
      }
      if (msg) this.receive(msg.data, msg.src, msg.dst, msg.hopLimit, msg.ifindex);
    });
  }

  /** Open, bind to the interface, set the options above, join the group if asked, start reading. */
  static open(o: VrrpSocketOptions): VrrpSocket {
    const sc = 'socket';
    const family = checkFamily(o.family, sc);
    const ifindex = checkIfindex(o.ifindex, sc);
    const src = addressOf(o.source, family, 'source', sc);
    if (typeof o.multicast !== 'boolean') throw invalid(sc, `multicast must be a boolean, got ${String(o.multicast)}`);
    if (family === 6 && o.multicast && !isLinkLocal6(src)) {
      throw invalid(sc, `source ${o.source} is not link-local: VRRP over IPv6 multicast is sent from the interface's link-local address (RFC 5798 5.1.2.1)`);
    }
    const sock = native().openIpSocket(family, IPPROTO_VRRP, {
      ifindex,
      hopLimit: VRRP_TTL,
      multicastHopLimit: VRRP_TTL,
      multicastLoop: false,
      multicastIfindex: ifindex,
      tos: VRRP_TOS,
      ...(family === 4 ? { mtuDiscover: IP_PMTUDISC_DONT } : {}),
      ...(o.recvBufferSize !== undefined ? { recvBufferSize: o.recvBufferSize } : {}),
    });
    try {
      const group = addressOf(VRRP_GROUP[family], family, 'group', sc);
      if (o.multicast) sock.joinGroup(group, ifindex);
      return new VrrpSocket({ ...o, family, ifindex }, sock, src, group);
    } catch (err) {
      sock.close();
      throw err;
    }
  }

  private live(syscall: string): NativeIpSocket {
    if (!this.sock) throw bpfError('EBADF', syscall, `VRRP socket on ifindex ${this.ifindex} is closed`);
    return this.sock;
  }

  /**
   * Send one VRRP packet (the IP payload; the kernel adds the IP header) to `dst`: the group by
   * default, or a unicast peer. From `source`, out of the interface, TTL 255. Errors from the
   * kernel are thrown (e.g. EAGAIN when the send buffer is full, ENETDOWN).
   */
  send(payload: Buffer, dst: string = this.group): void {
    const sc = 'sendmsg';
    const sock = this.live(sc);
    if (!Buffer.isBuffer(payload)) throw invalid(sc, 'payload must be a Buffer');
    const to = addressOf(dst, this.family, 'destination', sc);
    sock.sendTo(payload, to, this.sourceBytes, this.ifindex);
    this.stats.sent++;
  }

  /** Leave the group (a multicast instance turning unicast, or before close; close does it too). */
  leaveGroup(): void {
    const sock = this.live('setsockopt');
    if (!this.joined) return;
    sock.leaveGroup(this.groupBytes, this.ifindex);
    this.joined = false;
  }

  get closed(): boolean {
    return this.sock === null;
  }

  /** Stop reading and close the socket (leaving the group with it). Idempotent. */
  close(): void {
    const sock = this.sock;
    this.sock = null;
    sock?.close();
  }

  private receive(data: Buffer, src: Buffer, dst: Buffer | null, hopLimit: number, ifindex: number): void {
    let payload = data;
    let ipHeader: Buffer | null = null;
    if (this.family === 4) {
      const split = splitIpv4(data);
      if ('error' in split) {
        this.stats.malformed++;
        this.emit('malformed', split.error, data);
        return;
      }
      payload = split.payload;
      ipHeader = split.header;
    }
    if (!dst) {
      this.stats.malformed++;
      this.emit('malformed', 'no destination address (IP_PKTINFO) with the datagram', data);
      return;
    }
    this.stats.received++;
    this.emit('message', {
      family: this.family,
      payload,
      src: addrText(src, this.family),
      dst: addrText(dst, this.family),
      hopLimit,
      ifindex,
      ipHeader,
    });
  }
}

// ---------------------------------------------------------------- FrameSocket

export interface Frame {
  /** from the Ethernet header on */
  data: Buffer;
  ifindex: number;
  /** EtherType */
  protocol: number;
  /** PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3, OUTGOING 4 */
  pktType: number;
  /** the kernel's receive time, CLOCK_REALTIME in ns (when opened with `timestamps`) */
  timestampNs: bigint | null;
}

export interface FrameSocketOptions {
  /** Receive every frame of the interface, in and out (ETH_P_ALL); otherwise send only. */
  capture?: boolean;
  /** With capture: the kernel's receive time on each frame (SO_TIMESTAMPNS). */
  timestamps?: boolean;
}

export interface FrameSocketEvents {
  frame: [Frame];
  recvError: [NativeErrnoError];
}

export const PACKET_OUTGOING = 4;

export class FrameSocket extends EventEmitter<FrameSocketEvents> {
  readonly ifindex: number;
  private sock: NativePacketSocket | null;
  sent = 0;

  private constructor(ifindex: number, sock: NativePacketSocket, capture: boolean) {
    super();
    this.ifindex = ifindex;
    this.sock = sock;
    if (capture) {
      sock.start((err, msg) => {
        if (err) this.emit('recvError', err);
        else if (msg) this.emit('frame', msg);
      });
    }
  }

  /** A packet socket bound to the interface (ENODEV if there is none). */
  static open(ifindex: number, o: FrameSocketOptions = {}): FrameSocket {
    const sc = 'socket';
    checkIfindex(ifindex, sc);
    if (o.timestamps && !o.capture) throw invalid(sc, 'timestamps are for a capture socket');
    const capture = o.capture === true;
    const sock = native().openPacketSocket(ifindex, capture ? ETH_P_ALL : 0, capture ? { timestamps: o.timestamps === true } : {});
    return new FrameSocket(ifindex, sock, capture);
  }

  /** One frame on the wire as it is (no padding is added). Errors from the kernel are thrown. */
  send(frame: Buffer): void {
    if (!this.sock) throw bpfError('EBADF', 'send', `frame socket on ifindex ${this.ifindex} is closed`);
    if (!Buffer.isBuffer(frame) || frame.length < 14) throw invalid('send', 'frame must be a Buffer of at least an Ethernet header (14 bytes)');
    this.sock.send(frame);
    this.sent++;
  }

  close(): void {
    const sock = this.sock;
    this.sock = null;
    sock?.close();
  }
}
