/**
 * The datapath driver: the one interface the reconciler (src/model/reconcile.ts) calls to
 * program virtual services, and the only way anything reaches a datapath.
 *
 *   setService(service, reals)  create or replace one service {address, port, protocol} with
 *                               exactly these reals; the change is atomic for packets (no
 *                               packet sees half of it). Reals not listed are removed: their
 *                               connections are moved to the remaining reals. A real of weight 0
 *                               is drained: it keeps its connections and gets no new ones.
 *   removeService(key)          remove it and its reals (false if there was none).
 *   stats(key)                  packets, bytes and connections of the service and of each real.
 *
 * Implementations: XdpDriver (below, over src/datapath/xdp/forwarder.ts); FakeDriver
 * (./fake-driver.ts, in memory, for unit tests). An `ipvs` driver (the kernel's IPVS over generic
 * netlink) fits the same interface (its capabilities would add fwmark services and native
 * connection-counting schedulers) but is not written: the machine this was built on has no IPVS
 * module to test it against.
 *
 * Methods return promises so that a driver that talks to the kernel asynchronously (netlink)
 * fits; the XDP one completes synchronously inside them.
 */
import { serviceKey, type Method, type Persistence, type Protocol, type RealSpec, type Stats, type XdpForwarder } from './xdp/forwarder.ts';

export { serviceKey };
export type { Method, Persistence, Protocol, Stats };

export interface DatapathService {
  address: string;
  /** 0 = all ports */
  port: number;
  protocol: Protocol;
  /** schedule by the client address only (IPVS sh, mh), else by the flow */
  hashSourceOnly?: boolean;
  /** one-packet scheduling (UDP) */
  ops?: boolean;
  persistence?: Persistence;
}

export interface DatapathReal {
  address: string;
  /** NAT: the real's port (0: the packet's); DR and TUN: 0 (they cannot change the port) */
  port: number;
  /** 0 = drained */
  weight: number;
  method: Method;
}

export interface ServiceStats {
  service: Stats;
  /** by real address */
  reals: Map<string, Stats>;
}

/** What a driver can realise: the model's validation (src/model/validate.ts) refuses the rest. */
export interface DriverCapabilities {
  /** fwmark services (the XDP datapath runs before netfilter marks packets: no) */
  fwmark: boolean;
  sctp: boolean;
  /** the driver counts active connections (IPVS does): lc, wlc, ... are exact */
  connectionCounts: boolean;
  /** a service may have two reals of one address (different ports); the XDP datapath keys reals by address */
  realsPerAddress: boolean;
}

export interface DatapathDriver {
  readonly kind: 'xdp' | 'ipvs' | 'fake';
  readonly capabilities: DriverCapabilities;
  setService(service: DatapathService, reals: readonly DatapathReal[]): Promise<void>;
  /** setService of several services (a full apply), faster than one by one where the driver can
   *  batch; a failure may leave some of them set and the others as they were (optional) */
  setServices?(list: readonly { service: DatapathService; reals: readonly DatapathReal[] }[]): Promise<void>;
  removeService(key: string): Promise<boolean>;
  stats(key: string): Promise<ServiceStats>;
  /** the keys of the services it holds */
  services(): string[];
}

export const XDP_CAPABILITIES: DriverCapabilities = { fwmark: false, sctp: false, connectionCounts: false, realsPerAddress: false };

/** Where a real's frames go: the next hop's MAC, our MAC on that interface, and the interface. */
export interface NextHop {
  mac: string;
  smac: string;
  /** absent or 0: back out of the interface the packet came in on */
  ifindex?: number;
}

/** A service and its reals as a driver holds them (XdpDriver.held). */
export interface HeldService {
  service: DatapathService;
  reals: DatapathReal[];
}

/**
 * The XDP driver: each service is one setService of the forwarder (a new Maglev table swapped in
 * whole, reals written before it). `nextHop` says where each real's frames go (the daemon
 * resolves it from the neighbour table; tests and benchmarks give fixed ones).
 *
 * It holds what its forwarder holds when it is made: after a hitless restart (a forwarder that
 * adopted pinned maps, XdpForwarder.open with an instance) services() and held() list what the
 * previous process programmed, so that the caller changes only the difference (setting a service
 * again with the same reals keeps their ids, and so their connections).
 */
export class XdpDriver implements DatapathDriver {
  readonly kind = 'xdp' as const;
  readonly capabilities = XDP_CAPABILITIES;
  readonly #specs = new Map<string, DatapathService>();

  constructor(readonly forwarder: XdpForwarder, private readonly nextHop: (real: DatapathReal, service: DatapathService) => NextHop) {
    for (const { service } of forwarder.listServices()) this.#specs.set(serviceKey(service), service);
  }

  /** What the forwarder holds, in the driver's terms (next hops left out). */
  held(): HeldService[] {
    return this.forwarder.listServices().map(({ service, reals }) => ({
      service,
      reals: reals.map((r) => ({ address: r.address, port: r.port ?? 0, weight: r.weight, method: r.method })),
    }));
  }

  async setService(service: DatapathService, reals: readonly DatapathReal[]): Promise<void> {
    this.forwarder.setService(service, this.#realSpecs(service, reals));
    this.#specs.set(serviceKey(service), service);
  }

  /** The forwarder's setServices: the new tables swapped in by one batch update. */
  async setServices(list: readonly { service: DatapathService; reals: readonly DatapathReal[] }[]): Promise<void> {
    try {
      this.forwarder.setServices(list.map(({ service, reals }) => ({ spec: service, reals: this.#realSpecs(service, reals) })));
    } finally {
      // what the forwarder holds (a failure may have set some)
      for (const { service } of list) if (this.forwarder.hasService(service)) this.#specs.set(serviceKey(service), service);
    }
  }

  #realSpecs(service: DatapathService, reals: readonly DatapathReal[]): RealSpec[] {
    return reals.map((r) => {
      const hop = this.nextHop(r, service);
      return {
        address: r.address, weight: r.weight, method: r.method, mac: hop.mac, smac: hop.smac,
        ...(hop.ifindex ? { ifindex: hop.ifindex } : {}), ...(r.port ? { port: r.port } : {}),
      };
    });
  }

  async removeService(key: string): Promise<boolean> {
    const spec = this.#specs.get(key);
    if (!spec) return false;
    this.#specs.delete(key);
    return this.forwarder.removeService(spec);
  }

  async stats(key: string): Promise<ServiceStats> {
    const spec = this.#specs.get(key);
    if (!spec) throw new Error(`no service ${key}`);
    const reals = new Map<string, Stats>();
    for (const address of this.forwarder.realsOf(spec)) reals.set(address, this.forwarder.realStats(spec, address));
    return { service: this.forwarder.serviceStats(spec), reals };
  }

  services(): string[] {
    return [...this.#specs.keys()];
  }
}
