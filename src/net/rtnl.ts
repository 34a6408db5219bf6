/**
 * One rtnetlink connection over the `netlink` package (0.3.0): its socket, message codecs and
 * request/reply matching, with our own error handling on top.
 *
 * Why not the package's newAddress() / newRoute() / ...: they reject a refused request with a
 * plain Error('Request rejected: EEXIST') (no errno, no code, no object), and they cannot be
 * asked for the error message instead. So requests go through the package's NetlinkSocket with
 * `checkError: false`, and an NLMSG_ERROR reply becomes an Error with
 *   code    the errno name the kernel answered ('EEXIST', 'ENODEV', 'EADDRNOTAVAIL', ...)
 *   errno   positive
 *   syscall the rtnetlink message type ('RTM_NEWADDR', 'RTM_DELROUTE', ...)
 * and a message that names the object ("RTM_NEWADDR(198.18.0.100/32 dev 2): file already exists (EEXIST)").
 *
 * Two things the package does badly, and what is done about them:
 *   - Its socket aborts the process (std::terminate) when epoll reports a socket error: its poll
 *     handler builds an ErrnoException with a NULL syscall name, which throws in a uv callback.
 *     A socket error here would be ENOBUFS from an overrun receive buffer, which notifications
 *     cause (so link events do not use this socket: see ./link-watch.ts) and so can too many
 *     unread replies: at most MAX_IN_FLIGHT requests are outstanding at once (ACKs are small).
 *   - It resolves requests inside its native callback, where an exception escaping our code (an
 *     unhandled rejection in 'throw' mode, say) would also abort the process: each request's
 *     result is handed over from a fresh event-loop turn (setImmediate).
 *
 * The socket belongs to the network namespace it is opened in (Rtnl.open() inside inNetns() for
 * another one). It does not keep the event loop alive while no request is pending.
 */
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import {
  AttrStream, createRtNetlink, parseError, rt, FlagsGet, MessageType as NlMessageType, type NetlinkMessage,
  type RtNetlinkSocket,
} from 'netlink';
import { addrText, type Family } from '../datapath/xdp/net.ts';
import { invalid } from './args.ts';
import { REQUEST_TIMEOUT_MS } from './link.ts';

export interface NetlinkError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

/** Requests outstanding at once; more wait their turn (see above). */
const MAX_IN_FLIGHT = 32;

const ERRNO = osConstants.errno as Record<string, number>;

export function netlinkError(errno: number, syscall: string, what: string): NetlinkError {
  const [code, text] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, `error ${errno}`];
  const err = new Error(`${syscall}(${what}): ${text} (${code})`) as NetlinkError;
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  return err;
}

/** The name of an rtnetlink message type, for errors: 20 -> 'RTM_NEWADDR'. */
export function messageTypeName(type: number): string {
  const name = (rt.MessageType as unknown as Record<number, string | undefined>)[type];
  return name ? `RTM_${name}` : `RTM_${type}`;
}

export class Rtnl {
  private closedFlag = false;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  private constructor(readonly socket: RtNetlinkSocket) {
    // the package re-emits socket errors as 'error'; without a listener that would throw
    socket.socket.on('error', () => { /* reported to the pending requests by their timeout or reply */ });
  }

  /** A connection in this thread's network namespace. */
  static open(): Rtnl {
    return new Rtnl(createRtNetlink());
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /**
   * Send one request (flags: NLM_F_CREATE / EXCL / REPLACE / DUMP ...; REQUEST and ACK are always
   * added) and resolve with the parsed reply messages (none for a plain ACK). `what` names the
   * object for error messages.
   */
  async request(type: rt.MessageType, body: Uint8Array[], flags: number, what: string): Promise<rt.Message[]> {
    const syscall = messageTypeName(type);
    if (this.closedFlag) throw netlinkError(ERRNO.EBADF ?? 9, syscall, `${what}: the netlink socket is closed`);
    if (this.inFlight >= MAX_IN_FLIGHT) await new Promise<void>((go) => this.waiting.push(go));
    this.inFlight++;
    let reply: NetlinkMessage[] | undefined;
    let failure: unknown;
    try {
      [reply] = await this.socket.socket.request(type, body, { flags, checkError: false, timeout: REQUEST_TIMEOUT_MS });
    } catch (err) {
      failure = err;
    } finally {
      this.inFlight--;
      this.waiting.shift()?.();
    }
    await new Promise<void>((go) => setImmediate(go)); // out of the package's native callback
    if (!reply) {
      const e = failure as Partial<NetlinkError>;
      if (typeof e.errno === 'number') throw netlinkError(Math.abs(e.errno), syscall, what);
      if (/Timeout/.test(String(e.message))) throw netlinkError(ERRNO.ETIMEDOUT ?? 110, syscall, `${what}: no answer in ${REQUEST_TIMEOUT_MS} ms`);
      throw failure;
    }
    const out: rt.Message[] = [];
    for (const m of reply) {
      if (m.type === NlMessageType.ERROR) {
        const { errno } = parseError(m.data, m.flags);
        if (errno !== 0) throw netlinkError(-errno, syscall, what);
        continue;
      }
      if (m.type === NlMessageType.DONE || m.type === NlMessageType.NOOP) continue;
      out.push(rt.parseMessage(m.type as rt.MessageType, m.data));
    }
    return out;
  }

  /** A dump request (NLM_F_DUMP). */
  dump(type: rt.MessageType, body: Uint8Array[], what: string): Promise<rt.Message[]> {
    return this.request(type, body, FlagsGet.DUMP, what);
  }

  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.socket.socket.close();
  }
}

// ---------------------------------------------------------------- shared by address.ts, route.ts, link-watch.ts

/** Address families as rtnetlink numbers them (AF_INET, AF_INET6). */
export const AF_OF: Record<Family, number> = { 4: 2, 6: 10 };
export const FAMILY_OF_AF: Record<number, Family | undefined> = { 2: 4, 10: 6 };

/** rtm_scope / ifa_scope (RT_SCOPE_*): names as `ip` prints them, or a number 0..255. */
export type Scope = 'global' | 'site' | 'link' | 'host' | 'nowhere' | number;
const SCOPES: Record<string, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };

/** The scope's number; throws (EINVAL, named after `syscall`) for an unknown name or a number out of range. */
export function scopeNumber(scope: Scope, syscall: string): number {
  const n = typeof scope === 'number' ? scope : SCOPES[scope];
  if (n === undefined || !Number.isInteger(n) || n < 0 || n > 255) {
    throw invalid(syscall, `scope ${String(scope)} is not global, site, link, host, nowhere or 0..255`);
  }
  return n;
}

export function ipText(b: Uint8Array | undefined, family: Family): string | null {
  return b && b.length === (family === 4 ? 4 : 16) ? addrText(b, family) : null;
}

/** The attribute stream of one message, as the package formats it. */
export function body(format: (out: AttrStream) => void): Uint8Array[] {
  const out = new AttrStream();
  format(out);
  return out.bufs;
}
