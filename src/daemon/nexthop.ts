/**
 * Next hops of the real servers, for the XDP driver (src/datapath/driver.ts's NextHop): where a
 * real's frames go. The forwarder rewrites Ethernet addresses itself, so for every real it needs
 * the MAC of the next hop toward it (the real itself when it is on a connected subnet, as DR
 * requires; else the gateway the route names, as TUN allows), our own MAC on the interface that
 * route leaves by, and that interface when it is not the one the packet came in on.
 *
 * Resolution (`resolve`): the kernel's route (`ip -j route get`) gives the interface and the
 * gateway; the neighbour table (`ip -j neigh show`) gives the MAC. An address the table has no
 * usable entry for (none, INCOMPLETE, FAILED) is made to resolve by sending it one UDP datagram
 * to the discard port (9): the kernel then runs ARP / neighbour discovery, and the table is read
 * again every 50 ms for up to `timeoutMs`. What cannot be resolved is reported, not guessed: the
 * driver refuses to program a real without a next hop (`get` throws), and the daemon retries.
 *
 * The table is read when the daemon starts and at every reload; a real that moves to another MAC
 * meanwhile is followed at the next reload (keepalived's IPVS needs no MACs: the kernel's
 * neighbour layer does this for it).
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { promisify } from 'node:util';
import type { NextHop } from '../datapath/driver.ts';

const run = promisify(execFile);

/** neighbour states that carry a usable link-layer address */
const USABLE = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);
const POLL_MS = 50;
const DISCARD_PORT = 9;

/** What the resolver needs to know of the host (tests give fakes). */
export interface NextHopHost {
  /** the kernel's route to `address`: its interface and gateway (null: on-link) */
  route(address: string): Promise<{ dev: string; gateway: string | null }>;
  /** the link-layer address the neighbour table has for `address` on `dev`, null when none is usable */
  neighbour(address: string, dev: string): Promise<string | null>;
  /** make the kernel resolve `address` (one datagram to it) */
  poke(address: string): void;
  /** an interface's index and MAC */
  link(dev: string): Promise<{ ifindex: number; mac: string }>;
}

interface IpRoute { dev?: string; gateway?: string }
interface IpNeigh { lladdr?: string; state?: string[] }
interface IpLink { ifindex?: number; address?: string }

async function ipJson<T>(args: string[]): Promise<T[]> {
  const { stdout } = await run('ip', ['-j', ...args]);
  return stdout.trim() === '' ? [] : (JSON.parse(stdout) as T[]);
}

/** The host as `ip` (iproute2) shows it, in this process's network namespace. */
export const ipHost: NextHopHost = {
  async route(address) {
    const [r] = await ipJson<IpRoute>(['route', 'get', address]);
    if (!r?.dev) throw new Error(`no route to ${address}`);
    return { dev: r.dev, gateway: r.gateway ?? null };
  },
  async neighbour(address, dev) {
    const entries = await ipJson<IpNeigh>(['neigh', 'show', 'to', address, 'dev', dev]);
    const e = entries.find((n) => n.lladdr && (n.state ?? []).some((s) => USABLE.has(s)));
    return e?.lladdr ?? null;
  },
  poke(address) {
    const s = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
    s.on('error', () => s.close());
    s.send(Buffer.alloc(0), DISCARD_PORT, address, () => s.close());
  },
  async link(dev) {
    const [l] = await ipJson<IpLink>(['link', 'show', 'dev', dev]);
    if (!l?.ifindex || !l.address) throw new Error(`interface ${dev} has no index or MAC`);
    return { ifindex: l.ifindex, mac: l.address };
  },
};

export interface ResolveFailure {
  address: string;
  error: string;
}

export class NextHops {
  readonly #hops = new Map<string, NextHop>();

  /**
   * `attached`: the interfaces the forwarder is attached to, by index. A real whose route leaves
   * by the only one of them gets no ifindex (XDP_TX, out of the interface the packet came in on);
   * any other gets its interface (a redirect).
   */
  constructor(private readonly attached: readonly number[], private readonly host: NextHopHost = ipHost, private readonly timeoutMs = 1000) {}

  /** The next hop of a resolved real; throws when it has none (the driver refuses the service). */
  get(address: string): NextHop {
    const h = this.#hops.get(address);
    if (!h) throw new Error(`real server ${address}: its next hop (MAC) is not resolved yet`);
    return h;
  }

  has(address: string): boolean {
    return this.#hops.has(address);
  }

  /** Resolve every address (again); the ones that fail keep no next hop and are returned. */
  async resolve(addresses: Iterable<string>): Promise<ResolveFailure[]> {
    const unique = [...new Set(addresses)];
    const results = await Promise.all(unique.map(async (address) => {
      try {
        this.#hops.set(address, await this.#resolveOne(address));
        return null;
      } catch (e) {
        this.#hops.delete(address);
        return { address, error: (e as Error).message };
      }
    }));
    return results.filter((r): r is ResolveFailure => r !== null);
  }

  async #resolveOne(address: string): Promise<NextHop> {
    const { dev, gateway } = await this.host.route(address);
    const target = gateway ?? address;
    const link = await this.host.link(dev);
    let mac = await this.host.neighbour(target, dev);
    if (!mac) {
      this.host.poke(target);
      const deadline = Date.now() + this.timeoutMs;
      while (!mac && Date.now() < deadline) {
        await new Promise((ok) => setTimeout(ok, POLL_MS));
        mac = await this.host.neighbour(target, dev);
      }
    }
    if (!mac) throw new Error(`${target} on ${dev} did not answer ARP / neighbour discovery within ${this.timeoutMs} ms`);
    const same = this.attached.length === 1 && this.attached[0] === link.ifindex;
    return { mac, smac: link.mac, ...(same ? {} : { ifindex: link.ifindex }) };
  }
}
