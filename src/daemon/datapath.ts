/**
 * The daemon's XDP datapath: the forwarder (src/datapath/xdp/forwarder.ts) loaded and attached
 * to the interfaces where traffic for the virtual addresses arrives, and the driver the
 * reconciler programs it through (src/datapath/driver.ts's XdpDriver, with next hops from
 * ./nexthop.ts).
 *
 * Interfaces: those given (`xlb run --xdp-interface`), else the interfaces of the VRRP instances
 * (where their virtual addresses live, so where the traffic comes in); in native mode unless
 * asked for generic.
 * Forwarder settings: the TUN outer source of each family is the first interface's first global
 * address of that family (the balancer's own address on that segment); keepalived's lvs_timeouts
 * (tcp, tcpfin, udp) are the NAT state's timeouts.
 *
 * Hitless restart: the forwarder is pinned under /sys/fs/bpf/xlb/<instance>/ and attached by
 * netlink (src/datapath/xdp/forwarder.ts), so a daemon that dies (SIGKILL included) leaves it
 * attached and forwarding. The next start adopts the pins: the same program and maps (connection
 * tables, NAT state, persistence templates, counters), the services read back from them and handed
 * to the reconciler as what the driver holds (`held`), so that it changes only the difference and
 * established connections keep their reals. The interfaces are attached as now asked (an
 * attachment already there is kept) and detached from any other. Pins this build cannot adopt
 * (another ABI or map layout: an upgrade across an ABI change) are purged, with a warning: that
 * start drops the connections the old program tracked.
 *
 * close('remove'): services removed by the caller first, then the program detached everywhere and
 * the pins removed. close('keep'): pins and attachments stay, the program keeps forwarding (the
 * next start adopts it).
 */
import type { Logger } from 'pino';
import { XdpDriver, type HeldService } from '../datapath/driver.ts';
import type { XdpMode } from '../datapath/xdp/decap.ts';
import { XdpForwarder, type ForwarderConfig } from '../datapath/xdp/forwarder.ts';
import { listAddresses } from '../net/address.ts';
import { linkByName } from '../net/link.ts';
import { Rtnl } from '../net/rtnl.ts';
import type { ServiceGlobalDefs } from '../model/types.ts';
import { NextHops } from './nexthop.ts';

export type { XdpMode };

export interface DatapathOptions {
  instance: string;
  interfaces: readonly string[];
  mode: XdpMode;
  log: Logger;
}

export class Datapath {
  private constructor(
    readonly forwarder: XdpForwarder,
    readonly driver: XdpDriver,
    readonly nextHops: NextHops,
    /** what the driver held when it was made (after an adoption: the previous process's services) */
    readonly held: HeldService[],
    private readonly ifindexes: readonly number[],
    private readonly opts: DatapathOptions,
  ) {}

  get adopted(): boolean {
    return this.forwarder.adopted;
  }

  static async open(opts: DatapathOptions): Promise<Datapath> {
    if (opts.interfaces.length === 0) throw new Error('no interface to attach the XDP forwarder to: give --xdp-interface, or run a VRRP instance');
    const links = await Promise.all(opts.interfaces.map((name) => linkByName(name)));
    const ifindexes = links.map((l) => l.ifindex);
    const nextHops = new NextHops(ifindexes);
    const forwarder = await openForwarder(opts);
    const driver = new XdpDriver(forwarder, (real) => nextHops.get(real.address));
    const held = driver.held();
    if (forwarder.adopted) {
      opts.log.info({ pins: forwarder.pinDir, services: held.length }, `adopted the pinned XDP forwarder and its ${held.length} service(s)`);
    }
    const dp = new Datapath(forwarder, driver, nextHops, held, ifindexes, opts);
    try {
      await dp.attach();
    } catch (err) {
      await dp.close('remove');
      throw err;
    }
    return dp;
  }

  private async attach(): Promise<void> {
    for (const [i, ifindex] of this.ifindexes.entries()) {
      this.forwarder.attach(ifindex, this.opts.mode);
      this.opts.log.info({ interface: this.opts.interfaces[i], ifindex, mode: this.opts.mode }, 'XDP forwarder attached');
    }
    for (const a of await this.forwarder.attachments()) {
      if (this.ifindexes.includes(a.ifindex)) continue;
      this.forwarder.detach(a.ifindex);
      this.opts.log.info({ ifindex: a.ifindex }, 'XDP forwarder detached from an interface no longer asked for');
    }
  }

  /** The forwarder's settings from the interfaces' addresses and the configuration's lvs_timeouts. */
  async configure(globals: ServiceGlobalDefs | undefined): Promise<ForwarderConfig> {
    const nl = Rtnl.open();
    let cfg: ForwarderConfig = {};
    try {
      const first = this.ifindexes[0]!;
      const addrs = (await listAddresses(nl, { ifindex: first })).filter((a) => a.scope === 0);
      const v4 = addrs.find((a) => a.family === 4);
      const v6 = addrs.find((a) => a.family === 6);
      if (v4) cfg.tunSrc4 = v4.address;
      if (v6) cfg.tunSrc6 = v6.address;
    } finally {
      nl.close();
    }
    const t = globals?.lvs_timeouts;
    if (t) {
      cfg = { ...cfg, natTimeouts: { ...(t.tcp ? { tcp: t.tcp } : {}), ...(t.tcpfin ? { tcpFin: t.tcpfin } : {}), ...(t.udp ? { udp: t.udp } : {}) } };
    }
    this.forwarder.setConfig(cfg);
    return cfg;
  }

  /** Detach everywhere and remove the pins ('remove'), or leave the program pinned and forwarding ('keep'). */
  async close(how: 'remove' | 'keep'): Promise<void> {
    if (how === 'remove') await this.forwarder.destroy();
    else this.forwarder.close();
  }
}

/** Open (create and pin, or adopt) the instance's forwarder; pins of another build are purged. */
async function openForwarder(opts: DatapathOptions): Promise<XdpForwarder> {
  try {
    return XdpForwarder.open({ instance: opts.instance });
  } catch (err) {
    if ((err as { code?: string }).code !== 'XLB_PINS_INCOMPATIBLE') throw err;
    opts.log.warn({ err: (err as Error).message }, 'the pinned XDP forwarder cannot be adopted by this build: purging it ' +
      '(the connections it tracked are dropped) and starting afresh');
    await XdpForwarder.purge({ instance: opts.instance });
    return XdpForwarder.open({ instance: opts.instance });
  }
}
