/**
 * TCP connections with keepalived's connection options (connect_ip/port, bindto, bind_port,
 * bind_if, fwmark), over the addon's TCP prober (native/src/tcp.cc): node's own sockets can
 * neither bind to a device nor set a mark, and cost about twice the CPU per connect.
 *
 *   TcpEndpoint.probe(done)  connect, then close at once with an RST (no TIME_WAIT left by
 *                            TCP_CHECK however often it runs); done(0) or done(errno)
 *   TcpEndpoint.open(done)   connect, then hand the socket over as a node net.Socket (HTTP_GET,
 *                            SSL_GET, SMTP_CHECK talk over it)
 * Both return a cancel function (the scheduler's timeout): the socket is closed with an RST and
 * `done` is not called. One prober serves the whole process; its callback finds the probe's
 * `done` by id.
 */
import { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { native } from '../datapath/bpf/index.ts';
import type { NativeTcpProber, NativeTcpProbeOptions } from '../datapath/bpf/native.ts';
import type { Family } from '../datapath/xdp/net.ts';
import { ipOfFamily } from '../net/args.ts';

/** Where a checker connects to and from (resolved: ./config.ts). */
export interface Endpoint {
  family: Family;
  address: string;
  port: number;
  bindto?: string;
  bindPort?: number;
  bindIf?: string;
  fwmark?: number;
}

/** 'ECONNREFUSED' for an errno number. */
export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

/** host:port, with IPv6 in brackets */
export function endpointText(ep: { family: Family; address: string; port: number }): string {
  return ep.family === 6 ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}

let prober: NativeTcpProber | undefined;
const waiting = new Map<number, (errno: number) => void>();

function theProber(): NativeTcpProber {
  prober ??= native().openTcpProber((id, errno) => {
    const cb = waiting.get(id);
    if (!cb) return;
    waiting.delete(id);
    cb(errno);
  });
  return prober;
}

/** TCP probes in progress or open (for tests: nothing may be left behind). */
export function openProbes(): number {
  return prober?.size() ?? 0;
}

/** the options of an endpoint without bindto/bind_port/bind_if/fwmark, shared (read-only) */
const NO_OPTIONS: NativeTcpProbeOptions = Object.freeze({});
const RESET_ONLY: NativeTcpProbeOptions = Object.freeze({ reset: true });

export class TcpEndpoint {
  readonly endpoint: Endpoint;
  readonly #dst: Buffer;
  readonly #probeOpts: NativeTcpProbeOptions;
  readonly #openOpts: NativeTcpProbeOptions;

  constructor(ep: Endpoint) {
    this.endpoint = ep;
    // a copy from Node's shared pool: one of these per real server (100,000 in the control
    // benchmark) keeps no ArrayBuffer of its own
    this.#dst = Buffer.from(ipOfFamily(ep.address, ep.family, 'connect', 'connect_ip').bytes);
    const opts: NativeTcpProbeOptions = {};
    if (ep.bindto !== undefined) opts.src = ipOfFamily(ep.bindto, ep.family, 'bind', 'bindto').bytes;
    if (ep.bindPort !== undefined) opts.srcPort = ep.bindPort;
    if (ep.bindIf !== undefined) opts.ifname = ep.bindIf;
    if (ep.fwmark !== undefined) opts.mark = ep.fwmark;
    const plain = Object.keys(opts).length === 0;
    this.#openOpts = plain ? NO_OPTIONS : opts;
    this.#probeOpts = plain ? RESET_ONLY : { ...opts, reset: true };
  }

  /** Connect and reset. done(0): it connected; done(errno): it did not. */
  probe(done: (errno: number) => void): () => void {
    return this.#start(this.#probeOpts, done);
  }

  /** Connect and hand over a node Socket (the caller ends or destroys it). */
  open(done: (err: Error | null, sock?: Socket) => void): () => void {
    const p = theProber();
    return this.#start(this.#openOpts, (errno, id) => {
      if (errno !== 0) return done(new Error(`connect: ${errnoName(errno)}`));
      let fd: number;
      try {
        fd = p.release(id);
      } catch (err) {
        return done(err as Error);
      }
      done(null, new Socket({ fd, readable: true, writable: true }));
    });
  }

  #start(opts: NativeTcpProbeOptions, done: (errno: number, id: number) => void): () => void {
    const p = theProber();
    let id: number;
    try {
      id = p.connect(this.endpoint.family, this.#dst, this.endpoint.port, opts);
    } catch (err) {
      // failed before the connect was under way (bind: EADDRINUSE, connect: ENETUNREACH, ...)
      const e = err as NodeJS.ErrnoException;
      done(typeof e.errno === 'number' ? Math.abs(e.errno) : 22, 0);
      return () => undefined;
    }
    waiting.set(id, (errno) => done(errno, id));
    return () => {
      if (waiting.delete(id)) p.cancel(id);
    };
  }
}
