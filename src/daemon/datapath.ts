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
 * close('remove'): services removed by the caller first, then the program detached and the
 * forwarder closed. close('keep'): nothing detached, the program keeps forwarding.
 */
import type { Logger } from 'pino';
import { xdpAttach, xdpDetach, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE } from '../datapath/bpf/index.ts';
import { XdpDriver } from '../datapath/driver.ts';
import { XdpForwarder, type ForwarderConfig } from '../datapath/xdp/forwarder.ts';
import { listAddresses } from '../net/address.ts';
import { linkByName } from '../net/link.ts';
import { Rtnl } from '../net/rtnl.ts';
import type { ServiceGlobalDefs } from '../model/types.ts';
import { NextHops } from './nexthop.ts';

export type XdpMode = 'native' | 'generic';
const MODE_FLAG: Record<XdpMode, number> = { native: XDP_FLAGS_DRV_MODE, generic: XDP_FLAGS_SKB_MODE };

export interface DatapathOptions {
  instance: string;
  interfaces: readonly string[];
  mode: XdpMode;
  log: Logger;
}

export class Datapath {
  private attached: number[] = [];

  private constructor(
    readonly forwarder: XdpForwarder,
    readonly driver: XdpDriver,
    readonly nextHops: NextHops,
    private readonly ifindexes: readonly number[],
    private readonly opts: DatapathOptions,
  ) {}

  static async open(opts: DatapathOptions): Promise<Datapath> {
    if (opts.interfaces.length === 0) throw new Error('no interface to attach the XDP forwarder to: give --xdp-interface, or run a VRRP instance');
    const links = await Promise.all(opts.interfaces.map((name) => linkByName(name)));
    const ifindexes = links.map((l) => l.ifindex);
    const nextHops = new NextHops(ifindexes);
    const forwarder = XdpForwarder.open();
    const driver = new XdpDriver(forwarder, (real) => nextHops.get(real.address));
    const dp = new Datapath(forwarder, driver, nextHops, ifindexes, opts);
    try {
      dp.attach();
    } catch (err) {
      dp.close('remove');
      throw err;
    }
    return dp;
  }

  private attach(): void {
    for (const [i, ifindex] of this.ifindexes.entries()) {
      xdpAttach(ifindex, this.forwarder.program.fd, MODE_FLAG[this.opts.mode]);
      this.attached.push(ifindex);
      this.opts.log.info({ interface: this.opts.interfaces[i], ifindex, mode: this.opts.mode }, 'XDP forwarder attached');
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

  /** Detach and close ('remove'), or leave the program forwarding ('keep'). */
  close(how: 'remove' | 'keep'): void {
    if (how === 'remove') {
      for (const ifindex of this.attached) {
        try {
          xdpDetach(ifindex, MODE_FLAG[this.opts.mode]);
        } catch (e) {
          this.opts.log.warn({ ifindex, err: (e as Error).message }, 'XDP detach failed');
        }
      }
      this.attached = [];
    }
    this.forwarder.close();
  }
}
