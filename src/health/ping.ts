/**
 * PING_CHECK (keepalived's check_ping.c): one ICMP echo request (ICMPv6 for an IPv6 real server)
 * per check; the real server is up when its echo reply comes back within connect_timeout.
 * keepalived uses an unprivileged ping socket (and widens net.ipv4.ping_group_range for it); xlb
 * runs as root and uses a raw ICMP socket of the addon (the one VRRP uses, protocol 1 or 58),
 * opened for the check and closed after: bound to bind_if's interface when given, sending from
 * bindto when given.
 *
 * A raw socket sees every ICMP message to this host, so a reply counts only when it comes from
 * the real server and carries this checker's identifier and this check's sequence number. A
 * destination-unreachable or time-exceeded error that quotes this echo request fails the check at
 * once; everything else is ignored. fwmark is not supported (the addon's raw sockets set no mark;
 * ./config.ts refuses it).
 */
import { randomInt } from 'node:crypto';
import { native } from '../datapath/bpf/index.ts';
import type { NativeIpSocket } from '../datapath/bpf/native.ts';
import type { Family } from '../datapath/xdp/net.ts';
import { ipOfFamily } from '../net/args.ts';
import { ifindexByName } from '../net/link.ts';
import { internetChecksum } from '../vrrp/packet.ts';
import { splitIpv4 } from '../vrrp/socket.ts';
import type { CheckerSpec } from './config.ts';
import type { Checker, CheckResult } from './types.ts';

export type PingSpec = Extract<CheckerSpec, { kind: 'PING_CHECK' }>;

export const IPPROTO_ICMP = 1;
export const IPPROTO_ICMPV6 = 58;
const ECHO_REQUEST = { 4: 8, 6: 128 } as const;
const ECHO_REPLY = { 4: 0, 6: 129 } as const;
/** destination unreachable, time exceeded */
const ERRORS = { 4: { 3: 'destination unreachable', 11: 'time exceeded' }, 6: { 1: 'destination unreachable', 3: 'time exceeded' } } as const;
const PAYLOAD = Buffer.from('xlb PING_CHECK: keepalived-compatible health check......'); // 56 bytes, as ping sends
const ECHO_HEADER = 8;
const IPV6_HEADER = 40;

/** An echo request. IPv4 carries its checksum; for ICMPv6 the kernel computes it (raw ICMPv6 sockets always do). */
export function echoRequest(family: Family, id: number, seq: number): Buffer {
  const b = Buffer.alloc(ECHO_HEADER + PAYLOAD.length);
  b[0] = ECHO_REQUEST[family];
  b.writeUInt16BE(id, 4);
  b.writeUInt16BE(seq, 6);
  PAYLOAD.copy(b, ECHO_HEADER);
  if (family === 4) b.writeUInt16BE(internetChecksum(b), 2);
  return b;
}

/**
 * What an ICMP message (IPv4: from its ICMP header on) says about the echo `id`/`seq`: the reply,
 * an error about it, or nothing (undefined: someone else's message, ignored).
 */
export function echoOutcome(family: Family, icmp: Buffer, id: number, seq: number): { reply: true } | { error: string } | undefined {
  if (icmp.length < ECHO_HEADER) return undefined;
  const type = icmp[0]!;
  if (type === ECHO_REPLY[family]) return icmp.readUInt16BE(4) === id && icmp.readUInt16BE(6) === seq ? { reply: true } : undefined;
  const what = (ERRORS[family] as Record<number, string>)[type];
  if (what === undefined) return undefined;
  // the error quotes the offending packet: its IP header, then (at least) 8 bytes of our echo
  const quoted = icmp.subarray(ECHO_HEADER);
  let inner: Buffer;
  if (family === 4) {
    const ihl = ((quoted[0] ?? 0) & 0x0f) * 4;
    if ((quoted[0] ?? 0) >> 4 !== 4 || ihl < 20 || quoted[9] !== IPPROTO_ICMP) return undefined;
    inner = quoted.subarray(ihl);
  } else {
    if ((quoted[0] ?? 0) >> 4 !== 6 || quoted[6] !== IPPROTO_ICMPV6) return undefined;
    inner = quoted.subarray(IPV6_HEADER);
  }
  if (inner.length < ECHO_HEADER || inner[0] !== ECHO_REQUEST[family] || inner.readUInt16BE(4) !== id || inner.readUInt16BE(6) !== seq) return undefined;
  return { error: `${what} (code ${icmp[1]})` };
}

export class PingChecker implements Checker {
  readonly kind = 'PING_CHECK';
  readonly target: string;
  readonly #family: Family;
  readonly #dst: Buffer;
  readonly #src: Buffer | null;
  readonly #bindIf: string | undefined;
  #ifindex: number | undefined;
  readonly #id = randomInt(0x10000);
  #seq = randomInt(0x10000);

  constructor(spec: PingSpec) {
    const ep = spec.endpoint;
    this.#family = ep.family;
    this.#dst = ipOfFamily(ep.address, ep.family, 'sendmsg', 'connect_ip').bytes;
    this.#src = ep.bindto !== undefined ? ipOfFamily(ep.bindto, ep.family, 'sendmsg', 'bindto').bytes : null;
    this.#bindIf = ep.bindIf;
    this.target = `PING ${ep.address}`;
  }

  run(done: (r: CheckResult) => void): () => void {
    let finished = false;
    let sock: NativeIpSocket | undefined;
    const finish = (r: CheckResult) => {
      if (finished) return;
      finished = true;
      sock?.close();
      done(r);
    };
    const seq = (this.#seq = (this.#seq + 1) & 0xffff);
    const send = (ifindex: number | undefined) => {
      if (finished) return;
      try {
        sock = native().openIpSocket(this.#family, this.#family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, ifindex !== undefined ? { ifindex } : {});
        sock.start((err, msg) => {
          if (err || !msg) return;
          const o = this.#outcome(msg.data, seq);
          // a reply must come from the real server; an error may come from any router on the way
          if (!o || ('reply' in o && !msg.src.equals(this.#dst))) return;
          finish('reply' in o ? { up: true, reason: 'echo reply' } : { up: false, reason: o.error });
        });
        sock.sendTo(echoRequest(this.#family, this.#id, seq), this.#dst, this.#src, 0);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        finish({ up: false, reason: `${err.syscall ?? 'ping'}: ${err.code ?? err.message}` });
      }
    };
    if (this.#bindIf === undefined || this.#ifindex !== undefined) send(this.#ifindex);
    else {
      ifindexByName(this.#bindIf).then((i) => send((this.#ifindex = i)), (e: NodeJS.ErrnoException) => finish({ up: false, reason: `bind_if ${this.#bindIf}: ${e.code ?? e.message}` }));
    }
    return () => {
      finished = true;
      sock?.close();
    };
  }

  #outcome(data: Buffer, seq: number): ReturnType<typeof echoOutcome> {
    let icmp = data;
    if (this.#family === 4) {
      const split = splitIpv4(data);
      if ('error' in split) return undefined;
      icmp = split.payload;
    }
    return echoOutcome(this.#family, icmp, this.#id, seq);
  }
}
