/**
 * Link state followed through rtnetlink events (RTNLGRP_LINK: RTM_NEWLINK / RTM_DELLINK), for
 * VRRP's interface tracking: an instance whose interface goes down (or loses its carrier, or
 * disappears) goes to FAULT, and back when it returns.
 *
 *   const w = await LinkWatcher.open();   // subscribe, then dump: w.links() is the state now
 *   w.on('change', (now, before) => ...); // only when up / running / lower-up / operstate /
 *                                         // name / presence changed (the kernel sends RTM_NEWLINK
 *                                         // for much else too)
 *   w.close();
 *
 * `usable` is what keepalived calls an interface up: IFF_UP and IFF_RUNNING (RFC 2863 operational
 * state up; a veth or a NIC without carrier is not running).
 *
 * Lost events: when the socket's receive buffer overflows the kernel drops notifications and says
 * ENOBUFS; the watcher then dumps every link again, emits 'change' for whatever differs from what
 * it knew (links gone included) and 'resync'. Other socket errors are emitted as 'netlinkError'
 * (never as 'error', which would throw without a listener).
 *
 * Sockets: the events come from the addon's receive-only netlink socket (RTMGRP_LINK), decoded
 * with the netlink package's parsers; the dumps go through an Rtnl (the package's socket). Not the
 * package's socket for events, because it aborts the process on exactly the ENOBUFS that a
 * subscription can meet (see ./rtnl.ts).
 *
 * The watcher's sockets belong to the namespace they are opened in (inNetns for another one); the
 * event socket keeps the event loop alive until close().
 */
import { EventEmitter } from 'node:events';
import { parseMessages, rt } from 'netlink';
import { native } from '../datapath/bpf/index.ts';
import type { NativeErrnoError, NativeNetlinkSocket } from '../datapath/bpf/native.ts';
import { linkFromMessage, type Link } from './link.ts';
import { body, netlinkError, Rtnl, type NetlinkError } from './rtnl.ts';

/** A link's state (./link.ts's Link) as the watcher knows it. */
export interface LinkState extends Link {
  /** up && running: what keepalived calls an interface up */
  usable: boolean;
  /** false once the link is deleted (RTM_DELLINK, or missing from a resync dump) */
  present: boolean;
}

export interface LinkWatcherEvents {
  change: [LinkState, LinkState | null];
  resync: [];
  netlinkError: [NetlinkError];
}

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const NETLINK_ROUTE = 0;
const RTMGRP_LINK = 1;
const EBADMSG = 74;

/** A link message as a LinkState; `present` says whether it came from a deletion. */
export function linkState(m: rt.LinkMessage, present: boolean): LinkState {
  const link = linkFromMessage(m);
  return { ...link, usable: present && link.up && link.running, present };
}

function differs(a: LinkState, b: LinkState): boolean {
  return a.up !== b.up || a.running !== b.running || a.lowerUp !== b.lowerUp || a.operstate !== b.operstate
    || a.name !== b.name || a.present !== b.present;
}

export class LinkWatcher extends EventEmitter<LinkWatcherEvents> {
  private readonly known = new Map<number, LinkState>();
  private resyncing: Promise<void> | null = null;

  private closed = false;

  private constructor(private readonly nl: Rtnl, private readonly events: NativeNetlinkSocket) {
    super();
  }

  /**
   * Subscribe to link events in this thread's namespace, then read every link's state.
   * `recvBufferSize` sets the event socket's SO_RCVBUFFORCE (bytes; a host with many links may
   * want more than the default).
   */
  static async open(o: { recvBufferSize?: number } = {}): Promise<LinkWatcher> {
    const events = native().openNetlinkSocket(NETLINK_ROUTE, RTMGRP_LINK,
      o.recvBufferSize === undefined ? {} : { recvBufferForce: o.recvBufferSize });
    let nl: Rtnl | undefined;
    try {
      nl = Rtnl.open();
      const w = new LinkWatcher(nl, events);
      events.start((err, msg) => {
        if (err) w.onError(err);
        else if (msg) w.onDatagram(msg.data);
      });
      for (const s of await w.dump()) w.known.set(s.ifindex, s);
      return w;
    } catch (err) {
      events.close();
      nl?.close();
      throw err;
    }
  }

  /** Every link as last known. */
  links(): LinkState[] {
    return [...this.known.values()].filter((s) => s.present);
  }

  /** One link as last known (also after it was deleted: present false), or undefined. */
  link(ifindex: number): LinkState | undefined {
    return this.known.get(ifindex);
  }

  close(): void {
    this.closed = true;
    this.events.close();
    this.nl.close();
  }

  private async dump(): Promise<LinkState[]> {
    const msgs = await this.nl.dump(rt.MessageType.GETLINK, body((out) => rt.formatLinkMessage({ kind: 'link', data: {}, attrs: {} }, out)), 'all links');
    return msgs.filter((m): m is rt.LinkMessage => m.kind === 'link').map((m) => linkState(m, true));
  }

  private update(now: LinkState): void {
    const before = this.known.get(now.ifindex) ?? null;
    this.known.set(now.ifindex, now);
    if (!before || differs(before, now)) this.emit('change', now, before);
  }

  private onDatagram(data: Buffer): void {
    let parsed: { message: rt.LinkMessage; present: boolean }[];
    try {
      parsed = parseMessages(data)
        .filter((m) => m.type === RTM_NEWLINK || m.type === RTM_DELLINK)
        .map((m) => ({ message: rt.parseLinkMessage(m.data), present: m.type === RTM_NEWLINK }));
    } catch (err) {
      // a datagram the package cannot parse: say so, and read every link again to be sure
      this.emit('netlinkError', netlinkError(EBADMSG, 'recvmsg', `link events: ${(err as Error).message}`));
      this.resync();
      return;
    }
    for (const p of parsed) this.update(linkState(p.message, p.present));
  }

  private onError(err: NativeErrnoError): void {
    if (this.closed) return;
    if (err.code === 'ENOBUFS') this.resync();
    else this.emit('netlinkError', err);
  }

  /** Dump again after lost events; concurrent calls share one dump. */
  private resync(): void {
    this.resyncing ??= (async () => {
      try {
        const now = await this.dump();
        const seen = new Set<number>();
        for (const s of now) {
          seen.add(s.ifindex);
          this.update(s);
        }
        for (const [ifindex, s] of this.known) {
          if (s.present && !seen.has(ifindex)) this.update({ ...s, present: false, usable: false });
        }
        this.emit('resync');
      } catch (err) {
        if (!this.closed) this.emit('netlinkError', err as NetlinkError);
      } finally {
        this.resyncing = null;
      }
    })();
  }
}
